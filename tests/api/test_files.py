import os

import pytest
import torch

import holotensor
from holotensor.api import Policy
from holotensor.codecs import LosslessConfig
from holotensor.errors import ChecksumError, FormatError, HoloTensorError


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().reshape(-1).view(torch.uint8)


def sample() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "emb.weight": torch.randn(50, 16, generator=g).bfloat16(),
        "layer.0.dense.weight": torch.randn(16, 32, generator=g),
        "layer.0.dense.bias": torch.randn(16, generator=g).half(),
        "layer.0.LayerNorm.weight": torch.ones(16),
        "step": torch.tensor(7, dtype=torch.int64),
        "mask": torch.rand(3, 5, generator=g) > 0.5,
        "empty": torch.empty(0, 4),
        "transposed": torch.randn(8, 6, generator=g).t(),
    }


def test_save_load_round_trip(tmp_path):
    tensors = sample()
    holotensor.save_file(tensors, tmp_path / "m.hct", metadata={"source": "unit"})
    loaded = holotensor.load_file(tmp_path / "m.hct")
    assert list(loaded) == list(tensors)
    for name, t in tensors.items():
        assert loaded[name].dtype == t.dtype and loaded[name].shape == t.shape, name
        assert torch.equal(bits(loaded[name]), bits(t)), name


def test_safe_open(tmp_path):
    tensors = sample()
    holotensor.save_file(tensors, tmp_path / "m.hct", metadata={"a": "b"})
    with holotensor.safe_open(tmp_path / "m.hct", framework="pt", device="cpu") as f:
        assert f.keys() == list(tensors)
        assert f.metadata() == {"a": "b"}
        assert torch.equal(f.get_tensor("emb.weight"), tensors["emb.weight"])
        entry = f.entry("emb.weight")
        assert entry.codec.name == "lossless" and entry.quality[-1].cosine == 1.0
    with pytest.raises(ValueError, match="framework"):
        holotensor.safe_open(tmp_path / "m.hct", framework="flax")


def test_policy_keeps_sensitive_tensors_lossless():
    p = Policy(rules={"*.weight": LosslessConfig(level="max")}, default=LosslessConfig(level="max"))
    assert p.codec_for("layer.0.LayerNorm.weight", torch.ones(4, 4)) == LosslessConfig()
    assert p.codec_for("layer.0.dense.bias", torch.ones(4, 4)) == LosslessConfig()
    assert p.codec_for("x.weight", torch.ones(4)) == LosslessConfig()
    assert p.codec_for("x.weight", torch.ones(4, 4)) == LosslessConfig(level="max")
    exact = Policy(rules={"x.bias": LosslessConfig(level="max")})
    assert exact.codec_for("x.bias", torch.ones(4)) == LosslessConfig(level="max")
    with pytest.raises(HoloTensorError, match="unknown codec"):
        Policy(default="nope").codec_for("a", torch.ones(2, 2))


def test_save_rejects_bad_input(tmp_path):
    with pytest.raises(TypeError, match="mapping"):
        holotensor.save_file([torch.ones(1)], tmp_path / "x.hct")
    with pytest.raises(TypeError, match=r"not a torch\.Tensor"):
        holotensor.save_file({"a": [1, 2]}, tmp_path / "x.hct")
    with pytest.raises(ValueError, match="to_dense"):
        holotensor.save_file({"a": torch.eye(3).to_sparse()}, tmp_path / "x.hct")
    with pytest.raises(TypeError, match="complex"):
        holotensor.save_file({"a": torch.ones(2, dtype=torch.complex64)}, tmp_path / "x.hct")
    assert not (tmp_path / "x.hct").exists()
    with pytest.raises(FileNotFoundError):
        holotensor.save_file({"a": torch.ones(2)}, tmp_path / "no" / "x.hct")


def test_unwritable_target(tmp_path):
    (tmp_path / "plain").write_text("a file, not a directory")
    with pytest.raises(NotADirectoryError):
        holotensor.save_file({"a": torch.ones(2)}, tmp_path / "plain" / "x.hct")
    if os.geteuid() != 0:  # root may write into read-only directories
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o500)
        with pytest.raises(PermissionError):
            holotensor.save_file({"a": torch.ones(2)}, d / "x.hct")


def test_corrupt_payload_is_located(tmp_path):
    holotensor.save_file({"w": torch.randn(64, 64)}, tmp_path / "m.hct")
    with holotensor.safe_open(tmp_path / "m.hct") as f:
        off = f.entry("w").fragments[0].offset
    data = bytearray((tmp_path / "m.hct").read_bytes())
    data[off + 3] ^= 0x10
    (tmp_path / "m.hct").write_bytes(data)
    with pytest.raises(ChecksumError) as info:
        holotensor.load_file(tmp_path / "m.hct")
    msg = str(info.value)
    assert "m.hct" in msg and "'w'" in msg and "fragment 0" in msg


def test_load_non_hct_file(tmp_path):
    (tmp_path / "x.hct").write_bytes(b"hello world" * 10)
    with pytest.raises(FormatError, match="not an HCT V2 file"):
        holotensor.load_file(tmp_path / "x.hct")
    with pytest.raises(FileNotFoundError):
        holotensor.load_file(tmp_path / "missing.hct")


def test_progressive_read_touches_only_the_prefix(tmp_path, monkeypatch):
    """Loading the first k fragments fetches (and checksums) only those fragments' bytes."""
    from holotensor.codecs import LowRankConfig
    from holotensor.format.hct2 import HCT2Reader

    w = torch.randn(64, 48, generator=torch.Generator().manual_seed(4))
    holotensor.save_file({"w": w}, tmp_path / "w.hct", codec=LowRankConfig(fragments=4))
    fetched: list[int] = []
    real = HCT2Reader.fragment_bytes

    def counting(self, name, index):
        view = real(self, name, index)
        fetched.append(view.nbytes)
        return view

    monkeypatch.setattr(HCT2Reader, "fragment_bytes", counting)
    with holotensor.safe_open(tmp_path / "w.hct") as f:
        sizes = [fr.size for fr in f.entry("w").fragments]
        f.get_tensor("w", fragments=2)
        assert fetched == sizes[:2]
        fetched.clear()
        f.get_tensor("w")
        assert fetched == sizes


def test_policy_keeps_integer_tensors_lossless(tmp_path):
    from holotensor.codecs import BlockQuantConfig

    tensors = {"ids": torch.arange(512).reshape(1, 512), "w": torch.randn(16, 128)}
    holotensor.save_file(tensors, tmp_path / "q.hct", codec=BlockQuantConfig(bits=4))
    with holotensor.safe_open(tmp_path / "q.hct") as f:
        assert f.entry("ids").codec.name == "lossless" and f.entry("w").codec.name == "blockquant"
        assert torch.equal(f.get_tensor("ids"), tensors["ids"])

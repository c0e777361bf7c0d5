import json

import pytest
import safetensors.torch
import torch

from holotensor import convert_to_hct, convert_to_safetensors, load_file
from holotensor.errors import FormatError


def checkpoint(tmp_path):
    g = torch.Generator().manual_seed(1)
    shards = {
        "model-00001-of-00002.safetensors": {"a.weight": torch.randn(32, 8, generator=g).bfloat16(), "a.bias": torch.zeros(32)},
        "model-00002-of-00002.safetensors": {"b.weight": torch.randn(8, 32, generator=g).half(), "n": torch.arange(5)},
    }
    weight_map = {}
    for fname, tensors in shards.items():
        safetensors.torch.save_file(tensors, tmp_path / fname, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, fname))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return {k: v for t in shards.values() for k, v in t.items()}


@pytest.mark.parametrize("source", ["dir", "index"])
def test_sharded_round_trip(tmp_path, source):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    expected = checkpoint(ckpt)
    src = ckpt if source == "dir" else ckpt / "model.safetensors.index.json"
    entries = convert_to_hct(src, tmp_path / "m.hct", workers=2)
    assert sorted(e.name for e in entries) == sorted(expected)
    loaded = load_file(tmp_path / "m.hct")
    for name, t in expected.items():
        assert torch.equal(loaded[name], t)
    convert_to_safetensors(tmp_path / "m.hct", tmp_path / "back.safetensors")
    back = safetensors.torch.load_file(tmp_path / "back.safetensors")
    assert back.keys() == expected.keys()
    for name, t in expected.items():
        assert torch.equal(back[name], t)
    with safetensors.safe_open(tmp_path / "back.safetensors", "pt") as f:
        assert f.metadata() == {"format": "pt"}


def test_non_safetensors_input(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(FormatError, match="not a safetensors file"):
        convert_to_hct(tmp_path / "x.safetensors", tmp_path / "o.hct")
    (tmp_path / "y.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(FormatError):
        convert_to_hct(tmp_path / "y.safetensors", tmp_path / "o.hct")
    assert not (tmp_path / "o.hct").exists()
    with pytest.raises(FileNotFoundError):
        convert_to_hct(tmp_path / "nothing", tmp_path / "o.hct")


def test_interrupted_conversion_leaves_no_file(tmp_path, monkeypatch):
    safetensors.torch.save_file({f"t{i}": torch.randn(16, 16) for i in range(6)}, tmp_path / "m.safetensors")
    (tmp_path / "out.hct").write_bytes(b"previous")
    import holotensor.api.writing as writing

    calls = {"n": 0}
    real = writing.encode_tensor

    def flaky(tensor, config, **kw):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(tensor, config, **kw)

    monkeypatch.setattr(writing, "encode_tensor", flaky)
    with pytest.raises(KeyboardInterrupt):
        convert_to_hct(tmp_path / "m.safetensors", tmp_path / "out.hct", workers=1)
    assert (tmp_path / "out.hct").read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors", "out.hct"]

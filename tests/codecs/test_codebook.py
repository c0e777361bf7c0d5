"""The codebook codec: fragments, progressive prefixes, validation, bits per weight, file round trip."""

from __future__ import annotations

import pytest
import torch

from holotensor.analysis.metrics import rel_l2
from holotensor.codecs import vq_math as vm
from holotensor.codecs.base import TensorSpec, codec_from_dict, get_codec
from holotensor.codecs.codebook import CodebookConfig
from holotensor.codecs.pipeline import encode_tensor
from holotensor.dtypes import from_torch
from holotensor.errors import DecodeError

CONFIGS = [
    CodebookConfig(dim=4, bits=6, codebooks=2, iters=4),
    CodebookConfig(dim=8, bits=9, codebooks=1, iters=3, scale=None, coding="raw"),
    CodebookConfig(dim=3, bits=4, codebooks=3, iters=3, beam=3),
]


def _spec(t: torch.Tensor) -> TensorSpec:
    return TensorSpec(from_torch(t.dtype), tuple(t.shape))


def _views(enc) -> list[memoryview]:
    return [memoryview(f.data) for f in enc.fragments]


def _weights(shape=(24, 50), seed=0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_registered_and_config_round_trips() -> None:
    assert get_codec("codebook") is CodebookConfig
    for cfg in CONFIGS:
        assert codec_from_dict("codebook", 1, cfg.to_dict()) == cfg


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.describe())
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_round_trip_matches_vq_math(cfg: CodebookConfig, dtype: torch.dtype) -> None:
    w = _weights().to(dtype)
    enc = cfg.encode(w)
    side = 2 if cfg.scale == "channel" else 1
    roles = ["codebooks"] + (["scales"] if side == 2 else []) + [f"codes {m}" for m in range(cfg.codebooks)]
    assert [f.role for f in enc.fragments] == roles
    assert all(f.coding == cfg.coding for f in enc.fragments)
    out = cfg.decode(_views(enc), enc.params, _spec(w))
    assert out.dtype == dtype and out.shape == w.shape
    expected = cfg.quantize(w).dequantize().to(dtype)
    assert torch.equal(out, expected)
    assert rel_l2(w.float(), out.float()) < 0.7


def test_prefixes_are_progressive() -> None:
    cfg = CodebookConfig(dim=4, bits=5, codebooks=3, iters=5)
    w = _weights((32, 64))
    enc = cfg.encode(w)
    views = _views(enc)
    assert cfg.min_fragments(enc.params, len(views)) == 3
    errs = [rel_l2(w, cfg.decode(views[:k], enc.params, _spec(w))) for k in range(3, 6)]
    assert errs[0] > errs[1] > errs[2]
    ct = cfg.quantize(w)
    assert torch.equal(cfg.decode(views[:3], enc.params, _spec(w)), ct.dequantize(stages=1))
    unscaled = CodebookConfig(dim=4, bits=5, codebooks=2, scale=None)
    assert unscaled.min_fragments({}, 3) == 2


def test_pipeline_measures_the_quality_curve() -> None:
    cfg = CodebookConfig(dim=4, bits=5, codebooks=2, iters=3)
    et = encode_tensor(_weights((16, 40)), cfg)
    assert [q.fragments for q in et.quality] == [3, 4]
    assert et.quality[0].rel_l2 > et.quality[1].rel_l2


def test_bits_per_weight_counts_everything() -> None:
    cfg = CodebookConfig(dim=8, bits=8, codebooks=2)
    spec = TensorSpec(from_torch(torch.float32), (384, 1536))
    # codes 2*8/8 + codebooks 2*256*8*16 bits + scales 384*16 bits, over 384*1536 weights
    expected = 2.0 + (2 * 256 * 8 * 16 + 384 * 16) / (384 * 1536)
    assert cfg.bits_per_weight(spec, {"entries": 256}) == pytest.approx(expected)
    enc = cfg.encode(_weights((16, 64)))
    total = sum(len(f.data) for f in enc.fragments)
    spec_small = TensorSpec(from_torch(torch.float32), (16, 64))
    assert cfg.bits_per_weight(spec_small, enc.params) == pytest.approx(8 * total / (16 * 64))
    assert enc.params == {"entries": 128}  # 16 * 8 vectors: fewer than 2^8 entries are kept
    assert cfg.bits_per_weight(spec_small, enc.params, stored_bytes=100) == pytest.approx(800 / 1024)
    # padding: 10 columns in groups of 8 take 2 groups per row
    assert cfg.payload_sizes((3, 10), 4)[-1] == vm.packed_codes_size(6, 8)


def test_wide_codes_round_trip() -> None:
    cfg = CodebookConfig(dim=2, bits=12, codebooks=1, iters=2)
    w = _weights((20, 100))  # 1000 vectors: 1000 entries of a 12-bit codebook
    enc = cfg.encode(w)
    assert enc.params["entries"] == 1000
    out = cfg.decode(_views(enc), enc.params, _spec(w))
    assert rel_l2(w, out) < 0.02


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dim": 0},
        {"dim": 65},
        {"bits": 0},
        {"bits": 17},
        {"codebooks": 0},
        {"codebooks": 9},
        {"iters": -1},
        {"beam": 0},
        {"scale": "tensor"},
        {"seed": -1},
        {"coding": ""},
        {"bits": True},
    ],
)
def test_config_rejects_bad_settings(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        CodebookConfig(**kwargs)


def test_from_dict_rejects_bad_settings_as_decode_error() -> None:
    with pytest.raises(DecodeError):
        codec_from_dict("codebook", 1, {"dim": 100})
    with pytest.raises(DecodeError):
        codec_from_dict("codebook", 1, {"nonsense": 1})


@pytest.mark.parametrize(
    "w", [torch.empty(0, 8), torch.tensor([[1.0, float("nan")]]), torch.tensor([1.0, float("-inf")])]
)
def test_encode_rejects_empty_and_non_finite(w: torch.Tensor) -> None:
    with pytest.raises(ValueError):
        CodebookConfig(dim=2, bits=2).encode(w)


def _encoded(cfg: CodebookConfig | None = None):
    cfg = cfg or CodebookConfig(dim=4, bits=4, codebooks=2, iters=2)
    w = _weights((8, 16))
    enc = cfg.encode(w)
    return cfg, enc, _views(enc), _spec(w)


def test_decode_rejects_wrong_sizes_and_counts() -> None:
    cfg, enc, views, spec = _encoded()
    for i in range(len(views)):
        bad = list(views)
        bad[i] = memoryview(bytes(views[i])[:-1])
        with pytest.raises(DecodeError, match="bytes") as info:
            cfg.decode(bad, enc.params, spec)
        assert info.value.fragment == i
    with pytest.raises(DecodeError, match="fragments"):
        cfg.decode(views[:2], enc.params, spec)
    with pytest.raises(DecodeError, match="fragments"):
        cfg.decode([*views, views[-1]], enc.params, spec)
    with pytest.raises(DecodeError, match="bytes"):
        cfg.decode(views, enc.params, TensorSpec(spec.dtype, (8, 20)))
    with pytest.raises(DecodeError, match="floating"):
        cfg.decode(views, enc.params, TensorSpec(from_torch(torch.int32), spec.shape))


@pytest.mark.parametrize("entries", [0, 17, "4", None, True])
def test_decode_rejects_bad_params(entries) -> None:
    cfg, _, views, spec = _encoded()
    with pytest.raises(DecodeError, match="entries"):
        cfg.decode(views, {"entries": entries}, spec)


def test_decode_rejects_codes_beyond_the_codebook() -> None:
    cfg = CodebookConfig(dim=4, bits=4, codebooks=1, iters=2)
    w = _weights((2, 8))  # 4 vectors: a 4-entry codebook addressed by 4-bit codes
    enc = cfg.encode(w)
    assert enc.params == {"entries": 4}
    views = _views(enc)
    views[2] = memoryview(vm.pack_codes(torch.tensor([0, 1, 2, 9]), 4).numpy().tobytes())
    with pytest.raises(DecodeError, match="beyond") as info:
        cfg.decode(views, enc.params, _spec(w))
    assert info.value.fragment == 2
    views[2] = memoryview(vm.pack_codes(torch.tensor([3, 2, 1, 0]), 4).numpy().tobytes())
    assert cfg.decode(views, enc.params, _spec(w)).shape == (2, 8)


def test_decode_rejects_non_finite_side_data() -> None:
    cfg, enc, views, spec = _encoded()
    nan = torch.tensor([float("nan")], dtype=torch.float16).view(torch.uint8).numpy().tobytes()
    for i in (0, 1):
        bad = list(views)
        bad[i] = memoryview(nan + bytes(views[i])[2:])
        with pytest.raises(DecodeError, match="NaN") as info:
            cfg.decode(bad, enc.params, spec)
        assert info.value.fragment == i


def test_decode_rejects_overflow_of_the_target_dtype() -> None:
    cfg = CodebookConfig(dim=2, bits=2, codebooks=1, iters=1)
    w = torch.full((2, 4), 1000.0)
    enc = cfg.encode(w)
    views = _views(enc)
    assert len(views[0]) == 16  # four entries of two fp16 values
    views[0] = memoryview(torch.full((8,), 1000.0, dtype=torch.float16).view(torch.uint8).numpy().tobytes())
    with pytest.raises(DecodeError, match="overflow"):  # scales 1000 times entries 1000: beyond fp16
        cfg.decode(views, enc.params, TensorSpec(from_torch(torch.float16), (2, 4)))
    assert cfg.decode(views, enc.params, _spec(w)).max() == pytest.approx(1e6, rel=1e-3)


def test_encode_quantized_checks_the_config() -> None:
    ct = vm.quantize(_weights((4, 16)), dim=4, bits=4, stages=2)
    with pytest.raises(ValueError, match="does not match"):
        CodebookConfig(dim=4, bits=4, codebooks=1).encode_quantized(ct)
    enc = CodebookConfig(dim=4, bits=4, codebooks=2).encode_quantized(ct)
    assert len(enc.fragments) == 4


def test_save_and_load_file_round_trip(tmp_path) -> None:
    from holotensor.api import load_file, save_file

    cfg = CodebookConfig(dim=4, bits=6, codebooks=2, iters=3)
    w = _weights((32, 48))
    path = tmp_path / "w.hct"
    save_file({"w": w}, path, policy={"w": cfg})
    ct = cfg.quantize(w)
    assert torch.equal(load_file(path)["w"], ct.dequantize())
    assert torch.equal(load_file(path, max_fragments=3)["w"], ct.dequantize(stages=1))


def test_gpu_launcher_agrees_with_the_cpu_decode() -> None:
    """The Triton path decode() takes on CUDA, run here through the interpreter on CPU tensors."""
    from holotensor.codecs.codebook import triton_decoder

    launcher = triton_decoder()
    assert launcher is not None
    ct = CodebookConfig(dim=4, bits=5, codebooks=2, iters=2).quantize(_weights((6, 10)))  # padded groups
    got = launcher(ct.codes, ct.codebooks, ct.scales, cols=10)
    assert torch.equal(got, ct.dequantize())

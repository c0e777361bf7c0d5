"""The lossless codec: bit-exact round trips through the entropy stage for every dtype, shape and
bit pattern, the layouts each level picks, and decode-side validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from holotensor.codecs.base import TensorSpec, codec_from_dict, get_codec
from holotensor.codecs.lossless import LosslessConfig
from holotensor.dtypes import dtype_info, from_torch, supported_dtypes
from holotensor.entropy.base import get_coder
from holotensor.errors import DecodeError

_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _round_trip(cfg: LosslessConfig, t: torch.Tensor) -> torch.Tensor:
    enc = cfg.encode(t)
    assert enc.params["layout"] == cfg.layout_for(from_torch(t.dtype)).name
    payloads = []
    for frag in enc.fragments:
        coder = get_coder(frag.coding)
        raw = memoryview(frag.data).nbytes
        stored, params = coder.encode(memoryview(frag.data), frag.coding_options)
        coder.check(params, len(stored), raw)
        payloads.append(memoryview(coder.decode(memoryview(stored), params, raw)))
    return cfg.decode(payloads, enc.params, TensorSpec(from_torch(t.dtype), tuple(t.shape)))


def _bits(t: torch.Tensor) -> bytes:
    if t.numel() == 0:
        return b""
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _random_bits(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    size = torch.empty((), dtype=dtype).element_size()
    n = int(np.prod(shape, dtype=np.int64))
    g = torch.Generator().manual_seed(seed)
    raw = torch.randint(0, 256, (n * size,), dtype=torch.uint8, generator=g)
    if dtype == torch.bool:
        raw = raw & 1
    return raw.view(_VIEW[size]).view(dtype).reshape(shape)


_DTYPES = [dtype_info(n).torch_dtype for n in supported_dtypes()]
_SHAPES = [(), (0,), (0, 5), (1,), (7,), (3, 5, 7), (1000, 3)]


def test_registered() -> None:
    assert get_codec("lossless") is LosslessConfig
    cfg = codec_from_dict("lossless", 1, {"level": "max", "frame_size": 4096, "frame_checksum": False})
    assert cfg == LosslessConfig(level="max", frame_size=4096)
    assert LosslessConfig.lossless and not LosslessConfig.progressive


@pytest.mark.parametrize("level", ["default", "max"])
@pytest.mark.parametrize("dtype", _DTYPES, ids=str)
@pytest.mark.parametrize("shape", _SHAPES, ids=str)
def test_random_bit_patterns_round_trip(level: str, dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    t = _random_bits(shape, dtype, seed=len(shape))
    out = _round_trip(LosslessConfig(level=level), t)
    assert out.dtype == dtype and tuple(out.shape) == shape
    assert _bits(out) == _bits(t)


@pytest.mark.parametrize("dtype", [d for d in _DTYPES if d.is_floating_point], ids=str)
def test_special_float_values(dtype: torch.dtype) -> None:
    finfo = torch.finfo(dtype)
    values = [0.0, -0.0, 1.0, -1.0, finfo.max, -finfo.max, finfo.tiny, finfo.smallest_normal / 2, finfo.eps]
    if dtype not in (torch.float8_e4m3fn,):
        values += [float("inf"), float("-inf")]
    t = torch.tensor(values, dtype=torch.float64).to(dtype)
    nan = torch.tensor([float("nan")], dtype=torch.float64).to(dtype)
    size = t.element_size()
    # every NaN payload of the top byte: sign and exponent all ones, assorted mantissas
    payloads = (
        torch.tensor([0xFF, 0x7F, 0xFE, 0x81], dtype=torch.uint8).repeat_interleave(size).view(_VIEW[size])
    )
    t = torch.cat([t, nan, payloads.view(dtype)])
    for level in ("default", "max"):
        assert _bits(_round_trip(LosslessConfig(level=level), t)) == _bits(t)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, torch.int16], ids=str)
@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_frame_boundaries(dtype: torch.dtype, delta: int) -> None:
    frame = 1024
    t = _random_bits((3 * frame + delta,), dtype, seed=delta + 5)
    cfg = LosslessConfig(frame_size=frame)
    enc = cfg.encode(t)
    assert all(f.coding_options["frame_size"] == frame for f in enc.fragments)
    assert _bits(_round_trip(cfg, t)) == _bits(t)


def test_non_contiguous_inputs() -> None:
    base = torch.randn(40, 30).to(torch.bfloat16)
    views = (
        base.t(),
        base[::3, 1::2],
        base[:, 5],
        base[:, :1].expand(40, 30),
        base.unsqueeze(0).transpose(0, 2),
    )
    for view in views:
        assert not view.is_contiguous()
        out = _round_trip(LosslessConfig(), view)
        assert out.shape == view.shape and _bits(out) == _bits(view)


def test_bf16_weights_compress_near_the_field_bound() -> None:
    g = torch.Generator().manual_seed(0)
    t = (torch.randn(256, 1024, generator=g) * 0.05).to(torch.bfloat16)
    sizes = {}
    for level in ("default", "max"):
        enc = LosslessConfig(level=level).encode(t)
        sizes[level] = sum(
            len(get_coder("zstd").encode(memoryview(f.data), f.coding_options)[0]) for f in enc.fragments
        )
    ratio_default = t.numel() * 2 / sizes["default"]
    ratio_max = t.numel() * 2 / sizes["max"]
    assert ratio_default > 1.45 and ratio_max > ratio_default


def test_layouts_per_level() -> None:
    d, m = LosslessConfig(), LosslessConfig(level="max")
    assert d.layout_for(dtype_info("BF16")).name == "float16"
    assert m.layout_for(dtype_info("BF16")).name == "float16-s2"
    assert d.layout_for(dtype_info("F32")).name == "float32"
    assert m.layout_for(dtype_info("F32")).name == "float32-s2"
    assert d.layout_for(dtype_info("F16")).name == "float16"
    assert d.layout_for(dtype_info("F8_E4M3")).name == "bytes1"
    assert d.layout_for(dtype_info("I64")).name == "bytes8"
    assert d.layout_for(dtype_info("F64")).name == "bytes8"
    enc = d.encode(torch.zeros(3, dtype=torch.bfloat16))
    assert [f.role for f in enc.fragments] == ["exponent", "sign_mantissa"]
    assert all(f.coding == "zstd" and not f.coding_options["checksum"] for f in enc.fragments)
    assert LosslessConfig(frame_checksum=True).encode(torch.zeros(3)).fragments[0].coding_options["checksum"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"level": "fast"},
        {"frame_size": 0},
        {"frame_size": 1 << 30},
        {"frame_size": 2.0},
        {"frame_checksum": 1},
    ],
)
def test_config_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        LosslessConfig(**kwargs)


def test_unsupported_dtype() -> None:
    with pytest.raises(TypeError):
        LosslessConfig().encode(torch.zeros(2, dtype=torch.complex64))


def test_decode_validation() -> None:
    cfg = LosslessConfig()
    spec = TensorSpec(dtype_info("BF16"), (2, 3))
    good = [memoryview(bytes(6)), memoryview(bytes(6))]
    assert cfg.decode(good, {"layout": "float16"}, spec).shape == (2, 3)
    bad_cases = [
        (good, {"layout": "float99"}, spec, "unknown lossless plane layout"),
        (good, {"layout": 3}, spec, "unknown lossless plane layout"),
        (good, {}, spec, "params"),
        (good, {"layout": "float16", "x": 1}, spec, "params"),
        (good, {"layout": "float32"}, spec, "4-byte"),
        (good[:1], {"layout": "float16"}, spec, "needs 2 fragments"),
        ([good[0], memoryview(bytes(5))], {"layout": "float16"}, spec, "expected 6"),
    ]
    for payloads, params, sp, match in bad_cases:
        with pytest.raises(DecodeError, match=match):
            cfg.decode(payloads, params, sp)


def test_decode_names_the_fragment() -> None:
    spec = TensorSpec(dtype_info("F32"), (4,))
    payloads = [memoryview(bytes(4))] * 3 + [memoryview(bytes(3))]
    with pytest.raises(DecodeError) as info:
        LosslessConfig().decode(payloads, {"layout": "float32"}, spec)
    assert info.value.fragment == 3


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from(_DTYPES),
    shape=st.lists(st.integers(0, 9), max_size=3).map(tuple),
    seed=st.integers(0, 2**31 - 1),
    level=st.sampled_from(["default", "max"]),
    frame_size=st.sampled_from([None, 7, 64]),
)
def test_round_trip_property(
    dtype: torch.dtype, shape: tuple[int, ...], seed: int, level: str, frame_size
) -> None:
    t = _random_bits(shape, dtype, seed=seed)
    out = _round_trip(LosslessConfig(level=level, frame_size=frame_size), t)
    assert out.dtype == t.dtype and out.shape == t.shape and _bits(out) == _bits(t)

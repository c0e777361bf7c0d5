"""The blockquant codec: fragments, round trips, size validation, bits per weight."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from holotensor.analysis.metrics import rel_l2, sqnr_db
from holotensor.codecs import quant_math as qm
from holotensor.codecs.base import TensorSpec, codec_from_dict, get_codec
from holotensor.codecs.blockquant import BlockQuantConfig
from holotensor.dtypes import from_torch
from holotensor.errors import DecodeError

CONFIGS = [
    BlockQuantConfig(),
    BlockQuantConfig(bits=2, group_size=32, symmetric=True),
    BlockQuantConfig(bits=3, group_size=64, scale_dtype="bf16"),
    BlockQuantConfig(bits=8, group_size=None, symmetric=True, coding="raw"),
    BlockQuantConfig(bits=5, group_size=256, scale_search="mse"),
]


def _spec(t: torch.Tensor) -> TensorSpec:
    return TensorSpec(from_torch(t.dtype), tuple(t.shape))


def _views(enc) -> list[memoryview]:
    return [memoryview(f.data) for f in enc.fragments]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.describe())
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_round_trip_matches_quant_math(cfg, dtype):
    torch.manual_seed(cfg.bits)
    w = torch.randn(24, 200).to(dtype)
    enc = cfg.encode(w)
    assert [f.role for f in enc.fragments] == ["codes", "scales"] + ([] if cfg.symmetric else ["zeros"])
    assert all(f.coding == cfg.coding for f in enc.fragments)
    assert [len(f.data) for f in enc.fragments] == cfg.payload_sizes(w.shape)
    out = cfg.decode(_views(enc), enc.params, _spec(w))
    assert out.dtype == dtype and out.shape == w.shape
    c, s, z = qm.quantize(
        w, cfg.bits, cfg.group_size, cfg.symmetric, cfg.scale_dtype, scale_search=cfg.scale_search
    )
    expected = qm.dequantize(c, s, z, bits=cfg.bits, group_size=cfg.group_size, dtype=dtype)
    assert torch.equal(out, expected)
    assert sqnr_db(w, out) > 5 * cfg.bits - 7


def test_payload_layout_is_packed_codes_then_le_scales():
    cfg = BlockQuantConfig(bits=4, group_size=32, symmetric=True)
    w = torch.zeros(1, 32)
    w[0, 0], w[0, 1] = 7.0, -7.0
    enc = cfg.encode(w)
    codes = bytes(enc.fragments[0].data)
    assert len(codes) == 16 and codes[0] == (15 | (1 << 4)) and set(codes[1:]) == {0x88}
    assert bytes(enc.fragments[1].data) == b"\x00\x3c"  # scale 1.0 in fp16, little-endian


@pytest.mark.parametrize("cfg", CONFIGS[:3], ids=lambda c: c.describe())
def test_truncated_or_padded_payload_raises_decode_error(cfg):
    w = torch.randn(8, 96)
    enc = cfg.encode(w)
    for i in range(len(enc.fragments)):
        views = _views(enc)
        views[i] = views[i][:-1]
        with pytest.raises(DecodeError) as info:
            cfg.decode(views, enc.params, _spec(w))
        assert info.value.fragment == i
        views[i] = memoryview(bytes(enc.fragments[i].data) + b"\0")
        with pytest.raises(DecodeError):
            cfg.decode(views, enc.params, _spec(w))


def test_wrong_fragment_count_and_spec_mismatch():
    cfg = BlockQuantConfig()
    w = torch.randn(4, 128)
    enc = cfg.encode(w)
    with pytest.raises(DecodeError, match="fragments"):
        cfg.decode(_views(enc)[:2], enc.params, _spec(w))
    with pytest.raises(DecodeError):
        cfg.decode(_views(enc), enc.params, TensorSpec(from_torch(torch.float32), (8, 128)))
    with pytest.raises(DecodeError, match="floating"):
        cfg.decode(_views(enc), enc.params, TensorSpec(from_torch(torch.int32), (4, 128)))


def test_non_finite_side_data_raises_decode_error():
    cfg = BlockQuantConfig(group_size=32, symmetric=True)
    w = torch.randn(2, 64)
    enc = cfg.encode(w)
    views = _views(enc)
    views[1] = memoryview(b"\x00\x7c" + bytes(enc.fragments[1].data)[2:])  # +inf in fp16
    with pytest.raises(DecodeError, match="NaN or Inf") as info:
        cfg.decode(views, enc.params, _spec(w))
    assert info.value.fragment == 1


def test_empty_and_scalar_tensors():
    cfg = BlockQuantConfig()
    for w in (torch.empty(0, 64), torch.empty(3, 0), torch.tensor(1.5)):
        enc = cfg.encode(w)
        out = cfg.decode(_views(enc), enc.params, _spec(w))
        assert out.shape == w.shape
        assert torch.allclose(out, w, atol=0.01)


def test_bits_per_weight_includes_side_data():
    spec = TensorSpec(from_torch(torch.bfloat16), (64, 256))
    assert BlockQuantConfig(bits=4, group_size=128).bits_per_weight(spec) == pytest.approx(4 + 32 / 128)
    assert BlockQuantConfig(bits=4, group_size=128, symmetric=True).bits_per_weight(spec) == pytest.approx(
        4 + 16 / 128
    )
    assert BlockQuantConfig(bits=3, group_size=None, symmetric=True).bits_per_weight(spec) == pytest.approx(
        3 + 16 / 256
    )
    assert BlockQuantConfig().bits_per_weight(spec, {}, stored_bytes=8192) == pytest.approx(4.0)
    assert BlockQuantConfig().bits_per_weight(TensorSpec(from_torch(torch.float32), (0, 4))) == 0.0


def test_config_registry_and_dict_round_trip():
    assert get_codec("blockquant") is BlockQuantConfig
    cfg = BlockQuantConfig(bits=3, group_size=None, symmetric=True, scale_dtype="bf16")
    assert codec_from_dict("blockquant", 1, cfg.to_dict()) == cfg
    assert not BlockQuantConfig.lossless and not BlockQuantConfig.progressive
    with pytest.raises(DecodeError):
        BlockQuantConfig.from_dict({"bits": 12})
    with pytest.raises(DecodeError):
        BlockQuantConfig.from_dict({"bogus": 1})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bits": 1},
        {"bits": 9},
        {"group_size": 8},
        {"scale_dtype": "fp8"},
        {"scale_search": "lsq"},
        {"coding": ""},
    ],
)
def test_bad_config(kwargs):
    with pytest.raises(ValueError):
        BlockQuantConfig(**kwargs)


def test_encode_rejects_nan():
    w = torch.randn(2, 32)
    w[0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        BlockQuantConfig().encode(w)


def test_encode_quantized_checks_match():
    qt = BlockQuantConfig(bits=3).quantize(torch.randn(2, 128))
    with pytest.raises(ValueError, match="does not match"):
        BlockQuantConfig(bits=4).encode_quantized(qt)


def test_rtn_quality_numbers_on_gaussian():
    torch.manual_seed(0)
    w = torch.randn(512, 1024)
    cfg = BlockQuantConfig(bits=4, group_size=128)
    enc = cfg.encode(w)
    r = rel_l2(w, cfg.decode(_views(enc), enc.params, _spec(w)))
    assert 0.09 < r < 0.105


@settings(max_examples=40, deadline=None)
@given(data=st.data(), cfg=st.sampled_from(CONFIGS[:4]))
def test_arbitrary_payload_bytes_never_crash(data, cfg):
    shape = (data.draw(st.integers(0, 3)), data.draw(st.integers(0, 70)))
    sizes = cfg.payload_sizes(shape)
    views = [memoryview(data.draw(st.binary(min_size=n, max_size=n))) for n in sizes]
    if data.draw(st.booleans()) and sizes[0]:
        views[0] = views[0][: data.draw(st.integers(0, sizes[0] - 1))]
    spec = TensorSpec(from_torch(torch.float32), shape)
    try:
        out = cfg.decode(views, {}, spec)
    except DecodeError:
        return
    assert out.shape == shape and bool(torch.isfinite(out).all())


def test_decoded_overflow_raises_decode_error():
    cfg = BlockQuantConfig(bits=4, group_size=32, symmetric=True, scale_dtype="bf16")
    w = torch.randn(1, 32)
    w[0, 0] = 8.0
    enc = cfg.encode(w)
    views = _views(enc)
    views[1] = memoryview(torch.tensor([3e38], dtype=torch.bfloat16).view(torch.int16).numpy().tobytes())
    with pytest.raises(DecodeError, match="overflow"):
        cfg.decode(views, enc.params, _spec(w))
    big = BlockQuantConfig(bits=4, group_size=32, symmetric=True)
    enc = big.encode(w)
    views = _views(enc)
    views[1] = memoryview(torch.tensor([60000.0], dtype=torch.float16).view(torch.int16).numpy().tobytes())
    assert big.decode(views, enc.params, _spec(w)).abs().max() > 65504  # fine in float32
    with pytest.raises(DecodeError, match="overflow"):
        big.decode(views, enc.params, TensorSpec(from_torch(torch.float16), (1, 32)))


@pytest.mark.parametrize("symmetric", [False, True])
def test_bit_plane_prefixes(tmp_path, symmetric):
    import holotensor
    from holotensor.dtypes import dtype_info

    w = torch.randn(48, 256, generator=torch.Generator().manual_seed(7))
    cfg = BlockQuantConfig(bits=8, group_size=64, symmetric=symmetric, planes=(4, 2, 2))
    whole = BlockQuantConfig(bits=8, group_size=64, symmetric=symmetric)
    holotensor.save_file({"w": w}, tmp_path / "w.hct", codec=cfg)
    with holotensor.safe_open(tmp_path / "w.hct") as f:
        entry = f.entry("w")
        side = 1 if symmetric else 2
        assert [fr.role for fr in entry.fragments][side:] == ["codes[7:4]", "codes[3:2]", "codes[1:0]"]
        curve = entry.quality
        assert [q.fragments for q in curve] == [side + 1, side + 2, side + 3]
        assert curve[0].rel_l2 > curve[1].rel_l2 > curve[2].rel_l2
        full = f.get_tensor("w")
        assert torch.equal(full, whole.decode(
            [memoryview(p.data).cast("B") for p in whole.encode(w).fragments], {}, TensorSpec(dtype_info("F32"), (48, 256))
        ))
        coarse = f.get_tensor("w", fragments=side + 1)
        assert rel_l2(w, coarse) == pytest.approx(curve[0].rel_l2, rel=1e-6)
        with pytest.raises(ValueError, match="decodes from"):
            f.get_tensor("w", fragments=side)
    with pytest.raises(ValueError, match="planes"):
        BlockQuantConfig(bits=4, planes=(2, 1))


def test_device_dequantize_path_matches_torch():
    """The Triton path load_file(device="cuda") takes; under the interpreter on CPU tensors here."""
    pytest.importorskip("triton")
    from holotensor.codecs.blockquant import _dequantize_on_device

    cfg = BlockQuantConfig(bits=3, group_size=32)
    qt = cfg.quantize(torch.randn(5, 96, generator=torch.Generator().manual_seed(2)))
    assert torch.equal(_dequantize_on_device(qt), qt.dequantize(torch.float32))

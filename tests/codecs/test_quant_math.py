"""Groupwise quantization math and bit packing."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from holotensor.analysis.metrics import rel_l2
from holotensor.codecs import quant_math as qm

CONFIGS = [
    (bits, gs, sym) for bits in (2, 3, 4, 5, 8) for gs in (32, 100, 128, 256, None) for sym in (True, False)
]


def _grouped_params(w: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None, gs: int | None):
    """Scale/zero broadcast back to every element of ``w`` (the test's own, independent view)."""
    k = w.shape[-1]
    g = k if gs is None else gs
    idx = torch.arange(k) // g
    s = scales.float()[..., idx]
    z = None if zeros is None else zeros.float()[..., idx]
    return s, z


@pytest.mark.parametrize("bits,gs,sym", CONFIGS)
@pytest.mark.parametrize("scale_dtype", ["fp16", "bf16"])
def test_error_within_half_step_for_in_range_values(bits, gs, sym, scale_dtype):
    torch.manual_seed(bits * 7 + (gs or 1))
    w = torch.randn(6, 300) * 0.05
    codes, scales, zeros = qm.quantize(w, bits, gs, sym, scale_dtype)
    assert codes.dtype == torch.uint8 and codes.shape == w.shape
    assert int(codes.max()) < 2**bits
    assert scales.dtype == qm.SCALE_DTYPES[scale_dtype]
    assert scales.shape == (6, math.ceil(300 / (gs or 300)))
    assert (zeros is None) == sym
    deq = qm.dequantize(codes, scales, zeros, bits=bits, group_size=gs)
    s, z = _grouped_params(w, scales, zeros, gs)
    lo, hi = qm.code_range(bits, sym)
    u = w / s if z is None else (w - z) / s
    in_range = (u >= lo - 0.5) & (u <= hi + 0.5)
    err = (deq - w).abs()
    assert bool((err[in_range] <= s[in_range] / 2 * (1 + 1e-5) + 1e-12).all())
    # everything else is clipped by at most about one step (scale/zero rounding to 16 bits)
    assert bool((err <= 1.01 * s + 1e-12).all())
    assert in_range.float().mean() > 0.97


def test_padding_rule_last_group_shorter():
    """130 values in groups of 128: the second group holds 2 values and its range is theirs."""
    w = torch.zeros(1, 130)
    w[0, :128] = torch.linspace(-100.0, 100.0, 128)
    w[0, 128:] = torch.tensor([0.25, 0.5])
    codes, scales, zeros = qm.quantize(w, 4, 128, symmetric=True)
    assert scales.shape == (1, 2)
    assert float(scales[0, 1]) == pytest.approx(0.5 / 7, rel=1e-3)
    deq = qm.dequantize(codes, scales, zeros, bits=4, group_size=128)
    assert torch.allclose(deq[0, 128:], w[0, 128:], atol=float(scales[0, 1]) / 2)


@pytest.mark.parametrize("symmetric", [True, False])
def test_known_values_symmetric_and_asymmetric(symmetric):
    w = torch.tensor([[-1.0, -0.5, 0.0, 0.5, 1.0, 2.0] + [0.0] * 26])
    codes, scales, zeros = qm.quantize(w, 3, 32, symmetric)
    if symmetric:
        assert float(scales[0, 0]) == pytest.approx(2.0 / 3, rel=1e-3)  # max|w| / (2^(3-1) - 1)
        assert codes[0, :6].tolist() == [2, 3, 4, 5, 6, 7]  # offset-binary round(w / s) + 4, s = fp16(2/3)
    else:
        assert float(zeros[0, 0]) == -1.0
        assert float(scales[0, 0]) == pytest.approx(3.0 / 7, rel=1e-3)  # (max - min) / (2^3 - 1)
        assert codes[0, :6].tolist() == [0, 1, 2, 4, 5, 7]  # round((w + 1) / fp16(3/7))


def test_mse_search_not_worse_than_minmax_and_better_at_low_bits():
    torch.manual_seed(0)
    w = torch.randn(64, 500)
    err = {}
    for bits in (2, 3, 4):
        for search in ("minmax", "mse"):
            c, s, z = qm.quantize(w, bits, 128, False, scale_search=search)
            err[bits, search] = rel_l2(w, qm.dequantize(c, s, z, bits=bits, group_size=128))
        assert err[bits, "mse"] <= err[bits, "minmax"]
    assert err[2, "mse"] < 0.8 * err[2, "minmax"]


def test_rtn_4bit_g128_gaussian_quality():
    torch.manual_seed(1)
    w = torch.randn(256, 1024)
    c, s, z = qm.quantize(w, 4, 128, symmetric=False)
    r = rel_l2(w, qm.dequantize(c, s, z, bits=4, group_size=128))
    assert 0.08 < r < 0.11


def test_higher_rank_and_scalar_and_1d():
    torch.manual_seed(2)
    w = torch.randn(3, 4, 70)
    c, s, z = qm.quantize(w, 8, 32, False)
    assert c.shape == w.shape and s.shape == (3, 4, 3)
    assert rel_l2(w, qm.dequantize(c, s, z, bits=8, group_size=32)) < 0.01
    v = torch.randn(40)
    c, s, z = qm.quantize(v, 4, None, True)
    assert s.shape == (1,)
    x = torch.tensor(3.0)
    c, s, z = qm.quantize(x, 4, None, True)
    assert c.shape == () and s.shape == (1,)
    assert float(qm.dequantize(c, s, z, bits=4, group_size=None)) == pytest.approx(3.0, rel=1e-3)


@pytest.mark.parametrize("shape", [(0,), (0, 64), (5, 0), (2, 0, 3)])
def test_empty_tensors(shape):
    w = torch.empty(shape)
    c, s, z = qm.quantize(w, 4, 32, False)
    assert c.shape == w.shape and c.numel() == 0 and s.numel() == 0 and z.numel() == 0
    assert qm.dequantize(c, s, z, bits=4, group_size=32).shape == w.shape
    assert qm.pack_bits(c, 4).numel() == 0


def test_constant_and_zero_groups_exact():
    w = torch.cat([torch.zeros(1, 64), torch.full((1, 64), 0.75)], dim=0)
    for sym in (True, False):
        c, s, z = qm.quantize(w, 4, 64, sym)
        deq = qm.dequantize(c, s, z, bits=4, group_size=64)
        assert torch.isfinite(s.float()).all() and bool((s.float() > 0).all())
        assert torch.allclose(deq, w, atol=1e-3)


def test_tiny_values_do_not_divide_by_zero():
    w = torch.full((1, 32), 1e-12)
    c, s, z = qm.quantize(w, 4, 32, True)
    deq = qm.dequantize(c, s, z, bits=4, group_size=32)
    assert torch.isfinite(deq).all() and (deq - w).abs().max() < 1e-7


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_rejected(bad):
    w = torch.randn(4, 32)
    w[1, 3] = bad
    with pytest.raises(ValueError, match="non-finite"):
        qm.quantize(w, 4, 32, True)


def test_scale_overflow_fp16_rejected_bf16_fine():
    w = torch.full((1, 32), 1e6)
    with pytest.raises(ValueError, match="overflows"):
        qm.quantize(w, 4, 32, True, "fp16")
    c, s, z = qm.quantize(w, 4, 32, True, "bf16")
    assert rel_l2(w, qm.dequantize(c, s, z, bits=4, group_size=32)) < 0.01


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bits": 1},
        {"bits": 9},
        {"bits": True},
        {"bits": 4.0},
        {"group_size": 16},
        {"group_size": 512},
        {"group_size": 0},
        {"scale_dtype": "fp32"},
    ],
)
def test_bad_arguments(kwargs):
    args = {"bits": 4, "group_size": 32, "symmetric": True, "scale_dtype": "fp16"} | kwargs
    with pytest.raises(ValueError):
        qm.quantize(torch.randn(2, 64), **args)


def test_integer_tensor_rejected():
    with pytest.raises(ValueError, match="floating"):
        qm.quantize(torch.ones(2, 32, dtype=torch.int32), 4, 32, True)


def test_quantize_with_matches_quantize_and_checks_shapes():
    torch.manual_seed(3)
    w = torch.randn(8, 96)
    c, s, z = qm.quantize(w, 5, 32, False)
    assert torch.equal(qm.quantize_with(w, s, z, 5, 32), c)
    with pytest.raises(ValueError, match="shape"):
        qm.quantize_with(w, s[:, :2], z[:, :2], 5, 32)


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 17, 1001])
def test_pack_unpack_round_trip(bits, n):
    g = torch.Generator().manual_seed(bits * 100 + n)
    codes = torch.randint(0, 2**bits, (n,), generator=g, dtype=torch.uint8)
    packed = qm.pack_bits(codes, bits)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(n * bits / 8)
    assert torch.equal(qm.unpack_bits(packed, bits, n), codes)


def _pack_reference(codes: list[int], bits: int) -> bytes:
    """Bit-by-bit little-endian packing, written for clarity."""
    out = bytearray((len(codes) * bits + 7) // 8)
    for i, c in enumerate(codes):
        for b in range(bits):
            if (c >> b) & 1:
                j = i * bits + b
                out[j // 8] |= 1 << (j % 8)
    return bytes(out)


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(1, 8), data=st.data())
def test_pack_matches_bitwise_reference(bits, data):
    codes = data.draw(st.lists(st.integers(0, 2**bits - 1), max_size=70))
    packed = qm.pack_bits(torch.tensor(codes, dtype=torch.uint8), bits)
    assert bytes(packed.tolist()) == _pack_reference(codes, bits)


def test_pack_golden_bytes():
    assert qm.pack_bits(torch.tensor([1, 2, 3], dtype=torch.uint8), 4).tolist() == [0x21, 0x03]
    # 3-bit: 5, 6, 7 -> bits 101 011 111 (LSB first) -> 0b11_110_101 = 0xF5, then 0b1 = 0x01
    assert qm.pack_bits(torch.tensor([5, 6, 7], dtype=torch.uint8), 3).tolist() == [0xF5, 0x01]
    assert qm.pack_bits(torch.tensor([1, 0, 1, 1, 0, 0, 0, 0, 1], dtype=torch.uint8), 1).tolist() == [
        0x0D,
        0x01,
    ]


def test_pack_rejects_bad_input():
    with pytest.raises(ValueError, match="fit"):
        qm.pack_bits(torch.tensor([16], dtype=torch.uint8), 4)
    with pytest.raises(ValueError, match="uint8"):
        qm.pack_bits(torch.tensor([1]), 4)
    with pytest.raises(ValueError):
        qm.pack_bits(torch.tensor([1], dtype=torch.uint8), 0)
    with pytest.raises(ValueError, match="need"):
        qm.unpack_bits(torch.zeros(3, dtype=torch.uint8), 4, 7)


def test_quantized_tensor_round_trip_and_validation():
    torch.manual_seed(4)
    w = torch.randn(10, 64)
    c, s, z = qm.quantize(w, 3, 32, False)
    qt = qm.QuantizedTensor.from_codes(c, s, z, 3, 32)
    assert qt.packed.numel() == qm.packed_size(640, 3)
    assert torch.equal(qt.codes(), c)
    assert torch.equal(qt.dequantize(), qm.dequantize(c, s, z, bits=3, group_size=32))
    with pytest.raises(ValueError):
        qm.QuantizedTensor(qt.packed[:-1], s, z, (10, 64), 3, 32)
    with pytest.raises(ValueError):
        qm.QuantizedTensor(qt.packed, s.float(), z.float(), (10, 64), 3, 32)

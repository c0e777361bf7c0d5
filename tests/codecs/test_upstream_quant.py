"""Upstream HCTN I4 / I8 block payloads: exact bytes."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from holotensor.codecs.base import TensorSpec
from holotensor.codecs.blockquant import BlockQuantConfig
from holotensor.codecs.upstream_quant import (
    decode_upstream_i8,
    decode_upstream_q4,
    encode_upstream_i8,
    encode_upstream_q4,
    quantized_from_upstream_q4,
    upstream_i8_size,
    upstream_q4_size,
)
from holotensor.dtypes import from_torch
from holotensor.errors import DecodeError


def test_q4_golden_small_vector():
    # One block: max|v| = 3.5 -> scale 0.5 (f16 0x3800); q = round_half_away(v / 0.5).
    v = torch.tensor([0.0, 0.5, -0.5, 3.5, -3.5, 0.25, -0.25, 1.0, 0.75])
    # q:  0, 1, -1, 7, -7, 1 (0.5 away from zero), -1, 2, 2 (1.5 -> 2)
    # nibble = q + 8: 8, 9, 7, 15, 1, 9, 7, 10, 10 -> bytes (low nibble first):
    # 0x98, 0xF7, 0x91, 0xA7, 0x0A (odd count: high nibble 0)
    expected = bytes.fromhex("0038") + bytes([0x98, 0xF7, 0x91, 0xA7, 0x0A])
    assert encode_upstream_q4(v) == expected
    out = decode_upstream_q4(expected, 9)
    assert out.tolist() == [0.0, 0.5, -0.5, 3.5, -3.5, 0.5, -0.5, 1.0, 1.0]


def test_q4_two_blocks_scales_first_then_nibbles():
    v = torch.cat([torch.full((32,), 7.0), torch.tensor([-14.0, 2.0])])
    data = encode_upstream_q4(v)
    assert len(data) == upstream_q4_size(34) == 4 + 17
    assert struct.unpack("<2e", data[:4]) == (1.0, 2.0)
    assert data[4:20] == bytes([0xFF]) * 16  # q = 7 -> nibble 15 everywhere
    assert data[20] == (1 | (9 << 4))  # -14/2 = -7 -> 1 ; 2/2 = 1 -> 9


def test_q4_rounds_half_away_from_zero():
    # scale = 7/7 = 1 ; 2.5 -> 3 and -2.5 -> -3 (away from zero; torch.round would give 2 and -2)
    v = torch.tensor([7.0, 2.5, -2.5, -7.0])
    assert encode_upstream_q4(v)[2:] == bytes([(15 | (11 << 4)), (5 | (1 << 4))])
    # all-tiny block -> scale 1.0
    assert encode_upstream_q4(torch.full((3,), 1e-11))[:2] == bytes.fromhex("003c")


def test_q4_scale_stored_as_f16_rne_but_quantized_with_f32():
    v = torch.tensor([1.0, 0.1], dtype=torch.float32)
    data = encode_upstream_q4(v)
    scale32 = np.float32(1.0) / np.float32(7.0)
    assert data[:2] == np.float16(scale32).tobytes()
    q = np.clip(np.trunc(np.float32(0.1) / scale32 + 0.5), -8, 7)
    assert data[2] == (15 | ((int(q) + 8) << 4))


def test_q4_random_round_trip_error_bound():
    torch.manual_seed(0)
    v = torch.randn(1000)
    out = decode_upstream_q4(encode_upstream_q4(v), 1000)
    scales = v.reshape(-1)[:992].reshape(31, 32).abs().amax(1) / 7
    assert (out[:992] - v[:992]).reshape(31, 32).abs().amax(1).le(scales * 0.5 + 1e-3).all()


def test_i8_golden_and_round_trip():
    v = torch.tensor([127.0, -127.0, 0.5, -0.5, 63.5])
    data = encode_upstream_i8(v)
    # scale 1.0; 0.5 -> 1 and -0.5 -> -1 (half away), 63.5 -> 64; two's complement int8
    assert data == bytes.fromhex("003c") + bytes([0x7F, 0x81, 0x01, 0xFF, 0x40])
    assert decode_upstream_i8(data, 5).tolist() == [127.0, -127.0, 1.0, -1.0, 64.0]
    torch.manual_seed(1)
    w = torch.randn(77)
    assert len(encode_upstream_i8(w)) == upstream_i8_size(77) == 6 + 77
    assert (decode_upstream_i8(encode_upstream_i8(w), 77) - w).abs().max() < 0.02


@pytest.mark.parametrize(
    "decode,encode", [(decode_upstream_q4, encode_upstream_q4), (decode_upstream_i8, encode_upstream_i8)]
)
def test_wrong_size_raises_decode_error(decode, encode):
    data = encode(torch.randn(40))
    with pytest.raises(DecodeError):
        decode(data[:-1], 40)
    with pytest.raises(DecodeError):
        decode(data + b"\0", 40)
    with pytest.raises(DecodeError):
        decode(data, 41)
    with pytest.raises(ValueError):
        decode(data, -1)
    assert decode(b"", 0).numel() == 0


def test_non_finite_input_rejected():
    with pytest.raises(ValueError):
        encode_upstream_q4(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError):
        encode_upstream_i8(torch.tensor([1e9]))


def test_q4_payload_is_a_blockquant_tensor_without_requantizing():
    torch.manual_seed(2)
    w = torch.randn(3, 96)
    data = encode_upstream_q4(w)
    qt = quantized_from_upstream_q4(data, (3, 96))
    assert torch.equal(qt.dequantize(), decode_upstream_q4(data, w.numel()).reshape(3, 96))
    cfg = BlockQuantConfig(bits=4, group_size=32, symmetric=True)
    enc = cfg.encode_quantized(qt)
    n_scale_bytes = 2 * (3 * 96 // 32)  # same bytes, fragments in (codes, scales) order
    assert bytes(enc.fragments[0].data) == data[n_scale_bytes:]
    assert bytes(enc.fragments[1].data) == data[:n_scale_bytes]
    spec = TensorSpec(from_torch(torch.float32), (3, 96))
    out = cfg.decode([memoryview(f.data) for f in enc.fragments], enc.params, spec)
    assert torch.equal(out, qt.dequantize())
    with pytest.raises(ValueError, match="multiple of 32"):
        quantized_from_upstream_q4(encode_upstream_q4(torch.randn(2, 40)), (2, 40))

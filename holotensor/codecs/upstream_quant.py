"""Upstream HCTN "I4" and "I8" block-quantized payloads, read and written byte for byte.

Upstream (haagenti's ``safetensors_to_int4_hct`` and friends) quantizes the *flattened* tensor in
blocks of 32 values and stores, little-endian::

    [f16 scale of block 0][f16 scale of block 1] ... [codes of all values]

I4 (as upstream writes it): ``scale = max|v| / 7`` in f32 (1.0 when ``max|v| <= 1e-10``), stored as
f16 (round to nearest even); ``q = clamp(round(v / scale), -8, 7)`` with the **f32** scale and
Rust's round-half-away-from-zero; each code is the nibble ``q + 8``, two per byte, low nibble
first, and an odd count leaves the last high nibble 0. Dequantized as ``(nibble - 8) * f16_scale``.

I8 is not written by upstream with scales; this module chooses the same layout with
``scale = max|v| / 127``, ``q = clamp(round(v / scale), -127, 127)`` stored as two's-complement
int8 (the signed reading upstream's Python binding uses for I8), dequantized as ``q * f16_scale``.

An I4 payload whose last dimension is a multiple of 32 is exactly a blockquant tensor
(``bits=4, group_size=32, symmetric=True, scale_dtype="fp16"``): the nibble ``q + 8`` is
blockquant's offset-binary code and the blocks are its groups, so
:func:`quantized_from_upstream_q4` converts without touching a value.

Non-finite scales in a payload (an upstream writer fed values beyond the f16 range) decode to
inf/NaN exactly as upstream would; the writers here refuse such input instead.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from holotensor.codecs.quant_math import QuantizedTensor, pack_bits, unpack_bits
from holotensor.errors import DecodeError

__all__ = [
    "UPSTREAM_BLOCK",
    "decode_upstream_i8",
    "decode_upstream_q4",
    "encode_upstream_i8",
    "encode_upstream_q4",
    "quantized_from_upstream_q4",
    "upstream_i8_size",
    "upstream_q4_size",
]

UPSTREAM_BLOCK = 32
_TINY = 1e-10


def _n_blocks(numel: int) -> int:
    return -(-numel // UPSTREAM_BLOCK)


def upstream_q4_size(numel: int) -> int:
    """Payload bytes of an upstream I4 tensor of ``numel`` values."""
    return 2 * _n_blocks(numel) + (numel + 1) // 2


def upstream_i8_size(numel: int) -> int:
    """Payload bytes of an I8 tensor of ``numel`` values in this layout."""
    return 2 * _n_blocks(numel) + numel


def _round_half_away(u: torch.Tensor) -> torch.Tensor:
    """Rust's ``f32::round``: ties go away from zero (``torch.round`` would go to even)."""
    t = torch.trunc(u)
    return t + torch.sign(u) * ((u - t).abs() >= 0.5).to(u.dtype)


def _blocks(tensor: torch.Tensor, qmax: int, qmin: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(f16 scales per block, int codes in ``[qmin, qmax]`` per value) of the flattened tensor."""
    if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
        raise ValueError("upstream block quantization needs a floating-point tensor")
    v = tensor.detach().reshape(-1).to(torch.float32).cpu()
    if not bool(torch.isfinite(v).all()):
        raise ValueError("cannot quantize a tensor with NaN or Inf values")
    n = v.numel()
    nb = _n_blocks(n)
    padded = torch.cat([v, v.new_zeros(nb * UPSTREAM_BLOCK - n)]).reshape(nb, UPSTREAM_BLOCK)
    amax = padded.abs().amax(dim=1, keepdim=True)
    scale = torch.where(amax > _TINY, amax / qmax, torch.ones_like(amax))
    scale16 = scale.to(torch.float16)
    if not bool(torch.isfinite(scale16).all()):
        raise ValueError("a block scale overflows f16 (values beyond the f16 range)")
    q = _round_half_away(padded / scale).clamp_(qmin, qmax).reshape(-1)[:n]
    return scale16.reshape(-1), q.to(torch.int16)


def _split(data: Any, numel: int, size: int, what: str) -> tuple[torch.Tensor, np.ndarray]:
    if isinstance(numel, bool) or not isinstance(numel, int) or numel < 0:
        raise ValueError(f"numel must be a non-negative int, got {numel!r}")
    buf = memoryview(data).cast("B")
    if buf.nbytes != size:
        raise DecodeError(f"upstream {what} payload of {numel} values must be {size} bytes, got {buf.nbytes}")
    nb = _n_blocks(numel)
    scales = torch.from_numpy(np.frombuffer(buf, dtype="<f2", count=nb).astype(np.float32))
    return scales, np.frombuffer(buf, dtype=np.uint8, offset=2 * nb)


def _expand(scales: torch.Tensor, numel: int) -> torch.Tensor:
    return scales.repeat_interleave(UPSTREAM_BLOCK)[:numel]


def encode_upstream_q4(tensor: torch.Tensor) -> bytes:
    """Upstream I4 payload of ``tensor`` (flattened row-major).

    Raises:
        ValueError: non-floating input, NaN/Inf, or a scale beyond the f16 range.

    Example:
        >>> encode_upstream_q4(torch.tensor([7.0, -7.0])).hex()
        '003c1f'
    """
    scales, q = _blocks(tensor, 7, -8)
    nibbles = pack_bits((q + 8).to(torch.uint8), 4)
    return scales.view(torch.int16).numpy().astype("<i2").tobytes() + nibbles.numpy().tobytes()


def decode_upstream_q4(data: Any, numel: int) -> torch.Tensor:
    """float32 values of an upstream I4 payload holding ``numel`` values.

    Raises:
        DecodeError: the payload is not exactly ``upstream_q4_size(numel)`` bytes.
    """
    scales, rest = _split(data, numel, upstream_q4_size(numel), "I4")
    nibbles = unpack_bits(torch.from_numpy(rest.copy()), 4, numel)
    return (nibbles.to(torch.float32) - 8.0) * _expand(scales, numel)


def encode_upstream_i8(tensor: torch.Tensor) -> bytes:
    """I8 payload of ``tensor`` in the upstream block layout (see the module docstring).

    Example:
        >>> encode_upstream_i8(torch.tensor([127.0, -127.0])).hex()
        '003c7f81'
    """
    scales, q = _blocks(tensor, 127, -127)
    return scales.view(torch.int16).numpy().astype("<i2").tobytes() + q.to(torch.int8).numpy().tobytes()


def decode_upstream_i8(data: Any, numel: int) -> torch.Tensor:
    """float32 values of an I8 payload holding ``numel`` values.

    Raises:
        DecodeError: the payload is not exactly ``upstream_i8_size(numel)`` bytes.
    """
    scales, rest = _split(data, numel, upstream_i8_size(numel), "I8")
    q = torch.from_numpy(rest.view(np.int8).astype(np.float32))
    return q * _expand(scales, numel)


def quantized_from_upstream_q4(data: Any, shape: tuple[int, ...]) -> QuantizedTensor:
    """The upstream I4 payload of a tensor of ``shape`` as blockquant codes (no requantization).

    ``result.dequantize()`` equals :func:`decode_upstream_q4` bit for bit, and
    ``BlockQuantConfig(bits=4, group_size=32, symmetric=True).encode_quantized(result)`` stores it.

    Raises:
        ValueError: the last dimension is not a positive multiple of 32 (blocks would span rows).
        DecodeError: the payload has the wrong size.
    """
    shape = tuple(int(d) for d in shape)
    if not shape or shape[-1] % UPSTREAM_BLOCK or shape[-1] == 0:
        raise ValueError(
            f"blockquant groups need the last dimension to be a multiple of 32, got shape {shape}"
        )
    numel = math.prod(shape)
    scales, rest = _split(data, numel, upstream_q4_size(numel), "I4")
    lead = shape[:-1]
    scales16 = scales.to(torch.float16).reshape(*lead, shape[-1] // UPSTREAM_BLOCK)
    return QuantizedTensor(torch.from_numpy(rest.copy()), scales16, None, shape, 4, UPSTREAM_BLOCK)

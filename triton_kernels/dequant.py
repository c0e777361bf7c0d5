"""Unpack and dequantize blockquant codes on the device: packed b-bit codes + groupwise scales -> dense.

The layout is holotensor's blockquant payload (restated here, since kernels import nothing of
holotensor): a tensor viewed as ``(rows, K)`` has ``G = ceil(K / group_size)`` groups per row
(``group_size=None``: one group of ``K``). Code ``i`` (row-major) occupies bits
``[i*b, (i+1)*b)`` of the little-endian bit stream ``packed`` (stream bit ``j`` is bit ``j % 8`` of
byte ``j // 8``). Element ``(r, k)`` of group ``g = k // group_size`` decodes to::

    symmetric  (zeros is None):  (code - 2^(b-1)) * scale[r, g]
    asymmetric:                  code * scale[r, g] + zero[r, g]

in float32, then rounded once (to nearest even) to the output dtype. Because scales and zeros are
fp16/bf16 and codes have at most 8 bits, ``code * scale`` is exact in float32; the only rounding
is the add, so a fused multiply-add (GPU) and a separate multiply and add (the interpreter,
torch's CPU kernels) give the same bits. One program decodes ``BLOCK`` consecutive elements; each
reads the one or two bytes its code spans, so every packed byte is read about ``8 / b`` times at
most, from cache.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

__all__ = ["OUT_DTYPES", "SCALE_DTYPES", "dequantize", "dequantize_ref"]

SCALE_DTYPES = (torch.float16, torch.bfloat16)
OUT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_BLOCK = 1024


def _check(
    packed: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    bits: int,
    group_size: int | None,
    shape: tuple[int, ...],
    dtype: torch.dtype,
) -> tuple[int, int, int, int]:
    """Validate the inputs; returns ``(numel, K, group size, G)``."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an integer in 2..8, got {bits!r}")
    if any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape):
        raise ValueError(f"shape must be non-negative integers, got {shape!r}")
    k = shape[-1] if shape else 1
    numel = math.prod(shape)
    rows = numel // k if k else 0
    if group_size is not None and (
        isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1
    ):
        raise ValueError(f"group_size must be a positive integer or None, got {group_size!r}")
    gs = max(k, 1) if group_size is None else group_size
    g = -(-k // gs)
    if dtype not in OUT_DTYPES:
        raise ValueError(f"output dtype must be one of {OUT_DTYPES}, got {dtype}")
    if packed.dtype != torch.uint8 or packed.dim() != 1 or not packed.is_contiguous():
        raise ValueError(
            f"packed codes must be a contiguous 1-D uint8 tensor, got {packed.dtype} {tuple(packed.shape)}"
        )
    if packed.numel() != (numel * bits + 7) // 8:
        raise ValueError(
            f"{numel} codes of {bits} bits need {(numel * bits + 7) // 8} bytes, got {packed.numel()}"
        )
    for label, t in (("scales", scales), ("zeros", zeros)):
        if t is None:
            continue
        if t.dtype not in SCALE_DTYPES or t.numel() != rows * g or not t.is_contiguous():
            raise ValueError(
                f"{label} must be a contiguous fp16/bf16 tensor of {rows}x{g} values, "
                f"got {t.dtype} {tuple(t.shape)}"
            )
        if t.device != packed.device:
            raise ValueError(f"{label} are on {t.device}, the codes on {packed.device}")
    if zeros is not None and zeros.dtype != scales.dtype:
        raise ValueError(f"zeros dtype {zeros.dtype} differs from scales dtype {scales.dtype}")
    return numel, k, gs, g


def dequantize_ref(
    packed: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    *,
    bits: int,
    group_size: int | None,
    shape: tuple[int, ...],
    dtype: torch.dtype = torch.float16,
) -> torch.Tensor:
    """Torch reference (and CPU path) of :func:`dequantize`: same arguments, same bits.

    Example:
        >>> packed = torch.tensor([0x21, 0x03], dtype=torch.uint8)   # 4-bit codes 1, 2, 3
        >>> s = torch.tensor([[0.5]], dtype=torch.float16)
        >>> dequantize_ref(packed, s, None, bits=4, group_size=None, shape=(1, 3)).tolist()
        [[-3.5, -3.0, -2.5]]
    """
    shape = tuple(int(d) for d in shape)
    numel, k, gs, g = _check(packed, scales, zeros, bits, group_size, shape, dtype)
    if numel == 0:
        return torch.empty(shape, dtype=dtype, device=packed.device)
    pos = torch.arange(numel, dtype=torch.int64, device=packed.device) * bits
    byte = pos >> 3
    wide = packed.to(torch.int32)
    nxt = torch.cat([wide, wide.new_zeros(1)])[byte + 1]
    codes = ((wide[byte] | (nxt << 8)) >> (pos & 7).to(torch.int32)) & ((1 << bits) - 1)
    idx = torch.arange(numel, dtype=torch.int64, device=packed.device)
    group = (idx // k) * g + (idx % k) // gs
    s = scales.reshape(-1).float()[group]
    if zeros is None:
        out = (codes - (1 << (bits - 1))).float() * s
    else:
        out = codes.float() * s + zeros.reshape(-1).float()[group]
    return out.to(dtype).reshape(shape)


@triton.jit
def _dequantize_kernel(
    packed_ptr,
    scales_ptr,
    zeros_ptr,
    out_ptr,
    numel,
    n_bytes,
    K,
    GS,
    G,
    BITS: tl.constexpr,
    HAS_ZEROS: tl.constexpr,
    OUT_BF16: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    mask = offs < numel
    pos = offs * BITS
    byte = pos >> 3
    lo = tl.load(packed_ptr + byte, mask=mask, other=0).to(tl.int32)
    hi = tl.load(packed_ptr + byte + 1, mask=mask & (byte + 1 < n_bytes), other=0).to(tl.int32)
    shift = (pos & 7).to(tl.int32)
    code = ((lo | (hi << 8)) >> shift) & ((1 << BITS) - 1)
    row = offs // K
    group = row * G + (offs - row * K) // GS
    s = tl.load(scales_ptr + group, mask=mask, other=0.0).to(tl.float32)
    if HAS_ZEROS:
        z = tl.load(zeros_ptr + group, mask=mask, other=0.0).to(tl.float32)
        val = code.to(tl.float32) * s + z
    else:
        val = (code - (1 << (BITS - 1))).to(tl.float32) * s
    if OUT_BF16:
        # Round to nearest even by hand: the interpreter's float32 -> bfloat16 cast truncates.
        u = val.to(tl.uint32, bitcast=True)
        u = u + 0x7FFF + ((u >> 16) & 1)
        tl.store(out_ptr + offs, (u >> 16).to(tl.uint16), mask=mask)
    else:
        tl.store(out_ptr + offs, val.to(out_ptr.dtype.element_ty), mask=mask)


def dequantize(
    packed: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    *,
    bits: int,
    group_size: int | None,
    shape: tuple[int, ...],
    dtype: torch.dtype = torch.float16,
) -> torch.Tensor:
    """Dense tensor of ``shape`` from blockquant codes, with one Triton kernel launch.

    Args:
        packed: contiguous 1-D uint8, ``ceil(numel * bits / 8)`` bytes of packed codes.
        scales: contiguous fp16/bf16, ``rows * G`` values (any shape, e.g. ``(*lead, G)``).
        zeros: like ``scales`` for asymmetric codes, ``None`` for symmetric ones.
        bits: code width, 2..8.
        group_size: values per group along the last dimension, ``None`` for one per row.
        shape: the dense tensor's shape.
        dtype: float16, bfloat16 or float32.

    Returns:
        A new tensor on ``packed``'s device.

    Raises:
        ValueError: inputs that do not fit each other (sizes, dtypes, devices, layout).

    Example:
        >>> packed = torch.tensor([0x21, 0x03], dtype=torch.uint8)
        >>> s = torch.tensor([[0.5]], dtype=torch.float16)
        >>> dequantize(packed, s, None, bits=4, group_size=None, shape=(1, 3)).tolist()
        [[-3.5, -3.0, -2.5]]
    """
    shape = tuple(int(d) for d in shape)
    numel, k, gs, g = _check(packed, scales, zeros, bits, group_size, shape, dtype)
    out = torch.empty(shape, dtype=dtype, device=packed.device)
    if numel == 0:
        return out
    grid = (triton.cdiv(numel, _BLOCK),)
    bf16 = dtype == torch.bfloat16
    _dequantize_kernel[grid](
        packed, scales, scales if zeros is None else zeros, out.view(torch.uint16) if bf16 else out,
        numel, packed.numel(), k, gs, g,
        BITS=bits, HAS_ZEROS=zeros is not None, OUT_BF16=bf16, BLOCK=_BLOCK,
    )  # fmt: skip
    return out

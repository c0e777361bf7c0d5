"""Dense weights from residual-codebook codes on the device: gather, sum over stages, scale rows.

For codes ``(M, N, G)``, codebooks ``(M, k, d)`` and optional per-row scales ``(N,)``, every output
element is::

    out[r, c] = scale[r] * sum_{m < M} codebooks[m, codes[m, r, c // d], c % d]      (c < cols)

summed in float32 in stage order, then multiplied by the scale once, so the kernel and
:func:`codebook_decode_ref` (the torch reference and CPU path) agree bit for bit. ``cols`` may cut
the last group short (a zero-padded last group, as holotensor's codebook codec uses). The kernel
is memory bound: each output element reads ``M`` codes and ``M`` codebook values (mostly cached).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["MAX_STAGES", "codebook_decode", "codebook_decode_ref"]

MAX_STAGES = 16
"""Most residual stages one launch sums (the stage loop is unrolled)."""

_BLOCK = 1024
_FLOATS = (torch.float16, torch.bfloat16, torch.float32)


def _check(
    codes: torch.Tensor, codebooks: torch.Tensor, scales: torch.Tensor | None, cols: int | None
) -> int:
    """Validate the inputs; returns the output width."""
    if (
        codes.dim() != 3
        or codes.dtype.is_floating_point
        or codes.dtype.is_complex
        or codes.dtype == torch.bool
    ):
        raise ValueError(f"codes must be an integer tensor (M, N, G), got {codes.dtype} {tuple(codes.shape)}")
    if codebooks.dim() != 3 or codebooks.dtype not in _FLOATS:
        raise ValueError(
            f"codebooks must be a float16/bfloat16/float32 tensor (M, k, d), got {codebooks.dtype} "
            f"{tuple(codebooks.shape)}"
        )
    m, n, g = codes.shape
    mb, k, d = codebooks.shape
    if m != mb or not 1 <= m <= MAX_STAGES:
        raise ValueError(f"codes have {m} stages and codebooks {mb}; expected equal and 1..{MAX_STAGES}")
    if k < 1 or d < 1:
        raise ValueError(f"codebooks must have at least one entry of at least one value, got {(k, d)}")
    if codes.device != codebooks.device:
        raise ValueError(f"codes on {codes.device} but codebooks on {codebooks.device}")
    if scales is not None and (
        scales.dim() != 1
        or scales.shape[0] != n
        or scales.dtype not in _FLOATS
        or scales.device != codes.device
    ):
        raise ValueError(
            f"scales must be a float tensor ({n},) on {codes.device}, got {scales.dtype} {tuple(scales.shape)} "
            f"on {scales.device}"
        )
    full = g * d
    width = full if cols is None else cols
    if isinstance(width, bool) or not isinstance(width, int) or not full - d < width <= full:
        raise ValueError(f"cols must lie in ({full - d}, {full}] for {g} groups of {d}, got {cols!r}")
    if codes.numel():
        lo, hi = int(codes.min()), int(codes.max())
        if lo < 0 or hi >= k:
            raise ValueError(f"codes must lie in [0, {k}), found {lo}..{hi}")
    return width


def codebook_decode_ref(
    codes: torch.Tensor,
    codebooks: torch.Tensor,
    scales: torch.Tensor | None = None,
    *,
    cols: int | None = None,
) -> torch.Tensor:
    """Torch reference (and CPU path) of :func:`codebook_decode`: same arguments, same float32 result.

    Example:
        >>> cb = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
        >>> codebook_decode_ref(torch.tensor([[[1, 0]]]), cb, torch.tensor([2.0]), cols=3).tolist()
        [[6.0, 8.0, 2.0]]
    """
    width = _check(codes, codebooks, scales, cols)
    m, n, g = codes.shape
    d = codebooks.shape[2]
    idx = codes.long()
    acc = codebooks[0].float()[idx[0]]
    for stage in range(1, m):
        acc = acc + codebooks[stage].float()[idx[stage]]
    out = acc.reshape(n, g * d)[:, :width]
    if scales is not None:
        out = out * scales.float().unsqueeze(1)
    return out.contiguous()


@triton.jit
def _codebook_decode_kernel(
    codes_ptr,
    cb_ptr,
    scales_ptr,
    out_ptr,
    numel,
    cols,
    stride_cm,
    stride_cn,
    stride_cg,
    stride_bm,
    stride_bk,
    stride_bd,
    D: tl.constexpr,
    M: tl.constexpr,
    HAS_SCALE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    mask = offs < numel
    row = offs // cols
    col = offs % cols
    group = col // D
    lane = col % D
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for stage in tl.static_range(M):
        code = tl.load(
            codes_ptr + stage * stride_cm + row * stride_cn + group * stride_cg, mask=mask, other=0
        )
        val = tl.load(
            cb_ptr + stage * stride_bm + code.to(tl.int64) * stride_bk + lane * stride_bd,
            mask=mask,
            other=0.0,
        )
        acc += val.to(tl.float32)
    if HAS_SCALE:
        acc = acc * tl.load(scales_ptr + row, mask=mask, other=1.0).to(tl.float32)
    tl.store(out_ptr + offs, acc, mask=mask)


def codebook_decode(
    codes: torch.Tensor,
    codebooks: torch.Tensor,
    scales: torch.Tensor | None = None,
    *,
    cols: int | None = None,
) -> torch.Tensor:
    """Decode codes into a dense float32 ``(N, cols)`` matrix with one Triton kernel.

    Args:
        codes: integer ``(M, N, G)``, each stage's entry per (row, group), any strides.
        codebooks: ``(M, k, d)`` fp16/bf16/fp32, any strides.
        scales: optional ``(N,)`` per-row scales.
        cols: output width, ``G * d`` by default; smaller drops the padding of the last group.

    Returns:
        A new contiguous float32 tensor ``(N, cols)`` on the inputs' device.

    Raises:
        ValueError: mismatched shapes, dtypes or devices, more than ``MAX_STAGES`` stages, or a
            code outside ``[0, k)``.

    Example:
        >>> cb = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
        >>> codebook_decode(torch.tensor([[[1, 0]]]), cb, torch.tensor([2.0]), cols=3).tolist()
        [[6.0, 8.0, 2.0]]
    """
    width = _check(codes, codebooks, scales, cols)
    m, n, _ = codes.shape
    out = torch.empty((n, width), dtype=torch.float32, device=codes.device)
    numel = n * width
    if numel == 0:
        return out
    sc = scales if scales is not None else out  # never read when HAS_SCALE is False
    grid = (triton.cdiv(numel, _BLOCK),)
    _codebook_decode_kernel[grid](
        codes,
        codebooks,
        sc,
        out,
        numel,
        width,
        *codes.stride(),
        *codebooks.stride(),
        D=codebooks.shape[2],
        M=m,
        HAS_SCALE=scales is not None,
        BLOCK=_BLOCK,
    )
    return out

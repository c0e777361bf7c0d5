"""Rebuild tensor elements from byte planes on the device: the inverse of the lossless codec's split.

The lossless codec cuts each element into byte planes; every plane byte holds one or more
*segments*, each ``(src, width, dst)``: ``width`` element bits starting at element bit ``src``
sit at plane-byte bit ``dst``. Merging is therefore, per element::

    element = OR over planes p, segments (src, width, dst) of p:
                  ((plane_p[i] >> dst) & (2**width - 1)) << src

The caller passes the segments (holotensor's ``PlaneLayout.planes`` as plain tuples), so this
module knows no layout by name and imports nothing of holotensor. :func:`merge_planes_ref` is the
torch reference and the CPU path; :func:`merge_planes` runs one Triton kernel that reads every
plane once and writes every element once (memory bound: ``itemsize`` bytes read and written per
element).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl

__all__ = ["MAX_PLANES", "MAX_SEGMENTS", "merge_planes", "merge_planes_ref"]

MAX_PLANES = 8
"""Most planes one element may be cut into (float64 byte transposition)."""

MAX_SEGMENTS = 3
"""Most segments one plane byte may hold."""

_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_BLOCK = 1024

Segments = Sequence[Sequence[tuple[int, int, int]]]


def _check(planes: Sequence[torch.Tensor], dtype: torch.dtype, segments: Segments) -> int:
    """Validate planes against the layout; returns the element count."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    if itemsize not in _INT_OF_SIZE:
        raise ValueError(f"cannot merge planes into {dtype}: {itemsize}-byte elements")
    if not 1 <= len(planes) <= MAX_PLANES or len(planes) != len(segments):
        raise ValueError(f"got {len(planes)} planes for a layout of {len(segments)} (at most {MAX_PLANES})")
    bits = 8 * itemsize
    covered = 0
    for p, segs in enumerate(segments):
        if not 1 <= len(segs) <= MAX_SEGMENTS:
            raise ValueError(f"plane {p} has {len(segs)} segments, expected 1..{MAX_SEGMENTS}")
        for src, width, dst in segs:
            if width < 1 or dst < 0 or dst + width > 8 or src < 0 or src + width > bits:
                raise ValueError(
                    f"plane {p}: segment {(src, width, dst)} does not fit a byte and {bits} bits"
                )
            mask = ((1 << width) - 1) << src
            if covered & mask:
                raise ValueError(f"plane {p}: segment {(src, width, dst)} overlaps another")
            covered |= mask
    if covered != (1 << bits) - 1:
        raise ValueError(f"the segments leave element bits {covered ^ ((1 << bits) - 1):#x} uncovered")
    numel = planes[0].numel()
    device = planes[0].device
    for p, plane in enumerate(planes):
        if plane.dtype != torch.uint8 or plane.dim() != 1 or not plane.is_contiguous():
            raise ValueError(
                f"plane {p} must be a contiguous 1-D uint8 tensor, got {plane.dtype} {tuple(plane.shape)}"
            )
        if plane.numel() != numel or plane.device != device:
            raise ValueError(
                f"plane {p} has {plane.numel()} bytes on {plane.device}, plane 0 {numel} on {device}"
            )
    return numel


def merge_planes_ref(planes: Sequence[torch.Tensor], dtype: torch.dtype, segments: Segments) -> torch.Tensor:
    """Torch reference (and CPU path) of :func:`merge_planes`: same arguments, same result.

    Example:
        >>> segs = [[(7, 8, 0)], [(15, 1, 7), (0, 7, 0)]]  # bf16: exponent byte, sign|mantissa byte
        >>> planes = [torch.tensor([127, 128], dtype=torch.uint8), torch.tensor([0, 128], dtype=torch.uint8)]
        >>> merge_planes_ref(planes, torch.bfloat16, segs).tolist()
        [1.0, -2.0]
    """
    numel = _check(planes, dtype, segments)
    acc = torch.zeros(numel, dtype=torch.int64, device=planes[0].device)
    for plane, segs in zip(planes, segments, strict=True):
        wide = plane.to(torch.int64)
        for src, width, dst in segs:
            acc |= ((wide >> dst) & ((1 << width) - 1)) << src
    itemsize = torch.empty((), dtype=dtype).element_size()
    return acc.to(_INT_OF_SIZE[itemsize]).view(dtype)


@triton.jit
def _plane_bits(ptr, offs, mask, seg_ptr, P: tl.constexpr, ACC: tl.constexpr):
    """Plane ``P``'s contribution to the elements at ``offs`` (segments read from ``seg_ptr``)."""
    byte = tl.load(ptr + offs, mask=mask, other=0).to(ACC)
    acc = tl.zeros_like(byte)
    for s in tl.static_range(3):
        row = seg_ptr + (P * 3 + s) * 3
        src = tl.load(row).to(ACC)
        width = tl.load(row + 1).to(ACC)
        dst = tl.load(row + 2).to(ACC)
        acc |= ((byte >> dst) & ((1 << width) - 1)) << src  # width 0: an unused segment adds nothing
    return acc


@triton.jit
def _merge_planes_kernel(
    p0_ptr,
    p1_ptr,
    p2_ptr,
    p3_ptr,
    p4_ptr,
    p5_ptr,
    p6_ptr,
    p7_ptr,
    seg_ptr,
    out_ptr,
    numel,
    NPLANES: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    mask = offs < numel
    acc = _plane_bits(p0_ptr, offs, mask, seg_ptr, 0, ACC)
    if NPLANES > 1:
        acc |= _plane_bits(p1_ptr, offs, mask, seg_ptr, 1, ACC)
    if NPLANES > 2:
        acc |= _plane_bits(p2_ptr, offs, mask, seg_ptr, 2, ACC)
    if NPLANES > 3:
        acc |= _plane_bits(p3_ptr, offs, mask, seg_ptr, 3, ACC)
    if NPLANES > 4:
        acc |= _plane_bits(p4_ptr, offs, mask, seg_ptr, 4, ACC)
    if NPLANES > 5:
        acc |= _plane_bits(p5_ptr, offs, mask, seg_ptr, 5, ACC)
    if NPLANES > 6:
        acc |= _plane_bits(p6_ptr, offs, mask, seg_ptr, 6, ACC)
    if NPLANES > 7:
        acc |= _plane_bits(p7_ptr, offs, mask, seg_ptr, 7, ACC)
    tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=mask)


def merge_planes(planes: Sequence[torch.Tensor], dtype: torch.dtype, segments: Segments) -> torch.Tensor:
    """Merge byte planes into a flat tensor of ``dtype`` with one Triton kernel.

    Args:
        planes: one contiguous 1-D uint8 tensor per plane, all of ``numel`` bytes on one device.
        dtype: the element dtype (1, 2, 4 or 8 bytes: bf16, fp16, fp32, integers, ...).
        segments: per plane, its ``(src, width, dst)`` segments (see the module docstring);
            together they must cover every element bit exactly once.

    Returns:
        A new 1-D tensor of ``numel`` elements of ``dtype`` on the planes' device.

    Raises:
        ValueError: planes or segments that do not describe a complete, non-overlapping layout.

    Example:
        >>> segs = [[(7, 8, 0)], [(15, 1, 7), (0, 7, 0)]]
        >>> planes = [torch.tensor([127, 128], dtype=torch.uint8), torch.tensor([0, 128], dtype=torch.uint8)]
        >>> merge_planes(planes, torch.bfloat16, segs).tolist()
        [1.0, -2.0]
    """
    numel = _check(planes, dtype, segments)
    device = planes[0].device
    itemsize = torch.empty((), dtype=dtype).element_size()
    out = torch.empty(numel, dtype=_INT_OF_SIZE[itemsize], device=device)
    if numel == 0:
        return out.view(dtype)
    table = torch.zeros(MAX_PLANES, MAX_SEGMENTS, 3, dtype=torch.int32)
    for p, segs in enumerate(segments):
        for s, seg in enumerate(segs):
            table[p, s] = torch.tensor(seg, dtype=torch.int32)
    table = table.to(device)
    ptrs = [*planes, *[planes[0]] * (MAX_PLANES - len(planes))]
    acc = tl.int64 if itemsize == 8 else tl.int32
    grid = (triton.cdiv(numel, _BLOCK),)
    _merge_planes_kernel[grid](*ptrs, table, out, numel, NPLANES=len(planes), ACC=acc, BLOCK=_BLOCK)
    return out.view(dtype)

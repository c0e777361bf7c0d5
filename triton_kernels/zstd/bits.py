"""Bounded byte and bit reads for the zstd kernels (RFC 8878 §4.1: forward and backward streams).

Every read is masked to a ``[lo, hi)`` byte range the caller has validated, so corrupt sizes can
only make a frame fail, never reach outside the buffer. Positions are int64 byte offsets into the
stored data. A backward stream's ``bitpos`` counts the bits still unread; bits below the stream's
first byte read as zero (the zero fill that Huffman peeks and the FSE weight decoder rely on).
"""

from __future__ import annotations

import triton
import triton.language as tl

__all__: list[str] = []  # jit helpers only, imported by the kernels of this package


@triton.jit
def load_le(ptr, pos, nbytes, hi, MAXN: tl.constexpr):
    """Little-endian value of the ``nbytes`` (<= MAXN, a power of two <= 8) bytes at scalar
    ``pos``; bytes at or past ``hi`` read as zero."""
    k = tl.arange(0, MAXN)
    where = pos + k
    byte = tl.load(ptr + where, mask=(k < nbytes) & (where < hi) & (where >= 0), other=0)
    return tl.sum(byte.to(tl.int64) << (8 * k).to(tl.int64), axis=0)


@triton.jit
def bit_length(x, MAXBITS: tl.constexpr):
    """Number of bits of ``x`` (0 for 0), for 0 <= x < 2**MAXBITS; works on scalars and vectors."""
    n = tl.zeros_like(x)
    for b in tl.static_range(MAXBITS):
        n += (x >= (1 << b)).to(n.dtype)
    return n


@triton.jit
def backward_start(ptr, start, end):
    """Initial ``bitpos`` of the backward stream ``[start, end)``: the bits below its end marker.

    Returns -1 for an empty stream or a last byte without the marker bit (a corrupt stream)."""
    last = tl.load(ptr + end - 1, mask=(end > start) & (end >= 1), other=0).to(tl.int64)
    pos = (end - start - 1) * 8 + bit_length(last, 8) - 1
    return tl.where((end > start) & (last != 0), pos, -1)


@triton.jit
def backward_peek(ptr, start, end, bitpos, n, NBYTES: tl.constexpr):
    """The ``n`` stream bits just below scalar ``bitpos`` (zero-filled below the stream's start).

    ``NBYTES`` (a power of two) bytes are loaded, so ``n + 7 <= 8 * NBYTES`` must hold (4 bytes
    for Huffman codes, FSE states and length extra bits, 8 for the 31-bit offset extra bits)."""
    low = bitpos - n
    first = low >> 3  # floor division, also for negative positions
    k = tl.arange(0, NBYTES)
    where = start + first + k
    byte = tl.load(ptr + where, mask=(first + k >= 0) & (where < end), other=0)
    word = tl.sum(byte.to(tl.int64) << (8 * k).to(tl.int64), axis=0)
    return (word >> (low - (first << 3))) & ((tl.full(low.shape, 1, tl.int64) << n) - 1)


@triton.jit
def forward_read(ptr, start, end, bitpos, n):
    """``n`` (<= 16) bits from bit ``bitpos`` of the forward stream at ``start`` (past ``end``: 0)."""
    byte0 = bitpos >> 3
    word = load_le(ptr, start + byte0, 3, end, 4)
    return (word >> (bitpos & 7)) & ((tl.full(bitpos.shape, 1, tl.int64) << n) - 1)

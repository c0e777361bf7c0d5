"""Upstream's ``SeededRng`` (xorshift64) and its uniforms and normals, generated vectorized.

Upstream draws its random projections (RPH) and the power-iteration start vectors (LRDF) from
this generator, so reading and writing those payloads needs the identical stream:

* ``state = seed + 1`` (wrapping); each ``next_u64`` does ``x ^= x << 13; x ^= x >> 7;
  x ^= x << 17`` (mod 2^64) and returns the new state;
* ``next_f32 = (x >> 40) / 2^24`` in f32;
* ``next_normal = sqrt(-2 ln max(u1, 1e-10)) * cos(6.2831855 * u2)`` in f32, from two uniforms
  (only the cosine branch of Box-Muller; each normal consumes two draws).

The integers and uniforms are exact. The normals use numpy's float32 ``log``/``cos``, which may
differ from glibc's ``logf``/``cosf`` in the last bit, so payloads agree with upstream to float
tolerance.

A step of xorshift64 is linear over GF(2), a 64x64 bit matrix M, so position t of the stream is
``M^t`` applied to the start state. Long streams are cut into lanes whose start states are found
by applying powers of M (byte lookup tables, 8 table reads per state), then every lane steps in
lock-step as one numpy operation: O(count) work with no per-element Python loop.

Example:
    >>> [hex(int(v)) for v in xorshift64(42, 2)]
    ['0xad5d36aeb', '0xb00aebfbf40316fe']
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["normals", "uniforms", "xorshift64"]

_U64 = np.uint64
_TWO_PI = np.float32(6.2831855)
_MIN_U1 = np.float32(1e-10)
_INV_2_24 = np.float32(1.0 / (1 << 24))
_BYTE_BITS = ((np.arange(256)[:, None] >> np.arange(8)) & 1).astype(bool)  # [byte, bit]


def _step(x: np.ndarray) -> np.ndarray:
    """One xorshift64 step on every element (wrapping uint64 arithmetic)."""
    x = x ^ (x << _U64(13))
    x = x ^ (x >> _U64(7))
    return x ^ (x << _U64(17))


_IDENTITY = np.array([1 << b for b in range(64)], dtype=_U64)
_M = _step(_IDENTITY)  # column b = image of bit b under one step


def _tables(columns: np.ndarray) -> np.ndarray:
    """Byte lookup tables [8, 256] of the linear map whose images of the 64 unit bits are ``columns``."""
    cols = columns.reshape(8, 8)  # [byte position, bit within byte]
    picked = np.where(_BYTE_BITS[None, :, :], cols[:, None, :], _U64(0))  # [8, 256, 8]
    return np.bitwise_xor.reduce(picked, axis=2)


def _apply(columns: np.ndarray, states: np.ndarray) -> np.ndarray:
    """The linear map given by ``columns`` applied to every state."""
    tables = _tables(columns)
    out = np.zeros_like(states)
    for k in range(8):
        out ^= tables[k][((states >> _U64(8 * k)) & _U64(0xFF)).astype(np.intp)]
    return out


def _power(steps: int) -> np.ndarray:
    """Columns of M^steps (square-and-multiply on bit matrices)."""
    result, base = _IDENTITY.copy(), _M.copy()
    while steps:
        if steps & 1:
            result = _apply(base, result)
        steps >>= 1
        if steps:
            base = _apply(base, base)
    return result


def xorshift64(seed: int, count: int, *, start: int = 0) -> np.ndarray:
    """Outputs ``start+1 .. start+count`` of ``next_u64`` for ``SeededRng(seed)``, as uint64.

    Args:
        seed: the upstream seed (any integer; taken mod 2^64). Seed 2^64-1 gives state 0 and an
            all-zero stream, as upstream.
        count: how many values.
        start: how many values to skip first (jumped over in O(log start), not generated).

    Example:
        >>> hex(int(xorshift64(0, 1)[0]))
        '0x40822041'
    """
    if count < 0 or start < 0:
        raise ValueError(f"count and start must be non-negative, not {count}, {start}")
    state = np.array([(seed + 1) % (1 << 64)], dtype=_U64)
    if count == 0:
        return np.zeros(0, dtype=_U64)
    if start:
        state = _apply(_power(start), state)
    lane = max(64, min(1024, math.isqrt(count)))
    lanes = -(-count // lane)
    starts, jump = state, _power(lane)
    while starts.size < lanes:
        starts = np.concatenate([starts, _apply(jump, starts)])
        jump = _apply(jump, jump)
    cur = starts[:lanes]
    out = np.empty((lane, lanes), dtype=_U64)
    for t in range(lane):
        cur = _step(cur)
        out[t] = cur
    return out.T.reshape(-1)[:count]


def uniforms(seed: int, count: int, *, start: int = 0) -> np.ndarray:
    """``next_f32`` values ``start .. start+count-1`` of ``SeededRng(seed)``: ``(x >> 40) / 2^24`` in float32.

    Example:
        >>> uniforms(42, 2).tolist()
        [0.0, 0.6876665949821472]
    """
    x = xorshift64(seed, count, start=start)
    return (x >> _U64(40)).astype(np.float32) * _INV_2_24


def normals(seed: int, count: int, *, start: int = 0) -> np.ndarray:
    """``next_normal`` values ``start .. start+count-1`` of ``SeededRng(seed)``, float32.

    Each normal consumes two uniforms, so normal ``j`` uses draws ``2j`` and ``2j+1``.

    Example:
        >>> [round(float(v), 4) for v in normals(42, 2)]
        [-2.5904, 1.5561]
    """
    u = uniforms(seed, 2 * count, start=2 * start)
    u1 = np.maximum(u[0::2], _MIN_U1)
    return np.sqrt(np.float32(-2.0) * np.log(u1)) * np.cos(_TWO_PI * u[1::2])

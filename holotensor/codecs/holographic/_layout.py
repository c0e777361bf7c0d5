"""Shared pieces of the upstream payload readers: bounded little-endian field reads and the HTNS
shape -> matrix convention."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from holotensor.errors import DecodeError

__all__ = ["Payload", "as_bytes", "htns_matrix_shape", "read_array", "read_u32s"]

Payload = bytes | bytearray | memoryview


def as_bytes(payload: Payload) -> memoryview:
    """A flat byte view of any buffer."""
    return memoryview(payload).cast("B")


def read_u32s(payload: memoryview, offset: int, count: int, what: str, fragment: int | None) -> list[int]:
    """``count`` little-endian u32 fields at ``offset``, or a DecodeError if the payload is shorter."""
    end = offset + 4 * count
    if payload.nbytes < end:
        raise DecodeError(
            f"{what}: payload has {payload.nbytes} bytes, its header needs {end}", fragment=fragment
        )
    return np.frombuffer(payload[offset:end], dtype="<u4").astype(np.int64).tolist()


def read_array(
    payload: memoryview, offset: int, count: int, dtype: str, what: str, fragment: int | None
) -> np.ndarray:
    """``count`` values of ``dtype`` at ``offset``; the payload must end exactly after them.

    The length is checked before anything is allocated, so a count read from hostile data cannot
    cause a large allocation.
    """
    itemsize = np.dtype(dtype).itemsize
    need = offset + count * itemsize
    if payload.nbytes != need:
        raise DecodeError(
            f"{what}: {count} values of {itemsize} bytes after a {offset}-byte header need {need} bytes, "
            f"the payload has {payload.nbytes}",
            fragment=fragment,
        )
    return np.frombuffer(payload[offset:need], dtype=dtype)


def htns_matrix_shape(shape: Sequence[int]) -> tuple[int, int]:
    """The (rows, cols) matrix upstream's HTNS encoder and decoder view a tensor of ``shape`` as.

    0-D is (1, 1), 1-D ``[n]`` is one row, 2-D is itself, and higher ranks are ``(d0, prod(d1..))``
    (unlike the lowrank and spectral codecs, which fold the *leading* dims into rows).

    Example:
        >>> htns_matrix_shape((2, 3, 4)), htns_matrix_shape((5,))
        ((2, 12), (1, 5))
    """
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return 1, int(shape[0])
    return int(shape[0]), math.prod(int(d) for d in shape[1:])

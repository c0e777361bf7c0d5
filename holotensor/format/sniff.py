"""Tell container formats apart by their first bytes: upstream uses ``.hct`` for both HCTN and
HTNS, and a checkpoint may also be safetensors or holotensor's own HCT V2."""

from __future__ import annotations

import os

from holotensor.format.hct2 import MAGIC as _HCT2_MAGIC
from holotensor.format.hctn_header import HCTN_MAGIC
from holotensor.format.htns import HTNS_MAGIC

__all__ = ["sniff"]

_PREFIX = 16


def _kind(head: bytes, size: int) -> str | None:
    if head[:8] == _HCT2_MAGIC:
        return "hct2"
    if head[:4] == HCTN_MAGIC:
        return "hctn"
    if head[:4] == HTNS_MAGIC:
        return "htns"
    if len(head) >= 9 and head[8:9] == b"{":
        header_len = int.from_bytes(head[:8], "little")
        if 2 <= header_len <= size - 8:
            return "safetensors"
    return None


def sniff(source: str | os.PathLike[str] | bytes | bytearray | memoryview) -> str | None:
    """Name the container format of a file (or of its leading bytes held in memory).

    Returns ``"hct2"`` (holotensor's HCT V2), ``"hctn"`` (upstream HCTN), ``"htns"`` (upstream
    HTNS), ``"safetensors"`` (a u64 LE header length that fits the file, then ``{``), or None.
    For bytes, the safetensors length check uses the length of the bytes given.

    Raises:
        FileNotFoundError / OSError: the path cannot be read.

    Example:
        >>> sniff(b"HCTN" + bytes(60))
        'hctn'
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = memoryview(source).cast("B")
        return _kind(bytes(view[:_PREFIX]), len(view))
    with open(source, "rb") as handle:
        head = handle.read(_PREFIX)
        size = os.fstat(handle.fileno()).st_size
    return _kind(head, size)

"""Bounded LZ4-block and zstd-frame (de)compression for the upstream containers (HCTN, HTNS).

The upstream containers compress their blocks and fragments themselves, so the format layer needs
these two codecs without going through :mod:`holotensor.entropy` (a sibling layer). Decompression
here never allocates more than the caller's limit: LZ4 is given the exact output size, and zstd
input is first walked frame by frame (so truncated frames and trailing garbage are caught, which
``zstandard`` lets through silently) and then read through a stream with a hard output bound,
whatever content size a frame claims.

Errors carry no location; callers add it with ``err.located(file=..., fragment=...)``.
"""

from __future__ import annotations

import threading

import lz4.block
import zstandard

from holotensor.errors import DecodeError

__all__ = [
    "ZSTD_MAX_RATIO",
    "lz4_block_compress",
    "lz4_block_decompress",
    "zstd_compress",
    "zstd_decompress_bounded",
]

# The largest output one byte of zstd input can justify: an RLE block turns 4 bytes into 128 KiB.
ZSTD_MAX_RATIO = 1 << 15
_ZSTD_MAGIC = 0xFD2FB528
_SKIPPABLE_MASK, _SKIPPABLE_MAGIC = 0xFFFFFFF0, 0x184D2A50
_DICT_ID_BYTES = (0, 1, 2, 4)
_FCS_BYTES = (0, 2, 4, 8)
_local = threading.local()  # a decompression context costs ~10 us to build; keep one per thread


def _decompressor() -> zstandard.ZstdDecompressor:
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    return dctx


def lz4_block_compress(data: bytes | bytearray | memoryview, *, high_compression: bool = False) -> bytes:
    """Compress ``data`` as one raw LZ4 block (no frame, no size prefix), as upstream HCTN stores it."""
    mode = "high_compression" if high_compression else "default"
    return lz4.block.compress(data, mode=mode, store_size=False)


def lz4_block_decompress(data: bytes | bytearray | memoryview, size: int) -> bytes:
    """Decompress a raw LZ4 block that must expand to exactly ``size`` bytes.

    Raises:
        DecodeError: the block is corrupt, expands past ``size`` or stops short of it.
    """
    try:
        out = lz4.block.decompress(data, uncompressed_size=size)
    except lz4.block.LZ4BlockError as err:
        raise DecodeError(
            f"corrupt LZ4 block or output larger than the expected {size} bytes ({err})"
        ) from None
    if len(out) != size:
        raise DecodeError(f"LZ4 block decompressed to {len(out)} bytes, expected {size}")
    return out


def zstd_compress(data: bytes | bytearray | memoryview, *, level: int = 3) -> bytes:
    """Compress ``data`` as one zstd frame (with content size; readers must not rely on it)."""
    return zstandard.ZstdCompressor(level=level).compress(data)


def _frame_end(data: memoryview, pos: int) -> int:
    """Return the offset just past the zstd or skippable frame starting at ``pos``."""
    n = len(data)
    if n - pos < 4:
        raise DecodeError(f"{n - pos} stray bytes after the last zstd frame")
    magic = int.from_bytes(data[pos : pos + 4], "little")
    if magic & _SKIPPABLE_MASK == _SKIPPABLE_MAGIC:
        if n - pos < 8:
            raise DecodeError("skippable zstd frame header is truncated")
        end = pos + 8 + int.from_bytes(data[pos + 4 : pos + 8], "little")
        if end > n:
            raise DecodeError(f"skippable zstd frame runs {end - n} bytes past the end of the data")
        return end
    if magic != _ZSTD_MAGIC:
        raise DecodeError(
            f"not a zstd frame at byte {pos}: magic 0x{magic:08x}, expected 0x{_ZSTD_MAGIC:08x}"
        )
    if n - pos < 5:
        raise DecodeError("zstd frame header is truncated")
    descriptor = data[pos + 4]
    if descriptor & 0x08:
        raise DecodeError("zstd frame header sets the reserved descriptor bit")
    single_segment = (descriptor >> 5) & 1
    fcs_flag = descriptor >> 6
    fcs = 1 if (fcs_flag == 0 and single_segment) else _FCS_BYTES[fcs_flag]
    cur = pos + 5 + (0 if single_segment else 1) + _DICT_ID_BYTES[descriptor & 3] + fcs
    while True:
        if n - cur < 3:
            raise DecodeError("zstd frame is truncated (block header missing)")
        header = int.from_bytes(data[cur : cur + 3], "little")
        block_type = (header >> 1) & 3
        if block_type == 3:
            raise DecodeError("zstd block uses the reserved block type 3")
        cur += 3 + (1 if block_type == 1 else header >> 3)
        if cur > n:
            raise DecodeError(f"zstd frame is truncated: a block runs {cur - n} bytes past the end")
        if header & 1:
            break
    if descriptor & 0x04:
        cur += 4
        if cur > n:
            raise DecodeError("zstd frame is truncated: content checksum missing")
    return cur


def zstd_decompress_bounded(data: bytes | bytearray | memoryview, limit: int) -> bytes:
    """Decompress concatenated zstd frames (skippable frames allowed) into at most ``limit`` bytes.

    Frames may lack a content size. Like a ``decode_all``, an empty input gives empty output.

    Raises:
        DecodeError: a frame is truncated or corrupt, bytes follow the last frame, or the output
            would exceed ``limit``.
    """
    view = memoryview(data).cast("B")
    pos = 0
    while pos < len(view):
        pos = _frame_end(view, pos)
    if not view:
        return b""
    try:
        with _decompressor().stream_reader(view, read_across_frames=True) as reader:
            parts: list[bytes] = []
            total = 0
            while total <= limit:
                chunk = reader.read(limit + 1 - total)
                if not chunk:
                    break
                parts.append(chunk)
                total += len(chunk)
    except zstandard.ZstdError as err:
        raise DecodeError(f"corrupt zstd frame ({err})") from None
    if total > limit:
        raise DecodeError(f"zstd data decompresses to more than the allowed {limit} bytes")
    return parts[0] if len(parts) == 1 else b"".join(parts)

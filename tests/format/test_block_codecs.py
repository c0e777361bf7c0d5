"""Bounded LZ4/zstd block decoding: exact sizes, frame walking, hostile frames."""

from __future__ import annotations

import pytest
import zstandard

from holotensor.errors import DecodeError
from holotensor.format.block_codecs import (
    lz4_block_compress,
    lz4_block_decompress,
    zstd_compress,
    zstd_decompress_bounded,
)

RAW = bytes(range(256)) * 700  # > 128 KiB, so zstd emits several blocks


def _streamed(data: bytes) -> bytes:
    cobj = zstandard.ZstdCompressor(write_checksum=True).compressobj()
    return cobj.compress(data) + cobj.flush()


def _skippable(payload: bytes) -> bytes:
    return (0x184D2A53).to_bytes(4, "little") + len(payload).to_bytes(4, "little") + payload


def test_lz4_exact_size() -> None:
    block = lz4_block_compress(RAW, high_compression=True)
    assert lz4_block_decompress(block, len(RAW)) == RAW
    assert lz4_block_decompress(lz4_block_compress(b""), 0) == b""
    with pytest.raises(DecodeError, match="expected"):
        lz4_block_decompress(block, len(RAW) + 1)
    with pytest.raises(DecodeError, match="corrupt"):
        lz4_block_decompress(block, len(RAW) - 1)


@pytest.mark.parametrize("frame", [zstd_compress(RAW), _streamed(RAW)], ids=["content-size", "streamed"])
def test_zstd_frames(frame: bytes) -> None:
    assert zstd_decompress_bounded(frame, len(RAW)) == RAW
    assert zstd_decompress_bounded(frame + _skippable(b"meta") + frame, 2 * len(RAW)) == RAW * 2
    assert zstd_decompress_bounded(_skippable(b"") + frame, len(RAW)) == RAW
    with pytest.raises(DecodeError, match="more than the allowed"):
        zstd_decompress_bounded(frame, len(RAW) - 1)


def test_zstd_every_truncation_is_caught() -> None:
    frame = _streamed(RAW)
    for n in range(1, len(frame)):
        with pytest.raises(DecodeError):
            zstd_decompress_bounded(frame[:n], len(RAW))


@pytest.mark.parametrize(
    ("tail", "match"),
    [(b"j", "stray"), (b"junk", "not a zstd frame"), (b"\x50\x2a\x4d\x18\x09", "skippable")],
)
def test_zstd_trailing_bytes(tail: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        zstd_decompress_bounded(zstd_compress(b"abc") + tail, 10)


def test_zstd_lying_content_size_does_not_allocate() -> None:
    frame = bytearray(zstd_compress(bytes(1000)))
    # Rewrite the frame to claim an 8-byte content size of 2**60: the limit still holds.
    assert frame[4] >> 6 in (0, 1, 2)
    hostile = bytes(frame[:4]) + bytes([0xE0 | (frame[4] & 0x1F)]) + (1 << 60).to_bytes(8, "little")
    hostile += bytes(frame[5 + {0: 1, 1: 2, 2: 4}[frame[4] >> 6] :])
    with pytest.raises(DecodeError):
        zstd_decompress_bounded(hostile, 4096)


def test_zstd_reserved_bits_and_empty_input() -> None:
    frame = bytearray(zstd_compress(b"abc"))
    frame[4] |= 0x08
    with pytest.raises(DecodeError, match="reserved"):
        zstd_decompress_bounded(bytes(frame), 10)
    assert zstd_decompress_bounded(b"", 10) == b""


def test_zstd_context_is_reusable_after_an_error() -> None:
    frame = zstd_compress(RAW)
    for bad in (frame[:-9] + bytes(9), frame[:40] + bytes(len(frame) - 40)):
        with pytest.raises(DecodeError):
            zstd_decompress_bounded(bad, len(RAW))
        assert zstd_decompress_bounded(frame, len(RAW)) == RAW

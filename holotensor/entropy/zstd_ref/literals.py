"""The literals section of a compressed block (RFC 8878 §3.1.1.3.1)."""

from __future__ import annotations

from dataclasses import dataclass

from holotensor.entropy.zstd_ref.huffman import HuffmanTable, decode_streams, read_tree
from holotensor.errors import DecodeError

__all__ = ["LITERALS_TYPES", "LiteralsInfo", "read_literals"]

LITERALS_TYPES = ("raw", "rle", "compressed", "treeless")
_MIN_FOUR_STREAM_LITERALS = 6


@dataclass(frozen=True)
class LiteralsInfo:
    """What a literals section header declared.

    ``offset`` is the absolute position of the section header. ``streams`` and
    ``huffman_max_bits`` are None for raw and RLE literals; ``weights_mode`` (``"direct"`` or
    ``"fse"``) is set only where a tree description is present.
    """

    offset: int
    type: str
    regenerated_size: int
    compressed_size: int
    streams: int | None = None
    weights_mode: str | None = None
    huffman_max_bits: int | None = None


def read_literals(
    buf: bytes, pos: int, end: int, previous: HuffmanTable | None, max_size: int
) -> tuple[bytes, int, HuffmanTable | None, LiteralsInfo]:
    """Decode the literals section at ``buf[pos:end]`` (``end`` = end of the block).

    ``previous`` is the frame's last Huffman table (or the dictionary's), needed by treeless
    literals; ``max_size`` is the most bytes the block may decode to, checked before the
    literals are allocated. Returns ``(literals, end_of_section, table_for_next_block, info)``.
    """
    if pos >= end:
        raise DecodeError(f"literals section header at byte {pos} is missing")
    b0 = buf[pos]
    kind = LITERALS_TYPES[b0 & 3]
    size_format = (b0 >> 2) & 3
    if kind in ("raw", "rle"):
        header_size = {0: 1, 2: 1, 1: 2, 3: 3}[size_format]
        if pos + header_size > end:
            raise DecodeError(f"literals section header at byte {pos} runs past the block end")
        value = int.from_bytes(buf[pos : pos + header_size], "little")
        regenerated = value >> 3 if header_size == 1 else value >> 4
        if regenerated > max_size:
            raise DecodeError(
                f"literals at byte {pos}: {regenerated} literals exceed the block's limit of {max_size} bytes"
            )
        data_start = pos + header_size
        stored = regenerated if kind == "raw" else 1
        if data_start + stored > end:
            raise DecodeError(f"{kind} literals at byte {pos}: {stored} bytes do not fit in the block")
        if kind == "raw":
            literals = bytes(buf[data_start : data_start + regenerated])
        else:
            literals = bytes([buf[data_start]]) * regenerated
        return literals, data_start + stored, previous, LiteralsInfo(pos, kind, regenerated, stored)

    streams = 1 if size_format == 0 else 4
    header_size, field_bits = {0: (3, 10), 1: (3, 10), 2: (4, 14), 3: (5, 18)}[size_format]
    if pos + header_size > end:
        raise DecodeError(f"literals section header at byte {pos} runs past the block end")
    value = int.from_bytes(buf[pos : pos + header_size], "little")
    mask = (1 << field_bits) - 1
    regenerated = (value >> 4) & mask
    compressed = (value >> (4 + field_bits)) & mask
    if regenerated > max_size:
        raise DecodeError(
            f"literals at byte {pos}: {regenerated} literals exceed the block's limit of {max_size} bytes"
        )
    if streams == 4 and regenerated < _MIN_FOUR_STREAM_LITERALS:
        raise DecodeError(f"literals at byte {pos}: 4 streams for only {regenerated} literals")
    data_start = pos + header_size
    data_end = data_start + compressed
    if compressed == 0 or data_end > end:
        raise DecodeError(
            f"{kind} literals at byte {pos}: compressed size {compressed} does not fit in the block"
        )
    if kind == "compressed":
        table, streams_start, weights_mode = read_tree(buf, data_start, data_end)
    elif previous is None:
        raise DecodeError(
            f"treeless literals at byte {pos} but no earlier Huffman table in frame or dictionary"
        )
    else:
        table, streams_start, weights_mode = previous, data_start, None
    literals = decode_streams(table, buf, streams_start, data_end, regenerated, streams)
    info = LiteralsInfo(pos, kind, regenerated, compressed, streams, weights_mode, table.max_bits)
    return literals, data_end, table, info

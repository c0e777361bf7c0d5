"""Frames, blocks and sequence execution: the top of the reference zstd decoder (RFC 8878 §3).

One code path serves both entry points: :func:`parse_frames` decodes every block's literals and
sequences (so it can report what each block used) without executing matches, and
:func:`decompress` additionally executes them and checks the content checksum. Every size read
from the data is checked against the bytes present and against ``max_output_size`` before
output grows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import xxhash

from holotensor.entropy.zstd_ref.dictionary import Dictionary, load_dictionary
from holotensor.entropy.zstd_ref.fse import FSETable
from holotensor.entropy.zstd_ref.huffman import HuffmanTable
from holotensor.entropy.zstd_ref.literals import LiteralsInfo, read_literals
from holotensor.entropy.zstd_ref.sequences import SequencesInfo, read_sequences
from holotensor.errors import ChecksumError, DecodeError, HoloTensorError, TruncatedError

__all__ = ["BlockInfo", "FrameInfo", "decompress", "parse_frames"]

ZSTD_MAGIC = 0xFD2FB528
SKIPPABLE_MAGIC_MIN = 0x184D2A50
SKIPPABLE_MAGIC_MAX = 0x184D2A5F
BLOCK_SIZE_MAX = 128 * 1024
# libzstd (64-bit) refuses windows beyond 2**31 (+ mantissa); so does this decoder.
MAX_WINDOW_LOG = 31
BLOCK_TYPES = ("raw", "rle", "compressed")


@dataclass(frozen=True)
class BlockInfo:
    """One block: where it starts, its header fields and, for compressed blocks, its sections.

    With ``parse_frames(..., keep_sections=True)`` a compressed block also keeps its decoded
    literals and its sequences as an ``(n, 3)`` int64 array of (literal length, offset, match
    length), offsets already resolved from repeat codes: the per-stage oracles for kernels.
    """

    offset: int
    last: bool
    type: str
    size: int
    decoded_size: int
    literals: LiteralsInfo | None = None
    sequences: SequencesInfo | None = None
    literal_bytes: bytes | None = None
    sequence_array: np.ndarray | None = None


@dataclass(frozen=True)
class FrameInfo:
    """One frame as found in the data.

    For ``kind == "skippable"`` only ``index``, ``offset``, ``size``, ``magic`` and
    ``user_data_size`` are meaningful. ``checksum`` is the stored 32-bit value (None without the
    flag); ``dictionary_id`` is None when the header has no Dictionary_ID field.
    """

    index: int
    offset: int
    kind: str
    size: int
    magic: int
    user_data_size: int = 0
    header_size: int = 0
    frame_content_size_flag: int = 0
    single_segment: bool = False
    unused_bit: bool = False
    content_checksum_flag: bool = False
    dictionary_id_flag: int = 0
    window_descriptor: int | None = None
    window_size: int = 0
    dictionary_id: int | None = None
    content_size: int | None = None
    checksum: int | None = None
    decoded_size: int = 0
    blocks: tuple[BlockInfo, ...] = ()


@dataclass
class _Entropy:
    """What carries from block to block inside a frame: tables for treeless/repeat modes and
    the repeat offsets."""

    huffman: HuffmanTable | None
    tables: tuple[FSETable | None, FSETable | None, FSETable | None]
    rep: list[int] = field(default_factory=lambda: [1, 4, 8])


@dataclass
class _Output:
    """The decoded bytes of the whole call plus the budget they must stay within."""

    data: bytearray
    limit: int


def _u(buf: bytes, pos: int, n: int) -> int:
    return int.from_bytes(buf[pos : pos + n], "little")


def _need(buf: bytes, pos: int, n: int, what: str) -> None:
    if pos + n > len(buf):
        raise TruncatedError(f"{what} at byte {pos} needs {n} bytes, only {len(buf) - pos} remain")


def _execute(
    history: bytearray, base: int, window: int, literals: bytes, sequences: list, block_pos: int
) -> None:
    """Append the block's output to ``history`` (dictionary content + frame output so far).

    While the frame has produced at most ``window`` bytes, a match may reach back into the
    dictionary; after that only ``window`` bytes back (§5, Content).
    """
    lit = 0
    for i, (literal_length, offset, match_length) in enumerate(sequences):
        history += literals[lit : lit + literal_length]
        lit += literal_length
        produced = len(history) - base
        reach = produced + base if produced <= window else window
        if offset > reach:
            raise DecodeError(
                f"block at byte {block_pos}, sequence {i}: offset {offset} reaches before the "
                f"{'window' if produced > window else 'start of the data'} ({reach} bytes back)"
            )
        start = len(history) - offset
        if offset >= match_length:
            history += history[start : start + match_length]
        else:
            pattern = history[start:]
            history += (pattern * (match_length // offset + 1))[:match_length]
    history += literals[lit:]


def _compressed_block(
    buf: bytes, pos: int, end: int, entropy: _Entropy, room: int, binding: str
) -> tuple[bytes, list, LiteralsInfo, SequencesInfo, int]:
    """Decode literals and sequences of the block ``buf[pos:end]``, which may produce ``room``
    bytes before it hits ``binding`` (a limit's name, for the message)."""
    literals, p, entropy.huffman, lit_info = read_literals(buf, pos, end, entropy.huffman, room)
    sequences, entropy.tables, seq_info = read_sequences(buf, p, end, entropy.tables, entropy.rep, room)
    used = sum(s[0] for s in sequences)
    if used > len(literals):
        raise DecodeError(
            f"block at byte {pos}: sequences use {used} literals, the section has {len(literals)}"
        )
    decoded = len(literals) + sum(s[2] for s in sequences)
    if decoded > room:
        raise DecodeError(f"block at byte {pos} decodes to {decoded} bytes, over {binding} ({room} left)")
    return literals, sequences, lit_info, seq_info, decoded


def _read_header(buf: bytes, pos: int, index: int) -> tuple[FrameInfo, int]:
    """Parse magic and Frame_Header at ``buf[pos]``; returns the header fields and where the
    first block starts (for skippable frames: the whole frame and where it ends)."""
    _need(buf, pos, 4, "frame magic number")
    magic = _u(buf, pos, 4)
    if SKIPPABLE_MAGIC_MIN <= magic <= SKIPPABLE_MAGIC_MAX:
        _need(buf, pos + 4, 4, "skippable frame size")
        size = _u(buf, pos + 4, 4)
        _need(buf, pos + 8, size, "skippable frame user data")
        return FrameInfo(index, pos, "skippable", 8 + size, magic, user_data_size=size), pos + 8 + size
    if magic != ZSTD_MAGIC:
        raise DecodeError(f"unknown magic number {magic:#010x} at byte {pos}")

    _need(buf, pos + 4, 1, "frame header descriptor")
    fhd = buf[pos + 4]
    fcs_flag, single, unused, reserved = fhd >> 6, (fhd >> 5) & 1, (fhd >> 4) & 1, (fhd >> 3) & 1
    checksum_flag, did_flag = (fhd >> 2) & 1, fhd & 3
    if reserved:
        raise DecodeError(f"frame header descriptor at byte {pos + 4} has the reserved bit set")
    did_size = (0, 1, 2, 4)[did_flag]
    fcs_size = (1 if single else 0, 2, 4, 8)[fcs_flag]
    header_size = 1 + (not single) + did_size + fcs_size
    _need(buf, pos + 4, header_size, "frame header")
    p = pos + 5
    window_descriptor = None
    window = 0
    if not single:
        window_descriptor = buf[p]
        window_log = 10 + (window_descriptor >> 3)
        if window_log > MAX_WINDOW_LOG:
            raise DecodeError(
                f"window descriptor at byte {p}: window log {window_log} exceeds {MAX_WINDOW_LOG}"
            )
        window = (1 << window_log) + ((1 << window_log) >> 3) * (window_descriptor & 7)
        p += 1
    dictionary_id = _u(buf, p, did_size) if did_size else None
    p += did_size
    content_size = None
    if fcs_size:
        # The 2-byte field stores size - 256; with Single_Segment_flag the window is the content.
        content_size = _u(buf, p, fcs_size) + (256 if fcs_size == 2 else 0)
        if single:
            window = content_size
    p += fcs_size
    header = FrameInfo(
        index,
        pos,
        "zstd",
        0,
        magic,
        header_size=header_size,
        frame_content_size_flag=fcs_flag,
        single_segment=bool(single),
        unused_bit=bool(unused),
        content_checksum_flag=bool(checksum_flag),
        dictionary_id_flag=did_flag,
        window_descriptor=window_descriptor,
        window_size=window,
        dictionary_id=dictionary_id,
        content_size=content_size,
    )
    return header, p


def _frame(
    buf: bytes, pos: int, index: int, dictionary: Dictionary | None, out: _Output | None, keep: bool
) -> tuple[FrameInfo, int]:
    """Decode the frame at ``buf[pos]``; append to ``out`` unless only parsing; ``keep`` stores
    each compressed block's literals and sequences in its BlockInfo."""
    header, p = _read_header(buf, pos, index)
    if header.kind == "skippable":
        return header, p
    dictionary_id, content_size, window = header.dictionary_id, header.content_size, header.window_size
    if dictionary_id:
        if dictionary is None and out is not None:
            raise DecodeError(f"frame at byte {pos} needs dictionary {dictionary_id}, none was given")
        if dictionary is not None and dictionary.dictionary_id != dictionary_id:
            raise DecodeError(
                f"frame at byte {pos} needs dictionary {dictionary_id}, got id {dictionary.dictionary_id}"
            )

    block_max = min(window, BLOCK_SIZE_MAX)
    if dictionary is None:
        entropy = _Entropy(None, (None, None, None))
        history = bytearray()
    else:
        entropy = _Entropy(
            dictionary.huffman, (dictionary.ll, dictionary.of, dictionary.ml), list(dictionary.repeat_offsets)
        )
        history = bytearray(dictionary.content) if out is not None else bytearray()
    base = len(history)
    decoded = 0
    blocks: list[BlockInfo] = []
    while True:
        _need(buf, p, 3, "block header")
        block_header = _u(buf, p, 3)
        last, kind, size = bool(block_header & 1), (block_header >> 1) & 3, block_header >> 3
        if kind == 3:
            raise DecodeError(f"block header at byte {p} has the reserved block type 3")
        if size > block_max:
            raise DecodeError(f"block at byte {p}: size {size} exceeds the block maximum {block_max}")
        content = p + 3
        _need(buf, content, 1 if kind == 1 else size, f"{BLOCK_TYPES[kind]} block content")
        # The most this block may add: block maximum, what the header's content size leaves,
        # and what max_output_size leaves. Checked before any output is allocated.
        limits = {"the block maximum": block_max}
        if content_size is not None:
            limits["the frame content size"] = content_size - decoded
        if out is not None:
            limits[f"max_output_size={out.limit}"] = out.limit - len(out.data) - decoded
        binding = min(limits, key=limits.__getitem__)
        room = limits[binding]
        sections = {}
        literals_info = sequences_info = None
        if kind == 2:
            literals, sequences, literals_info, sequences_info, block_size = _compressed_block(
                buf, content, content + size, entropy, room, binding
            )
            if keep:
                sections = {
                    "literal_bytes": literals,
                    "sequence_array": np.array(sequences, dtype=np.int64).reshape(-1, 3),
                }
        elif size > room:
            raise DecodeError(
                f"{BLOCK_TYPES[kind]} block at byte {p}: {size} bytes exceed {binding} ({room} left)"
            )
        else:
            block_size = size
        if out is not None:
            if kind == 0:
                history += buf[content : content + size]
            elif kind == 1:
                history += bytes([buf[content]]) * size
            else:
                _execute(history, base, window, literals, sequences, p)
        decoded += block_size
        blocks.append(
            BlockInfo(p, last, BLOCK_TYPES[kind], size, block_size, literals_info, sequences_info, **sections)
        )
        p = content + (1 if kind == 1 else size)
        if last:
            break
    if content_size is not None and decoded != content_size:
        raise DecodeError(
            f"frame at byte {pos} decodes to {decoded} bytes, its header declares {content_size}"
        )
    checksum = None
    if header.content_checksum_flag:
        _need(buf, p, 4, "content checksum")
        checksum = _u(buf, p, 4)
        if out is not None:
            actual = xxhash.xxh64(memoryview(history)[base:]).intdigest() & 0xFFFFFFFF
            if actual != checksum:
                raise ChecksumError(
                    f"content checksum at byte {p}: stored {checksum:#010x}, computed {actual:#010x}"
                )
        p += 4
    if out is not None:
        out.data += memoryview(history)[base:]
    return replace(header, size=p - pos, checksum=checksum, decoded_size=decoded, blocks=tuple(blocks)), p


def _frames(
    data: bytes, dictionary: bytes | None, out: _Output | None, keep: bool = False
) -> list[FrameInfo]:
    buf = bytes(data)
    if not buf:
        raise TruncatedError("no zstd frame: the input is empty")
    parsed = load_dictionary(dictionary) if dictionary is not None else None
    infos: list[FrameInfo] = []
    pos = 0
    while pos < len(buf):
        index = len(infos)
        try:
            info, pos = _frame(buf, pos, index, parsed, out, keep)
        except HoloTensorError as err:
            raise type(err)(f"zstd frame {index} (at byte {pos}): {err.reason}") from err
        infos.append(info)
    return infos


def parse_frames(
    data: bytes, *, dictionary: bytes | None = None, keep_sections: bool = False
) -> list[FrameInfo]:
    """Describe every frame and block of ``data`` without executing matches.

    Literals and sequences are fully decoded (so bad entropy data is found, and repeat-offset
    use is counted), but nothing is copied from history, so offsets and the checksum are not
    checked; ``decompress`` does that. ``dictionary`` supplies tables for treeless and repeat
    modes in the first block; a frame naming a Dictionary_ID parses without it as long as it
    does not need its tables. ``keep_sections`` keeps every compressed block's decoded literals
    and sequences (see :class:`BlockInfo`), at most ~128 KiB of literals per block.

    Raises:
        DecodeError / TruncatedError: malformed data, naming the frame index and byte position.

    Example:
        >>> import zstandard
        >>> [f.kind for f in parse_frames(zstandard.compress(b"abc" * 100))]
        ['zstd']
    """
    return _frames(data, dictionary, None, keep_sections)


def decompress(data: bytes, *, dictionary: bytes | None = None, max_output_size: int) -> bytes:
    """Decode all frames of ``data`` (skippable frames are skipped) and return their content.

    Args:
        data: one or more concatenated zstd and skippable frames.
        dictionary: a formatted zstd dictionary (magic 0xEC30A437) or raw content (>= 8 bytes);
            a frame naming a Dictionary_ID must be given the dictionary with that id.
        max_output_size: the most bytes the call may produce; more raises ``DecodeError``
            before anything beyond it is allocated.

    Raises:
        DecodeError / TruncatedError: malformed data; ChecksumError: a content checksum differs.
        ValueError: ``max_output_size`` is negative.

    Example:
        >>> import zstandard
        >>> decompress(zstandard.compress(b"abc" * 100), max_output_size=300) == b"abc" * 100
        True
    """
    if max_output_size < 0:
        raise ValueError(f"max_output_size must be >= 0, got {max_output_size}")
    out = _Output(bytearray(), max_output_size)
    _frames(data, dictionary, out)
    return bytes(out.data)

"""The sequences section of a compressed block (RFC 8878 §3.1.1.3.2) and repeat offsets.

Three FSE states (literal length, offset, match length) share one backward bitstream. Per
sequence the extra bits are read offset, match length, literal length; the states are then
updated literal length, match length, offset (not after the last sequence). Offset values 1..3
name repeat offsets, shifted by one when the literal length is 0 (§3.1.2.5).
"""

from __future__ import annotations

from dataclasses import dataclass

from holotensor.entropy.zstd_ref.bits import BackwardBitReader
from holotensor.entropy.zstd_ref.fse import (
    LL_DEFAULT,
    ML_DEFAULT,
    OF_DEFAULT,
    FSETable,
    build_table,
    read_distribution,
    rle_table,
)
from holotensor.errors import DecodeError

__all__ = [
    "LL_LIMITS",
    "ML_LIMITS",
    "MODES",
    "OF_LIMITS",
    "SequencesInfo",
    "read_sequences",
    "resolve_offset",
]

MODES = ("predefined", "rle", "fse", "repeat")
# (largest code, largest FSE accuracy log, predefined table) per symbol type (§3.1.1.3.2.1).
LL_LIMITS = (35, 9, LL_DEFAULT)
OF_LIMITS = (31, 8, OF_DEFAULT)
ML_LIMITS = (52, 9, ML_DEFAULT)

_LL_BASE = [*range(16), 16, 18, 20, 22, 24, 28, 32, 40, 48, 64, 128, 256, 512, 1024, 2048, 4096]
_LL_BASE += [8192, 16384, 32768, 65536]
_LL_BITS = [0] * 16 + [1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
_ML_BASE = [c + 3 for c in range(32)] + [
    35,
    37,
    39,
    41,
    43,
    47,
    51,
    59,
    67,
    83,
    99,
    131,
    259,
    515,
    1027,
    2051,
]
_ML_BASE += [4099, 8195, 16387, 32771, 65539]
_ML_BITS = [0] * 32 + [1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]


@dataclass(frozen=True)
class SequencesInfo:
    """What a sequences section held: its absolute position, the count, the three modes (None
    when the count is 0), how many sequences used a repeat offset, and how many of those hit
    the literal-length-0 shift."""

    offset: int
    count: int
    ll_mode: str | None = None
    of_mode: str | None = None
    ml_mode: str | None = None
    repeat_offsets: int = 0
    repeat_offsets_ll0: int = 0


def _read_table(
    buf: bytes, pos: int, end: int, mode: str, previous: FSETable | None, limits: tuple, what: str
) -> tuple[FSETable, int]:
    max_symbol, max_log, predefined = limits
    if mode == "predefined":
        return predefined, pos
    if mode == "rle":
        if pos >= end:
            raise DecodeError(f"{what} RLE symbol at byte {pos} is missing")
        if buf[pos] > max_symbol:
            raise DecodeError(f"{what} RLE symbol {buf[pos]} at byte {pos} exceeds {max_symbol}")
        return rle_table(buf[pos]), pos + 1
    if mode == "repeat":
        if previous is None:
            raise DecodeError(
                f"{what} repeat mode at byte {pos} with no earlier table in frame or dictionary"
            )
        return previous, pos
    probs, log, stop = read_distribution(
        buf, pos, end, max_accuracy_log=max_log, max_symbol=max_symbol, what=f"{what} FSE table"
    )
    return build_table(probs, log), stop


def resolve_offset(value: int, literal_length: int, rep: list[int]) -> int:
    """Turn an ``Offset_Value`` into a distance and update the repeat offsets ``rep`` in place.

    Returns 0 for the one invalid outcome (``Repeated_Offset1 - 1`` == 0); the caller rejects it.
    """
    if value > 3:
        offset = value - 3
        rep[:] = [offset, rep[0], rep[1]]
        return offset
    index = value - 1 + (literal_length == 0)
    if index == 0:
        return rep[0]
    if index == 3:
        offset = rep[0] - 1
        rep[:] = [offset, rep[0], rep[1]]
    elif index == 1:
        offset = rep[1]
        rep[:] = [offset, rep[0], rep[2]]
    else:
        offset = rep[2]
        rep[:] = [offset, rep[0], rep[1]]
    return offset


def read_sequences(
    buf: bytes,
    pos: int,
    end: int,
    tables: tuple[FSETable | None, FSETable | None, FSETable | None],
    rep: list[int],
    max_size: int,
) -> tuple[list[tuple[int, int, int]], tuple, SequencesInfo]:
    """Decode the sequences section ``buf[pos:end]`` into ``(literal_length, offset, match_length)``.

    ``tables`` are the previous (LL, OF, ML) tables for repeat mode; ``rep`` the repeat offsets,
    updated in place; ``max_size`` bounds the block's output (every match is >= 3 bytes, so it
    bounds the count before anything is decoded). Returns ``(sequences, tables_for_next_block, info)``; a section with no
    sequences leaves the tables as they were.
    """
    if pos >= end:
        raise DecodeError(f"sequences section at byte {pos} is missing")
    b0 = buf[pos]
    header_size = 1 if b0 < 128 else 2 if b0 < 255 else 3
    if pos + header_size > end:
        raise DecodeError(f"sequences section header at byte {pos} runs past the block end")
    if b0 < 128:
        count = b0
    elif b0 < 255:
        count = ((b0 - 128) << 8) + buf[pos + 1]
    else:
        count = buf[pos + 1] + (buf[pos + 2] << 8) + 0x7F00
    p = pos + header_size
    if 3 * count > max_size:
        raise DecodeError(
            f"sequences section at byte {pos}: {count} sequences cannot fit in {max_size} bytes"
        )
    if count == 0:
        if p != end:
            raise DecodeError(f"sequences section at byte {pos}: {end - p} bytes follow a count of zero")
        return [], tables, SequencesInfo(pos, 0)
    if p >= end:
        raise DecodeError(f"sequences section at byte {pos}: compression modes byte is missing")
    modes_byte = buf[p]
    if modes_byte & 3:
        raise DecodeError(f"sequences section at byte {p}: reserved bits of the modes byte are set")
    ll_mode, of_mode, ml_mode = (
        MODES[modes_byte >> 6],
        MODES[(modes_byte >> 4) & 3],
        MODES[(modes_byte >> 2) & 3],
    )
    p += 1
    ll, p = _read_table(buf, p, end, ll_mode, tables[0], LL_LIMITS, "literal length")
    of, p = _read_table(buf, p, end, of_mode, tables[1], OF_LIMITS, "offset")
    ml, p = _read_table(buf, p, end, ml_mode, tables[2], ML_LIMITS, "match length")

    bits = BackwardBitReader(buf, p, end, "sequence bitstream")
    ll_state = bits.read(ll.accuracy_log)
    of_state = bits.read(of.accuracy_log)
    ml_state = bits.read(ml.accuracy_log)
    sequences = []
    repeats = repeats_ll0 = 0
    for i in range(count):
        of_code = of.symbols[of_state]
        ml_code = ml.symbols[ml_state]
        ll_code = ll.symbols[ll_state]
        offset_value = (1 << of_code) + bits.read(of_code)
        match_length = _ML_BASE[ml_code] + bits.read(_ML_BITS[ml_code])
        literal_length = _LL_BASE[ll_code] + bits.read(_LL_BITS[ll_code])
        if offset_value <= 3:
            repeats += 1
            repeats_ll0 += literal_length == 0
        offset = resolve_offset(offset_value, literal_length, rep)
        if offset == 0:
            raise DecodeError(f"sequence {i} of the block at byte {pos}: repeat offset 1 minus one is zero")
        sequences.append((literal_length, offset, match_length))
        if i + 1 < count:
            ll_state = ll.baselines[ll_state] + bits.read(ll.nbits[ll_state])
            ml_state = ml.baselines[ml_state] + bits.read(ml.nbits[ml_state])
            of_state = of.baselines[of_state] + bits.read(of.nbits[of_state])
    if bits.bitpos != 0:
        raise DecodeError(f"sequence bitstream at byte {p}: {bits.bitpos} bits left after {count} sequences")
    info = SequencesInfo(pos, count, ll_mode, of_mode, ml_mode, repeats, repeats_ll0)
    return sequences, (ll, of, ml), info

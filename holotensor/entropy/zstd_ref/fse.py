"""FSE (tabled ANS) tables: reading a table description and building the decoding table.

RFC 8878 §4.1.1 describes a distribution of ``1 << Accuracy_Log`` probability points over
symbols ``0..last``; §4.1.1 (decoding tables) turns it into one cell per state holding the symbol
and how to reach the next state (``Number_of_Bits`` to read, ``Baseline`` to add). The predefined
distributions of §3.1.1.3.2.2 are built here with the same code, so Appendix A's tables are a
direct check of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from holotensor.entropy.zstd_ref.bits import ForwardBitReader
from holotensor.errors import DecodeError

__all__ = [
    "LL_DEFAULT",
    "ML_DEFAULT",
    "OF_DEFAULT",
    "FSETable",
    "build_table",
    "read_distribution",
    "rle_table",
]


@dataclass(frozen=True)
class FSETable:
    """A decoding table: for state ``s``, ``symbols[s]`` is decoded and the next state is
    ``baselines[s] + read(nbits[s])``. Plain lists, because the decoder indexes them per symbol."""

    accuracy_log: int
    symbols: list[int]
    nbits: list[int]
    baselines: list[int]


def read_distribution(
    buf: bytes, start: int, end: int, *, max_accuracy_log: int, max_symbol: int, what: str
) -> tuple[list[int], int, int]:
    """Read an FSE table description from ``buf[start:end]``.

    Returns ``(probabilities, accuracy_log, end_byte)`` where a probability of -1 means "less
    than 1" and ``end_byte`` is the absolute offset just after the description (it uses whole
    bytes). A value can never overshoot the points left, so the loop ends exactly at
    ``1 << accuracy_log``. Raises ``DecodeError`` for a too-large accuracy log, symbols beyond
    ``max_symbol``, a description running past ``end`` or fewer than two used symbols.
    """
    bits = ForwardBitReader(buf, start, end, what)
    accuracy_log = bits.read(4) + 5
    if accuracy_log > max_accuracy_log:
        raise DecodeError(f"{what} at byte {start}: accuracy log {accuracy_log} exceeds {max_accuracy_log}")
    remaining = 1 << accuracy_log
    probs: list[int] = []
    while remaining > 0:
        if len(probs) > max_symbol:
            raise DecodeError(f"{what} at byte {start}: describes symbols beyond {max_symbol}")
        # Values 0..remaining+1 are possible; the smallest ones take one bit less (§4.1.1).
        max_value = remaining + 1
        width = max_value.bit_length()
        short_values = (1 << width) - 1 - max_value
        value = bits.read(width - 1)
        if value >= short_values:
            value += bits.read(1) << (width - 1)
            if value >= 1 << (width - 1):
                value -= short_values
        prob = value - 1
        probs.append(prob)
        remaining -= 1 if prob == -1 else prob
        if prob == 0:
            while True:
                repeat = bits.read(2)
                probs.extend([0] * repeat)
                if len(probs) > max_symbol:
                    raise DecodeError(f"{what} at byte {start}: zero run reaches beyond symbol {max_symbol}")
                if repeat != 3:
                    break
    if sum(1 for p in probs if p != 0) < 2:
        raise DecodeError(f"{what} at byte {start}: fewer than two symbols have a probability")
    return probs, accuracy_log, bits.end_byte


def build_table(probs: list[int], accuracy_log: int) -> FSETable:
    """Spread the symbols over ``1 << accuracy_log`` states and derive each state's transition.

    "Less than 1" symbols take the last cells, one each, and reset the state with a full
    ``accuracy_log``-bit read; the others are spread with the fixed step
    ``size/2 + size/8 + 3``. Each symbol's cells, in state order, get ``x = count .. 2*count-1``
    and read ``accuracy_log - floor(log2 x)`` bits onto baseline ``(x << nbits) - size``.
    """
    size = 1 << accuracy_log
    counts = np.asarray(probs, dtype=np.int64)
    symbols = np.zeros(size, dtype=np.int64)
    low = np.flatnonzero(counts == -1)
    symbols[size - 1 - np.arange(low.size)] = low
    step = (size >> 1) + (size >> 3) + 3
    positions = (np.arange(size, dtype=np.int64) * step) & (size - 1)
    positions = positions[positions < size - low.size]
    used = np.flatnonzero(counts > 0)
    symbols[positions] = np.repeat(used, counts[used])

    order = np.argsort(symbols, kind="stable")
    sorted_symbols = symbols[order]
    rank = np.empty(size, dtype=np.int64)
    rank[order] = np.arange(size) - np.searchsorted(sorted_symbols, sorted_symbols, side="left")
    x = np.where(counts[symbols] == -1, 1, counts[symbols]) + rank
    nbits = accuracy_log - (np.frexp(x.astype(np.float64))[1] - 1)
    baselines = (x << nbits) - size
    return FSETable(accuracy_log, symbols.tolist(), nbits.tolist(), baselines.tolist())


def rle_table(symbol: int) -> FSETable:
    """The one-state table of ``RLE_Mode``: always ``symbol``, never reads a bit."""
    return FSETable(0, [symbol], [0], [0])


LL_DEFAULT = build_table(
    [
        4,
        3,
        2,
        2,
        2,
        2,
        2,
        2,
        2,
        2,
        2,
        2,
        2,
        1,
        1,
        1,
        2,
        2,
        2,
        2,
        2,
        2,
        2,
        2,
        2,
        3,
        2,
        1,
        1,
        1,
        1,
        1,
        -1,
        -1,
        -1,
        -1,
    ],
    6,
)
ML_DEFAULT = build_table([1, 4, 3, 2, 2, 2, 2, 2, 2] + [1] * 37 + [-1] * 7, 6)
OF_DEFAULT = build_table([1, 1, 1, 1, 1, 1, 2, 2, 2] + [1] * 15 + [-1] * 5, 5)

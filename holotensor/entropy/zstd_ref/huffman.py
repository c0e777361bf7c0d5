"""Huffman literals: the tree description (weights) and the 1- or 4-stream decoders.

RFC 8878 §4.2.1: weights come either as 4-bit fields (header byte >= 128) or FSE-compressed
with two interleaved states sharing one table (header byte < 128 = compressed size). The last
symbol's weight is implied by completing the sum of ``2**(w-1)`` to a power of two, which also
gives ``Max_Number_of_Bits``. Codes are handed out in order of (weight, symbol), shortest codes
to the heaviest weights, and a stream must be consumed exactly to its first bit (§4.2.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from holotensor.entropy.zstd_ref.bits import BackwardBitReader
from holotensor.entropy.zstd_ref.fse import build_table, read_distribution
from holotensor.errors import DecodeError

__all__ = ["MAX_CODE_BITS", "HuffmanTable", "decode_streams", "read_tree"]

MAX_CODE_BITS = 11
_MAX_WEIGHTS = 255
_WEIGHTS_MAX_ACCURACY_LOG = 6


@dataclass(frozen=True)
class HuffmanTable:
    """Lookup by the next ``max_bits`` bits: ``symbols[v]`` is decoded, ``nbits[v]`` consumed."""

    max_bits: int
    symbols: list[int]
    nbits: list[int]


def _fse_weights(buf: bytes, start: int, end: int) -> list[int]:
    probs, log, stream_start = read_distribution(
        buf,
        start,
        end,
        max_accuracy_log=_WEIGHTS_MAX_ACCURACY_LOG,
        max_symbol=255,
        what="Huffman weight table",
    )
    table = build_table(probs, log)
    bits = BackwardBitReader(buf, stream_start, end, "Huffman weight stream")
    sym, nb, base = table.symbols, table.nbits, table.baselines
    states = [bits.read_zero_filled(log), bits.read_zero_filled(log)]
    weights: list[int] = []
    turn = 0
    # The states alternate; the stream ends when an update overflows it, and then the other
    # state still holds one last symbol. Bounded: at most 255 weights are accepted.
    while len(weights) <= _MAX_WEIGHTS:
        state = states[turn]
        weights.append(sym[state])
        states[turn] = base[state] + bits.read_zero_filled(nb[state])
        if bits.overflowed:
            weights.append(sym[states[1 - turn]])
            break
        turn = 1 - turn
    if len(weights) > _MAX_WEIGHTS:
        raise DecodeError(f"Huffman weight stream at byte {start} decodes more than {_MAX_WEIGHTS} weights")
    return weights


def read_tree(buf: bytes, pos: int, end: int) -> tuple[HuffmanTable, int, str]:
    """Read a ``Huffman_Tree_Description`` at ``buf[pos]`` not reaching past ``end``.

    Returns ``(table, end_of_description, mode)`` with mode ``"direct"`` or ``"fse"``.
    """
    if pos >= end:
        raise DecodeError(f"Huffman tree description at byte {pos} is missing")
    header = buf[pos]
    if header >= 128:
        count = header - 127
        stop = pos + 1 + (count + 1) // 2
        if stop > end:
            raise DecodeError(f"Huffman tree description at byte {pos} runs past byte {end}")
        packed = np.frombuffer(buf, dtype=np.uint8, count=stop - pos - 1, offset=pos + 1)
        weights = np.stack([packed >> 4, packed & 15], axis=1).reshape(-1)[:count].tolist()
        mode = "direct"
    else:
        stop = pos + 1 + header
        if header == 0 or stop > end:
            raise DecodeError(f"Huffman tree description at byte {pos}: FSE size {header} does not fit")
        weights = _fse_weights(buf, pos + 1, stop)
        mode = "fse"
    return _table_from_weights(weights, pos), stop, mode


def _table_from_weights(weights: list[int], pos: int) -> HuffmanTable:
    if max(weights) > MAX_CODE_BITS:
        raise DecodeError(
            f"Huffman tree description at byte {pos}: weight {max(weights)} exceeds {MAX_CODE_BITS}"
        )
    total = sum(1 << (w - 1) for w in weights if w)
    if total == 0:
        raise DecodeError(f"Huffman tree description at byte {pos}: all weights are zero")
    max_bits = total.bit_length()
    rest = (1 << max_bits) - total
    if max_bits > MAX_CODE_BITS or rest & (rest - 1):
        raise DecodeError(
            f"Huffman tree description at byte {pos}: weights sum to {total}, which one more weight "
            f"cannot complete to a power of two <= 2**{MAX_CODE_BITS}"
        )
    full = np.asarray([*weights, rest.bit_length()], dtype=np.int64)
    if np.count_nonzero(full == 1) < 2:
        raise DecodeError(f"Huffman tree description at byte {pos}: fewer than two symbols of weight 1")
    present = np.flatnonzero(full)
    order = present[np.lexsort((present, full[present]))]
    spans = 1 << (full[order] - 1)
    symbols = np.repeat(order, spans)
    nbits = np.repeat(max_bits + 1 - full[order], spans)
    return HuffmanTable(max_bits, symbols.tolist(), nbits.tolist())


def _decode_stream(table: HuffmanTable, buf: bytes, start: int, end: int, count: int) -> bytes:
    bits = BackwardBitReader(buf, start, end, "Huffman literal stream")
    out = bytearray(count)
    width, symbols, nbits = table.max_bits, table.symbols, table.nbits
    for i in range(count):
        code = bits.peek(width)
        out[i] = symbols[code]
        bits.skip(nbits[code])
    if bits.bitpos != 0:
        raise DecodeError(
            f"Huffman literal stream at byte {start}: {bits.bitpos} bits left after {count} symbols"
        )
    return bytes(out)


def decode_streams(table: HuffmanTable, buf: bytes, start: int, end: int, count: int, streams: int) -> bytes:
    """Decode ``count`` literals from one stream, or from four behind a 6-byte jump table.

    With four streams, the first three regenerate ``(count + 3) // 4`` literals each and the
    last one the rest; the jump table gives the first three compressed sizes.
    """
    if streams == 1:
        return _decode_stream(table, buf, start, end, count)
    if end - start < 6:
        raise DecodeError(f"Huffman jump table at byte {start} does not fit in {end - start} bytes")
    sizes = [int.from_bytes(buf[start + 2 * i : start + 2 * i + 2], "little") for i in range(3)]
    sizes.append(end - start - 6 - sum(sizes))
    if sizes[3] < 1:
        raise DecodeError(
            f"Huffman jump table at byte {start}: stream sizes {sizes[:3]} exceed the literals size"
        )
    per_stream = (count + 3) // 4
    counts = [per_stream, per_stream, per_stream, count - 3 * per_stream]
    parts = []
    pos = start + 6
    for size, n in zip(sizes, counts, strict=True):
        parts.append(_decode_stream(table, buf, pos, pos + size, n))
        pos += size
    return b"".join(parts)

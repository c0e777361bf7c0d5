"""Zstandard dictionaries (RFC 8878 §5): formatted (magic 0xEC30A437) or raw content.

A formatted dictionary carries entropy tables (Huffman for literals, then FSE for offsets,
match lengths, literal lengths), three repeat offsets and the content that acts as history in
front of every frame. Any other byte string of at least 8 bytes is raw content, as libzstd's
automatic mode treats it.
"""

from __future__ import annotations

from dataclasses import dataclass

from holotensor.entropy.zstd_ref.fse import FSETable, build_table, read_distribution
from holotensor.entropy.zstd_ref.huffman import HuffmanTable, read_tree
from holotensor.entropy.zstd_ref.sequences import LL_LIMITS, ML_LIMITS, OF_LIMITS
from holotensor.errors import DecodeError, HoloTensorError

__all__ = ["DICTIONARY_MAGIC", "Dictionary", "load_dictionary"]

DICTIONARY_MAGIC = 0xEC30A437
_MIN_SIZE = 8


@dataclass(frozen=True)
class Dictionary:
    """A parsed dictionary; ``dictionary_id`` is 0 and the tables None for raw content."""

    dictionary_id: int
    content: bytes
    repeat_offsets: tuple[int, int, int] = (1, 4, 8)
    huffman: HuffmanTable | None = None
    ll: FSETable | None = None
    of: FSETable | None = None
    ml: FSETable | None = None


def _fse(buf: bytes, pos: int, limits: tuple, what: str) -> tuple[FSETable, int]:
    max_symbol, max_log, _ = limits
    probs, log, stop = read_distribution(
        buf, pos, len(buf), max_accuracy_log=max_log, max_symbol=max_symbol, what=what
    )
    return build_table(probs, log), stop


def load_dictionary(data: bytes) -> Dictionary:
    """Parse ``data`` as a dictionary; ``DecodeError`` (prefixed "dictionary") if malformed."""
    buf = bytes(data)
    if len(buf) < _MIN_SIZE:
        raise DecodeError(f"dictionary: {len(buf)} bytes, a dictionary needs at least {_MIN_SIZE}")
    if int.from_bytes(buf[:4], "little") != DICTIONARY_MAGIC:
        return Dictionary(0, buf)
    try:
        huffman, pos, _ = read_tree(buf, 8, len(buf))
        of, pos = _fse(buf, pos, OF_LIMITS, "offset FSE table")
        ml, pos = _fse(buf, pos, ML_LIMITS, "match length FSE table")
        ll, pos = _fse(buf, pos, LL_LIMITS, "literal length FSE table")
        if pos + 12 > len(buf):
            raise DecodeError(f"repeat offsets at byte {pos} run past the end ({len(buf)} bytes)")
        content = buf[pos + 12 :]
        reps = tuple(int.from_bytes(buf[pos + 4 * i : pos + 4 * i + 4], "little") for i in range(3))
        if not all(0 < r <= len(content) for r in reps):
            raise DecodeError(
                f"repeat offsets {reps} at byte {pos} must lie in 1..{len(content)} (content size)"
            )
    except HoloTensorError as err:
        raise type(err)(f"dictionary: {err.reason}") from err
    return Dictionary(int.from_bytes(buf[4:8], "little"), content, reps, huffman, ll, of, ml)

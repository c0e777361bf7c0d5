"""Bit readers for the two directions zstd uses (RFC 8878 §4.1, §4.2).

FSE table descriptions are read *forward* from the lowest bit of their first byte. Huffman
streams, the Huffman-weight stream and the sequence stream are read *backward*: the writer ends
each with a single 1 bit followed by zero padding, so reading starts just below the highest set
bit of the last byte and walks towards bit 0 of the first byte. Positions in error messages are
absolute byte offsets into the buffer the caller passed in.
"""

from __future__ import annotations

from holotensor.errors import DecodeError

__all__ = ["BackwardBitReader", "ForwardBitReader"]


class ForwardBitReader:
    """Little-endian bits from ``buf[start:end]``, lowest bit of the first byte first."""

    def __init__(self, buf: bytes, start: int, end: int, what: str) -> None:
        self._buf = buf
        self._start = start
        self._nbits = (end - start) * 8
        self._what = what
        self.bitpos = 0

    def read(self, n: int) -> int:
        """The next ``n`` bits as an integer; ``DecodeError`` if they lie past the end."""
        if self.bitpos + n > self._nbits:
            raise DecodeError(f"{self._what} at byte {self._start} runs past its end at byte {self.end_byte}")
        lo = self.bitpos >> 3
        hi = (self.bitpos + n + 7) >> 3
        value = int.from_bytes(self._buf[self._start + lo : self._start + hi], "little")
        value = (value >> (self.bitpos & 7)) & ((1 << n) - 1)
        self.bitpos += n
        return value

    @property
    def end_byte(self) -> int:
        """Absolute offset of the first byte not touched so far (bits round up to bytes)."""
        return self._start + (self.bitpos + 7) // 8


class BackwardBitReader:
    """Bits of a backward zstd bitstream ``buf[start:end]``, read from the end marker down.

    ``bitpos`` counts the useful bits not yet consumed; a well-formed stream ends with it at 0.
    """

    def __init__(self, buf: bytes, start: int, end: int, what: str) -> None:
        if end <= start:
            raise DecodeError(f"{what} at byte {start} is empty")
        last = buf[end - 1]
        if last == 0:
            raise DecodeError(
                f"{what} at byte {start}: last byte (byte {end - 1}) has no end-of-stream marker bit"
            )
        self._buf = buf
        self._start = start
        self._what = what
        self.bitpos = (end - start - 1) * 8 + last.bit_length() - 1

    def _bits(self, pos: int, n: int) -> int:
        lo = pos >> 3
        hi = (pos + n + 7) >> 3
        value = int.from_bytes(self._buf[self._start + lo : self._start + hi], "little")
        return (value >> (pos & 7)) & ((1 << n) - 1)

    def _overrun(self, n: int) -> DecodeError:
        return DecodeError(
            f"{self._what} at byte {self._start}: needs {n} more bits but only {max(self.bitpos, 0)} remain"
        )

    def read(self, n: int) -> int:
        """The next ``n`` bits; ``DecodeError`` if the stream has fewer left."""
        if n == 0:
            return 0
        if self.bitpos < n:
            raise self._overrun(n)
        self.bitpos -= n
        return self._bits(self.bitpos, n)

    def peek(self, n: int) -> int:
        """The next ``n`` bits without consuming them, zero-filled below the stream's first bit.

        Huffman decoding looks up a full ``Max_Number_of_Bits`` window even when the last codes
        are shorter; the zero fill makes that lookup well defined.
        """
        if self.bitpos >= n:
            return self._bits(self.bitpos - n, n)
        if self.bitpos <= 0:
            return 0
        return self._bits(0, self.bitpos) << (n - self.bitpos)

    def skip(self, n: int) -> None:
        """Consume ``n`` bits already looked at with :meth:`peek`."""
        if self.bitpos < n:
            raise self._overrun(n)
        self.bitpos -= n

    def read_zero_filled(self, n: int) -> int:
        """Like :meth:`read`, but bits below the start read as 0 and ``bitpos`` may go negative.

        Only the FSE-compressed Huffman weights use this: their decoder stops when a state
        update overflows the stream (RFC 8878 §4.2.1.2), so overflow is the end signal there.
        """
        value = self.peek(n)
        self.bitpos -= n
        return value

    @property
    def overflowed(self) -> bool:
        """True once more bits were consumed than the stream holds."""
        return self.bitpos < 0

"""Bounds-checked random access to a file's bytes (memory-mapped) or to bytes already in memory.

Readers of the upstream containers fetch headers, index entries and single blocks lazily through
this one place, so every range taken from file data is checked against the real length first.
"""

from __future__ import annotations

import mmap
import os
from types import TracebackType

from holotensor.errors import TruncatedError

__all__ = ["ByteSource"]


class ByteSource:
    """A read-only byte range source: a memory-mapped file or an in-memory buffer.

    Args:
        data: a path to open and map, or a bytes-like object to read from.
        name: how errors name the source (defaults to the path, or ``"<bytes>"``).
    """

    def __init__(
        self, data: str | os.PathLike[str] | bytes | bytearray | memoryview, *, name: str | None = None
    ):
        self._file = None
        self._map: mmap.mmap | None = None
        if isinstance(data, (bytes, bytearray, memoryview)):
            self._buf: bytes | memoryview | mmap.mmap = memoryview(data).cast("B").toreadonly()
            self.name = name if name is not None else "<bytes>"
        else:
            self.name = name if name is not None else os.fspath(data)
            self._file = open(data, "rb")  # noqa: SIM115  (closed by close())
            try:
                size = os.fstat(self._file.fileno()).st_size
                if size:
                    self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
                    self._buf = self._map
                else:
                    self._buf = b""
            except BaseException:
                self._file.close()
                raise
        self.size = len(self._buf)
        self._closed = False

    def read(self, offset: int, length: int, what: str, *, fragment: int | None = None) -> bytes:
        """Return ``length`` bytes at ``offset``; ``what`` names the range in the error.

        Raises:
            TruncatedError: the range reaches past the end of the source.
            ValueError: the source was closed.
        """
        if self._closed:
            raise ValueError(f"{self.name}: read from a closed reader")
        if offset < 0 or length < 0 or offset + length > self.size:
            raise TruncatedError(
                f"{what} needs bytes {offset}..{offset + length} but the file has {self.size} bytes",
                file=self.name,
                fragment=fragment,
            )
        return bytes(self._buf[offset : offset + length])

    def close(self) -> None:
        """Release the mapping and the file handle (idempotent)."""
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._file is not None:
            self._file.close()
            self._file = None
        self._buf = b""
        self._closed = True

    def __enter__(self) -> ByteSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

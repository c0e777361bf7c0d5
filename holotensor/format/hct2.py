"""HCT V2 files: a streaming, atomic writer and a memory-mapped, validating, lazy reader.

The container moves stored fragment bytes and their index; it knows nothing of codecs or entropy
coders (docs/format.md is the contract).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import xxhash

from holotensor.errors import (
    ChecksumError,
    FormatError,
    LimitError,
    TruncatedError,
    UnsupportedVersionError,
)
from holotensor.format.atomic import atomic_write
from holotensor.format.hct2_header import (
    ALIGNMENT,
    LIMITS,
    CodecRecord,
    FragmentEntry,
    QualityPoint,
    TensorEntry,
    parse_header,
    serialize_header,
)

__all__ = ["MAGIC", "HCT2Reader", "HCT2Writer", "StoredFragment"]

MAGIC = b"\x89HCT\r\n\x1a\n"
MAJOR, MINOR = 2, 0
PREAMBLE_SIZE = 64
_PREAMBLE = struct.Struct("<8sHHIQQQ24s")  # magic, major, minor, flags, header_offset, header_length, xxh3, reserved


@dataclass
class StoredFragment:
    """A fragment ready to be written: its stored bytes and how to decode them."""

    data: Any  # any buffer, or a sequence of buffers stored back to back (no joining copy)
    raw_size: int
    coding: str
    coding_params: dict[str, Any]
    role: str = ""


class HCT2Writer:
    """Write tensors one at a time into a new HCT V2 file.

    The file appears at ``path`` only when :meth:`close` succeeds (or the ``with`` block ends
    without an exception); until then it lives under a temporary name beside it.

    Example:
        >>> with HCT2Writer("model.hct") as w:  # doctest: +SKIP
        ...     w.add("w", "F32", (2, 2), CodecRecord("lossless", 1), [StoredFragment(b"...", 16, "raw", {})])
    """

    def __init__(self, path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None) -> None:
        if metadata is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("metadata must map str to str")
        self.path = Path(path)
        self._metadata = dict(metadata or {})
        self._tensors: list[TensorEntry] = []
        self._names: set[str] = set()
        self._ctx = atomic_write(self.path)
        self._fh: BinaryIO | None = self._ctx.__enter__()
        self._fh.write(bytes(PREAMBLE_SIZE))
        self._pos = PREAMBLE_SIZE

    def add(
        self,
        name: str,
        dtype: str,
        shape: Sequence[int],
        codec: CodecRecord,
        fragments: Sequence[StoredFragment],
        quality: Sequence[QualityPoint] = (),
    ) -> TensorEntry:
        """Append one tensor's fragments to the data section and remember its index entry."""
        if self._fh is None:
            raise ValueError(f"writer for {self.path} is closed")
        if not isinstance(name, str) or not name:
            raise ValueError("tensor names must be non-empty strings")
        if name in self._names:
            raise ValueError(f"tensor {name!r} was already added to {self.path}")
        entries = []
        for frag in fragments:
            parts = frag.data if isinstance(frag.data, list | tuple) else [frag.data]
            pad = -self._pos % ALIGNMENT
            if pad:
                self._fh.write(bytes(pad))
                self._pos += pad
            digest, size = xxhash.xxh3_64(), 0
            for part in parts:
                view = memoryview(part).cast("B")
                self._fh.write(view)
                digest.update(view)
                size += view.nbytes
            entries.append(
                FragmentEntry(
                    offset=self._pos,
                    size=size,
                    raw_size=frag.raw_size,
                    coding=frag.coding,
                    coding_params=frag.coding_params,
                    xxh3=digest.intdigest(),
                    role=frag.role,
                )
            )
            self._pos += size
        entry = TensorEntry(name, dtype, tuple(int(d) for d in shape), codec, tuple(entries), tuple(quality))
        self._tensors.append(entry)
        self._names.add(name)
        return entry

    @property
    def tensors(self) -> list[TensorEntry]:
        """Entries added so far."""
        return list(self._tensors)

    def close(self) -> None:
        """Write the header and the preamble, fsync, and move the file into place."""
        if self._fh is None:
            return
        fh, self._fh = self._fh, None
        try:
            header = serialize_header(self._tensors, self._metadata)
            if len(header) > LIMITS.header_bytes:
                raise LimitError(f"header would be {len(header)} bytes (limit {LIMITS.header_bytes})", file=str(self.path))
            pad = -self._pos % ALIGNMENT
            fh.write(bytes(pad))
            header_offset = self._pos + pad
            fh.write(header)
            head = _PREAMBLE.pack(MAGIC, MAJOR, MINOR, 0, header_offset, len(header), 0, bytes(24))
            digest = xxhash.xxh3_64_intdigest(head[:32] + header)
            fh.seek(0)
            fh.write(_PREAMBLE.pack(MAGIC, MAJOR, MINOR, 0, header_offset, len(header), digest, bytes(24)))
        except BaseException as exc:
            self._ctx.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        """Discard everything written; the target path is left as it was."""
        if self._fh is None:
            return
        self._fh = None
        err = RuntimeError("aborted")
        self._ctx.__exit__(RuntimeError, err, None)  # deletes the temporary file

    def __enter__(self) -> HCT2Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class HCT2Reader:
    """Open an HCT V2 file, validate its preamble and header, and serve fragments lazily.

    Fragment bytes are views into a read-only memory map; each fragment's checksum is verified
    the first time it is read.

    Raises:
        FileNotFoundError: no such file.
        FormatError and subclasses, ChecksumError: the file is not a valid HCT V2 file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._name = str(path)
        self._verified: set[tuple[str, int]] = set()
        self._file = open(self.path, "rb")  # noqa: SIM115 - lives as long as the reader
        try:
            self._map = self._open()
        except BaseException:
            self._file.close()
            raise

    def _fail(self, cls: type[FormatError], message: str) -> FormatError:
        return cls(message, file=self._name)

    def _open(self) -> mmap.mmap | None:
        size = os.fstat(self._file.fileno()).st_size
        if size < PREAMBLE_SIZE:
            raise self._fail(TruncatedError, f"file is {size} bytes, shorter than the {PREAMBLE_SIZE}-byte preamble")
        head = self._file.read(PREAMBLE_SIZE)
        magic, major, minor, flags, header_offset, header_length, digest, reserved = _PREAMBLE.unpack(head)
        if magic != MAGIC:
            raise self._fail(FormatError, f"not an HCT V2 file (magic {magic!r}, expected {MAGIC!r})")
        if major != MAJOR:
            raise self._fail(UnsupportedVersionError, f"format version {major}.{minor} is not supported (reads {MAJOR}.x)")
        if flags or any(reserved):
            raise self._fail(FormatError, "reserved preamble bytes are not zero")
        if header_offset < PREAMBLE_SIZE or header_offset % ALIGNMENT:
            raise self._fail(FormatError, f"header offset {header_offset} is not an aligned offset past the preamble")
        if not 2 <= header_length <= LIMITS.header_bytes:
            raise self._fail(LimitError, f"header length {header_length} outside [2, {LIMITS.header_bytes}]")
        end = header_offset + header_length
        if end > size:
            raise self._fail(TruncatedError, f"file is {size} bytes but its header ends at byte {end}")
        if end < size:
            raise self._fail(FormatError, f"{size - end} unexpected bytes follow the header")
        fmap = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        header = fmap[header_offset:end]
        found = xxhash.xxh3_64_intdigest(head[:32] + header)
        if found != digest:
            fmap.close()
            raise ChecksumError(f"header checksum mismatch: stored {digest:016x}, computed {found:016x}", file=self._name)
        try:
            self.metadata, tensors = parse_header(
                header, file=self._name, data_start=PREAMBLE_SIZE, data_end=header_offset
            )
        except BaseException:
            fmap.close()
            raise
        self.tensors: dict[str, TensorEntry] = {t.name: t for t in tensors}
        self.version = (major, minor)
        self.file_size = size
        return fmap

    def keys(self) -> list[str]:
        """Tensor names in file order."""
        return list(self.tensors)

    def entry(self, name: str) -> TensorEntry:
        """The index entry of tensor ``name`` (``KeyError`` naming the file otherwise)."""
        try:
            return self.tensors[name]
        except KeyError:
            raise KeyError(f"no tensor {name!r} in {self._name}") from None

    def fragment_bytes(self, name: str, index: int) -> memoryview:
        """The stored bytes of fragment ``index`` of tensor ``name``, checksum verified."""
        entry = self.entry(name)
        if not 0 <= index < len(entry.fragments):
            raise IndexError(f"tensor {name!r} in {self._name} has {len(entry.fragments)} fragments, not {index + 1}")
        if self._map is None:
            raise ValueError(f"reader for {self._name} is closed")
        frag = entry.fragments[index]
        view = memoryview(self._map)[frag.offset : frag.offset + frag.size]
        if (name, index) not in self._verified:
            found = xxhash.xxh3_64_intdigest(view)
            if found != frag.xxh3:
                raise ChecksumError(
                    f"stored bytes checksum mismatch: index says {frag.xxh3:016x}, bytes give {found:016x}",
                    file=self._name,
                    tensor=name,
                    fragment=index,
                )
            self._verified.add((name, index))
        return view

    def close(self) -> None:
        """Release the map and the file. Views handed out earlier must not be used afterwards."""
        if self._map is not None:
            fmap, self._map = self._map, None
            with contextlib.suppress(BufferError):  # a caller still holds a view; freed with it
                fmap.close()
        self._file.close()

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __enter__(self) -> HCT2Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""safetensors files, streamed: a validating zero-copy reader and a writer that takes one tensor
at a time, so converting a checkpoint never holds more than the tensors in flight.

The layout (an 8-byte little-endian header length, a JSON header with ``data_offsets`` relative to
the data buffer, then the buffer) is safetensors' own; ``safetensors.safe_open`` reads what this
writes.
"""

from __future__ import annotations

import itertools
import json
import math
import mmap
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch

from holotensor.dtypes import dtype_info, supported_dtypes
from holotensor.errors import FormatError, LimitError, TruncatedError
from holotensor.format.atomic import atomic_write

__all__ = ["SafetensorsEntry", "SafetensorsReader", "SafetensorsWriter", "shard_files"]

MAX_HEADER = 100 << 20


@dataclass(frozen=True)
class SafetensorsEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


class SafetensorsReader:
    """Read a .safetensors file lazily; tensors are views of a private (copy-on-write) map.

    Raises:
        FileNotFoundError: no such file.
        FormatError / TruncatedError / LimitError: not a valid safetensors file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._name = str(path)
        with open(self.path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < 8:
                raise TruncatedError(f"{size} bytes is too short for a safetensors file", file=self._name)
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > MAX_HEADER:
                raise LimitError(f"header length {n} exceeds {MAX_HEADER}; not a safetensors file?", file=self._name)
            if 8 + n > size:
                raise TruncatedError(f"header of {n} bytes runs past the end of the {size}-byte file", file=self._name)
            raw = fh.read(n)
            self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY) if size else None
        self._data_start = 8 + n
        self.metadata, self.entries = self._parse(raw, size - self._data_start)

    def _parse(self, raw: bytes, data_size: int) -> tuple[dict[str, str], dict[str, SafetensorsEntry]]:
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise FormatError("header is not UTF-8 JSON; not a safetensors file", file=self._name) from None
        if not isinstance(doc, dict):
            raise FormatError("header is not a JSON object; not a safetensors file", file=self._name)
        metadata = doc.pop("__metadata__", None) or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise FormatError("__metadata__ must map strings to strings", file=self._name)
        entries = {}
        for name, info in doc.items():
            entries[name] = self._entry(name, info, data_size)
        spans = sorted((e.begin, e.end, e.name) for e in entries.values() if e.nbytes)
        for (_, end, name), (begin, _, other) in itertools.pairwise(spans):
            if begin < end:
                raise FormatError(f"data overlaps that of tensor {other!r}", file=self._name, tensor=name)
        return metadata, entries

    def _entry(self, name: str, info: object, data_size: int) -> SafetensorsEntry:
        if not isinstance(info, dict):
            raise FormatError("entry is not an object", file=self._name, tensor=name)
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in supported_dtypes():
            raise FormatError(f"unsupported dtype {dtype!r}", file=self._name, tensor=name)
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise FormatError(f"invalid shape {shape!r}", file=self._name, tensor=name)
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size
        ):
            raise FormatError(f"data_offsets {offsets!r} outside the {data_size}-byte buffer", file=self._name, tensor=name)
        expected = math.prod(shape) * dtype_info(dtype).itemsize
        if offsets[1] - offsets[0] != expected:
            raise FormatError(
                f"holds {offsets[1] - offsets[0]} bytes, shape {shape} of {dtype} needs {expected}",
                file=self._name,
                tensor=name,
            )
        return SafetensorsEntry(name, dtype, tuple(shape), offsets[0], offsets[1])

    def keys(self) -> list[str]:
        return list(self.entries)

    def tensor(self, name: str) -> torch.Tensor:
        """Tensor ``name`` as a zero-copy view of the file (writes stay private)."""
        e = self.entries[name]
        info = dtype_info(e.dtype)
        if e.nbytes == 0 or self._map is None:
            return torch.empty(e.shape, dtype=info.torch_dtype)
        flat = torch.frombuffer(self._map, dtype=torch.uint8, count=e.nbytes, offset=self._data_start + e.begin)
        return flat.view(info.torch_dtype).reshape(e.shape)

    def release(self, name: str) -> None:
        """Tell the kernel the pages of tensor ``name`` are no longer needed, so a converter
        that streams through a checkpoint keeps only the tensors in flight resident. Views of
        the tensor stay valid (the pages are read again from the file if touched)."""
        e = self.entries[name]
        if self._map is None or e.nbytes == 0 or not hasattr(mmap, "MADV_DONTNEED"):
            return
        start = (self._data_start + e.begin) // mmap.PAGESIZE * mmap.PAGESIZE
        self._map.madvise(mmap.MADV_DONTNEED, start, self._data_start + e.end - start)

    def close(self) -> None:
        """Drop this reader's reference to the map; tensors handed out keep it alive."""
        self._map = None

    def __enter__(self) -> SafetensorsReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def shard_files(index_path: str | os.PathLike[str]) -> list[Path]:
    """The shard files named by a ``model.safetensors.index.json``, in first-use order."""
    path = Path(index_path)
    try:
        doc = json.loads(path.read_text("utf-8"))
        weight_map = doc["weight_map"]
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise TypeError
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        raise FormatError("not a safetensors index (expected a JSON object with a 'weight_map')", file=str(path)) from None
    shards = list(dict.fromkeys(weight_map.values()))
    for shard in shards:
        if Path(shard).name != shard:
            raise FormatError(f"shard name {shard!r} must be a plain file name", file=str(path))
    return [path.parent / s for s in shards]


class SafetensorsWriter:
    """Write a safetensors file whose tensor list is known up front, one tensor at a time.

    Example:
        >>> with SafetensorsWriter("out.safetensors", [("w", "F32", (2,))]) as w:  # doctest: +SKIP
        ...     w.write("w", torch.zeros(2))
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        entries: Sequence[tuple[str, str, Sequence[int]]],
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        header: dict[str, object] = {}
        if metadata:
            header["__metadata__"] = dict(metadata)
        self._order: list[tuple[str, int]] = []
        offset = 0
        for name, dtype, shape in entries:
            nbytes = math.prod(shape) * dtype_info(dtype).itemsize
            header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
            self._order.append((name, nbytes))
            offset += nbytes
        raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
        raw += b" " * (-len(raw) % 8)
        self._ctx = atomic_write(path)
        self._fh: BinaryIO | None = self._ctx.__enter__()
        self._fh.write(struct.pack("<Q", len(raw)) + raw)
        self._next = 0

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Write the next tensor; names must come in the order given to the constructor."""
        if self._fh is None or self._next >= len(self._order):
            raise ValueError("all declared tensors were already written")
        expected, nbytes = self._order[self._next]
        if name != expected:
            raise ValueError(f"expected tensor {expected!r} next, got {name!r}")
        data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        if data.nbytes != nbytes:
            raise ValueError(f"tensor {name!r} has {data.nbytes} bytes, its entry declares {nbytes}")
        self._fh.write(memoryview(data))
        self._next += 1

    def __enter__(self) -> SafetensorsWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        fh, self._fh = self._fh, None
        if fh is None:
            return
        if exc_type is None and self._next != len(self._order):
            exc = ValueError(f"only {self._next} of {len(self._order)} declared tensors were written")
            self._ctx.__exit__(ValueError, exc, None)
            raise exc
        self._ctx.__exit__(exc_type, exc, tb)  # type: ignore[arg-type]

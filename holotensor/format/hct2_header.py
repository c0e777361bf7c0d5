"""The HCT V2 header: tensor and fragment entries, their JSON form, and every structural check of
docs/format.md §6 (steps 6-11). Nothing here reads files; :mod:`holotensor.format.hct2` does."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from holotensor.dtypes import dtype_info, supported_dtypes
from holotensor.errors import FormatError, LimitError, UnsupportedCodecError, UnsupportedVersionError

__all__ = [
    "ALIGNMENT",
    "CodecRecord",
    "FragmentEntry",
    "Limits",
    "QualityPoint",
    "TensorEntry",
    "parse_header",
    "serialize_header",
]

ALIGNMENT = 64
KNOWN_REQUIREMENTS: frozenset[str] = frozenset()
_U63 = 1 << 63


@dataclass(frozen=True)
class Limits:
    """Hard limits of docs/format.md §2."""

    header_bytes: int = 256 << 20
    metadata_bytes: int = 1 << 20
    metadata_keys: int = 4096
    name_bytes: int = 4096
    rank: int = 64
    tensor_bytes: int = 1 << 62
    fragments: int = 65536
    json_depth: int = 32


LIMITS = Limits()


@dataclass(frozen=True)
class CodecRecord:
    """Which codec wrote a tensor, with its settings (``config``) and side data (``params``)."""

    name: str
    version: int
    config: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FragmentEntry:
    """Where one fragment's stored bytes are and how to turn them back into payload bytes."""

    offset: int
    size: int
    raw_size: int
    coding: str
    coding_params: dict[str, Any]
    xxh3: int
    role: str = ""


@dataclass(frozen=True)
class QualityPoint:
    """Quality of the tensor decoded from its first ``fragments`` fragments."""

    fragments: int
    rel_l2: float
    cosine: float
    measured: bool


@dataclass(frozen=True)
class TensorEntry:
    """One row of the tensor table."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    codec: CodecRecord
    fragments: tuple[FragmentEntry, ...]
    quality: tuple[QualityPoint, ...] = ()

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Size of the decoded tensor in bytes."""
        return self.numel * dtype_info(self.dtype).itemsize

    @property
    def stored_bytes(self) -> int:
        """Bytes this tensor occupies in the data section (payloads, excluding padding)."""
        return sum(f.size for f in self.fragments)


# ---------------------------------------------------------------- serialization


def serialize_header(tensors: Sequence[TensorEntry], metadata: Mapping[str, str] | None) -> bytes:
    """The header bytes for ``tensors``; the writer validates inputs before calling this."""
    doc: dict[str, Any] = {"requires": []}
    if metadata:
        doc["metadata"] = dict(metadata)
    doc["tensors"] = [_tensor_to_json(t) for t in tensors]
    return json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def _tensor_to_json(t: TensorEntry) -> dict[str, Any]:
    return {
        "name": t.name,
        "dtype": t.dtype,
        "shape": list(t.shape),
        "codec": {"name": t.codec.name, "version": t.codec.version, "config": t.codec.config, "params": t.codec.params},
        "fragments": [
            {
                "offset": f.offset,
                "size": f.size,
                "raw_size": f.raw_size,
                "coding": f.coding,
                "coding_params": f.coding_params,
                "xxh3": f"{f.xxh3:016x}",
                **({"role": f.role} if f.role else {}),
            }
            for f in t.fragments
        ],
        "quality": [
            {"fragments": q.fragments, "rel_l2": q.rel_l2, "cosine": q.cosine, "measured": q.measured}
            for q in t.quality
        ],
    }


# ---------------------------------------------------------------- parsing


class _Parser:
    """Turns header bytes into entries, raising ``FormatError``s that name the file and tensor."""

    def __init__(self, file: str, data_start: int, data_end: int, limits: Limits) -> None:
        self.file = file
        self.data_start = data_start
        self.data_end = data_end
        self.limits = limits

    def fail(self, message: str, tensor: str | None = None, fragment: int | None = None, cls=FormatError):
        return cls(message, file=self.file, tensor=tensor, fragment=fragment)

    def load_json(self, raw: bytes) -> dict[str, Any]:
        def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key, value in pairs:
                if key in out:
                    raise self.fail(f"header JSON has duplicate key {key!r}")
                out[key] = value
            return out

        def no_constants(name: str) -> Any:
            raise self.fail(f"header JSON contains the non-standard literal {name}")

        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"header is not valid UTF-8 at byte {exc.start}") from None
        if text.startswith("\ufeff"):
            raise self.fail("header starts with a byte-order mark")
        try:
            doc = json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constants)
        except json.JSONDecodeError as exc:
            raise self.fail(f"header is not valid JSON: {exc.msg} at character {exc.pos}") from None
        except RecursionError:
            raise self.fail("header JSON is nested too deeply") from None
        if not isinstance(doc, dict):
            raise self.fail(f"header must be a JSON object, found {type(doc).__name__}")
        self._check_depth(doc)
        return doc

    def _check_depth(self, doc: Any) -> None:
        stack = [(doc, 1)]
        while stack:
            node, depth = stack.pop()
            if depth > self.limits.json_depth:
                raise self.fail(f"header JSON is nested deeper than {self.limits.json_depth}")
            children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
            stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))

    def parse(self, raw: bytes) -> tuple[dict[str, str], list[TensorEntry]]:
        doc = self.load_json(raw)
        requires = doc.get("requires", [])
        if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
            raise self.fail("'requires' must be a list of strings")
        unknown = [r for r in requires if r not in KNOWN_REQUIREMENTS]
        if unknown:
            raise self.fail(
                f"file requires features this reader does not know: {unknown}; upgrade holotensor",
                cls=UnsupportedVersionError,
            )
        metadata = self._metadata(doc.get("metadata", {}))
        tensors_doc = doc.get("tensors")
        if not isinstance(tensors_doc, list):
            raise self.fail("header has no 'tensors' list")
        tensors = [self._tensor(i, t) for i, t in enumerate(tensors_doc)]
        self._check_names_and_overlap(tensors)
        return metadata, tensors

    def _metadata(self, meta: Any) -> dict[str, str]:
        if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise self.fail("'metadata' must map strings to strings")
        if len(meta) > self.limits.metadata_keys:
            raise self.fail(f"metadata has {len(meta)} keys (limit {self.limits.metadata_keys})", cls=LimitError)
        size = sum(len(k.encode()) + len(v.encode()) for k, v in meta.items())
        if size > self.limits.metadata_bytes:
            raise self.fail(f"metadata holds {size} bytes (limit {self.limits.metadata_bytes})", cls=LimitError)
        return dict(meta)

    def _tensor(self, index: int, doc: Any) -> TensorEntry:
        if not isinstance(doc, dict):
            raise self.fail(f"tensor entry {index} is not an object")
        name = doc.get("name")
        if not isinstance(name, str) or not name:
            raise self.fail(f"tensor entry {index} has no name")
        if len(name.encode("utf-8")) > self.limits.name_bytes:
            raise self.fail(f"tensor entry {index}: name longer than {self.limits.name_bytes} bytes", cls=LimitError)
        dtype = doc.get("dtype")
        if dtype not in supported_dtypes():
            raise self.fail(f"unknown dtype {dtype!r}", tensor=name, cls=UnsupportedCodecError)
        shape = doc.get("shape")
        if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
            raise self.fail(f"shape must be a list of non-negative integers, found {shape!r}", tensor=name)
        if len(shape) > self.limits.rank:
            raise self.fail(f"rank {len(shape)} exceeds the limit {self.limits.rank}", tensor=name, cls=LimitError)
        nbytes = dtype_info(dtype).itemsize
        for d in shape:
            nbytes *= d
            if nbytes >= self.limits.tensor_bytes:
                raise self.fail(f"shape {shape} claims more than 2^62 bytes", tensor=name, cls=LimitError)
        codec = self._codec(name, doc.get("codec"))
        frags_doc = doc.get("fragments")
        if not isinstance(frags_doc, list):
            raise self.fail("'fragments' must be a list", tensor=name)
        if len(frags_doc) > self.limits.fragments:
            raise self.fail(f"{len(frags_doc)} fragments exceed the limit {self.limits.fragments}", tensor=name, cls=LimitError)
        fragments = tuple(self._fragment(name, i, f) for i, f in enumerate(frags_doc))
        quality = self._quality(name, doc.get("quality", []), len(fragments))
        return TensorEntry(name, dtype, tuple(shape), codec, fragments, quality)

    def _codec(self, name: str, doc: Any) -> CodecRecord:
        if not isinstance(doc, dict):
            raise self.fail("'codec' must be an object", tensor=name)
        cname, version = doc.get("name"), doc.get("version")
        config, params = doc.get("config", {}), doc.get("params", {})
        if not isinstance(cname, str) or not cname:
            raise self.fail("codec has no name", tensor=name)
        if not _is_uint(version) or version < 1:
            raise self.fail(f"codec version must be a positive integer, found {version!r}", tensor=name)
        if not isinstance(config, dict) or not isinstance(params, dict):
            raise self.fail("codec 'config' and 'params' must be objects", tensor=name)
        return CodecRecord(cname, version, config, params)

    def _fragment(self, tensor: str, index: int, doc: Any) -> FragmentEntry:
        if not isinstance(doc, dict):
            raise self.fail("fragment entry is not an object", tensor, index)
        values = {}
        for key in ("offset", "size", "raw_size"):
            v = doc.get(key)
            if not _is_uint(v) or v >= _U63:
                raise self.fail(f"'{key}' must be an integer in [0, 2^63), found {v!r}", tensor, index)
            values[key] = v
        offset, size = values["offset"], values["size"]
        if offset % ALIGNMENT:
            raise self.fail(f"offset {offset} is not a multiple of {ALIGNMENT}", tensor, index)
        if offset < self.data_start or offset + size > self.data_end:
            raise self.fail(
                f"stored bytes [{offset}, {offset + size}) lie outside the data section "
                f"[{self.data_start}, {self.data_end})",
                tensor,
                index,
            )
        coding, coding_params = doc.get("coding"), doc.get("coding_params", {})
        if not isinstance(coding, str) or not coding:
            raise self.fail("fragment has no coding", tensor, index)
        if not isinstance(coding_params, dict):
            raise self.fail("'coding_params' must be an object", tensor, index)
        digest = doc.get("xxh3")
        if not isinstance(digest, str) or len(digest) != 16 or any(c not in "0123456789abcdef" for c in digest):
            raise self.fail(f"'xxh3' must be 16 lower-case hex digits, found {digest!r}", tensor, index)
        role = doc.get("role", "")
        if not isinstance(role, str):
            raise self.fail("'role' must be a string", tensor, index)
        return FragmentEntry(offset, size, values["raw_size"], coding, coding_params, int(digest, 16), role)

    def _quality(self, tensor: str, doc: Any, n_fragments: int) -> tuple[QualityPoint, ...]:
        if not isinstance(doc, list):
            raise self.fail("'quality' must be a list", tensor)
        points, last = [], 0
        for q in doc:
            if not isinstance(q, dict):
                raise self.fail("quality entry is not an object", tensor)
            k, rel, cos, measured = q.get("fragments"), q.get("rel_l2"), q.get("cosine"), q.get("measured")
            if not _is_uint(k) or k <= last or k > n_fragments:
                raise self.fail(f"quality prefix lengths must increase within 1..{n_fragments}, found {k!r}", tensor)
            if not all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in (rel, cos)):
                raise self.fail(f"quality values must be finite numbers, found {rel!r}, {cos!r}", tensor)
            if not isinstance(measured, bool):
                raise self.fail("quality 'measured' must be a boolean", tensor)
            points.append(QualityPoint(k, float(rel), float(cos), measured))
            last = k
        if points and last != n_fragments:
            raise self.fail(f"quality curve ends at {last} fragments, the tensor has {n_fragments}", tensor)
        return tuple(points)

    def _check_names_and_overlap(self, tensors: list[TensorEntry]) -> None:
        seen: set[str] = set()
        spans: list[tuple[int, int, str, int]] = []
        for t in tensors:
            if t.name in seen:
                raise self.fail("tensor name appears twice", tensor=t.name)
            seen.add(t.name)
            spans.extend((f.offset, f.offset + f.size, t.name, i) for i, f in enumerate(t.fragments) if f.size)
        spans.sort()
        for (_, end, tname, frag), (start, _, other, other_frag) in itertools.pairwise(spans):
            if start < end:
                raise self.fail(
                    f"stored bytes overlap those of tensor {other!r} fragment {other_frag}", tensor=tname, fragment=frag
                )


def _is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_header(
    raw: bytes, *, file: str, data_start: int, data_end: int, limits: Limits = LIMITS
) -> tuple[dict[str, str], list[TensorEntry]]:
    """Validate header bytes (docs/format.md §6, steps 6-11) and return (metadata, tensors).

    Raises:
        FormatError, LimitError, UnsupportedVersionError, UnsupportedCodecError: as the spec says.
    """
    return _Parser(file, data_start, data_end, limits).parse(raw)

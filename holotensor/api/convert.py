"""Checkpoint conversion, streamed tensor by tensor: safetensors (one file or sharded) -> HCT V2,
and HCT V2 -> safetensors."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from holotensor.api.files import safe_open
from holotensor.api.policy import CodecSpec, Policy
from holotensor.api.writing import TensorSource, write_hct2
from holotensor.errors import FormatError
from holotensor.format.hct2_header import TensorEntry
from holotensor.format.safetensors_io import SafetensorsReader, SafetensorsWriter, shard_files

__all__ = ["convert_to_hct", "convert_to_safetensors", "find_checkpoint"]

INDEX_NAME = "model.safetensors.index.json"


def find_checkpoint(path: str | os.PathLike[str]) -> list[Path]:
    """The safetensors files of a checkpoint given as a file, an index file or a directory.

    Raises:
        FileNotFoundError: nothing checkpoint-like at ``path``.
        FormatError: an index that is not a safetensors index.
    """
    p = Path(path)
    if p.is_dir():
        if (p / INDEX_NAME).is_file():
            return shard_files(p / INDEX_NAME)
        files = sorted(p.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"no .safetensors files or {INDEX_NAME} in directory {p}")
        return files
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    if p.name.endswith(".index.json"):
        return shard_files(p)
    return [p]


def convert_to_hct(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    codec: CodecSpec | None = None,
    policy: Policy | Mapping[str, CodecSpec] | None = None,
    workers: int | None = None,
    on_tensor: Callable[[TensorEntry], None] | None = None,
) -> list[TensorEntry]:
    """Convert a safetensors checkpoint into one HCT V2 file, one tensor in memory at a time
    per worker. The checkpoint's ``__metadata__`` is kept (shards' metadata merged)."""
    readers = [SafetensorsReader(f) for f in find_checkpoint(source)]
    metadata: dict[str, str] = {}
    seen: dict[str, Path] = {}
    for r in readers:
        metadata.update(r.metadata)
        for name in r.keys():
            if name in seen:
                raise FormatError(f"tensor appears in both {seen[name]} and {r.path}", file=str(source), tensor=name)
            seen[name] = r.path
    sources = [
        TensorSource(
            name,
            r.entries[name].nbytes,
            lambda r=r, name=name: r.tensor(name),
            lambda r=r, name=name: r.release(name),
        )
        for r in readers
        for name in r.keys()
    ]
    # Source bytes in flight never exceed the largest tensor (small tensors are encoded side by
    # side; a large one alone, with the codec's own threads): with the encoded planes and the
    # compressed output this keeps memory near twice the largest tensor.
    largest = max((s.nbytes for s in sources), default=0)
    return write_hct2(
        target,
        sources,
        Policy.of(policy, codec),
        metadata=metadata,
        workers=workers,
        max_inflight_bytes=max(largest, 1 << 20),
        on_tensor=on_tensor,
    )


def convert_to_safetensors(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    fragments: int | None = None,
    on_tensor: Callable[[TensorEntry], None] | None = None,
) -> list[TensorEntry]:
    """Decode an HCT V2 file into a safetensors file, one tensor at a time.

    Args:
        fragments: decode each tensor from at most this many leading fragments (progressive
            codecs); ``None`` uses all of them.
    """
    with safe_open(source) as f:
        entries = [f.entry(name) for name in f.keys()]
        with SafetensorsWriter(target, [(e.name, e.dtype, e.shape) for e in entries], f.metadata()) as w:
            for e in entries:
                k = None if fragments is None else min(fragments, len(e.fragments))
                w.write(e.name, f.get_tensor(e.name, fragments=k))
                if on_tensor is not None:
                    on_tensor(e)
    return entries

"""safetensors-shaped entry points: ``save_file``, ``load_file`` and ``safe_open``."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from holotensor.api.policy import CodecSpec, Policy
from holotensor.api.upstream import load_upstream
from holotensor.api.writing import TensorSource, write_hct2
from holotensor.codecs.pipeline import decode_tensor
from holotensor.dtypes import from_torch
from holotensor.entropy.parallel import parallel_ranges
from holotensor.errors import HoloTensorError
from holotensor.format.hct2 import HCT2Reader
from holotensor.format.hct2_header import TensorEntry
from holotensor.format.sniff import sniff

__all__ = ["load_file", "prefix_for", "safe_open", "save_file"]


def save_file(
    tensors: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    codec: CodecSpec | None = None,
    policy: Policy | Mapping[str, CodecSpec] | None = None,
    metadata: Mapping[str, str] | None = None,
    *,
    workers: int | None = None,
) -> None:
    """Compress ``tensors`` into the HCT V2 file ``path`` (written atomically).

    Args:
        tensors: name -> tensor; any dtype of :func:`holotensor.dtypes.supported_dtypes`, any
            layout (non-contiguous tensors are fine), any device.
        codec: the default codec (a registered name such as ``"lossless"`` or a config).
        policy: glob -> codec rules, or a :class:`Policy`; 1-D, norm and bias tensors stay
            lossless unless a rule gives their exact name.
        metadata: str -> str, kept in the file.

    Example:
        >>> save_file({"w": torch.randn(64, 64).bfloat16()}, "w.hct")  # doctest: +SKIP
    """
    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors must be a mapping of name -> tensor, not {type(tensors).__name__}")
    for name, t in tensors.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"tensor names must be non-empty strings, found {name!r}")
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"value for {name!r} is a {type(t).__name__}, not a torch.Tensor")
        if t.layout != torch.strided:
            raise ValueError(f"tensor {name!r} has layout {t.layout}; call .to_dense() first")
        from_torch(t.dtype)
    if metadata is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("metadata must map str to str")
    sources = [
        TensorSource(name, t.numel() * t.element_size(), lambda t=t: t) for name, t in tensors.items()
    ]
    write_hct2(path, sources, Policy.of(policy, codec), metadata=metadata, workers=workers)


def load_file(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    *,
    quality: float | None = None,
    max_fragments: int | None = None,
) -> dict[str, torch.Tensor]:
    """Decode every tensor of an HCT V2 file onto ``device``.

    Upstream HCTN and HTNS files are read too (one tensor, named after the file's stem; HTNS
    honours ``max_fragments``).

    Args:
        quality: for progressive tensors, read only the shortest fragment prefix whose stored
            quality curve reaches this cosine (in (0, 1]); lossless tensors are always whole.
        max_fragments: read at most this many leading fragments of each tensor (never fewer
            than its codec needs).

    Raises:
        FileNotFoundError: no such file.
        HoloTensorError: the file is malformed, corrupt or uses an unknown codec (the message
            names the file, tensor and fragment).
    """
    kind = sniff(path)
    if kind in ("hctn", "htns"):
        return {name: t.to(device) for name, t in load_upstream(path, kind, max_fragments=max_fragments).items()}
    with safe_open(path, framework="pt", device=device) as f:
        names = f.keys()
        out: dict[str, torch.Tensor] = {}

        def work(lo: int, hi: int) -> None:
            for name in names[lo:hi]:
                out[name] = f.get_tensor(name, quality=quality, max_fragments=max_fragments)

        # on the CPU, tensors side by side on all cores (each decodes serially inside a pool
        # thread), so the many small tensors of a checkpoint do not each pay for a thread hand-off;
        # device decodes stay on one thread (one launch queue, no concurrent kernel compiles)
        if torch.device(device).type == "cpu":
            parallel_ranges(work, len(names), 1)
        else:
            work(0, len(names))
        return {name: out[name] for name in names}


def prefix_for(entry: TensorEntry, *, quality: float | None = None, max_fragments: int | None = None) -> int:
    """How many leading fragments of ``entry`` to read for a quality target and/or a cap.

    The shortest prefix on the stored quality curve whose cosine reaches ``quality`` (all
    fragments if none does), then capped by ``max_fragments`` but never below the shortest
    decodable prefix.
    """
    if quality is not None and not (isinstance(quality, int | float) and 0.0 < quality <= 1.0):
        raise ValueError(f"quality must be in (0, 1], not {quality!r}")
    if max_fragments is not None and (not isinstance(max_fragments, int) or max_fragments < 0):
        raise ValueError(f"max_fragments must be a non-negative integer, not {max_fragments!r}")
    n = len(entry.fragments)
    k = n
    if quality is not None:
        k = next((q.fragments for q in entry.quality if q.cosine >= quality), n)
    if max_fragments is not None:
        shortest = entry.quality[0].fragments if entry.quality else n
        k = max(min(k, max_fragments), shortest)
    return k


class safe_open:
    """Lazy access to an HCT V2 file: the index is read and checked at open, tensors on demand.

    Example:
        >>> with safe_open("model.hct", framework="pt") as f:  # doctest: +SKIP
        ...     w = f.get_tensor(f.keys()[0])
    """

    def __init__(self, path: str | os.PathLike[str], framework: str = "pt", device: str | torch.device = "cpu"):
        if framework not in ("pt", "torch"):
            raise ValueError(f"framework {framework!r} is not supported; holotensor returns torch tensors ('pt')")
        self._device = torch.device(device)
        self._reader = HCT2Reader(path)
        self._path = str(path)

    def keys(self) -> list[str]:
        """Tensor names in file order."""
        return self._reader.keys()

    def metadata(self) -> dict[str, str]:
        """The user metadata stored with the file."""
        return dict(self._reader.metadata)

    def entry(self, name: str) -> TensorEntry:
        """The index entry of ``name``: dtype, shape, codec, fragments and quality curve."""
        return self._reader.entry(name)

    def get_tensor(
        self,
        name: str,
        *,
        fragments: int | None = None,
        quality: float | None = None,
        max_fragments: int | None = None,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decode tensor ``name``.

        Args:
            fragments: decode exactly this many leading fragments (``ValueError`` if the codec
                cannot decode that prefix).
            quality / max_fragments: as in :func:`load_file`; ignored when ``fragments`` is given.
            out: refine this already loaded tensor in place (same shape and dtype, any device),
                e.g. with more fragments than it was first loaded from; views of it, and
                modules holding it as a parameter, see the new values.

        Example:
            >>> w = f.get_tensor("w", fragments=1)  # doctest: +SKIP
            >>> f.get_tensor("w", out=w)            # later: all fragments, same storage
        """
        entry = self._reader.entry(name)
        if fragments is None:
            fragments = prefix_for(entry, quality=quality, max_fragments=max_fragments)
        if out is not None and (tuple(out.shape) != entry.shape or from_torch(out.dtype).name != entry.dtype):
            raise ValueError(
                f"out is {from_torch(out.dtype).name}{list(out.shape)}, tensor {name!r} is {entry.dtype}{list(entry.shape)}"
            )
        device = self._device if out is None else out.device
        try:
            tensor = decode_tensor(entry, lambda i: self._reader.fragment_bytes(name, i), fragments=fragments, device=device)
        except HoloTensorError as exc:
            raise exc.located(file=self._path) from exc
        if out is None:
            return tensor
        with torch.no_grad():
            return out.copy_(tensor)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> safe_open:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

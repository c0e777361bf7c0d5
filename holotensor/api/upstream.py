"""Reading upstream (haagenti) files through the same front door. HCTN and HTNS files hold one
unnamed tensor each, which holotensor names after the file's stem."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from holotensor.codecs.holographic import decode_htns
from holotensor.format.hctn import HctnReader
from holotensor.format.htns import HtnsReader

__all__ = ["load_upstream"]


def load_upstream(
    path: str | os.PathLike[str], kind: str, *, max_fragments: int | None = None
) -> dict[str, torch.Tensor]:
    """Decode an upstream file of format ``kind`` (``"hctn"`` or ``"htns"``, from
    :func:`holotensor.format.sniff`); ``max_fragments`` reads only the first k HTNS fragments.

    Raises:
        HoloTensorError subclasses: malformed or unsupported content, naming the file.
        ValueError: ``kind`` is not an upstream format.
    """
    name = Path(path).stem
    if kind == "hctn":
        with HctnReader(path) as reader:
            return {name: reader.to_tensor()}
    if kind == "htns":
        with HtnsReader(path) as reader:
            return {name: decode_htns(reader, max_fragments)}
    raise ValueError(f"{path}: {kind!r} is not an upstream format")

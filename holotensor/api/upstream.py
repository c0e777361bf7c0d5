"""Reading upstream (haagenti) files through the same front door: an HCTN file holds one unnamed
tensor, which holotensor names after the file's stem."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from holotensor.format.hctn import HctnReader

__all__ = ["load_upstream"]


def load_upstream(path: str | os.PathLike[str], kind: str) -> dict[str, torch.Tensor]:
    """Decode an upstream file of format ``kind`` (from :func:`holotensor.format.sniff`).

    Raises:
        HoloTensorError subclasses: malformed or unsupported content, naming the file.
        ValueError: ``kind`` is not an upstream format holotensor decodes to tensors.
    """
    if kind == "hctn":
        with HctnReader(path) as reader:
            return {Path(path).stem: reader.to_tensor()}
    raise ValueError(f"{path}: reading {kind!r} files into tensors is not supported")

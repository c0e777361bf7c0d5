"""How faithfully a set of (decompressed) MiniLM weights reproduces the original model's embeddings.

The benchmarks' one-call yardstick: encode the committed sentence set with the original checkpoint
(once per process) and with the given weights, and compare with
:func:`holotensor.analysis.fidelity.embedding_fidelity`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

import torch

from holotensor.analysis.fidelity import embedding_fidelity
from models.minilm import MiniLM

__all__ = ["SENTENCES_PATH", "fidelity_of", "load_sentences", "reference_embeddings", "reference_model"]

SENTENCES_PATH = Path(__file__).resolve().parent / "data" / "sentences.txt"


def load_sentences(path: str | Path = SENTENCES_PATH) -> list[str]:
    """The non-empty lines of a UTF-8 file, one sentence each (default: the committed set)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


@functools.cache
def reference_model() -> MiniLM:
    """The original all-MiniLM-L6-v2 from the installed package, loaded once per process."""
    return MiniLM.from_pretrained()


@functools.cache
def _reference_embeddings() -> torch.Tensor:
    return reference_model().encode(load_sentences())


def reference_embeddings() -> torch.Tensor:
    """The original model's embeddings of the committed sentences [n, 384] (a copy of a per-process cache)."""
    return _reference_embeddings().clone()


def fidelity_of(
    state_dict: Mapping[str, torch.Tensor], *, partial: bool = False, batch_size: int = 64
) -> dict[str, float | int]:
    """Embedding fidelity of MiniLM with the given weights against the original, on the committed sentences.

    Args:
        state_dict: BertModel-named tensors, e.g. the output of decompressing the checkpoint.
        partial: take every key the state dict lacks from the original checkpoint, to measure the
            effect of compressing only some tensors.
        batch_size: sentences per forward pass.

    Returns:
        :func:`~holotensor.analysis.fidelity.embedding_fidelity`'s dict (mean/min cosine, Spearman
        of pairwise similarities, top-1 neighbour agreement, n).

    Example:
        >>> from safetensors.torch import load_file
        >>> fidelity_of(load_file("decompressed.safetensors"))["mean_cosine"]
        0.9987...
    """
    ref = reference_model()
    tensors = dict(state_dict)
    if partial:
        for key, value in ref.state_dict().items():
            tensors.setdefault(key, value)
    candidate = MiniLM.from_state_dict(tensors, ref.config, tokenizer=ref.tokenizer)
    return embedding_fidelity(
        _reference_embeddings(), candidate.encode(load_sentences(), batch_size=batch_size)
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m models FILE``: MiniLM embedding fidelity of a compressed checkpoint."""
    import argparse

    import holotensor

    parser = argparse.ArgumentParser(description="MiniLM sentence-embedding fidelity of a compressed checkpoint.")
    parser.add_argument("file", help="an HCT V2 (or safetensors) file of all-MiniLM-L6-v2 weights")
    args = parser.parse_args(argv)
    if str(args.file).endswith(".safetensors"):
        from safetensors.torch import load_file

        tensors = load_file(args.file)
    else:
        tensors = holotensor.load_file(args.file)
    fid = fidelity_of(tensors, partial=True)
    print(
        f"fidelity on {fid['n']} sentences: mean cosine {fid['mean_cosine']:.5f}, min {fid['min_cosine']:.5f}, "
        f"Spearman {fid['spearman']:.5f}, top-1 agreement {fid['top1_agreement']:.3f}"
    )
    return 0

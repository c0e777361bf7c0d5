"""MiniLM calibration statistics: run calibration text through the encoder, keep each Linear's X^T X.

holotensor's library knows no tokenizers or model families; it takes the statistics this module
produces. Two ways to use it (from the repository root, where ``models`` is importable)::

    # once: statistics file, then any number of conversions
    python -m models.calibration models/data/calibration.txt minilm-stats.hct
    holotensor convert model.safetensors model.hct --codec blockquant:bits=4,group_size=128 \\
        --calibrate minilm-stats.hct

    # or in one step: convert runs the text through this module's runner
    holotensor convert model.safetensors model.hct --codec blockquant:bits=3,group_size=32 \\
        --calibrate models/data/calibration.txt --calibration-runner models.calibration:minilm_hessians

Samples are batched only with samples of the same token length, so no padding rows enter the
statistics.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file

from holotensor.api.calibrate import collect_hessians, read_calibration_text, save_hessians
from models.minilm import MiniLM

__all__ = ["CALIBRATION_PATH", "DEFAULT_SAMPLES", "encoder_hessians", "minilm_hessians", "upgrade_order"]

CALIBRATION_PATH = Path(__file__).resolve().parent / "data" / "calibration.txt"
"""200 everyday sentences written for calibration, disjoint from the evaluation sentences."""

DEFAULT_SAMPLES = 256
"""Calibration samples used by default: enough for stable statistics, quick on a CPU."""


def _run_unpadded(model: MiniLM, samples: list[str], batch_size: int = 64) -> None:
    """Forward every sample, batching equal token lengths only (no pad positions reach a layer)."""
    ids, mask = model.tokenizer(samples)
    lengths = mask.sum(dim=1)
    for length in torch.unique(lengths).tolist():
        rows = (lengths == length).nonzero().flatten()
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            model(ids[chunk, :length], mask[chunk, :length])


def encoder_hessians(model: MiniLM, samples: Sequence[str]) -> dict[str, torch.Tensor]:
    """``{"encoder....weight": X^T X / n}`` of every Linear of ``model`` over ``samples``."""
    if not samples:
        raise ValueError("no calibration samples")
    return collect_hessians(model, lambda m: _run_unpadded(m, list(samples)))


def minilm_hessians(
    checkpoint_files: Sequence[str | os.PathLike[str]],
    samples: Sequence[str],
    *,
    limit: int = DEFAULT_SAMPLES,
) -> dict[str, torch.Tensor]:
    """The ``--calibration-runner`` for MiniLM/BERT checkpoints: load, run the first ``limit`` samples.

    The installed all-MiniLM-L6-v2's config and tokenizer are used; the weights come from the files.
    """
    tensors: dict[str, torch.Tensor] = {}
    for f in checkpoint_files:
        tensors.update(load_file(os.fspath(f)))
    return encoder_hessians(MiniLM.from_state_dict(tensors), list(samples)[:limit])


def upgrade_order(
    model: MiniLM,
    low: Mapping[str, torch.Tensor],
    high: Mapping[str, torch.Tensor],
    samples: Sequence[str],
) -> list[str]:
    """Tensor names, most worth upgrading first, for mixed precision under a bit budget.

    Each tensor of ``low`` (dequantized weights at the lower precision) is swapped alone for its
    ``high`` version, and the gain in mean embedding cosine *on the calibration samples* is
    divided by its share of the weights. Ranking on calibration text keeps the evaluation
    sentences out of the choice.
    """
    from holotensor.analysis import embedding_fidelity

    reference = model.encode(list(samples))
    base_state = dict(model.state_dict())

    def cosine_with(weights: Mapping[str, torch.Tensor]) -> float:
        state = {**base_state, **low, **weights}
        candidate = MiniLM.from_state_dict(state, model.config, tokenizer=model.tokenizer)
        return float(embedding_fidelity(reference, candidate.encode(list(samples)))["mean_cosine"])

    total = sum(t.numel() for t in low.values())
    floor = cosine_with({})
    gain = {n: (cosine_with({n: high[n]}) - floor) * total / low[n].numel() for n in low}
    return sorted(gain, key=gain.__getitem__, reverse=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="MiniLM calibration statistics for holotensor convert --calibrate"
    )
    p.add_argument("samples", help="UTF-8 text, one calibration sample per line")
    p.add_argument("output", help="statistics file to write (HCT V2)")
    p.add_argument(
        "--model-dir", default=None, help="sentence-transformers folder (default: installed package)"
    )
    p.add_argument("--limit", type=int, default=DEFAULT_SAMPLES, help="use the first N samples")
    args = p.parse_args(argv)
    samples = read_calibration_text(args.samples)[: args.limit]
    hessians = encoder_hessians(MiniLM.from_pretrained(args.model_dir), samples)
    save_hessians(hessians, Path(args.output))
    print(f"wrote {args.output}: {len(hessians)} layers, {len(samples)} samples")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file

from holotensor.api.calibrate import collect_hessians, read_calibration_text, save_hessians
from models.minilm import MiniLM

__all__ = [
    "CALIBRATION_PATH",
    "DEFAULT_SAMPLES",
    "allocate_levels",
    "encoder_hessians",
    "minilm_hessians",
    "upgrade_order",
]

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


def _cosine_scorer(model: MiniLM, samples: Sequence[str]) -> Callable[[Mapping[str, torch.Tensor]], float]:
    """``score(weights)``: mean embedding cosine on ``samples`` of ``model`` with ``weights`` swapped in."""
    from holotensor.analysis import embedding_fidelity

    texts = list(samples)
    reference = model.encode(texts)
    base_state = dict(model.state_dict())

    def score(weights: Mapping[str, torch.Tensor]) -> float:
        candidate = MiniLM.from_state_dict({**base_state, **weights}, model.config, tokenizer=model.tokenizer)
        return float(embedding_fidelity(reference, candidate.encode(texts))["mean_cosine"])

    return score


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
    score = _cosine_scorer(model, samples)

    def cosine_with(weights: Mapping[str, torch.Tensor]) -> float:
        return score({**low, **weights})

    total = sum(t.numel() for t in low.values())
    floor = cosine_with({})
    gain = {n: (cosine_with({n: high[n]}) - floor) * total / low[n].numel() for n in low}
    return sorted(gain, key=gain.__getitem__, reverse=True)


def allocate_levels(
    model: MiniLM,
    levels: Sequence[Mapping[str, torch.Tensor]],
    bits: Sequence[Mapping[str, float]],
    samples: Sequence[str],
    budget: float,
    *,
    start: int = 1,
    exchanges: int = 8,
) -> dict[str, int]:
    """A quality level per tensor that keeps the mean bits per weight within ``budget``.

    ``levels[i]`` holds every tensor's dequantized weights at level ``i`` (ascending bits) and
    ``bits[i]`` its bits per weight there. From level ``start`` everywhere, tensors move one level
    up at a time, the move with the most embedding cosine (on the calibration ``samples``, never
    the evaluation sentences) per bit first: a lazy greedy that re-measures a move whose gain
    was priced against an older state before taking it. Then moves one level down are tried in
    order of least loss per bit (the ``exchanges`` cheapest); each one's saving is spent on
    up-moves, and the exchange is kept only if the cosine rises.

    Raises:
        ValueError: fewer than two levels, tensors missing from a level, or a start level already
            over ``budget``.
    """
    if len(levels) < 2 or len(bits) != len(levels):
        raise ValueError("allocate_levels needs two or more levels, with bits for each")
    names = list(levels[start])
    if any(set(level) != set(names) or set(b) != set(names) for level, b in zip(levels, bits, strict=True)):
        raise ValueError("every level must hold the same tensors")
    numel = {n: levels[start][n].numel() for n in names}
    total = sum(numel.values())
    score = _cosine_scorer(model, samples)

    def cosine(at: Mapping[str, int]) -> float:
        return score({n: levels[at[n]][n] for n in names})

    def cost(at: Mapping[str, int]) -> float:
        return sum(bits[at[n]][n] * numel[n] for n in names) / total

    def step_bits(n: str, frm: int, to: int) -> float:
        return abs(bits[to][n] - bits[frm][n]) * numel[n] / total

    def gain_of(at: Mapping[str, int], now: float, n: str, step: int) -> float:
        """Cosine change per bit of moving ``n`` by ``step`` levels from ``at`` (cosine ``now``)."""
        return (cosine({**at, n: at[n] + step}) - now) / step_bits(n, at[n], at[n] + step)

    def climb(at: dict[str, int], now: float, gain: dict[str, float]) -> tuple[dict[str, int], float]:
        """Lazy greedy up-moves within the budget; ``gain`` (possibly stale estimates) is updated."""
        while True:
            fits = [n for n in gain if cost({**at, n: at[n] + 1}) <= budget]
            if not fits:
                return at, now
            best = max(fits, key=gain.__getitem__)
            fresh = gain_of(at, now, best, 1)
            if fresh < max((gain[n] for n in fits if n != best), default=fresh):
                gain[best] = fresh  # priced against an older state: re-queue
                continue
            if fresh <= 0:
                return at, now
            now += fresh * step_bits(best, at[best], at[best] + 1)
            at = {**at, best: at[best] + 1}
            gain.pop(best)
            if at[best] + 1 < len(levels):
                gain[best] = gain_of(at, now, best, 1)

    at = dict.fromkeys(names, start)
    if cost(at) > budget:
        raise ValueError(f"level {start} everywhere already takes {cost(at):.4f} > {budget} bits per weight")
    now = cosine(at)
    gain = {n: gain_of(at, now, n, 1) for n in names if start + 1 < len(levels)}
    at, now = climb(at, now, gain)
    loss = {n: -gain_of(at, now, n, -1) for n in names if at[n] > 0}
    for n in sorted(loss, key=loss.__getitem__)[:exchanges]:
        down = {**at, n: at[n] - 1}
        trial_gain = {m: g for m, g in gain.items() if m != n}
        if down[n] + 1 < len(levels):
            trial_gain[n] = loss[n]  # moving back up regains what the move down lost
        trial, got = climb(down, now - loss[n] * step_bits(n, at[n], down[n]), trial_gain)
        if got > now:
            at, now, gain = trial, got, trial_gain
    return at


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

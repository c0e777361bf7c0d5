"""Does the 2-D DCT concentrate the energy of real weights? And what does the spectral codec cost?

(a) Energy compaction on all-MiniLM-L6-v2 matrices against Gaussian noise of the same shape and
    std: the fraction of the energy held by the top 10% / 25% of coefficients by magnitude, for
    the DCT, for the raw weights (no transform: the baseline a transform has to beat), and for
    the lowest-frequency 10% / 25% of the DCT (fixed frequency bands ordered by u/rows + v/cols,
    the side-data-free alternative to magnitude order).
(b) The spectral codec (F16, 4 fragments, growth 2) on the same matrices: stored bits per weight
    (zstd-coded payloads, position masks included, headers excluded), of fragment 0 alone, and
    rel-L2 of every prefix, at keep 1.0 and 0.25.

Run from the repository root:

    python benchmarks/spectral.py

Writes benchmarks/results/spectral.{md,json}.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from holotensor.codecs.dct import dct2  # noqa: E402
from holotensor.codecs.pipeline import encode_tensor  # noqa: E402
from holotensor.codecs.spectral import SpectralConfig  # noqa: E402
from models.minilm import default_model_dir  # noqa: E402

MATRICES = [
    "embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight",
    "encoder.layer.0.attention.self.query.weight",
    "encoder.layer.0.attention.self.value.weight",
    "encoder.layer.0.intermediate.dense.weight",
    "encoder.layer.0.output.dense.weight",
    "encoder.layer.5.attention.output.dense.weight",
]
FRACTIONS = (0.10, 0.25)


def top_energy(values: torch.Tensor, fraction: float) -> float:
    """Share of sum(values^2) held by the largest ``fraction`` of the entries by magnitude."""
    e = values.double().reshape(-1).square()
    k = max(1, round(fraction * e.numel()))
    return (torch.topk(e, k).values.sum() / e.sum()).item()


def band_energy(coeffs: torch.Tensor, fraction: float) -> float:
    """Share of the energy in the lowest-frequency ``fraction`` of a 2-D spectrum (by u/rows + v/cols)."""
    rows, cols = coeffs.shape
    u = torch.arange(rows, dtype=torch.float64)[:, None] / rows
    v = torch.arange(cols, dtype=torch.float64)[None, :] / cols
    order = torch.argsort((u + v).reshape(-1), stable=True)
    e = coeffs.double().reshape(-1).square()[order]
    k = max(1, round(fraction * e.numel()))
    return (e[:k].sum() / e.sum()).item()


def compaction(w: torch.Tensor) -> dict[str, float]:
    c = dct2(w.double())
    out = {}
    for f in FRACTIONS:
        tag = f"{round(f * 100)}"
        out[f"dct_top{tag}"] = top_energy(c, f)
        out[f"raw_top{tag}"] = top_energy(w, f)
        out[f"dct_band{tag}"] = band_energy(c, f)
    return out


def codec_cost(w: torch.Tensor, keep: float) -> dict[str, object]:
    enc = encode_tensor(w, SpectralConfig(fragments=4, keep=keep))
    stored = [
        sum(memoryview(b).nbytes for b in (f.data if isinstance(f.data, list) else [f.data]))
        for f in enc.fragments
    ]
    return {
        "keep": keep,
        "bits_per_weight": 8 * sum(stored) / w.numel(),
        "fragment_bytes": stored,
        "prefix_rel_l2": [q.rel_l2 for q in enc.quality],
        "prefix_cosine": [q.cosine for q in enc.quality],
    }


def main() -> None:
    weights = load_file(str(default_model_dir() / "model.safetensors"))
    g = torch.Generator().manual_seed(0)
    rows = []
    for name in MATRICES:
        w = weights[name].float()
        noise = torch.randn(w.shape, generator=g) * w.std()
        row = {"name": name, "shape": list(w.shape), "weights": compaction(w), "noise": compaction(noise)}
        row["codec"] = [codec_cost(w, keep) for keep in (1.0, 0.25)]
        rows.append(row)
        print(name, tuple(w.shape), flush=True)
    lines = [
        "# Spectral (DCT) energy compaction on all-MiniLM-L6-v2 vs Gaussian noise",
        "",
        f"torch {torch.__version__}, {platform.machine()}, CPU. Energy share of the top 10% / 25% coefficients.",
        "",
        "| matrix | shape | DCT top10 | raw top10 | noise DCT top10 | DCT top25 | raw top25 | noise DCT top25 "
        "| DCT low-band 10% | noise low-band 10% |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        w, n = r["weights"], r["noise"]
        lines.append(
            f"| {r['name']} | {r['shape'][0]}x{r['shape'][1]} | {w['dct_top10']:.3f} | {w['raw_top10']:.3f} "
            f"| {n['dct_top10']:.3f} | {w['dct_top25']:.3f} | {w['raw_top25']:.3f} | {n['dct_top25']:.3f} "
            f"| {w['dct_band10']:.3f} | {n['dct_band10']:.3f} |"
        )
    lines += [
        "",
        "Spectral codec (F16, 4 fragments, growth 2): bits/weight and rel-L2 of prefixes 1..4.",
        "",
        "| matrix | keep | bits/weight | fragment 0 bits/weight | rel-L2 by prefix |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        for c in r["codec"]:
            errs = ", ".join(f"{e:.4f}" for e in c["prefix_rel_l2"])
            first = 8 * c["fragment_bytes"][0] / (r["shape"][0] * r["shape"][1])
            lines.append(f"| {r['name']} | {c['keep']} | {c['bits_per_weight']:.2f} | {first:.2f} | {errs} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "spectral.md").write_text(text)
    (out / "spectral.json").write_text(json.dumps({"torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

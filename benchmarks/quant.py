"""Quantization rate-distortion on MiniLM: RTN, data-free and calibrated blockquant, torchao and HQQ.

Every Linear weight of all-MiniLM-L6-v2's encoder (36 tensors, 21.3M weights) is quantized by each
method; everything else stays as in the original checkpoint. Per method:

* **bits/weight** for holotensor methods is ``8 * file size / weights`` of an actual HCT V2 file
  holding just those 36 compressed weights (codes, fp16 scales and zeros, zstd coding, header,
  index, checksums, quality curves: every byte). Peers (torchao, the ``hqq`` package) are not
  stored by holotensor, so theirs is nominal: ``b + 16/g`` (one 16-bit scale per group) plus
  ``16/g`` for a 16-bit zero point where asymmetric.
* **fidelity** is :func:`models.fidelity.fidelity_of` (``partial=True``): mean and minimum cosine
  between the original and the quantized model's sentence embeddings on the 255 committed
  sentences, Spearman correlation of their pairwise similarities, top-1 neighbour agreement.
* **calibration** (gptq, awq) uses input statistics from ``models/data/calibration.txt`` (200
  everyday sentences written for this, none close to the evaluation sentences); its time
  (statistics + quantizing all 36 weights) is reported per run.

Methods: ``rtn`` (round to nearest, min/max range), ``rtn-mse`` (blockquant's clipping search),
``hqq`` (holotensor's data-free calibration), ``awq`` (activation-aware clipping), ``gptq``
(error feedback, act order, static groups), ``torchao`` (``IntxWeightOnlyConfig``, its RTN),
``hqq-lib`` (the ``hqq`` package's optimiser, scales and zeros rounded to fp16). Run from the
repository root::

    python benchmarks/quant.py [--quick]

Writes benchmarks/results/quant.{md,json,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from holotensor.api import load_file, save_file  # noqa: E402
from holotensor.api.calibrate import calibrate_tensor, quantized_policy  # noqa: E402
from holotensor.codecs import BlockQuantConfig  # noqa: E402
from models.calibration import CALIBRATION_PATH, encoder_hessians, upgrade_order  # noqa: E402
from models.fidelity import fidelity_of, reference_model  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TARGETS = [(4.25, 0.99), (3.25, 0.97)]


def encoder_linears() -> dict[str, torch.Tensor]:
    """The 36 encoder Linear weights of MiniLM (fp32)."""
    model = reference_model()
    return {
        f"{name}.weight": m.weight.detach().clone()
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and name.startswith("encoder.")
    }


def _fidelity(weights: dict[str, torch.Tensor]) -> dict[str, float]:
    f = fidelity_of(weights, partial=True)
    return {k: float(f[k]) for k in ("mean_cosine", "min_cosine", "spearman", "top1_agreement")}


def run_holotensor(
    weights: dict[str, torch.Tensor],
    cfg: BlockQuantConfig,
    method: str,
    hessians: dict[str, torch.Tensor] | None,
    tmp: Path,
) -> dict[str, object]:
    """Quantize all weights with ``method``, store them, read them back, measure."""
    t0 = time.perf_counter()
    if method in ("rtn", "rtn-mse"):
        codes = {n: cfg.quantize(w) for n, w in weights.items()}
    else:
        codes = {
            n: calibrate_tensor(w, cfg, method, None if hessians is None else hessians[n])
            for n, w in weights.items()
        }
    seconds = time.perf_counter() - t0
    path = tmp / "q.hct"
    save_file(weights, path, policy=quantized_policy(codes, cfg))
    numel = sum(w.numel() for w in weights.values())
    back = load_file(path)
    for n, qt in codes.items():
        if not torch.equal(back[n], qt.dequantize()):
            raise RuntimeError(f"{n}: the stored file does not decode to the quantized weights")
    return {"bits_per_weight": 8 * path.stat().st_size / numel, "bpw_kind": "file", "quantize_s": seconds,
            **_fidelity(back)}  # fmt: skip


def run_mixed(
    weights: dict[str, torch.Tensor],
    hessians: dict[str, torch.Tensor],
    samples: list[str],
    budget: float,
    tmp: Path,
) -> dict[str, object]:
    """GPTQ int3 everywhere, then int4 for the tensors that gain most per weight (ranked on the
    calibration text, not on the evaluation sentences), added while the file stays within budget."""
    t0 = time.perf_counter()
    low_cfg = BlockQuantConfig(bits=3, group_size=64, symmetric=True)
    high_cfg = BlockQuantConfig(bits=4, group_size=64, symmetric=True)
    low = {n: calibrate_tensor(w, low_cfg, "gptq", hessians[n]) for n, w in weights.items()}
    high = {n: calibrate_tensor(w, high_cfg, "gptq", hessians[n]) for n, w in weights.items()}
    order = upgrade_order(
        reference_model(), {n: q.dequantize() for n, q in low.items()}, {n: q.dequantize() for n, q in high.items()},
        samples,
    )
    numel = sum(w.numel() for w in weights.values())
    path = tmp / "mixed.hct"

    def write(upgraded: set[str]) -> float:
        codes = {n: (high if n in upgraded else low)[n] for n in weights}
        configs = {n: high_cfg if n in upgraded else low_cfg for n in weights}
        save_file(weights, path, policy=quantized_policy(codes, configs))
        return 8 * path.stat().st_size / numel

    upgraded: set[str] = set()
    for name in order:
        if write(upgraded | {name}) <= budget:
            upgraded.add(name)
    bpw = write(upgraded)
    seconds = time.perf_counter() - t0
    return {"bits_per_weight": bpw, "bpw_kind": "file", "quantize_s": seconds, "upgraded_to_int4": sorted(upgraded),
            **_fidelity(load_file(path))}  # fmt: skip


def _nominal_bpw(bits: int, gs: int, sym: bool) -> float:
    return bits + 16 / gs + (0 if sym else 16 / gs)


def run_torchao(weights: dict[str, torch.Tensor], bits: int, gs: int, sym: bool) -> dict[str, object] | str:
    try:
        from torchao.quantization import IntxWeightOnlyConfig, MappingType, quantize_
        from torchao.quantization.granularity import PerGroup
    except Exception as exc:
        return f"torchao not importable: {type(exc).__name__}: {exc}"
    dtype = getattr(torch, f"int{bits}", None)
    if dtype is None:
        return f"torch has no int{bits} dtype"
    out = {}
    t0 = time.perf_counter()
    for n, w in weights.items():
        lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
        lin.weight.data.copy_(w)
        mapping = MappingType.SYMMETRIC if sym else MappingType.ASYMMETRIC
        quantize_(
            lin, IntxWeightOnlyConfig(weight_dtype=dtype, granularity=PerGroup(gs), mapping_type=mapping)
        )
        out[n] = lin.weight.dequantize().float()
    seconds = time.perf_counter() - t0
    return {"bits_per_weight": _nominal_bpw(bits, gs, sym), "bpw_kind": "nominal", "quantize_s": seconds,
            **_fidelity(out)}  # fmt: skip


def run_hqq_lib(weights: dict[str, torch.Tensor], bits: int, gs: int) -> dict[str, object] | str:
    try:
        from hqq.core.quantize import Quantizer
    except Exception as exc:
        return f"hqq not importable: {type(exc).__name__}: {exc}"
    out = {}
    t0 = time.perf_counter()
    for n, w in weights.items():
        wq, meta = Quantizer.quantize(
            w, nbits=bits, group_size=gs, optimize=True, axis=1, device="cpu", compute_dtype=torch.float32
        )
        meta["scale"] = meta["scale"].half().float()
        meta["zero"] = meta["zero"].half().float()
        out[n] = Quantizer.dequantize(wq, meta).float().reshape(w.shape)
    seconds = time.perf_counter() - t0
    return {"bits_per_weight": _nominal_bpw(bits, gs, False), "bpw_kind": "nominal", "quantize_s": seconds,
            **_fidelity(out)}  # fmt: skip


def plan(quick: bool) -> list[tuple[str, int, int | None, bool]]:
    """(method, bits, group size (None: per channel), symmetric) rows to run."""
    rows: list[tuple[str, int, int | None, bool]] = []
    for bits in [4, 3] if quick else [8, 4, 3, 2]:
        for gs in (128, 32):
            for sym in (True, False):
                rows.append(("rtn", bits, gs, sym))
    settings: list[tuple[int | None, bool]] = [(128, False), (32, True)]
    ours = [4, 3] if quick else [4, 3, 2]
    for method, bit_list, extra in (
        ("rtn-mse", [4, 3], []),
        ("hqq", ours, []),
        ("awq", [4, 3], []),
        ("gptq", ours, [(64, True), (None, True)]),
        ("torchao", [4, 3], []),
        ("hqq-lib", [4, 3], []),
    ):
        for bits in bit_list:
            for gs, sym in settings + extra:
                if method == "hqq-lib" and sym:
                    gs, sym = 32, False  # the package's codes are asymmetric
                rows.append((method, bits, gs, sym))
    return rows


def run(quick: bool) -> dict[str, object]:
    weights = encoder_linears()
    numel = sum(w.numel() for w in weights.values())
    samples = [
        line.strip() for line in CALIBRATION_PATH.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    t0 = time.perf_counter()
    hessians = encoder_hessians(reference_model(), samples)
    stats_s = time.perf_counter() - t0
    rows = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method, bits, gs, sym in plan(quick):
            if method in skipped:
                continue
            result: dict[str, object] | str
            if method == "torchao":
                result = run_torchao(weights, bits, gs, sym)
            elif method == "hqq-lib":
                result = run_hqq_lib(weights, bits, gs)
            else:
                search = "mse" if method == "rtn-mse" else "minmax"
                cfg = BlockQuantConfig(bits=bits, group_size=gs, symmetric=sym, scale_search=search)
                hs = hessians if method in ("gptq", "awq") else None
                result = run_holotensor(weights, cfg, method, hs, Path(tmp))
                if hs is not None:
                    result["calibration_s"] = stats_s + float(result["quantize_s"])  # type: ignore[arg-type]
            if isinstance(result, str):
                skipped[method] = result
                print(f"{method}: skipped ({result})", flush=True)
                continue
            row = {"method": method, "bits": bits, "group_size": gs, "symmetric": sym, **result}
            rows.append(row)
            _print_row(row)
        mixed = run_mixed(weights, hessians, samples, 3.25, Path(tmp))
        mixed["calibration_s"] = stats_s + float(mixed["quantize_s"])  # type: ignore[arg-type]
        row = {"method": "gptq-mixed", "bits": 3, "group_size": 64, "symmetric": True, **mixed}
        rows.append(row)
        _print_row(row)
    targets = []
    for budget, goal in TARGETS:
        eligible = [r for r in rows if r["bits_per_weight"] <= budget and r["bpw_kind"] == "file"]
        best = max(eligible, key=lambda r: r["mean_cosine"], default=None)
        targets.append({"max_bits_per_weight": budget, "target_mean_cosine": goal,
                        "best": best, "met": bool(best and best["mean_cosine"] >= goal)})  # fmt: skip
    return {
        "weights": numel,
        "tensors": len(weights),
        "calibration_lines": len(samples),
        "statistics_s": stats_s,
        "rows": rows,
        "skipped": skipped,
        "targets": targets,
    }


def _label(r: dict[str, object]) -> str:
    group = "per-channel" if r["group_size"] is None else f"g{r['group_size']}"
    bits = f"int3 + {len(r['upgraded_to_int4'])} tensors int4" if "upgraded_to_int4" in r else f"int{r['bits']}"
    return f"{bits} {group} {'sym' if r['symmetric'] else 'asym'}"


def _print_row(row: dict[str, object]) -> None:
    print(
        f"{row['method']:10s} {_label(row):16s} bpw {row['bits_per_weight']:.3f} "
        f"cos {row['mean_cosine']:.5f} min {row['min_cosine']:.5f} spearman {row['spearman']:.5f} "
        f"({row['quantize_s']:.1f} s)",
        flush=True,
    )


def to_markdown(res: dict[str, object]) -> str:
    env = res["environment"]
    lines = [
        "# Quantization rate-distortion: all-MiniLM-L6-v2 encoder Linear weights",
        "",
        f"Machine: {env['cpus']} CPUs ({env['machine']}), torch {env['torch']}, {env['threads']} thread(s); "
        f"load average {env['load_average_at_start'][0]:.1f} -> {env['load_average_at_end'][0]:.1f} "
        f"(shared machine). {res['tensors']} tensors, {res['weights']:,} weights quantized; fidelity on the "
        "255 committed sentences (`models.fidelity.fidelity_of`, partial=True). Calibration text: "
        f"{res['calibration_lines']} sentences of models/data/calibration.txt (none close to the evaluation "
        f"sentences); input statistics took {res['statistics_s']:.1f} s. Peers: "
        + ", ".join(f"{k} {v}" for k, v in env.get("peers", {}).items())
        + f". Whole run: {res['total_s'] / 60:.1f} min.",
        "",
        "bits/weight: `file` = 8 x size of an HCT V2 file holding the 36 quantized weights (codes, fp16 "
        "scales/zeros, zstd, header, index, checksums) / weights; `nominal` = b + 16/g (+ 16/g zero) for "
        "peers not stored by holotensor.",
        "",
        "## Targets",
        "",
        "| budget | target mean cosine | best method within budget | bits/weight | mean cosine | met |",
        "|---|---|---|---|---|---|",
    ]
    for t in res["targets"]:
        b = t["best"]
        best = "-" if b is None else f"{b['method']} {_label(b)}"
        lines.append(
            f"| <= {t['max_bits_per_weight']} | {t['target_mean_cosine']} | {best} | "
            f"{'-' if b is None else format(b['bits_per_weight'], '.3f')} | "
            f"{'-' if b is None else format(b['mean_cosine'], '.5f')} | {'yes' if t['met'] else 'no'} |"
        )
    lines += [
        "",
        "## All runs",
        "",
        "| method | setting | bits/weight | kind | mean cosine | min cosine | Spearman | top-1 | "
        "quantize s | calibration s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(
        res["rows"], key=lambda r: (-r["bits"], r["group_size"] or 10**9, r["method"], r["symmetric"])
    ):
        cal = f"{r['calibration_s']:.1f}" if "calibration_s" in r else "-"
        lines.append(
            f"| {r['method']} | {_label(r)} | {r['bits_per_weight']:.3f} | {r['bpw_kind']} | "
            f"{r['mean_cosine']:.5f} | {r['min_cosine']:.5f} | {r['spearman']:.5f} | "
            f"{r['top1_agreement']:.3f} | {r['quantize_s']:.1f} | {cal} |"
        )
    if res["skipped"]:
        lines += ["", "Not run: " + "; ".join(f"{m}: {why}" for m, why in res["skipped"].items())]
    return "\n".join(lines) + "\n"


def plot(res: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    groups: dict[str, list[dict[str, object]]] = {}
    for r in res["rows"]:
        if r["bits"] == 8:
            continue
        key = f"{r['method']} {'sym' if r['symmetric'] else 'asym'}"
        groups.setdefault(key, []).append(r)
    colors = plt.get_cmap("tab20").colors
    for i, (key, rs) in enumerate(sorted(groups.items())):
        rs = sorted(rs, key=lambda r: r["bits_per_weight"])
        style = "s--" if key.startswith(("torchao", "hqq-lib")) else "o-"
        ax.plot([r["bits_per_weight"] for r in rs], [1 - r["mean_cosine"] for r in rs], style, label=key, ms=4,
                color=colors[i % len(colors)])  # fmt: skip
    for budget, goal in TARGETS:
        ax.plot([budget], [1 - goal], "k*", ms=12)
    ax.set_yscale("log")
    ax.set_xlabel("bits per weight (all side data)")
    ax.set_ylabel("1 - mean embedding cosine")
    ax.set_title("MiniLM encoder Linear weights: rate-distortion (stars: targets)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="4 and 3 bits only")
    p.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (default 1: a shared machine)"
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    env = {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()),
        "peers": {pkg: _version(pkg) for pkg in ("torchao", "hqq")},
    }
    t0 = time.perf_counter()
    res = run(args.quick)
    env["load_average_at_end"] = list(os.getloadavg())
    res = {"environment": env, "total_s": time.perf_counter() - t0, **res}
    md = to_markdown(res)
    print(md)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quant.md").write_text(md, encoding="utf-8")
    (args.out / "quant.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    plot(res, args.out / "quant.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Codebook (residual VQ) benchmarks on all-MiniLM-L6-v2's Linear weights, against blockquant RTN.

Every Linear weight of the encoder (36 matrices, 10.6M weights; embeddings, norms and biases stay
fp32) is compressed with

* blockquant round-to-nearest, asymmetric, groups of 128 (2 and 3 bits; fp16 scales and zeros),
* the "codebook" codec at about 2 and 3 bits per weight (all codebooks and scales counted),

and reported as relative L2 error per layer and over all layers, and as the mean cosine between
the original and the compressed model's sentence embeddings on the committed sentence set
(models/data/sentences.txt). For the 2-bit headline codebook setting two fine-tuned variants are
added, both using only the calibration sentences below (disjoint from the evaluation set):

* "calibrated": the k-means fit of every layer is weighted by the mean squared input activation of
  each input feature, then codebooks and scales are fitted to the layer's outputs
  (``CodebookLinear.fit_calibration``);
* "+ end-to-end": starting from "calibrated", all codebooks, scales and the compressed layers'
  biases (codes fixed; biases are stored as they are anyway) are trained with Adam so that the
  model's token states and pooled embeddings match the original's.

Bits per weight count codes, codebooks (fp16) and scales (fp16) of all 36 matrices, before entropy
coding. Run from the repository root (10-25 minutes on 2 shared cores):

    python benchmarks/codebook.py [--quick]

Writes benchmarks/results/codebook.{md,json,png}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from holotensor.analysis.metrics import rel_l2  # noqa: E402
from holotensor.codecs.base import TensorSpec  # noqa: E402
from holotensor.codecs.blockquant import BlockQuantConfig  # noqa: E402
from holotensor.codecs.codebook import CodebookConfig  # noqa: E402
from holotensor.dtypes import from_torch  # noqa: E402
from holotensor.nn.codebook_linear import CodebookLinear  # noqa: E402
from models import MiniLM, fidelity_of, load_sentences, mean_pool, reference_model  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

# Calibration text for fine-tuning: written for this benchmark, none of it is in the evaluation set.
CALIBRATION = [
    "The train to the coast leaves every morning at half past seven.",
    "She planted tomatoes and basil along the south wall of the garden.",
    "Interest rates rose for the third time this year, worrying home buyers.",
    "How do I reset the password on my wireless router?",
    "The museum's new wing displays sculptures from the bronze age.",
    "He forgot his umbrella and arrived at the office soaking wet.",
    "Scientists measured the temperature of the lake every hour for a month.",
    "Which programming language should a beginner learn first?",
    "The orchestra rehearsed the symphony twice before the concert.",
    "A small bakery on the corner sells bread still warm from the oven.",
    "The referee stopped the match because of the heavy thunderstorm.",
    "Our flight was delayed by four hours due to a technical fault.",
    "The children built a sandcastle with towers and a moat.",
    "Can you recommend a good book about the history of mathematics?",
    "The company announced record profits and a new chief executive.",
    "Bees collect nectar from the flowers in the meadow behind the farm.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Traffic on the bridge was slow because of road works.",
    "My grandmother tells stories about growing up in a fishing village.",
    "The new phone has a larger screen and a longer battery life.",
    "Volunteers cleaned the beach and collected bags of plastic waste.",
    "Why does the sky turn red at sunset?",
    "The student finished her thesis on renewable energy policy.",
    "A sudden frost damaged the apple blossoms in the orchard.",
    "The detective found a torn letter hidden behind the bookcase.",
    "The city council voted to build a new public library downtown.",
    "He practises the violin for an hour every evening after dinner.",
    "What are the symptoms of a vitamin D deficiency?",
    "The hikers reached the summit just before the clouds rolled in.",
    "Prices at the farmers' market are lower than at the supermarket.",
    "The software update fixed several security vulnerabilities.",
    "A flock of geese flew south over the frozen river.",
    "The chef seasoned the soup with pepper, thyme and a bay leaf.",
    "Engineers tested the bridge with heavy trucks before it opened.",
    "Is it safe to swim in the sea after a storm?",
    "The painter mixed blue and yellow to get a bright green.",
    "The team celebrated their victory with a parade through the town.",
    "My laptop keeps overheating when I play video games.",
    "The ancient castle stands on a hill above the village.",
    "The doctor advised him to drink more water and rest.",
    "Researchers trained a neural network to recognise bird songs.",
    "The ferry crossed the bay in less than twenty minutes.",
    "A stray kitten followed us all the way home from the park.",
    "What is the difference between weather and climate?",
    "The library extended its opening hours during the exam period.",
    "Heavy snow closed the mountain pass for three days.",
    "The startup raised funding to expand into new markets.",
    "She wrote a letter of thanks to her former teacher.",
]


def _minilm_linears() -> dict[str, torch.Tensor]:
    return {
        name + ".weight": module.weight.detach().clone()
        for name, module in reference_model().named_modules()
        if isinstance(module, nn.Linear)
    }


def _bits(total_bits: float, numel: int) -> float:
    return total_bits / numel


def _calibration_inputs(model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    """Inputs of each named Linear on the calibration sentences (real tokens only)."""
    ids, mask = model.tokenizer(CALIBRATION)
    keep = mask.bool().reshape(-1)
    captured: dict[str, torch.Tensor] = {}
    hooks = []
    for name in names:
        module = model.get_submodule(name)

        def hook(mod: nn.Module, args: tuple[torch.Tensor, ...], name: str = name) -> None:
            captured[name] = args[0].detach().reshape(-1, args[0].shape[-1])[keep].clone()

        hooks.append(module.register_forward_pre_hook(hook))
    with torch.no_grad():
        model(ids, mask)
    for h in hooks:
        h.remove()
    return captured


def _layer_row(name: str, w: torch.Tensor, approx: torch.Tensor, bits: float) -> dict[str, object]:
    return {"layer": name, "shape": list(w.shape), "rel_l2": rel_l2(w, approx), "bits_per_weight": bits}


def _total_rel_l2(weights: dict[str, torch.Tensor], approx: dict[str, torch.Tensor]) -> float:
    err = sum(float((weights[k].double() - approx[k].double()).square().sum()) for k in weights)
    ref = sum(float(weights[k].double().square().sum()) for k in weights)
    return math.sqrt(err / ref)


def run_blockquant(
    weights: dict[str, torch.Tensor], bits: int
) -> tuple[dict[str, object], dict[str, torch.Tensor]]:
    cfg = BlockQuantConfig(bits=bits, group_size=128, symmetric=False, scale_search="minmax")
    approx, layers, total_bits = {}, [], 0.0
    t0 = time.perf_counter()
    for name, w in weights.items():
        spec = TensorSpec(from_torch(w.dtype), tuple(w.shape))
        approx[name] = cfg.quantize(w).dequantize()
        bpw = cfg.bits_per_weight(spec)
        total_bits += bpw * w.numel()
        layers.append(_layer_row(name, w, approx[name], bpw))
    numel = sum(w.numel() for w in weights.values())
    return {
        "method": f"blockquant RTN int{bits} g128 asym",
        "config": cfg.to_dict(),
        "bits_per_weight": _bits(total_bits, numel),
        "rel_l2": _total_rel_l2(weights, approx),
        "seconds": time.perf_counter() - t0,
        "layers": layers,
    }, approx


def _student() -> MiniLM:
    ref = reference_model()
    return MiniLM.from_state_dict(ref.state_dict(), ref.config, tokenizer=ref.tokenizer)


def _swap(model: nn.Module, name: str, layer: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, layer)


def run_codebook(
    weights: dict[str, torch.Tensor],
    cfg: CodebookConfig,
    *,
    calibrate: bool = False,
    steps: int = 0,
    lr: float = 1e-2,
) -> tuple[dict[str, object], dict[str, CodebookLinear]]:
    """Every Linear as a CodebookLinear.

    With ``calibrate``, block by block (GPTQ-style sequential calibration): the calibration inputs
    of a transformer block's Linears are captured in a model whose earlier blocks are already
    compressed, then each layer is fitted with them and fine-tuned for ``steps``.
    """
    ref = reference_model()
    student = _student()
    approx, layers, modules, total_bits = {}, [], {}, 0.0
    t0 = time.perf_counter()
    blocks: dict[str, list[str]] = {}
    for name in weights:
        blocks.setdefault(".".join(name.split(".")[:3]), []).append(name.removesuffix(".weight"))
    for names in blocks.values():
        inputs = _calibration_inputs(student, names) if calibrate else {}
        for mod_name in names:
            layer = CodebookLinear.from_linear(
                ref.get_submodule(mod_name), cfg, inputs.get(mod_name), steps=steps, lr=lr
            )
            _swap(student, mod_name, layer)
            name = mod_name + ".weight"
            modules[name] = layer
            approx[name] = layer.to_linear().weight.detach()
            bpw = layer.bits_per_weight()
            total_bits += bpw * weights[name].numel()
            layers.append(_layer_row(name, weights[name], approx[name], bpw))
    numel = sum(w.numel() for w in weights.values())
    label = f"codebook {cfg.describe()}" + (f" beam {cfg.beam}" if cfg.beam > 1 else "")
    if calibrate:
        label += " calibrated"
    return {
        "method": label,
        "config": cfg.to_dict(),
        "bits_per_weight": _bits(total_bits, numel),
        "rel_l2": _total_rel_l2(weights, approx),
        "seconds": time.perf_counter() - t0,
        "layers": layers,
    }, modules


def end_to_end(
    weights: dict[str, torch.Tensor], modules: dict[str, CodebookLinear], steps: int, batch: int, lr: float
) -> tuple[dict[str, torch.Tensor], list[float], float]:
    """Train codebooks, scales and biases of all compressed layers (codes fixed) to match the original's
    token states and pooled embeddings on the calibration sentences."""
    ref = reference_model()
    student = _student()
    for name, layer in modules.items():
        _swap(student, name.removesuffix(".weight"), layer)
    for p in student.parameters():
        p.requires_grad_(False)
    groups = []
    for layer in modules.values():
        groups += layer.decoder.param_groups(lr)
        if layer.bias is not None:
            groups.append({"params": [layer.bias], "lr": lr * 0.1})
    params = [p for g in groups for p in g["params"]]
    for p in params:
        p.requires_grad_(True)
    ids, mask = ref.tokenizer(CALIBRATION)
    with torch.no_grad():
        target_states = ref(ids, mask)
        target_pooled = mean_pool(target_states, mask)
    opt = torch.optim.Adam(groups)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(0)
    losses = []
    t0 = time.perf_counter()
    for _ in range(steps):
        rows = torch.randperm(len(CALIBRATION), generator=gen)[:batch]
        width = int(mask[rows].sum(1).max())
        b_ids, b_mask = ids[rows, :width], mask[rows, :width]
        states = student(b_ids, b_mask)
        keep = b_mask.unsqueeze(-1).float()
        state_loss = ((states - target_states[rows, :width]).square() * keep).sum() / (
            (target_states[rows, :width].square() * keep).sum()
        )
        cos_loss = 1.0 - F.cosine_similarity(mean_pool(states, b_mask), target_pooled[rows]).mean()
        loss = state_loss + cos_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    seconds = time.perf_counter() - t0
    for p in params:
        p.requires_grad_(False)
    state = {}
    for name, layer in modules.items():
        dense = layer.to_linear()
        state[name] = dense.weight.detach()
        if dense.bias is not None:
            state[name.removesuffix("weight") + "bias"] = dense.bias.detach()
    return state, losses, seconds


def _with_fidelity(row: dict[str, object], approx: dict[str, torch.Tensor]) -> dict[str, object]:
    fid = fidelity_of(approx, partial=True)
    row["embedding_mean_cosine"] = fid["mean_cosine"]
    row["embedding_min_cosine"] = fid["min_cosine"]
    row["embedding_spearman"] = fid["spearman"]
    return row


def _report(row: dict[str, object]) -> None:
    print(
        f"{row['method']}: {row['bits_per_weight']:.4f} b/w, rel-L2 {row['rel_l2']:.4f}, "
        f"cosine {row['embedding_mean_cosine']:.4f}, {row['seconds']:.1f} s",
        flush=True,
    )


def to_markdown(res: dict[str, object]) -> str:
    env = res["environment"]
    out = [
        "# Codebook (residual VQ) vs blockquant RTN on all-MiniLM-L6-v2",
        "",
        f"Machine: {env['cpus']} CPUs ({env['machine']}), torch {env['torch']}, {env['threads']} threads. "
        f"{res['n_layers']} Linear weights, {res['numel'] / 1e6:.2f}M weights (fp32). Bits per weight count "
        "codes, codebooks/zeros and fp16 scales of every matrix, before entropy coding. Embedding cosine: "
        f"{res['n_eval_sentences']} committed sentences; fine-tuning used {len(CALIBRATION)} other sentences.",
        "",
        "| method | bits / weight | rel. L2 (all layers) | embedding cosine mean | min | similarity Spearman "
        "| seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["methods"]:
        cos = f"{r['embedding_mean_cosine']:.4f}" if "embedding_mean_cosine" in r else "-"
        mn = f"{r['embedding_min_cosine']:.4f}" if "embedding_min_cosine" in r else "-"
        sp = f"{r['embedding_spearman']:.4f}" if "embedding_spearman" in r else "-"
        out.append(
            f"| {r['method']} | {r['bits_per_weight']:.4f} | {r['rel_l2']:.4f} | {cos} | {mn} | {sp} "
            f"| {r['seconds']:.1f} |"
        )
    out += ["", "## Relative L2 per layer", ""]
    methods = [r for r in res["methods"] if r.get("layers")]
    out.append("| layer | " + " | ".join(r["method"] for r in methods) + " |")
    out.append("|---|" + "---|" * len(methods))
    for i, layer in enumerate(methods[0]["layers"]):
        cells = " | ".join(f"{r['layers'][i]['rel_l2']:.4f}" for r in methods)
        out.append(f"| {layer['layer'].removesuffix('.weight')} | {cells} |")
    return "\n".join(out) + "\n"


def plot(res: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in res["methods"]:
        marker = "s" if r["method"].startswith("blockquant") else "o"
        ax1.scatter(r["bits_per_weight"], r["rel_l2"], marker=marker, label=r["method"])
        if "embedding_mean_cosine" in r:
            ax2.scatter(r["bits_per_weight"], r["embedding_mean_cosine"], marker=marker, label=r["method"])
    ax1.set_xlabel("bits per weight (all side data)")
    ax1.set_ylabel("relative L2 error, all Linear weights")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=6)
    ax2.axhline(0.95, color="r", lw=0.8, linestyle=":")
    ax2.set_xlabel("bits per weight (all side data)")
    ax2.set_ylabel("mean embedding cosine vs original")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=6)
    fig.suptitle("all-MiniLM-L6-v2, every Linear compressed")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer Lloyd iterations and training steps")
    parser.add_argument("--steps", type=int, default=None, help="end-to-end training steps")
    args = parser.parse_args()
    iters = 3 if args.quick else 6
    layer_steps = 5 if args.quick else 20
    e2e_steps = args.steps if args.steps is not None else (10 if args.quick else 80)
    t_start = time.perf_counter()
    weights = _minilm_linears()
    numel = sum(w.numel() for w in weights.values())
    methods = []
    for bits in (2, 3):
        row, approx = run_blockquant(weights, bits)
        methods.append(_with_fidelity(row, approx))
        print(
            f"{row['method']}: {row['bits_per_weight']:.4f} b/w cos {row['embedding_mean_cosine']:.4f}",
            flush=True,
        )
    headline = CodebookConfig(dim=4, bits=8, codebooks=1, iters=iters)
    for cfg in [headline, CodebookConfig(dim=4, bits=6, codebooks=2, iters=iters)]:
        row, modules = run_codebook(weights, cfg)
        approx = {k: m.to_linear().weight.detach() for k, m in modules.items()}
        methods.append(_with_fidelity(row, approx))
        _report(row)
    row, modules = run_codebook(weights, headline, calibrate=True, steps=layer_steps)
    approx = {k: m.to_linear().weight.detach() for k, m in modules.items()}
    methods.append(_with_fidelity(row, approx))
    _report(row)
    tuned, losses, seconds = end_to_end(weights, modules, e2e_steps, batch=16, lr=2e-3)
    e2e = {
        "method": row["method"] + f" + end-to-end ({e2e_steps} steps)",
        "config": row["config"],
        "bits_per_weight": row["bits_per_weight"],
        "rel_l2": _total_rel_l2(weights, tuned),
        "seconds": row["seconds"] + seconds,
        "layers": [
            _layer_row(k, weights[k], tuned[k], lr["bits_per_weight"])
            for k, lr in zip(weights, row["layers"], strict=True)
        ],
        "train_loss_first_last": [losses[0], losses[-1]] if losses else [],
    }
    methods.append(_with_fidelity(e2e, tuned))
    _report(e2e)
    res = {
        "environment": {
            "torch": torch.__version__,
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "threads": torch.get_num_threads(),
            "python": platform.python_version(),
        },
        "n_layers": len(weights),
        "numel": numel,
        "n_eval_sentences": len(load_sentences()),
        "n_calibration_sentences": len(CALIBRATION),
        "quick": args.quick,
        "total_seconds": time.perf_counter() - t_start,
        "methods": methods,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "codebook.json").write_text(json.dumps(res, indent=2) + "\n")
    (RESULTS / "codebook.md").write_text(to_markdown(res))
    plot(res, RESULTS / "codebook.png")
    print(to_markdown(res))


if __name__ == "__main__":
    main()

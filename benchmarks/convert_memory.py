"""Peak memory of ``holotensor convert`` against the largest tensor and the whole checkpoint.

Builds synthetic bf16 checkpoints (N equal tensors of weight-like values), converts each in a fresh
subprocess, and reports the growth of its peak resident memory (VmHWM, which also counts the file
pages the process touches) over its size before converting.

Run: ``python benchmarks/convert_memory.py``. Writes benchmarks/results/convert_memory.{json,md}.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import safetensors.torch
import torch

RESULTS = Path(__file__).resolve().parent / "results"
CASES = [(16, 16), (4, 64), (2, 256)]  # (tensors, MiB per bf16 tensor)

_CHILD = """
import sys, time
import holotensor.api

def hwm():  # peak RSS of this process image in bytes (ru_maxrss would include the forked parent)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

before = hwm()
t0 = time.perf_counter()
holotensor.api.convert_to_hct(sys.argv[1], sys.argv[2])
print(before, hwm(), time.perf_counter() - t0)
"""


def _case(tmp: Path, count: int, mib: int) -> dict[str, float]:
    src = tmp / f"ckpt_{count}x{mib}.safetensors"
    g = torch.Generator().manual_seed(0)
    n = mib * (1 << 20) // 2
    safetensors.torch.save_file(
        {f"layer{i}.weight": (torch.randn(n, generator=g) * 0.02).bfloat16().reshape(-1, 1024) for i in range(count)}, src
    )
    out = subprocess.run([sys.executable, "-c", _CHILD, str(src), str(tmp / "out.hct")], capture_output=True, text=True, check=True)
    before, peak, seconds = (float(x) for x in out.stdout.split())
    largest, total = mib * (1 << 20), count * mib * (1 << 20)
    src.unlink()
    return {
        "tensors": count,
        "largest_mib": mib,
        "checkpoint_mib": total / (1 << 20),
        "peak_growth_mib": (peak - before) / (1 << 20),
        "growth_over_largest": (peak - before) / largest,
        "growth_over_checkpoint": (peak - before) / total,
        "seconds": seconds,
    }


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count, mib in CASES:
            rows.append(_case(Path(tmp), count, mib))
            print(rows[-1], flush=True)
    lines = [
        "# Converter memory: peak RSS growth while converting a bf16 checkpoint (lossless)",
        "",
        "| tensors | largest tensor MiB | checkpoint MiB | peak growth MiB | / largest tensor | / checkpoint |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['tensors']} | {r['largest_mib']} | {r['checkpoint_mib']:.0f} | {r['peak_growth_mib']:.0f} | "
        f"{r['growth_over_largest']:.2f} | {r['growth_over_checkpoint']:.2f} |"
        for r in rows
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "convert_memory.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "convert_memory.json").write_text(json.dumps(rows, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

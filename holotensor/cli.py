"""The ``holotensor`` command: convert, inspect, verify and decompress checkpoints.

Exit codes: 0 success; 1 ``verify`` found damage; 2 bad input (unreadable, malformed or
missing files, bad arguments), reported as one line on stderr; 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from holotensor.api import (
    Policy,
    convert_to_hct,
    convert_to_safetensors,
    find_checkpoint,
    resolve_codec,
    safe_open,
    save_file,
)
from holotensor.api.calibrate import (
    CALIBRATION_METHODS,
    calibration_policy,
    load_hessians,
    read_calibration_text,
)
from holotensor.api.upstream import load_upstream
from holotensor.codecs import BlockQuantConfig, CodebookConfig, codec_from_dict, get_codec
from holotensor.codecs.base import CodecConfig
from holotensor.dtypes import dtype_info, from_torch
from holotensor.errors import HoloTensorError
from holotensor.format.hct2_header import TensorEntry
from holotensor.format.safetensors_io import SafetensorsReader, SafetensorsWriter
from holotensor.format.sniff import sniff

__all__ = ["main"]

_DESCRIPTION = """\
Compress model checkpoints into HCT V2 fragment files and back.

  holotensor convert model.safetensors model.hct        # lossless, bit-exact
  holotensor convert model.hct restored.safetensors     # and back
  holotensor inspect model.hct                          # per-tensor ratio, bits/weight, quality
  holotensor verify model.hct                           # check every checksum, decode everything
"""


def _codec_arg(text: str) -> CodecConfig:
    """``name`` or ``name:key=value,key=value`` (values parsed as JSON when they parse)."""
    name, _, rest = text.partition(":")
    try:
        cls = get_codec(name)
    except HoloTensorError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    kwargs: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise argparse.ArgumentTypeError(f"codec option {item!r} must look like key=value")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"bad options for codec {name!r}: {exc}") from None


def _rule_arg(text: str) -> tuple[str, CodecConfig]:
    pattern, eq, codec = text.partition("=")
    if not eq or not pattern:
        raise argparse.ArgumentTypeError(f"rule {text!r} must look like GLOB=CODEC, e.g. '*.mlp.*=lossless'")
    return pattern, _codec_arg(codec)


def _kind(path: Path) -> str | None:
    return sniff(path) if path.is_file() else None


def _progress(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not enabled, leave=False)


def _cmd_convert(args: argparse.Namespace) -> int:
    src, dst = Path(args.source), Path(args.target)
    kind = _kind(src)
    if kind in ("hctn", "htns"):
        return _convert_upstream(src, dst, kind, args)
    to_safetensors = args.to == "safetensors" or (args.to == "auto" and kind == "hct2")
    if to_safetensors:
        with safe_open(src) as f:
            total = sum(f.entry(n).nbytes for n in f.keys())
        with _progress(total, args.progress, "decompress") as bar:
            entries = convert_to_safetensors(src, dst, fragments=args.fragments, on_tensor=lambda e: bar.update(e.nbytes))
        print(f"wrote {dst}: {len(entries)} tensors, {sum(e.nbytes for e in entries):,} bytes")
        return 0
    if args.calibrate is not None or args.calibration_method is not None:
        policy = _calibrated_policy(src, args)
    else:
        sensitive = not args.compress_sensitive
        policy = Policy(rules=args.rule or [], default=args.codec, keep_sensitive_lossless=sensitive)

    total = sum(e.nbytes for f in find_checkpoint(src) for e in SafetensorsReader(f).entries.values())
    start = time.perf_counter()
    with _progress(total, args.progress, "convert") as bar:
        entries = convert_to_hct(src, dst, policy=policy, workers=args.workers, on_tensor=lambda e: bar.update(e.nbytes))
    seconds = time.perf_counter() - start
    _print_table(_rows(entries), dst.stat().st_size)
    print(f"wrote {dst} in {seconds:.2f} s ({total / seconds / 1e6:,.0f} MB/s)")
    if args.check:
        return _check_against_source(find_checkpoint(src), dst)
    return 0


def _runner_arg(text: str) -> Any:
    """``MODULE:FUNCTION`` -> the function (imported now, so a typo fails before any work).
    As with ``python -m``, the current directory is searched too."""
    module, colon, name = text.partition(":")
    if not colon or not module or not name:
        raise argparse.ArgumentTypeError(f"runner {text!r} must look like MODULE:FUNCTION")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise argparse.ArgumentTypeError(f"cannot import calibration runner {text!r}: {exc}") from None
    if not callable(fn):
        raise argparse.ArgumentTypeError(f"calibration runner {text!r} is not callable")
    return fn


def _calibrated_policy(src: Path, args: argparse.Namespace) -> Policy:
    """The policy of ``convert --calibrate``: calibrated blockquant or codebooks for the layers with statistics.

    ``--calibrate`` takes a statistics file (``save_hessians``) or a text file of samples, which
    the ``--calibration-runner`` turns into statistics by running the model over them.
    """
    method = args.calibration_method or ("gptq" if args.calibrate is not None else "hqq")
    if not isinstance(args.codec, (BlockQuantConfig, CodebookConfig)):
        raise ValueError(
            "calibration chooses blockquant or codebook codes: pass --codec blockquant:... or "
            f"codebook:..., not {args.codec.name!r}"
        )
    if args.rule:
        raise ValueError("--rule cannot be combined with calibration (the calibrated layers pick the codecs)")
    hessians = None
    if args.calibrate is not None:
        path = Path(args.calibrate)
        if _kind(path) == "hct2":
            hessians = load_hessians(path)
        elif args.calibration_runner is None:
            read_calibration_text(path)  # a bad file is reported first
            raise ValueError(
                f"{path} is calibration text: running it needs the model's code, given as "
                "--calibration-runner MODULE:FUNCTION (e.g. models.calibration:minilm_hessians), "
                "or pass a statistics file written by holotensor.api.calibrate.save_hessians"
            )
        else:
            hessians = dict(args.calibration_runner(find_checkpoint(src), read_calibration_text(path)))
        if method == "hqq":
            raise ValueError("--calibration-method hqq is data-free; drop --calibrate or pick gptq/awq")
        print(f"calibration: {method} on {len(hessians)} layer(s) with input statistics from {path}")
    elif method != "hqq":
        raise ValueError(f"--calibration-method {method} needs --calibrate FILE (statistics or text)")
    return calibration_policy(
        args.codec, method, hessians, default="lossless", keep_sensitive_lossless=not args.compress_sensitive
    )


def _convert_upstream(src: Path, dst: Path, kind: str, args: argparse.Namespace) -> int:
    """An upstream HCTN/HTNS file -> HCT V2 (or safetensors with ``--to safetensors``)."""
    if args.calibrate is not None or args.calibration_method is not None:
        raise ValueError("calibration applies to safetensors checkpoints, not upstream HCTN/HTNS files")
    tensors = load_upstream(src, kind)
    if args.to == "safetensors":
        with SafetensorsWriter(dst, [(n, from_torch(t.dtype).name, tuple(t.shape)) for n, t in tensors.items()]) as w:
            for name, t in tensors.items():
                w.write(name, t)
        print(f"wrote {dst}: {len(tensors)} tensor(s) from upstream {kind.upper()} file {src}")
        return 0
    policy = Policy(rules=args.rule or [], default=args.codec, keep_sensitive_lossless=not args.compress_sensitive)
    save_file(tensors, dst, policy=policy)
    with safe_open(dst) as f:
        _print_table(_rows([f.entry(n) for n in f.keys()]), dst.stat().st_size)
    return 0


def _check_against_source(files: Sequence[Path], target: Path) -> int:
    """Decode ``target`` and compare every tensor with the source checkpoint."""
    from holotensor.analysis import cosine

    exact, count, broken, worst = 0, 0, [], 1.0
    with safe_open(target) as f:
        for file in files:
            reader = SafetensorsReader(file)
            for name in reader.keys():
                original, decoded = reader.tensor(name), f.get_tensor(name)
                count += 1
                if original.shape == decoded.shape and torch.equal(
                    original.reshape(-1).view(torch.uint8), decoded.reshape(-1).view(torch.uint8)
                ):
                    exact += 1
                elif get_codec(f.entry(name).codec.name).lossless:
                    broken.append(name)
                elif original.is_floating_point():
                    worst = min(worst, cosine(original, decoded))
    if broken:
        print(f"check: FAILED: lossless tensors differ from the source: {', '.join(broken)}")
        return 1
    if exact == count:
        print(f"check: bit-exact round trip, {exact}/{count} tensors identical to the source")
    else:
        print(f"check: {exact}/{count} tensors bit-exact; lowest cosine of the lossy ones {worst:.6f}")
    return 0


def _rows(entries: Sequence[TensorEntry]) -> list[dict[str, Any]]:
    rows = []
    for e in entries:
        stored = e.stored_bytes
        full = e.quality[-1] if e.quality else None
        rows.append(
            {
                "tensor": e.name,
                "dtype": e.dtype,
                "shape": list(e.shape),
                "codec": e.codec.name,
                "fragments": len(e.fragments),
                "raw_bytes": e.nbytes,
                "stored_bytes": stored,
                "ratio": e.nbytes / stored if stored else (math.inf if e.nbytes else 1.0),
                "bits_per_weight": 8 * stored / e.numel if e.numel else 0.0,
                "source_bits": 8 * dtype_info(e.dtype).itemsize,
                "lossless": bool(full and not full.measured and full.rel_l2 == 0.0),
                "cosine": full.cosine if full else None,
                "rel_l2": full.rel_l2 if full else None,
                "quality_curve": [
                    {"fragments": q.fragments, "cosine": q.cosine, "rel_l2": q.rel_l2, "measured": q.measured}
                    for q in e.quality
                ],
                "progressive": _progressive(e),
            }
        )
    return rows


def _progressive(entry: TensorEntry) -> bool:
    """Whether a strict prefix of the fragments decodes (the codec says, not the file)."""
    try:
        config = codec_from_dict(entry.codec.name, entry.codec.version, entry.codec.config)
    except HoloTensorError:
        return False
    n = len(entry.fragments)
    return config.min_fragments(entry.codec.params, n) < n


def _totals(rows: Sequence[dict[str, Any]], file_size: int) -> dict[str, Any]:
    raw = sum(r["raw_bytes"] for r in rows)
    numel = sum(r["raw_bytes"] * 8 / r["source_bits"] for r in rows)
    return {
        "tensors": len(rows),
        "raw_bytes": raw,
        "stored_bytes": sum(r["stored_bytes"] for r in rows),
        "file_bytes": file_size,
        "ratio": raw / file_size if file_size else 0.0,
        "bits_per_weight": 8 * file_size / numel if numel else 0.0,
    }


def _quality_text(row: dict[str, Any]) -> str:
    if row["lossless"]:
        return "lossless"
    if row["cosine"] is None:
        return "-"
    return f"cos {row['cosine']:.5f}"


def _prefix_text(row: dict[str, Any]) -> str:
    if not row["progressive"]:
        return "no" if row["fragments"] > 1 else "-"
    curve = row["quality_curve"]
    return f"{curve[0]['fragments']}..{row['fragments']} ({curve[0]['cosine']:.3f}..)" if curve else "yes"


def _print_table(rows: Sequence[dict[str, Any]], file_size: int) -> None:
    head = ["tensor", "dtype", "shape", "codec", "stored", "ratio", "bits/w", "quality", "prefixes"]
    body = [
        [
            r["tensor"],
            r["dtype"],
            "x".join(map(str, r["shape"])) or "()",
            r["codec"],
            f"{r['stored_bytes']:,}",
            f"{r['ratio']:.4f}",
            f"{r['bits_per_weight']:.3f}",
            _quality_text(r),
            _prefix_text(r),
        ]
        for r in rows
    ]
    t = _totals(rows, file_size)
    body.append(
        ["TOTAL (whole file)", "", f"{t['tensors']} tensors", "", f"{file_size:,}", f"{t['ratio']:.4f}",
         f"{t['bits_per_weight']:.3f}", "", ""]
    )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    right = {4, 5, 6}
    for i, line in enumerate([head, *body]):
        cells = [c.rjust(w) if j in right else c.ljust(w) for j, (c, w) in enumerate(zip(line, widths, strict=True))]
        print("  ".join(cells).rstrip())
        if i == 0 or i == len(body) - 1:
            print("  ".join("-" * w for w in widths))


def _cmd_inspect(args: argparse.Namespace) -> int:
    path = Path(args.file)
    with safe_open(path) as f:
        rows = _rows([f.entry(n) for n in f.keys()])
        meta = f.metadata()
    size = path.stat().st_size
    if args.json:
        json.dump({"file": str(path), "metadata": meta, "totals": _totals(rows, size), "tensors": rows}, sys.stdout, indent=2)
        print()
    else:
        _print_table(rows, size)
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    path = Path(args.file)
    report: list[dict[str, Any]] = []
    with safe_open(path) as f:
        for name in f.keys():
            entry = f.entry(name)
            try:
                f.get_tensor(name)
                report.append({"tensor": name, "ok": True, "fragments": len(entry.fragments)})
            except HoloTensorError as exc:
                report.append({"tensor": name, "ok": False, "error": str(exc)})
    bad = [r for r in report if not r["ok"]]
    if args.json:
        json.dump({"file": str(path), "ok": not bad, "tensors": report}, sys.stdout, indent=2)
        print()
    else:
        for r in bad:
            print(f"FAIL {r['error']}")
        frags = sum(r.get("fragments", 0) for r in report)
        verdict = "OK" if not bad else f"{len(bad)} damaged"
        print(f"{path}: {verdict}: {len(report)} tensors, {frags} fragments checked")
    return 1 if bad else 0


def _cmd_decompress(args: argparse.Namespace) -> int:
    args.to = "safetensors"
    return _cmd_convert(args)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="holotensor", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("convert", help="safetensors checkpoint -> HCT V2, or HCT V2 -> safetensors",
                       description="Convert a .safetensors file, a sharded checkpoint (directory or "
                       "model.safetensors.index.json) into one HCT V2 file, or an HCT V2 file back into "
                       "safetensors. The direction follows the source unless --to is given. The target "
                       "appears only when complete.")
    c.add_argument("source", help="a .safetensors file, checkpoint directory, index .json, or .hct file")
    c.add_argument("target", help="output path")
    c.add_argument("--to", choices=["auto", "hct", "safetensors"], default="auto", help="output format (default: by source)")
    c.add_argument("--codec", type=_codec_arg, default=resolve_codec("lossless"), metavar="NAME[:k=v,...]",
                   help="default codec, e.g. lossless or lossless:level=max (default: lossless)")
    c.add_argument("--rule", type=_rule_arg, action="append", metavar="GLOB=CODEC",
                   help="per-tensor codec rule, first match wins; repeatable")
    c.add_argument("--compress-sensitive", action="store_true",
                   help="let the default codec and glob rules apply to 1-D, norm and bias tensors too")
    c.add_argument("--workers", type=int, default=None, help="encoding threads (default: CPU count, max 4)")
    c.add_argument("--fragments", type=int, default=None, help="when decompressing: use at most K leading fragments")
    c.add_argument("--check", action="store_true",
                   help="after converting to HCT V2, decode it and compare every tensor with the source")
    c.add_argument("--calibrate", metavar="FILE", default=None,
                   help="calibrate the blockquant or codebook codes of the linear layers: FILE is a statistics file "
                   "(holotensor.api.calibrate.save_hessians) or UTF-8 text, one sample per line, run "
                   "through the model by --calibration-runner; layers without statistics stay lossless")
    c.add_argument("--calibration-method", choices=CALIBRATION_METHODS, default=None,
                   help="gptq (default with --calibrate; GPTVQ for codebooks), awq (activation-aware clipping) or hqq "
                   "(data-free: no --calibrate; every non-sensitive tensor)")
    c.add_argument("--calibration-runner", type=_runner_arg, default=None, metavar="MODULE:FUNCTION",
                   help="for a text --calibrate file: FUNCTION(checkpoint_files, samples) -> "
                   "{weight name: X^T X / n}, e.g. models.calibration:minilm_hessians")
    c.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    c.set_defaults(func=_cmd_convert)

    i = sub.add_parser("inspect", help="per-tensor table: codec, stored bytes, ratio, bits/weight, quality")
    i.add_argument("file", help="an HCT V2 file")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=_cmd_inspect)

    v = sub.add_parser("verify", help="check every checksum and decode every tensor; exit 1 on damage")
    v.add_argument("file", help="an HCT V2 file")
    v.add_argument("--json", action="store_true", help="machine-readable output")
    v.set_defaults(func=_cmd_verify)

    d = sub.add_parser("decompress", help="HCT V2 -> safetensors")
    d.add_argument("source", help="an HCT V2 file")
    d.add_argument("target", help="output .safetensors path")
    d.add_argument("--fragments", type=int, default=None, help="use at most K leading fragments per tensor")
    d.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    d.set_defaults(func=_cmd_decompress)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("holotensor: interrupted; no partial output was left behind", file=sys.stderr)
        return 130
    except (HoloTensorError, OSError, ValueError, TypeError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"holotensor: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""The "zstd" entropy coding: a fragment as a run of independent, standard zstd frames.

Each frame compresses one fixed-size chunk of the fragment (the last may be shorter) and records
its content size in the frame header, so any libzstd decodes every frame on its own and a GPU can
decode thousands of frames at once. The decoder parameters stored per fragment are::

    {"frame_size": 131072, "frames": [compressed size of frame 0, frame 1, ...]}

Frames are compressed and decompressed on all cores (``zstandard`` releases the GIL).

Encoder options (``FragmentPayload.coding_options``):

* ``frame_size``: raw bytes per frame, at most :data:`MAX_FRAME_SIZE` (default 128 KiB).
* ``checksum``: write zstd's 4-byte content checksum (XXH64) in every frame. Default off: measured
  here it cuts decode speed by more than half on raw-block frames (10 -> 4.5 GB/s) and by 30-45%
  on Huffman-coded ones, while the container already checks xxh3-64 (~20 GB/s) over every stored
  byte. Without it a flipped bit inside a raw block decodes to wrong bytes of the right size.
* ``level`` (default 3) and any ``zstandard.ZstdCompressionParameters`` field: ``strategy`` (a
  name such as "fast" or "btultra2", or its number), ``window_log``, ``chain_log``, ``hash_log``,
  ``search_log``, ``min_match``, ``target_length``. Explicit fields override what ``level`` implies.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import zstandard

from holotensor.entropy.base import EntropyCoder, register_coder
from holotensor.entropy.parallel import parallel_ranges
from holotensor.errors import DecodeError, FormatError, LimitError

__all__ = ["DEFAULT_FRAME_SIZE", "MAX_FRAME_SIZE", "ZstdCoder", "frame_spans", "min_frame_size"]

DEFAULT_FRAME_SIZE = 1 << 17
"""128 KiB: one zstd block per frame, ~0.01% larger than 1 MiB frames on bf16 weights."""

MAX_FRAME_SIZE = 1 << 24
"""16 MiB: the largest raw frame a file may declare."""

_BLOCK_MAX = 1 << 17  # zstd's largest block
_FRAME_HEADER_MIN = 6  # magic (4) + frame header descriptor (1) + window or content-size byte (1)
_BLOCK_MIN = 4  # block header (3) + at least one byte of content (an RLE block)

_STRATEGIES = {
    "fast": zstandard.STRATEGY_FAST,
    "dfast": zstandard.STRATEGY_DFAST,
    "greedy": zstandard.STRATEGY_GREEDY,
    "lazy": zstandard.STRATEGY_LAZY,
    "lazy2": zstandard.STRATEGY_LAZY2,
    "btlazy2": zstandard.STRATEGY_BTLAZY2,
    "btopt": zstandard.STRATEGY_BTOPT,
    "btultra": zstandard.STRATEGY_BTULTRA,
    "btultra2": zstandard.STRATEGY_BTULTRA2,
}
_PARAM_KEYS = ("window_log", "chain_log", "hash_log", "search_log", "min_match", "target_length")
_OPTION_KEYS = frozenset({"frame_size", "checksum", "level", "strategy", *_PARAM_KEYS})

_LOCAL = threading.local()  # per-thread compressors and decompressor: zstandard's are not thread-safe


def min_frame_size(raw_size: int) -> int:
    """Fewest bytes a zstd frame holding ``raw_size`` (>= 1) bytes can take: a header and one
    block of at least 4 bytes per 128 KiB. It bounds how much raw data stored bytes can justify."""
    return _FRAME_HEADER_MIN + _BLOCK_MIN * -(-raw_size // _BLOCK_MAX)


def _compression_params(options: Mapping[str, Any]) -> zstandard.ZstdCompressionParameters:
    unknown = set(options) - _OPTION_KEYS
    if unknown:
        raise ValueError(f"unknown zstd options {sorted(unknown)}; known: {sorted(_OPTION_KEYS)}")
    kwargs: dict[str, Any] = {
        "write_content_size": True,
        "write_checksum": bool(options.get("checksum", False)),
        "compression_level": int(options.get("level", 3)),
    }
    if "strategy" in options:
        strategy = options["strategy"]
        if isinstance(strategy, str):
            if strategy not in _STRATEGIES:
                raise ValueError(f"unknown zstd strategy {strategy!r}; known: {', '.join(_STRATEGIES)}")
            strategy = _STRATEGIES[strategy]
        kwargs["strategy"] = int(strategy)
    for key in _PARAM_KEYS:
        if key in options:
            kwargs[key] = int(options[key])
    return zstandard.ZstdCompressionParameters(**kwargs)


def _compressor(key: tuple[tuple[str, Any], ...], params: zstandard.ZstdCompressionParameters) -> Any:
    cache = getattr(_LOCAL, "compressors", None)
    if cache is None:
        cache = _LOCAL.compressors = {}
    comp = cache.get(key)
    if comp is None:
        comp = cache[key] = zstandard.ZstdCompressor(compression_params=params)
    return comp


def _decompressor() -> Any:
    dctx = getattr(_LOCAL, "decompressor", None)
    if dctx is None:
        dctx = _LOCAL.decompressor = zstandard.ZstdDecompressor()
    return dctx


def _frame_size_option(options: Mapping[str, Any]) -> int:
    frame_size = options.get("frame_size", DEFAULT_FRAME_SIZE)
    if (
        not isinstance(frame_size, int)
        or isinstance(frame_size, bool)
        or not 1 <= frame_size <= MAX_FRAME_SIZE
    ):
        raise ValueError(f"zstd frame_size must be an int in [1, {MAX_FRAME_SIZE}], got {frame_size!r}")
    return frame_size


@register_coder("zstd")
class ZstdCoder(EntropyCoder):
    """Independent zstd frames over fixed-size chunks (see the module docstring).

    Example:
        >>> coder = ZstdCoder()
        >>> stored, params = coder.encode(memoryview(b"abc" * 1000), {"frame_size": 1024})
        >>> params["frame_size"], len(params["frames"])
        (1024, 3)
        >>> coder.check(params, len(stored), 3000)
        >>> bytes(coder.decode(memoryview(stored), params, 3000)) == b"abc" * 1000
        True
    """

    def encode(self, data: memoryview, options: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
        """Compress ``data`` as ``ceil(len / frame_size)`` frames, in parallel."""
        frames, params = self.encode_parts(data, options)
        return b"".join(frames), params

    def encode_parts(self, data: memoryview, options: Mapping[str, Any]) -> tuple[list[bytes], dict[str, Any]]:
        """As :meth:`encode`, but the frames are returned separately (the writer stores them back
        to back), which saves joining them into one more copy of the fragment."""
        frame_size = _frame_size_option(options)
        params = _compression_params(options)
        key = tuple(sorted((k, v) for k, v in options.items() if k != "frame_size"))
        src = np.frombuffer(data, dtype=np.uint8)
        count = -(-src.size // frame_size)
        frames: list[bytes] = [b""] * count

        def work(lo: int, hi: int) -> None:
            comp = _compressor(key, params)
            for i in range(lo, hi):
                frames[i] = comp.compress(src[i * frame_size : (i + 1) * frame_size])

        parallel_ranges(work, count, 1)
        return frames, {"frame_size": frame_size, "frames": [len(f) for f in frames]}

    def check(self, params: Mapping[str, Any], stored_size: int, raw_size: int) -> None:
        """Validate the frame table against the stored and raw sizes, allocating nothing.

        Raises:
            LimitError: ``frame_size`` is not an int in [1, 16 MiB].
            FormatError: unknown keys, a frame count other than ``ceil(raw_size / frame_size)``,
                frame sizes that are not ints, are smaller than a frame of their raw size can be,
                or do not add up to ``stored_size``.
        """
        if set(params) != {"frame_size", "frames"}:
            raise FormatError(f"zstd params must have keys frame_size and frames, got {sorted(params)}")
        frame_size, frames = params["frame_size"], params["frames"]
        if not _is_int(frame_size) or not 1 <= frame_size <= MAX_FRAME_SIZE:
            raise LimitError(f"zstd frame_size {frame_size!r} is outside [1, {MAX_FRAME_SIZE}]")
        if not isinstance(frames, list):
            raise FormatError(f"zstd frames must be a list of sizes, got {type(frames).__name__}")
        if not _is_int(raw_size) or raw_size < 0 or not _is_int(stored_size) or stored_size < 0:
            raise FormatError(f"invalid sizes: stored {stored_size!r}, raw {raw_size!r}")
        expected = -(-raw_size // frame_size)
        if len(frames) != expected:
            raise FormatError(
                f"zstd fragment of {raw_size} bytes in frames of {frame_size} needs {expected} frames, "
                f"the index lists {len(frames)}"
            )
        if expected == 0:
            if stored_size != 0:
                raise FormatError(f"empty zstd fragment has {stored_size} stored bytes")
            return
        if not all(type(f) is int for f in frames):  # JSON ints; bool and float are not sizes
            raise FormatError("zstd frame sizes must be integers")
        floor = min_frame_size(frame_size)
        if expected > 1 and min(frames[:-1]) < floor:
            i = next(i for i, f in enumerate(frames[:-1]) if f < floor)
            raise FormatError(
                f"zstd frame {i} is {frames[i]} bytes, less than any frame of {frame_size} raw bytes"
            )
        last_raw = raw_size - (expected - 1) * frame_size
        if frames[-1] < min_frame_size(last_raw):
            raise FormatError(
                f"zstd frame {expected - 1} is {frames[-1]} bytes, less than any frame of {last_raw} raw bytes"
            )
        total = sum(frames)
        if total != stored_size:
            raise FormatError(f"zstd frame sizes add up to {total} bytes, the fragment stores {stored_size}")

    def decode(self, stored: memoryview, params: Mapping[str, Any], raw_size: int) -> bytearray:
        """Decompress every frame into one buffer, in parallel.

        Raises:
            DecodeError: a frame is not a zstd frame of exactly its expected size, is corrupt or
                fails its content checksum; the message names the frame index.
        """
        self.check(params, len(stored), raw_size)
        out = bytearray(raw_size)
        view = memoryview(out)
        spans = frame_spans(params, raw_size)

        def work(lo: int, hi: int) -> None:
            dctx = _decompressor()
            for i in range(lo, hi):
                (a, b), (c, d) = spans[i]
                _decode_frame_into(dctx, stored[a:b], view[c:d], i)

        parallel_ranges(work, len(spans), 1)
        return out

    def decode_frame_into(self, frame: memoryview, out: memoryview, index: int) -> None:
        """Decompress one frame (its stored bytes, located with :func:`frame_spans` after
        :meth:`check`) into ``out``, which it must fill exactly, for decoders that consume each
        frame while it is in cache. Thread-safe: each thread has its own decompressor."""
        _decode_frame_into(_decompressor(), frame, out, index)


def _decode_frame_into(dctx: Any, frame: memoryview, out: memoryview, index: int) -> None:
    """One frame into ``out``, which it must fill exactly: no allocation per frame (a fresh buffer
    per frame costs an mmap/munmap pair, and the TLB shootdowns stall every other thread)."""
    want = out.nbytes
    try:
        declared = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as exc:
        raise DecodeError(f"zstd frame {index}: bad frame header ({exc})") from None
    if declared != want:
        raise DecodeError(f"zstd frame {index}: header declares {declared} bytes, expected {want}")
    got = 0
    try:
        with dctx.stream_reader(frame) as reader:
            while got < want:
                n = reader.readinto(out[got:])
                if n == 0:
                    break
                got += n
            extra = reader.read(1)
    except zstandard.ZstdError as exc:
        raise DecodeError(f"zstd frame {index}: {exc}") from None
    if got != want or extra:
        raise DecodeError(f"zstd frame {index}: decoded {got + len(extra)}+ bytes, expected {want}")


def frame_spans(params: Mapping[str, Any], raw_size: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """``((stored start, end), (raw start, end))`` of every frame of checked ``params``."""
    frame_size, frames = params["frame_size"], params["frames"]
    ends = list(itertools.accumulate(frames))
    return [
        ((end - size, end), (i * frame_size, min(raw_size, (i + 1) * frame_size)))
        for i, (size, end) in enumerate(zip(frames, ends, strict=True))
    ]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

"""The lossless weight codec: dtype-aware byte planes, each stored as independent zstd frames.

::

    tensor --split_planes--> exponent plane ----zstd frames--> fragment 0
                         \\-> sign|mantissa plane --zstd frames--> fragment 1 (...)

Decoding merges the planes back bit for bit (:mod:`holotensor.entropy.fields`). Every fragment is
needed; the codec is not progressive. The layouts and zstd settings were chosen by measurement on
the MiniLM weights (22.7M parameters; ratios against the source dtype, 2-core CPU):

``level="default"``: bf16 as exponent byte + sign|mantissa byte, fp32 the same plus two mantissa
byte planes, fp16 as bits 14..7 + sign|bits 6..0; zstd's *fast* strategy with min_match 7, 64-entry
hash tables and a 128 KiB window, so the coder spends no time on matches that weight bytes do not
have and, above all, does not let useless matches break up the literals, which it codes with one
Huffman table per block. bf16 1.503 (order-0 bound of the fields 1.5117; zstd levels 3 and 19 on
the same planes give ~1.42 and 1.503, level 19 at ~1/300 of the speed), fp32 1.221, fp16 1.180.

``level="max"``: bf16 and fp32 move the two top exponent bits (nearly constant in weights) into the
sign plane (the ``-s2`` layouts), which leaves two planes that Huffman codes closer to their entropy:
bf16 1.512, fp32 1.224 (fp16 keeps its layout: its -s2 cut measured 1.138). Frames grow to
1 MiB (+0.03%). zstd level 19, btultra2 or btopt with
min_match 7 were worse for bf16 (1.5109-1.5118 vs 1.5123: their matches cost more in literal
coding than they save) and within 0.03% for fp32 at about 1/100 of the speed.

Frames: 128 KiB by default, one zstd block each; 64 KiB costs 0.03% of ratio, 1 MiB gains 0.01%.
A 1 GB tensor is ~8000 frames, plenty of lanes for a GPU decoder. Incompressible planes (the bf16
sign|mantissa plane) stay zstd frames: libzstd stores them as raw blocks, measured 7.5 bytes of
frame and block headers per frame (0.009% of the plane), and decodes them at copy speed, so the
"raw" coding gains nothing worth a second code path. zstd's 4-byte content checksum per frame is optional
(``frame_checksum``): measured, it halves decode speed on raw-block frames.

Integers, bool and fp64 are byte-transposed (bytes of the value as planes; 1-byte dtypes are one
plane) and coded at zstd level 3 (default) or 19 (max), since their planes do have matches.

Example:
    >>> cfg = LosslessConfig()
    >>> enc = cfg.encode(torch.arange(6, dtype=torch.bfloat16).reshape(2, 3))
    >>> [f.role for f in enc.fragments], enc.params
    (['exponent', 'sign_mantissa'], {'layout': 'float16'})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from holotensor.codecs.base import (
    CodecConfig,
    Encoded,
    FragmentPayload,
    StoredView,
    TensorSpec,
    register_codec,
)
from holotensor.codecs.lossless_gpu import decode_planes_on_device, device_decoder_available
from holotensor.dtypes import DTypeInfo, from_torch
from holotensor.entropy.base import get_coder
from holotensor.entropy.fields import (
    LAYOUTS,
    PlaneLayout,
    fresh_array,
    merge_chunk,
    merge_planes,
    split_planes,
)
from holotensor.entropy.parallel import parallel_ranges, worker_count
from holotensor.entropy.zstd import MAX_FRAME_SIZE, frame_spans
from holotensor.errors import DecodeError, HoloTensorError

__all__ = ["LosslessConfig"]

_LEVELS = ("default", "max")
_FRAME_SIZE = {"default": 1 << 17, "max": 1 << 20}
# weight planes: literals matter, matches do not (module docstring)
_FLOAT_ZSTD = {"strategy": "fast", "min_match": 7, "hash_log": 6, "chain_log": 6, "search_log": 1}
_OTHER_ZSTD = {"default": {"level": 3}, "max": {"level": 19}}
_FLOAT_LAYOUT = {
    "default": {"BF16": "float16", "F16": "float16", "F32": "float32"},
    "max": {"BF16": "float16-s2", "F16": "float16", "F32": "float32-s2"},
}


@register_codec("lossless")
@dataclass(frozen=True)
class LosslessConfig(CodecConfig):
    """Bit-exact compression of any storable dtype.

    Args:
        level: "default" (fast; bf16 ~1.50) or "max" (slower decode; bf16 ~1.51).
        frame_size: raw bytes per zstd frame; ``None`` picks the level's measured size
            (128 KiB default, 1 MiB max).
        frame_checksum: also write zstd's content checksum in every frame, so the coder itself
            catches corruption; off by default because it slows decoding by 30-55% and the
            container already checks xxh3-64 over all stored bytes.
    """

    version: ClassVar[int] = 1
    lossless: ClassVar[bool] = True
    progressive: ClassVar[bool] = False

    level: str = "default"
    frame_size: int | None = None
    frame_checksum: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.frame_checksum, bool):
            raise ValueError(f"lossless frame_checksum must be a bool, got {self.frame_checksum!r}")
        if self.level not in _LEVELS:
            raise ValueError(f"lossless level must be one of {_LEVELS}, got {self.level!r}")
        fs = self.frame_size
        if fs is not None and (
            not isinstance(fs, int) or isinstance(fs, bool) or not 1 <= fs <= MAX_FRAME_SIZE
        ):
            raise ValueError(f"lossless frame_size must be an int in [1, {MAX_FRAME_SIZE}], got {fs!r}")

    def layout_for(self, dtype: DTypeInfo) -> PlaneLayout:
        """The plane layout this level uses for ``dtype``."""
        name = _FLOAT_LAYOUT[self.level].get(dtype.name, f"bytes{dtype.itemsize}")
        return LAYOUTS[name]

    def _zstd_options(self, layout: PlaneLayout) -> dict[str, Any]:
        frame = self.frame_size if self.frame_size is not None else _FRAME_SIZE[self.level]
        base = _FLOAT_ZSTD if layout.name.startswith("float") else _OTHER_ZSTD[self.level]
        window = max(17, min((frame - 1).bit_length(), 27))  # the window only needs to span one frame
        extra = {"window_log": window} if base is _FLOAT_ZSTD else {}
        return {**base, **extra, "frame_size": frame, "checksum": self.frame_checksum}

    def encode(self, tensor: torch.Tensor) -> Encoded:
        """Split ``tensor`` (any shape, stride or device) into planes, one fragment each.

        Raises:
            TypeError: the dtype is not storable (see :mod:`holotensor.dtypes`).
        """
        layout = self.layout_for(from_torch(tensor.dtype))
        options = self._zstd_options(layout)
        planes = split_planes(tensor, layout)
        fragments = [
            FragmentPayload(plane, coding="zstd", coding_options=dict(options), role=role)
            for plane, role in zip(planes, layout.roles, strict=True)
        ]
        return Encoded(fragments=fragments, params={"layout": layout.name})

    def decode(
        self,
        payloads: Sequence[memoryview],
        params: Mapping[str, Any],
        spec: TensorSpec,
        *,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """Merge the decoded planes back into the tensor ``spec`` describes.

        Raises:
            DecodeError: unknown or mismatched layout, missing planes, or a plane of the wrong size.
        """
        layout = _layout_from_params(params, spec)
        if len(payloads) != len(layout.planes):
            raise DecodeError(
                f"lossless layout {layout.name} needs {len(layout.planes)} fragments, got {len(payloads)}"
            )
        numel = spec.numel
        for i, payload in enumerate(payloads):
            if memoryview(payload).nbytes != numel:
                raise DecodeError(
                    f"lossless plane {layout.roles[i]!r} has {memoryview(payload).nbytes} bytes, expected {numel}",
                    fragment=i,
                )
        elements = merge_planes(payloads, layout, numel)
        out = torch.from_numpy(elements).view(spec.dtype.torch_dtype).reshape(spec.shape)
        return out if torch.device(device).type == "cpu" else out.to(device)


    def decode_stored(
        self,
        stored: Sequence[StoredView],
        params: Mapping[str, Any],
        spec: TensorSpec,
        *,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor | None:
        """Fused CPU decode: frame i of every plane is decompressed and merged into the output
        while it is in cache, on all cores; this halves the memory traffic of decode-then-merge.
        Used when every plane is zstd frames of one frame size; ``None`` (generic path) otherwise.
        On another device with Triton installed, the planes are decoded there instead
        (:mod:`holotensor.codecs.lossless_gpu`); without Triton the CPU result is copied over.
        """
        layout = _layout_from_params(params, spec)
        numel = spec.numel
        if (
            numel == 0
            or len(stored) != len(layout.planes)
            or not layout.mergeable
            or any(s.coding != "zstd" or s.raw_size != numel for s in stored)
            or len({s.coding_params.get("frame_size") for s in stored}) != 1
        ):
            return None
        coder = get_coder("zstd")
        for i, s in enumerate(stored):
            try:
                coder.check(s.coding_params, s.data.nbytes, s.raw_size)
            except HoloTensorError as exc:
                raise exc.located(fragment=i) from exc
        if torch.device(device).type != "cpu" and device_decoder_available():
            return decode_planes_on_device(stored, layout, spec, device)
        spans = [frame_spans(s.coding_params, numel) for s in stored]
        out = fresh_array(numel, np.dtype(f"u{layout.itemsize}"))

        frame_elements = stored[0].coding_params["frame_size"]

        def work(lo: int, hi: int) -> None:
            size = min(frame_elements, numel)
            scratch = np.empty(size, out.dtype)
            buffers = [np.empty(size, np.uint8) for _ in stored]
            for f in range(lo, hi):
                c, d = spans[0][f][1]
                for i, s in enumerate(stored):
                    (a, b), _ = spans[i][f]
                    try:
                        coder.decode_frame_into(s.data[a:b], memoryview(buffers[i])[: d - c], f)
                    except HoloTensorError as exc:
                        raise exc.located(fragment=i) from exc
                merge_chunk([buf[: d - c] for buf in buffers], layout, out[c:d], scratch)

        frames = len(spans[0])  # one work item per core, so each allocates its buffers once
        parallel_ranges(work, frames, -(-frames // worker_count()))
        tensor = torch.from_numpy(out).view(spec.dtype.torch_dtype).reshape(spec.shape)
        return tensor if torch.device(device).type == "cpu" else tensor.to(device)


def _layout_from_params(params: Mapping[str, Any], spec: TensorSpec) -> PlaneLayout:
    if set(params) != {"layout"}:
        raise DecodeError(f"lossless params must be {{'layout': ...}}, got keys {sorted(params)}")
    name = params["layout"]
    layout = LAYOUTS.get(name) if isinstance(name, str) else None
    if layout is None:
        raise DecodeError(f"unknown lossless plane layout {name!r}; known: {', '.join(LAYOUTS)}")
    if layout.itemsize != spec.dtype.itemsize:
        raise DecodeError(
            f"lossless layout {name} is for {layout.itemsize}-byte elements, the tensor is {spec.dtype.name}"
        )
    return layout

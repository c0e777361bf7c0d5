"""The "blockquant" codec: groupwise integer quantization (int2..int8) with fp16/bf16 side data.

Lossy. The math is :mod:`holotensor.codecs.quant_math`; this module only lays its output out as
fragments::

    tensor --quantize--> codes (uint8) --pack_bits--> fragment 0 "codes"
                         scales (*lead, G)  fp16/bf16 --> fragment 1 "scales"
                         zeros  (*lead, G)  fp16/bf16 --> fragment 2 "zeros" (asymmetric only)

Progressive form (``planes`` set, e.g. ``bits=8, planes=(4, 2, 2)``): the codes are cut into bit
planes, most significant first, and the side data comes first so that any prefix decodes::

    fragment 0 "scales", [1 "zeros"], then "codes[7:4]", "codes[3:2]", "codes[1:0]"

A prefix that lacks the low ``m`` bits decodes each code as its known high bits followed by the
middle of the missing range (``2^(m-1)``), the centre of the quantization cell it is known to lie
in; with every plane it is exactly the non-progressive result. Each plane is packed like the codes
(``pack_bits`` with the plane's width).

Payload layout (all little-endian, row-major): fragment 0 is ``ceil(numel * bits / 8)`` bytes of
tightly packed codes (see :func:`~holotensor.codecs.quant_math.pack_bits`); fragments 1 and 2 are
``rows * G`` 16-bit values, where ``rows = numel / K`` and ``G = ceil(K / group_size)`` (``G = 1``
per channel). The codec has no per-tensor params; everything follows from the config and the
tensor's shape.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from holotensor.codecs import quant_math as qm
from holotensor.codecs.base import (
    CodecConfig,
    Encoded,
    FragmentPayload,
    TensorSpec,
    register_codec,
    tensor_bytes,
)
from holotensor.errors import DecodeError

__all__ = ["BlockQuantConfig"]


def _dequantize_on_device(qt: qm.QuantizedTensor) -> torch.Tensor | None:
    """Unpack and dequantize with the Triton kernel (float32 out, the same bits as
    :meth:`QuantizedTensor.dequantize`); ``None`` when Triton is not installed."""
    try:
        from triton_kernels.dequant import dequantize
    except ImportError:
        return None
    return dequantize(
        qt.packed, qt.scales, qt.zeros, bits=qt.bits, group_size=qt.group_size, shape=qt.shape, dtype=torch.float32
    )


def _plane_shifts(planes: Sequence[int]) -> list[tuple[int, int]]:
    """(width, shift) of each bit plane, most significant first."""
    out, shift = [], sum(planes)
    for width in planes:
        shift -= width
        out.append((width, shift))
    return out


def _buffer_tensor(data: Any, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """A fresh tensor over a copy of ``data`` (which may be a read-only memoryview)."""
    raw = bytearray(data)
    if not raw:
        return torch.empty(0, dtype=dtype, device=device)
    return torch.frombuffer(raw, dtype=dtype).to(device)


@register_codec("blockquant")
@dataclass(frozen=True)
class BlockQuantConfig(CodecConfig):
    """Groupwise round-to-nearest integer quantization along the last dimension.

    Args:
        bits: code width, 2..8.
        group_size: values per group, 32..256, or ``None`` for one group per row (per channel).
        symmetric: signed codes with no zero point; otherwise an fp16/bf16 offset per group.
        scale_dtype: ``"fp16"`` or ``"bf16"``, the storage dtype of scales and zeros.
        scale_search: ``"minmax"`` (plain RTN) or ``"mse"`` (per-group clipping search).
        coding: entropy coding of every fragment (``"zstd"`` or ``"raw"``).
        planes: bit widths, most significant first, summing to ``bits``: store the codes as
            bit planes so that every prefix of the fragments decodes (see the module docstring);
            ``None`` stores them whole.

    Example:
        >>> cfg = BlockQuantConfig(bits=4, group_size=128)
        >>> enc = cfg.encode(torch.randn(16, 256))
        >>> [f.role for f in enc.fragments]
        ['codes', 'scales', 'zeros']
    """

    version = 1
    lossless = False
    progressive = False

    bits: int = 4
    group_size: int | None = 128
    symmetric: bool = False
    scale_dtype: str = "fp16"
    scale_search: str = "minmax"
    coding: str = "zstd"
    planes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.planes is not None:
            planes = tuple(self.planes) if isinstance(self.planes, list | tuple) else None
            if not planes or not all(isinstance(w, int) and w >= 1 for w in planes) or sum(planes) != self.bits:
                raise ValueError(f"planes must be positive bit widths summing to bits={self.bits}, got {self.planes!r}")
            object.__setattr__(self, "planes", planes)  # JSON gives a list
        qm.validate_bits(self.bits)
        qm.validate_group_size(self.group_size)
        if not isinstance(self.symmetric, bool):
            raise ValueError(f"symmetric must be a bool, got {self.symmetric!r}")
        if self.scale_dtype not in qm.SCALE_DTYPES:
            raise ValueError(
                f"scale_dtype must be one of {sorted(qm.SCALE_DTYPES)}, got {self.scale_dtype!r}"
            )
        if self.scale_search not in ("minmax", "mse"):
            raise ValueError(f"scale_search must be 'minmax' or 'mse', got {self.scale_search!r}")
        if not isinstance(self.coding, str) or not self.coding:
            raise ValueError(f"coding must be an entropy coding name, got {self.coding!r}")

    @property
    def n_side(self) -> int:
        """Fragments of side data: scales, and zeros when asymmetric."""
        return 1 if self.symmetric else 2

    @property
    def n_fragments(self) -> int:
        return self.n_side + (len(self.planes) if self.planes else 1)

    def min_fragments(self, params: Mapping[str, Any], n_fragments: int) -> int:
        return min(self.n_side + 1, n_fragments) if self.planes else n_fragments

    def describe(self) -> str:
        """Short human label, e.g. ``"int4 g128 asym fp16"``."""
        group = "per-channel" if self.group_size is None else f"g{self.group_size}"
        return f"int{self.bits} {group} {'sym' if self.symmetric else 'asym'} {self.scale_dtype}"

    def payload_sizes(self, shape: Sequence[int]) -> list[int]:
        """Byte size of each fragment payload for a tensor of ``shape``."""
        shape = tuple(int(d) for d in shape)
        numel = math.prod(shape)
        side = [math.prod(qm.scales_shape(shape, self.group_size)) * 2] * self.n_side
        if self.planes:
            return side + [qm.packed_size(numel, w) for w in self.planes]
        return [qm.packed_size(numel, self.bits), *side]

    def bits_per_weight(
        self, spec: TensorSpec, params: Mapping[str, Any] | None = None, stored_bytes: int | None = None
    ) -> float:
        """Bits per weight including all side data (scales, zeros).

        With ``stored_bytes`` (the fragments' size after entropy coding, plus any index or
        header bytes the caller wants counted) that is ``8 * stored_bytes / numel``; without it,
        the payload sizes before entropy coding. An empty tensor reports 0.0.
        """
        total = sum(self.payload_sizes(spec.shape)) if stored_bytes is None else int(stored_bytes)
        return 8.0 * total / spec.numel if spec.numel else 0.0

    def quantize(self, tensor: torch.Tensor) -> qm.QuantizedTensor:
        """Quantize ``tensor`` with this config's settings (no fragments yet)."""
        codes, scales, zeros = qm.quantize(
            tensor,
            self.bits,
            self.group_size,
            self.symmetric,
            self.scale_dtype,
            scale_search=self.scale_search,
        )
        return qm.QuantizedTensor.from_codes(codes, scales, zeros, self.bits, self.group_size)

    def encode(self, tensor: torch.Tensor) -> Encoded:
        """Quantize and lay out as fragments.

        Raises:
            ValueError: a non-floating tensor or NaN/Inf values.
        """
        return self.encode_quantized(self.quantize(tensor))

    def encode_quantized(self, qt: qm.QuantizedTensor) -> Encoded:
        """Fragments of an already quantized tensor, e.g. from ``LearnedQuantizer.freeze()``.

        Raises:
            ValueError: ``qt`` was made with other bits, group size, symmetry or scale dtype.
        """
        if (qt.bits, qt.group_size, qt.symmetric, qt.scales.dtype) != (
            self.bits,
            self.group_size,
            self.symmetric,
            qm.SCALE_DTYPES[self.scale_dtype],
        ):
            raise ValueError(
                f"quantized tensor (int{qt.bits}, group {qt.group_size}, symmetric={qt.symmetric}, "
                f"{qt.scales.dtype}) does not match config {self.describe()}"
            )
        side = [FragmentPayload(tensor_bytes(qt.scales), coding=self.coding, role="scales")]
        if qt.zeros is not None:
            side.append(FragmentPayload(tensor_bytes(qt.zeros), coding=self.coding, role="zeros"))
        if not self.planes:
            return Encoded([FragmentPayload(tensor_bytes(qt.packed), coding=self.coding, role="codes"), *side])
        codes = qt.codes().reshape(-1)
        planes = []
        for width, shift in _plane_shifts(self.planes):
            plane = torch.bitwise_and(torch.bitwise_right_shift(codes, shift), (1 << width) - 1)
            role = f"codes[{shift + width - 1}:{shift}]"
            planes.append(FragmentPayload(tensor_bytes(qm.pack_bits(plane, width)), coding=self.coding, role=role))
        return Encoded([*side, *planes])

    def decode_quantized(
        self, payloads: Sequence[memoryview], spec: TensorSpec, *, device: torch.device | str = "cpu"
    ) -> qm.QuantizedTensor:
        """Check and wrap the payloads as a :class:`~holotensor.codecs.quant_math.QuantizedTensor`.

        Raises:
            DecodeError: wrong fragment count, a payload of the wrong size, or non-finite side data.
        """
        lowest = self.min_fragments({}, self.n_fragments)
        if not lowest <= len(payloads) <= self.n_fragments:
            raise DecodeError(
                f"blockquant {self.describe()} decodes from {lowest}..{self.n_fragments} fragments, got {len(payloads)}"
            )
        for i, (payload, size) in enumerate(zip(payloads, self.payload_sizes(spec.shape), strict=False)):
            got = memoryview(payload).nbytes
            if got != size:
                raise DecodeError(
                    f"blockquant payload has {got} bytes, expected {size} "
                    f"for shape {list(spec.shape)} ({self.describe()})",
                    fragment=i,
                )
        shape = tuple(spec.shape)
        side_shape = qm.scales_shape(shape, self.group_size)
        sdt = qm.SCALE_DTYPES[self.scale_dtype]
        first_side = 0 if self.planes else 1  # whole codes come first; bit planes come last
        side = []
        for i in range(first_side, first_side + self.n_side):
            t = _buffer_tensor(payloads[i], torch.int16, device).view(sdt).reshape(side_shape)
            if not bool(torch.isfinite(t).all()):
                raise DecodeError("blockquant side data holds NaN or Inf", fragment=i)
            side.append(t)
        zeros = side[1] if len(side) > 1 else None
        if not self.planes:
            packed = _buffer_tensor(payloads[0], torch.uint8, device)
            return qm.QuantizedTensor(packed, side[0], zeros, shape, self.bits, self.group_size)
        numel = math.prod(shape)
        codes = torch.zeros(numel, dtype=torch.uint8, device=device)
        missing = self.bits
        for payload, (width, shift) in zip(payloads[self.n_side :], _plane_shifts(self.planes), strict=False):
            plane = qm.unpack_bits(_buffer_tensor(payload, torch.uint8, device), width, numel)
            codes |= torch.bitwise_left_shift(plane, shift)
            missing = shift
        if missing:
            codes |= 1 << (missing - 1)  # the middle of the cell the known high bits select
        return qm.QuantizedTensor.from_codes(codes.reshape(shape), side[0], zeros, self.bits, self.group_size)

    def decode(
        self,
        payloads: Sequence[memoryview],
        params: Mapping[str, Any],
        spec: TensorSpec,
        *,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """Dense tensor of ``spec`` from the fragments given (all, or a prefix of the bit
        planes), computed on ``device``.

        Raises:
            DecodeError: a non-float target dtype, payloads that do not fit ``spec``, or side data
                whose decoded values overflow the target dtype.
        """
        if spec.dtype.kind != "float":
            raise DecodeError(f"blockquant decodes to floating dtypes only, not {spec.dtype.name}")
        target = spec.dtype.torch_dtype
        qt = self.decode_quantized(payloads, spec, device=device)
        out = _dequantize_on_device(qt) if torch.device(device).type == "cuda" else None
        if out is None:
            out = qt.dequantize(torch.float32)
        if out.numel() and not bool(out.abs().amax() <= torch.finfo(target).max):
            raise DecodeError(f"blockquant values overflow {spec.dtype.name} (scales or zeros out of range)")
        return out.to(target)

"""The "codebook" codec: vector quantization against residual codebooks, progressive by stage.

Groups of ``dim`` consecutive values along the last dimension are replaced by the sum of one entry
from each of ``codebooks`` residual codebooks (AQLM / residual VQ style; see
:mod:`holotensor.codecs.vq_math` for the math and the normative conventions)::

    W --rows / fp16 rms--> groups of d --k-means per stage--> C_0..C_{M-1}, codes_0..codes_{M-1}

    fragment 0  "codebooks"   M x k x d fp16 (all stages)
    fragment 1  "scales"      N fp16 per-row scales (only with scale="channel")
    fragment 2+m "codes m"    stage m's N x G codes, packed (vq_math.pack_codes)

Payload layout (little-endian, row-major): ``k = params["entries"]`` (``min(2^bits, N*G)``), ``N``
rows and ``G = ceil(K / dim)`` groups per row follow from the shape (see
:func:`holotensor.codecs.vq_math.row_view`). **Progressive:** the fragments up to stage 0's codes
(``min_fragments``: 2 without scales, 3 with) decode to the stage-0 approximation, and each further
fragment adds one residual stage.

Bits per weight, counting everything: ``(M * N * G * bits + 16 * M * k * dim + 16 * N) / numel``
(the last term only with scales), before entropy coding (see :meth:`CodebookConfig.bits_per_weight`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from holotensor.codecs import vq_math as vm
from holotensor.codecs.base import (
    CodecConfig,
    Encoded,
    FragmentPayload,
    TensorSpec,
    register_codec,
    tensor_bytes,
)
from holotensor.codecs.vq_calibration import gptvq_quantize
from holotensor.errors import DecodeError

__all__ = ["CodebookConfig", "triton_decoder"]

_MAX_STAGES = 8
_MAX_ITERS = 1000
_MAX_BEAM = 64


def triton_decoder() -> Callable[..., torch.Tensor] | None:
    """``triton_kernels.codebook.codebook_decode``, imported on first use; ``None`` without Triton."""
    try:
        from triton_kernels.codebook import codebook_decode
    except ImportError:
        return None
    return codebook_decode


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")


@register_codec("codebook")
@dataclass(frozen=True)
class CodebookConfig(CodecConfig):
    """Residual vector quantization with optional per-output-channel scales.

    Args:
        dim: values per vector (1..64); the last dimension is zero-padded to a multiple of it.
        bits: code width per stage (1..16): each codebook has up to ``2^bits`` entries.
        codebooks: residual stages (1..8).
        scale: ``"channel"`` (an fp16 RMS scale per row, rows normalized first) or ``None``.
        iters: Lloyd iterations per stage (0..1000).
        beam: width of the joint code search over stages (1..64; 1 = greedy).
        seed: seed of the k-means++ draws.
        coding: entropy coding of every fragment (``"zstd"`` or ``"raw"``).

    Example:
        >>> cfg = CodebookConfig(dim=8, bits=8, codebooks=2)
        >>> enc = cfg.encode(torch.randn(64, 256))
        >>> [f.role for f in enc.fragments]
        ['codebooks', 'scales', 'codes 0', 'codes 1']
    """

    version = 1
    lossless = False
    progressive = True

    dim: int = 8
    bits: int = 8
    codebooks: int = 1
    scale: str | None = "channel"
    iters: int = 20
    beam: int = 1
    seed: int = 0
    coding: str = "zstd"

    def __post_init__(self) -> None:
        vm.validate_dim(self.dim)
        vm.validate_bits(self.bits)
        _check_int("codebooks", self.codebooks, 1, _MAX_STAGES)
        _check_int("iters", self.iters, 0, _MAX_ITERS)
        _check_int("beam", self.beam, 1, _MAX_BEAM)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        if self.scale not in ("channel", None):
            raise ValueError(f"scale must be 'channel' or None, got {self.scale!r}")
        if not isinstance(self.coding, str) or not self.coding:
            raise ValueError(f"coding must be an entropy coding name, got {self.coding!r}")

    @property
    def _side_fragments(self) -> int:
        return 2 if self.scale == "channel" else 1

    def describe(self) -> str:
        """Short label, e.g. ``"vq d8 2x8b channel"``."""
        return f"vq d{self.dim} {self.codebooks}x{self.bits}b {self.scale or 'unscaled'}"

    def _layout(self, shape: Sequence[int]) -> tuple[int, int]:
        """(rows N, groups per row G) for ``shape``."""
        n, k = vm.row_view(tuple(int(d) for d in shape))
        return n, -(-k // self.dim)

    def payload_sizes(self, shape: Sequence[int], entries: int) -> list[int]:
        """Byte size of every fragment for a tensor of ``shape`` with ``entries`` per codebook."""
        n, g = self._layout(shape)
        sizes = [self.codebooks * entries * self.dim * 2]
        if self.scale == "channel":
            sizes.append(n * 2)
        return sizes + [vm.packed_codes_size(n * g, self.bits)] * self.codebooks

    def bits_per_weight(
        self, spec: TensorSpec, params: Mapping[str, Any], stored_bytes: int | None = None
    ) -> float:
        """Bits per weight including codebooks and scales.

        With ``stored_bytes`` (the fragments after entropy coding plus whatever else the caller
        counts) that is ``8 * stored_bytes / numel``; without it, the payload sizes.
        """
        if not spec.numel:
            return 0.0
        total = (
            sum(self.payload_sizes(spec.shape, int(params["entries"])))
            if stored_bytes is None
            else stored_bytes
        )
        return 8.0 * total / spec.numel

    def min_fragments(self, params: Mapping[str, Any], n_fragments: int) -> int:
        return min(self._side_fragments + 1, n_fragments)

    def quantize(
        self,
        tensor: torch.Tensor,
        *,
        importance: torch.Tensor | None = None,
        hessian: torch.Tensor | None = None,
        steps: int = 20,
        lr: float = 1e-2,
        damp: float = 0.1,
    ) -> vm.CodebookTensor:
        """Fit codebooks and codes to ``tensor`` (no fragments yet).

        ``importance`` weights columns in the k-means fit. ``hessian`` (``X^T X`` of the layer's
        inputs over the last dimension) calibrates instead:
        :func:`~holotensor.codecs.vq_calibration.gptvq_quantize` with ``steps`` Adam steps of
        codebook fitting at ``lr`` and GPTQ damping ``damp``.

        Raises:
            ValueError: a non-floating or empty tensor, NaN/Inf values, both ``importance`` and
                ``hessian``, or a Hessian that does not fit.
        """
        settings = {
            "dim": self.dim,
            "bits": self.bits,
            "stages": self.codebooks,
            "scale": self.scale == "channel",
            "iters": self.iters,
            "beam": self.beam,
            "seed": self.seed,
        }
        if hessian is None:
            return vm.quantize(tensor, importance=importance, **settings)
        if importance is not None:
            raise ValueError(
                "give importance or hessian, not both (the Hessian's diagonal is the importance)"
            )
        return gptvq_quantize(tensor, hessian, damp=damp, steps=steps, lr=lr, **settings)

    def encode(self, tensor: torch.Tensor) -> Encoded:
        """Quantize and lay out as fragments.

        Raises:
            ValueError: a non-floating or empty tensor, NaN/Inf values.
        """
        return self.encode_quantized(self.quantize(tensor))

    def encode_quantized(self, ct: vm.CodebookTensor) -> Encoded:
        """Fragments of an already fitted tensor, e.g. from ``CodebookLinear.to_codebook_tensor()``.

        Raises:
            ValueError: ``ct`` has other dim, bits, stage count or scale setting than this config.
        """
        m, k, d = ct.codebooks.shape
        if (m, d, ct.bits, ct.scales is not None) != (
            self.codebooks,
            self.dim,
            self.bits,
            self.scale == "channel",
        ):
            raise ValueError(
                f"codebook tensor ({m}x{ct.bits}b, d{d}, scales={ct.scales is not None}) "
                f"does not match config {self.describe()}"
            )
        frags = [FragmentPayload(tensor_bytes(ct.codebooks.half()), coding=self.coding, role="codebooks")]
        if ct.scales is not None:
            frags.append(FragmentPayload(tensor_bytes(ct.scales.half()), coding=self.coding, role="scales"))
        for stage in range(m):
            packed = vm.pack_codes(ct.codes[stage], self.bits)
            frags.append(FragmentPayload(tensor_bytes(packed), coding=self.coding, role=f"codes {stage}"))
        return Encoded(fragments=frags, params={"entries": k})

    def decode_quantized(
        self,
        payloads: Sequence[memoryview],
        params: Mapping[str, Any],
        spec: TensorSpec,
        *,
        device: torch.device | str = "cpu",
    ) -> vm.CodebookTensor:
        """Check the payloads and unpack them into a :class:`~holotensor.codecs.vq_math.CodebookTensor`
        holding the stages present.

        Raises:
            DecodeError: bad params, too few or too many fragments, a payload of the wrong size,
                non-finite codebooks or scales, or a code beyond its codebook.
        """
        entries = params.get("entries")
        if isinstance(entries, bool) or not isinstance(entries, int) or not 1 <= entries <= 1 << self.bits:
            raise DecodeError(f"codebook params: entries must be 1..{1 << self.bits}, got {entries!r}")
        n, g = self._layout(spec.shape)
        if entries > max(1, n * g):
            raise DecodeError(f"codebook params: {entries} entries for only {n * g} vectors")
        side = self._side_fragments
        if not side + 1 <= len(payloads) <= side + self.codebooks:
            raise DecodeError(
                f"codebook {self.describe()} decodes {side + 1}..{side + self.codebooks} fragments, "
                f"got {len(payloads)}"
            )
        sizes = self.payload_sizes(spec.shape, entries)
        for i, payload in enumerate(payloads):
            got = memoryview(payload).nbytes
            if got != sizes[i]:
                raise DecodeError(
                    f"codebook payload has {got} bytes, expected {sizes[i]} for shape {list(spec.shape)} "
                    f"({self.describe()}, {entries} entries)",
                    fragment=i,
                )
        stages = len(payloads) - side
        cbs = torch.frombuffer(bytearray(payloads[0]), dtype=torch.int16).view(torch.float16)
        cbs = cbs.reshape(self.codebooks, entries, self.dim)[:stages].to(device)
        if not bool(torch.isfinite(cbs).all()):
            raise DecodeError("codebook entries hold NaN or Inf", fragment=0)
        scales = None
        if self.scale == "channel":
            scales = (
                torch.frombuffer(bytearray(payloads[1]), dtype=torch.int16).view(torch.float16).to(device)
            )
            if n and not bool(torch.isfinite(scales).all()):
                raise DecodeError("codebook scales hold NaN or Inf", fragment=1)
        codes = []
        for stage in range(stages):
            raw = torch.frombuffer(bytearray(payloads[side + stage]), dtype=torch.uint8).to(device)
            c = vm.unpack_codes(raw, self.bits, n * g)
            if c.numel() and int(c.max()) >= entries:
                raise DecodeError(
                    f"code {int(c.max())} is beyond the codebook's {entries} entries", fragment=side + stage
                )
            codes.append(c.reshape(n, g))
        return vm.CodebookTensor(torch.stack(codes), cbs, scales, tuple(spec.shape), self.bits)

    def decode(
        self,
        payloads: Sequence[memoryview],
        params: Mapping[str, Any],
        spec: TensorSpec,
        *,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """Dense tensor of ``spec`` from the codebooks, scales and the codes of the stages given.

        On a CUDA device with Triton installed the gather runs as one Triton kernel
        (``triton_kernels.codebook``); elsewhere it is :func:`holotensor.codecs.vq_math.reconstruct`.

        Raises:
            DecodeError: a non-float target dtype, payloads that do not fit ``spec`` or ``params``,
                or values that overflow the target dtype.
        """
        if spec.dtype.kind != "float":
            raise DecodeError(f"codebook decodes to floating dtypes only, not {spec.dtype.name}")
        ct = self.decode_quantized(payloads, params, spec, device=device)
        launcher = triton_decoder() if ct.codes.device.type == "cuda" else None
        if launcher is not None:
            _, k = vm.row_view(ct.shape)
            out = launcher(ct.codes, ct.codebooks, ct.scales, cols=k).reshape(ct.shape)
        else:
            out = ct.dequantize()
        target = spec.dtype.torch_dtype
        if out.numel() and not bool(out.abs().amax() <= torch.finfo(target).max):
            raise DecodeError(f"codebook values overflow {spec.dtype.name}")
        return out.to(target)

"""LearnedQuantizer: fake quantization with a learned step size (LSQ) and optional offset (LSQ+).

References:
    Esser et al., "Learned Step Size Quantization", ICLR 2020 (LSQ).
    Bhalgat et al., "LSQ+: Improving low-bit quantization through learnable offsets and better
    initialization", CVPR Workshops 2020 (LSQ+).

With ``u = (v - beta) / s`` (``beta = 0`` without an offset) and codes in ``[lo, hi]``::

    forward   v_hat = clamp(round(u), lo, hi) * s + beta
    d/dv      1 if lo < u < hi else 0                         (straight-through round)
    d/ds      round(u) - u inside, lo below, hi above         (times g)
    d/dbeta   0 inside, 1 outside                              (times g)
    g         1 / sqrt(n * hi), n = values sharing one step

The step and offset used in the forward pass are the values rounded to the storage dtype
(fp16/bf16, straight through), so :meth:`LearnedQuantizer.freeze` reproduces the trained forward
output exactly. The math is :mod:`holotensor.codecs.quant_math`; this module only adds gradients.
Layers: ``lsq_fwd``/``lsq_bwd`` -> ``LSQFunction`` -> ``LearnedQuantizer``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from holotensor.codecs import quant_math as qm
from holotensor.codecs.blockquant import BlockQuantConfig

__all__ = ["LSQFunction", "LearnedQuantizer", "lsq_bwd", "lsq_fwd"]

_INITS = ("minmax", "mse", "lsq")


def _group(x: torch.Tensor, group_size: int | None, per_tensor: bool, pad: str) -> torch.Tensor:
    if per_tensor:
        return x.reshape(1, 1, -1)
    return qm.group_rows(x, group_size, pad=pad)


def _ungroup(xg: torch.Tensor, shape: torch.Size, per_tensor: bool) -> torch.Tensor:
    return xg.reshape(shape) if per_tensor else qm.ungroup(xg, tuple(shape))


def _effective(
    step: torch.Tensor, offset: torch.Tensor | None, scale_dtype: torch.dtype, n_groups: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Step and offset as stored (rounded to ``scale_dtype``), shaped ``(rows, G, 1)``."""
    s = qm.stored_scale(step, scale_dtype).float().reshape(-1, n_groups, 1)
    z = None if offset is None else offset.to(scale_dtype).float().reshape(-1, n_groups, 1)
    return s, z


def lsq_fwd(
    x: torch.Tensor,
    step: torch.Tensor,
    offset: torch.Tensor | None,
    lo: int,
    hi: int,
    group_size: int | None,
    per_tensor: bool,
    scale_dtype: torch.dtype,
) -> torch.Tensor:
    """Fake-quantized ``x`` (same shape and dtype) for the given steps/offsets."""
    xg = _group(x.float(), group_size, per_tensor, "edge")
    s, z = _effective(step, offset, scale_dtype, xg.shape[1])
    y = qm.values_grouped(qm.codes_grouped(xg, s, z, lo, hi), s, z)
    return _ungroup(y, x.shape, per_tensor).to(x.dtype)


def lsq_bwd(
    grad_y: torch.Tensor,
    x: torch.Tensor,
    step: torch.Tensor,
    offset: torch.Tensor | None,
    lo: int,
    hi: int,
    group_size: int | None,
    per_tensor: bool,
    scale_dtype: torch.dtype,
    grad_scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """LSQ/LSQ+ gradients ``(d x, d step, d offset)``; see the module docstring."""
    xg = _group(x.float(), group_size, per_tensor, "edge")
    gy = _group(grad_y.float(), group_size, per_tensor, "zero")
    s, z = _effective(step, offset, scale_dtype, xg.shape[1])
    u = qm.code_units(xg, s, z)
    below = u <= lo
    above = u >= hi
    inside = ~(below | above)
    grad_x = _ungroup(gy * inside, x.shape, per_tensor).to(x.dtype)
    dyds = torch.where(inside, torch.round(u) - u, torch.where(below, float(lo), float(hi)))
    grad_step = ((gy * dyds).sum(dim=-1) * grad_scale).reshape(step.shape).to(step.dtype)
    grad_offset = None
    if offset is not None:
        grad_offset = ((gy * ~inside).sum(dim=-1) * grad_scale).reshape(offset.shape).to(offset.dtype)
    return grad_x, grad_step, grad_offset


class LSQFunction(torch.autograd.Function):
    """autograd wrapper of :func:`lsq_fwd` / :func:`lsq_bwd`."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        step: torch.Tensor,
        offset: torch.Tensor | None,
        lo: int,
        hi: int,
        group_size: int | None,
        per_tensor: bool,
        scale_dtype: torch.dtype,
        grad_scale: float,
    ) -> torch.Tensor:
        ctx.save_for_backward(x, step, offset)
        ctx.settings = (lo, hi, group_size, per_tensor, scale_dtype, grad_scale)
        return lsq_fwd(x, step, offset, lo, hi, group_size, per_tensor, scale_dtype)

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, step, offset = ctx.saved_tensors
        gx, gs, gz = lsq_bwd(grad_y, x, step, offset, *ctx.settings)
        return gx, gs, gz, None, None, None, None, None, None


class LearnedQuantizer(nn.Module):
    """Fake quantizer with learned step sizes (LSQ) and, if asymmetric, learned offsets (LSQ+).

    Weight mode (``shape`` given): one step per group of ``group_size`` values along the last
    dimension (``None``: per channel), initialised from the weight by :meth:`initialize` or on the
    first forward. Activation mode (``shape=None``): one step for the whole tensor, initialised
    from the first batch; ``unsigned=True`` uses codes ``[0, 2^b-1]`` (e.g. after a ReLU).

    Args:
        bits: 2..8.
        shape: the weight's shape (weight mode) or ``None`` (activation mode).
        group_size: 32..256 or ``None`` (weights only).
        symmetric: signed codes without offset; ``False`` learns an offset per step (LSQ+).
        unsigned: activation mode only: non-negative codes without offset.
        scale_dtype: ``"fp16"``/``"bf16"``, the storage dtype the step and offset round to.
        init: ``"mse"`` (clipping search), ``"minmax"`` (round to nearest) or ``"lsq"``
            (``2 mean|w| / sqrt(Qp)``, symmetric or unsigned only).

    Example:
        >>> w = torch.randn(16, 128)
        >>> fq = LearnedQuantizer.from_weight(w, bits=4, group_size=64)
        >>> torch.equal(fq(w), fq.freeze(w).dequantize())
        True
    """

    def __init__(
        self,
        bits: int = 4,
        *,
        shape: tuple[int, ...] | torch.Size | None = None,
        group_size: int | None = 128,
        symmetric: bool = True,
        unsigned: bool = False,
        scale_dtype: str = "fp16",
        init: str = "mse",
    ) -> None:
        super().__init__()
        qm.validate_bits(bits)
        self.per_tensor = shape is None
        self.group_size = None if self.per_tensor else qm.validate_group_size(group_size)
        if init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}, got {init!r}")
        if unsigned and (not self.per_tensor or not symmetric):
            raise ValueError("unsigned=True is for activations (shape=None) with symmetric=True")
        if init == "lsq" and not symmetric:
            raise ValueError("init='lsq' has no offset rule; use 'mse' or 'minmax' with symmetric=False")
        self.bits = bits
        self.symmetric = symmetric
        self.unsigned = unsigned
        self.scale_dtype = scale_dtype
        self._storage_dtype = qm.resolve_scale_dtype(scale_dtype)
        self.init = init
        self.lo, self.hi = qm.code_range(bits, signed=symmetric and not unsigned)
        self.shape = None if shape is None else tuple(int(d) for d in shape)
        param_shape = () if self.shape is None else qm.scales_shape(self.shape, self.group_size)
        self.step = nn.Parameter(torch.ones(param_shape))
        self.offset = None if symmetric else nn.Parameter(torch.zeros(param_shape))
        self.register_buffer("initialized", torch.tensor(False))
        self._initialized = False

    @classmethod
    def from_weight(cls, weight: torch.Tensor, bits: int = 4, **kwargs: Any) -> LearnedQuantizer:
        """A weight-mode quantizer sized for ``weight`` and initialised from it."""
        q = cls(bits, shape=tuple(weight.shape), **kwargs).to(weight.device)
        q.initialize(weight)
        return q

    @property
    def values_per_step(self) -> int:
        """How many values share one step (LSQ's N for the gradient scale), for weights."""
        if self.shape is None:
            raise ValueError("activation quantizers share one step over the whole input")
        k = self.shape[-1] if self.shape else 1
        return k if self.group_size is None else self.group_size

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Set step (and offset) from data: the weight, or a first activation batch."""
        if self.shape is not None and tuple(x.shape) != self.shape:
            raise ValueError(f"quantizer was built for shape {self.shape}, got {tuple(x.shape)}")
        xf = x.detach().float()
        if not bool(torch.isfinite(xf).all()):
            raise ValueError("cannot initialise a quantizer from NaN or Inf values")
        if self.per_tensor:
            s, z = qm.fit_params_grouped(
                xf.reshape(1, 1, -1),
                self.lo,
                self.hi,
                offset=not self.symmetric,
                method=self.init,
                scale_dtype=self._storage_dtype,
            )
        else:
            s, z = qm.choose_params(
                xf, self.bits, self.group_size, self.symmetric, self._storage_dtype, scale_search=self.init
            )
        self.step.copy_(s.reshape(self.step.shape))
        if self.offset is not None and z is not None:
            self.offset.copy_(z.reshape(self.offset.shape))
        self.initialized.fill_(True)
        self._initialized = True

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._initialized = bool(self.initialized)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._initialized:
            self.initialize(x)
        n = x.numel() if self.per_tensor else self.values_per_step
        grad_scale = 1.0 / math.sqrt(max(n, 1) * self.hi)
        return LSQFunction.apply(
            x, self.step, self.offset, self.lo, self.hi, self.group_size, self.per_tensor,
            self._storage_dtype, grad_scale,
        )  # fmt: skip

    def codec_config(self) -> BlockQuantConfig:
        """The blockquant codec config whose fragments hold this quantizer's frozen codes."""
        if self.per_tensor:
            raise ValueError("only weight quantizers map onto the blockquant codec")
        return BlockQuantConfig(
            bits=self.bits, group_size=self.group_size, symmetric=self.symmetric, scale_dtype=self.scale_dtype
        )

    @torch.no_grad()
    def freeze(self, weight: torch.Tensor) -> qm.QuantizedTensor:
        """Packed integer codes plus stored scales/zeros of ``weight`` under the learned steps.

        ``freeze(w).dequantize()`` equals ``self(w)`` exactly (in float32), and
        ``self.codec_config().encode_quantized(freeze(w))`` gives the blockquant fragments.
        """
        if self.per_tensor:
            raise ValueError("freeze() is for weight quantizers (built with shape=...)")
        if not self._initialized:
            self.initialize(weight)
        scales = qm.stored_scale(self.step.detach(), self._storage_dtype)
        zeros = None if self.offset is None else self.offset.detach().to(self._storage_dtype)
        codes = qm.quantize_with(weight, scales, zeros, self.bits, self.group_size)
        return qm.QuantizedTensor.from_codes(codes, scales, zeros, self.bits, self.group_size)

    def extra_repr(self) -> str:
        if self.per_tensor:
            kind = "unsigned" if self.unsigned else ("sym" if self.symmetric else "asym")
            return f"int{self.bits} per-tensor {kind} activations, {self.scale_dtype}"
        group = "per-channel" if self.group_size is None else f"g{self.group_size}"
        return (
            f"int{self.bits} {group} {'sym' if self.symmetric else 'asym'} weights {self.shape}, "
            f"{self.scale_dtype}, init={self.init}"
        )

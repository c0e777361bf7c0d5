"""The "tt" codec: a tensor stored as its tensor-train cores, progressive by bond rank.

A 2-D tensor is stored as a TT-matrix (MPO, :func:`~holotensor.codecs.tensor_train.tt_matrix`,
with the row and column factorizations in ``params``); any other tensor as the TT-SVD of its own
shape (:func:`~holotensor.codecs.tensor_train.tt_svd`). TT-SVD leaves each bond's basis ordered
by singular value, so keeping the leading ``r'_k <= r_k`` of every bond is a lower-rank TT: that
is the progressive order. ``params["levels"]`` lists the bond ranks after each fragment (the last
level is the full rank); fragment j holds, core by core, the core entries that level j adds to
level j - 1 (level 0 being empty): first the new leading-bond rows ``[a_{j-1}:a_j, :, :b_j]``, then
the new trailing columns ``[:a_{j-1}, :, b_{j-1}:b_j]``, each row-major, in ``core_dtype``,
little-endian.

With ``core_dtype="I8"`` each core is stored as signed int8 codes ``q`` with one BF16 scale per
bond slice, ``G[a, i, b] = q[a, i, b] * s[b]`` (``params["scale_axes"][k] == 2``: one scale per
trailing-bond column) or ``q[a, i, b] * s[a]`` (``== 0``: one per leading-bond row).
``params["scale_dtype"]`` is ``"BF16"``. A slice's scale covers its entries at full rank and is
stored in the fragment that first holds the slice, so each fragment starts with the scales of
the slices it opens (core by core, in slice order, BF16 little-endian, each finite and > 0) and
then holds its int8 codes in the layout above; a prefix never needs a later fragment. The writer
puts column scales on the left-orthonormal cores 0..d-2 and row scales on the last core (which
carries the norm, one singular value per row): then each slice's squared error enters the
tensor's error with a single weight (about ``sigma_b^2`` for column b, 1 for a row), so choosing
each slice's clipping by its own squared error (the ``"mse"`` search of
:func:`~holotensor.codecs.quant_math.fit_params_grouped`) also minimizes the tensor's error.

Truncating bonds of a TT-SVD is not the optimal lower-rank TT, only a good one; the writer
measures each prefix's quality and stores the curve, so readers choose by measurement.

::

    W --tt_matrix / tt_svd--> cores G_k (r_{k-1}, n_k, r_k) [--int8 per bond slice-->]
      --split by rank level--> fragments
    decode(j) = contract(G_k[:a_j, :, :b_j] for every core k)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from holotensor.codecs.base import (
    CodecConfig,
    Encoded,
    FragmentPayload,
    TensorSpec,
    register_codec,
    tensor_bytes,
)
from holotensor.codecs.quant_math import quantize, values_grouped
from holotensor.codecs.tensor_train import tt_matrix, tt_matrix_to_matrix, tt_svd, tt_to_tensor
from holotensor.dtypes import dtype_info
from holotensor.errors import DecodeError

__all__ = ["TTConfig"]

_CORE_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I8": torch.int8}
_SCALE_DTYPE = "BF16"
_SCALE_ITEMSIZE = 2
_TRAILING, _LEADING = 2, 0  # the core axis a scale runs along
_MAX_RANK = 1 << 14


@register_codec("tt")
@dataclass(frozen=True)
class TTConfig(CodecConfig):
    """Tensor-train storage, progressive by bond rank.

    Args:
        rank: cap on every bond rank (``None``: as ``tol`` needs, or full rank).
        tol: relative Frobenius error budget of the TT-SVD.
        order: cores of a TT-matrix (2-D tensors), whose sizes are factored automatically.
        fragments: rank levels; level j keeps ``ceil(r_k * j / fragments)`` of each bond.
        core_dtype: "F32", "F16", "BF16", or "I8" (int8 codes with a BF16 scale per bond slice:
            half F16's bytes for about 1.1-1.5% relative error on top of the TT's own, against
            F16's 0.04%).
    """

    version = 1
    lossless = False
    progressive = True

    rank: int | None = 16
    tol: float | None = None
    order: int = 3
    fragments: int = 4
    core_dtype: str = "F32"

    def __post_init__(self) -> None:
        if self.rank is not None and (not isinstance(self.rank, int) or not 1 <= self.rank <= _MAX_RANK):
            raise ValueError(f"rank must be an integer in [1, {_MAX_RANK}] or None, not {self.rank!r}")
        if self.tol is not None and not 0.0 <= self.tol < 1.0:
            raise ValueError(f"tol must be in [0, 1), not {self.tol!r}")
        if not isinstance(self.order, int) or not 2 <= self.order <= 8:
            raise ValueError(f"order must be an integer in [2, 8], not {self.order!r}")
        if not isinstance(self.fragments, int) or not 1 <= self.fragments <= 64:
            raise ValueError(f"fragments must be an integer in [1, 64], not {self.fragments!r}")
        if self.core_dtype not in _CORE_DTYPES:
            raise ValueError(f"core_dtype must be one of {sorted(_CORE_DTYPES)}, not {self.core_dtype!r}")

    @property
    def _int8(self) -> bool:
        return self.core_dtype == "I8"

    def encode(self, tensor: torch.Tensor) -> Encoded:
        if not tensor.is_floating_point():
            raise ValueError(f"tt needs a floating-point tensor, not {tensor.dtype}")
        if tensor.numel() == 0:
            return Encoded([], {"kind": "tensor", "dims": list(tensor.shape), "levels": []})
        x = tensor.detach().double()
        if not torch.isfinite(x).all():
            raise ValueError("tt cannot encode NaN or Inf values")
        m = _tt_matrix_or_none(x, self)
        if m is not None:
            cores = [c.reshape(c.shape[0], -1, c.shape[-1]) for c in m.cores]
            params: dict[str, Any] = {
                "kind": "matrix",
                "out_factors": list(m.out_factors),
                "in_factors": list(m.in_factors),
            }
        else:
            tt = tt_svd(x.reshape(x.shape or (1,)), self.rank, tol=self.tol)
            cores = list(tt.cores)
            params = {"kind": "tensor", "dims": [int(c.shape[1]) for c in cores]}
        full = [1, *(int(c.shape[-1]) for c in cores)]
        levels = _levels(full, self.fragments)
        axes: list[int] = []  # per-core scale axis; empty for float cores
        scales: list[torch.Tensor] = []
        if self._int8:
            axes = [_TRAILING] * (len(cores) - 1) + [_LEADING]
            quantized = [_quantize_core(c, axis) for c, axis in zip(cores, axes, strict=True)]
            cores, scales = [q for q, _ in quantized], [s for _, s in quantized]
            params.update(scale_dtype=_SCALE_DTYPE, scale_axes=axes)
        else:
            cores = [c.to(_CORE_DTYPES[self.core_dtype]) for c in cores]
        fragments = []
        previous = [0] * len(full)  # nothing stored yet, not even the boundary rank
        for level in levels:
            parts = [p.reshape(-1) for k, c in enumerate(cores) for p in _increment(c, previous, level, k)]
            data = torch.cat(parts)
            if axes:
                opened = [s[_scale_slice(previous, level, k, axes[k])] for k, s in enumerate(scales)]
                data = torch.cat([torch.cat(opened).view(torch.uint8), data.view(torch.uint8)])
            fragments.append(FragmentPayload(tensor_bytes(data), "zstd", {}, role=f"ranks {level[1:-1]}"))
            previous = level
        params["levels"] = levels
        return Encoded(fragments, params)

    def min_fragments(self, params: Mapping[str, Any], n_fragments: int) -> int:
        return min(1, n_fragments)

    def decode(
        self,
        payloads: Sequence[memoryview],
        params: Mapping[str, Any],
        spec: TensorSpec,
        *,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        if spec.dtype.kind != "float":
            raise DecodeError(f"tt decodes to floating-point dtypes, not {spec.dtype.name}")
        if spec.numel == 0:
            return torch.zeros(spec.shape, dtype=spec.dtype.torch_dtype, device=device)
        dims, matrix = _dims(params, spec)
        levels = params.get("levels")
        _check_levels(levels, len(dims), dims)
        if not 1 <= len(payloads) <= len(levels):
            raise DecodeError(f"tt has {len(levels)} rank levels, {len(payloads)} fragments were given")
        axes = _check_scale_params(params, len(dims)) if self._int8 else []
        n_scales = self._check_sizes(payloads, levels, dims, axes)
        fdt = _CORE_DTYPES[self.core_dtype]
        top = levels[len(payloads) - 1]
        cores = [torch.zeros(top[k], n, top[k + 1], dtype=torch.float64) for k, n in enumerate(dims)]
        scales = [torch.zeros(top[_scale_bond(k, a)], dtype=torch.float64) for k, a in enumerate(axes)]
        previous = [0] * (len(dims) + 1)
        for j, payload in enumerate(payloads):
            level, buf, head = levels[j], bytearray(payload), n_scales[j] * _SCALE_ITEMSIZE
            if axes:
                opened = _read_scales(buf, n_scales[j], j)
                for k, a in enumerate(axes):
                    part = scales[k][_scale_slice(previous, level, k, a)]
                    part.copy_(opened[: part.numel()])
                    opened = opened[part.numel() :]
            flat = (
                torch.frombuffer(buf, dtype=fdt, offset=head).double() if len(buf) > head else torch.empty(0)
            )
            pos = 0
            for k in range(len(dims)):
                a0, a1, b0, b1 = previous[k], level[k], previous[k + 1], level[k + 1]
                for rows, cols in ((slice(a0, a1), slice(0, b1)), (slice(0, a0), slice(b0, b1))):
                    block = cores[k][rows, :, cols]
                    block.copy_(flat[pos : pos + block.numel()].reshape(block.shape))
                    pos += block.numel()
            previous = level
        if axes:
            cores = [
                values_grouped(c, _along(s, a), None) for c, s, a in zip(cores, scales, axes, strict=True)
            ]
        if matrix:
            out_f, in_f = params["out_factors"], params["in_factors"]
            cores4 = [
                c.reshape(c.shape[0], m, n, c.shape[-1]) for c, m, n in zip(cores, out_f, in_f, strict=True)
            ]
            dense = tt_matrix_to_matrix(cores4)
        else:
            dense = tt_to_tensor(cores)
        return dense.reshape(spec.shape).to(device=device, dtype=spec.dtype.torch_dtype)

    def _check_sizes(
        self, payloads: Sequence[memoryview], levels: list[list[int]], dims: list[int], axes: list[int]
    ) -> list[int]:
        """Check every payload's length against its rank level before anything is allocated;
        returns how many scales each fragment opens (``axes`` is empty without int8 cores)."""
        itemsize = dtype_info(self.core_dtype).itemsize
        previous = [0] * (len(dims) + 1)
        n_scales = []
        for j, payload in enumerate(payloads):
            level = levels[j]
            shapes = [p for k in range(len(dims)) for p in _increment_shapes(previous, level, dims, k)]
            opened = sum(_slice_len(_scale_slice(previous, level, k, a)) for k, a in enumerate(axes))
            expected = sum(math.prod(s) for s in shapes) * itemsize + opened * _SCALE_ITEMSIZE
            if payload.nbytes != expected:
                what = f" ({opened} scales, then the int8 codes)" if axes else ""
                raise DecodeError(
                    f"fragment holds {payload.nbytes} bytes, rank level {level} needs {expected}{what}",
                    fragment=j,
                )
            n_scales.append(opened)
            previous = level
        return n_scales


def _quantize_core(core: torch.Tensor, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed int8 codes of a core (same shape) and its BF16 scales, one per slice along ``axis``."""
    moved = core.movedim(axis, 0)
    codes, scales, _ = quantize(moved.reshape(moved.shape[0], -1), 8, None, True, "bf16", scale_search="mse")
    signed = (codes.to(torch.int16) - 128).to(torch.int8)  # quantize stores offset-binary codes
    return signed.reshape(moved.shape).movedim(0, axis).contiguous(), scales.reshape(-1)


def _scale_bond(k: int, axis: int) -> int:
    """The bond whose index the scales of core k run over: k for rows, k + 1 for columns."""
    return k + 1 if axis == _TRAILING else k


def _scale_slice(prev: list[int], level: list[int], k: int, axis: int) -> slice:
    """The slices of core k (rows or columns, by ``axis``) that ``level`` opens after ``prev``."""
    bond = _scale_bond(k, axis)
    return slice(prev[bond], level[bond])


def _slice_len(s: slice) -> int:
    return s.stop - s.start


def _along(scales: torch.Tensor, axis: int) -> torch.Tensor:
    """Scales shaped to broadcast over a core ``(r_{k-1}, n_k, r_k)`` along ``axis``."""
    return scales.reshape(-1, 1, 1) if axis == _LEADING else scales.reshape(1, 1, -1)


def _read_scales(buf: bytearray, count: int, fragment: int) -> torch.Tensor:
    scales = torch.frombuffer(buf, dtype=torch.bfloat16, count=count).double() if count else torch.empty(0)
    if not bool((torch.isfinite(scales) & (scales > 0)).all()):
        raise DecodeError(
            "tt int8 scales must be finite and positive (NaN, Inf, zero or negative found)", fragment=fragment
        )
    return scales


def _check_scale_params(params: Mapping[str, Any], d: int) -> list[int]:
    """The per-core scale axes of int8 cores, checked."""
    if params.get("scale_dtype") != _SCALE_DTYPE:
        raise DecodeError(
            f"tt int8 cores need scale_dtype {_SCALE_DTYPE!r}, not {params.get('scale_dtype')!r}"
        )
    axes = params.get("scale_axes")
    if not (
        isinstance(axes, list)
        and len(axes) == d
        and all(a in (_LEADING, _TRAILING) and type(a) is int for a in axes)
    ):
        raise DecodeError(
            f"tt scale_axes {axes!r} must list, for each of the {d} cores, 0 (rows) or 2 (columns)"
        )
    return axes


def _tt_matrix_or_none(x: torch.Tensor, config: TTConfig) -> Any:
    """The TT-matrix of a 2-D tensor, or ``None`` for other ranks and for sizes that do not
    factor (those are stored as a TT of their own shape: for a matrix, a truncated SVD)."""
    if x.ndim != 2:
        return None
    try:
        return tt_matrix(x, rank=config.rank, tol=config.tol, order=config.order)
    except ValueError:
        return None


def _levels(full: list[int], fragments: int) -> list[list[int]]:
    """Bond ranks after each fragment: ``ceil(r * j / F)`` per inner bond, distinct levels only."""
    levels: list[list[int]] = []
    for j in range(1, fragments + 1):
        level = [1, *(max(1, math.ceil(r * j / fragments)) for r in full[1:-1]), 1]
        if not levels or level != levels[-1]:
            levels.append(level)
    return levels


def _increment(core: torch.Tensor, prev: list[int], level: list[int], k: int) -> list[torch.Tensor]:
    a0, a1, b0, b1 = prev[k], level[k], prev[k + 1], level[k + 1]
    return [core[a0:a1, :, :b1].contiguous(), core[:a0, :, b0:b1].contiguous()]


def _increment_shapes(
    prev: list[int], level: list[int], dims: list[int], k: int
) -> list[tuple[int, int, int]]:
    a0, a1, b0, b1 = prev[k], level[k], prev[k + 1], level[k + 1]
    return [(a1 - a0, dims[k], b1), (a0, dims[k], b1 - b0)]


def _dims(params: Mapping[str, Any], spec: TensorSpec) -> tuple[list[int], bool]:
    """Core mode sizes from ``params``, checked against the tensor's shape."""
    kind = params.get("kind")
    if kind == "matrix":
        out_f, in_f = params.get("out_factors"), params.get("in_factors")
        if not (_int_list(out_f) and _int_list(in_f) and len(out_f) == len(in_f) >= 1):
            raise DecodeError(
                f"tt matrix factors {out_f!r} / {in_f!r} are not two equal-length lists of sizes"
            )
        if len(spec.shape) != 2 or (math.prod(out_f), math.prod(in_f)) != spec.shape:
            raise DecodeError(f"tt factors {out_f} x {in_f} do not multiply to the shape {spec.shape}")
        return [m * n for m, n in zip(out_f, in_f, strict=True)], True
    if kind == "tensor":
        dims = params.get("dims")
        if not (_int_list(dims) and dims) or math.prod(dims) != spec.numel:
            raise DecodeError(f"tt dims {dims!r} do not hold the {spec.numel} elements of shape {spec.shape}")
        return dims, False
    raise DecodeError(f"unknown tt kind {kind!r}")


def _check_levels(levels: Any, d: int, dims: list[int]) -> None:
    if not isinstance(levels, list) or not levels:
        raise DecodeError("tt params hold no rank levels")
    previous = [0] * (d + 1)
    for level in levels:
        if not _int_list(level) or len(level) != d + 1 or level[0] != 1 or level[-1] != 1:
            raise DecodeError(f"tt rank level {level!r} is not {d + 1} ranks with boundary ranks 1")
        if any(r < p or r > _MAX_RANK for r, p in zip(level, previous, strict=True)):
            raise DecodeError(f"tt rank levels {levels!r} must not decrease and stay within {_MAX_RANK}")
        for k in range(1, d):  # a bond cannot exceed the size of either side
            if level[k] > min(math.prod(dims[:k]), math.prod(dims[k:])):
                raise DecodeError(f"tt bond {k} rank {level[k]} exceeds what dims {dims} allow")
        previous = level


def _int_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value
    )

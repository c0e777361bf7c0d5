"""The "lowrank" codec: a truncated SVD whose components are stored in singular-value order, so the
first k fragments hold the best approximation of their rank (Eckart-Young).

Layout: the tensor is viewed as a matrix (leading dimensions x last dimension; a 1-D tensor is one
row). Fragment j holds components ``[s_j, s_{j+1})`` of ``params["splits"]``: first the columns of
``U * S`` (rows x c, row-major), then the rows of ``Vh`` (c x cols, row-major), both in
``factor_dtype``, little-endian.

::

    W (m x n) --svd--> U S Vh --split by rank--> [U S | Vh]_0, [U S | Vh]_1, ...
    decode(k) = sum_{j<k} (U S)_j @ Vh_j
"""

from __future__ import annotations

import itertools
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
from holotensor.dtypes import dtype_info
from holotensor.errors import DecodeError

__all__ = ["LowRankConfig", "matrix_shape"]

_FACTOR_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def matrix_shape(shape: Sequence[int]) -> tuple[int, int]:
    """The matrix a tensor of ``shape`` is factored as: (prod of leading dims, last dim)."""
    if len(shape) == 0:
        return 1, 1
    return math.prod(shape[:-1]), shape[-1]


@register_codec("lowrank")
@dataclass(frozen=True)
class LowRankConfig(CodecConfig):
    """Truncated SVD, progressive by rank.

    Args:
        rank: components kept (at most min(rows, cols)); ``None`` keeps what ``tol`` needs.
        tol: relative Frobenius error the kept components must reach (used when ``rank`` is
            ``None``; ``None`` and ``rank=None`` keep every component, which is exact up to
            floating point).
        fragments: how many groups the components are split into (fewer if there are fewer
            components); each group is one fragment.
        factor_dtype: "F32", "F16" or "BF16" for the stored factors.
    """

    version = 1
    lossless = False
    progressive = True

    rank: int | None = None
    tol: float | None = None
    fragments: int = 4
    factor_dtype: str = "F16"

    def __post_init__(self) -> None:
        if self.rank is not None and (not isinstance(self.rank, int) or self.rank < 1):
            raise ValueError(f"rank must be a positive integer or None, not {self.rank!r}")
        if self.tol is not None and not 0.0 <= self.tol < 1.0:
            raise ValueError(f"tol must be in [0, 1), not {self.tol!r}")
        if not isinstance(self.fragments, int) or not 1 <= self.fragments <= 4096:
            raise ValueError(f"fragments must be an integer in [1, 4096], not {self.fragments!r}")
        if self.factor_dtype not in _FACTOR_DTYPES:
            raise ValueError(f"factor_dtype must be one of {sorted(_FACTOR_DTYPES)}, not {self.factor_dtype!r}")

    def _keep(self, s: torch.Tensor) -> int:
        if self.rank is not None:
            return min(self.rank, s.numel())
        if self.tol is None:
            return s.numel()
        energy = s.double().square()
        total = energy.sum()
        if total == 0:
            return min(1, s.numel())
        # tail[r] = energy of components r, r+1, ...: keep the smallest r with sqrt(tail/total) <= tol
        tail = torch.cat([energy.flip(0).cumsum(0).flip(0), energy.new_zeros(1)])
        ok = torch.nonzero(tail <= (self.tol**2) * total)
        return max(1, int(ok[0])) if ok.numel() else s.numel()

    def encode(self, tensor: torch.Tensor) -> Encoded:
        if not tensor.is_floating_point():
            raise ValueError(f"lowrank needs a floating-point tensor, not {tensor.dtype}")
        rows, cols = matrix_shape(tuple(tensor.shape))
        if rows * cols == 0:
            return Encoded([], {"rows": rows, "cols": cols, "splits": [0]})
        w = tensor.reshape(rows, cols).double()
        if not torch.isfinite(w).all():
            raise ValueError("lowrank cannot encode NaN or Inf values")
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        r = self._keep(s)
        groups = min(self.fragments, r)
        splits = [round(j * r / groups) for j in range(groups + 1)]
        fdt = _FACTOR_DTYPES[self.factor_dtype]
        us = (u[:, :r] * s[:r]).to(fdt)
        vh = vh[:r].to(fdt)
        fragments = []
        for a, b in itertools.pairwise(splits):
            data = torch.cat([us[:, a:b].contiguous().reshape(-1), vh[a:b].contiguous().reshape(-1)])
            fragments.append(FragmentPayload(tensor_bytes(data), "zstd", {}, role=f"rank {a}-{b - 1}"))
        return Encoded(fragments, {"rows": rows, "cols": cols, "splits": splits})

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
        rows, cols, splits = params.get("rows"), params.get("cols"), params.get("splits")
        if (rows, cols) != matrix_shape(spec.shape):
            raise DecodeError(f"lowrank params say {rows}x{cols}, the shape {spec.shape} needs {matrix_shape(spec.shape)}")
        if (
            not isinstance(splits, list)
            or not splits
            or splits[0] != 0
            or any(not isinstance(b, int) or b <= a for a, b in itertools.pairwise(splits))
            or splits[-1] > min(rows, cols)
            or len(payloads) > len(splits) - 1
        ):
            raise DecodeError(f"lowrank splits {splits!r} are not increasing ranks within min({rows}, {cols})")
        if spec.dtype.kind != "float":
            raise DecodeError(f"lowrank decodes to floating-point dtypes, not {spec.dtype.name}")
        fdt = _FACTOR_DTYPES[self.factor_dtype]
        itemsize = dtype_info(self.factor_dtype).itemsize
        acc = torch.float64 if spec.dtype.name == "F64" else torch.float32
        out = torch.zeros(rows, cols, dtype=acc, device=device)
        for j, payload in enumerate(payloads):
            c = splits[j + 1] - splits[j]
            expected = (rows + cols) * c * itemsize
            if payload.nbytes != expected:
                raise DecodeError(f"fragment {j} holds {payload.nbytes} bytes, {c} components need {expected}")
            flat = torch.frombuffer(bytearray(payload), dtype=fdt).to(device=device, dtype=acc)
            out.addmm_(flat[: rows * c].reshape(rows, c), flat[rows * c :].reshape(c, cols))
        return out.to(spec.dtype.torch_dtype).reshape(spec.shape)


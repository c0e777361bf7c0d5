"""A linear layer whose weight is a trainable TT-matrix (matrix product operator).

The weight ``W`` (``out x in``) is never stored: the layer keeps the cores
``G_k (r_{k-1}, m_k, n_k, r_k)`` and contracts them with the input. How it contracts is chosen
per batch size by :func:`holotensor.codecs.tt_contract.plan_tt_linear`::

    x (B, n_1..n_d) --G_d--> --G_{d-1}--> ... --G_1--> y (B, m_1..m_d)     small batch, low rank
    G_1..G_d --merge--> W (out, in);  y = x @ W.T                         large batch, high rank

The sweep costs ``2 B sum_k N_<k M_>k r_{k-1} m_k n_k r_k`` flops, linear in the batch;
building ``W`` costs a batch-independent amount and then ``2 B M N``. Mixed plans (merge some
neighbouring cores, sweep the rest, either direction) are compared too, each priced as its flop
count plus the elements its permutes copy (weighted by ``MOVE_COST``). The plan depends only on
shapes, so ``torch.compile`` specializes it per batch size.

Whether the layer is faster than a dense ``nn.Linear`` depends mostly on the factorization.
With balanced factors (``factorization="balanced"``, e.g. in ``(16, 24)``, out ``(32, 48)``) the
sweep spends about ``(sqrt(in) + sqrt(out)) / 2`` times more of the dense flops than of its
parameters, so it does more work than the dense matmul already at a few percent of the
parameters. The default ``factorization="fast"`` picks the split whose sweep is cheapest at the
requested ranks (see :func:`~holotensor.codecs.tensor_train.tt_matrix_factors`): skewed factors
such as in ``(192, 2)``, out ``(2, 768)``, whose flops are about twice their parameter share.
That layer is close to a rank-``r`` factorization. On a CPU (batch 64, one thread) it beat
``nn.Linear`` on every MiniLM layer shape at up to a tenth of the parameters (1.1-4.8x on a
loaded shared machine; least for 384 -> 384, whose dense matmul is only ~0.3 ms), and on
MiniLM's trained weights it fit better than balanced factors at the same parameter count
(rel. error 0.85 vs 0.88 at 8x, d = 2); benchmarks/results/tt.md, sections (b) and (c).

References:
    A. Novikov, D. Podoprikhin, A. Osokin, D. Vetrov, "Tensorizing neural networks", NeurIPS 2015.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from holotensor.codecs.tensor_train import (
    TTMatrix,
    tt_matrix,
    tt_matrix_factors,
    tt_matrix_to_matrix,
    validate_tt_rank,
)
from holotensor.codecs.tt_contract import tt_matrix_linear

__all__ = ["MPSLinear"]


def _check_factors(size: int, factors: Sequence[int] | None, d: int, what: str) -> tuple[int, ...] | None:
    if factors is None:
        return None
    out = tuple(factors)
    if len(out) != d or math.prod(out) != size or any(isinstance(f, bool) or f < 1 for f in out):
        raise ValueError(f"{what} {out} must be {d} positive ints multiplying to {size}")
    return out


class MPSLinear(nn.Module):
    """``y = x @ W.T + b`` with ``W`` a TT-matrix of trainable cores.

    Args:
        in_features, out_features: sizes as in ``nn.Linear``.
        in_factors, out_factors: factorizations of the sizes (same length ``d``); ``None``
            chooses them by ``factorization`` (``d`` from the other factorization, else ``order``).
        ranks: bond ranks: an int for all bonds or ``d - 1`` values; capped at the largest useful rank.
        bias: learn an additive bias.
        order: number of cores when no factors are given.
        factorization: ``"fast"`` (the split whose contraction is cheapest at these ranks for
            ``batch`` rows) or ``"balanced"`` (the classic near-equal factors); see
            :func:`~holotensor.codecs.tensor_train.tt_matrix_factors`.
        batch: the batch size the fast factorization is chosen for.
        device, dtype: where and how to allocate the parameters.

    Raises:
        ValueError: factors that do not fit the sizes, sizes without a useful factorization, bad ranks.

    Example:
        >>> layer = MPSLinear(384, 1536, ranks=8, order=2)
        >>> layer.in_factors, layer.out_factors, layer(torch.randn(4, 384)).shape
        ((192, 2), (2, 768), torch.Size([4, 1536]))
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        in_factors: Sequence[int] | None = None,
        out_factors: Sequence[int] | None = None,
        ranks: int | Sequence[int] = 8,
        bias: bool = True,
        *,
        order: int = 3,
        factorization: str = "fast",
        batch: int = 64,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        given = in_factors if in_factors is not None else out_factors
        d = len(tuple(given)) if given is not None else order
        self.in_features, self.out_features = in_features, out_features
        in_f = _check_factors(in_features, in_factors, d, "in_factors")
        out_f = _check_factors(out_features, out_factors, d, "out_factors")
        if in_f is None or out_f is None:
            in_f, out_f = tt_matrix_factors(
                out_features,
                in_features,
                d,
                ranks,
                factorization=factorization,
                batch=batch,
                in_factors=in_f,
                out_factors=out_f,
            )
        self.in_factors, self.out_factors = in_f, out_f
        self.ranks = validate_tt_rank(
            [m * n for m, n in zip(self.out_factors, self.in_factors, strict=True)], ranks
        )
        kw = {"device": device, "dtype": dtype}
        self.cores = nn.ParameterList(
            nn.Parameter(torch.empty(self.ranks[k], m, n, self.ranks[k + 1], **kw))
            for k, (m, n) in enumerate(zip(self.out_factors, self.in_factors, strict=True))
        )
        self.bias = nn.Parameter(torch.empty(out_features, **kw)) if bias else None
        self.rel_error: float | None = None  # weight error when built by from_linear
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Gaussian cores scaled so ``W`` has the variance of ``nn.Linear``'s init (1 / (3 in)), bias as nn.Linear.

        Each entry of ``W`` sums ``r_1...r_{d-1}`` products of ``d`` core entries, so each core
        gets standard deviation ``(1 / (3 in r_1...r_{d-1})) ** (1 / 2d)``.
        """
        paths = math.prod(self.ranks)
        std = (1.0 / (3.0 * self.in_features * paths)) ** (0.5 / len(self.cores))
        with torch.no_grad():
            for core in self.cores:
                core.normal_(0.0, std)
            if self.bias is not None:
                bound = 1.0 / math.sqrt(self.in_features)
                self.bias.uniform_(-bound, bound)

    @property
    def n_params(self) -> int:
        """Trainable values: cores plus bias."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Contract ``x (..., in_features)`` with the cores by the cheapest plan for its batch size."""
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"MPSLinear expects {self.in_features} input features, got shape {tuple(x.shape)}"
            )
        return tt_matrix_linear(x, list(self.cores), self.bias)

    def dense_weight(self) -> torch.Tensor:
        """The dense ``(out_features, in_features)`` weight (built on demand; differentiable)."""
        return tt_matrix_to_matrix(list(self.cores))

    def to_tt_matrix(self) -> TTMatrix:
        """The weight as a detached :class:`~holotensor.codecs.tensor_train.TTMatrix`."""
        return TTMatrix([c.detach() for c in self.cores])

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        max_rank: int | Sequence[int] | None = None,
        tol: float | None = None,
        *,
        in_factors: Sequence[int] | None = None,
        out_factors: Sequence[int] | None = None,
        order: int = 3,
        factorization: str = "fast",
        batch: int = 64,
    ) -> MPSLinear:
        """Compress a trained ``nn.Linear`` by TT-SVD of its weight.

        The achieved relative error of the weight is kept as ``rel_error`` on the new layer.

        Args:
            linear: the layer to compress (its weight and bias are copied, not shared).
            max_rank: bond rank cap; ``None`` lets ``tol`` decide.
            tol: relative Frobenius error budget for the weight.
            in_factors, out_factors, order, factorization, batch: the factorization, as in
                :func:`~holotensor.codecs.tensor_train.tt_matrix` (but ``"fast"`` by default, like
                the constructor; with ``tol`` alone it is priced at the largest useful ranks).

        Example:
            >>> lin = nn.Linear(64, 32)
            >>> MPSLinear.from_linear(lin, max_rank=4).ranks
            (1, 4, 4, 1)
        """
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"from_linear needs an nn.Linear, got {type(linear).__name__}")
        w = linear.weight.detach()
        ttm = tt_matrix(
            w, in_factors, out_factors, max_rank, tol, order=order, factorization=factorization, batch=batch
        )
        layer = cls(
            linear.in_features,
            linear.out_features,
            ttm.in_factors,
            ttm.out_factors,
            ttm.ranks,
            bias=linear.bias is not None,
            device=w.device,
            dtype=ttm.cores[0].dtype,
        )
        with torch.no_grad():
            for p, c in zip(layer.cores, ttm.cores, strict=True):
                p.copy_(c)
            if linear.bias is not None:
                layer.bias.copy_(linear.bias.detach())  # type: ignore[union-attr]
        layer.rel_error = ttm.rel_error
        return layer

    def to_linear(self) -> nn.Linear:
        """A dense ``nn.Linear`` with the same function (weight built from the cores)."""
        p = self.cores[0]
        lin = nn.Linear(
            self.in_features, self.out_features, bias=self.bias is not None, device=p.device, dtype=p.dtype
        )
        with torch.no_grad():
            lin.weight.copy_(self.dense_weight())
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin

    def extra_repr(self) -> str:
        dense = self.in_features * self.out_features + (self.out_features if self.bias is not None else 0)
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"in_factors={self.in_factors}, out_factors={self.out_factors}, ranks={self.ranks}, "
            f"bias={self.bias is not None}, params={self.n_params} ({dense / self.n_params:.1f}x fewer than dense)"
        )

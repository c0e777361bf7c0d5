"""An embedding table stored as a TT-matrix, looked up without ever building the table.

Row ``i`` of a ``(V, D)`` table is the TT-matrix row whose mixed-radix digits over the row
factors are ``(i_1, ..., i_d)``; each digit selects a slice of one core and the slices are chained::

    i --digits--> (i_1, ..., i_d) --> G_1[:, i_1] @ G_2[:, i_2] @ ... @ G_d[:, i_d] --> (D,)

The row factors may multiply to more than ``V`` (a vocabulary size is often prime-ish, e.g.
30522 = 2 * 3 * 5087); the extra rows exist in the cores but are never looked up.

References:
    O. Hrinchuk et al., "Tensorized embedding layers", Findings of EMNLP 2020.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from holotensor.codecs.tensor_train import factorize, tt_matrix, tt_matrix_to_matrix, validate_tt_rank
from holotensor.codecs.tt_contract import tt_matrix_rows

__all__ = ["TTEmbedding"]


class TTEmbedding(nn.Module):
    """``nn.Embedding`` look-alike whose table is a TT-matrix of trainable cores.

    Args:
        num_embeddings: number of rows that may be looked up.
        embedding_dim: size of each row.
        row_factors: factors of the (padded) row count, product ``>= num_embeddings``; ``None``
            picks the smallest well-factorable count (``factorize(..., pad=True)``).
        dim_factors: factors of ``embedding_dim``, same count as ``row_factors``; ``None`` picks balanced ones.
        ranks: bond ranks (int or ``d - 1`` values), capped at the largest useful rank.
        order: number of cores when neither factorization is given.
        device, dtype: where and how to allocate the cores.

    Raises:
        ValueError: factors that do not fit, sizes without a useful factorization, bad ranks.

    Example:
        >>> emb = TTEmbedding(30522, 384, ranks=16)
        >>> emb.row_factors, emb.dim_factors, emb(torch.tensor([[1, 2, 30521]])).shape
        ((25, 33, 37), (6, 8, 8), torch.Size([1, 3, 384]))
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        row_factors: Sequence[int] | None = None,
        dim_factors: Sequence[int] | None = None,
        ranks: int | Sequence[int] = 16,
        *,
        order: int = 3,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, v in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        given = row_factors if row_factors is not None else dim_factors
        d = len(tuple(given)) if given is not None else order
        if row_factors is None:
            row_factors = factorize(num_embeddings, d, pad=True)
        if dim_factors is None:
            dim_factors = factorize(embedding_dim, d)
        row_factors, dim_factors = tuple(row_factors), tuple(dim_factors)
        if len(row_factors) != d or any(isinstance(f, bool) or f < 1 for f in row_factors):
            raise ValueError(f"row_factors {row_factors} must be {d} positive ints")
        if math.prod(row_factors) < num_embeddings:
            raise ValueError(
                f"row_factors {row_factors} multiply to {math.prod(row_factors)} < {num_embeddings} rows"
            )
        if (
            len(dim_factors) != d
            or math.prod(dim_factors) != embedding_dim
            or any(f < 1 for f in dim_factors)
        ):
            raise ValueError(
                f"dim_factors {dim_factors} must be {d} positive ints multiplying to {embedding_dim}"
            )
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.row_factors, self.dim_factors = row_factors, dim_factors
        self.ranks = validate_tt_rank([m * n for m, n in zip(row_factors, dim_factors, strict=True)], ranks)
        self.cores = nn.ParameterList(
            nn.Parameter(torch.empty(self.ranks[k], m, n, self.ranks[k + 1], device=device, dtype=dtype))
            for k, (m, n) in enumerate(zip(row_factors, dim_factors, strict=True))
        )
        self.rel_error: float | None = None  # table error when built by from_embedding
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Gaussian cores scaled so table entries have unit variance, like ``nn.Embedding``'s N(0, 1)."""
        std = (1.0 / math.prod(self.ranks)) ** (0.5 / len(self.cores))
        with torch.no_grad():
            for core in self.cores:
                core.normal_(0.0, std)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        """Rows for integer ``indices`` of any shape: ``(*indices.shape, embedding_dim)``.

        Raises:
            IndexError: an index outside ``[0, num_embeddings)`` (checked outside ``torch.compile``).
        """
        if indices.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
            raise ValueError(f"TTEmbedding indices must be an integer tensor, got {indices.dtype}")
        if not torch.compiler.is_compiling() and indices.numel():
            lo, hi = int(indices.min()), int(indices.max())
            if lo < 0 or hi >= self.num_embeddings:
                bad = lo if lo < 0 else hi
                raise IndexError(f"TTEmbedding index {bad} is out of range [0, {self.num_embeddings})")
        return tt_matrix_rows(list(self.cores), indices)

    def dense_table(self) -> torch.Tensor:
        """The ``(num_embeddings, embedding_dim)`` table (built on demand; differentiable)."""
        return tt_matrix_to_matrix(list(self.cores))[: self.num_embeddings]

    @classmethod
    def from_embedding(
        cls,
        emb: nn.Embedding,
        max_rank: int | Sequence[int] | None = None,
        tol: float | None = None,
        *,
        row_factors: Sequence[int] | None = None,
        dim_factors: Sequence[int] | None = None,
        order: int = 3,
    ) -> TTEmbedding:
        """Compress a trained ``nn.Embedding`` by TT-SVD of its (zero-padded) table.

        The achieved relative error of the table is kept as ``rel_error`` on the new module.

        Example:
            >>> emb = nn.Embedding(1000, 64)
            >>> TTEmbedding.from_embedding(emb, max_rank=8).ranks
            (1, 8, 8, 1)
        """
        if not isinstance(emb, nn.Embedding):
            raise ValueError(f"from_embedding needs an nn.Embedding, got {type(emb).__name__}")
        table = emb.weight.detach()
        layer = cls(
            emb.num_embeddings,
            emb.embedding_dim,
            row_factors,
            dim_factors,
            1,
            order=order,
            device=table.device,
            dtype=table.dtype if table.dtype in (torch.float32, torch.float64) else torch.float32,
        )
        rows = math.prod(layer.row_factors)
        padded = torch.cat([table, table.new_zeros(rows - table.shape[0], table.shape[1])])
        ttm = tt_matrix(padded, layer.dim_factors, layer.row_factors, max_rank, tol)
        layer.ranks = ttm.ranks
        layer.cores = nn.ParameterList(nn.Parameter(c.clone()) for c in ttm.cores)
        layer.rel_error = ttm.rel_error
        return layer

    def to_embedding(self) -> nn.Embedding:
        """A dense ``nn.Embedding`` with the same rows."""
        p = self.cores[0]
        emb = nn.Embedding(self.num_embeddings, self.embedding_dim, device=p.device, dtype=p.dtype)
        with torch.no_grad():
            emb.weight.copy_(self.dense_table())
        return emb

    def extra_repr(self) -> str:
        dense = self.num_embeddings * self.embedding_dim
        return (
            f"{self.num_embeddings}, {self.embedding_dim}, row_factors={self.row_factors}, "
            f"dim_factors={self.dim_factors}, ranks={self.ranks}, "
            f"params={self.n_params} ({dense / self.n_params:.1f}x fewer than dense)"
        )

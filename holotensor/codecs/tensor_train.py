"""Tensor-train (MPS) math: TT-SVD, TT rounding, TT-matrices (MPO), factorizations of sizes.

Everything here is a pure torch function, so a TT codec, :class:`holotensor.nn.MPSLinear` and
:class:`holotensor.nn.TTEmbedding` share one implementation (contractions with inputs live in
:mod:`holotensor.codecs.tt_contract`). Works on any device torch's ``linalg.svd``/``linalg.qr``
support.

A TT tensor of shape ``(n_1, ..., n_d)`` is a chain of cores ``G_k`` of shape
``(r_{k-1}, n_k, r_k)`` with ``r_0 = r_d = 1``::

    A[i_1, ..., i_d] = G_1[:, i_1, :] @ G_2[:, i_2, :] @ ... @ G_d[:, i_d, :]

A TT-matrix of shape ``(m_1...m_d, n_1...n_d)`` has cores ``(r_{k-1}, m_k, n_k, r_k)``; row and
column indices are mixed-radix numbers with the first factor most significant.

References:
    I. V. Oseledets, "Tensor-train decomposition", SIAM J. Sci. Comput. 33(5), 2011.
    A. Novikov et al., "Tensorizing neural networks", NeurIPS 2015.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import torch

from holotensor.codecs.tt_contract import sweep_cost

__all__ = [
    "FACTORIZATIONS",
    "TTMatrix",
    "TTTensor",
    "factorize",
    "tt_matrix",
    "tt_matrix_factors",
    "tt_matrix_to_matrix",
    "tt_round",
    "tt_svd",
    "tt_to_tensor",
    "validate_tt_rank",
]

RankLike = int | Sequence[int] | None

FACTORIZATIONS = ("fast", "balanced")
"""How sizes are split when no factors are given (see :func:`tt_matrix_factors`)."""


def _prod(values: Sequence[int]) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def _check_dims(dims: Sequence[int], what: str) -> tuple[int, ...]:
    dims = tuple(dims)
    if not dims:
        raise ValueError(f"{what} must not be empty")
    for i, n in enumerate(dims):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{what}[{i}] must be a positive int, got {n!r}")
    return dims


def validate_tt_rank(shape: Sequence[int], rank: RankLike = None) -> tuple[int, ...]:
    """Normalize a TT rank request to ``(1, r_1, ..., r_{d-1}, 1)``, each capped at its largest useful value.

    The largest useful rank of bond ``k`` is ``min(n_1...n_k, n_{k+1}...n_d)``; asking for more
    adds only zero singular values, so requests are lowered to it.

    Args:
        shape: the tensor dims ``(n_1, ..., n_d)``.
        rank: ``None`` (exact, maximal ranks), an int (the same cap on every bond), or a sequence
            of ``d - 1`` bond ranks, or of ``d + 1`` ranks with 1 at both ends.

    Raises:
        ValueError: a non-positive or non-int rank, a wrong number of ranks, boundary ranks not 1.

    Example:
        >>> validate_tt_rank((4, 5, 6), 8)
        (1, 4, 6, 1)
    """
    dims = _check_dims(shape, "shape")
    d = len(dims)
    cap = [1] + [min(_prod(dims[: k + 1]), _prod(dims[k + 1 :])) for k in range(d - 1)] + [1]
    if rank is None:
        return tuple(cap)
    if isinstance(rank, bool) or not isinstance(rank, int | Sequence):
        raise ValueError(f"rank must be an int, a sequence of ints or None, got {rank!r}")
    if isinstance(rank, int):
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        return tuple(min(rank, c) for c in cap)
    ranks = list(rank)
    if len(ranks) == d + 1:
        if ranks[0] != 1 or ranks[-1] != 1:
            raise ValueError(f"boundary ranks must be 1, got rank[0]={ranks[0]} and rank[{d}]={ranks[-1]}")
        ranks = ranks[1:-1]
    if len(ranks) != d - 1:
        raise ValueError(
            f"a tensor of order {d} needs {d - 1} bond ranks (or {d + 1} with the 1s), got {len(ranks)}"
        )
    for k, r in enumerate(ranks):
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise ValueError(f"bond rank {k + 1} must be a positive int, got {r!r}")
    return (1, *(min(r, c) for r, c in zip(ranks, cap[1:-1], strict=True)), 1)


def _check_chain(cores: Sequence[torch.Tensor], ndim: int, kind: str) -> list[torch.Tensor]:
    cores = list(cores)
    if not cores:
        raise ValueError(f"a {kind} needs at least one core")
    for k, core in enumerate(cores):
        if not isinstance(core, torch.Tensor):
            raise ValueError(f"{kind} core {k} must be a torch.Tensor, got {type(core).__name__}")
        if core.ndim != ndim:
            raise ValueError(f"{kind} core {k} must have {ndim} dims, got shape {tuple(core.shape)}")
        if core.numel() == 0:
            raise ValueError(f"{kind} core {k} is empty: shape {tuple(core.shape)}")
        if core.dtype != cores[0].dtype or core.device != cores[0].device:
            raise ValueError(
                f"{kind} core {k} is {core.dtype} on {core.device}, core 0 is {cores[0].dtype} on {cores[0].device}"
            )
    if cores[0].shape[0] != 1:
        raise ValueError(f"{kind} core 0 must have left rank 1, got {cores[0].shape[0]}")
    if cores[-1].shape[-1] != 1:
        raise ValueError(f"{kind} core {len(cores) - 1} must have right rank 1, got {cores[-1].shape[-1]}")
    for k in range(1, len(cores)):
        if cores[k - 1].shape[-1] != cores[k].shape[0]:
            raise ValueError(
                f"{kind} core {k - 1} has right rank {cores[k - 1].shape[-1]} "
                f"but core {k} has left rank {cores[k].shape[0]}"
            )
    return cores


def tt_to_tensor(cores: Sequence[torch.Tensor]) -> torch.Tensor:
    """Contract TT cores ``(r_{k-1}, n_k, r_k)`` left to right into the full tensor."""
    out = cores[0].reshape(-1, cores[0].shape[-1])
    for core in cores[1:]:
        out = (out @ core.reshape(core.shape[0], -1)).reshape(-1, core.shape[-1])
    return out.reshape([c.shape[1] for c in cores])


class TTTensor:
    """A tensor in tensor-train form, checked at construction.

    Args:
        cores: cores of shape ``(r_{k-1}, n_k, r_k)`` with ``r_0 = r_d = 1``, one dtype and device.
        rel_error: the relative Frobenius error of this approximation against the tensor it was
            computed from, when known (``tt_svd`` and ``tt_round`` set it).

    Raises:
        ValueError: a core of the wrong order, neighbouring ranks that differ (naming the core
            index and both values), boundary ranks other than 1.

    Example:
        >>> tt = TTTensor([torch.ones(1, 2, 3), torch.ones(3, 4, 1)])
        >>> tt.shape, tt.ranks
        ((2, 4), (1, 3, 1))
    """

    def __init__(self, cores: Sequence[torch.Tensor], *, rel_error: float | None = None) -> None:
        self.cores = _check_chain(cores, 3, "TT")
        self.rel_error = rel_error

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(c.shape[1]) for c in self.cores)

    @property
    def ranks(self) -> tuple[int, ...]:
        return (1, *(int(c.shape[-1]) for c in self.cores))

    @property
    def n_params(self) -> int:
        """Number of stored values (all cores)."""
        return sum(c.numel() for c in self.cores)

    def __len__(self) -> int:
        return len(self.cores)

    def __getitem__(self, k: int) -> torch.Tensor:
        return self.cores[k]

    def to_tensor(self) -> torch.Tensor:
        """The full tensor."""
        return tt_to_tensor(self.cores)

    def __repr__(self) -> str:
        err = "" if self.rel_error is None else f", rel_error={self.rel_error:.3g}"
        return f"TTTensor(shape={self.shape}, ranks={self.ranks}{err})"


def _float_input(tensor: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{what} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.ndim == 0 or tensor.numel() == 0:
        raise ValueError(
            f"{what} must have at least one dim and one element, got shape {tuple(tensor.shape)}"
        )
    if tensor.is_complex() or not tensor.is_floating_point():
        raise ValueError(f"{what} must be a real floating tensor, got {tensor.dtype}; convert with .float()")
    if tensor.dtype in (torch.float16, torch.bfloat16):
        return tensor.float()
    return tensor


def _check_tol(tol: float | None) -> float | None:
    if tol is None:
        return None
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not math.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    return float(tol)


def _svd(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD, computed on the tall orientation: LAPACK (MKL) is several times slower on wide
    matrices than on their transposes (e.g. 2 s vs 0.37 s for 150 x 30000 in float64)."""
    if a.shape[1] >= 2 * a.shape[0]:
        u, s, vh = torch.linalg.svd(a.mT, full_matrices=False)
        return vh.mT, s, u.mT
    return torch.linalg.svd(a, full_matrices=False)


def _truncate(s: torch.Tensor, cap: int, delta_sq: torch.Tensor | None) -> tuple[int, torch.Tensor]:
    """Keep the fewest leading singular values (at most ``cap``, at least 1) whose discarded tail
    has squared norm <= ``delta_sq``; return that count and the discarded squared norm."""
    tail = torch.flip(torch.cumsum(torch.flip(s * s, (0,)), 0), (0,))  # tail[i] = sum_{j>=i} s_j^2
    r = min(cap, s.numel())
    if delta_sq is not None and s.numel() > 1:
        r = min(r, 1 + int((tail[1:] > delta_sq).sum().item()))
    discarded = tail[r] if r < s.numel() else s.new_zeros(())
    return r, discarded


def tt_svd(tensor: torch.Tensor, rank: RankLike = None, *, tol: float | None = None) -> TTTensor:
    """TT-SVD (Oseledets 2011, Alg. 1): sequential truncated SVDs of the tensor's unfoldings.

    The error budget ``tol`` is relative to ``||tensor||_F`` and split as ``tol / sqrt(d - 1)``
    per bond, so the result satisfies ``||tensor - tt|| <= tol * ||tensor||`` unless a rank cap
    binds first. The achieved error is exact, not a bound: the left cores are orthonormal, so
    the discarded parts of the bonds are mutually orthogonal and their squared norms add.

    Args:
        tensor: a real floating tensor of any order (float16/bfloat16 are computed in float32).
        rank: max ranks (see :func:`validate_tt_rank`); ``None`` leaves only ``tol`` to decide.
        tol: relative Frobenius error budget; ``None`` truncates by rank alone.

    Returns:
        A :class:`TTTensor` with left-orthonormal cores ``0..d-2`` and ``rel_error`` set to the
        achieved ``||tensor - tt||_F / ||tensor||_F``.

    Raises:
        ValueError: empty or 0-d tensor, non-float dtype, bad rank or tol.

    Example:
        >>> x = torch.randn(4, 5, 6, dtype=torch.float64)
        >>> tt = tt_svd(x, 30)
        >>> tt.ranks, tt.rel_error < 1e-12
        ((1, 4, 6, 1), True)
    """
    tensor = _float_input(tensor, "tensor")
    tol = _check_tol(tol)
    dims = tuple(int(n) for n in tensor.shape)
    caps = validate_tt_rank(dims, rank)
    d = len(dims)
    norm_sq = torch.sum(tensor * tensor)
    delta_sq = None if tol is None or d == 1 else norm_sq * (tol * tol / (d - 1))
    cores: list[torch.Tensor] = []
    err_sq = tensor.new_zeros(())
    unfolding = tensor
    r_prev = 1
    for k in range(d - 1):
        unfolding = unfolding.reshape(r_prev * dims[k], -1)
        u, s, vh = _svd(unfolding)
        r, discarded = _truncate(s, caps[k + 1], delta_sq)
        err_sq = err_sq + discarded
        cores.append(u[:, :r].reshape(r_prev, dims[k], r))
        unfolding = s[:r, None] * vh[:r]
        r_prev = r
    cores.append(unfolding.reshape(r_prev, dims[-1], 1))
    return TTTensor(cores, rel_error=_relative(err_sq, norm_sq))


def _relative(err_sq: torch.Tensor, norm_sq: torch.Tensor) -> float:
    e, n = float(err_sq.item()), float(norm_sq.item())
    if n == 0.0:
        return 0.0
    return math.sqrt(max(e, 0.0) / n)


def tt_round(tt: TTTensor, rank: RankLike = None, *, tol: float | None = None) -> TTTensor:
    """TT rounding (Oseledets 2011, Alg. 2): a QR sweep right to left, then truncated SVDs left to right.

    Reduces the ranks of a TT tensor without forming it. ``tol`` is relative to the norm of
    ``tt`` and split per bond as in :func:`tt_svd`; the reported ``rel_error`` is the exact
    error against ``tt`` (not against whatever ``tt`` approximated).

    Example:
        >>> x = tt_svd(torch.randn(6, 6, 6, dtype=torch.float64))
        >>> tt_round(x, 2).ranks
        (1, 2, 2, 1)
    """
    if not isinstance(tt, TTTensor):
        raise ValueError(f"tt must be a TTTensor, got {type(tt).__name__}")
    tol = _check_tol(tol)
    caps = validate_tt_rank(tt.shape, rank)
    cores = [c if c.dtype not in (torch.float16, torch.bfloat16) else c.float() for c in tt.cores]
    d = len(cores)
    for k in range(d - 1, 0, -1):  # make cores 1..d-1 right-orthonormal
        r0, n, r1 = cores[k].shape
        q, rr = torch.linalg.qr(cores[k].reshape(r0, n * r1).mT)
        cores[k] = q.mT.reshape(-1, n, r1)
        prev = cores[k - 1]
        cores[k - 1] = (prev.reshape(-1, r0) @ rr.mT).reshape(prev.shape[0], prev.shape[1], -1)
    norm_sq = torch.sum(cores[0] * cores[0])
    delta_sq = None if tol is None or d == 1 else norm_sq * (tol * tol / (d - 1))
    err_sq = norm_sq.new_zeros(())
    for k in range(d - 1):
        r0, n, r1 = cores[k].shape
        u, s, vh = _svd(cores[k].reshape(r0 * n, r1))
        r, discarded = _truncate(s, caps[k + 1], delta_sq)
        err_sq = err_sq + discarded
        cores[k] = u[:, :r].reshape(r0, n, r)
        nxt = cores[k + 1]
        cores[k + 1] = ((s[:r, None] * vh[:r]) @ nxt.reshape(r1, -1)).reshape(r, nxt.shape[1], nxt.shape[2])
    return TTTensor(cores, rel_error=_relative(err_sq, norm_sq))


def _divisors(n: int) -> list[int]:
    small = [i for i in range(1, math.isqrt(n) + 1) if n % i == 0]
    return sorted(set(small + [n // i for i in small]))


def _balanced_split(n: int, d: int) -> tuple[int, ...] | None:
    """Ascending factors ``>= 2`` of ``n``, ``d`` of them, with the smallest largest factor."""
    divs = [x for x in _divisors(n) if x >= 2]
    best: tuple[int, ...] | None = None

    def search(rest: int, parts: int, lo: int, acc: tuple[int, ...]) -> None:
        nonlocal best
        if parts == 1:
            cand = (*acc, rest)
            if rest >= lo and (best is None or (cand[-1], -cand[0]) < (best[-1], -best[0])):
                best = cand
            return
        for f in divs:
            if f < lo or rest % f:
                continue
            if f**parts > rest:
                break
            search(rest // f, parts - 1, f, (*acc, f))

    search(n, d, 2, ())
    return best


def _is_useful(factors: tuple[int, ...] | None, n: int, d: int) -> bool:
    return factors is not None and factors[-1] <= 2 * math.ceil(n ** (1.0 / d) - 1e-9)


def factorize(n: int, d: int, *, pad: bool = False) -> tuple[int, ...]:
    """Split a size into ``d`` balanced factors (ascending), for a TT-matrix's mixed-radix indices.

    A split is useful when every factor is at least 2 and none exceeds twice ``ceil(n**(1/d))``;
    a prime, or twice a large prime, has none.

    Args:
        n: the size to split.
        d: how many factors.
        pad: return the split of the smallest size ``>= n`` that has a useful one (for embedding
            tables, whose extra rows are never looked up).

    Raises:
        ValueError: ``n`` or ``d`` not positive, or (without ``pad``) no useful split exists.

    Example:
        >>> factorize(1536, 3), factorize(30522, 3, pad=True)
        ((8, 12, 16), (25, 33, 37))
    """
    for name, v in (("n", n), ("d", d)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"factorize: {name} must be a positive int, got {v!r}")
    if d == 1:
        return (n,)
    m = n
    while True:
        factors = _balanced_split(m, d) if m >= 2**d else None
        if _is_useful(factors, m, d):
            return factors  # type: ignore[return-value]
        if not pad:
            why = "it is prime" if len(_divisors(n)) == 2 else "its factors are too unbalanced"
            best = "" if factors is None else f" (best split {factors})"
            raise ValueError(
                f"cannot split {n} into {d} useful factors: {why}{best}; pass the factors explicitly, "
                f"use fewer factors, or pad the dimension"
            )
        m = max(m + 1, 2**d)


def _ordered_splits(n: int, d: int) -> list[tuple[int, ...]]:
    """Every ordered ``d``-tuple of factors ``>= 2`` multiplying to ``n``."""
    if d == 1:
        return [(n,)] if n >= 2 else []
    return [(f, *rest) for f in _divisors(n) if f >= 2 for rest in _ordered_splits(n // f, d - 1)]


def tt_matrix_factors(
    out_size: int,
    in_size: int,
    order: int = 3,
    rank: RankLike = None,
    *,
    factorization: str = "balanced",
    batch: int = 64,
    in_factors: Sequence[int] | None = None,
    out_factors: Sequence[int] | None = None,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Factors ``(in_factors, out_factors)`` for an ``(out_size, in_size)`` TT-matrix of ``order`` cores.

    ``"balanced"`` splits each size with :func:`factorize` (the classic TT-matrix layout, and
    what the TT codec stores). ``"fast"`` searches every ordered split of both sizes into
    factors ``>= 2`` and keeps the one whose core-by-core contraction with ``batch`` rows is
    cheapest (:func:`~holotensor.codecs.tt_contract.sweep_cost`) at the ranks ``rank`` would give
    it; ties go to fewer parameters. Why it matters: for a 2-core TT-matrix at rank ``r`` the
    sweep costs ``r n_1 m_2 (n_2 + m_1)`` multiply-adds per row against ``M N`` for the dense
    matrix, with ``r (m_1 n_1 + m_2 n_2)`` parameters, so balanced factors spend about
    ``(sqrt(M) + sqrt(N)) / 2`` times more of the dense flops than of its parameters and are slower
    than dense already at a few percent of its parameters. The fast split (e.g. in ``(192, 2)``,
    out ``(2, 768)``) spends only about twice: it is a sum of ``r`` Kronecker products of a tall
    and a small matrix, close to a rank-``r`` factorization. How well either fits a trained weight
    is an empirical question (benchmarks/tt.py, section (c)). A factorization given for one side
    is kept and only the other is chosen.

    Args:
        out_size, in_size: the matrix shape.
        order: number of cores (ignored where factors are given).
        rank: the bond rank caps the layer will have (see :func:`validate_tt_rank`); ``None``
            prices the largest useful ranks.
        factorization: ``"fast"`` or ``"balanced"``.
        batch: the number of rows the contraction is priced for.
        in_factors, out_factors: a side fixed by the caller (checked).

    Raises:
        ValueError: an unknown ``factorization``, bad sizes or factors, a size with no split
            (prime, or too small for ``order`` factors), bad rank.

    Example:
        >>> tt_matrix_factors(1536, 384, 2, 8, factorization="fast")
        ((192, 2), (2, 768))
        >>> tt_matrix_factors(1536, 384, 3)
        ((6, 8, 8), (8, 12, 16))
    """
    if factorization not in FACTORIZATIONS:
        raise ValueError(f"factorization must be one of {FACTORIZATIONS}, got {factorization!r}")
    for name, v in (("out_size", out_size), ("in_size", in_size), ("order", order), ("batch", batch)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    given = in_factors if in_factors is not None else out_factors
    d = len(tuple(given)) if given is not None else order
    in_f = _check_factors(in_factors, in_size, d, "in_factors")
    out_f = _check_factors(out_factors, out_size, d, "out_factors")
    if factorization == "balanced":
        return in_f or factorize(in_size, d), out_f or factorize(out_size, d)
    key_rank = rank if rank is None or isinstance(rank, int) else tuple(rank)
    validate_tt_rank([out_size * in_size] * d, key_rank)  # the rank request is checked once, up front
    return _fastest_factors(out_size, in_size, d, key_rank, batch, in_f, out_f)


@functools.lru_cache(maxsize=256)
def _fastest_factors(
    out_size: int,
    in_size: int,
    d: int,
    rank: int | tuple[int, ...] | None,
    batch: int,
    in_f: tuple[int, ...] | None,
    out_f: tuple[int, ...] | None,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    sides = []
    for size, fixed in ((in_size, in_f), (out_size, out_f)):
        options = [fixed] if fixed is not None else _ordered_splits(size, d)
        if not options:
            why = "it is prime" if len(_divisors(size)) == 2 else f"it has no {d} factors >= 2"
            raise ValueError(
                f"cannot split {size} into {d} factors: {why}; pass the factors explicitly or use fewer"
            )
        sides.append(options)
    best_key: tuple[int, int, int] | None = None
    best = sides[0][0], sides[1][0]
    for ins, outs in itertools.product(*sides):
        ranks = validate_tt_rank([m * n for m, n in zip(outs, ins, strict=True)], rank)
        shapes = [(ranks[k], outs[k], ins[k], ranks[k + 1]) for k in range(d)]
        params = sum(math.prod(s) for s in shapes)
        key = (sweep_cost(shapes, batch), params, max(*ins, *outs))
        if best_key is None or key < best_key:
            best_key, best = key, (ins, outs)
    return best


class TTMatrix:
    """A matrix in TT-matrix (MPO) form, checked at construction.

    Args:
        cores: cores of shape ``(r_{k-1}, m_k, n_k, r_k)``, ``r_0 = r_d = 1``; the matrix has
            ``m_1...m_d`` rows and ``n_1...n_d`` columns.
        rel_error: relative Frobenius error against the matrix it was computed from, if known.

    Example:
        >>> w = tt_matrix(torch.randn(12, 8, dtype=torch.float64), (2, 4), (3, 4), rank=2)
        >>> w.out_factors, w.in_factors, w.ranks
        ((3, 4), (2, 4), (1, 2, 1))
    """

    def __init__(self, cores: Sequence[torch.Tensor], *, rel_error: float | None = None) -> None:
        self.cores = _check_chain(cores, 4, "TT-matrix")
        self.rel_error = rel_error

    @property
    def out_factors(self) -> tuple[int, ...]:
        return tuple(int(c.shape[1]) for c in self.cores)

    @property
    def in_factors(self) -> tuple[int, ...]:
        return tuple(int(c.shape[2]) for c in self.cores)

    @property
    def shape(self) -> tuple[int, int]:
        return _prod(self.out_factors), _prod(self.in_factors)

    @property
    def ranks(self) -> tuple[int, ...]:
        return (1, *(int(c.shape[-1]) for c in self.cores))

    @property
    def n_params(self) -> int:
        return sum(c.numel() for c in self.cores)

    def __len__(self) -> int:
        return len(self.cores)

    def to_matrix(self) -> torch.Tensor:
        """The full ``(rows, cols)`` matrix."""
        return tt_matrix_to_matrix(self.cores)

    def __repr__(self) -> str:
        err = "" if self.rel_error is None else f", rel_error={self.rel_error:.3g}"
        return (
            f"TTMatrix(shape={self.shape}, out_factors={self.out_factors}, in_factors={self.in_factors}, "
            f"ranks={self.ranks}{err})"
        )


def tt_matrix_to_matrix(cores: Sequence[torch.Tensor]) -> torch.Tensor:
    """Contract TT-matrix cores ``(r, m_k, n_k, r')`` into the dense ``(m_1...m_d, n_1...n_d)`` matrix."""
    d = len(cores)
    ms = [int(c.shape[1]) for c in cores]
    ns = [int(c.shape[2]) for c in cores]
    full = tt_to_tensor([c.reshape(c.shape[0], -1, c.shape[-1]) for c in cores])
    full = full.reshape([x for pair in zip(ms, ns, strict=True) for x in pair])
    full = full.permute(*range(0, 2 * d, 2), *range(1, 2 * d, 2))
    return full.reshape(_prod(ms), _prod(ns))


def _check_factors(
    factors: Sequence[int] | None, size: int, d: int | None, what: str
) -> tuple[int, ...] | None:
    if factors is None:
        return None
    factors = _check_dims(factors, what)
    if _prod(factors) != size:
        raise ValueError(f"{what} {factors} multiply to {_prod(factors)}, not {size}")
    if d is not None and len(factors) != d:
        raise ValueError(f"{what} {factors} has {len(factors)} factors, expected {d}")
    return factors


def tt_matrix(
    weight: torch.Tensor,
    in_factors: Sequence[int] | None = None,
    out_factors: Sequence[int] | None = None,
    rank: RankLike = None,
    tol: float | None = None,
    *,
    order: int = 3,
    factorization: str = "balanced",
    batch: int = 64,
) -> TTMatrix:
    """TT-matrix (MPO) decomposition of a ``(out, in)`` weight by TT-SVD of its reshuffled form.

    ``W[i, j]`` with ``i = (i_1..i_d)`` over ``out_factors`` and ``j = (j_1..j_d)`` over
    ``in_factors`` is reordered to the order-``d`` tensor ``T[(i_1 j_1), ..., (i_d j_d)]`` and
    decomposed with :func:`tt_svd`; the reported error is that of the whole matrix.

    Args:
        weight: a 2-d real floating tensor, ``(out_features, in_features)`` as in ``nn.Linear``.
        in_factors, out_factors: the column and row factorizations; a missing one is chosen by
            :func:`tt_matrix_factors` with as many factors as the other (or ``order``).
        rank: bond rank caps (see :func:`validate_tt_rank`).
        tol: relative Frobenius error budget.
        order: number of cores when neither factorization is given.
        factorization, batch: how missing factors are chosen (see :func:`tt_matrix_factors`);
            ``"balanced"`` by default, the layout of the TT codec.

    Raises:
        ValueError: a non-2-d weight, factors that do not multiply to the sizes or differ in
            count, a size with no useful factorization, bad rank or tol.

    Example:
        >>> w = torch.randn(1536, 384)
        >>> m = tt_matrix(w, rank=16)
        >>> m.out_factors, m.in_factors
        ((8, 12, 16), (6, 8, 8))
    """
    if isinstance(weight, torch.Tensor) and weight.ndim != 2:
        raise ValueError(f"weight must be 2-d (out, in), got shape {tuple(weight.shape)}")
    weight = _float_input(weight, "weight")
    out_size, in_size = (int(x) for x in weight.shape)
    in_f, out_f = tt_matrix_factors(
        out_size,
        in_size,
        order,
        rank,
        factorization=factorization,
        batch=batch,
        in_factors=in_factors,
        out_factors=out_factors,
    )
    d = len(in_f)
    t = weight.reshape(*out_f, *in_f).permute(*itertools.chain.from_iterable((k, d + k) for k in range(d)))
    tt = tt_svd(t.reshape([m * n for m, n in zip(out_f, in_f, strict=True)]), rank, tol=tol)
    cores = [c.reshape(c.shape[0], m, n, c.shape[-1]) for c, m, n in zip(tt.cores, out_f, in_f, strict=True)]
    return TTMatrix(cores, rel_error=tt.rel_error)

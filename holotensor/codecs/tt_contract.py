"""Contracting TT-matrices with inputs without building them: ``x @ W.T`` and row look-ups.

A TT-matrix ``W`` of shape ``(m_1...m_d, n_1...n_d)`` has cores ``(r_{k-1}, m_k, n_k, r_k)``
(see :mod:`holotensor.codecs.tensor_train`). :func:`tt_matrix_linear` multiplies a batch by it
along a plan chosen by :func:`plan_tt_linear`; :func:`tt_matrix_rows` computes rows of it from
mixed-radix row indices. Both are plain torch, so autograd and ``torch.compile`` see through them.

References:
    A. Novikov et al., "Tensorizing neural networks", NeurIPS 2015.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "MOVE_COST",
    "TTLinearPlan",
    "plan_tt_linear",
    "price_plan",
    "sweep_cost",
    "tt_matrix_linear",
    "tt_matrix_rows",
]

# Partitions of the cores into merged groups are enumerated up to this many cores; longer
# chains only compare the plain sequential plans and the dense plan.
_MAX_CORES_ENUMERATED = 7


@dataclass(frozen=True)
class TTLinearPlan:
    """How :func:`tt_matrix_linear` contracts: which runs of cores to merge first, and the sweep direction.

    Attributes:
        groups: ``(start, stop)`` core ranges merged into one core each before the sweep; one
            group covering every core means "build the dense weight, then one matmul".
        reverse: sweep the (merged) cores first to last instead of last to first.
        flops: 2 x multiply-adds of the whole plan, for the batch it was priced for.
        moves: elements copied by the permutes between the matmuls.
    """

    groups: tuple[tuple[int, int], ...]
    reverse: bool = False
    flops: int = 0
    moves: int = 0

    @property
    def dense(self) -> bool:
        return len(self.groups) == 1

    @property
    def cost(self) -> int:
        """What the planner minimizes: flops plus :data:`MOVE_COST` flops per copied element."""
        return self.flops + MOVE_COST * self.moves


# Flop-equivalents of copying one element in a permute. The copies between the sweep's GEMMs are
# strided; on the CPUs this was tuned on (MKL; AVX2 and AVX-512, one thread) a 3-axis permute
# copied a float in 0.6-0.75 ns, the time of 25-45 flops of the sweep's GEMMs (35-65 GFLOP/s),
# and on GPUs the flop/bandwidth ratio is higher still. Without this term the planner picks
# sweeps whose flops are below the dense plan's but whose time is not.
MOVE_COST = 32


def _merged_shapes(
    shapes: Sequence[tuple[int, int, int, int]], groups: Sequence[tuple[int, int]]
) -> tuple[list[tuple[int, int, int, int]], int, int]:
    """Shapes of the cores after merging each group, and the flops and moves spent merging."""
    merged, flops, moves = [], 0, 0
    for a, b in groups:
        r0, m, n, r1 = shapes[a]
        for s in shapes[a + 1 : b]:
            flops += 2 * r0 * m * n * r1 * s[1] * s[2] * s[3]
            moves += r0 * m * n * s[1] * s[2] * s[3]
            m, n, r1 = m * s[1], n * s[2], s[3]
        merged.append((r0, m, n, r1))
    return merged, flops, moves


def _sweep_steps(
    shapes: Sequence[tuple[int, int, int, int]], batch: int, reverse: bool
) -> list[tuple[tuple[int, ...], tuple[int, ...], int, int, int]]:
    """The sweep of :func:`_sweep` as steps ``(view, perm, rows, inner, cols)``: view the state as
    ``view``, permute it by ``perm``, then one GEMM ``(rows, inner) x (inner, cols)``.

    Last to first, the state before core k is ``(b, n_1..n_k, m_{k+2}..m_d, r_k, m_{k+1})``:
    ``m_{k+1}`` moves in front of the finished digits and ``(n_k, r_k)`` to the end, to meet the
    core as ``(n_k r_k, r_{k-1} m_k)``, a transposed view of it; the first GEMM is
    ``x.view(B N_<d, n_d)`` as it stands, and the output comes out as ``(b, m_2..m_d, m_1)``
    (one last 2-axis transpose, not listed here, puts ``m_1`` first). First to last, the
    state before core k is ``(b, n_k..n_d, m_1..m_{k-1}, r_{k-1})``: ``n_k`` moves to the end and
    meets the core permuted to ``(r_{k-1} n_k, m_k r_k)``; the output comes out in order.
    """
    d = len(shapes)
    ms = [s[1] for s in shapes]
    ns = [s[2] for s in shapes]
    steps = []
    for k in range(d) if reverse else range(d - 1, -1, -1):
        r0, m, n, r1 = shapes[k]
        if reverse:
            rows = batch * math.prod(ns[k + 1 :]) * math.prod(ms[:k])
            view, perm = (batch, n, rows // batch, r0), (0, 2, 3, 1)
            steps.append((view, perm, rows, r0 * n, m * r1))
        else:
            rows = batch * math.prod(ns[:k]) * math.prod(ms[k + 1 :])
            if k == d - 1:
                view, perm = (rows, n), (0, 1)
            else:
                done = math.prod(ms[k + 2 :])  # m_{k+2}..m_d, in order
                view, perm = (batch * math.prod(ns[:k]), n, done, r1, ms[k + 1]), (0, 4, 2, 1, 3)
            steps.append((view, perm, rows, n * r1, r0 * m))
    return steps


def _copies(view: Sequence[int], perm: Sequence[int]) -> int:
    """Elements that permuting a tensor of shape ``view`` by ``perm`` copies: 0 when the result is
    still a view (the axes of size > 1 keep their order), else all of them."""
    kept = [p for p in perm if view[p] > 1]
    return 0 if kept == sorted(kept) else math.prod(view)


def _output_order(ms: Sequence[int], batch: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The transpose that turns the output ``(b, m_2..m_d, m_1)`` of a last-to-first sweep into ``(b, m_1..m_d)``."""
    return (batch, math.prod(ms[1:]), ms[0]), (0, 2, 1)


def _sweep_counts(shapes: Sequence[tuple[int, int, int, int]], batch: int, reverse: bool) -> tuple[int, int]:
    """Flops and moves of :func:`_sweep`: its GEMMs, and the elements its permutes copy (of the
    state, of the output, and first to last of each core: batch-independent but paid per call)."""
    flops = moves = 0
    for view, perm, rows, inner, cols in _sweep_steps(shapes, batch, reverse):
        flops += 2 * rows * inner * cols
        moves += _copies(view, perm)
    if reverse:
        moves += sum(_copies(s, (0, 2, 1, 3)) for s in shapes)
    else:
        moves += _copies(*_output_order([s[1] for s in shapes], batch))
    return flops, moves


def price_plan(
    shapes: Sequence[Sequence[int]], batch: int, groups: Sequence[tuple[int, int]], reverse: bool = False
) -> TTLinearPlan:
    """The plan that merges ``groups`` and sweeps in direction ``reverse``, with its flops and moves counted.

    Example:
        >>> shapes = [(1, 8, 6, 4), (4, 12, 8, 4), (4, 16, 8, 1)]
        >>> price_plan(shapes, 64, [(0, 3)]).flops > 2 * 64 * 384 * 1536  # build W, then the matmul
        True
    """
    shp = [tuple(int(x) for x in s) for s in shapes]
    groups = tuple((int(a), int(b)) for a, b in groups)
    merged, flops, moves = _merged_shapes(shp, groups)
    if len(groups) == 1:
        _, m, n, _ = merged[0]
        return TTLinearPlan(groups, False, flops + 2 * batch * m * n, moves)
    sweep_flops, sweep_moves = _sweep_counts(merged, batch, bool(reverse))
    return TTLinearPlan(groups, bool(reverse), flops + sweep_flops, moves + sweep_moves)


def sweep_cost(shapes: Sequence[Sequence[int]], batch: int) -> int:
    """:attr:`TTLinearPlan.cost` of the core-by-core sweep in its cheaper direction, without merges.

    The quick price a factorization search compares candidates by; the plan
    :func:`plan_tt_linear` picks also weighs merged and dense plans, so it costs at most this.

    Example:
        >>> sweep_cost([(1, 2, 192, 8), (8, 768, 2, 1)], 64) < sweep_cost([(1, 32, 16, 8), (8, 48, 24, 1)], 64)
        True
    """
    shp = [tuple(int(x) for x in s) for s in shapes]
    best = None
    for reverse in (False, True):
        flops, moves = _sweep_counts(shp, int(batch), reverse)
        cost = flops + MOVE_COST * moves
        best = cost if best is None else min(best, cost)
    return best  # type: ignore[return-value]


def plan_tt_linear(shapes: Sequence[Sequence[int]], batch: int) -> TTLinearPlan:
    """Choose the cheapest contraction of ``batch`` input rows with TT-matrix cores of ``shapes``.

    Candidates: every split of the chain into runs of neighbouring cores (each run merged into
    one core, at a cost independent of the batch), swept last-to-first or first-to-last. The
    two ends of this family are the plain core-by-core sweep (cheap for small batches and low
    ranks) and building the dense weight once (cheap for large batches, whose matmul then
    dominates). Chains longer than 7 cores compare only those two ends. Plans are priced by
    flop count plus :data:`MOVE_COST` per element the permutes copy (:attr:`TTLinearPlan.cost`).
    Plans are cached per (shapes, batch); under ``torch.compile`` the search runs at trace time.

    Example:
        >>> shapes = [(1, 8, 6, 16), (16, 12, 8, 16), (16, 16, 8, 1)]
        >>> plan_tt_linear(shapes, 1).dense, plan_tt_linear(shapes, 1 << 20).dense
        (False, True)
    """
    key = tuple(tuple(int(x) for x in s) for s in shapes)
    if torch.compiler.is_compiling():
        return _search_plan(key, int(batch))
    return _cached_plan(key, int(batch))


def _search_plan(shapes: tuple[tuple[int, ...], ...], batch: int) -> TTLinearPlan:
    d = len(shapes)
    if d <= _MAX_CORES_ENUMERATED:
        cuts_options = itertools.product((False, True), repeat=d - 1)
    else:
        cuts_options = iter([(True,) * (d - 1), (False,) * (d - 1)])
    best: TTLinearPlan | None = None
    for cuts in cuts_options:
        bounds = [0, *(k + 1 for k, c in enumerate(cuts) if c), d]
        groups = tuple(itertools.pairwise(bounds))
        for reverse in (False,) if len(groups) == 1 else (False, True):
            plan = price_plan(shapes, batch, groups, reverse)
            if best is None or plan.cost < best.cost:
                best = plan
    return best  # type: ignore[return-value]


_cached_plan = functools.lru_cache(maxsize=4096)(_search_plan)


def _merge(cores: Sequence[torch.Tensor]) -> torch.Tensor:
    """One TT-matrix core equal to the product of a run of neighbouring cores."""
    out = cores[0]
    for core in cores[1:]:
        r0, m, n, r = out.shape
        _, m2, n2, r1 = core.shape
        prod = (out.reshape(-1, r) @ core.reshape(r, -1)).reshape(r0, m, n, m2, n2, r1)
        out = prod.permute(0, 1, 3, 2, 4, 5).reshape(r0, m * m2, n * n2, r1)
    return out


def _sweep(
    flat: torch.Tensor, cores: Sequence[torch.Tensor], reverse: bool, bias: torch.Tensor | None
) -> torch.Tensor:
    """``flat (B, N) @ W.T + bias`` core by core, one GEMM per core on a row-major state (see :func:`_sweep_steps`).

    Returns:
        ``(B, M)``; last to first, the bias is added in the same pass as the final transpose.
    """
    batch = flat.shape[0]
    shapes = [tuple(int(x) for x in c.shape) for c in cores]
    order = range(len(cores)) if reverse else range(len(cores) - 1, -1, -1)
    state = flat
    for k, (view, perm, rows, inner, cols) in zip(order, _sweep_steps(shapes, batch, reverse), strict=True):
        a = state.reshape(view).permute(perm).reshape(rows, inner)
        if reverse:
            state = a @ cores[k].permute(0, 2, 1, 3).reshape(inner, cols)
        else:
            state = a @ cores[k].reshape(cols, inner).mT
    if reverse:
        out = state.reshape(batch, -1)
        return out if bias is None else out + bias
    view, perm = _output_order([s[1] for s in shapes], batch)
    out = state.reshape(view).permute(perm)
    return (
        out.reshape(batch, -1) if bias is None else (out + bias.reshape(view[2], view[1])).reshape(batch, -1)
    )


def tt_matrix_linear(
    x: torch.Tensor,
    cores: Sequence[torch.Tensor],
    bias: torch.Tensor | None = None,
    *,
    plan: TTLinearPlan | None = None,
) -> torch.Tensor:
    """``x @ W.T + bias`` for a TT-matrix ``W`` given by its cores, without building ``W`` unless that is cheaper.

    Args:
        x: ``(..., n_1...n_d)`` input.
        cores: TT-matrix cores ``(r_{k-1}, m_k, n_k, r_k)``.
        bias: optional ``(m_1...m_d,)``.
        plan: the contraction (see :func:`plan_tt_linear`); chosen by flops for this batch if omitted.

    Returns:
        ``(..., m_1...m_d)``; differentiable in ``x``, the cores and ``bias``.

    Example:
        >>> from holotensor.codecs.tensor_train import tt_matrix
        >>> w = tt_matrix(torch.randn(12, 8, dtype=torch.float64), (2, 4), (3, 4))
        >>> x = torch.randn(5, 8, dtype=torch.float64)
        >>> torch.allclose(tt_matrix_linear(x, w.cores), x @ w.to_matrix().T)
        True
    """
    ms = [int(c.shape[1]) for c in cores]
    ns = [int(c.shape[2]) for c in cores]
    n_in, n_out = math.prod(ns), math.prod(ms)
    if x.shape[-1] != n_in:
        raise ValueError(f"input has {x.shape[-1]} features, the TT-matrix expects {n_in}")
    lead = x.shape[:-1]
    flat = x.reshape(-1, n_in)
    if flat.shape[0] == 0:
        plan = TTLinearPlan(((0, len(cores)),))  # nothing to sweep; the matmul handles 0 rows
    elif plan is None:
        plan = plan_tt_linear([tuple(c.shape) for c in cores], flat.shape[0])
    merged = [_merge(cores[a:b]) for a, b in plan.groups]
    if plan.dense:
        w = merged[0].reshape(n_out, n_in)
        out = flat @ w.mT if bias is None else torch.addmm(bias, flat, w.mT)
        return out.reshape(*lead, n_out)
    return _sweep(flat, merged, plan.reverse, bias).reshape(*lead, n_out)


def tt_matrix_rows(cores: Sequence[torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
    """Rows ``W[rows, :]`` of a TT-matrix, computed from the cores without building ``W``.

    Each row index is split into mixed-radix digits ``(i_1..i_d)`` over the row factors; the
    digit selects one ``(r_{k-1}, n_k, r_k)`` slice of each core and the slices are chained.

    Args:
        cores: TT-matrix cores ``(r_{k-1}, m_k, n_k, r_k)``.
        rows: integer tensor of any shape with values in ``[0, m_1...m_d)`` (not checked here).

    Returns:
        ``(*rows.shape, n_1...n_d)``.

    Example:
        >>> from holotensor.codecs.tensor_train import tt_matrix
        >>> w = tt_matrix(torch.randn(12, 8, dtype=torch.float64), (2, 4), (3, 4))
        >>> torch.allclose(tt_matrix_rows(w.cores, torch.tensor([0, 7])), w.to_matrix()[[0, 7]])
        True
    """
    idx = rows.reshape(-1).long()
    count = idx.numel()
    ms = [int(c.shape[1]) for c in cores]
    stride = math.prod(ms)
    out: torch.Tensor | None = None
    width = 1
    for core in cores:
        r0, m, n, r1 = core.shape
        stride //= m
        digit = torch.div(idx, stride, rounding_mode="floor") % m
        picked = core.permute(1, 0, 2, 3).reshape(m, -1).index_select(0, digit)  # (L, r0 * n * r1)
        if out is None:
            out = picked.reshape(count, n, r1)
        else:
            out = torch.bmm(out, picked.reshape(count, r0, n * r1)).reshape(count, width * n, r1)
        width *= n
    return out.reshape(*rows.shape, width)  # type: ignore[union-attr]

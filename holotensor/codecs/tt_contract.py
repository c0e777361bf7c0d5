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

__all__ = ["MOVE_COST", "TTLinearPlan", "plan_tt_linear", "price_plan", "tt_matrix_linear", "tt_matrix_rows"]

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
# strided; on the CPUs this was tuned on (MKL, AVX2) one copied float took as long as 15-30 flops
# of a large GEMM, and on GPUs the flop/bandwidth ratio is higher still. Without this term the
# planner picks sweeps whose flops are below the dense plan's but whose time is not.
MOVE_COST = 16


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


def _sweep_counts(shapes: Sequence[tuple[int, int, int, int]], batch: int) -> tuple[int, int]:
    """Flops and moves of the last-to-first sweep (see :func:`_sweep`).

    Core k is one GEMM ``(r_{k-1} m_k, n_k r_k) x (n_k r_k, N_<k M_>k B)``; every output but the
    last is permuted once, and the input and output are each transposed once.
    """
    flops, moves, m_after = 0, 0, 1
    n_before = [math.prod([s[2] for s in shapes[:k]]) for k in range(len(shapes))]
    for k in range(len(shapes) - 1, -1, -1):
        r0, m, n, r1 = shapes[k]
        flops += 2 * batch * n_before[k] * m_after * n * r1 * r0 * m
        if k > 0:
            moves += batch * n_before[k] * m_after * r0 * m
        m_after *= m
    return flops, moves + batch * (n_before[-1] * shapes[-1][2] + m_after)


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
    seq = [(r1, m, n, r0) for r0, m, n, r1 in reversed(merged)] if reverse else merged
    sweep_flops, sweep_moves = _sweep_counts(seq, batch)
    return TTLinearPlan(groups, bool(reverse), flops + sweep_flops, moves + sweep_moves)


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


def _sweep(state: torch.Tensor, cores: Sequence[torch.Tensor], batch: int) -> torch.Tensor:
    """Contract cores last to first; ``state`` is the input as ``(j_d, ..., j_1, b)``.

    Before core k the state is the matrix ``(j_k r_k, j_{k-1} ... j_1 m_{k+1} ... m_d b)``: one
    GEMM with core k turns ``(j_k, r_k)`` into ``(r_{k-1}, m_k)``, and a permute of the leading
    dims brings ``(j_{k-1}, r_{k-1})`` to the front while every copied run stays at least ``B``
    long (the output digits and the batch are the trailing, contiguous dims).

    Returns:
        The output as the matrix ``(m_1 ... m_d, b)``.
    """
    tail = batch
    for k in range(len(cores) - 1, -1, -1):
        r0, m, n, r1 = cores[k].shape
        state = cores[k].reshape(r0 * m, n * r1) @ state.reshape(n * r1, -1)
        if k > 0:
            state = state.reshape(r0, m, cores[k - 1].shape[2], -1, tail).permute(2, 0, 3, 1, 4)
        tail *= m
    return state.reshape(-1, batch)


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
    batch = flat.shape[0]
    g = len(merged)
    if plan.reverse:
        # The reversed chain of transposed cores is the same matrix with its digits reversed, so
        # its sweep takes the input digits in natural order and yields the output digits reversed.
        out = _sweep(flat.mT, [c.permute(3, 1, 2, 0) for c in reversed(merged)], batch)
        mg = [int(c.shape[1]) for c in reversed(merged)]
        out = out.reshape(*mg, batch).permute(g, *range(g - 1, -1, -1)).reshape(batch, n_out)
    else:
        ng = [int(c.shape[2]) for c in merged]
        state = flat.reshape(batch, *ng).permute(*range(g, 0, -1), 0)
        out = _sweep(state, merged, batch).mT
    if bias is not None:
        out = out + bias
    return out.reshape(*lead, n_out)


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

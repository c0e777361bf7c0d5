"""TT-matrix contractions (every plan) and row look-ups against dense torch."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from holotensor.codecs.tensor_train import TTMatrix
from holotensor.codecs.tt_contract import (
    MOVE_COST,
    TTLinearPlan,
    _copies,
    _sweep_steps,
    plan_tt_linear,
    price_plan,
    sweep_cost,
    tt_matrix_linear,
    tt_matrix_rows,
)

F64 = torch.float64


def _tt_weight(seed: int, out_f: tuple[int, ...], in_f: tuple[int, ...], rank: int) -> TTMatrix:
    g = torch.Generator().manual_seed(seed)
    d = len(out_f)
    r = [1] + [rank] * (d - 1) + [1]
    return TTMatrix(
        [torch.randn(r[k], out_f[k], in_f[k], r[k + 1], generator=g, dtype=F64) for k in range(d)]
    )


@pytest.mark.parametrize(
    ("out_f", "in_f", "rank"),
    [
        ((3,), (5,), 1),
        ((2, 3), (4, 2), 3),
        ((2, 3, 4), (3, 2, 2), 4),
        ((2, 1, 3, 2), (1, 3, 2, 2), 2),
        ((2, 12), (6, 2), 3),  # skewed, as the fast factorization picks
        ((2, 2, 5), (5, 2, 2), 2),
    ],
)
def test_every_contraction_plan_matches_dense(
    out_f: tuple[int, ...], in_f: tuple[int, ...], rank: int
) -> None:
    w = _tt_weight(10, out_f, in_f, rank)
    dense = w.to_matrix()
    x = torch.randn(2, 3, w.shape[1], dtype=F64)
    bias = torch.randn(w.shape[0], dtype=F64)
    expect = x @ dense.T + bias
    d = len(out_f)
    plans = []
    for mask in range(1 << (d - 1)):
        bounds = [0, *(k + 1 for k in range(d - 1) if mask >> k & 1), d]
        groups = tuple(itertools.pairwise(bounds))
        for reverse in (False, True):
            plans.append(TTLinearPlan(groups, reverse, 0))
    for plan in plans:
        got = tt_matrix_linear(x, w.cores, bias, plan=plan)
        assert got.shape == (2, 3, w.shape[0])
        torch.testing.assert_close(got, expect, rtol=1e-12, atol=1e-12, msg=str(plan))
    torch.testing.assert_close(tt_matrix_linear(x, w.cores), x @ dense.T, rtol=1e-12, atol=1e-12)


def test_empty_batch() -> None:
    w = _tt_weight(13, (2, 3), (4, 2), 2)
    out = tt_matrix_linear(torch.zeros(0, 8, dtype=F64), w.cores, torch.ones(6, dtype=F64))
    assert out.shape == (0, 6)


def test_plan_switches_to_dense_for_large_batches() -> None:
    shapes = [(1, 8, 6, 16), (16, 12, 8, 16), (16, 16, 8, 1)]
    small, large = plan_tt_linear(shapes, 1), plan_tt_linear(shapes, 4096)
    assert not small.dense and large.dense
    low = plan_tt_linear([(1, 8, 6, 2), (2, 12, 8, 2), (2, 16, 8, 1)], 4096)
    assert not low.dense  # rank 2 stays cheaper than dense at any batch


def test_tt_matrix_linear_rejects_wrong_width() -> None:
    w = _tt_weight(11, (2, 3), (4, 2), 2)
    with pytest.raises(ValueError, match="expects 8"):
        tt_matrix_linear(torch.randn(3, 7, dtype=F64), w.cores)


def test_tt_matrix_rows() -> None:
    w = _tt_weight(12, (3, 4, 5), (2, 3, 2), 3)
    dense = w.to_matrix()
    idx = torch.tensor([[0, 59, 17], [33, 33, 1]])
    rows = tt_matrix_rows(w.cores, idx)
    assert rows.shape == (2, 3, 12)
    torch.testing.assert_close(rows, dense[idx], rtol=1e-12, atol=1e-12)
    assert tt_matrix_rows(w.cores, torch.zeros(0, dtype=torch.long)).shape == (0, 12)


def test_price_plan_counts() -> None:
    shapes = [(1, 2, 3, 4), (4, 5, 6, 1)]  # W is 10 x 18
    sweep = price_plan(shapes, 7, [(0, 1), (1, 2)])
    assert sweep.flops == 2 * 7 * (3 * 6 * 4 * 5 + 5 * 3 * 4 * 2)
    # x.view(21, 6) needs no copy; the state before core 0 is permuted once, the output transposed once.
    assert sweep.moves == 7 * 3 * 4 * 5 + 7 * 10
    forward = price_plan(shapes, 7, [(0, 1), (1, 2)], True)
    assert forward.flops == 2 * (7 * 6 * 3 * 8 + 7 * 2 * 24 * 5)
    # The input and the state before core 1 are permuted, and each core once; the output is in order.
    assert forward.moves == 7 * 18 + 7 * 6 * 2 * 4 + 24 + 120
    dense = price_plan(shapes, 7, [(0, 2)])
    assert dense.dense
    assert dense.flops == 2 * 2 * 3 * 4 * 5 * 6 + 2 * 7 * 10 * 18
    assert dense.moves == 2 * 3 * 5 * 6
    best = plan_tt_linear(shapes, 7)
    assert best.cost == min(p.cost for p in (sweep, dense, forward))
    assert sweep_cost(shapes, 7) == min(sweep.cost, forward.cost) == sweep.flops + MOVE_COST * sweep.moves


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(
    "shapes",
    [
        [(1, 2, 3, 4), (4, 5, 6, 1)],
        [(1, 1, 8, 2), (2, 6, 1, 1)],
        [(1, 96, 2, 3), (3, 2, 2, 3), (3, 2, 96, 1)],
        [(1, 2, 2, 1), (1, 3, 1, 2), (2, 1, 3, 1)],
    ],
)
def test_counted_moves_are_the_real_copies(shapes: list[tuple[int, int, int, int]], reverse: bool) -> None:
    # A permute counted as free must really be a view of the state; one counted as a copy must not be.
    batch = 3
    for view, perm, rows, inner, _ in _sweep_steps(shapes, batch, reverse):
        state = torch.randn(math.prod(view))
        a = state.reshape(view).permute(perm).reshape(rows, inner)
        assert (a.data_ptr() == state.data_ptr()) == (_copies(view, perm) == 0), (view, perm)


def test_tt_matrix_rows_gradcheck() -> None:
    w = _tt_weight(14, (2, 3), (2, 2), 2)
    cores = [c.requires_grad_(True) for c in w.cores]
    idx = torch.tensor([0, 5, 5, 2])
    assert torch.autograd.gradcheck(lambda *cs: tt_matrix_rows(cs, idx), tuple(cores))

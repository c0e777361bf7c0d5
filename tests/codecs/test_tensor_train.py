"""TT-SVD, TT rounding, TT-matrices and their contractions against dense torch."""

from __future__ import annotations

import math

import pytest
import torch

from holotensor.analysis.metrics import rel_l2
from holotensor.codecs.tensor_train import (
    TTMatrix,
    TTTensor,
    factorize,
    tt_matrix,
    tt_matrix_factors,
    tt_round,
    tt_svd,
    validate_tt_rank,
)

F64 = torch.float64


def _random_tt(shape: tuple[int, ...], ranks: tuple[int, ...], seed: int = 0) -> TTTensor:
    g = torch.Generator().manual_seed(seed)
    return TTTensor(
        [torch.randn(ranks[k], n, ranks[k + 1], generator=g, dtype=F64) for k, n in enumerate(shape)]
    )


@pytest.mark.parametrize("shape", [(7,), (5, 6), (3, 4, 5), (2, 3, 4, 3), (3, 2, 2, 3, 2)])
def test_full_rank_is_exact(shape: tuple[int, ...]) -> None:
    x = torch.randn(shape, dtype=F64, generator=torch.Generator().manual_seed(1))
    tt = tt_svd(x)
    assert tt.shape == shape
    assert rel_l2(x, tt.to_tensor()) < 1e-13
    assert tt.rel_error < 1e-13


@pytest.mark.parametrize(
    ("shape", "ranks"),
    [((6, 7, 8), (1, 3, 4, 1)), ((4, 5, 6, 5), (1, 2, 5, 3, 1)), ((3, 4, 5, 4, 3), (1, 3, 3, 3, 3, 1))],
)
def test_known_rank_recovered(shape: tuple[int, ...], ranks: tuple[int, ...]) -> None:
    x = _random_tt(shape, ranks).to_tensor()
    capped = tt_svd(x, max(ranks))  # a rank cap alone keeps that many, the extra ones ~0
    assert rel_l2(x, capped.to_tensor()) < 1e-10
    assert capped.rel_error < 1e-10
    found = tt_svd(x, tol=1e-10)  # a tolerance finds the ranks
    assert found.ranks == ranks
    assert rel_l2(x, found.to_tensor()) < 1e-10


@pytest.mark.parametrize("rank", [1, 2, 3, (2, 5, 1), (4, 1, 6)])
def test_reported_error_equals_true_error(rank: int | tuple[int, ...]) -> None:
    x = torch.randn(5, 6, 7, 4, dtype=F64, generator=torch.Generator().manual_seed(2))
    tt = tt_svd(x, rank)
    true = rel_l2(x, tt.to_tensor())
    assert true > 0.1
    assert tt.rel_error == pytest.approx(true, rel=1e-10)


def test_reported_error_float32_close() -> None:
    x = torch.randn(8, 9, 10, generator=torch.Generator().manual_seed(3))
    tt = tt_svd(x, 4)
    assert tt.cores[0].dtype == torch.float32
    assert tt.rel_error == pytest.approx(rel_l2(x, tt.to_tensor()), rel=1e-4)


@pytest.mark.parametrize("tol", [0.05, 0.2, 0.5])
def test_tol_is_met_and_tight(tol: float) -> None:
    x = torch.randn(6, 7, 8, 5, dtype=F64, generator=torch.Generator().manual_seed(4))
    tt = tt_svd(x, tol=tol)
    err = rel_l2(x, tt.to_tensor())
    assert err <= tol + 1e-12
    assert tt.rel_error == pytest.approx(err, rel=1e-10)
    # One less on any bond would break that bond's share of the budget.
    looser = tt_svd(x, tuple(r - 1 if r > 1 else 1 for r in tt.ranks[1:-1]))
    assert looser.rel_error > tol / math.sqrt(3) or looser.ranks == tt.ranks


def test_rank_cap_and_tol_together() -> None:
    x = torch.randn(6, 7, 8, dtype=F64, generator=torch.Generator().manual_seed(5))
    tt = tt_svd(x, 2, tol=1e-6)
    assert tt.ranks == (1, 2, 2, 1)


def test_half_precision_is_computed_in_float32() -> None:
    x = torch.randn(4, 6, 5).bfloat16()
    tt = tt_svd(x, 3)
    assert tt.cores[0].dtype == torch.float32


def test_zero_tensor() -> None:
    tt = tt_svd(torch.zeros(3, 4, 5, dtype=F64), tol=0.1)
    assert tt.ranks == (1, 1, 1, 1)
    assert tt.rel_error == 0.0
    assert torch.equal(tt.to_tensor(), torch.zeros(3, 4, 5, dtype=F64))


def test_tt_round_reduces_rank_within_tol() -> None:
    base = _random_tt((5, 6, 7, 5), (1, 3, 4, 3, 1), seed=6)
    noise = _random_tt((5, 6, 7, 5), (1, 2, 2, 2, 1), seed=7)
    # A TT sum has the ranks added: the noisy tensor needs rank 5/6/5 exactly.
    big = tt_svd(base.to_tensor() + 1e-3 * noise.to_tensor(), tol=1e-12)
    assert big.ranks[1:-1] == (5, 6, 5)
    for tol in (1e-1, 1e-2):
        small = tt_round(big, tol=tol)
        assert max(small.ranks) < max(big.ranks)
        err = rel_l2(big.to_tensor(), small.to_tensor())
        assert err <= tol + 1e-12
        assert small.rel_error == pytest.approx(err, rel=1e-8)
    assert tt_round(big, tol=1e-2).ranks == (1, 3, 4, 3, 1)
    capped = tt_round(big, 2)
    assert capped.ranks == (1, 2, 2, 2, 1)
    assert capped.rel_error == pytest.approx(rel_l2(big.to_tensor(), capped.to_tensor()), rel=1e-8)


def test_tt_round_of_redundant_tt_is_exact() -> None:
    tt = _random_tt((4, 5, 4), (1, 4, 4, 1), seed=8)  # both bonds are at their largest useful rank
    # Doubling bond 1 (halved copies of the first core, repeated second core) keeps the tensor.
    core0 = torch.cat([tt.cores[0], tt.cores[0]], dim=-1) * 0.5
    core1 = torch.cat([tt.cores[1], tt.cores[1]], dim=0)
    wide = TTTensor([core0, core1, tt.cores[2]])
    assert wide.ranks == (1, 8, 4, 1)
    rounded = tt_round(wide, tol=1e-12)
    assert rounded.ranks == (1, 4, 4, 1)
    assert rel_l2(tt.to_tensor(), rounded.to_tensor()) < 1e-12


def test_tt_matrix_round_trip() -> None:
    w = torch.randn(24, 30, dtype=F64, generator=torch.Generator().manual_seed(9))
    full = tt_matrix(w, (5, 6), (4, 6))
    assert full.shape == (24, 30)
    assert full.out_factors == (4, 6) and full.in_factors == (5, 6)
    assert rel_l2(w, full.to_matrix()) < 1e-13
    low = tt_matrix(w, (5, 6), (4, 6), rank=3)
    assert low.ranks == (1, 3, 1)
    assert low.rel_error == pytest.approx(rel_l2(w, low.to_matrix()), rel=1e-10)


def test_tt_matrix_known_structure_recovered() -> None:
    # A Kronecker product is a TT-matrix of rank 1.
    a, b, c = (torch.randn(s, dtype=F64) for s in ((3, 2), (4, 5), (2, 3)))
    w = torch.kron(torch.kron(a, b), c)
    m = tt_matrix(w, rank=1, in_factors=(2, 5, 3), out_factors=(3, 4, 2))
    assert m.ranks == (1, 1, 1, 1)
    assert rel_l2(w, m.to_matrix()) < 1e-12


def test_tt_matrix_auto_factors() -> None:
    m = tt_matrix(torch.randn(1536, 384), rank=2)
    assert m.out_factors == (8, 12, 16)
    assert m.in_factors == (6, 8, 8)
    m2 = tt_matrix(torch.randn(36, 40, dtype=F64), (5, 8))
    assert m2.out_factors == (6, 6)


def test_tt_matrix_factors_fast_is_the_cheapest_split() -> None:
    from holotensor.codecs.tensor_train import _ordered_splits
    from holotensor.codecs.tt_contract import sweep_cost

    def cost(ins: tuple[int, ...], outs: tuple[int, ...], rank: int) -> int:
        ranks = validate_tt_rank([m * n for m, n in zip(outs, ins, strict=True)], rank)
        return sweep_cost([(ranks[k], outs[k], ins[k], ranks[k + 1]) for k in range(len(ins))], 64)

    for out_size, in_size, d, rank in ((30, 24, 2, 3), (48, 40, 3, 2), (1536, 384, 2, 8)):
        ins, outs = tt_matrix_factors(out_size, in_size, d, rank, factorization="fast")
        assert math.prod(ins) == in_size and math.prod(outs) == out_size and len(ins) == len(outs) == d
        best = min(
            cost(i, o, rank) for i in _ordered_splits(in_size, d) for o in _ordered_splits(out_size, d)
        )
        assert cost(ins, outs, rank) == best
        assert best < cost(factorize(in_size, d), factorize(out_size, d), rank)
    assert tt_matrix_factors(1536, 384, 2, 8, factorization="fast") == ((192, 2), (2, 768))
    assert tt_matrix_factors(1536, 384, 3) == ((6, 8, 8), (8, 12, 16))  # balanced by default
    assert tt_matrix_factors(1536, 384, 2, 8, factorization="fast", out_factors=(32, 48))[1] == (32, 48)


def test_tt_matrix_factors_rejects_bad_requests() -> None:
    with pytest.raises(ValueError, match="factorization must be one of"):
        tt_matrix_factors(8, 8, 2, factorization="skewed")
    with pytest.raises(ValueError, match="prime"):
        tt_matrix_factors(13, 8, 2, factorization="fast")
    with pytest.raises(ValueError, match="no 3 factors"):
        tt_matrix_factors(8, 4, 3, factorization="fast")
    with pytest.raises(ValueError, match="batch"):
        tt_matrix_factors(8, 8, 2, factorization="fast", batch=0)
    with pytest.raises(ValueError, match=">= 1"):
        tt_matrix_factors(8, 8, 2, 0, factorization="fast")
    with pytest.raises(ValueError, match="multiply to"):
        tt_matrix_factors(8, 8, 2, factorization="fast", in_factors=(2, 2))


def test_tt_matrix_fast_factorization_round_trip() -> None:
    w = torch.randn(30, 24, dtype=F64, generator=torch.Generator().manual_seed(4))
    full = tt_matrix(w, order=2, factorization="fast")
    assert (full.in_factors, full.out_factors) == tt_matrix_factors(30, 24, 2, factorization="fast")
    assert rel_l2(w, full.to_matrix()) < 1e-13
    low = tt_matrix(w, rank=2, order=2, factorization="fast")
    assert low.rel_error == pytest.approx(rel_l2(w, low.to_matrix()), rel=1e-10)


def test_factorize() -> None:
    assert factorize(384, 3) == (6, 8, 8)
    assert factorize(64, 2) == (8, 8)
    assert factorize(7, 1) == (7,)
    assert math.prod(factorize(30522, 3, pad=True)) >= 30522
    assert factorize(13, 2, pad=True) == (2, 7)
    assert factorize(1021, 2, pad=True) == (31, 33)  # 1023 = 3 * 11 * 31


@pytest.mark.parametrize(("n", "d"), [(7, 2), (1009, 3), (2 * 1009, 2), (6, 3), (1, 2)])
def test_factorize_rejects_useless_sizes(n: int, d: int) -> None:
    with pytest.raises(ValueError, match=f"cannot split {n}"):
        factorize(n, d)


@pytest.mark.parametrize(("n", "d"), [(0, 2), (-3, 2), (12, 0), (True, 2)])
def test_factorize_rejects_bad_arguments(n: int, d: int) -> None:
    with pytest.raises(ValueError, match="positive int"):
        factorize(n, d)


def test_prime_weight_needs_explicit_factors() -> None:
    with pytest.raises(ValueError, match="prime"):
        tt_matrix(torch.randn(97, 64), rank=2)


def test_validate_tt_rank() -> None:
    assert validate_tt_rank((4, 5, 6), None) == (1, 4, 6, 1)
    assert validate_tt_rank((4, 5, 6), 5) == (1, 4, 5, 1)
    assert validate_tt_rank((4, 5, 6), (2, 3)) == (1, 2, 3, 1)
    assert validate_tt_rank((4, 5, 6), (1, 2, 3, 1)) == (1, 2, 3, 1)
    with pytest.raises(ValueError, match="boundary ranks"):
        validate_tt_rank((4, 5, 6), (2, 2, 3, 1))
    with pytest.raises(ValueError, match="needs 2 bond ranks"):
        validate_tt_rank((4, 5, 6), (2, 2, 3))
    with pytest.raises(ValueError, match=">= 1"):
        validate_tt_rank((4, 5, 6), 0)
    with pytest.raises(ValueError, match="bond rank 2"):
        validate_tt_rank((4, 5, 6), (2, 0))
    with pytest.raises(ValueError, match="rank must be"):
        validate_tt_rank((4, 5, 6), 2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"shape\[1\]"):
        validate_tt_rank((4, 0, 6), 2)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (torch.zeros(0, 3), "at least one"),
        (torch.tensor(3.0), "at least one"),
        (torch.ones(3, 4, dtype=torch.int64), "real floating"),
        (torch.ones(3, 4, dtype=torch.complex64), "real floating"),
        ([[1.0, 2.0]], "torch.Tensor"),
    ],
)
def test_tt_svd_rejects_bad_input(bad: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tt_svd(bad, 2)  # type: ignore[arg-type]


@pytest.mark.parametrize("tol", [-0.1, float("nan"), float("inf"), "0.1"])
def test_tt_svd_rejects_bad_tol(tol: object) -> None:
    with pytest.raises(ValueError, match="tol"):
        tt_svd(torch.randn(3, 4), 2, tol=tol)  # type: ignore[arg-type]


def test_tttensor_checks_cores() -> None:
    with pytest.raises(ValueError, match="core 0 has right rank 2 but core 1 has left rank 3"):
        TTTensor([torch.ones(1, 4, 2), torch.ones(3, 4, 1)])
    with pytest.raises(ValueError, match="core 0 must have left rank 1, got 2"):
        TTTensor([torch.ones(2, 4, 2), torch.ones(2, 4, 1)])
    with pytest.raises(ValueError, match="core 1 must have right rank 1, got 2"):
        TTTensor([torch.ones(1, 4, 2), torch.ones(2, 4, 2)])
    with pytest.raises(ValueError, match="core 1 must have 3 dims"):
        TTTensor([torch.ones(1, 4, 2), torch.ones(2, 4)])
    with pytest.raises(ValueError, match="at least one core"):
        TTTensor([])
    with pytest.raises(ValueError, match=r"core 1 is torch\.float64"):
        TTTensor([torch.ones(1, 4, 2), torch.ones(2, 4, 1, dtype=F64)])
    with pytest.raises(ValueError, match="core 0 is empty"):
        TTTensor([torch.ones(1, 0, 1)])
    with pytest.raises(ValueError, match="TT-matrix core 0 must have 4 dims"):
        TTMatrix([torch.ones(1, 4, 1)])


def test_tt_matrix_rejects_bad_factors() -> None:
    w = torch.randn(12, 8)
    with pytest.raises(ValueError, match="multiply to 9, not 8"):
        tt_matrix(w, (3, 3), (3, 4))
    with pytest.raises(ValueError, match="expected 2"):
        tt_matrix(w, (2, 4), (2, 2, 3))
    with pytest.raises(ValueError, match="2-d"):
        tt_matrix(torch.randn(2, 3, 4), (2, 2), (1, 2))

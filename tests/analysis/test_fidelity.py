"""embedding_fidelity, spearman and average_ranks on hand-made cases and against a numpy computation."""

import math

import numpy as np
import pytest
import torch

from holotensor.analysis.fidelity import average_ranks, embedding_fidelity, spearman


def _on_circle(positions: list[float], step_deg: float = 20.0) -> torch.Tensor:
    """Unit vectors in the plane; pairwise cosine falls as the angular distance grows (< 180 degrees)."""
    a = torch.tensor(positions, dtype=torch.float64) * math.radians(step_deg)
    return torch.stack([torch.cos(a), torch.sin(a)], dim=1)


def _np_average_ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks written out plainly, as the oracle."""
    ranks = np.empty(len(x))
    for i, v in enumerate(x):
        ranks[i] = (x < v).sum() + ((x == v).sum() + 1) / 2.0
    return ranks


def _np_fidelity(ref: np.ndarray, cand: np.ndarray) -> dict:
    ru = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    cu = cand / np.linalg.norm(cand, axis=1, keepdims=True)
    row_cos = (ru * cu).sum(axis=1)
    sr, sc = ru @ ru.T, cu @ cu.T
    iu = np.triu_indices(len(ref), k=1)
    rho = np.corrcoef(_np_average_ranks(sr[iu]), _np_average_ranks(sc[iu]))[0, 1]
    np.fill_diagonal(sr, -np.inf)
    np.fill_diagonal(sc, -np.inf)
    top1 = (sr.argmax(axis=1) == sc.argmax(axis=1)).mean()
    return {
        "mean_cosine": row_cos.mean(),
        "min_cosine": row_cos.min(),
        "spearman": rho,
        "top1_agreement": top1,
    }


def test_average_ranks_ties_share_the_mean_rank():
    assert average_ranks(torch.tensor([10.0, 30.0, 20.0, 30.0])).tolist() == [1.0, 3.5, 2.0, 3.5]
    assert average_ranks(torch.tensor([5.0, 5.0, 5.0])).tolist() == [2.0, 2.0, 2.0]
    assert average_ranks(torch.tensor([3.0, 1.0, 2.0])).tolist() == [3.0, 1.0, 2.0]


def test_average_ranks_matches_plain_oracle_on_many_ties():
    x = torch.randint(0, 7, (500,), generator=torch.Generator().manual_seed(1)).double()
    np.testing.assert_array_equal(average_ranks(x).numpy(), _np_average_ranks(x.numpy()))


def test_spearman_hand_values():
    assert spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([30.0, 20.0, 10.0])) == pytest.approx(-1.0)
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert spearman(x, x**2) == pytest.approx(1.0)  # any increasing map keeps the ranks
    # ranks [1, 2.5, 2.5, 4] vs [1, 2, 3, 4]: r = 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10)
    got = spearman(torch.tensor([1.0, 2.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert got == pytest.approx(3.0 / math.sqrt(10.0), abs=1e-12)


def test_spearman_constant_input_is_nan():
    assert math.isnan(spearman(torch.ones(5), torch.arange(5.0)))


def test_spearman_matches_scipy_when_installed():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 20, (300,), generator=g).double()  # many ties
    y = torch.randn(300, generator=g, dtype=torch.float64)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x.numpy(), y.numpy()).statistic, abs=1e-12)


def test_spearman_rejects_bad_shapes():
    with pytest.raises(ValueError):
        spearman(torch.ones(3), torch.ones(4))
    with pytest.raises(ValueError):
        spearman(torch.ones(2, 2), torch.ones(2, 2))
    with pytest.raises(ValueError):
        spearman(torch.ones(1), torch.ones(1))


def test_identical_embeddings_are_perfect():
    ref = torch.randn(20, 16, generator=torch.Generator().manual_seed(3))
    fid = embedding_fidelity(ref, ref.clone())
    assert fid["mean_cosine"] == pytest.approx(1.0, abs=1e-12)
    assert fid["min_cosine"] == pytest.approx(1.0, abs=1e-12)
    assert fid["spearman"] == pytest.approx(1.0, abs=1e-12)
    assert fid["top1_agreement"] == 1.0
    assert fid["n"] == 20


def test_scaling_rows_changes_nothing():
    ref = torch.randn(10, 8, generator=torch.Generator().manual_seed(4))
    scale = torch.linspace(0.1, 10.0, 10)[:, None]
    fid = embedding_fidelity(ref, ref * scale)
    assert fid["mean_cosine"] == pytest.approx(1.0, abs=1e-12)
    assert fid["spearman"] == pytest.approx(1.0, abs=1e-12)


def test_reversed_similarity_order_gives_minus_one():
    # Reference angular distances: d01 = 1, d12 = 2, d02 = 3; candidate: d01 = 3, d12 = 2, d02 = 1.
    ref, cand = _on_circle([0.0, 1.0, 3.0]), _on_circle([0.0, 3.0, 1.0])
    fid = embedding_fidelity(ref, cand)
    assert fid["spearman"] == pytest.approx(-1.0, abs=1e-12)
    # Row cosines by hand: row 0 unchanged, rows 1 and 2 each moved by 2 steps of 20 degrees.
    assert fid["min_cosine"] == pytest.approx(math.cos(math.radians(40.0)), abs=1e-12)
    assert fid["mean_cosine"] == pytest.approx((1.0 + 2.0 * math.cos(math.radians(40.0))) / 3.0, abs=1e-12)
    # Nearest neighbours: reference 0->1, 1->0, 2->1; candidate 0->2, 1->2, 2->0.
    assert fid["top1_agreement"] == 0.0


def test_opposite_candidate_has_cosine_minus_one_but_same_ranking():
    ref = torch.randn(6, 5, generator=torch.Generator().manual_seed(5))
    fid = embedding_fidelity(ref, -ref)
    assert fid["mean_cosine"] == pytest.approx(-1.0, abs=1e-12)
    assert fid["spearman"] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_numpy_computation(seed):
    g = torch.Generator().manual_seed(seed)
    ref = torch.randn(12, 6, generator=g, dtype=torch.float64)
    cand = ref + 0.7 * torch.randn(12, 6, generator=g, dtype=torch.float64)
    got = embedding_fidelity(ref, cand)
    want = _np_fidelity(ref.numpy(), cand.numpy())
    for key, value in want.items():
        assert got[key] == pytest.approx(float(value), abs=1e-12), key


def test_zero_rows_follow_the_cosine_convention():
    ref = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    cand = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    fid = embedding_fidelity(ref, cand)
    assert fid["min_cosine"] == 0.0  # only one of the pair is zero
    assert fid["mean_cosine"] == pytest.approx(0.75)  # (1 + 0 + 1 + 1) / 4


def test_lower_precision_candidate_is_accepted():
    ref = torch.randn(30, 64, generator=torch.Generator().manual_seed(6))
    fid = embedding_fidelity(ref, ref.to(torch.bfloat16))
    assert 0.999 < fid["mean_cosine"] <= 1.0


@pytest.mark.parametrize(
    ("ref", "cand"),
    [
        (torch.ones(4, 3), torch.ones(4, 2)),
        (torch.ones(5, 3), torch.ones(4, 3)),
        (torch.ones(4), torch.ones(4)),
        (torch.ones(2, 3), torch.ones(2, 3)),
        (torch.ones(4, 0), torch.ones(4, 0)),
        (torch.ones(2, 2, 2), torch.ones(2, 2, 2)),
    ],
)
def test_bad_shapes_raise_value_error(ref, cand):
    with pytest.raises(ValueError):
        embedding_fidelity(ref, cand)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_values_raise_value_error(bad):
    ref = torch.randn(4, 3)
    cand = ref.clone()
    cand[2, 1] = bad
    with pytest.raises(ValueError, match="candidate"):
        embedding_fidelity(ref, cand)


def test_non_float_input_raises_type_error():
    with pytest.raises(TypeError):
        embedding_fidelity(torch.ones(4, 3, dtype=torch.int64), torch.ones(4, 3))
    with pytest.raises(TypeError):
        embedding_fidelity(np.ones((4, 3)), torch.ones(4, 3))

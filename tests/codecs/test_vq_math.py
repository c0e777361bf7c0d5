"""vq_math: k-means, greedy and beam assignment, residual fits, code packing, reconstruction."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from holotensor.analysis.metrics import rel_l2
from holotensor.codecs import vq_math as vm


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sq_err(x: torch.Tensor, codes: torch.Tensor, cbs: torch.Tensor) -> torch.Tensor:
    approx = sum(cbs[m][codes[m]] for m in range(cbs.shape[0]))
    return (x - approx).square().sum(1)


def test_nearest_matches_brute_force_and_is_chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(301, 5, generator=_gen())
    c = torch.randn(17, 5, generator=_gen(1))
    brute = torch.cdist(x.double(), c.double()).square()
    monkeypatch.setattr(vm, "_DIST_BLOCK", 17 * 70)  # 70 rows per block: 5 blocks and a short tail
    idx, dist = vm.nearest(x, c)
    assert torch.equal(idx, brute.argmin(1))
    torch.testing.assert_close(dist.double(), brute.min(1).values, rtol=1e-4, atol=1e-4)


def test_weighted_nearest_ignores_zero_weight_coordinates() -> None:
    x = torch.tensor([[0.0, 100.0]])
    c = torch.tensor([[0.0, 0.0], [1.0, 100.0]])
    assert int(vm.nearest(x, c)[0]) == 1
    assert int(vm.nearest(x, c, torch.tensor([[1.0, 0.0]]))[0]) == 0


def test_kmeans_pp_picks_data_points_and_copies_when_short() -> None:
    x = torch.tensor([[0.0, 0.0], [5.0, 5.0], [0.0, 0.0]])
    c = vm.kmeans_pp_init(x, 4, generator=_gen())
    assert all(any(torch.equal(row, p) for p in x) for row in c)
    assert {tuple(r.tolist()) for r in c} == {(0.0, 0.0), (5.0, 5.0)}  # both distinct points, then copies


def test_lloyd_finds_separated_clusters() -> None:
    centers = torch.tensor([[-10.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(200, 2, generator=_gen(i)) for i, c in enumerate(centers)])
    cb = vm.lloyd(x, 3, 10, generator=_gen())
    got = sorted(map(tuple, cb.round().tolist()))
    assert got == sorted(map(tuple, centers.tolist()))


def test_lloyd_beats_its_own_init() -> None:
    x = torch.randn(2000, 4, generator=_gen())
    init = vm.kmeans_pp_init(x, 32, generator=_gen(3))
    tuned = vm.lloyd(x, 32, 15, generator=_gen(3))
    assert float(vm.nearest(x, tuned)[1].sum()) < 0.9 * float(vm.nearest(x, init)[1].sum())


def test_beam_search_is_optimal_on_a_tiny_problem_and_never_worse_than_greedy() -> None:
    x = torch.randn(64, 3, generator=_gen())
    cbs = torch.randn(3, 4, 3, generator=_gen(1))
    greedy = vm.assign_greedy(x, cbs)
    beam = vm.assign_beam(x, cbs, beam=64)  # wide enough to keep every path: exhaustive
    exhaustive = torch.tensor(list(itertools.product(range(4), repeat=3))).T  # (3, 64)
    all_err = torch.stack([_sq_err(x, exhaustive[:, j : j + 1].expand(3, 64), cbs) for j in range(64)])
    e_beam, e_greedy = _sq_err(x, beam, cbs), _sq_err(x, greedy, cbs)
    torch.testing.assert_close(e_beam, all_err.min(0).values, rtol=1e-5, atol=1e-5)
    assert bool((e_beam <= e_greedy + 1e-5).all())
    assert bool((e_beam < e_greedy - 1e-4).any())  # the search matters on this data
    assert torch.equal(vm.assign_beam(x, cbs, beam=1), greedy)


def test_beam_search_in_blocks_matches_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(50, 4, generator=_gen())
    cbs = torch.randn(2, 8, 4, generator=_gen(2))
    whole = vm.assign_beam(x, cbs, beam=3)
    monkeypatch.setattr(vm, "_DIST_BLOCK", 24 * 4)
    assert torch.equal(vm.assign_beam(x, cbs, beam=3), whole)


def test_residual_stages_improve_and_refinement_helps() -> None:
    x = torch.randn(3000, 4, generator=_gen())
    cbs, codes = vm.fit(x, stages=3, bits=4, iters=8, generator=_gen())
    errs = [float(_sq_err(x, codes[:m], cbs[:m]).sum()) for m in (1, 2, 3)]
    assert errs[0] > errs[1] > errs[2]
    refined = vm.refine_codebooks(x, codes, cbs, sweeps=2)
    assert float(_sq_err(x, codes, refined).sum()) < errs[2]


@pytest.mark.parametrize("bits", [1, 3, 4, 7, 8, 9, 12, 16])
def test_pack_codes_round_trip(bits: int) -> None:
    for n in (0, 1, 7, 8, 9, 1001):
        codes = torch.randint(0, 1 << bits, (n,), generator=_gen(n))
        packed = vm.pack_codes(codes, bits)
        assert packed.dtype == torch.uint8 and packed.numel() == vm.packed_codes_size(n, bits)
        assert torch.equal(vm.unpack_codes(packed, bits, n), codes)


def test_pack_codes_layout() -> None:
    assert vm.pack_codes(torch.tensor([1, 2, 3]), 4).tolist() == [0x21, 0x03]
    # 12 bits: low bytes first, then the high nibbles packed tightly
    assert vm.pack_codes(torch.tensor([0xABC, 0x123]), 12).tolist() == [0xBC, 0x23, 0x1A]


def test_pack_codes_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="must lie in"):
        vm.pack_codes(torch.tensor([16]), 4)
    with pytest.raises(ValueError, match="must lie in"):
        vm.pack_codes(torch.tensor([-1]), 4)
    with pytest.raises(ValueError, match="bits"):
        vm.pack_codes(torch.tensor([0]), 17)
    with pytest.raises(ValueError, match="need"):
        vm.unpack_codes(torch.zeros(3, dtype=torch.uint8), 12, 3)


def test_reconstruct_pads_scales_and_takes_prefixes() -> None:
    cbs = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 40.0]]])
    codes = torch.tensor([[[1, 0]], [[0, 1]]])  # (M=2, N=1, G=2)
    assert vm.reconstruct(codes, cbs, None, (1, 3)).tolist() == [[13.0, 24.0, 31.0]]
    assert vm.reconstruct(codes, cbs, None, (1, 3), stages=1).tolist() == [[3.0, 4.0, 1.0]]
    assert vm.reconstruct(codes, cbs, torch.tensor([2.0]), (3,)).tolist() == [26.0, 48.0, 62.0]
    assert vm.reconstruct(codes, cbs, None, (1, 3), stages=0).tolist() == [[0.0, 0.0, 0.0]]


def test_quantize_quality_and_determinism() -> None:
    w = torch.randn(32, 256, generator=_gen())
    one = vm.quantize(w, dim=4, bits=8, stages=1, iters=6)
    two = vm.quantize(w, dim=4, bits=8, stages=2, iters=6)
    assert rel_l2(w, two.dequantize()) < 0.6 * rel_l2(w, one.dequantize())
    assert abs(rel_l2(w, two.dequantize(stages=1)) - rel_l2(w, one.dequantize())) < 0.02
    assert rel_l2(w, one.dequantize()) < 0.45  # 2 bits/weight on Gaussian data; RTN int2 is ~0.6
    again = vm.quantize(w, dim=4, bits=8, stages=1, iters=6)
    assert torch.equal(again.codes, one.codes) and torch.equal(again.codebooks, one.codebooks)
    assert (
        one.codebooks.dtype == torch.float16 and one.scales is not None and one.scales.dtype == torch.float16
    )


def test_quantize_codes_are_nearest_to_the_stored_fp16_codebook() -> None:
    w = torch.randn(16, 40, generator=_gen())
    ct = vm.quantize(w, dim=8, bits=5, stages=1, scale=True, iters=3)
    x = (w / ct.scales.float().unsqueeze(1)).reshape(-1, 8)
    assert torch.equal(ct.codes.reshape(-1), vm.nearest(x, ct.codebooks[0].float())[0])


def test_channel_scales_equalize_rows() -> None:
    w = torch.randn(8, 64, generator=_gen()) * torch.logspace(-3, 3, 8).unsqueeze(1)
    ct = vm.quantize(w, dim=4, bits=6, iters=5)
    per_row = [rel_l2(w[r], ct.dequantize()[r]) for r in range(8)]
    assert max(per_row) < 0.5  # without scales the small rows would be lost entirely
    unscaled = vm.quantize(w, dim=4, bits=6, iters=5, scale=False)
    assert unscaled.scales is None and rel_l2(w[0], unscaled.dequantize()[0]) > 0.9


def test_zero_rows_and_padding() -> None:
    w = torch.zeros(3, 10)
    w[1] = torch.arange(10.0)
    ct = vm.quantize(w, dim=4, bits=4, iters=5)  # 10 = 4 + 4 + 2: padded last group
    out = ct.dequantize()
    assert out.shape == (3, 10)
    assert torch.equal(out[0], torch.zeros(10)) and torch.equal(out[2], torch.zeros(10))
    assert rel_l2(w, out) < 0.05  # 9 vectors, up to 16 entries: nearly exact


def test_importance_weights_the_fit() -> None:
    w = torch.randn(32, 64, generator=_gen())
    imp = torch.ones(64)
    imp[:8] = 1000.0
    plain = vm.quantize(w, dim=8, bits=3, iters=8)
    weighted = vm.quantize(w, dim=8, bits=3, iters=8, importance=imp)
    assert rel_l2(w[:, :8], weighted.dequantize()[:, :8]) < rel_l2(w[:, :8], plain.dequantize()[:, :8])


def test_small_tensors_and_scalars() -> None:
    ct = vm.quantize(torch.tensor(3.5), dim=4, bits=8)
    assert ct.codebooks.shape == (1, 1, 4)  # one vector: one entry
    assert ct.dequantize().shape == () and abs(float(ct.dequantize()) - 3.5) < 1e-2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dim": 0, "bits": 4}, "dim"),
        ({"dim": 65, "bits": 4}, "dim"),
        ({"dim": 4, "bits": 0}, "bits"),
        ({"dim": 4, "bits": 17}, "bits"),
        ({"dim": 4, "bits": 4, "stages": 0}, "stages"),
        ({"dim": 4, "bits": 4, "beam": 0}, "beam"),
        ({"dim": 4, "bits": 4, "importance": torch.ones(3)}, "importance"),
        ({"dim": 4, "bits": 4, "importance": -torch.ones(8)}, "importance"),
    ],
)
def test_quantize_rejects_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        vm.quantize(torch.randn(4, 8), **kwargs)


@pytest.mark.parametrize(
    "w",
    [
        torch.empty(0, 8),
        torch.tensor([[1.0, float("nan")]]),
        torch.tensor([float("inf")]),
        torch.ones(2, 2).int(),
    ],
)
def test_quantize_rejects_bad_tensors(w: torch.Tensor) -> None:
    with pytest.raises(ValueError):
        vm.quantize(w, dim=2, bits=2)


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 6),
    cols=st.integers(1, 20),
    dim=st.integers(1, 8),
    bits=st.integers(1, 5),
    stages=st.integers(1, 3),
    beam=st.integers(1, 3),
)
def test_quantize_any_shape(rows: int, cols: int, dim: int, bits: int, stages: int, beam: int) -> None:
    w = torch.randn(rows, cols, generator=_gen(rows * 100 + cols))
    ct = vm.quantize(w, dim=dim, bits=bits, stages=stages, beam=beam, iters=2)
    assert ct.codes.shape == (stages, rows, -(-cols // dim))
    assert int(ct.codes.max()) < ct.codebooks.shape[1] <= 1 << bits
    out = ct.dequantize()
    assert out.shape == w.shape and bool(torch.isfinite(out).all())

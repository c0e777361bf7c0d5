"""GPTVQ codes and output-error codebook fitting: exactness on small cases, invariances, bad input."""

from __future__ import annotations

import itertools

import pytest
import torch

from holotensor.codecs import vq_math as vm
from holotensor.codecs.calibration import output_error
from holotensor.codecs.vq_calibration import fit_codebooks, gptvq_codes, gptvq_quantize, param_groups


def _inputs(n: int = 800, k: int = 48, seed: int = 0) -> torch.Tensor:
    """Correlated inputs with a few loud features, as in transformer activations."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(k, k, generator=g) / k**0.5 + torch.eye(k)
    return (torch.randn(n, k, generator=g) @ mix) * torch.where(torch.arange(k) < 3, 6.0, 1.0)


def _weight(rows: int = 24, k: int = 48, seed: int = 1) -> torch.Tensor:
    return torch.randn(rows, k, generator=torch.Generator().manual_seed(seed))


def test_error_feedback_lowers_the_output_error_of_the_same_codebook() -> None:
    x, w = _inputs(), _weight()
    h = x.T @ x
    ct = vm.quantize(w, dim=4, bits=5, iters=5)
    fed = gptvq_codes(w, h, ct)
    assert torch.equal(fed.codebooks, ct.codebooks) and fed.scales is ct.scales
    assert output_error(w, fed.dequantize(), h) < 0.85 * output_error(w, ct.dequantize(), h)


def test_one_group_per_row_picks_the_codeword_of_least_output_error() -> None:
    # With d = K there is nothing to feed forward: the metric is the damped Hessian itself.
    k = 6
    x, w = _inputs(300, k, seed=2), _weight(10, k, seed=3)
    h = x.T @ x
    ct = vm.quantize(w, dim=k, bits=3, scale=False, iters=3)
    damp = 1e-6
    got = gptvq_codes(w, h, ct, damp=damp).codes[0, :, 0]
    hd = h.double() + damp * h.diagonal().mean() * torch.eye(k, dtype=torch.float64)
    diff = w.double()[:, None, :] - ct.codebooks[0].double()[None]  # (rows, entries, k)
    cost = torch.einsum("rek,kl,rel->re", diff, hd, diff)
    assert torch.equal(got, cost.argmin(dim=1))


def test_an_isotropic_hessian_gives_plain_nearest_codes() -> None:
    w = _weight(16, 32)
    ct = vm.quantize(w, dim=4, bits=4, stages=2, iters=3)
    got = gptvq_codes(w, 5.0 * torch.eye(32), ct)
    assert torch.equal(got.codes, ct.codes)


@pytest.mark.parametrize("act_order", [False, True])
def test_lazy_block_updates_do_not_change_the_codes(act_order: bool) -> None:
    x, w = _inputs(k=70), _weight(k=70)  # 70 = 17 groups of 4 and a padded group of 2
    h = x.T @ x
    ct = vm.quantize(w, dim=4, bits=5, iters=3)
    runs = [gptvq_codes(w, h, ct, act_order=act_order, block_size=b).codes for b in (1, 8, 30, 1000)]
    assert all(torch.equal(runs[0], r) for r in runs[1:])
    assert runs[0].shape == (1, 24, 18)


def test_dead_inputs_and_beam_over_stages() -> None:
    x = _inputs(k=32)
    x[:, 5] = 0.0  # an input never seen
    w, h = _weight(k=32), x.T @ x
    ct = vm.quantize(w, dim=4, bits=4, stages=2, iters=3)
    greedy = gptvq_codes(w, h, ct)
    beam = gptvq_codes(w, h, ct, beam=4)
    assert torch.isfinite(beam.dequantize()).all()
    assert output_error(w, beam.dequantize(), h) <= output_error(w, greedy.dequantize(), h) * 1.05


def test_fit_codebooks_lowers_the_loss_and_restores_the_tensors() -> None:
    x, w = _inputs(), _weight()
    h = x.T @ x
    ct = gptvq_codes(w, h, vm.quantize(w, dim=4, bits=5, iters=3))
    cbs, scales = ct.codebooks.float().clone(), ct.scales.float().clone()
    before = output_error(w, vm.reconstruct(ct.codes, cbs, scales, ct.shape), h)
    losses = fit_codebooks(cbs, scales, ct.codes, w, h, steps=30, lr=1e-2)
    assert len(losses) == 31 and losses[0] == pytest.approx(before, rel=1e-4)
    assert losses[-1] < 0.9 * losses[0]
    assert not cbs.requires_grad and cbs.grad is None and not scales.requires_grad
    groups = param_groups(cbs, scales, 0.1)
    assert groups[1]["lr"] == pytest.approx(0.1 * float(scales.abs().mean()))


def test_gptvq_quantize_beats_weighted_kmeans_on_the_output() -> None:
    x, w = _inputs(), _weight()
    h = x.T @ x
    plain = vm.quantize(w, dim=4, bits=5, iters=5, importance=h.diagonal())
    cal = gptvq_quantize(w, h, dim=4, bits=5, iters=5, steps=20)
    assert cal.codebooks.dtype == torch.float16 and cal.scales.dtype == torch.float16
    assert output_error(w, cal.dequantize(), h) < 0.8 * output_error(w, plain.dequantize(), h)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"damp": 0.0}, "damp"),
        ({"damp": 2.0}, "damp"),
        ({"beam": 0}, "beam"),
        ({"block_size": 0}, "block_size"),
        ({"hessian": torch.eye(47)}, "48x48"),
        ({"hessian": torch.full((48, 48), float("nan"))}, "NaN"),
        ({"hessian": -torch.eye(48)}, "negative diagonal"),
        ({"w": _weight(24, 44)}, "shape"),
        ({"w": torch.full((24, 48), float("inf"))}, "NaN or Inf"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict, message: str) -> None:
    w = kwargs.pop("w", _weight())
    h = kwargs.pop("hessian", torch.eye(48))
    ct = vm.quantize(_weight(), dim=4, bits=3, iters=1)
    with pytest.raises(ValueError, match=message):
        gptvq_codes(w, h, ct, **kwargs)


def test_bad_quantize_and_fit_arguments() -> None:
    w = _weight()
    with pytest.raises(ValueError, match="48x48"):
        gptvq_quantize(w, torch.eye(40), dim=4, bits=4)
    with pytest.raises(ValueError, match="at least one dimension"):
        gptvq_quantize(torch.tensor(1.0), torch.eye(1), dim=1, bits=1)
    ct = vm.quantize(w, dim=4, bits=3, iters=1)
    for steps in (-1, 1.5):
        with pytest.raises(ValueError, match="steps"):
            fit_codebooks(ct.codebooks.float(), None, ct.codes, w, torch.eye(48), steps=steps)


def test_codes_stay_in_the_stored_layout_under_act_order() -> None:
    # Loud inputs at the end make act order code the last groups first; decoding stays row-major.
    k = 16
    x = torch.randn(400, k) * torch.linspace(0.1, 5.0, k)
    w = _weight(8, k)
    ct = vm.quantize(w, dim=4, bits=4, iters=3)
    got = gptvq_codes(w, x.T @ x, ct, act_order=True)
    for r, g in itertools.product(range(8), range(4)):
        entry = got.codebooks[0][got.codes[0, r, g]].float() * got.scales[r].float()
        assert torch.allclose(got.dequantize()[r, 4 * g : 4 * g + 4], entry)

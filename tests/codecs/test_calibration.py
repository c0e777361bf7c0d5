"""Calibrated blockquant: every method beats round-to-nearest on its own objective, stores as
plain blockquant, and rejects bad input with a clear ValueError."""

import pytest
import torch

from holotensor.codecs import calibration as cal
from holotensor.codecs import quant_math as qm
from holotensor.codecs.base import TensorSpec
from holotensor.codecs.blockquant import BlockQuantConfig
from holotensor.dtypes import from_torch

SETTINGS = [(4, 64, False), (3, 64, True), (2, None, False)]


def _layer(rows: int = 48, k: int = 192, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A weight and the Hessian of correlated, unevenly scaled inputs (as real activations are)."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(k, k, generator=g) / k**0.5
    x = (torch.randn(1024, k, generator=g) @ mix) * torch.linspace(0.2, 3.0, k)
    w = torch.randn(rows, k, generator=g) * 0.05
    return w, x.T @ x / x.shape[0]


def _rtn(w: torch.Tensor, bits: int, gs: int | None, sym: bool, search: str = "minmax") -> torch.Tensor:
    c, s, z = qm.quantize(w, bits, gs, sym, scale_search=search)
    return qm.dequantize(c, s, z, bits=bits, group_size=gs)


def _sq(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).square().sum())


@pytest.mark.parametrize(("bits", "gs", "sym"), SETTINGS)
def test_hqq_never_worse_than_mse_search_and_better_than_rtn(bits, gs, sym):
    w, _ = _layer()
    qt = cal.hqq_quantize(w, bits, gs, sym)
    assert (qt.bits, qt.group_size, qt.symmetric, qt.shape) == (bits, gs, sym, tuple(w.shape))
    err = _sq(qt.dequantize(), w)
    assert err <= _sq(_rtn(w, bits, gs, sym, "mse"), w) * (1 + 1e-6)
    assert err < _sq(_rtn(w, bits, gs, sym), w)


def test_hqq_groups_never_worse_per_group():
    w, _ = _layer(seed=3)
    approx = cal.hqq_quantize(w, 3, 32, False).dequantize()
    mse = _rtn(w, 3, 32, False, "mse")
    per_group = lambda a: qm.group_rows((a - w).square(), 32).sum(-1)  # noqa: E731
    assert bool((per_group(approx) <= per_group(mse) * (1 + 1e-5) + 1e-12).all())


@pytest.mark.parametrize(("bits", "gs", "sym"), SETTINGS)
def test_activation_aware_methods_lower_the_output_error(bits, gs, sym):
    w, h = _layer()
    rtn = cal.output_error(w, _rtn(w, bits, gs, sym), h)
    clip = cal.output_error(w, cal.activation_clip_quantize(w, h, bits, gs, sym).dequantize(), h)
    gptq = cal.output_error(w, cal.gptq_quantize(w, h, bits, gs, sym).dequantize(), h)
    plain = cal.output_error(w, cal.gptq_quantize(w, h, bits, gs, sym, act_order=False).dequantize(), h)
    assert clip < rtn
    assert gptq < 0.7 * clip
    assert plain < clip


def test_gptq_is_exact_when_the_grid_holds_the_weight():
    """Weights already on the quantization grid produce no error to feed forward: codes reproduce them."""
    w, h = _layer()
    on_grid = _rtn(w, 4, 64, False)
    qt = cal.gptq_quantize(on_grid, h, 4, 64, False)
    assert torch.allclose(qt.dequantize(), on_grid, atol=1e-6)


def test_gptq_handles_dead_inputs_and_a_singular_hessian():
    w, h = _layer(k=64)
    h[:, :5] = 0
    h[:5, :] = 0
    qt = cal.gptq_quantize(w[:, :64], h, 4, 32)
    assert torch.isfinite(qt.dequantize()).all()
    ones = torch.ones(8, 64)
    single = torch.outer(torch.ones(64), torch.ones(64))  # rank 1
    assert torch.isfinite(cal.gptq_quantize(ones, single, 3, 32).dequantize()).all()


@pytest.mark.parametrize("method", ["hqq", "awq", "gptq"])
def test_results_store_and_decode_as_blockquant(method):
    w, h = _layer(rows=16, k=128)
    cfg = BlockQuantConfig(bits=3, group_size=64, symmetric=False)
    qt = {
        "hqq": lambda: cal.hqq_quantize(w, 3, 64, False),
        "awq": lambda: cal.activation_clip_quantize(w, h, 3, 64, False),
        "gptq": lambda: cal.gptq_quantize(w, h, 3, 64, False),
    }[method]()
    enc = cfg.encode_quantized(qt)
    payloads = [memoryview(f.data) for f in enc.fragments]
    out = cfg.decode(payloads, enc.params, TensorSpec(from_torch(torch.float32), tuple(w.shape)))
    assert torch.equal(out, qt.dequantize())


def test_bf16_scales_and_per_channel():
    w, h = _layer(rows=8, k=96)
    qt = cal.gptq_quantize(w, h, 4, None, True, "bf16")
    assert qt.scales.dtype == torch.bfloat16 and qt.scales.shape == (8, 1) and qt.zeros is None


def test_hessian_accumulator():
    acc = cal.HessianAccumulator(4)
    x = torch.randn(3, 5, 4)
    acc.update(x[0])
    acc.update(x[1:])
    flat = x.reshape(-1, 4).double()
    assert acc.count == 15
    assert torch.allclose(acc.hessian(), flat.T @ flat / 15)
    with pytest.raises(ValueError, match="features"):
        acc.update(torch.randn(2, 3))
    with pytest.raises(ValueError, match="NaN"):
        acc.update(torch.full((2, 4), float("nan")))
    with pytest.raises(ValueError, match="no calibration inputs"):
        cal.HessianAccumulator(4).hessian()


@pytest.mark.parametrize("bits", [1, 9, 2.5, True])
def test_bits_out_of_range(bits):
    w, h = _layer(rows=4, k=64)
    for call in (
        lambda: cal.hqq_quantize(w, bits, 32),
        lambda: cal.gptq_quantize(w, h, bits, 32),
        lambda: cal.activation_clip_quantize(w, h, bits, 32),
    ):
        with pytest.raises(ValueError, match="bits must be"):
            call()


def test_bad_weights_and_hessians():
    w, h = _layer(rows=4, k=64)
    nan_w = w.clone()
    nan_w[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        cal.hqq_quantize(nan_w, 4, 32)
    with pytest.raises(ValueError, match="NaN"):
        cal.gptq_quantize(nan_w, h, 4, 32)
    with pytest.raises(ValueError, match="64x64"):
        cal.gptq_quantize(w, h[:32, :32], 4, 32)
    bad_h = h.clone()
    bad_h[0, 0] = float("inf")
    with pytest.raises(ValueError, match="Hessian holds NaN"):
        cal.activation_clip_quantize(w, bad_h, 4, 32)
    with pytest.raises(ValueError, match="negative diagonal"):
        cal.gptq_quantize(w, -h, 4, 32)
    with pytest.raises(ValueError, match="2-D"):
        cal.hqq_quantize(torch.randn(2, 3, 64), 4, 32)
    with pytest.raises(ValueError, match="floating"):
        cal.hqq_quantize(torch.ones(4, 64, dtype=torch.int32), 4, 32)
    with pytest.raises(ValueError, match="damp"):
        cal.gptq_quantize(w, h, 4, 32, damp=0.0)
    with pytest.raises(ValueError, match="group_size"):
        cal.hqq_quantize(w, 4, 16)

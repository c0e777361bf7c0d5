"""LearnedQuantizer: LSQ/LSQ+ gradients, initialisation, freeze/export, compile, autocast."""

from __future__ import annotations

import math

import pytest
import torch

from holotensor.codecs import quant_math as qm
from holotensor.codecs.base import TensorSpec
from holotensor.dtypes import from_torch
from holotensor.nn.learned_quantizer import LearnedQuantizer


def _lsq_paper(v, s, beta, g, lo, hi):
    """The LSQ paper's pseudo-code (grad_scale + round_pass), with LSQ+'s offset."""

    def grad_scale(t):
        return (t - t * g).detach() + t * g

    def round_pass(t):
        return (t.round() - t).detach() + t

    s = grad_scale(s)
    u = v / s if beta is None else (v - grad_scale(beta)) / s
    out = round_pass(u.clamp(lo, hi)) * s
    return out if beta is None else out + grad_scale(beta)


def test_lsq_gradient_hand_computed_tiny_example():
    x = torch.tensor([[-1.3, -0.2, 0.26, 0.9, 3.0]], requires_grad=True)
    fq = LearnedQuantizer(3, shape=(1, 5), group_size=None, symmetric=True, init="minmax")
    fq.initialize(x)
    with torch.no_grad():
        fq.step.fill_(0.5)  # exactly representable in fp16
    c = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    y = fq(x)
    # codes in [-4, 3]; u = x/s = [-2.6, -0.4, 0.52, 1.8, 6.0] -> [-3, 0, 1, 2, 3(clipped)]
    assert y.tolist() == [[-1.5, 0.0, 0.5, 1.0, 1.5]]
    (y * c).sum().backward()
    # d y / d s: round(u) - u inside, Qp above: [-0.4, 0.4, 0.48, 0.2, 3]; g = 1/sqrt(N * Qp), N = 5
    g = 1 / math.sqrt(5 * 3)
    expected = g * (1 * -0.4 + 2 * 0.4 + 3 * 0.48 + 4 * 0.2 + 5 * 3)
    assert fq.step.grad.item() == pytest.approx(expected, rel=1e-5)
    assert x.grad.tolist() == [[1.0, 2.0, 3.0, 4.0, 0.0]]


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("group_size", [32, None])
def test_gradients_match_paper_pseudocode(symmetric, group_size):
    torch.manual_seed(0)
    w = torch.randn(4, 64)
    fq = LearnedQuantizer.from_weight(w, bits=3, group_size=group_size, symmetric=symmetric)
    with torch.no_grad():  # steps/offsets exactly representable in fp16, off the init boundary
        fq.step.copy_((fq.step * 0.8).half().float())
        if fq.offset is not None:
            fq.offset.copy_((fq.offset * 0.9).half().float())
    upstream = torch.randn(4, 64)
    x1 = w.clone().requires_grad_()
    (fq(x1) * upstream).sum().backward()

    gs = group_size or 64
    lo, hi = qm.code_range(3, symmetric)
    s = fq.step.detach().repeat_interleave(gs, dim=1).clone().requires_grad_()
    beta = None if symmetric else fq.offset.detach().repeat_interleave(gs, dim=1).clone().requires_grad_()
    x2 = w.clone().requires_grad_()
    ref = _lsq_paper(x2, s, beta, 1 / math.sqrt(gs * hi), lo, hi)
    (ref * upstream).sum().backward()
    assert torch.allclose(fq(w), ref, atol=1e-6)
    assert torch.allclose(x1.grad, x2.grad)
    per_group = s.grad.reshape(4, -1, gs).sum(-1)
    assert torch.allclose(fq.step.grad, per_group, atol=1e-5)
    if beta is not None:
        assert torch.allclose(fq.offset.grad, beta.grad.reshape(4, -1, gs).sum(-1), atol=1e-5)
        assert fq.offset.grad.abs().sum() > 0


def test_padding_gets_no_gradient():
    torch.manual_seed(1)
    w = torch.randn(2, 40).requires_grad_()  # groups of 32: second group holds 8 values
    fq = LearnedQuantizer.from_weight(w.detach(), bits=4, group_size=32, symmetric=True)
    fq(w).sum().backward()
    lo, hi = qm.code_range(4, True)
    s = fq.step.detach()[:, 1:2]
    u = w.detach()[:, 32:] / s
    inside = (u > lo) & (u < hi)
    expected = torch.where(inside, u.round() - u, torch.where(u <= lo, float(lo), float(hi))).sum(1)
    assert torch.allclose(fq.step.grad[:, 1], expected / math.sqrt(32 * hi), atol=1e-5)
    assert w.grad.shape == w.shape


@pytest.mark.parametrize("init", ["minmax", "mse", "lsq"])
def test_initialisation_from_data(init):
    torch.manual_seed(2)
    w = torch.randn(8, 128)
    fq = LearnedQuantizer.from_weight(w, bits=4, group_size=64, init=init)
    assert fq.step.shape == (8, 2)
    if init == "lsq":
        expected = 2 * w.reshape(8, 2, 64).abs().mean(-1) / math.sqrt(7)
        assert torch.allclose(fq.step, expected.half().float())
    elif init == "minmax":
        _, s, _ = qm.quantize(w, 4, 64, True)
        assert torch.equal(fq.step, s.float())
    err_mse = (LearnedQuantizer.from_weight(w, bits=4, group_size=64, init="mse")(w) - w).square().sum()
    assert (fq(w) - w).square().sum() >= err_mse - 1e-6


@pytest.mark.parametrize("symmetric", [True, False])
def test_freeze_reproduces_forward_and_exports_through_codec(symmetric):
    torch.manual_seed(3)
    w = torch.randn(12, 100)
    fq = LearnedQuantizer.from_weight(w, bits=3, group_size=32, symmetric=symmetric, scale_dtype="bf16")
    with torch.no_grad():
        fq.step.mul_(1.0123)  # learned steps need not be representable: both paths round them
    frozen = fq.freeze(w)
    assert frozen.bits == 3 and frozen.group_size == 32 and frozen.symmetric == symmetric
    assert frozen.scales.dtype == torch.bfloat16
    assert torch.equal(frozen.dequantize(), fq(w))
    cfg = fq.codec_config()
    enc = cfg.encode_quantized(frozen)
    spec = TensorSpec(from_torch(torch.float32), tuple(w.shape))
    out = cfg.decode([memoryview(f.data) for f in enc.fragments], enc.params, spec)
    assert torch.equal(out, fq(w))


def test_activation_mode_initialises_on_first_batch_unsigned():
    torch.manual_seed(4)
    aq = LearnedQuantizer(4, unsigned=True, init="minmax")
    assert aq.step.shape == ()
    x = torch.relu(torch.randn(16, 32))
    y = aq(x)
    assert bool(aq.initialized)
    assert aq.step.item() == pytest.approx(x.max().item() / 15, rel=1e-3)
    codes = y.detach() / aq.step.detach().half().float()
    assert (codes >= 0).all() and (codes <= 15).all() and torch.allclose(codes, codes.round(), atol=1e-4)
    step = aq.step.detach().clone()
    aq(10 * x)
    assert torch.equal(aq.step.detach(), step)  # not re-initialised
    xg = x.clone().requires_grad_()
    aq(xg).sum().backward()
    assert aq.step.grad is not None and aq.step.grad.ndim == 0


def test_activation_mode_signed_and_asymmetric():
    torch.manual_seed(5)
    x = torch.randn(4, 50) + 3.0
    for kwargs in ({"symmetric": True}, {"symmetric": False}):
        aq = LearnedQuantizer(8, **kwargs)
        assert (aq(x) - x).abs().max() < 0.05
    with pytest.raises(ValueError, match="weight quantizers"):
        LearnedQuantizer(8).freeze(x)


def test_state_dict_round_trip():
    torch.manual_seed(6)
    w = torch.randn(6, 64)
    fq = LearnedQuantizer.from_weight(w, bits=4, group_size=32, symmetric=False)
    with torch.no_grad():
        fq.step.mul_(0.9)
    state = fq.state_dict()
    assert set(state) == {"step", "offset", "initialized"}
    fresh = LearnedQuantizer(4, shape=(6, 64), group_size=32, symmetric=False)
    fresh.load_state_dict(state)
    assert torch.equal(fresh(w), fq(w))  # not re-initialised from w on the first call
    assert torch.equal(fresh.step, fq.step)


def test_autocast_bf16_cpu():
    torch.manual_seed(7)
    w = torch.randn(8, 64, requires_grad=True)
    x = torch.randn(3, 64)
    fq = LearnedQuantizer.from_weight(w.detach(), bits=4, group_size=32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = x @ fq(w).t()
        aq = LearnedQuantizer(8)
        z = aq(y)
    assert y.dtype == torch.bfloat16 and z.dtype == torch.bfloat16
    z.float().sum().backward()
    assert w.grad is not None and fq.step.grad is not None and aq.step.grad is not None
    assert torch.allclose(y.float(), x @ fq(w).detach().t(), atol=0.1, rtol=0.02)


@pytest.mark.slow
def test_torch_compile_aot_eager_matches_eager():
    torch.manual_seed(8)
    w = torch.randn(16, 96)
    fq = LearnedQuantizer.from_weight(w, bits=4, group_size=32, symmetric=False)
    compiled = torch.compile(fq, backend="aot_eager", fullgraph=True)
    x1 = w.clone().requires_grad_()
    x2 = w.clone().requires_grad_()
    y1 = compiled(x1)
    (y1 * torch.arange(96.0)).sum().backward()
    g_step, g_off = fq.step.grad.clone(), fq.offset.grad.clone()
    fq.zero_grad()
    y2 = fq(x2)
    (y2 * torch.arange(96.0)).sum().backward()
    assert torch.equal(y1, y2)
    assert torch.allclose(x1.grad, x2.grad)
    assert torch.allclose(g_step, fq.step.grad, atol=1e-6) and torch.allclose(
        g_off, fq.offset.grad, atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bits": 1},
        {"bits": 9},
        {"shape": (4, 64), "group_size": 7},
        {"init": "kmeans"},
        {"unsigned": True, "shape": (4, 64)},
        {"shape": (4, 64), "symmetric": False, "init": "lsq"},
        {"scale_dtype": "fp32"},
    ],
)
def test_bad_settings(kwargs):
    with pytest.raises(ValueError):
        LearnedQuantizer(**({"bits": 4} | kwargs))


def test_shape_and_nan_checks():
    fq = LearnedQuantizer(4, shape=(4, 64), group_size=32)
    with pytest.raises(ValueError, match="shape"):
        fq.initialize(torch.randn(4, 32))
    bad = torch.randn(4, 64)
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        fq.initialize(bad)

"""QuantLinear: wrapping a Linear, QAT on a tiny regression, freeze/export, repr."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from holotensor.analysis.metrics import rel_l2
from holotensor.codecs.blockquant import BlockQuantConfig
from holotensor.nn.quantized_linear import QuantLinear


def test_from_linear_shares_parameters_and_quantizes_weight():
    torch.manual_seed(0)
    lin = nn.Linear(256, 32)
    q = QuantLinear.from_linear(lin, BlockQuantConfig(bits=4, group_size=128))
    assert q.weight is lin.weight and q.bias is lin.bias
    assert q.weight_quantizer.step.shape == (32, 2)
    x = torch.randn(5, 256)
    ref = lin(x)
    out = q(x)
    assert not torch.equal(out, ref)
    assert rel_l2(ref, out) < 0.12
    assert torch.equal(out, nn.functional.linear(x, q.freeze().dequantize(), lin.bias))


def test_qat_reduces_loss_on_tiny_regression():
    torch.manual_seed(1)
    teacher = nn.Linear(64, 8)
    x = torch.randn(128, 64)
    with torch.no_grad():
        y = teacher(x)
    student = QuantLinear.from_linear(nn.Linear(64, 8), BlockQuantConfig(bits=3, group_size=32))
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = nn.functional.mse_loss(student(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert student.weight_quantizer.step.grad is not None
    assert losses[-1] < 0.2 * losses[0]


def test_qat_beats_post_training_rtn():
    """Training the steps and weights with the quantizer in the loop beats quantizing afterwards."""
    torch.manual_seed(2)
    teacher = nn.Linear(64, 16)
    x = torch.randn(256, 64)
    with torch.no_grad():
        y = teacher(x)
    cfg = BlockQuantConfig(bits=2, group_size=32, symmetric=True, scale_search="minmax")
    rtn = QuantLinear.from_linear(teacher, cfg)
    rtn_loss = nn.functional.mse_loss(rtn(x), y).item()
    qat = QuantLinear.from_linear(nn.Linear(64, 16), cfg)
    qat.load_state_dict({k: v.clone() for k, v in rtn.state_dict().items()})
    opt = torch.optim.Adam(qat.parameters(), lr=3e-3)
    for _ in range(50):
        opt.zero_grad()
        nn.functional.mse_loss(qat(x), y).backward()
        opt.step()
    assert nn.functional.mse_loss(qat(x), y).item() < 0.65 * rtn_loss


def test_to_linear_and_autocast():
    torch.manual_seed(3)
    q = QuantLinear.from_linear(nn.Linear(128, 4), BlockQuantConfig(bits=8, group_size=64))
    x = torch.randn(2, 128)
    plain = q.to_linear()
    assert type(plain) is nn.Linear
    assert torch.allclose(plain(x), q(x), atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = q(x)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert q.weight.grad is not None


def test_input_quantizer_and_state_dict():
    torch.manual_seed(4)
    q = QuantLinear.from_linear(nn.Linear(64, 4), BlockQuantConfig(bits=4, group_size=32), act_bits=8)
    x = torch.randn(3, 64)
    out = q(x)
    state = q.state_dict()
    assert {
        "weight",
        "bias",
        "weight_quantizer.step",
        "weight_quantizer.offset",
        "input_quantizer.step",
    } <= set(state)
    fresh = QuantLinear(64, 4, config=BlockQuantConfig(bits=4, group_size=32), act_bits=8)
    fresh.load_state_dict(state)
    assert torch.equal(fresh(x), out)


def test_extra_repr_shows_bits_per_weight():
    q = QuantLinear.from_linear(nn.Linear(256, 8, bias=False), BlockQuantConfig(bits=4, group_size=128))
    text = repr(q)
    assert "int4 g128 asym fp16" in text and "4.250 bits/weight" in text
    assert q.bits_per_weight == pytest.approx(4.25)


def test_from_linear_rejects_non_linear():
    with pytest.raises(TypeError):
        QuantLinear.from_linear(nn.Embedding(4, 4))

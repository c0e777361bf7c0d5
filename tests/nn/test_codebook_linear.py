"""CodebookDecoder / CodebookLinear: decode, gradients with codes fixed, calibration, export, compress_."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from holotensor.analysis.metrics import rel_l2
from holotensor.codecs import vq_math as vm
from holotensor.codecs.codebook import CodebookConfig
from holotensor.nn.codebook_linear import CodebookDecoder, CodebookLinear
from holotensor.nn.compress import compress_

CFG = CodebookConfig(dim=4, bits=5, codebooks=2, iters=4)


def _linear(in_f: int = 48, out_f: int = 24, seed: int = 0, bias: bool = True) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(in_f, out_f, bias=bias)


def test_decoder_matches_vq_math_and_takes_prefixes() -> None:
    ct = vm.quantize(torch.randn(12, 30), dim=4, bits=4, stages=2)
    dec = CodebookDecoder(ct)
    assert dec.codes.dtype == torch.int32 and dec.codebooks.requires_grad
    assert torch.equal(dec(), ct.dequantize())
    assert torch.equal(dec(stages=1), ct.dequantize(stages=1))
    names = {n for n, _ in dec.named_parameters()}
    assert names == {"codebooks", "scales"} and "codes" in dict(dec.named_buffers())


def test_from_linear_forward_and_export_agree() -> None:
    lin = _linear()
    layer = CodebookLinear.from_linear(lin, CFG)
    x = torch.randn(7, 48)
    dense = layer.to_linear()
    torch.testing.assert_close(layer(x), dense(x), rtol=1e-3, atol=1e-3)  # to_linear rounds to fp16
    assert rel_l2(lin.weight.detach(), dense.weight.detach()) < 0.5
    assert torch.equal(layer.bias.detach(), lin.bias.detach())
    enc = layer.encode()
    out = CFG.decode([memoryview(f.data) for f in enc.fragments], enc.params, layer.spec())
    assert torch.equal(out, dense.weight.detach())
    assert "bits_per_weight=" in repr(layer) and "vq d4 2x5b" in repr(layer)


def test_no_bias_and_half_inputs() -> None:
    layer = CodebookLinear.from_linear(_linear(bias=False), CFG)
    assert layer.bias is None and layer.to_linear().bias is None
    y = layer(torch.randn(3, 48, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16 and y.shape == (3, 24)


def test_gradients_reach_codebooks_and_scales_not_codes() -> None:
    layer = CodebookLinear.from_linear(_linear(), CFG)
    codes = layer.decoder.codes.clone()
    layer(torch.randn(5, 48)).square().sum().backward()
    assert layer.decoder.codebooks.grad is not None and layer.decoder.codebooks.grad.abs().sum() > 0
    assert layer.decoder.scales.grad is not None and layer.decoder.scales.grad.abs().sum() > 0
    assert torch.equal(layer.decoder.codes, codes)


def test_end_to_end_fine_tuning_with_codes_fixed_reduces_the_loss() -> None:
    teacher = _linear(seed=1)
    layer = CodebookLinear.from_linear(teacher, CodebookConfig(dim=4, bits=3, codebooks=1, iters=3))
    loud = torch.where(torch.arange(48) % 7 == 0, 10.0, 1.0)  # k-means alone ignores input statistics
    x = torch.randn(256, 48, generator=torch.Generator().manual_seed(0)) * loud
    target = teacher(x).detach()
    opt = torch.optim.Adam(layer.decoder.param_groups(2e-2))
    codes = layer.decoder.codes.clone()
    first = float((layer(x) - target).square().mean().detach())
    for _ in range(15):
        loss = (layer(x) - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float((layer(x) - target).square().mean().detach()) < 0.9 * first
    assert torch.equal(layer.decoder.codes, codes)


def test_calibration_reduces_the_output_error() -> None:
    gen = torch.Generator().manual_seed(0)
    lin = _linear(64, 32)
    # inputs with a few loud features, as in transformer activations
    x = torch.randn(300, 64, generator=gen) * torch.where(torch.arange(64) < 4, 20.0, 1.0)
    cfg = CodebookConfig(dim=4, bits=4, codebooks=1, iters=5)

    def out_err(layer: CodebookLinear) -> float:
        return rel_l2(lin(x).detach() - lin.bias.detach(), layer(x).detach() - layer.bias.detach())

    plain = CodebookLinear.from_linear(lin, cfg)
    gptvq = CodebookLinear.from_linear(lin, cfg, x, steps=0)
    tuned = CodebookLinear.from_linear(lin, cfg, x, steps=40, lr=1e-2)
    assert out_err(gptvq) < out_err(plain)
    assert out_err(tuned) < 0.95 * out_err(gptvq)
    losses = tuned.fit_calibration(lin.weight, x, steps=3, lr=1e-3)
    assert len(losses) == 4 and losses[-1] <= losses[0] * 1.01
    # the inputs' Hessian stands for the inputs
    xd = x.double()
    from_h = CodebookLinear.from_linear(lin, cfg, hessian=xd.T @ xd, steps=40, lr=1e-2)
    again = CodebookLinear.from_linear(lin, cfg, x, steps=40, lr=1e-2)
    assert torch.equal(from_h.decoder.codes, again.decoder.codes)
    assert torch.allclose(from_h.weight, again.weight, atol=1e-5)
    with pytest.raises(ValueError, match="not both"):
        CodebookLinear.from_linear(lin, cfg, x, hessian=xd.T @ xd)
    with pytest.raises(ValueError, match="exactly one"):
        tuned.fit_calibration(lin.weight)


def test_fit_calibration_with_fewer_rows_than_features() -> None:
    lin = _linear(16, 8)
    layer = CodebookLinear.from_linear(lin, CodebookConfig(dim=4, bits=2, codebooks=1, iters=2))
    x = torch.randn(4, 16)  # a singular Hessian: only the directions seen count
    losses = layer.fit_calibration(lin.weight, x, steps=10, lr=1e-2)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    "calibration",
    [torch.randn(5, 47), torch.randn(0, 48), torch.full((2, 48), float("nan")), torch.ones(2, 48).int()],
)
def test_bad_calibration_is_rejected(calibration: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="calibration"):
        CodebookLinear.from_linear(_linear(), CFG, calibration)


def test_fit_calibration_checks_the_weight() -> None:
    layer = CodebookLinear.from_linear(_linear(), CFG)
    with pytest.raises(ValueError, match="weight"):
        layer.fit_calibration(torch.randn(24, 47), torch.randn(3, 48))


def test_nan_weights_are_rejected() -> None:
    lin = _linear()
    with torch.no_grad():
        lin.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        CodebookLinear.from_linear(lin, CFG)


def test_export_rejects_fp16_overflow() -> None:
    layer = CodebookLinear.from_linear(_linear(), CFG)
    with torch.no_grad():
        layer.decoder.codebooks[0, 0, 0] = 1e6
    with pytest.raises(ValueError, match="overflows fp16"):
        layer.encode()


def test_bits_per_weight() -> None:
    layer = CodebookLinear.from_linear(_linear(64, 32), CodebookConfig(dim=8, bits=4, codebooks=2, iters=2))
    k = layer.decoder.codebooks.shape[1]
    expected = (2 * 32 * 8 * 4 + 2 * k * 8 * 16 + 32 * 16) / (64 * 32)
    assert layer.bits_per_weight() == pytest.approx(expected)


def test_compress_swaps_linears() -> None:
    mlp = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 8))
    x = torch.randn(4, 32)
    ref = mlp(x)
    names = compress_(mlp, {"0": CodebookConfig(dim=4, bits=6, iters=3), "*": None})
    assert names == ["0"] and isinstance(mlp[0], CodebookLinear) and isinstance(mlp[2], nn.Linear)
    assert rel_l2(ref.detach(), mlp(x).detach()) < 0.5
    assert compress_(mlp, CodebookConfig(dim=4, bits=6, iters=2)) == ["2"]  # layer 0 is not re-wrapped


def test_param_groups_scale_the_learning_rate_of_scales() -> None:
    layer = CodebookLinear.from_linear(_linear(), CFG)
    groups = layer.decoder.param_groups(0.1)
    assert (
        groups[0]["params"][0] is layer.decoder.codebooks and groups[1]["params"][0] is layer.decoder.scales
    )
    mean = float(layer.decoder.scales.detach().abs().mean())
    assert groups[0]["lr"] == 0.1 and groups[1]["lr"] == pytest.approx(0.1 * mean)
    unscaled = CodebookLinear.from_linear(_linear(), CodebookConfig(dim=4, bits=4, scale=None, iters=2))
    assert len(unscaled.decoder.param_groups(0.1)) == 1


def test_a_calibrated_layer_saves_as_plain_codebook(tmp_path) -> None:
    from holotensor.api import load_file, safe_open, save_file
    from holotensor.api.calibrate import quantized_policy

    lin = _linear(64, 32)
    x = torch.randn(200, 64)
    layer = CodebookLinear.from_linear(lin, CFG, hessian=x.T @ x, steps=5)
    codes = {"l.weight": layer.decoder.to_codebook_tensor()}
    save_file({"l.weight": lin.weight.detach(), "l.bias": layer.bias.detach()}, tmp_path / "m.hct",
              policy=quantized_policy(codes, CFG))  # fmt: skip
    with safe_open(tmp_path / "m.hct") as f:
        assert f.entry("l.weight").codec.name == "codebook"
    assert torch.equal(load_file(tmp_path / "m.hct")["l.weight"], layer.to_linear().weight)

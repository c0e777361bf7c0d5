"""Calibration through the API: statistics from a model run, statistics files, calibrated policies
whose files are plain blockquant, and in-place calibration of a model."""

import pytest
import torch
from torch import nn

from holotensor.api import load_file, safe_open, save_file
from holotensor.api.calibrate import (
    calibrate_,
    calibrate_tensor,
    calibration_policy,
    collect_hessians,
    load_hessians,
    quantized_policy,
    save_hessians,
)
from holotensor.codecs import BlockQuantConfig, CodebookConfig
from holotensor.codecs import calibration as cal
from holotensor.errors import FormatError

CFG = BlockQuantConfig(bits=3, group_size=32, symmetric=False)


class _Block(nn.Module):
    """Two layers reading one input (like query/key) and one reading another."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(64, 32)
        self.k = nn.Linear(64, 32)
        self.out = nn.Linear(32, 16)
        self.norm = nn.LayerNorm(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.out(torch.relu(self.q(x) + self.k(x))))


def _data(n: int = 256) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 64, generator=g) * torch.linspace(0.1, 2.0, 64)


def _model() -> _Block:
    torch.manual_seed(0)
    return _Block()


def test_collect_hessians_matches_the_inputs():
    model, x = _model(), _data()
    hs = collect_hessians(model, lambda m: m(x))
    assert sorted(hs) == ["k.weight", "out.weight", "q.weight"]
    expected = (x.double().T @ x.double() / len(x)).float()
    assert torch.allclose(hs["q.weight"], expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(hs["q.weight"], hs["k.weight"])
    h_in = torch.relu(model.q(x) + model.k(x)).detach().double()
    assert torch.allclose(hs["out.weight"], (h_in.T @ h_in / len(x)).float(), rtol=1e-4, atol=1e-6)
    assert not model.q._forward_pre_hooks


def test_collect_hessians_errors():
    model = _model()
    with pytest.raises(ValueError, match=r"no nn\.Linear"):
        collect_hessians(nn.Sequential(nn.ReLU()), lambda m: None)
    with pytest.raises(ValueError, match="reached no input"):
        collect_hessians(model, lambda m: m.q(_data()))
    with pytest.raises(ValueError, match="NaN"):
        collect_hessians(model, lambda m: m(torch.full((3, 64), float("nan"))))
    assert not model.q._forward_pre_hooks  # hooks removed after a failing run too


def test_hessian_file_round_trip_and_wrong_files(tmp_path):
    hs = collect_hessians(_model(), lambda m: m(_data()))
    save_hessians(hs, tmp_path / "stats.hct")
    back = load_hessians(tmp_path / "stats.hct")
    assert sorted(back) == sorted(hs) and all(torch.equal(back[n], hs[n]) for n in hs)
    save_file({"w": torch.randn(4, 4)}, tmp_path / "plain.hct")
    with pytest.raises(FormatError, match="not calibration statistics"):
        load_hessians(tmp_path / "plain.hct")
    (tmp_path / "junk.bin").write_bytes(b"\x00\xff" * 100)
    with pytest.raises(FormatError, match="not a calibration statistics file"):
        load_hessians(tmp_path / "junk.bin")
    with pytest.raises(FileNotFoundError):
        load_hessians(tmp_path / "missing.hct")
    with pytest.raises(ValueError, match="square"):
        save_hessians({"w": torch.randn(3, 4)}, tmp_path / "bad.hct")


@pytest.mark.parametrize("method", ["gptq", "awq", "hqq"])
def test_calibration_policy_writes_plain_blockquant(tmp_path, method):
    model, x = _model(), _data()
    hs = collect_hessians(model, lambda m: m(x)) if method != "hqq" else None
    sd = model.state_dict()
    save_file(sd, tmp_path / "m.hct", policy=calibration_policy(CFG, method, hs))
    with safe_open(tmp_path / "m.hct") as f:
        assert f.entry("q.weight").codec.name == "blockquant"
        assert f.entry("q.weight").codec.config == CFG.to_dict()
        assert f.entry("q.bias").codec.name == "lossless"
    back = load_file(tmp_path / "m.hct")
    h = None if hs is None else hs["out.weight"]
    expected = calibrate_tensor(sd["out.weight"], CFG, method, h).dequantize()
    assert torch.equal(back["out.weight"], expected)
    assert torch.equal(back["norm.weight"], sd["norm.weight"])


def test_gptq_policy_beats_rtn_on_the_layer_output(tmp_path):
    model, x = _model(), _data()
    hs = collect_hessians(model, lambda m: m(x))
    sd = model.state_dict()
    save_file(sd, tmp_path / "g.hct", policy=calibration_policy(CFG, "gptq", hs))
    save_file(sd, tmp_path / "r.hct", policy={"*.weight": CFG})
    g, r = load_file(tmp_path / "g.hct"), load_file(tmp_path / "r.hct")
    for name in ("q.weight", "out.weight"):
        assert cal.output_error(sd[name], g[name], hs[name]) < 0.8 * cal.output_error(
            sd[name], r[name], hs[name]
        )


def test_calibrate_in_place_and_store_the_codes(tmp_path):
    model, x = _model(), _data()
    before = model(x).detach()
    codes = calibrate_(model, CFG, lambda m: m(x), method="gptq", filter_fn=lambda n, m: n != "out")
    assert sorted(codes) == ["k.weight", "q.weight"]
    assert torch.equal(model.q.weight, codes["q.weight"].dequantize())
    assert not torch.equal(model(x), before)
    save_file(model.state_dict(), tmp_path / "m.hct", policy=quantized_policy(codes, CFG))
    back = load_file(tmp_path / "m.hct")
    assert torch.equal(back["k.weight"], model.k.weight)
    assert torch.equal(back["out.weight"], model.out.weight)  # the default codec: lossless
    with pytest.raises(ValueError, match="needs a run"):
        calibrate_(model, CFG, method="awq")
    assert sorted(calibrate_(_model(), CFG, method="hqq")) == ["k.weight", "out.weight", "q.weight"]


def test_bad_calibration_arguments():
    w = torch.randn(8, 64)
    with pytest.raises(ValueError, match="method must be one of"):
        calibrate_tensor(w, CFG, "rtn")
    with pytest.raises(ValueError, match="needs the layer's input Hessian"):
        calibrate_tensor(w, CFG, "gptq")
    with pytest.raises(ValueError, match="needs input Hessians"):
        calibration_policy(CFG, "awq")
    w[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        calibrate_tensor(w, CFG, "hqq")
    model = _model()
    with torch.no_grad():
        model.q.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"'q\.weight'.*NaN"):
        calibrate_(model, CFG, method="hqq")


def test_hqq_keeps_the_shape_of_nd_weights():
    w = torch.randn(2, 3, 64)
    qt = calibrate_tensor(w, CFG, "hqq")
    assert qt.shape == (2, 3, 64) and qt.scales.shape == (2, 3, 2)


def test_quantized_policy_with_a_config_per_tensor(tmp_path):
    from holotensor.api.calibrate import quantized_policy

    g = torch.Generator().manual_seed(11)
    weights = {"a.weight": torch.randn(8, 128, generator=g), "b.weight": torch.randn(8, 128, generator=g)}
    c3, c4 = BlockQuantConfig(bits=3, group_size=64), BlockQuantConfig(bits=4, group_size=64)
    codes = {"a.weight": c3.quantize(weights["a.weight"]), "b.weight": c4.quantize(weights["b.weight"])}
    save_file(weights, tmp_path / "m.hct", policy=quantized_policy(codes, {"a.weight": c3, "b.weight": c4}))
    back = load_file(tmp_path / "m.hct")
    for name, qt in codes.items():
        assert torch.equal(back[name], qt.dequantize())


CB = CodebookConfig(dim=4, bits=5, iters=3)


def test_codebook_calibration_policy_writes_plain_codebook_and_beats_kmeans(tmp_path):
    model, x = _model(), _data()
    hs = collect_hessians(model, lambda m: m(x))
    sd = model.state_dict()
    save_file(sd, tmp_path / "g.hct", policy=calibration_policy(CB, "gptq", hs))
    save_file(sd, tmp_path / "p.hct", policy={"*.weight": CB, "norm.*": "lossless"})
    with safe_open(tmp_path / "g.hct") as f:
        assert f.entry("q.weight").codec.name == "codebook"
        assert f.entry("q.weight").codec.config == CB.to_dict()
    g, p = load_file(tmp_path / "g.hct"), load_file(tmp_path / "p.hct")
    assert torch.equal(g["out.weight"], calibrate_tensor(sd["out.weight"], CB, "gptq", hs["out.weight"]).dequantize())
    for name in ("q.weight", "out.weight"):
        assert cal.output_error(sd[name], g[name], hs[name]) < 0.9 * cal.output_error(sd[name], p[name], hs[name])


def test_codebook_calibrate_in_place_and_quantized_policy(tmp_path):
    model, x = _model(), _data()
    codes = calibrate_(model, CB, lambda m: m(x))
    assert sorted(codes) == ["k.weight", "out.weight", "q.weight"]
    assert torch.equal(model.q.weight, codes["q.weight"].dequantize())
    save_file(model.state_dict(), tmp_path / "m.hct", policy=quantized_policy(codes, CB))
    back = load_file(tmp_path / "m.hct")
    assert all(torch.equal(back[n], getattr(model, n.split(".")[0]).weight) for n in codes)
    for method in ("awq", "hqq"):
        with pytest.raises(ValueError, match=r"gptq \(GPTVQ\) only"):
            calibrate_tensor(torch.randn(8, 64), CB, method, torch.eye(64))
    with pytest.raises(ValueError, match="needs the layer's input Hessian"):
        calibrate_tensor(torch.randn(8, 64), CB, "gptq")
    with pytest.raises(ValueError, match=r"gptq \(GPTVQ\) only"):
        calibration_policy(CB, "hqq")

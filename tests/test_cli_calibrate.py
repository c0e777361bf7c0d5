"""``holotensor convert --calibrate / --calibration-method``: statistics files, text through a
runner, data-free HQQ, and one clear line for every bad input."""

import pytest
import safetensors.torch
import torch

from holotensor.api import load_file, safe_open
from holotensor.api.calibrate import calibrate_tensor, save_hessians
from holotensor.cli import main
from holotensor.codecs import BlockQuantConfig, CodebookConfig

CODEC = "blockquant:bits=3,group_size=32"
CFG = BlockQuantConfig(bits=3, group_size=32)


def _hessian(k: int, seed: int) -> torch.Tensor:
    x = torch.randn(256, k, generator=torch.Generator().manual_seed(seed)) * torch.linspace(0.1, 2, k)
    return x.T @ x / 256


def runner(files, samples):
    """A --calibration-runner: statistics for the checkpoint's 2-D weights (seeded by the sample count)."""
    tensors = {}
    for f in files:
        tensors.update(safetensors.torch.load_file(f))
    return {n: _hessian(t.shape[1], len(samples)) for n, t in tensors.items() if n.endswith(".weight")}


@pytest.fixture
def ckpt(tmp_path):
    g = torch.Generator().manual_seed(4)
    tensors = {
        "enc.weight": torch.randn(48, 64, generator=g),
        "enc.bias": torch.randn(48, generator=g),
        "head.weight": torch.randn(16, 96, generator=g),
        "emb": torch.randn(20, 64, generator=g),
    }
    path = tmp_path / "model.safetensors"
    safetensors.torch.save_file(tensors, path)
    return path, tensors


def _convert(src, dst, *extra):
    return main(["convert", "--no-progress", "--codec", CODEC, *extra, str(src), str(dst)])


def test_statistics_file_gptq(ckpt, tmp_path, capsys):
    src, tensors = ckpt
    hs = {"enc.weight": _hessian(64, 1), "head.weight": _hessian(96, 2)}
    save_hessians(hs, tmp_path / "stats.hct")
    assert _convert(src, tmp_path / "m.hct", "--calibrate", str(tmp_path / "stats.hct")) == 0
    assert "calibration: gptq on 2 layer(s)" in capsys.readouterr().out
    back = load_file(tmp_path / "m.hct")
    for name in hs:
        assert torch.equal(back[name], calibrate_tensor(tensors[name], CFG, "gptq", hs[name]).dequantize())
    assert torch.equal(back["emb"], tensors["emb"])  # no statistics: the lossless default
    with safe_open(tmp_path / "m.hct") as f:
        assert f.entry("enc.weight").codec.name == "blockquant"
        assert f.entry("emb").codec.name == "lossless"


def test_text_through_a_runner_awq(ckpt, tmp_path):
    src, tensors = ckpt
    (tmp_path / "calib.txt").write_text("one sample\n\nanother sample\nthird\n", encoding="utf-8")
    argv = ["--calibrate", str(tmp_path / "calib.txt"), "--calibration-method", "awq",
            "--calibration-runner", "tests.test_cli_calibrate:runner"]  # fmt: skip
    assert _convert(src, tmp_path / "m.hct", *argv) == 0
    back = load_file(tmp_path / "m.hct")
    expected = calibrate_tensor(tensors["head.weight"], CFG, "awq", _hessian(96, 3)).dequantize()
    assert torch.equal(back["head.weight"], expected)


def test_data_free_hqq(ckpt, tmp_path):
    src, tensors = ckpt
    assert _convert(src, tmp_path / "m.hct", "--calibration-method", "hqq") == 0
    back = load_file(tmp_path / "m.hct")
    assert torch.equal(back["emb"], calibrate_tensor(tensors["emb"], CFG, "hqq").dequantize())
    assert torch.equal(back["enc.bias"], tensors["enc.bias"])


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("holotensor: error:"), err
    return err[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "holds no text lines"),
        (b"\n   \n\n", "holds no text lines"),
        (b"text\x00\x01\x02binary", "NUL bytes"),
        (b"\xff\xfe\xfa not utf-8", "not UTF-8"),
    ],
)
def test_bad_calibration_files(ckpt, tmp_path, capsys, content, message):
    src, _ = ckpt
    (tmp_path / "calib.txt").write_bytes(content)
    argv = [
        "--calibrate",
        str(tmp_path / "calib.txt"),
        "--calibration-runner",
        "tests.test_cli_calibrate:runner",
    ]
    assert _convert(src, tmp_path / "m.hct", *argv) == 2
    assert message in _error(capsys)
    assert not (tmp_path / "m.hct").exists()


def test_text_without_runner_explains_the_flow(ckpt, tmp_path, capsys):
    src, _ = ckpt
    (tmp_path / "calib.txt").write_text("a sample\n", encoding="utf-8")
    assert _convert(src, tmp_path / "m.hct", "--calibrate", str(tmp_path / "calib.txt")) == 2
    assert "--calibration-runner MODULE:FUNCTION" in _error(capsys)


def test_nan_weights_name_the_tensor(tmp_path, capsys):
    w = torch.randn(8, 64)
    w[3, 5] = float("nan")
    safetensors.torch.save_file({"bad.weight": w}, tmp_path / "nan.safetensors")
    assert _convert(tmp_path / "nan.safetensors", tmp_path / "m.hct", "--calibration-method", "hqq") == 2
    line = _error(capsys)
    assert "'bad.weight'" in line and "NaN" in line
    assert not (tmp_path / "m.hct").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--calibration-method", "gptq"], "needs --calibrate"),
        (["--calibration-method", "hqq", "--calibrate", "STATS"], "data-free"),
        (["--calibration-method", "hqq", "--rule", "enc.*=lossless"], "--rule cannot"),
    ],
)
def test_inconsistent_options(ckpt, tmp_path, capsys, extra, message):
    src, _ = ckpt
    save_hessians({"enc.weight": _hessian(64, 1)}, tmp_path / "stats.hct")
    extra = [str(tmp_path / "stats.hct") if e == "STATS" else e for e in extra]
    assert _convert(src, tmp_path / "m.hct", *extra) == 2
    assert message in _error(capsys)


def test_non_blockquant_codec_and_bad_bits(ckpt, tmp_path, capsys):
    src, _ = ckpt
    argv = ["convert", "--no-progress", "--calibration-method", "hqq", str(src), str(tmp_path / "m.hct")]
    assert main(argv) == 2
    assert "--codec blockquant:... or codebook:..." in _error(capsys)
    for bits in ("1", "9"):
        with pytest.raises(SystemExit) as info:
            main(["convert", "--codec", f"blockquant:bits={bits}", "--calibration-method", "hqq", "x", "y"])
        assert info.value.code == 2
        assert "bits must be an integer in 2..8" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["convert", "--calibration-runner", "no_such_module:f", "x", "y"])
    assert "cannot import calibration runner" in capsys.readouterr().err


def test_statistics_file_gptvq_codebook(ckpt, tmp_path, capsys):
    src, tensors = ckpt
    hs = {"enc.weight": _hessian(64, 1), "head.weight": _hessian(96, 2)}
    save_hessians(hs, tmp_path / "stats.hct")
    argv = ["convert", "--no-progress", "--codec", "codebook:dim=4,bits=5,iters=3",
            "--calibrate", str(tmp_path / "stats.hct"), str(src), str(tmp_path / "m.hct")]  # fmt: skip
    assert main(argv) == 0
    assert "calibration: gptq on 2 layer(s)" in capsys.readouterr().out
    back = load_file(tmp_path / "m.hct")
    cfg = CodebookConfig(dim=4, bits=5, iters=3)
    for name in hs:
        assert torch.equal(back[name], calibrate_tensor(tensors[name], cfg, "gptq", hs[name]).dequantize())
    with safe_open(tmp_path / "m.hct") as f:
        assert f.entry("enc.weight").codec.name == "codebook"
        assert f.entry("emb").codec.name == "lossless"
    argv[argv.index("--calibrate") : argv.index("--calibrate") + 2] = ["--calibration-method", "hqq"]
    assert main(argv) == 2
    assert "gptq (GPTVQ) only" in _error(capsys)

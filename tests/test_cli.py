import json
import subprocess
import sys

import pytest
import safetensors.torch
import torch

from holotensor.cli import main


@pytest.fixture
def ckpt(tmp_path):
    g = torch.Generator().manual_seed(2)
    tensors = {
        "enc.weight": torch.randn(64, 48, generator=g).bfloat16(),
        "enc.bias": torch.randn(64, generator=g).bfloat16(),
        "head.weight": torch.randn(10, 64, generator=g),
    }
    path = tmp_path / "model.safetensors"
    safetensors.torch.save_file(tensors, path)
    return path, tensors


def test_convert_inspect_verify_decompress(ckpt, tmp_path, capsys):
    src, tensors = ckpt
    assert main(["convert", "--check", "--no-progress", str(src), str(tmp_path / "m.hct")]) == 0
    out = capsys.readouterr().out
    assert "enc.weight" in out and "TOTAL" in out and "bit-exact round trip, 3/3" in out
    assert main(["inspect", "--json", str(tmp_path / "m.hct")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(r["tensor"] for r in report["tensors"]) == sorted(tensors)
    row = next(r for r in report["tensors"] if r["tensor"] == "enc.weight")
    assert row["lossless"] and row["ratio"] > 1.0 and 0 < row["bits_per_weight"] < 16
    assert report["totals"]["file_bytes"] == (tmp_path / "m.hct").stat().st_size
    assert main(["verify", str(tmp_path / "m.hct")]) == 0
    assert "OK: 3 tensors" in capsys.readouterr().out
    assert main(["decompress", "--no-progress", str(tmp_path / "m.hct"), str(tmp_path / "back.safetensors")]) == 0
    back = safetensors.torch.load_file(tmp_path / "back.safetensors")
    assert all(torch.equal(back[k], v) for k, v in tensors.items())


def test_codec_options_and_rules(ckpt, tmp_path, capsys):
    src, _ = ckpt
    args = ["convert", "--no-progress", "--codec", "lossless:level=max", "--rule", "head.*=lossless", str(src),
            str(tmp_path / "m.hct")]
    assert main(args) == 0
    capsys.readouterr()
    main(["inspect", "--json", str(tmp_path / "m.hct")])
    rows = {r["tensor"]: r for r in json.loads(capsys.readouterr().out)["tensors"]}
    assert rows["enc.weight"]["codec"] == "lossless"


def test_verify_reports_damage(ckpt, tmp_path, capsys):
    src, _ = ckpt
    main(["convert", "--no-progress", str(src), str(tmp_path / "m.hct")])
    capsys.readouterr()
    main(["inspect", "--json", str(tmp_path / "m.hct")])
    data = bytearray((tmp_path / "m.hct").read_bytes())
    data[200] ^= 0xFF  # inside the first payload
    (tmp_path / "m.hct").write_bytes(data)
    capsys.readouterr()
    assert main(["verify", str(tmp_path / "m.hct")]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "checksum" in out and "1 damaged" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["inspect", "missing.hct"],
        ["convert", "missing.safetensors", "out.hct"],
        ["verify", "garbage.bin"],
        ["convert", "garbage.bin", "out.hct"],
        ["decompress", "garbage.bin", "out.safetensors"],
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage.bin").write_bytes(b"\x00" * 100)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("holotensor: error:"), err
    assert not (tmp_path / "out.hct").exists() and not (tmp_path / "out.safetensors").exists()


def test_unknown_codec_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["convert", "--codec", "nope", "x", "y"])
    assert info.value.code == 2
    assert "unknown codec 'nope'" in capsys.readouterr().err


def test_unwritable_output(ckpt, tmp_path, capsys):
    src, _ = ckpt
    assert main(["convert", "--no-progress", str(src), str(tmp_path / "no" / "dir" / "m.hct")]) == 2
    assert "holotensor: error:" in capsys.readouterr().err


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "holotensor.cli", "--help"], capture_output=True, text=True, check=True)
    assert "convert" in out.stdout and "inspect" in out.stdout and "verify" in out.stdout


def test_upstream_hctn_file(tmp_path, capsys):
    from holotensor.format import HctnAlgorithm, HctnDType, write_hctn

    w = torch.randn(16, 8, generator=torch.Generator().manual_seed(5)).half()
    write_hctn(tmp_path / "up.hct", w.view(torch.uint8).numpy().tobytes(), algorithm=HctnAlgorithm.ZSTD,
               dtype=HctnDType.F16, shape=(16, 8))
    import holotensor

    assert torch.equal(holotensor.load_file(tmp_path / "up.hct")["up"], w)
    assert main(["convert", "--no-progress", str(tmp_path / "up.hct"), str(tmp_path / "m.hct")]) == 0
    assert torch.equal(holotensor.load_file(tmp_path / "m.hct")["up"], w)
    assert main(["convert", "--to", "safetensors", str(tmp_path / "up.hct"), str(tmp_path / "s.safetensors")]) == 0
    assert torch.equal(safetensors.torch.load_file(tmp_path / "s.safetensors")["up"], w)


def test_upstream_htns_file(tmp_path):
    import holotensor
    from holotensor.codecs import encode_htns_payloads
    from holotensor.format import HtnsEncoding, write_htns

    data = torch.arange(16, dtype=torch.float32).reshape(4, 4)
    payloads = encode_htns_payloads(data, HtnsEncoding.SPECTRAL, fragments=2)
    write_htns(tmp_path / "h.hct", payloads, encoding=HtnsEncoding.SPECTRAL, shape=data.shape)
    full = holotensor.load_file(tmp_path / "h.hct")["h"]
    assert torch.allclose(full, data, atol=1e-4)
    first = holotensor.load_file(tmp_path / "h.hct", max_fragments=1)["h"]
    assert torch.allclose(first, data.mean(dim=1, keepdim=True).expand(4, 4), atol=1e-4)  # row means
    assert main(["convert", "--no-progress", str(tmp_path / "h.hct"), str(tmp_path / "m.hct")]) == 0
    assert torch.allclose(holotensor.load_file(tmp_path / "m.hct")["h"], data, atol=1e-4)

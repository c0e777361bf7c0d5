"""The README's Python example runs as written (in a scratch directory)."""

import re
from pathlib import Path

import pytest
import safetensors.torch
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoint_dir").mkdir()
    safetensors.torch.save_file({"x.weight": torch.randn(8, 8)}, tmp_path / "checkpoint_dir" / "model.safetensors")
    for code in blocks:
        namespace: dict = {}
        try:
            exec(compile(code, "README.md", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"README example failed: {type(exc).__name__}: {exc}")
    assert (tmp_path / "restored.safetensors").exists()

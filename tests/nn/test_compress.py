"""compress_: policy patterns, skipping and logging, handler registry."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from holotensor.codecs.blockquant import BlockQuantConfig
from holotensor.nn.compress import compress_
from holotensor.nn.quantized_linear import QuantLinear


class _MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 64)
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"norm": nn.LayerNorm(64), "up": nn.Linear(64, 128), "down": nn.Linear(128, 64)})
            for _ in range(2)
        )
        self.head = nn.Linear(64, 50)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids)
        for b in self.blocks:
            h = h + b["down"](torch.relu(b["up"](b["norm"](h))))
        return self.head(h)


def test_patterns_select_layers_first_match_wins(caplog):
    torch.manual_seed(0)
    model = _MLP()
    ids = torch.randint(0, 50, (2, 5))
    before = model(ids)
    four, eight = BlockQuantConfig(bits=4, group_size=64), BlockQuantConfig(bits=8, group_size=None)
    with caplog.at_level(logging.INFO, logger="holotensor.nn.compress"):
        replaced = compress_(model, {"head": None, "blocks.0.*": eight, "re:blocks\\.\\d+\\.(up|down)": four})
    assert replaced == ["blocks.0.up", "blocks.0.down", "blocks.1.up", "blocks.1.down"]
    assert model.blocks[0]["up"].config == eight and model.blocks[1]["down"].config == four
    assert type(model.head) is nn.Linear and type(model.embed) is nn.Embedding
    assert type(model.blocks[0]["norm"]) is nn.LayerNorm
    assert "blocks.0.norm" in caplog.text and "LayerNorm" in caplog.text  # matched but not a Linear
    assert "head" in caplog.text  # skipped by the policy, logged by name
    after = model(ids)
    assert (
        after.shape == before.shape and torch.cosine_similarity(after.flatten(), before.flatten(), 0) > 0.99
    )


def test_single_config_and_filter_fn(caplog):
    model = _MLP()
    with caplog.at_level(logging.INFO, logger="holotensor.nn.compress"):
        replaced = compress_(
            model, BlockQuantConfig(bits=4, group_size=32), filter_fn=lambda m, name: "up" in name
        )
    assert replaced == ["blocks.0.up", "blocks.1.up"]
    assert "blocks.0.down" in caplog.text and "filter_fn" in caplog.text
    assert "embed" in caplog.text and "Embedding" in caplog.text
    assert isinstance(model.blocks[1]["up"], QuantLinear)
    assert "bits/weight" in repr(model)


def test_second_call_does_not_rewrap():
    model = _MLP()
    cfg = BlockQuantConfig(bits=4, group_size=32)
    compress_(model, {"*": cfg})
    assert compress_(model, {"*": cfg}) == []
    assert type(model.head) is QuantLinear
    assert not any(isinstance(m, QuantLinear) for m in model.head.modules() if m is not model.head)


def test_compressed_model_trains():
    torch.manual_seed(1)
    model = _MLP()
    compress_(model, {"blocks.*": BlockQuantConfig(bits=4, group_size=32)})
    ids = torch.randint(0, 50, (4, 6))
    loss = nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten())
    loss.backward()
    assert model.blocks[0]["up"].weight_quantizer.step.grad is not None
    assert model.embed.weight.grad is not None


def test_bad_policies():
    with pytest.raises(TypeError, match="handler"):
        compress_(_MLP(), {"*": object()})
    with pytest.raises(ValueError, match="regular expression"):
        compress_(_MLP(), {"re:(": BlockQuantConfig()})
    with pytest.raises(TypeError):
        compress_(_MLP(), ["*"])


def test_linear_subclasses_left_alone(caplog):
    """nn.MultiheadAttention's out_proj is a Linear subclass its forward never calls."""
    model = nn.Sequential(nn.MultiheadAttention(64, 4), nn.Linear(64, 64))
    with caplog.at_level(logging.INFO, logger="holotensor.nn.compress"):
        replaced = compress_(model, BlockQuantConfig(bits=4, group_size=32))
    assert replaced == ["1"]
    assert type(model[0].out_proj) is nn.modules.linear.NonDynamicallyQuantizableLinear
    assert "0.out_proj" in caplog.text

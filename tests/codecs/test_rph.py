"""The "rph" codec: upstream RPH payloads, quality rising with every fragment, files, limits."""

from __future__ import annotations

import pytest
import torch

import holotensor
from holotensor.analysis import cosine, rel_l2
from holotensor.codecs.base import TensorSpec
from holotensor.codecs.holographic import decode_rph, encode_rph
from holotensor.codecs.rph import RphConfig
from holotensor.dtypes import dtype_info
from holotensor.errors import DecodeError


def test_quality_rises_with_every_fragment(tmp_path) -> None:
    w = torch.randn(32, 32, generator=torch.Generator().manual_seed(0))
    holotensor.save_file({"w": w}, tmp_path / "w.hct", codec=RphConfig(fragments=4, seed=42))
    with holotensor.safe_open(tmp_path / "w.hct") as f:
        entry = f.entry("w")
        assert entry.codec.name == "rph" and [q.fragments for q in entry.quality] == [1, 2, 3, 4]
        got = [f.get_tensor("w", fragments=k) for k in range(1, 5)]
    cosines, errors = [cosine(w, g) for g in got], [rel_l2(w, g) for g in got]
    assert cosines[0] < cosines[1] < cosines[2] < cosines[3]
    assert errors[0] > errors[1] > errors[2] > errors[3]
    # the documented weakness: even the full set is lossy (about unit SNR for n projections)
    assert 0.6 < cosines[3] < 0.8 and errors[3] > 0.8
    assert entry.quality[-1].cosine == pytest.approx(cosines[3], rel=1e-6)
    full = holotensor.load_file(tmp_path / "w.hct")["w"]
    assert torch.equal(full, got[3])


def test_payloads_are_upstream_rph() -> None:
    x = torch.arange(1.0, 7.0).reshape(2, 3)
    cfg = RphConfig(fragments=2, seed=42)
    enc = cfg.encode(x)
    assert [bytes(p.data) for p in enc.fragments] == encode_rph(x.reshape(-1), 2, seed=42)
    views = [memoryview(p.data).cast("B") for p in enc.fragments]
    out = cfg.decode(views, enc.params, TensorSpec(dtype_info("F32"), (2, 3)))
    torch.testing.assert_close(out.reshape(-1), decode_rph(list(enumerate(views)), 6))


def test_limits_and_bad_input() -> None:
    with pytest.raises(ValueError, match="O\\(n\\^2\\)"):
        RphConfig().encode(torch.zeros(4097))
    assert RphConfig(max_elements=5000, fragments=1, proj_dim=2).encode(torch.zeros(4097)).params == {
        "n": 4097
    }
    for bad in ({"fragments": 0}, {"seed": -1}, {"proj_dim": 0}, {"max_elements": 0}):
        with pytest.raises(ValueError):
            RphConfig(**bad)
    with pytest.raises(ValueError, match="floating"):
        RphConfig().encode(torch.ones(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="NaN"):
        RphConfig().encode(torch.tensor([1.0, float("nan")]))
    cfg = RphConfig(fragments=2)
    enc = cfg.encode(torch.ones(3, 4))
    views = [memoryview(p.data).cast("B") for p in enc.fragments]
    spec = TensorSpec(dtype_info("F32"), (3, 4))
    with pytest.raises(DecodeError, match="12 elements"):
        cfg.decode(views, enc.params, TensorSpec(dtype_info("F32"), (3, 5)))
    with pytest.raises(DecodeError, match="need"):
        cfg.decode([views[0][:-4]], enc.params, spec)
    with pytest.raises(DecodeError, match="at least 1"):
        cfg.decode([], enc.params, spec)
    with pytest.raises(DecodeError, match="3 payloads"):
        cfg.decode(views + views[:1], enc.params, spec)
    assert cfg.decode([], cfg.encode(torch.empty(0)).params, TensorSpec(dtype_info("F32"), (0,))).shape == (
        0,
    )

import pytest
import torch

import holotensor
from holotensor.analysis import rel_l2
from holotensor.codecs.lowrank import LowRankConfig, matrix_shape
from holotensor.errors import DecodeError


def low_rank_matrix(m=48, n=40, r=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(m, r, generator=g) * torch.logspace(0, -2, r)) @ torch.randn(r, n, generator=g)


def test_prefixes_are_best_rank_approximations(tmp_path):
    w = torch.randn(48, 40, generator=torch.Generator().manual_seed(3))
    cfg = LowRankConfig(fragments=3, factor_dtype="F32")
    holotensor.save_file({"w": w}, tmp_path / "w.hct", codec=cfg)
    with holotensor.safe_open(tmp_path / "w.hct") as f:
        entry = f.entry("w")
        curve = entry.quality
        assert [q.fragments for q in curve] == [1, 2, 3] and all(q.measured for q in curve)
        errors = [q.rel_l2 for q in curve]
        assert errors[0] > errors[1] > errors[2]
        assert curve[0].cosine < curve[1].cosine < curve[2].cosine
        u, s, vh = torch.linalg.svd(w.double(), full_matrices=False)
        for q, split in zip(curve, entry.codec.params["splits"][1:], strict=True):
            best = (u[:, :split] * s[:split]) @ vh[:split]
            got = f.get_tensor("w", fragments=q.fragments)
            assert rel_l2(w, got) == pytest.approx(q.rel_l2, rel=1e-6, abs=1e-7)
            assert rel_l2(best.float(), got) < 1e-5
        assert rel_l2(w, f.get_tensor("w")) < 1e-6  # all components, F32 factors


def test_progressive_loading_api(tmp_path):
    w = low_rank_matrix(r=8)
    holotensor.save_file({"w": w, "b": torch.ones(40)}, tmp_path / "w.hct", codec=LowRankConfig(fragments=4))
    with holotensor.safe_open(tmp_path / "w.hct") as f:
        curve = f.entry("w").quality
    target = curve[1].cosine
    part = holotensor.load_file(tmp_path / "w.hct", quality=target)
    assert rel_l2(w, part["w"]) == pytest.approx(curve[1].rel_l2, rel=1e-5)
    assert torch.equal(part["b"], torch.ones(40))  # lossless tensors always whole
    first = holotensor.load_file(tmp_path / "w.hct", max_fragments=1)
    assert rel_l2(w, first["w"]) == pytest.approx(curve[0].rel_l2, rel=1e-5)
    for bad in (0.0, 1.5, -1):
        with pytest.raises(ValueError, match="quality"):
            holotensor.load_file(tmp_path / "w.hct", quality=bad)
    with holotensor.safe_open(tmp_path / "w.hct") as f, pytest.raises(ValueError, match="decodes from"):
        f.get_tensor("w", fragments=9)


def test_tolerance_picks_rank():
    w = low_rank_matrix(r=6)
    enc = LowRankConfig(tol=1e-3, factor_dtype="F32").encode(w)
    assert enc.params["splits"][-1] == 6
    assert LowRankConfig(rank=2).encode(w).params["splits"][-1] == 2


def test_shapes_and_validation():
    assert matrix_shape((2, 3, 4)) == (6, 4) and matrix_shape((5,)) == (1, 5) and matrix_shape(()) == (1, 1)
    with pytest.raises(ValueError):
        LowRankConfig(rank=0)
    with pytest.raises(ValueError):
        LowRankConfig(factor_dtype="I8")
    with pytest.raises(ValueError, match="floating"):
        LowRankConfig().encode(torch.ones(3, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match="NaN"):
        LowRankConfig().encode(torch.tensor([[1.0, float("nan")]]))
    cfg = LowRankConfig(fragments=2, factor_dtype="F32")
    w = low_rank_matrix(8, 6, 4)
    enc = cfg.encode(w)
    from holotensor.codecs import TensorSpec
    from holotensor.dtypes import dtype_info

    spec = TensorSpec(dtype_info("F32"), (8, 6))
    payloads = [memoryview(p.data).cast("B") for p in enc.fragments]
    with pytest.raises(DecodeError, match="bytes"):
        cfg.decode([payloads[0][:-4]], enc.params, spec)
    with pytest.raises(DecodeError, match="params say"):
        cfg.decode(payloads, enc.params, TensorSpec(dtype_info("F32"), (6, 8)))
    with pytest.raises(DecodeError, match="splits"):
        cfg.decode(payloads, {**enc.params, "splits": [0, 3, 2]}, spec)
    empty = cfg.encode(torch.empty(0, 5))
    assert cfg.decode([], empty.params, TensorSpec(dtype_info("F32"), (0, 5))).shape == (0, 5)


def test_refine_in_place(tmp_path):
    w = torch.randn(32, 24, generator=torch.Generator().manual_seed(9))
    holotensor.save_file({"w": w}, tmp_path / "w.hct", codec=LowRankConfig(fragments=3, factor_dtype="F32"))
    layer = torch.nn.Linear(24, 32, bias=False)
    with holotensor.safe_open(tmp_path / "w.hct") as f:
        with torch.no_grad():
            layer.weight.copy_(f.get_tensor("w", fragments=1))
        coarse = rel_l2(w, layer.weight)
        storage = layer.weight.data_ptr()
        f.get_tensor("w", out=layer.weight)
        assert layer.weight.data_ptr() == storage
        assert rel_l2(w, layer.weight) < coarse and rel_l2(w, layer.weight) < 1e-5
        with pytest.raises(ValueError, match="out is"):
            f.get_tensor("w", out=torch.zeros(3))

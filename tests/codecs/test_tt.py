import itertools

import pytest
import torch

import holotensor
from holotensor.analysis import rel_l2
from holotensor.codecs import TensorSpec
from holotensor.codecs.tensor_train import tt_svd
from holotensor.codecs.tt import TTConfig
from holotensor.dtypes import dtype_info
from holotensor.errors import DecodeError


def tt_rank_tensor(shape, rank, seed=0):
    g = torch.Generator().manual_seed(seed)
    cores, r_prev = [], 1
    for i, n in enumerate(shape):
        r = 1 if i == len(shape) - 1 else rank
        cores.append(torch.randn(r_prev, n, r, generator=g, dtype=torch.float64))
        r_prev = r
    t = cores[0]
    for c in cores[1:]:
        t = torch.tensordot(t, c, dims=([t.ndim - 1], [0]))
    return t.reshape(shape)


@pytest.mark.parametrize("shape", [(64, 48), (6, 7, 8, 9), (97, 40)])
def test_rank_prefixes_improve_and_full_is_exact(tmp_path, shape):
    x = tt_rank_tensor(shape, 4).float() if len(shape) > 2 else torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    cfg = TTConfig(rank=None, fragments=3)
    holotensor.save_file({"x": x}, tmp_path / "x.hct", codec=cfg)
    with holotensor.safe_open(tmp_path / "x.hct") as f:
        curve = f.entry("x").quality
        assert len(curve) == len(f.entry("x").fragments) >= 2
        errs = [q.rel_l2 for q in curve]
        assert all(a > b for a, b in itertools.pairwise(errs)), errs
        assert errs[-1] < 1e-5
        for q in curve:
            assert rel_l2(x, f.get_tensor("x", fragments=q.fragments)) == pytest.approx(q.rel_l2, rel=1e-5, abs=1e-7)


def test_rank_cap_matches_tt_svd_error():
    x = torch.randn(8, 9, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    cfg = TTConfig(rank=5, fragments=1)
    enc = cfg.encode(x.float())
    spec = TensorSpec(dtype_info("F32"), (8, 9, 10))
    got = cfg.decode([memoryview(p.data).cast("B") for p in enc.fragments], enc.params, spec)
    assert rel_l2(x, got) == pytest.approx(tt_svd(x, 5).rel_error, rel=1e-4)


def test_matrix_uses_tt_matrix_factors():
    from holotensor.codecs.tensor_train import factorize

    enc = TTConfig(rank=8).encode(torch.randn(96, 64))
    assert enc.params["kind"] == "matrix"
    assert enc.params["out_factors"] == list(factorize(96, 3)) and enc.params["in_factors"] == [4, 4, 4]
    assert TTConfig().encode(torch.randn(97, 40)).params["kind"] == "tensor"  # 97 is prime


def test_validation():
    for bad in (dict(rank=0), dict(order=1), dict(fragments=0), dict(core_dtype="I8"), dict(tol=1.0)):
        with pytest.raises(ValueError):
            TTConfig(**bad)
    with pytest.raises(ValueError, match="floating"):
        TTConfig().encode(torch.ones(4, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="NaN"):
        TTConfig().encode(torch.tensor([[float("inf"), 1.0], [1.0, 1.0]]))
    cfg = TTConfig(rank=3, fragments=2)
    x = torch.randn(6, 7, 8)
    enc = cfg.encode(x)
    spec = TensorSpec(dtype_info("F32"), (6, 7, 8))
    payloads = [memoryview(p.data).cast("B") for p in enc.fragments]
    with pytest.raises(DecodeError, match="bytes"):
        cfg.decode([payloads[0][:-4]], enc.params, spec)
    with pytest.raises(DecodeError, match="dims"):
        cfg.decode(payloads, enc.params, TensorSpec(dtype_info("F32"), (6, 7, 9)))
    with pytest.raises(DecodeError, match="rank level"):
        cfg.decode(payloads, {**enc.params, "levels": [[1, 2, 2]]}, spec)
    with pytest.raises(DecodeError, match="exceeds"):
        cfg.decode(payloads, {**enc.params, "levels": [[1, 99, 3, 1]]}, spec)
    empty = cfg.encode(torch.empty(0, 3))
    assert cfg.decode([], empty.params, TensorSpec(dtype_info("F32"), (0, 3))).shape == (0, 3)

"""The "spectral" codec: prefixes are the best k-term DCT approximations, quality rises with every
fragment, files round-trip through save_file / safe_open, and bad payloads raise DecodeError."""

from __future__ import annotations

import pytest
import torch

import holotensor
from holotensor.analysis import cosine, rel_l2
from holotensor.codecs.base import TensorSpec
from holotensor.codecs.dct import dct2, idct2
from holotensor.codecs.spectral import SpectralConfig, fragment_bounds
from holotensor.dtypes import dtype_info
from holotensor.errors import DecodeError


def smooth_matrix(m: int = 48, n: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, n, generator=g).cumsum(0).cumsum(1) / 10


def _views(encoded) -> list[memoryview]:
    return [memoryview(p.data).cast("B") for p in encoded.fragments]


def _best_k_terms(w: torch.Tensor, k: int) -> torch.Tensor:
    c = dct2(w.double()).reshape(-1)
    keep = torch.argsort(-c.abs(), stable=True)[:k]
    sparse = torch.zeros_like(c)
    sparse[keep] = c[keep]
    return idct2(sparse.reshape(w.shape))


@pytest.mark.parametrize("coef_dtype, full", [("F16", 1e-3), ("F32", 1e-6)])
def test_quality_rises_to_full_through_files(tmp_path, coef_dtype: str, full: float) -> None:
    w = smooth_matrix()
    cfg = SpectralConfig(fragments=4, coef_dtype=coef_dtype)
    holotensor.save_file({"w": w}, tmp_path / "w.hct", codec=cfg)
    with holotensor.safe_open(tmp_path / "w.hct") as f:
        entry = f.entry("w")
        assert entry.codec.name == "spectral" and [q.fragments for q in entry.quality] == [1, 2, 3, 4]
        counts = entry.codec.params["counts"]
        got = [f.get_tensor("w", fragments=k) for k in range(1, 5)]
        errors, cosines = [rel_l2(w, g) for g in got], [cosine(w, g) for g in got]
        assert errors[0] > errors[1] > errors[2] > errors[3] and errors[3] < full
        assert cosines[0] < cosines[1] < cosines[2] < cosines[3]
        for q, err in zip(entry.quality, errors, strict=True):
            assert q.rel_l2 == pytest.approx(err, rel=1e-6, abs=1e-9)
        for k, g in enumerate(got, start=1):  # each prefix is the best sum(counts[:k])-term approximation
            assert rel_l2(_best_k_terms(w, sum(counts[:k])).float(), g) < 10 * full
        with pytest.raises(ValueError, match="decodes from"):
            f.get_tensor("w", fragments=0)
    loaded = holotensor.load_file(tmp_path / "w.hct")
    assert rel_l2(w, loaded["w"]) == pytest.approx(errors[3], rel=1e-6, abs=1e-9)


def test_keep_drops_the_smallest_coefficients() -> None:
    w = smooth_matrix(32, 32)
    cfg = SpectralConfig(fragments=3, keep=0.25, coef_dtype="F32", growth=1.0)
    enc = cfg.encode(w)
    assert enc.params["counts"] == [85, 86, 85]
    # every fragment carries a mask over the positions still unclaimed (the last one too: some are dropped)
    assert [len(p.data) for p in enc.fragments] == [128 + 4 * 85, 118 + 4 * 86, 107 + 4 * 85]
    spec = TensorSpec(dtype_info("F32"), (32, 32))
    out = cfg.decode(_views(enc), enc.params, spec)
    assert rel_l2(_best_k_terms(w, 256).float(), out) < 1e-6
    assert 0 < rel_l2(w, out) < 0.1


@pytest.mark.parametrize("shape", [(), (1,), (17,), (3, 5, 4), (2, 1, 3, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_shapes_and_dtypes(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    cfg = SpectralConfig(fragments=3)
    enc = cfg.encode(x)
    spec = TensorSpec(dtype_info({torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16",
                                  torch.float64: "F64"}[dtype]), shape)  # fmt: skip
    out = cfg.decode(_views(enc), enc.params, spec)
    assert out.shape == shape and out.dtype == dtype
    assert rel_l2(x, out) < 1e-2


def test_scale_avoids_f16_overflow_and_underflow() -> None:
    w = smooth_matrix(16, 16)
    spec = TensorSpec(dtype_info("F32"), (16, 16))
    cfg = SpectralConfig(fragments=2)
    for scale in (1e8, 1e-9):
        enc = cfg.encode(w * scale)
        assert rel_l2(w * scale, cfg.decode(_views(enc), enc.params, spec)) < 1e-3


def test_fragment_bounds() -> None:
    assert fragment_bounds(15, 4, 2.0) == [0, 1, 3, 7, 15]
    assert fragment_bounds(12, 3, 1.0) == [0, 4, 8, 12]
    assert fragment_bounds(2, 4, 2.0) == [0, 1, 2]  # never more fragments than coefficients
    assert fragment_bounds(5, 4, 1000.0) == [0, 1, 2, 3, 5]  # each fragment keeps at least one
    assert fragment_bounds(0, 3, 2.0) == [0]


def test_masks_are_progressive() -> None:
    w = smooth_matrix(8, 8)
    enc = SpectralConfig(fragments=1, coef_dtype="F32").encode(w)
    assert len(enc.fragments[0].data) == 64 * 4  # one fragment with everything: no mask at all
    enc = SpectralConfig(fragments=3, coef_dtype="F32", growth=1.0).encode(w)
    assert enc.params["counts"] == [21, 22, 21]
    # fragment 0 masks all 64 positions, fragment 1 the 43 left, the last takes the rest unmasked
    assert [len(p.data) for p in enc.fragments] == [8 + 84, 6 + 88, 84]


def test_validation_and_bad_payloads() -> None:
    for bad in (
        {"fragments": 0},
        {"fragments": 4097},
        {"keep": 0.0},
        {"keep": 1.5},
        {"coef_dtype": "I8"},
        {"growth": 0.5},
    ):
        with pytest.raises(ValueError):
            SpectralConfig(**bad)
    with pytest.raises(ValueError, match="floating"):
        SpectralConfig().encode(torch.ones(3, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match="NaN"):
        SpectralConfig().encode(torch.tensor([[1.0, float("nan")]]))
    cfg = SpectralConfig(fragments=2)
    w = smooth_matrix(8, 6)
    enc = cfg.encode(w)
    views, spec = _views(enc), TensorSpec(dtype_info("F32"), (8, 6))
    with pytest.raises(DecodeError, match="bytes") as info:
        cfg.decode([views[0][:-2]], enc.params, spec)
    assert info.value.fragment == 0
    with pytest.raises(DecodeError, match="params say"):
        cfg.decode(views, enc.params, TensorSpec(dtype_info("F32"), (6, 8)))
    with pytest.raises(DecodeError, match="at least 1"):
        cfg.decode([], enc.params, spec)
    with pytest.raises(DecodeError, match="counts"):
        cfg.decode(views, {**enc.params, "counts": [0, 48]}, spec)
    mask = bytearray(views[0])
    mask[0] ^= 0x01  # claim one more or one fewer coefficient
    with pytest.raises(DecodeError, match="mask marks") as info:
        cfg.decode([memoryview(mask), views[1]], enc.params, spec)
    assert info.value.fragment == 0
    odd = cfg.encode(smooth_matrix(7, 6))  # 42 positions: fragment 0's mask has 6 padding bits
    padded = bytearray(odd.fragments[0].data)
    padded[5] |= 0x80
    with pytest.raises(DecodeError, match="mask marks"):
        cfg.decode([memoryview(padded)], odd.params, TensorSpec(dtype_info("F32"), (7, 6)))
    with pytest.raises(DecodeError, match="scale_exp"):
        cfg.decode(views, {**enc.params, "scale_exp": 1.5}, spec)
    with pytest.raises(DecodeError, match="floating"):
        cfg.decode(views, enc.params, TensorSpec(dtype_info("I32"), (8, 6)))
    empty = cfg.encode(torch.empty(0, 5))
    assert cfg.decode([], empty.params, TensorSpec(dtype_info("F32"), (0, 5))).shape == (0, 5)

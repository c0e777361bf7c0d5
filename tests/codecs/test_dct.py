"""The one DCT: against scipy (when installed) and a direct O(n^2) float64 matrix, inverse, 2-D,
and the upstream test-vector invariants of reference section 10."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from holotensor.analysis import cosine
from holotensor.codecs.dct import dct, dct2, idct, idct2


def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix by its definition, float64."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    m = torch.cos(math.pi * k * (i + 0.5) / n) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 17, 32, 33, 64, 127])
def test_dct_matches_direct_matrix(n: int) -> None:
    x = torch.randn(3, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    m = dct_matrix(n)
    torch.testing.assert_close(dct(x), x @ m.T, rtol=0, atol=1e-12)
    torch.testing.assert_close(idct(x), x @ m, rtol=0, atol=1e-12)
    torch.testing.assert_close(idct(dct(x)), x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (6, 1), (4, 4), (5, 12), (33, 20), (2, 9, 16)])
def test_dct2_matches_scipy(shape: tuple[int, ...]) -> None:
    scipy_fft = pytest.importorskip("scipy.fft")
    x = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = scipy_fft.dctn(x.numpy(), axes=(-2, -1), norm="ortho")
    np.testing.assert_allclose(dct2(x).numpy(), ref, rtol=0, atol=1e-12)
    inv = scipy_fft.idctn(x.numpy(), axes=(-2, -1), norm="ortho")
    np.testing.assert_allclose(idct2(x).numpy(), inv, rtol=0, atol=1e-12)
    x32 = x.float()
    assert dct2(x32).dtype == torch.float32
    np.testing.assert_allclose(dct2(x32).numpy(), ref, rtol=0, atol=2e-5)


def test_dims_dtypes_and_edges() -> None:
    x = torch.randn(4, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(dct(x, dim=1), (dct(x.transpose(1, 2))).transpose(1, 2))
    torch.testing.assert_close(dct(x, dim=0), torch.einsum("ki,ijl->kjl", dct_matrix(4), x))
    half = dct(x.half())
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, dct(x.half().double()).float(), rtol=0, atol=1e-5)
    assert dct(torch.arange(4)).dtype == torch.float32  # integers are transformed as float32
    assert dct(torch.zeros(3, 0)).shape == (3, 0) and idct(torch.zeros(0)).shape == (0,)
    # orthonormal: energy is kept (Parseval)
    assert torch.linalg.vector_norm(dct2(x)).item() == pytest.approx(torch.linalg.vector_norm(x).item())
    with pytest.raises(ValueError, match="2 dims"):
        dct2(torch.ones(3))
    with pytest.raises(ValueError, match="2 dims"):
        idct2(torch.ones(3))


def test_gradient_flows() -> None:
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: idct2(dct2(t) * 2.0), (x,), fast_mode=True)


def _topk_cosine(x: torch.Tensor, retention: float) -> float:
    """Section 10.1: keep the top max(floor(n * retention), 1) coefficients by |c| and invert."""
    c = dct2(x.double())
    k = max(int(np.float32(x.numel()) * np.float32(retention)), 1)
    flat = c.reshape(-1)
    keep = torch.argsort(-flat.abs(), stable=True)[:k]
    sparse = torch.zeros_like(flat)
    sparse[keep] = flat[keep]
    return cosine(x.double(), idct2(sparse.reshape(c.shape)))


def test_upstream_test_vectors() -> None:
    """Reference section 10.2: key coefficients and the expected cosines (f64 column)."""
    seq = torch.arange(1.0, 17.0).reshape(4, 4)
    c = dct2(seq.double())
    for (u, v), want in {
        (0, 0): 34.0,
        (1, 0): -17.843542,
        (0, 1): -4.460885,
        (3, 0): -1.268101,
        (0, 3): -0.317025,
    }.items():
        assert c[u, v].item() == pytest.approx(want, abs=5e-6)
    torch.testing.assert_close(dct2(torch.eye(4, dtype=torch.float64)), torch.eye(4, dtype=torch.float64))
    assert dct2(torch.full((4, 4), 42.0, dtype=torch.float64))[0, 0].item() == pytest.approx(168.0)
    i = torch.arange(64, dtype=torch.float32)
    gaussian = (0.5 * torch.sin(0.1 * i) * torch.cos(0.073 * i)).reshape(8, 8)
    g = dct2(gaussian.double())
    assert g[0, 0].item() == pytest.approx(1.505100, abs=1e-5) and g[4, 0].item() == pytest.approx(
        -0.829520, abs=1e-5
    )
    r = torch.arange(8, dtype=torch.float64)
    low_rank = torch.outer(2.0**-r, (-0.5) ** r)
    spike = torch.zeros(64, dtype=torch.float64)
    spike[27] = 100.0
    x64 = torch.arange(1, 65, dtype=torch.float64)
    cases = [
        (gaussian, 0.7, 0.9999975),
        (low_rank, 0.3, 0.9349028),
        (spike.reshape(8, 8), 0.5, 0.9354053),
        (torch.sin(0.1 * x64).reshape(2, 32), 0.5, 0.9999999986),
        (torch.cos(0.1 * x64).reshape(32, 2), 0.5, 0.9999998),
        (seq, 0.5, 1.0),
    ]
    for x, retention, want in cases:
        assert _topk_cosine(x, retention) == pytest.approx(want, abs=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu() -> None:
    x = torch.randn(37, 130, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(dct2(x.cuda()).cpu(), dct2(x), rtol=0, atol=1e-4)
    torch.testing.assert_close(idct2(dct2(x.cuda())).cpu(), x, rtol=0, atol=1e-4)

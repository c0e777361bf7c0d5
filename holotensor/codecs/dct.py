"""The orthonormal DCT-II and its inverse (DCT-III), in 1-D and 2-D, via ``torch.fft``.

This is the one DCT of the project: the "spectral" codec and every upstream spectral payload
(SV03, SV02, V1, HCT2/HCT3) use it. It runs wherever torch's FFT runs (CPU and CUDA) and is
differentiable. Coefficients follow ``scipy.fft.dct(norm="ortho")``::

    X[k] = s_k * sum_i x[i] * cos(pi * k * (i + 1/2) / n),   s_0 = sqrt(1/n), s_k = sqrt(2/n)

The length-n transform is one complex FFT of length n after Makhoul's reordering (even samples
ascending, then odd samples descending), so it costs O(n log n) instead of the O(n^2) direct sum.
The 2-D transform is separable: rows first, then columns (upstream's order; the result does not
depend on it in exact arithmetic).

Reference: J. Makhoul, "A fast cosine transform in one and two dimensions", IEEE Trans. ASSP 28(1),
1980.

Example:
    >>> x = torch.arange(16.0).reshape(4, 4)
    >>> round(dct2(x)[0, 0].item(), 4)  # DC = sum / sqrt(16)
    30.0
    >>> torch.allclose(idct2(dct2(x)), x, atol=1e-5)
    True
"""

from __future__ import annotations

import math

import torch

__all__ = ["dct", "dct2", "idct", "idct2"]


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 stays float64; every other dtype is computed in float32 (the FFT has no half path)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _twiddle(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """exp(-i*pi*k/(2n)) times the orthonormal scale s_k, for k = 0..n-1 (complex)."""
    k = torch.arange(n, dtype=dtype, device=device)
    angle = k * (-math.pi / (2 * n))
    scale = torch.full((n,), math.sqrt(2.0 / n), dtype=dtype, device=device)
    scale[0] = math.sqrt(1.0 / n)
    return torch.polar(scale, angle)


def dct(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Orthonormal DCT-II of ``x`` along ``dim``.

    Args:
        x: a real tensor (integer and half dtypes are computed in float32, float64 in float64).
        dim: the axis to transform.

    Returns:
        The coefficients, same shape, float32 (float64 for float64 input).

    Example:
        >>> dct(torch.ones(4))
        tensor([2., 0., 0., 0.])
    """
    x = torch.movedim(x.to(_work_dtype(x)), dim, -1)
    n = x.shape[-1]
    if n == 0:
        return torch.movedim(x.clone(), -1, dim)
    v = torch.cat([x[..., ::2], x[..., 1::2].flip(-1)], dim=-1)
    spectrum = torch.fft.fft(v, dim=-1)
    out = (spectrum * _twiddle(n, x.dtype, x.device)).real
    return torch.movedim(out.contiguous(), -1, dim)


def idct(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Orthonormal DCT-III of ``x`` along ``dim``: the exact inverse of :func:`dct`.

    From the coefficients X the FFT of Makhoul's reordered signal is
    ``V[k] = (X[k] - i X[n-k]) * conj(t_k) / s_k`` (with ``X[n] = 0``); its Hermitian half goes
    through one inverse real FFT and the samples are put back in order.

    Example:
        >>> idct(torch.tensor([2.0, 0.0, 0.0, 0.0]))
        tensor([1., 1., 1., 1.])
    """
    x = torch.movedim(x.to(_work_dtype(x)), dim, -1)
    n = x.shape[-1]
    if n == 0:
        return torch.movedim(x.clone(), -1, dim)
    half = n // 2 + 1
    t = _twiddle(n, x.dtype, x.device)[:half]
    mirrored = torch.cat([torch.zeros_like(x[..., :1]), x[..., 1:].flip(-1)], dim=-1)[..., :half]
    spectrum = torch.complex(x[..., :half], -mirrored) * (t.conj() / t.abs().square())
    v = torch.fft.irfft(spectrum, n=n, dim=-1)
    out = torch.empty_like(v)
    out[..., ::2] = v[..., : (n + 1) // 2]
    out[..., 1::2] = v[..., (n + 1) // 2 :].flip(-1)
    return torch.movedim(out, -1, dim)


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two dims (``scipy.fft.dctn(..., axes=(-2, -1), norm="ortho")``).

    Example:
        >>> torch.allclose(dct2(torch.ones(2, 2)), torch.tensor([[2.0, 0.0], [0.0, 0.0]]), atol=1e-6)
        True
    """
    if x.dim() < 2:
        raise ValueError(f"dct2 needs at least 2 dims, got shape {tuple(x.shape)}")
    return dct(dct(x, -1), -2)


def idct2(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct2`: orthonormal 2-D DCT-III over the last two dims (columns, then rows)."""
    if x.dim() < 2:
        raise ValueError(f"idct2 needs at least 2 dims, got shape {tuple(x.shape)}")
    return idct(idct(x, -2), -1)

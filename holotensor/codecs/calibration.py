"""Post-training calibration of blockquant codes: better scales, zeros and codes than plain RTN.

Every method returns a :class:`~holotensor.codecs.quant_math.QuantizedTensor` in the blockquant
layout, so ``BlockQuantConfig(...).encode_quantized(result)`` stores it as an ordinary
"blockquant" tensor that any reader decodes; calibration changes which codes are stored, never
how they are read. The quantization math itself (rounding, clamping, parameter rounding to
fp16/bf16) is :mod:`holotensor.codecs.quant_math`.

Two families:

* **Data-free** (:func:`hqq_quantize`): works on the weight alone. An MSE clipping search starts,
  HQQ's half-quadratic zero-point updates (Badri & Shaji, "Half-Quadratic Quantization of Large
  Machine Learning Models", 2023) follow, then a few least-squares refits of scale and zero given
  the codes. Per group the result with the least squared error wins, so it is never worse than
  the clipping search it starts from.
* **Activation-aware**, from the input Hessian ``H = X^T X`` of the layer (``X``: calibration
  inputs, one row per token; see :class:`HessianAccumulator`). The output error of a weight
  change ``D`` is ``tr(D H D^T)``.

  - :func:`activation_clip_quantize`: per group, the clipping ratio with the least output error
    (AWQ's clipping search, Lin et al., "AWQ: Activation-aware Weight Quantization", 2024). AWQ's
    per-input-channel scaling is not done: it must be folded into the previous operator, which a
    per-tensor codec cannot store.
  - :func:`gptq_quantize`: GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for
    Generative Pre-trained Transformers", ICLR 2023): columns are quantized one at a time and
    each rounding error is spread onto the columns not yet quantized through the Cholesky factor
    of ``H^-1``, in blocks of columns (lazy batch updates), with damping. Group scales are fixed
    before the pass ("static groups", from the activation-aware clipping search), which lets
    columns go in order of decreasing ``diag(H)`` ("act order") with the stored layout unchanged.

Data flow::

    weight (rows, K) ---------------------------> hqq_quantize -------------+
    inputs X (tokens, K) -> H = X^T X (K, K) --+-> activation_clip_quantize -+--> QuantizedTensor
                                                +-> gptq_quantize -----------+   (blockquant layout)
"""

from __future__ import annotations

import torch

from holotensor.codecs import quant_math as qm

__all__ = [
    "HessianAccumulator",
    "activation_clip_quantize",
    "check_damp",
    "check_hessian",
    "gptq_quantize",
    "hqq_quantize",
    "inverse_cholesky",
    "output_error",
]

# HQQ's published settings: l_p "norm" p < 1, penalty beta growing by kappa per iteration.
_HQQ_P = 0.7
_HQQ_BETA = 10.0
_HQQ_KAPPA = 1.01


class HessianAccumulator:
    """Running ``X^T X`` over calibration inputs of one linear layer (float64), and its token count.

    Example:
        >>> acc = HessianAccumulator(64)
        >>> acc.update(torch.randn(10, 7, 64))
        >>> acc.hessian().shape, acc.count
        (torch.Size([64, 64]), 70)
    """

    def __init__(self, in_features: int) -> None:
        if in_features < 1:
            raise ValueError(f"in_features must be >= 1, got {in_features}")
        self.sum = torch.zeros(in_features, in_features, dtype=torch.float64)
        self.count = 0

    def update(self, x: torch.Tensor) -> None:
        """Add the inputs ``x`` of shape ``(..., in_features)`` (every leading index is a token)."""
        k = self.sum.shape[0]
        if x.shape[-1] != k:
            raise ValueError(f"inputs have {x.shape[-1]} features, the accumulator {k}")
        x2 = x.detach().reshape(-1, k).to(device="cpu", dtype=torch.float32)
        if not bool(torch.isfinite(x2).all()):
            raise ValueError("calibration inputs hold NaN or Inf")
        # float32 product per batch (fast), float64 running sum (no drift over many batches)
        self.sum += (x2.T @ x2).double()
        self.count += x2.shape[0]

    def hessian(self) -> torch.Tensor:
        """``X^T X / n`` (float64); ``ValueError`` before any input was seen."""
        if self.count == 0:
            raise ValueError("no calibration inputs reached this layer")
        return self.sum / self.count


def _prepare(
    w: torch.Tensor, bits: int, group_size: int | None, symmetric: bool, scale_dtype: str | torch.dtype
) -> tuple[torch.Tensor, int, int, torch.dtype]:
    """Validated float32 2-D copy of ``w`` plus the code range and scale dtype."""
    qm.validate_bits(bits)
    qm.validate_group_size(group_size)
    sdt = qm.resolve_scale_dtype(scale_dtype)
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(w).__name__}")
    if not w.is_floating_point():
        raise ValueError(f"calibration needs a floating-point weight, got dtype {w.dtype}")
    if w.dim() != 2:
        raise ValueError(f"calibration works on 2-D weights (out, in), got shape {tuple(w.shape)}")
    wf = w.detach().to(device="cpu", dtype=torch.float32)
    bad = int((~torch.isfinite(wf)).sum())
    if bad:
        raise ValueError(f"cannot quantize a weight with {bad} NaN/Inf value(s)")
    lo, hi = qm.code_range(bits, symmetric)
    return wf, lo, hi, sdt


def check_hessian(h: torch.Tensor, k: int) -> torch.Tensor:
    """A float64 CPU copy of the ``(k, k)`` input Hessian ``h``; ``ValueError`` if it cannot be ``X^T X``."""
    if not isinstance(h, torch.Tensor) or tuple(h.shape) != (k, k):
        shape = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
        raise ValueError(f"the Hessian of a layer with {k} inputs must be {k}x{k}, got {shape}")
    hd = h.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(hd).all()):
        raise ValueError("the Hessian holds NaN or Inf")
    if bool((hd.diagonal() < 0).any()):
        raise ValueError("the Hessian has a negative diagonal entry; it is not X^T X")
    return hd


def _result(
    codes_f: torch.Tensor,
    s: torch.Tensor,
    z: torch.Tensor | None,
    lo: int,
    shape: tuple[int, int],
    bits: int,
    group_size: int | None,
    sdt: torch.dtype,
) -> qm.QuantizedTensor:
    """Pack grouped float codes ``(rows, G, gs)`` and ``(rows, G, 1)`` params as a QuantizedTensor."""
    codes = qm.ungroup(codes_f - lo, shape).to(torch.uint8)
    side = qm.scales_shape(shape, group_size)
    zeros = None if z is None else z.to(sdt).reshape(side)
    return qm.QuantizedTensor.from_codes(codes, s.to(sdt).reshape(side), zeros, bits, group_size)


def _sq_err(xg: torch.Tensor, s: torch.Tensor, z: torch.Tensor | None, lo: int, hi: int, valid: torch.Tensor):
    q = qm.codes_grouped(xg, s, z, lo, hi)
    return ((qm.values_grouped(q, s, z) - xg).square_() * valid).sum(dim=-1, keepdim=True)


def _shrink_lp(x: torch.Tensor, beta: float) -> torch.Tensor:
    """HQQ's generalized soft threshold: the proximal step of ``|x|^p`` with p < 1."""
    return torch.sign(x) * torch.relu(x.abs() - x.abs().clamp(min=1e-12).pow(_HQQ_P - 1) / beta)


def _refit(
    xg: torch.Tensor, q: torch.Tensor, valid: torch.Tensor, s: torch.Tensor, z: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Least-squares scale (and zero) for fixed codes ``q``; groups with constant codes keep ``s``/``z``."""
    n = valid.sum(dim=-1, keepdim=True).clamp(min=1)
    if z is None:
        qq = (q * q * valid).sum(dim=-1, keepdim=True)
        qw = (q * xg * valid).sum(dim=-1, keepdim=True)
        return torch.where(qq > 0, qw / qq.clamp(min=1e-30), s), None
    mq = (q * valid).sum(dim=-1, keepdim=True) / n
    mw = (xg * valid).sum(dim=-1, keepdim=True) / n
    dq = (q - mq) * valid
    var = (dq * dq).sum(dim=-1, keepdim=True)
    cov = (dq * (xg - mw)).sum(dim=-1, keepdim=True)
    ok = (var > 0) & (cov > 0)
    s_new = torch.where(ok, cov / var.clamp(min=1e-30), s)
    return s_new, torch.where(ok, mw - s_new * mq, z)


def hqq_quantize(
    w: torch.Tensor,
    bits: int,
    group_size: int | None = 128,
    symmetric: bool = False,
    scale_dtype: str | torch.dtype = "fp16",
    *,
    iters: int = 20,
    refits: int = 4,
) -> qm.QuantizedTensor:
    """Data-free calibration: clipping search, HQQ zero-point updates, least-squares refits.

    Args:
        w: 2-D float weight ``(out, in)``; groups run along ``in``.
        bits, group_size, symmetric, scale_dtype: the blockquant settings.
        iters: half-quadratic iterations (asymmetric codes only; symmetric codes have no zero).
        refits: alternations of "round to codes" and "least-squares scale/zero for those codes".

    Returns:
        A QuantizedTensor whose squared error in every group is at most the MSE clipping
        search's (``scale_search="mse"``).

    Raises:
        ValueError: bits or group size out of range, a non-2-D or non-float weight, NaN/Inf.

    Example:
        >>> qt = hqq_quantize(torch.randn(64, 256), bits=3, group_size=64)
        >>> qt.bits, qt.scales.shape
        (3, torch.Size([64, 4]))
    """
    wf, lo, hi, sdt = _prepare(w, bits, group_size, symmetric, scale_dtype)
    shape = (wf.shape[0], wf.shape[1])
    xg = qm.group_rows(wf, group_size)
    valid = qm.group_rows(torch.ones_like(wf), group_size, pad="zero")
    best_s, best_z = qm.fit_params_grouped(
        xg, lo, hi, offset=not symmetric, method="mse", scale_dtype=sdt, valid=valid
    )
    best_err = _sq_err(xg, best_s, best_z, lo, hi, valid)
    s, z = best_s.clone(), None if best_z is None else best_z.clone()
    if z is not None:
        beta = _HQQ_BETA
        for _ in range(iters):
            q = qm.codes_grouped(xg, s, z, lo, hi)
            we = _shrink_lp(xg - qm.values_grouped(q, s, z), beta)
            z = ((xg - we - q * s) * valid).sum(dim=-1, keepdim=True) / valid.sum(dim=-1, keepdim=True)
            beta *= _HQQ_KAPPA
    for _ in range(refits + 1):
        rs, rz = qm.round_params(s, z, sdt)
        err = _sq_err(xg, rs, rz, lo, hi, valid)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_s = torch.where(better, rs, best_s)
        if best_z is not None and rz is not None:
            best_z = torch.where(better, rz, best_z)
        s, z = _refit(xg, qm.codes_grouped(xg, s, z, lo, hi), valid, s, z)
    return _result(
        qm.codes_grouped(xg, best_s, best_z, lo, hi), best_s, best_z, lo, shape, bits, group_size, sdt
    )


def _hessian_blocks(h: torch.Tensor, k: int, group_size: int | None) -> torch.Tensor:
    """The diagonal ``gs x gs`` blocks of ``H`` (float32), one per group, zero-padded at the end."""
    gs = k if group_size is None else group_size
    g = -(-k // gs)
    padded = torch.zeros(g * gs, g * gs, dtype=torch.float32)
    padded[:k, :k] = h.float()
    idx = torch.arange(g)
    return padded.reshape(g, gs, g, gs)[idx, :, idx, :]


def _group_output_error(diff: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
    """``d H_gg d^T`` for every row and group of ``diff`` ``(rows, G, gs)``, shaped ``(rows, G, 1)``."""
    return torch.einsum("rgk,gkl,rgl->rg", diff, blocks, diff).unsqueeze(-1)


def _activation_clip(
    wf: torch.Tensor, blocks: torch.Tensor, group_size: int | None, lo: int, hi: int, symmetric: bool, sdt
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per group, the clipping ratio whose rounded parameters give the least output error."""
    xg = qm.group_rows(wf, group_size)
    pad_free = qm.group_rows(wf, group_size, pad="zero")  # padded positions meet zero H rows anyway
    best_s = best_z = best_err = None
    for ratio in qm.CLIP_RATIOS[::2]:  # every other ratio: each costs a (gs x gs) product per group
        s, z = qm.range_params(xg, lo, hi, offset=not symmetric, ratio=ratio, scale_dtype=sdt)
        diff = qm.values_grouped(qm.codes_grouped(xg, s, z, lo, hi), s, z) - pad_free
        err = _group_output_error(diff, blocks)
        if best_err is None:
            best_s, best_z, best_err = s, z, err
            continue
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_s = torch.where(better, s, best_s)
        if z is not None and best_z is not None:
            best_z = torch.where(better, z, best_z)
    return best_s, best_z


def activation_clip_quantize(
    w: torch.Tensor,
    hessian: torch.Tensor,
    bits: int,
    group_size: int | None = 128,
    symmetric: bool = False,
    scale_dtype: str | torch.dtype = "fp16",
) -> qm.QuantizedTensor:
    """Round to nearest with each group's clipping chosen to minimise the layer's output error.

    Args:
        w: 2-D float weight ``(out, in)``.
        hessian: ``X^T X`` (any positive scale) of the layer's inputs, ``(in, in)``.

    Raises:
        ValueError: bad settings, NaN/Inf in ``w`` or ``hessian``, a Hessian of the wrong shape.

    Example:
        >>> x = torch.randn(512, 128)
        >>> qt = activation_clip_quantize(torch.randn(32, 128), x.T @ x, bits=4, group_size=64)
        >>> qt.shape
        (32, 128)
    """
    wf, lo, hi, sdt = _prepare(w, bits, group_size, symmetric, scale_dtype)
    h = check_hessian(hessian, wf.shape[1])
    blocks = _hessian_blocks(h, wf.shape[1], group_size)
    s, z = _activation_clip(wf, blocks, group_size, lo, hi, symmetric, sdt)
    xg = qm.group_rows(wf, group_size)
    shape = (wf.shape[0], wf.shape[1])
    return _result(qm.codes_grouped(xg, s, z, lo, hi), s, z, lo, shape, bits, group_size, sdt)


def check_damp(damp: float) -> None:
    """``ValueError`` unless ``damp`` (diagonal damping as a fraction of ``mean(diag H)``) is in (0, 1]."""
    if isinstance(damp, bool) or not isinstance(damp, (int, float)) or not 0 < damp <= 1:
        raise ValueError(f"damp must be in (0, 1], got {damp!r}")


def inverse_cholesky(h: torch.Tensor, damp: float) -> torch.Tensor:
    """Upper Cholesky factor of ``(H + damp * mean(diag H) * I)^-1`` (float32); more damping if needed."""
    k = h.shape[0]
    mean_diag = float(h.diagonal().mean()) or 1.0
    eye = torch.eye(k, dtype=torch.float64)
    for attempt in range(6):
        factor, info = torch.linalg.cholesky_ex(h + (damp * 10**attempt) * mean_diag * eye)
        if int(info) == 0:
            inv = torch.cholesky_inverse(factor)
            upper, info = torch.linalg.cholesky_ex(inv, upper=True)
            if int(info) == 0:
                return upper.float()
    raise ValueError(f"the Hessian is not positive definite even with damping {damp * 1e5:g} x mean(diag)")


def gptq_quantize(
    w: torch.Tensor,
    hessian: torch.Tensor,
    bits: int,
    group_size: int | None = 128,
    symmetric: bool = False,
    scale_dtype: str | torch.dtype = "fp16",
    *,
    damp: float = 0.1,
    block_size: int = 128,
    act_order: bool = True,
) -> qm.QuantizedTensor:
    """GPTQ: quantize column by column, feeding each rounding error forward through ``H^-1``.

    Args:
        w: 2-D float weight ``(out, in)``; groups run along ``in``.
        hessian: ``X^T X`` of the layer's inputs ``(in, in)``; inputs never seen (zero diagonal)
            are quantized plainly.
        damp: added to the diagonal as a fraction of its mean (raised tenfold, up to five times,
            until the Cholesky factorisation succeeds). The paper uses 0.01; with the few thousand
            calibration tokens of a CPU run, 0.1 generalized better on MiniLM.
        block_size: columns per lazy batch update.
        act_order: quantize columns in order of decreasing ``diag(H)`` (group scales are fixed
            beforehand, so the stored layout is the usual one).

    Raises:
        ValueError: bad settings, NaN/Inf in ``w`` or ``hessian``, a Hessian of the wrong shape,
            or one that damping cannot make positive definite.

    Example:
        >>> x = torch.randn(512, 128)
        >>> qt = gptq_quantize(torch.randn(32, 128), x.T @ x, bits=3, group_size=64)
        >>> qt.dequantize().shape
        torch.Size([32, 128])
    """
    wf, lo, hi, sdt = _prepare(w, bits, group_size, symmetric, scale_dtype)
    check_damp(damp)
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    rows, k = wf.shape
    h = check_hessian(hessian, k).clone()
    dead = h.diagonal() == 0
    h[dead, dead] = 1.0
    s, z = _activation_clip(wf, _hessian_blocks(h, k, group_size), group_size, lo, hi, symmetric, sdt)
    gs = k if group_size is None else group_size
    perm = torch.argsort(h.diagonal(), descending=True, stable=True) if act_order else torch.arange(k)
    col_group = perm // gs
    s_cols, z_cols = s[:, :, 0][:, col_group], None if z is None else z[:, :, 0][:, col_group]
    work = wf[:, perm].clone()
    u = inverse_cholesky(h[perm][:, perm], damp)
    codes = torch.empty(rows, k)
    for i1 in range(0, k, block_size):
        i2 = min(i1 + block_size, k)
        block = work[:, i1:i2]
        errs = torch.empty(rows, i2 - i1)
        u_block = u[i1:i2, i1:i2]
        for j in range(i2 - i1):
            c = i1 + j
            zc = None if z_cols is None else z_cols[:, c]
            q = qm.codes_grouped(block[:, j], s_cols[:, c], zc, lo, hi)
            codes[:, c] = q
            err = (block[:, j] - qm.values_grouped(q, s_cols[:, c], zc)) / u_block[j, j]
            block[:, j + 1 :] -= err[:, None] * u_block[j, j + 1 :][None, :]
            errs[:, j] = err
        work[:, i2:] -= errs @ u[i1:i2, i2:]
    inverse = torch.argsort(perm)
    grouped = qm.group_rows(codes[:, inverse], group_size, pad="edge")
    return _result(grouped, s, z, lo, (rows, k), bits, group_size, sdt)


def output_error(w: torch.Tensor, approx: torch.Tensor, hessian: torch.Tensor) -> float:
    """Relative output error ``tr(D H D^T) / tr(W H W^T)`` of ``approx`` for inputs with ``H = X^T X``.

    Example:
        >>> x = torch.randn(256, 64); w = torch.randn(8, 64)
        >>> output_error(w, w, x.T @ x)
        0.0
    """
    wd = w.detach().double()
    h = check_hessian(hessian, wd.shape[-1])
    d = approx.detach().double() - wd
    den = float(torch.einsum("ik,kl,il->", wd, h, wd))
    return float(torch.einsum("ik,kl,il->", d, h, d)) / den if den > 0 else 0.0

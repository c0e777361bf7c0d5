"""Calibrated codebook codes: choose codes and fit codebooks against a layer's output error.

Plain vector quantization (:mod:`holotensor.codecs.vq_math`) minimizes the weight error
``||W - W_hat||^2``. What matters is the output error ``tr(D H D^T)`` of ``D = W - W_hat`` for the
layer's inputs ``H = X^T X`` (see :mod:`holotensor.codecs.calibration`). Two steps attack it:

* :func:`gptvq_codes`: GPTVQ (van Baalen et al., "GPTVQ: The Blessing of Dimensionality for LLM
  Quantization", 2024), GPTQ's error feedback with vectors instead of scalars. Groups of ``d``
  columns are coded one at a time; with ``U`` the upper Cholesky factor of ``H^-1`` (restricted to
  the columns not yet coded) and ``B`` the group's columns, the output cost of an error ``e`` on
  ``B`` is ``|| e U_BB^-1 ||^2`` once the later columns absorb it optimally, so each vector takes the
  codeword nearest in that metric, and the later columns ``F`` move by ``-(e U_BB^-1) U_BF``.
  Groups go in order of decreasing input energy (``diag H``), the vector analogue of GPTQ's act
  order; the stored layout does not change.
* :func:`fit_codebooks`: with the codes fixed, codebooks and per-row scales follow the gradient of
  the relative output error (Adam), AQLM's codebook update phase.

:func:`gptvq_quantize` chains them after a k-means fit weighted by ``diag H``::

    W, H --k-means (weights diag H)--> codebooks --gptvq_codes--> codes --fit_codebooks--> CodebookTensor
"""

from __future__ import annotations

import bisect
import itertools

import torch

from holotensor.codecs import vq_math as vm
from holotensor.codecs.calibration import check_damp, check_hessian, inverse_cholesky

__all__ = ["fit_codebooks", "gptvq_codes", "gptvq_quantize", "param_groups"]


def _check_positive_int(name: str, value: int, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _weight_rows(w: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``w`` as the float32 CPU ``(N, K)`` row view of ``shape``; ``ValueError`` on a mismatch or NaN."""
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        raise ValueError(f"calibration needs a floating-point weight, got {type(w).__name__}")
    if tuple(w.shape) != tuple(shape):
        raise ValueError(f"weight has shape {tuple(w.shape)}, the codes are for {tuple(shape)}")
    wf = w.detach().to(device="cpu", dtype=torch.float32).reshape(vm.row_view(tuple(shape)))
    if not bool(torch.isfinite(wf).all()):
        raise ValueError("cannot quantize a weight with NaN or Inf values")
    return wf


def _group_order(h_diag: torch.Tensor, k: int, d: int, act_order: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Groups in coding order and the matching column permutation (each group's columns stay together)."""
    groups = -(-k // d)
    idx = torch.arange(groups * d).reshape(groups, d)
    valid = idx < k
    if act_order:
        energy = torch.where(valid, h_diag[idx.clamp(max=k - 1)], torch.zeros(())).sum(dim=1)
        order = torch.argsort(energy, descending=True, stable=True)
    else:
        order = torch.arange(groups)
    return order, idx[order][valid[order]]


def gptvq_codes(
    w: torch.Tensor,
    hessian: torch.Tensor,
    ct: vm.CodebookTensor,
    *,
    damp: float = 0.1,
    beam: int = 1,
    act_order: bool = True,
    block_size: int = 128,
) -> vm.CodebookTensor:
    """New codes for ``w`` against ``ct``'s codebooks and scales, chosen with GPTVQ error feedback.

    Args:
        w: the original weight (``ct.shape``); the Hessian is over its last dimension ``K``.
        hessian: ``X^T X`` (or ``/ n``) of the layer's inputs, ``(K, K)``; unseen inputs (zero
            diagonal) are coded plainly.
        ct: codebooks (fp16), per-row scales and layout to code against; its codes are ignored.
        damp: diagonal damping as a fraction of the mean of ``diag H`` (as in GPTQ).
        beam: width of the joint search over residual stages, in the output metric.
        act_order: code groups in order of decreasing input energy.
        block_size: columns per lazy batch update of the later columns.

    Raises:
        ValueError: bad settings, a weight or Hessian that does not fit ``ct``, NaN/Inf.

    Example:
        >>> x = torch.randn(256, 32); w = torch.randn(16, 32)
        >>> ct = vm.quantize(w, dim=4, bits=4)
        >>> gptvq_codes(w, x.T @ x, ct).codes.shape
        torch.Size([1, 16, 8])
    """
    check_damp(damp)
    _check_positive_int("beam", beam)
    _check_positive_int("block_size", block_size)
    wf = _weight_rows(w, ct.shape)
    n, k = wf.shape
    h = check_hessian(hessian, k).clone()
    dead = h.diagonal() == 0
    h[dead, dead] = 1.0
    stages, _, d = ct.codebooks.shape
    order, cols = _group_order(h.diagonal(), k, d, act_order)
    u = inverse_cholesky(h[cols][:, cols], damp)
    work = wf[:, cols].clone()
    inv_s = torch.ones(n) if ct.scales is None else 1.0 / ct.scales.float().cpu()
    s = 1.0 / inv_s
    cbs = ct.codebooks.float().cpu()
    codes = torch.empty(stages, n, order.numel(), dtype=torch.int64)
    widths = [min(d, k - int(g) * d) for g in order]
    ends = list(itertools.accumulate(widths))

    def end_of_block(first: int) -> int:
        """The first group boundary at least ``block_size`` columns after ``first`` (or ``K``)."""
        return ends[min(bisect.bisect_left(ends, first + block_size), len(ends) - 1)]

    start, block_start, errs = 0, 0, []
    block_end = end_of_block(0)
    for g, width in zip(order.tolist(), widths, strict=True):
        a, b = start, start + width
        lower = torch.linalg.solve_triangular(u[a:b, a:b], torch.eye(width), upper=True)  # U_BB^-1
        c = cbs[:, :, :width]
        x = (work[:, a:b] * inv_s[:, None]) @ lower
        cd = vm.assign(x, c @ lower, beam)
        codes[:, :, g] = cd
        q = c[0][cd[0]]
        for stage in range(1, stages):
            q = q + c[stage][cd[stage]]
        err = (work[:, a:b] - s[:, None] * q) @ lower
        work[:, b:block_end] -= err @ u[a:b, b:block_end]
        errs.append(err)
        start = b
        if start == block_end and start < k:
            work[:, start:] -= torch.cat(errs, dim=1) @ u[block_start:start, start:]
            block_start, errs, block_end = start, [], end_of_block(start)
    return vm.CodebookTensor(codes, ct.codebooks, ct.scales, ct.shape, ct.bits)


def param_groups(codebooks: torch.Tensor, scales: torch.Tensor | None, lr: float) -> list[dict]:
    """Optimizer groups: codebooks at ``lr``, scales at ``lr`` times their mean magnitude, so that
    one step moves both by a similar fraction whatever the weights' scale."""
    groups: list[dict] = [{"params": [codebooks], "lr": lr}]
    if scales is not None:
        size = float(scales.detach().abs().mean()) if scales.numel() else 1.0
        groups.append({"params": [scales], "lr": lr * max(size, 1e-8)})
    return groups


def fit_codebooks(
    codebooks: torch.Tensor,
    scales: torch.Tensor | None,
    codes: torch.Tensor,
    w: torch.Tensor,
    hessian: torch.Tensor,
    *,
    steps: int = 20,
    lr: float = 1e-2,
) -> list[float]:
    """Fit ``codebooks`` (and ``scales``) in place, codes fixed, to the relative output error.

    Minimizes ``tr(D H D^T) / tr(W H W^T)`` with ``D = W - reconstruct(codes, codebooks, scales)``
    by ``steps`` Adam steps (groups from :func:`param_groups`). ``codebooks`` and ``scales`` are
    float leaf tensors (e.g. a :class:`~holotensor.nn.CodebookDecoder`'s parameters); the work
    runs on ``codebooks``' device.

    Returns:
        The loss before each step and after the last (``steps + 1`` values).

    Raises:
        ValueError: shapes that do not fit, a bad Hessian, NaN/Inf.
    """
    _check_positive_int("steps", steps, 0)
    shape = tuple(w.shape)
    device = codebooks.device
    wf = _weight_rows(w, shape).to(device)
    h = check_hessian(hessian, wf.shape[1]).float().to(device)
    norm = ((wf @ h) * wf).sum().clamp(min=torch.finfo(torch.float32).tiny)
    params = [codebooks] + ([] if scales is None else [scales])
    was = [p.requires_grad for p in params]
    opt = torch.optim.Adam(param_groups(codebooks, scales, lr))
    losses = []
    try:
        for p in params:
            p.requires_grad_(True)
        for step in range(steps + 1):
            with torch.enable_grad():
                diff = wf - vm.reconstruct(codes, codebooks, scales, shape).reshape(wf.shape)
                loss = ((diff @ h) * diff).sum() / norm
            losses.append(float(loss.detach()))
            if step == steps:
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    finally:
        for p, flag in zip(params, was, strict=True):
            p.requires_grad_(flag)
            p.grad = None
    return losses


def gptvq_quantize(
    w: torch.Tensor,
    hessian: torch.Tensor,
    *,
    dim: int,
    bits: int,
    stages: int = 1,
    scale: bool = True,
    iters: int = 20,
    beam: int = 1,
    seed: int = 0,
    damp: float = 0.1,
    steps: int = 20,
    lr: float = 1e-2,
) -> vm.CodebookTensor:
    """Codebook quantization of ``w`` calibrated on its inputs' Hessian (see the module docstring).

    k-means weighted by ``diag H`` (:func:`~holotensor.codecs.vq_math.quantize`), then
    :func:`gptvq_codes`, then ``steps`` steps of :func:`fit_codebooks`.

    Raises:
        ValueError: bad settings, a Hessian that does not fit ``w``, NaN/Inf values.

    Example:
        >>> x = torch.randn(512, 64); w = torch.randn(32, 64)
        >>> ct = gptvq_quantize(w, x.T @ x, dim=4, bits=6, steps=5)
        >>> ct.codes.shape, ct.codebooks.dtype
        (torch.Size([1, 32, 16]), torch.float16)
    """
    if not isinstance(w, torch.Tensor) or w.dim() < 1:
        raise ValueError("calibrated codebook quantization needs a weight with at least one dimension")
    h = check_hessian(hessian, w.shape[-1])
    w = w.detach().cpu()  # calibration runs on the CPU, as GPTQ's does here
    ct = vm.quantize(w, dim=dim, bits=bits, stages=stages, scale=scale, iters=iters, beam=beam, seed=seed,
                     importance=h.diagonal().float())  # fmt: skip
    ct = gptvq_codes(w, h, ct, damp=damp, beam=beam)
    if steps == 0:
        return ct
    cbs = ct.codebooks.float().clone()
    sc = None if ct.scales is None else ct.scales.float().clone()
    fit_codebooks(cbs, sc, ct.codes, w, h, steps=steps, lr=lr)
    return vm.CodebookTensor.rounded(ct.codes, cbs, sc, ct.shape, ct.bits)

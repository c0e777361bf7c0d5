"""Fidelity of a compressed model's embeddings against the original's, on the same inputs.

Weight-space errors (rel-L2, SQNR) say how far the weights moved; these numbers say how much the
model's behaviour moved: how close each embedding stays to its original (cosine), and whether the
model still ranks pairs of inputs by similarity in the same order (Spearman over all pairs, and
agreement of every input's nearest neighbour). Computed in float64 on the CPU.
"""

from __future__ import annotations

import math

import torch

__all__ = ["average_ranks", "embedding_fidelity", "spearman"]


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """1-based ranks of a 1-D tensor in float64, tied values sharing the mean of their ranks.

    Example:
        >>> average_ranks(torch.tensor([10.0, 30.0, 20.0, 30.0])).tolist()
        [1.0, 3.5, 2.0, 3.5]
    """
    if values.dim() != 1:
        raise ValueError(f"average_ranks takes a 1-D tensor, got shape {tuple(values.shape)}")
    sorted_vals, order = torch.sort(values, stable=True)
    _, group, counts = torch.unique_consecutive(sorted_vals, return_inverse=True, return_counts=True)
    last = torch.cumsum(counts, 0).double()  # rank of the last member of each tie group
    mean_rank = last - (counts.double() - 1.0) / 2.0
    ranks = torch.empty(values.shape[0], dtype=torch.float64, device=values.device)
    ranks[order] = mean_rank[group]
    return ranks


def _pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    denom = (torch.linalg.vector_norm(xc) * torch.linalg.vector_norm(yc)).item()
    if denom == 0.0:
        return math.nan
    return float(torch.dot(xc, yc).item() / denom)


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman rank correlation of two equal-length 1-D tensors (ties by average rank).

    Returns NaN when either side is constant, where the correlation is undefined.

    Example:
        >>> spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([30.0, 20.0, 10.0]))
        -1.0
    """
    if x.dim() != 1 or x.shape != y.shape:
        raise ValueError(
            f"spearman takes two 1-D tensors of one length, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[0] < 2:
        raise ValueError(f"spearman needs at least 2 values, got {x.shape[0]}")
    return _pearson(average_ranks(x.double()), average_ranks(y.double()))


def _unit_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    norms = torch.linalg.vector_norm(x, dim=1)
    return x / torch.where(norms == 0, 1.0, norms)[:, None], norms


def embedding_fidelity(reference: torch.Tensor, candidate: torch.Tensor) -> dict[str, float | int]:
    """Compare embeddings [n, d] of the same n inputs from a reference and a candidate model.

    Returns:
        A dict:
        ``mean_cosine``, ``min_cosine``: cosine between each row and its reference row (1.0 when
        both rows are zero, 0.0 when only one is);
        ``spearman``: rank correlation between the two models' pairwise cosine similarities over
        all n(n-1)/2 pairs i < j (NaN if one model's similarities are all equal);
        ``top1_agreement``: fraction of rows whose most similar other row is the same under both
        models (first index on ties);
        ``n``: the number of rows.

    Raises:
        TypeError: an argument is not a floating-point tensor.
        ValueError: the shapes differ, are not [n, d] with n >= 3, or a value is NaN or infinite.

    Example:
        >>> ref = torch.randn(50, 384)
        >>> embedding_fidelity(ref, ref + 0.01 * torch.randn(50, 384))["spearman"] > 0.99
        True
    """
    for name, t in (("reference", reference), ("candidate", candidate)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got {type(t).__name__}")
    if reference.shape != candidate.shape:
        raise ValueError(
            f"shape mismatch: reference {tuple(reference.shape)} vs candidate {tuple(candidate.shape)}"
        )
    if reference.dim() != 2 or reference.shape[0] < 3 or reference.shape[1] < 1:
        raise ValueError(f"embeddings must be [n, d] with n >= 3 and d >= 1, got {tuple(reference.shape)}")
    ref = reference.detach().double().cpu()
    cand = candidate.detach().double().cpu()
    for name, t in (("reference", ref), ("candidate", cand)):
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} embeddings contain NaN or infinite values")

    ref_u, ref_norm = _unit_rows(ref)
    cand_u, cand_norm = _unit_rows(cand)
    row_cos = (ref_u * cand_u).sum(dim=1)
    both_zero = (ref_norm == 0) & (cand_norm == 0)
    row_cos = torch.where(both_zero, 1.0, row_cos).clamp(-1.0, 1.0)

    n = ref.shape[0]
    sim_ref, sim_cand = ref_u @ ref_u.T, cand_u @ cand_u.T
    i, j = torch.triu_indices(n, n, offset=1)
    rho = _pearson(average_ranks(sim_ref[i, j]), average_ranks(sim_cand[i, j]))

    diagonal = torch.eye(n, dtype=torch.bool)
    nn_ref = sim_ref.masked_fill(diagonal, -math.inf).argmax(dim=1)
    nn_cand = sim_cand.masked_fill(diagonal, -math.inf).argmax(dim=1)

    return {
        "mean_cosine": float(row_cos.mean().item()),
        "min_cosine": float(row_cos.min().item()),
        "spearman": rho,
        "top1_agreement": float((nn_ref == nn_cand).double().mean().item()),
        "n": n,
    }

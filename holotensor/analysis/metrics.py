"""Weight-space quality metrics, computed in float64 so that tiny errors are not rounded away."""

from __future__ import annotations

import math

import torch

__all__ = ["cosine", "order0_entropy_bits", "rel_l2", "sqnr_db"]


def _pair(reference: torch.Tensor, approx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if reference.shape != approx.shape:
        raise ValueError(f"shape mismatch: reference {tuple(reference.shape)} vs approx {tuple(approx.shape)}")
    return reference.detach().reshape(-1).double().cpu(), approx.detach().reshape(-1).double().cpu()


def rel_l2(reference: torch.Tensor, approx: torch.Tensor) -> float:
    """||reference - approx|| / ||reference||; 0.0 when both are zero, inf when only the reference is."""
    ref, app = _pair(reference, approx)
    err = torch.linalg.vector_norm(ref - app).item()
    norm = torch.linalg.vector_norm(ref).item()
    if norm == 0.0:
        return 0.0 if err == 0.0 else math.inf
    return err / norm


def cosine(reference: torch.Tensor, approx: torch.Tensor) -> float:
    """Cosine similarity of the flattened tensors; 1.0 when both are zero, 0.0 when one is."""
    ref, app = _pair(reference, approx)
    nr, na = torch.linalg.vector_norm(ref).item(), torch.linalg.vector_norm(app).item()
    if nr == 0.0 or na == 0.0:
        return 1.0 if nr == na else 0.0
    return float(torch.dot(ref, app).item() / (nr * na))


def sqnr_db(reference: torch.Tensor, approx: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB (inf for an exact match)."""
    r = rel_l2(reference, approx)
    return math.inf if r == 0.0 else -20.0 * math.log10(r)


def order0_entropy_bits(symbols: torch.Tensor, alphabet: int) -> float:
    """Total order-0 (memoryless) entropy in bits of integer ``symbols`` in ``[0, alphabet)``.

    This is the size floor for any coder that models symbols independently (Huffman, FSE, ANS
    without context), the yardstick of the lossless codec.
    """
    counts = torch.bincount(symbols.reshape(-1).long(), minlength=alphabet).double()
    total = counts.sum().item()
    if total == 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(counts[counts > 0] * torch.log2(p)).sum().item())

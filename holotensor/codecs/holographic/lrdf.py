"""Upstream low-rank distributed (LRDF) payloads: writer (rank-1 terms, or raw) and reader.

Upstream factors the (rows, cols) matrix by deflated power iteration: ``rank = min(max_rank, rows,
cols)`` components, each started from ``cols`` normals of one shared ``SeededRng(42)`` (the
header seed is ignored), 20 iterations of ``u = A v / |A v|, v = A^T u / |A^T u|`` (a vector is
only normalised when its norm exceeds 1e-10), then ``sigma = |A v|``, ``u = A v / sigma`` and
``A -= sigma u v^T``. With ``cpf = ceil(rank / F)``, fragment k holds components
``[k*cpf, min((k+1)*cpf, rank))``, contiguous, largest first::

    payload = rows u32 | cols u32 | count u32 | count x (sigma f32, u[rows] f32, v[cols] f32)

``count = 0xFFFFFFFF`` marks the lossless raw mode: ``rows*cols`` f32 values that are *added* to
the sum (no upstream writer; :func:`encode_lrdf_raw` writes it). A subset of fragments decodes to
the sum of its rank-1 terms. This writer runs the same iteration in float32 with torch matmuls,
so it matches upstream to float tolerance, not bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from holotensor.codecs.holographic._layout import Payload, as_bytes, read_array, read_u32s
from holotensor.codecs.holographic.rng import normals
from holotensor.errors import DecodeError

__all__ = ["LRDF_RAW", "decode_lrdf", "encode_lrdf", "encode_lrdf_raw"]

LRDF_RAW = 0xFFFFFFFF
_HEADER = 12
_ITERATIONS = 20
_SEED = 42
_TINY = 1e-10


def _normalised(x: torch.Tensor) -> torch.Tensor:
    norm = torch.linalg.vector_norm(x)
    return x / norm if norm > _TINY else x


def _components(a: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """sigma[rank], U[rank, rows], V[rank, cols] by upstream's deflated power iteration (float32)."""
    rows, cols = a.shape
    starts = torch.from_numpy(normals(_SEED, rank * cols)).reshape(rank, cols)
    sigma, us, vs = torch.zeros(rank), torch.zeros(rank, rows), torch.zeros(rank, cols)
    for r in range(rank):
        v = starts[r]
        for _ in range(_ITERATIONS):
            u = _normalised(a @ v)
            v = _normalised(a.T @ u)
        av = a @ v
        s = torch.linalg.vector_norm(av)
        u = av / s if s > 0 else torch.zeros_like(av)
        a = a - s * torch.outer(u, v)
        sigma[r], us[r], vs[r] = s, u, v
    return sigma, us, vs


def encode_lrdf(matrix: torch.Tensor, fragments: int, max_rank: int = 256) -> list[bytes]:
    """Upstream ``LrdfEncoder`` output: F fragments of contiguous rank-1 components.

    Example:
        >>> [len(p) for p in encode_lrdf(torch.eye(2), 2)]
        [32, 32]
    """
    if matrix.dim() != 2:
        raise ValueError(f"encode_lrdf takes a 2-D matrix, got shape {tuple(matrix.shape)}")
    if not isinstance(fragments, int) or not 1 <= fragments <= 0xFFFF:
        raise ValueError(f"fragments must be an integer in [1, 65535], not {fragments!r}")
    if not isinstance(max_rank, int) or max_rank < 1:
        raise ValueError(f"max_rank must be a positive integer, not {max_rank!r}")
    a = matrix.detach().cpu().float()
    rows, cols = a.shape
    rank = min(max_rank, rows, cols)
    sigma, us, vs = _components(a, rank)
    body = torch.cat([sigma[:, None], us, vs], dim=1).numpy().astype("<f4")  # [rank, 1+rows+cols]
    cpf = -(-rank // fragments)
    out = []
    for k in range(fragments):
        part = body[k * cpf : min((k + 1) * cpf, rank)]
        head = np.array([rows, cols, part.shape[0]], dtype="<u4")
        out.append(head.tobytes() + part.tobytes())
    return out


def encode_lrdf_raw(matrix: torch.Tensor) -> bytes:
    """One lossless raw-mode LRDF payload (count 0xFFFFFFFF, then the matrix as f32)."""
    if matrix.dim() != 2:
        raise ValueError(f"encode_lrdf_raw takes a 2-D matrix, got shape {tuple(matrix.shape)}")
    rows, cols = matrix.shape
    head = np.array([rows, cols, LRDF_RAW], dtype="<u4")
    return head.tobytes() + matrix.detach().cpu().float().numpy().astype("<f4").tobytes()


def decode_lrdf(
    fragments: Sequence[tuple[int | None, Payload]],
    rows: int,
    cols: int,
    *,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Sum the rank-1 terms (and raw blocks) of LRDF fragments into a (rows, cols) float32 matrix.

    Raises:
        DecodeError: a payload's rows/cols disagree with the shape ("dimension mismatch") or its
            length with its component count.
    """
    out = torch.zeros(rows, cols, dtype=torch.float32, device=device)
    for index, payload in fragments:
        data = as_bytes(payload)
        r, c, count = read_u32s(data, 0, 3, "LRDF header", index)
        if (r, c) != (rows, cols):
            raise DecodeError(
                f"LRDF dimension mismatch: payload is {r}x{c}, the tensor is {rows}x{cols}", fragment=index
            )
        if count == LRDF_RAW:
            raw = read_array(data, _HEADER, rows * cols, "<f4", "LRDF raw values", index)
            out += torch.from_numpy(raw.copy()).to(device).reshape(rows, cols)
            continue
        body = read_array(data, _HEADER, count * (1 + rows + cols), "<f4", "LRDF components", index)
        terms = torch.from_numpy(body.copy()).to(device).reshape(count, 1 + rows + cols)
        scaled_u = terms[:, :1] * terms[:, 1 : 1 + rows]
        out += scaled_u.T @ terms[:, 1 + rows :]
    return out

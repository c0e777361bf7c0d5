"""Upstream random-projection (RPH) payloads: writer and back-projecting reader.

Fragment k of F projects the flattened tensor x (n values) onto ``proj_dim`` Gaussian directions
drawn from ``SeededRng(frag_seed)`` (:mod:`.rng`), with ``frag_seed = seed + k * 0x9E3779B97F4A7C15``
(wrapping) and ``proj_dim = max(n // F, 64)`` unless given. The matrix is drawn row by row (row p
uses normals ``p*n .. p*n+n-1``) and scaled by ``1/sqrt(proj_dim)``::

    payload = proj_dim u32 | frag_seed u64 | y[proj_dim] f32,   y = (R @ x) / sqrt(proj_dim)

The reader regenerates R from the *stored* seed and back-projects:
``x_hat_i = sum_p y_p P_pi / sum_p P_pi^2`` with ``P = R / sqrt(proj_dim)`` (0 where the weight is
below 1e-10). That is not a least-squares solve, so even all fragments give only about unit SNR
(error energy ~ n / total projections); quality grows with every fragment, and no fragment is
special. Cost is ``proj_dim * n`` normals per fragment, about n^2 for a full set, so both sides
refuse work above a limit (:data:`RPH_MAX_WORK` normals per call).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from holotensor.codecs.holographic._layout import Payload, as_bytes, read_array, read_u32s
from holotensor.codecs.holographic.rng import normals
from holotensor.errors import DecodeError, LimitError

__all__ = ["RPH_MAX_WORK", "RPH_SEED_STEP", "decode_rph", "encode_rph", "rph_fragment_seed"]

RPH_SEED_STEP = 0x9E3779B97F4A7C15
RPH_MAX_WORK = 1 << 31  # normals per encode/decode call: about 3 minutes on one CPU core
_HEADER = 12
_CHUNK = 1 << 22  # normals generated at once (16 MiB of float32)
_MASK64 = (1 << 64) - 1


def rph_fragment_seed(seed: int, k: int) -> int:
    """Upstream's per-fragment seed ``seed + k * 0x9E3779B97F4A7C15`` (mod 2^64)."""
    return (seed + k * RPH_SEED_STEP) & _MASK64


def _rows(seed: int, n: int, proj_dim: int) -> Iterator[tuple[int, int, np.ndarray, np.float32]]:
    """Chunks ``(p0, p1, R[p0:p1], scale)`` of one fragment's float32 normals, row-major as upstream."""
    scale = np.float32(1.0) / np.sqrt(np.float32(proj_dim))
    step = max(1, _CHUNK // max(n, 1))
    for p0 in range(0, proj_dim, step):
        p1 = min(proj_dim, p0 + step)
        yield p0, p1, normals(seed, (p1 - p0) * n, start=p0 * n).reshape(p1 - p0, n), scale


def _check_work(work: int, what: str) -> None:
    if work > RPH_MAX_WORK:
        raise LimitError(
            f"{what} needs {work} random normals, above the limit of {RPH_MAX_WORK} (RPH costs proj_dim * n "
            "per fragment, about n^2 in all)"
        )


def encode_rph(x: torch.Tensor, fragments: int, seed: int = 0, proj_dim: int | None = None) -> list[bytes]:
    """Upstream ``RphEncoder`` output for the flattened ``x``: F fragments of ``proj_dim`` projections.

    Raises:
        ValueError: bad ``fragments``/``proj_dim``.
        LimitError: the projections would need more than :data:`RPH_MAX_WORK` normals.

    Example:
        >>> len(encode_rph(torch.tensor([1.0, 2.0, 3.0, 4.0]), 2, seed=42)[0])
        268
    """
    if not isinstance(fragments, int) or not 1 <= fragments <= 0xFFFF:
        raise ValueError(f"fragments must be an integer in [1, 65535], not {fragments!r}")
    flat = x.detach().cpu().reshape(-1).double().numpy()
    n = flat.size
    dim = max(n // fragments, 64) if proj_dim is None else proj_dim
    if not isinstance(dim, int) or not 1 <= dim <= 0xFFFFFFFF:
        raise ValueError(f"proj_dim must be an integer in [1, 2^32), not {proj_dim!r}")
    _check_work(fragments * dim * n, f"RPH encoding of {n} values into {fragments} x {dim} projections")
    out = []
    for k in range(fragments):
        frag_seed = rph_fragment_seed(seed, k)
        y = np.empty(dim, dtype=np.float32)
        for p0, p1, rows, scale in _rows(frag_seed, n, dim):
            y[p0:p1] = (rows.astype(np.float64) @ flat).astype(np.float32) * scale
        head = np.array([dim], dtype="<u4").tobytes() + np.array([frag_seed], dtype="<u8").tobytes()
        out.append(head + y.astype("<f4").tobytes())
    return out


def decode_rph(
    fragments: Sequence[tuple[int | None, Payload]], n: int, *, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Back-project RPH fragments into the flattened tensor (n float32 values).

    Args:
        fragments: ``(fragment index or None, payload)`` pairs; each is applied once, in order.
        n: the tensor's element count.

    Raises:
        DecodeError: a payload's length disagrees with its ``proj_dim``.
        LimitError: the fragments need more than :data:`RPH_MAX_WORK` normals to regenerate.
    """
    parsed = []
    for index, payload in fragments:
        data = as_bytes(payload)
        (dim,) = read_u32s(data, 0, 1, "RPH header", index)
        if data.nbytes < _HEADER:
            raise DecodeError(
                f"RPH payload of {data.nbytes} bytes is shorter than its 12-byte header", fragment=index
            )
        if dim == 0:
            raise DecodeError("RPH fragment has proj_dim 0", fragment=index)
        seed = int(np.frombuffer(data[4:12], dtype="<u8")[0])
        parsed.append((seed, dim, read_array(data, _HEADER, dim, "<f4", "RPH projections", index)))
    _check_work(
        sum(dim for _, dim, _ in parsed) * n, f"RPH decoding of {len(parsed)} fragments into {n} values"
    )
    acc = np.zeros(n, dtype=np.float64)
    weight = np.zeros(n, dtype=np.float64)
    for seed, dim, y in parsed:
        for p0, p1, rows, scale in _rows(seed, n, dim):
            proj = rows * scale
            acc += y[p0:p1].astype(np.float64) @ proj
            weight += np.einsum("pi,pi->i", proj, proj, dtype=np.float64)
    out = np.zeros(n, dtype=np.float32)
    ok = weight > 1e-10
    out[ok] = acc[ok] / weight[ok]
    return torch.from_numpy(out).to(device)

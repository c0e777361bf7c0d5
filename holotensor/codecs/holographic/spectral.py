"""Upstream spectral payloads: the SV03 writer and the SV03 / SV02 / untagged V1 reader.

All three hold orthonormal 2-D DCT coefficients (:mod:`holotensor.codecs.dct`) of the tensor's
matrix; the reader scatters what the given fragments hold into one coefficient array (missing
coefficients are zero) and inverts the DCT. Layouts (little-endian):

* **SV03** (magic ``b"SV03"``): ``magic, n, F, start, count`` (u32 each), then ``count`` f32
  coefficients at raster positions ``start, start+F, ...``. Fragment k of F has ``start = k`` and
  ``count = ceil((n - k) / F)``, so fragment 0 alone holds the DC term; each fragment may carry
  its own F. Later fragments overwrite earlier ones at the same position.
* **SV02** (magic ``b"SV02"``): fragment 0 is ``magic, num_coeffs, F``, then ``num_coeffs`` u32
  raster positions in importance order, then the f32 values of ranks 0, F, 2F, ...; fragment k is
  ``magic, slice_offset, slice_count``, then values of ranks ``slice_offset + j*F``, where F is
  the larger of fragment 0's F and the file's fragment count (as upstream). Fragment 0 is required.
* **V1** (no magic; anything not SV03/SV02): ``essential_count, detail_count`` (u32; upstream
  ignores them, and so does this reader), then ``(u32 index, f32 value)`` pairs. The first value
  for a position wins, also against coefficients an SV03 fragment set before.

Checks beyond upstream (which silently skips or truncates): exact payload lengths, positions and
ranks within the tensor, SV02 mixed with other layouts, a fragment count of 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from holotensor.codecs.dct import dct2, idct2
from holotensor.codecs.holographic._layout import Payload, as_bytes, read_array, read_u32s
from holotensor.errors import DecodeError

__all__ = ["SV02_MAGIC", "SV03_MAGIC", "decode_spectral", "encode_sv03"]

SV03_MAGIC = 0x33305653
SV02_MAGIC = 0x32305653
_SV03_HEADER = 20
_SV02_HEADER = 12
_V1_HEADER = 8


def encode_sv03(matrix: torch.Tensor, fragments: int) -> list[bytes]:
    """Upstream ``SpectralEncoder`` output: F raster-interleaved SV03 fragments of a 2-D tensor.

    Args:
        matrix: the (rows, cols) matrix, any float dtype (transformed in float64, stored as f32).
        fragments: F, at least 1.

    Example:
        >>> [len(p) for p in encode_sv03(torch.zeros(4, 4), 2)]
        [52, 52]
    """
    if matrix.dim() != 2:
        raise ValueError(f"encode_sv03 takes a 2-D matrix, got shape {tuple(matrix.shape)}")
    if not isinstance(fragments, int) or not 1 <= fragments <= 0xFFFF:
        raise ValueError(f"fragments must be an integer in [1, 65535], not {fragments!r}")
    coeffs = dct2(matrix.detach().cpu().double()).reshape(-1).float().numpy()
    n = coeffs.size
    out = []
    for k in range(fragments):
        values = coeffs[k::fragments].astype("<f4")
        head = np.array([SV03_MAGIC, n, fragments, k, values.size], dtype="<u4")
        out.append(head.tobytes() + values.tobytes())
    return out


def _sv03(acc: np.ndarray, is_set: np.ndarray, data: memoryview, fragment: int | None) -> None:
    _, n, step, start, count = read_u32s(data, 0, 5, "SV03 header", fragment)
    if n != acc.size:
        raise DecodeError(
            f"SV03 fragment holds {n} coefficients, the tensor has {acc.size}", fragment=fragment
        )
    if step == 0:
        raise DecodeError("SV03 fragment count F is 0", fragment=fragment)
    most = max(0, -(-(n - start) // step))
    if count > most:
        raise DecodeError(
            f"SV03 fragment claims {count} coefficients from position {start} in steps of {step}, "
            f"only {most} fit in {n}",
            fragment=fragment,
        )
    values = read_array(data, _SV03_HEADER, count, "<f4", "SV03 coefficients", fragment)
    pos = start + step * np.arange(count, dtype=np.int64)
    acc[pos] = values
    is_set[pos] = True


def _v1(acc: np.ndarray, is_set: np.ndarray, data: memoryview, fragment: int | None) -> None:
    if data.nbytes < _V1_HEADER or (data.nbytes - _V1_HEADER) % 8:
        raise DecodeError(
            f"V1 spectral payload of {data.nbytes} bytes is not an 8-byte header plus 8-byte "
            "(index, value) pairs (or an unknown payload)",
            fragment=fragment,
        )
    pairs = np.frombuffer(data[_V1_HEADER:], dtype=[("index", "<u4"), ("value", "<f4")])
    index = pairs["index"].astype(np.int64)
    if index.size and int(index.max()) >= acc.size:
        raise DecodeError(
            f"V1 spectral pair names coefficient {int(index.max())}, the tensor has {acc.size}",
            fragment=fragment,
        )
    index, first = np.unique(index, return_index=True)  # the first value for a position wins
    fresh = ~is_set[index]
    acc[index[fresh]] = pairs["value"][first[fresh]]
    is_set[index[fresh]] = True


def _sv02(fragments: Sequence[tuple[int, memoryview]], n: int, total_fragments: int) -> np.ndarray:
    """Coefficients of an SV02 set: values by importance rank, placed by fragment 0's order."""
    head = [data for index, data in fragments if index == 0]
    if not head:
        raise DecodeError("SV02 spectral fragments need fragment 0 (it holds the importance order)")
    data = head[0]
    _, num_coeffs, step = read_u32s(data, 0, 3, "SV02 fragment 0 header", 0)
    if num_coeffs > n:
        raise DecodeError(f"SV02 orders {num_coeffs} coefficients, the tensor has {n}", fragment=0)
    if step == 0:
        raise DecodeError("SV02 fragment count F is 0", fragment=0)
    order_end = _SV02_HEADER + 4 * num_coeffs
    if data.nbytes < order_end or (data.nbytes - order_end) % 4:
        raise DecodeError(
            f"SV02 fragment 0 of {data.nbytes} bytes cannot hold a {num_coeffs}-entry order plus f32 values",
            fragment=0,
        )
    order = np.frombuffer(data[_SV02_HEADER:order_end], dtype="<u4").astype(np.int64)
    if order.size and int(order.max()) >= n:
        raise DecodeError(f"SV02 order names coefficient {int(order.max())}, the tensor has {n}", fragment=0)
    if np.unique(order).size != order.size:
        raise DecodeError("SV02 importance order repeats a coefficient", fragment=0)
    by_rank = np.zeros(num_coeffs, dtype=np.float32)
    stride = max(step, total_fragments)
    for index, payload in fragments:
        if index == 0:
            offset, start = order_end, 0
            count = (payload.nbytes - order_end) // 4
            stride_here = step
        else:
            _, start, count = read_u32s(payload, 0, 3, "SV02 fragment header", index)
            offset, stride_here = _SV02_HEADER, stride
        values = read_array(payload, offset, count, "<f4", "SV02 values", index)
        ranks = start + stride_here * np.arange(count, dtype=np.int64)
        if count and int(ranks[-1]) >= num_coeffs:
            raise DecodeError(
                f"SV02 values reach rank {int(ranks[-1])}, fragment 0 orders only {num_coeffs}",
                fragment=index,
            )
        by_rank[ranks] = values
    coeffs = np.zeros(n, dtype=np.float32)
    coeffs[order] = by_rank
    return coeffs


def decode_spectral(
    fragments: Sequence[tuple[int, Payload]],
    rows: int,
    cols: int,
    *,
    total_fragments: int = 0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Reconstruct the (rows, cols) float32 matrix from spectral fragments (SV03, SV02 or V1).

    Args:
        fragments: ``(fragment index, payload)`` pairs, applied in the given order.
        rows, cols: the matrix the header's shape gives.
        total_fragments: the file's fragment count (SV02 uses it for its rank stride).
        device: where the inverse DCT runs and the result lives.

    Raises:
        DecodeError: a payload is malformed or disagrees with the shape (naming its fragment).
    """
    n = rows * cols
    views = [(int(i), as_bytes(p)) for i, p in fragments]
    magics = [int.from_bytes(v[:4], "little") if v.nbytes >= 4 else None for _, v in views]
    if SV02_MAGIC in magics:
        if any(m != SV02_MAGIC for m in magics):
            raise DecodeError("SV02 spectral fragments are mixed with fragments of another layout")
        coeffs = _sv02(views, n, total_fragments)
    else:
        coeffs = np.zeros(n, dtype=np.float32)
        is_set = np.zeros(n, dtype=bool)
        for (index, data), magic in zip(views, magics, strict=True):
            (_sv03 if magic == SV03_MAGIC else _v1)(coeffs, is_set, data, index)
    spectrum = torch.from_numpy(coeffs).to(device).reshape(rows, cols)
    return idct2(spectrum)

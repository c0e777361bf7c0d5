"""Upstream "compressive spectral" payloads, HCT3 (f16) and HCT2 (f32): reader and HCT3/HCT2 writer.

These are the fragments inside upstream's "hct_v3" model files (not HTNS). The encoder keeps the
``retain`` largest-magnitude 2-D DCT coefficients of a (height, width) matrix, marks them in a
bitmap, and sorts them by raster position; the first ``essential`` go in fragment 0 and the rest
in detail fragments of ``dpf`` values each. Layouts (little-endian)::

    fragment 0: magic u32 (0x48435433 HCT3 / 0x48435432 HCT2; file bytes "3TCH" / "2TCH")
                width u32 | height u32 | retain u32 | essential u32 | dpf u32
                bitmap[ceil(width*height/8)] (bit i%8 of byte i/8, LSB first) | essential values
    fragment k: k u16 | N u16 | count u32 | count values  (sorted positions essential+(k-1)*dpf+j)

The retained count is ``retain = max(trunc(n * retention), 1)`` (retention clamped to [0.05, 1]),
``essential = max(trunc(retain * essential_ratio), 1)`` (ratio clamped to [0.05, 1]) and
``dpf = ceil((retain - essential) / (N - 1))``; magnitude ties keep the lower raster index.
Values are f16 (HCT3) or f32 (HCT2). Fragment 0 is required; missing detail fragments leave their
coefficients zero; a repeated detail fragment rewrites the same positions. Checks beyond upstream:
exact lengths, ``k >= 1`` (upstream underflows on 0), value ranges within ``retain``, no bitmap
bits past the matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from holotensor.codecs.dct import dct2, idct2
from holotensor.codecs.holographic._layout import Payload, as_bytes, read_array, read_u32s
from holotensor.errors import DecodeError

__all__ = ["HCT2_MAGIC", "HCT3_MAGIC", "decode_compressive", "encode_compressive"]

HCT3_MAGIC = 0x48435433
HCT2_MAGIC = 0x48435432
_HEADER = 24
_DETAIL_HEADER = 8
_VALUE_DTYPES = {HCT3_MAGIC: "<f2", HCT2_MAGIC: "<f4"}


def encode_compressive(
    matrix: torch.Tensor,
    fragments: int,
    retention: float,
    essential_ratio: float = 0.2,
    *,
    f16: bool = True,
) -> list[bytes]:
    """Upstream ``CompressiveSpectralEncoder`` output for a (height, width) matrix: HCT3 (or HCT2).

    One deliberate difference: with ``fragments == 1`` upstream silently drops the detail
    coefficients; here every retained coefficient goes into fragment 0 instead (still a valid
    payload for upstream's reader).

    Example:
        >>> [len(p) for p in encode_compressive(torch.eye(4), 2, 0.25)]
        [28, 14]
    """
    if matrix.dim() != 2:
        raise ValueError(f"encode_compressive takes a 2-D matrix, got shape {tuple(matrix.shape)}")
    if not isinstance(fragments, int) or not 1 <= fragments <= 0xFFFF:
        raise ValueError(f"fragments must be an integer in [1, 65535], not {fragments!r}")
    height, width = matrix.shape
    n = height * width
    if n == 0:
        raise ValueError("encode_compressive needs a non-empty matrix")
    coeffs = dct2(matrix.detach().cpu().double()).reshape(-1).float()
    retention = min(max(float(retention), 0.05), 1.0)
    ratio = min(max(float(essential_ratio), 0.05), 1.0)
    retain = max(int(np.float32(n) * np.float32(retention)), 1)
    essential = retain if fragments == 1 else max(int(np.float32(retain) * np.float32(ratio)), 1)
    dpf = -(-(retain - essential) // (fragments - 1)) if fragments > 1 else 0
    kept = np.sort(torch.argsort(-coeffs.abs(), stable=True)[:retain].numpy())
    bits = np.zeros(-(-n // 8) * 8, dtype=np.uint8)
    bits[kept] = 1
    magic, vdtype = (HCT3_MAGIC, "<f2") if f16 else (HCT2_MAGIC, "<f4")
    values = coeffs.numpy()[kept].astype(vdtype)
    head = np.array([magic, width, height, retain, essential, dpf], dtype="<u4").tobytes()
    out = [head + np.packbits(bits, bitorder="little").tobytes() + values[:essential].tobytes()]
    for k in range(1, fragments):
        part = values[min(essential + (k - 1) * dpf, retain) : min(essential + k * dpf, retain)]
        out.append(
            np.array([k, fragments], dtype="<u2").tobytes()
            + np.array([part.size], dtype="<u4").tobytes()
            + part.tobytes()
        )
    return out


def _magic(data: memoryview) -> int | None:
    return int.from_bytes(data[:4], "little") if data.nbytes >= 4 else None


def decode_compressive(
    fragments: Sequence[tuple[int | None, Payload]],
    *,
    shape: tuple[int, int] | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Reconstruct the (height, width) float32 matrix from HCT3 or HCT2 fragments.

    Args:
        fragments: ``(fragment index or None, payload)`` pairs; fragment 0 is found by its magic.
        shape: the (height, width) the caller expects, checked against fragment 0.
        device: where the inverse DCT runs.

    Raises:
        DecodeError: fragment 0 missing or repeated, or a payload malformed.

    Example:
        >>> head = bytes.fromhex("33544348" "01000000" "01000000" "01000000" "01000000" "00000000" "01" "003c")
        >>> decode_compressive([(0, head)])
        tensor([[1.]])
    """
    views = [(index, as_bytes(p)) for index, p in fragments]
    heads = [(index, v) for index, v in views if _magic(v) in _VALUE_DTYPES]
    if len(heads) != 1:
        raise DecodeError(f"compressive spectral fragments need exactly one fragment 0 (found {len(heads)})")
    index0, head = heads[0]
    magic, width, height, retain, essential, dpf = read_u32s(head, 0, 6, "compressive header", index0)
    n = width * height
    if shape is not None and tuple(shape) != (height, width):
        raise DecodeError(
            f"compressive fragment 0 is {height}x{width}, expected {shape[0]}x{shape[1]}", fragment=index0
        )
    if not essential <= retain <= n:
        raise DecodeError(
            f"compressive header keeps {retain} of {n} coefficients with {essential} essential",
            fragment=index0,
        )
    vdtype = _VALUE_DTYPES[magic]
    bitmap_len = -(-n // 8)
    if head.nbytes < _HEADER + bitmap_len:
        raise DecodeError(
            f"compressive fragment 0 of {head.nbytes} bytes cannot hold a {bitmap_len}-byte bitmap",
            fragment=index0,
        )
    bits = np.unpackbits(
        np.frombuffer(head[_HEADER : _HEADER + bitmap_len], dtype=np.uint8), bitorder="little"
    )
    if bits[n:].any():
        raise DecodeError("compressive bitmap marks positions past the matrix", fragment=index0)
    positions = np.flatnonzero(bits[:n])
    if positions.size != retain:
        raise DecodeError(f"bitmap has {positions.size} set bits, expected {retain}", fragment=index0)
    values = np.zeros(retain, dtype=np.float32)
    values[:essential] = read_array(head, _HEADER + bitmap_len, essential, vdtype, "essential values", index0)
    for index, data in views:
        if data is head:
            continue
        if data.nbytes < _DETAIL_HEADER:
            raise DecodeError(
                f"compressive detail payload of {data.nbytes} bytes is shorter than its header",
                fragment=index,
            )
        k, total = np.frombuffer(data[:4], dtype="<u2").tolist()
        (count,) = read_u32s(data, 4, 1, "compressive detail header", index)
        if not 1 <= k < total:
            raise DecodeError(f"compressive detail fragment says it is {k} of {total}", fragment=index)
        first = essential + (k - 1) * dpf
        if first + count > retain:
            raise DecodeError(
                f"detail fragment {k} fills sorted positions {first}..{first + count}, only {retain} are kept",
                fragment=index,
            )
        values[first : first + count] = read_array(
            data, _DETAIL_HEADER, count, vdtype, "detail values", index
        )
    coeffs = np.zeros(n, dtype=np.float32)
    coeffs[positions] = values
    return idct2(torch.from_numpy(coeffs).to(device).reshape(height, width))

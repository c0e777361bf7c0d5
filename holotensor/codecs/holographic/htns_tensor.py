"""HTNS files <-> tensors: decode any set of an :class:`~holotensor.format.htns.HtnsReader`'s
fragments, and make the upstream-compatible payloads :func:`~holotensor.format.htns.write_htns`
frames.

The tensor is viewed as upstream's HTNS matrix (:func:`htns_matrix_shape`): the header keeps the
original shape, so the result has exactly that shape.

Example:
    >>> from holotensor.format.htns import HtnsEncoding, HtnsReader, encode_htns
    >>> x = torch.arange(16.0).reshape(4, 4)
    >>> data = encode_htns(encode_htns_payloads(x, HtnsEncoding.SPECTRAL, fragments=2),
    ...                    encoding=HtnsEncoding.SPECTRAL, shape=x.shape)
    >>> torch.allclose(decode_htns(HtnsReader(data)), x, atol=1e-4)
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from holotensor.codecs.holographic._layout import htns_matrix_shape
from holotensor.codecs.holographic.lrdf import decode_lrdf, encode_lrdf
from holotensor.codecs.holographic.random_projection import decode_rph, encode_rph
from holotensor.codecs.holographic.spectral import decode_spectral, encode_sv03
from holotensor.errors import DecodeError, HoloTensorError
from holotensor.format.htns import MAX_NDIM, HtnsEncoding, HtnsReader

__all__ = ["decode_htns", "encode_htns_payloads"]


def _selection(reader: HtnsReader, fragments: int | Iterable[int] | None) -> list[int]:
    """The fragment indices to decode, ascending and each once."""
    present = sorted(reader.fragment_indices)
    if fragments is None:
        chosen = present
    elif isinstance(fragments, int):
        if not 1 <= fragments <= len(present):
            raise ValueError(
                f"{reader.name}: fragments={fragments}, the file has {len(present)} (need 1..{len(present)})"
            )
        chosen = present[:fragments]
    else:
        chosen = sorted(set(fragments))
        missing = [i for i in chosen if not isinstance(i, int) or i not in set(present)]
        if missing:
            raise ValueError(f"{reader.name}: no fragment(s) {missing}; the file holds {present}")
    if not chosen:
        raise ValueError(f"{reader.name}: decoding needs at least one fragment")
    return chosen


def decode_htns(
    reader: HtnsReader,
    fragments: int | Iterable[int] | None = None,
    *,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Decode an HTNS tensor from a set of its fragments, as float32 in the header's shape.

    Args:
        reader: an open HTNS reader.
        fragments: ``None`` for all, an int k for the first k, or the fragment indices to use
            (missing ones contribute nothing: zero coefficients, fewer projections or terms).
        device: where the result is produced.

    Raises:
        ValueError: ``fragments`` names fragments the file does not have, or none.
        DecodeError: the header's shape disagrees with ``original_size``, or a payload is
            malformed (naming the file and fragment); ChecksumError etc. from the reader.
        LimitError: an RPH file too costly to regenerate.
    """
    header = reader.header
    shape = tuple(int(d) for d in header.shape)
    numel = math.prod(shape)
    if numel * header.dtype.element_bytes != header.original_size:
        raise DecodeError(
            f"header shape {shape} has {numel} {header.dtype.name} elements, but original_size is "
            f"{header.original_size} bytes",
            file=reader.name,
        )
    chosen = _selection(reader, fragments)
    rows, cols = htns_matrix_shape(shape)
    try:
        pairs = [(i, reader.fragment(i).data) for i in chosen]
        if header.encoding == HtnsEncoding.SPECTRAL:
            out = decode_spectral(pairs, rows, cols, total_fragments=reader.total_fragments, device=device)
        elif header.encoding == HtnsEncoding.RANDOM_PROJECTION:
            out = decode_rph(pairs, numel, device=device)
        else:
            out = decode_lrdf(pairs, rows, cols, device=device)
    except HoloTensorError as err:
        raise err.located(file=reader.name) from None
    return out.reshape(shape)


def encode_htns_payloads(
    tensor: torch.Tensor,
    encoding: HtnsEncoding,
    *,
    fragments: int = 8,
    seed: int = 0,
    max_rank: int = 256,
    proj_dim: int | None = None,
) -> list[bytes]:
    """Upstream ``HoloTensorEncoder`` payloads (SV03, RPH or LRDF) for ``tensor``, fragment 0 first.

    Pass them to :func:`~holotensor.format.htns.write_htns` with the same ``encoding``,
    ``shape=tensor.shape`` and, for RPH, the same ``seed`` (upstream records it in the header).

    Args:
        tensor: a float tensor of at most 4 dims (HTNS holds no more).
        encoding: spectral, random projection or low-rank.
        fragments: how many fragments (upstream default 8).
        seed: the RPH seed (LRDF uses upstream's fixed 42; spectral needs none).
        max_rank: LRDF components kept at most.
        proj_dim: RPH projections per fragment (default ``max(n // fragments, 64)``).

    Raises:
        ValueError: more than 4 dims, a non-float tensor, NaN/Inf, or bad settings.
        LimitError: RPH on a tensor too large for its O(n^2) cost.
    """
    if tensor.dim() > MAX_NDIM:
        raise ValueError(f"HTNS holds at most {MAX_NDIM} dims, got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise ValueError(f"HTNS payloads hold float tensors, not {tensor.dtype}")
    if not torch.isfinite(tensor).all():
        raise ValueError("HTNS payloads cannot encode NaN or Inf values")
    matrix = tensor.detach().cpu().reshape(htns_matrix_shape(tuple(tensor.shape)))
    encoding = HtnsEncoding(encoding)
    if encoding == HtnsEncoding.SPECTRAL:
        return encode_sv03(matrix, fragments)
    if encoding == HtnsEncoding.RANDOM_PROJECTION:
        return encode_rph(matrix, fragments, seed, proj_dim)
    return encode_lrdf(matrix, fragments, max_rank)

"""Tensor <-> stored fragments: a codec followed by the entropy stage, with the quality curve.

This is the one place where codecs meet entropy coders, so the API, the converter and the CLI all
encode and decode the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from holotensor.analysis import cosine, rel_l2
from holotensor.codecs.base import CodecConfig, StoredView, TensorSpec, codec_from_dict
from holotensor.dtypes import dtype_info, from_torch
from holotensor.entropy.base import get_coder
from holotensor.errors import HoloTensorError
from holotensor.format.hct2 import StoredFragment
from holotensor.format.hct2_header import CodecRecord, QualityPoint, TensorEntry

__all__ = ["EncodedTensor", "decode_tensor", "encode_tensor"]


@dataclass
class EncodedTensor:
    """Everything the container needs to store one tensor."""

    dtype: str
    shape: tuple[int, ...]
    codec: CodecRecord
    fragments: list[StoredFragment]
    quality: list[QualityPoint]


def encode_tensor(
    tensor: torch.Tensor,
    config: CodecConfig,
    *,
    measure_quality: bool = True,
    release: Callable[[], None] | None = None,
) -> EncodedTensor:
    """Encode ``tensor`` with ``config`` and entropy-code every fragment.

    The quality of each decodable fragment prefix is measured against ``tensor`` (float64
    rel-L2 and cosine) unless the codec is lossless, where it is exact by construction.
    ``release`` is called once the source is no longer read (a lossless tensor: right after the
    codec, before the entropy stage), so a streaming converter can drop its pages early.
    """
    info = from_torch(tensor.dtype)
    tensor = tensor.detach().cpu()
    encoded = config.encode(tensor)
    exact = config.lossless or not measure_quality
    if exact and release is not None:
        release()
        release = None
    fragments = []
    for payload in encoded.fragments:
        view = memoryview(payload.data).cast("B")
        stored, params = get_coder(payload.coding).encode_parts(view, payload.coding_options)
        fragments.append(StoredFragment(stored, view.nbytes, payload.coding, params, payload.role))
        if exact:
            payload.data = None  # no prefix will be decoded: free the raw payload before the next one
    record = CodecRecord(config.name, config.version, config.to_dict(), encoded.params)
    spec = TensorSpec(info, tuple(tensor.shape))
    n = len(fragments)
    if n == 0 or exact:
        quality = [QualityPoint(n, 0.0, 1.0, measured=False)] if n and config.lossless else []
    else:
        payloads = [memoryview(p.data).cast("B") for p in encoded.fragments]
        quality = []
        for k in range(config.min_fragments(encoded.params, n), n + 1):
            approx = config.decode(payloads[:k], encoded.params, spec)
            quality.append(QualityPoint(k, rel_l2(tensor, approx), cosine(tensor, approx), measured=True))
    if release is not None:
        release()
    return EncodedTensor(info.name, spec.shape, record, fragments, quality)


def decode_tensor(
    entry: TensorEntry,
    fetch: Callable[[int], memoryview],
    *,
    fragments: int | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Decode the first ``fragments`` fragments (all by default) of ``entry``.

    Args:
        entry: the tensor's index entry.
        fetch: returns the checksum-verified stored bytes of fragment ``i``.
        fragments: how many leading fragments to use; must be one the codec can decode.
        device: where the tensor is produced.

    Raises:
        HoloTensorError subclasses naming the tensor (and fragment); the caller adds the file.
    """
    try:
        config = codec_from_dict(entry.codec.name, entry.codec.version, entry.codec.config)
        n = len(entry.fragments)
        k = n if fragments is None else fragments
        lowest = config.min_fragments(entry.codec.params, n)
        if not lowest <= k <= n:
            raise ValueError(
                f"tensor {entry.name!r} decodes from {lowest}..{n} fragments (codec {config.name!r}), not {k}"
            )
        spec = TensorSpec(dtype_info(entry.dtype), entry.shape)
        stored = [StoredView(fetch(i), f.raw_size, f.coding, f.coding_params) for i, f in enumerate(entry.fragments[:k])]
        if k == n:
            fast = config.decode_stored(stored, entry.codec.params, spec, device=device)
            if fast is not None:
                return fast
        payloads = [_payload(i, view) for i, view in enumerate(stored)]
        return config.decode(payloads, entry.codec.params, spec, device=device)
    except HoloTensorError as exc:
        raise exc.located(tensor=entry.name) from exc


def _payload(index: int, stored: StoredView) -> memoryview:
    """Entropy-decode one fragment (checking its coding parameters first)."""
    try:
        coder = get_coder(stored.coding)
        coder.check(stored.coding_params, stored.data.nbytes, stored.raw_size)
        return memoryview(coder.decode(stored.data, stored.coding_params, stored.raw_size))
    except HoloTensorError as exc:
        raise exc.located(fragment=index) from exc


"""The one write path: tensors (produced lazily) -> codec per policy -> HCT V2 file.

Tensors are encoded in a small thread pool (the codecs release the GIL in libzstd and in torch)
and written in order; at most ``max_inflight_bytes`` of source tensors are being encoded at once
(but always at least one tensor), so memory stays near twice the largest tensor however big
the checkpoint is.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import torch

from holotensor.api.policy import Policy
from holotensor.codecs.pipeline import EncodedTensor, encode_tensor
from holotensor.format.hct2 import HCT2Writer
from holotensor.format.hct2_header import TensorEntry

__all__ = ["TensorSource", "write_hct2"]


@dataclass(frozen=True)
class TensorSource:
    """A tensor to be written, loaded only when its turn comes (and released once encoded)."""

    name: str
    nbytes: int
    load: Callable[[], torch.Tensor]
    release: Callable[[], None] | None = None


def write_hct2(
    path: str | os.PathLike[str],
    sources: Iterable[TensorSource],
    policy: Policy,
    *,
    metadata: Mapping[str, str] | None = None,
    workers: int | None = None,
    max_inflight_bytes: int | None = None,
    on_tensor: Callable[[TensorEntry], None] | None = None,
) -> list[TensorEntry]:
    """Encode ``sources`` with ``policy`` and write them, in order, to ``path`` atomically.

    Args:
        workers: encoding threads (default: the CPU count, at most 4).
        max_inflight_bytes: bound on source bytes being encoded at once (default: 256 MiB); a
            tensor larger than the bound is encoded alone.
        on_tensor: called with each entry as it is written (progress bars).
    """
    workers = workers or min(4, os.cpu_count() or 1)
    budget = max_inflight_bytes if max_inflight_bytes is not None else 256 << 20

    def job(source: TensorSource) -> EncodedTensor:
        tensor = source.load()
        return encode_tensor(tensor, policy.codec_for(source.name, tensor), release=source.release)

    with HCT2Writer(path, metadata) as writer, ThreadPoolExecutor(workers) as pool:
        pending: deque[tuple[TensorSource, Future[EncodedTensor]]] = deque()
        inflight = 0

        def drain_one() -> None:
            nonlocal inflight
            source, future = pending.popleft()
            enc = future.result()
            inflight -= source.nbytes
            entry = writer.add(source.name, enc.dtype, enc.shape, enc.codec, enc.fragments, enc.quality)
            if on_tensor is not None:
                on_tensor(entry)

        try:
            for source in sources:
                while pending and (inflight + source.nbytes > budget or len(pending) >= 2 * workers):
                    drain_one()
                pending.append((source, pool.submit(job, source)))
                inflight += source.nbytes
            while pending:
                drain_one()
        except BaseException:
            for _, future in pending:
                future.cancel()
            raise
        return writer.tensors

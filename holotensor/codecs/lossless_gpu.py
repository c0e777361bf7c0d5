"""The lossless codec's device path: compressed planes cross to the device once (staged through
pinned memory), the Triton zstd decoder expands every frame of every plane in one batch, and the
field-merge kernel rebuilds the tensor there. Decompressed data never returns to the host; the
only host work is the frame table and the few frames the kernels hand back (status FALLBACK:
dictionary or skippable frames, which holotensor never writes), decoded with libzstd.

``triton_kernels`` is imported only when this path runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from holotensor.codecs.base import StoredView, TensorSpec
from holotensor.entropy.base import get_coder
from holotensor.entropy.fields import PlaneLayout
from holotensor.entropy.zstd import frame_spans
from holotensor.errors import DecodeError

__all__ = ["decode_planes_on_device", "device_decoder_available"]


def device_decoder_available() -> bool:
    """Whether the Triton kernels can be imported (Triton installed)."""
    try:
        import triton_kernels  # noqa: F401
    except ImportError:
        return False
    return True


def decode_planes_on_device(
    stored: Sequence[StoredView], layout: PlaneLayout, spec: TensorSpec, device: torch.device | str
) -> torch.Tensor:
    """Decode zstd-framed, already checked planes of ``layout`` into a tensor on ``device``.

    Raises:
        DecodeError: a frame the kernels found corrupt (naming the fragment, i.e. the plane, and
            the frame), or one the CPU fallback rejects.
    """
    from triton_kernels import STATUS_FALLBACK, STATUS_NAMES, STATUS_OK, decode_frames, merge_planes

    device = torch.device(device)
    numel = spec.numel
    frame_offsets, frame_sizes, out_offsets, out_sizes, owner = [], [], [], [], []
    base = 0
    for plane, view in enumerate(stored):
        for index, ((a, b), (c, d)) in enumerate(frame_spans(view.coding_params, numel)):
            frame_offsets.append(base + a)
            frame_sizes.append(b - a)
            out_offsets.append(plane * numel + c)
            out_sizes.append(d - c)
            owner.append((plane, index))
        base += view.data.nbytes
    host = torch.empty(base, dtype=torch.uint8, pin_memory=device.type == "cuda")
    staging, pos = host.numpy(), 0
    for view in stored:
        staging[pos : pos + view.data.nbytes] = np.frombuffer(view.data, dtype=np.uint8)
        pos += view.data.nbytes
    compressed = host.to(device, non_blocking=True)
    out = torch.empty(len(stored) * numel, dtype=torch.uint8, device=device)
    status = decode_frames(compressed, frame_offsets, frame_sizes, out, out_offsets, out_sizes).cpu()
    coder = get_coder("zstd")
    for j in torch.nonzero(status != STATUS_OK).flatten().tolist():
        plane, index = owner[j]
        code = int(status[j])
        if code != STATUS_FALLBACK:
            raise DecodeError(f"zstd frame {index}: {STATUS_NAMES.get(code, code)} (device decoder)", fragment=plane)
        (a, b), _ = frame_spans(stored[plane].coding_params, numel)[index]
        data = bytearray(out_sizes[j])
        coder.decode_frame_into(stored[plane].data[a:b], memoryview(data), index)
        out[out_offsets[j] : out_offsets[j] + out_sizes[j]] = torch.frombuffer(data, dtype=torch.uint8).to(device)
    planes = [out[p * numel : (p + 1) * numel] for p in range(len(stored))]
    segments = [[(seg.src, seg.width, seg.dst) for seg in plane] for plane in layout.planes]
    return merge_planes(planes, spec.dtype.torch_dtype, segments).reshape(spec.shape)

"""GPU kernels in Triton, each with a torch reference; imports torch, triton and numpy only.

holotensor reaches these lazily, for ``device="cuda"``; on machines without a GPU the tests run
them under ``TRITON_INTERPRET=1``.
"""

from triton_kernels.field_merge import merge_planes, merge_planes_ref
from triton_kernels.zstd import STATUS_FALLBACK, STATUS_NAMES, STATUS_OK, decode_frames

__all__ = [
    "STATUS_FALLBACK",
    "STATUS_NAMES",
    "STATUS_OK",
    "decode_frames",
    "merge_planes",
    "merge_planes_ref",
]

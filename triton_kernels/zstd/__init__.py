"""GPU zstd decoding of many independent frames per launch (see :mod:`triton_kernels.zstd.decode`)."""

from triton_kernels.zstd.decode import decode_frames
from triton_kernels.zstd.layout import STATUS_FALLBACK, STATUS_NAMES, STATUS_OK

__all__ = ["STATUS_FALLBACK", "STATUS_NAMES", "STATUS_OK", "decode_frames"]

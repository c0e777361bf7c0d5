"""Byte-level entropy coding, by id: "zstd" (independent frames, libzstd) and "raw"."""

from holotensor.entropy import raw as _raw  # noqa: F401  (registers "raw")
from holotensor.entropy import zstd as _zstd  # noqa: F401  (registers "zstd")
from holotensor.entropy.base import EntropyCoder, available_codings, get_coder, register_coder

__all__ = ["EntropyCoder", "available_codings", "get_coder", "register_coder"]

"""Byte-level entropy coding, by id: "zstd" (independent frames, libzstd) and "raw"."""

from holotensor.entropy.base import EntropyCoder, available_codings, get_coder, register_coder

__all__ = ["EntropyCoder", "available_codings", "get_coder", "register_coder"]

"""Codecs: tensor <-> ordered fragments, one module per codec, found by name in a registry."""

from holotensor.codecs.base import (
    CodecConfig,
    Encoded,
    FragmentPayload,
    TensorSpec,
    available_codecs,
    codec_from_dict,
    get_codec,
    register_codec,
)

__all__ = [
    "CodecConfig",
    "Encoded",
    "FragmentPayload",
    "TensorSpec",
    "available_codecs",
    "codec_from_dict",
    "get_codec",
    "register_codec",
]

"""Codecs: tensor <-> ordered fragments, one module per codec, found by name in a registry."""

from holotensor.codecs import blockquant as _blockquant  # noqa: F401  (registers "blockquant")
from holotensor.codecs import lossless as _lossless  # noqa: F401  (registers "lossless")
from holotensor.codecs import lowrank as _lowrank  # noqa: F401  (registers "lowrank")
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
from holotensor.codecs.blockquant import BlockQuantConfig
from holotensor.codecs.lossless import LosslessConfig
from holotensor.codecs.lowrank import LowRankConfig

__all__ = [
    "BlockQuantConfig",
    "CodecConfig",
    "Encoded",
    "FragmentPayload",
    "LosslessConfig",
    "LowRankConfig",
    "TensorSpec",
    "available_codecs",
    "codec_from_dict",
    "get_codec",
    "register_codec",
]

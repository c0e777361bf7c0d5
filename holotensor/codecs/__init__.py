"""Codecs: tensor <-> ordered fragments, one module per codec, found by name in a registry."""

from holotensor.codecs import blockquant as _blockquant  # noqa: F401  (registers "blockquant")
from holotensor.codecs import codebook as _codebook  # noqa: F401  (registers "codebook")
from holotensor.codecs import holographic
from holotensor.codecs import lossless as _lossless  # noqa: F401  (registers "lossless")
from holotensor.codecs import lowrank as _lowrank  # noqa: F401  (registers "lowrank")
from holotensor.codecs import rph as _rph  # noqa: F401  (registers "rph")
from holotensor.codecs import spectral as _spectral  # noqa: F401  (registers "spectral")
from holotensor.codecs import tt as _tt  # noqa: F401  (registers "tt")
from holotensor.codecs.base import (
    CodecConfig,
    Encoded,
    FragmentPayload,
    StoredView,
    TensorSpec,
    available_codecs,
    codec_from_dict,
    get_codec,
    register_codec,
)
from holotensor.codecs.blockquant import BlockQuantConfig
from holotensor.codecs.codebook import CodebookConfig
from holotensor.codecs.dct import dct, dct2, idct, idct2
from holotensor.codecs.holographic import decode_htns, encode_htns_payloads
from holotensor.codecs.lossless import LosslessConfig
from holotensor.codecs.lowrank import LowRankConfig
from holotensor.codecs.rph import RphConfig
from holotensor.codecs.spectral import SpectralConfig
from holotensor.codecs.tt import TTConfig

__all__ = [
    "BlockQuantConfig",
    "CodebookConfig",
    "CodecConfig",
    "Encoded",
    "FragmentPayload",
    "LosslessConfig",
    "LowRankConfig",
    "RphConfig",
    "SpectralConfig",
    "StoredView",
    "TTConfig",
    "TensorSpec",
    "available_codecs",
    "codec_from_dict",
    "dct",
    "dct2",
    "decode_htns",
    "encode_htns_payloads",
    "get_codec",
    "holographic",
    "idct",
    "idct2",
    "register_codec",
]

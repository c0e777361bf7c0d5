"""Upstream holographic payloads (haagenti's HTNS fragments and compressive spectral fragments):
one module per payload family, readers for every layout upstream reads and writers for what it
writes, plus the HTNS file <-> tensor bridge."""

from holotensor.codecs.holographic._layout import htns_matrix_shape
from holotensor.codecs.holographic.compressive import (
    HCT2_MAGIC,
    HCT3_MAGIC,
    decode_compressive,
    encode_compressive,
)
from holotensor.codecs.holographic.htns_tensor import decode_htns, encode_htns_payloads
from holotensor.codecs.holographic.lrdf import LRDF_RAW, decode_lrdf, encode_lrdf, encode_lrdf_raw
from holotensor.codecs.holographic.random_projection import (
    RPH_MAX_WORK,
    RPH_SEED_STEP,
    decode_rph,
    encode_rph,
    rph_fragment_seed,
)
from holotensor.codecs.holographic.rng import normals, uniforms, xorshift64
from holotensor.codecs.holographic.spectral import SV02_MAGIC, SV03_MAGIC, decode_spectral, encode_sv03

__all__ = [
    "HCT2_MAGIC",
    "HCT3_MAGIC",
    "LRDF_RAW",
    "RPH_MAX_WORK",
    "RPH_SEED_STEP",
    "SV02_MAGIC",
    "SV03_MAGIC",
    "decode_compressive",
    "decode_htns",
    "decode_lrdf",
    "decode_rph",
    "decode_spectral",
    "encode_compressive",
    "encode_htns_payloads",
    "encode_lrdf",
    "encode_lrdf_raw",
    "encode_rph",
    "encode_sv03",
    "htns_matrix_shape",
    "normals",
    "rph_fragment_seed",
    "uniforms",
    "xorshift64",
]

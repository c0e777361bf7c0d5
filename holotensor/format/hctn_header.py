"""The 64-byte HCTN header and its 8-byte quantization record: fields, codes, parsing and the
upstream size rules (see :mod:`holotensor.format.hctn` for the reader and writer)."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import torch
import xxhash

from holotensor.errors import ChecksumError, FormatError, UnsupportedCodecError, UnsupportedVersionError

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "FLAG_BLOCK_CHECKSUMS",
    "FLAG_HEADER_CHECKSUM",
    "FLAG_HOLOGRAPHIC",
    "FLAG_QUANTIZATION",
    "FLAG_TENSOR_NAME",
    "HCTN_MAGIC",
    "HEADER_SIZE",
    "QUANTIZATION_SIZE",
    "V2_DEFAULT_FLAGS",
    "HctnAlgorithm",
    "HctnDType",
    "HctnHeader",
    "HctnQuantization",
    "QuantizationScheme",
    "byte_size_range",
    "parse_hctn_header",
    "shape_matches",
]

HCTN_MAGIC = b"HCTN"
HEADER_SIZE = 64
QUANTIZATION_SIZE = 8
DEFAULT_BLOCK_SIZE = 16384
MAX_VERSION = 2

FLAG_HEADER_CHECKSUM = 0x0001
FLAG_BLOCK_CHECKSUMS = 0x0002
FLAG_QUANTIZATION = 0x0004
FLAG_TENSOR_NAME = 0x0008
FLAG_HOLOGRAPHIC = 0x0010
V2_DEFAULT_FLAGS = FLAG_HEADER_CHECKSUM | FLAG_BLOCK_CHECKSUMS

_FIXED = struct.Struct("<4sIBBHQQIIB")  # magic .. rank: bytes 0..36
_DIMS_OFFSET = 37
_MAX_EXTENT = 1 << 62  # torch computes strides in int64; even an empty shape must stay below this
_CHECKSUM_OFFSET = 56


class HctnAlgorithm(IntEnum):
    """Block compression (header byte 8)."""

    LZ4 = 0
    ZSTD = 1


class HctnDType(IntEnum):
    """Element type (header byte 9); I4 has no layout defined by the container."""

    F32 = 0
    F16 = 1
    BF16 = 2
    I8 = 3
    I4 = 4

    @property
    def torch_dtype(self) -> torch.dtype | None:
        """The torch dtype of one element, or None for I4 (two values per byte, layout undefined)."""
        return _TORCH_DTYPES.get(self)

    @staticmethod
    def from_torch(dtype: torch.dtype) -> HctnDType:
        """The HCTN code of a torch dtype; raises ``TypeError`` for dtypes HCTN cannot hold."""
        try:
            return _FROM_TORCH[dtype]
        except KeyError:
            raise TypeError(f"HCTN stores float32, float16, bfloat16 or int8 tensors, not {dtype}") from None

    @property
    def element_bytes(self) -> int:
        """Bytes per element as upstream's ``DType::bytes()`` counts them (I4 rounds up to 1)."""
        return (_BITS[self] + 7) // 8


_TORCH_DTYPES = {
    HctnDType.F32: torch.float32,
    HctnDType.F16: torch.float16,
    HctnDType.BF16: torch.bfloat16,
    HctnDType.I8: torch.int8,
}
_FROM_TORCH = {v: k for k, v in _TORCH_DTYPES.items()}
_BITS = {HctnDType.F32: 32, HctnDType.F16: 16, HctnDType.BF16: 16, HctnDType.I8: 8, HctnDType.I4: 4}


class QuantizationScheme(IntEnum):
    """Quantization scheme codes of the 8-byte quantization record."""

    NONE = 0
    GPTQ_INT4 = 1
    AWQ_INT4 = 2
    SYMMETRIC_INT8 = 3
    ASYMMETRIC_INT8 = 4


def byte_size_range(dtype: HctnDType, numel: int) -> tuple[int, int]:
    """Smallest and largest payload size consistent with ``numel`` elements of ``dtype``.

    I4 is ambiguous upstream: the Python binding packs two nibbles per byte (``ceil(n/2)``), the
    ``safetensors_to_int4_hct`` example adds an f16 scale per 32 elements; both are accepted.
    """
    if dtype is HctnDType.I4:
        packed = (numel + 1) // 2
        return packed, packed + 2 * ((numel + 31) // 32)
    size = numel * dtype.element_bytes
    return size, size


def shape_matches(dtype: HctnDType, shape: tuple[int, ...], original_size: int) -> bool:
    """Whether ``original_size`` bytes can hold ``shape`` elements of ``dtype``."""
    lo, hi = byte_size_range(dtype, math.prod(shape))
    return lo <= original_size <= hi


@dataclass(frozen=True)
class HctnQuantization:
    """The optional 8-byte quantization record (header flag 0x0004).

    Attributes:
        scheme: the quantization scheme.
        per_group: whether per-group scales are claimed (upstream never defines or writes them).
        scale: the global scale, stored as an f16 (rounded to nearest even on write).
        zero_point: signed 8-bit zero point.
        group_size: group size, stored as an unsigned 24-bit integer.
    """

    scheme: QuantizationScheme
    per_group: bool
    scale: float
    zero_point: int
    group_size: int

    def __post_init__(self) -> None:
        if not -128 <= self.zero_point <= 127:
            raise ValueError(f"zero_point {self.zero_point} does not fit an i8")
        if not 0 <= self.group_size < 1 << 24:
            raise ValueError(f"group_size {self.group_size} does not fit the record's 24 bits")
        object.__setattr__(self, "scheme", QuantizationScheme(self.scheme))

    def to_bytes(self) -> bytes:
        """The 8 record bytes, as upstream's ``HctWriterV2`` writes them."""
        with np.errstate(over="ignore"):  # like upstream's f32 -> f16, overflow becomes +-inf
            scale_bits = int(np.array(self.scale, dtype=np.float32).astype(np.float16).view(np.uint16))
        return struct.pack(
            "<BBHb", int(self.scheme), 1 if self.per_group else 0, scale_bits, self.zero_point
        ) + self.group_size.to_bytes(3, "little")

    @classmethod
    def from_bytes(cls, raw: bytes, *, file: str | None = None) -> HctnQuantization:
        """Parse the 8 record bytes; any non-zero per-group byte means True, like upstream.

        Raises:
            FormatError: the scheme code is unknown.
        """
        scheme, per_group, scale_bits, zero_point = struct.unpack_from("<BBHb", raw)
        if scheme > max(QuantizationScheme):
            raise FormatError(
                f"unknown quantization scheme {scheme} (known: 0..{max(QuantizationScheme)})", file=file
            )
        scale = float(np.array(scale_bits, dtype=np.uint16).view(np.float16))
        return cls(
            QuantizationScheme(scheme), per_group != 0, scale, zero_point, int.from_bytes(raw[5:8], "little")
        )


@dataclass(frozen=True)
class HctnHeader:
    """The fields of the 64-byte HCTN header.

    ``shape`` is the logical shape: for a rank-3 version-2 file, dim 2 is the value recovered from
    ``original_size`` (the stored bytes are overwritten by the header checksum upstream).
    """

    version: int
    algorithm: HctnAlgorithm
    dtype: HctnDType
    flags: int
    original_size: int
    compressed_size: int
    block_size: int
    num_blocks: int
    shape: tuple[int, ...]

    @property
    def entry_size(self) -> int:
        """Index entry size by the upstream rule: 16 bytes iff version >= 2 and flag 0x0002."""
        return 16 if self.version >= 2 and self.flags & FLAG_BLOCK_CHECKSUMS else 8

    @property
    def index_offset(self) -> int:
        """Where the block index starts (after the quantization record, if any)."""
        return HEADER_SIZE + (QUANTIZATION_SIZE if self.flags & FLAG_QUANTIZATION else 0)

    @property
    def data_offset(self) -> int:
        """Where block 0's bytes start; block offsets are relative to this."""
        return self.index_offset + self.num_blocks * self.entry_size

    def block_length(self, i: int) -> int:
        """Decompressed length of block ``i``: ``block_size``, except a shorter last block."""
        if i < self.num_blocks - 1:
            return self.block_size
        return self.original_size - (self.num_blocks - 1) * self.block_size

    def to_bytes(self) -> bytes:
        """Serialize as upstream's ``HctWriterV2`` does: version 2, checksum of bytes 0..55 at 56.

        Raises:
            ValueError: the header is not version 2, or its rank exceeds 2 (upstream's rank-3
                dim 2 collides with the checksum; rank 4 does not fit at all).
        """
        if self.version != 2:
            raise ValueError(f"only version-2 HCTN headers are written, not version {self.version}")
        if len(self.shape) > 2:
            raise ValueError(
                f"HCTN v2 cannot store rank {len(self.shape)}: dim 2 would sit at bytes 53..60 under the "
                "header checksum (bytes 56..63), which upstream overwrites; reshape to rank <= 2"
            )
        head = bytearray(HEADER_SIZE)
        _FIXED.pack_into(
            head,
            0,
            HCTN_MAGIC,
            self.version,
            int(self.algorithm),
            int(self.dtype),
            self.flags,
            self.original_size,
            self.compressed_size,
            self.block_size,
            self.num_blocks,
            len(self.shape),
        )
        for i, dim in enumerate(self.shape):
            struct.pack_into("<Q", head, _DIMS_OFFSET + 8 * i, dim)
        struct.pack_into(
            "<Q", head, _CHECKSUM_OFFSET, xxhash.xxh3_64_intdigest(bytes(head[:_CHECKSUM_OFFSET]))
        )
        return bytes(head)


def parse_hctn_header(raw: bytes, *, file: str, allow_shape_mismatch: bool) -> tuple[HctnHeader, bool]:
    """Parse and check the 64 header bytes; returns the header and whether its checksum was verified.

    Checks, in order: magic, version, header checksum (version >= 2 with flag 0x0001, as upstream),
    algorithm and dtype codes, rank <= 3 (dim 2 of a v2 rank-3 file is recovered), block_size,
    num_blocks against ``ceil(original_size / block_size)`` and the shape against ``original_size``.
    """
    magic, version, algorithm, dtype, flags, original, compressed, block_size, num_blocks, rank = (
        _FIXED.unpack_from(raw)
    )
    if magic != HCTN_MAGIC:
        raise FormatError(f"not an HCTN file: magic {magic!r}, expected {HCTN_MAGIC!r}", file=file)
    if version > MAX_VERSION:
        raise UnsupportedVersionError(
            f"HCTN version {version} is newer than the supported {MAX_VERSION}", file=file
        )
    verified = version >= 2 and bool(flags & FLAG_HEADER_CHECKSUM)
    if verified:
        stored = int.from_bytes(raw[_CHECKSUM_OFFSET:HEADER_SIZE], "little")
        computed = xxhash.xxh3_64_intdigest(raw[:_CHECKSUM_OFFSET])
        if stored != computed:
            raise ChecksumError(
                f"header checksum mismatch: stored {stored:016x}, computed {computed:016x}", file=file
            )
    if algorithm not in HctnAlgorithm._value2member_map_:
        raise UnsupportedCodecError(
            f"unknown HCTN block algorithm {algorithm} (0 = LZ4, 1 = zstd)", file=file
        )
    if dtype not in HctnDType._value2member_map_:
        raise FormatError(f"unknown HCTN dtype code {dtype} (known: 0..4)", file=file)
    algorithm, dtype = HctnAlgorithm(algorithm), HctnDType(dtype)
    if rank > 3:
        raise UnsupportedVersionError(
            f"HCTN cannot hold rank {rank} > 3: dim 3 would need bytes 61..68 of a 64-byte header", file=file
        )
    stored_dims = min(rank, 2) if version >= 2 else rank
    shape = [
        int.from_bytes(raw[_DIMS_OFFSET + 8 * i : _DIMS_OFFSET + 8 * i + 8], "little")
        for i in range(stored_dims)
    ]
    if rank == 3 and version >= 2:
        shape.append(_recover_dim2(dtype, shape[0], shape[1], original, file=file))
    if math.prod(max(d, 1) for d in shape) >= _MAX_EXTENT:
        raise FormatError(
            f"shape {tuple(shape)} is larger than any tensor can be (limit 2**62 elements)", file=file
        )
    if block_size == 0:
        raise FormatError("block_size is 0", file=file)
    expected_blocks = -(-original // block_size)
    if num_blocks != expected_blocks:
        raise FormatError(
            f"num_blocks is {num_blocks}, but ceil(original_size {original} / block_size {block_size}) "
            f"= {expected_blocks}",
            file=file,
        )
    if not allow_shape_mismatch and not shape_matches(dtype, tuple(shape), original):
        lo, hi = byte_size_range(dtype, math.prod(shape))
        want = str(lo) if lo == hi else f"{lo}..{hi}"
        raise FormatError(
            f"shape {tuple(shape)} of {dtype.name} needs {want} bytes, but original_size is {original}",
            file=file,
        )
    header = HctnHeader(
        version, algorithm, dtype, flags, original, compressed, block_size, num_blocks, tuple(shape)
    )
    return header, verified


def _recover_dim2(dtype: HctnDType, d0: int, d1: int, original: int, *, file: str) -> int:
    """Dim 2 of a rank-3 version-2 file, from ``original_size / (itemsize * d0 * d1)``."""
    if dtype is HctnDType.I4:
        raise FormatError(
            "rank-3 HCTN v2 file of I4: dim 2 is overwritten by the header checksum and cannot be "
            "recovered, since the container defines no I4 byte layout",
            file=file,
        )
    plane = dtype.element_bytes * d0 * d1
    if plane == 0 or original % plane:
        raise FormatError(
            f"rank-3 HCTN v2 file: dim 2 is overwritten by the header checksum, and original_size "
            f"{original} is not a multiple of itemsize*d0*d1 = {plane}, so it cannot be recovered",
            file=file,
        )
    return original // plane

"""Upstream HCTN block containers (haagenti "HCT V2"): a validating, lazy reader for versions 0, 1
and 2 and a byte-compatible version-2 writer.

An HCTN file holds one tensor's raw little-endian bytes, cut into ``block_size`` chunks that are each
compressed on their own (raw LZ4 block or zstd frame)::

    [64-byte header][8-byte quantization record if flag 0x0004][index: num_blocks x 8 or 16 bytes][blocks]

The reader checks more than upstream does: every offset and size against the file length, the
block count against ``ceil(original_size / block_size)``, the shape against ``original_size``, each
block's claimed expansion against what its codec can physically produce, and the exact decompressed
length of every block. Upstream quirks are handled, not reproduced: a rank-3 shape written by
version 2 loses dim 2 under the header checksum, so dim 2 is recovered from ``original_size``; a
rank above 3 cannot be stored at all and is rejected.

Example:
    >>> import torch, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "w.hct")
    >>> write_hctn(path, torch.arange(12, dtype=torch.float32).reshape(3, 4))
    >>> with HctnReader(path) as reader:
    ...     reader.to_tensor().shape
    torch.Size([3, 4])
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from types import TracebackType

import numpy as np
import torch
import xxhash

from holotensor.errors import (
    ChecksumError,
    DecodeError,
    FormatError,
    HoloTensorError,
    LimitError,
    TruncatedError,
)
from holotensor.format.atomic import atomic_write
from holotensor.format.block_codecs import (
    ZSTD_MAX_RATIO,
    lz4_block_compress,
    lz4_block_decompress,
    zstd_compress,
    zstd_decompress_bounded,
)
from holotensor.format.byte_source import ByteSource
from holotensor.format.hctn_header import (
    DEFAULT_BLOCK_SIZE,
    FLAG_QUANTIZATION,
    HEADER_SIZE,
    QUANTIZATION_SIZE,
    V2_DEFAULT_FLAGS,
    HctnAlgorithm,
    HctnDType,
    HctnHeader,
    HctnQuantization,
    byte_size_range,
    parse_hctn_header,
    shape_matches,
)

__all__ = ["HctnBlockEntry", "HctnReader", "HctnVerification", "encode_hctn", "write_hctn"]

_U32_MAX = (1 << 32) - 1
_LZ4_MAX_RATIO = 256  # each LZ4 length-extension byte adds at most 255 output bytes
_EXPANSION_SLACK = 64
_INDEX16 = np.dtype([("offset", "<u4"), ("size", "<u4"), ("checksum", "<u8")])
_INDEX8 = np.dtype([("offset", "<u4"), ("size", "<u4")])


@dataclass(frozen=True)
class HctnBlockEntry:
    """One index entry. ``checksum`` is None for 8-byte entries, 0 when the writer did not compute it."""

    offset: int
    compressed_size: int
    checksum: int | None

    @property
    def verifiable(self) -> bool:
        """Whether the stored bytes of this block can be checked against a checksum."""
        return bool(self.checksum)


@dataclass(frozen=True)
class HctnVerification:
    """What :meth:`HctnReader.verify` could and could not check."""

    header_verified: bool
    blocks_verified: int
    blocks_unverified: int


class HctnReader:
    """A validating, lazy reader of one HCTN file (versions 0, 1 and 2).

    Opening reads and checks the header, the quantization record and the whole index; block bytes
    are read (memory-mapped) only when asked for. ``entry_size`` and ``data_offset`` are the index
    layout actually found: a v2 file from upstream's ``without_block_checksums()`` has 16-byte
    entries although its flags say 8, and is read as such when that layout fits the file exactly.

    Args:
        source: a path, or the file's bytes.
        name: how errors name the file (defaults to the path).
        max_original_size: refuse tensors larger than this many bytes (a memory cap).
        max_block_size: refuse block sizes above this (each block is decompressed in one buffer).
        allow_shape_mismatch: open files whose shape disagrees with ``original_size`` (upstream's
            ``convert_safetensors_to_hct`` writes such files); :meth:`to_tensor` then refuses.

    Raises:
        FormatError, TruncatedError, LimitError, ChecksumError, UnsupportedVersionError,
        UnsupportedCodecError: the file is malformed or unsupported (each names the file).

    Example:
        >>> data = encode_hctn(bytes(range(8)), dtype=HctnDType.I8, shape=(2, 4))
        >>> HctnReader(data).read_bytes() == bytes(range(8))
        True
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | bytes | bytearray | memoryview,
        *,
        name: str | None = None,
        max_original_size: int = 1 << 36,
        max_block_size: int = 1 << 28,
        allow_shape_mismatch: bool = False,
    ) -> None:
        self._src = ByteSource(source, name=name)
        try:
            self._open(max_original_size, max_block_size, allow_shape_mismatch)
        except BaseException:
            self._src.close()
            raise

    def _open(self, max_original_size: int, max_block_size: int, allow_shape_mismatch: bool) -> None:
        src, file = self._src, self._src.name
        raw = src.read(0, HEADER_SIZE, "HCTN header")
        self.header, self.header_verified = parse_hctn_header(
            raw, file=file, allow_shape_mismatch=allow_shape_mismatch
        )
        h = self.header
        self._shape_ok = shape_matches(h.dtype, h.shape, h.original_size)
        if h.block_size > max_block_size:
            raise LimitError(
                f"block_size {h.block_size} exceeds the limit {max_block_size} (raise max_block_size to read)",
                file=file,
            )
        if h.original_size > max_original_size:
            raise LimitError(
                f"original_size {h.original_size} exceeds the limit {max_original_size} "
                "(raise max_original_size to read)",
                file=file,
            )
        self.quantization: HctnQuantization | None = None
        if h.flags & FLAG_QUANTIZATION:
            qraw = src.read(HEADER_SIZE, QUANTIZATION_SIZE, "quantization record")
            self.quantization = HctnQuantization.from_bytes(qraw, file=file)
        try:
            self._load_index(h.entry_size, strict=False)
        except FormatError as err:
            if h.version < 2 or h.entry_size == 16:
                raise
            # Upstream's HctWriterV2.without_block_checksums() clears flag 0x0002 yet still writes
            # 16-byte entries (with zero checksums); accept that layout only if it fits exactly.
            try:
                self._load_index(16, strict=True)
            except FormatError:
                raise err from None

    def _load_index(self, entry_size: int, *, strict: bool) -> None:
        h, src = self.header, self._src
        index_len = h.num_blocks * entry_size
        if h.index_offset + index_len > src.size:
            raise TruncatedError(
                f"index of {h.num_blocks} x {entry_size}-byte entries needs {index_len} bytes at "
                f"{h.index_offset}, but the file has {src.size} bytes",
                file=src.name,
            )
        index = np.frombuffer(
            src.read(h.index_offset, index_len, "block index"),
            dtype=_INDEX16 if entry_size == 16 else _INDEX8,
        )
        self.entry_size = entry_size
        self.data_offset = h.index_offset + index_len
        self._offsets = index["offset"].astype(np.uint64)
        self._sizes = index["size"].astype(np.uint64)
        self._checksums = index["checksum"] if entry_size == 16 else None
        self._check_index()
        if strict and (
            self.data_offset + h.compressed_size != src.size
            or not np.array_equal(self._offsets, np.cumsum(self._sizes) - self._sizes)
        ):
            raise FormatError(
                "index is not a contiguous run of blocks ending at the end of the file", file=src.name
            )

    def _check_index(self) -> None:
        h, file = self.header, self._src.name
        data_len = self._src.size - self.data_offset
        ends = self._offsets + self._sizes
        bad = np.flatnonzero(ends > data_len)
        if bad.size:
            i = int(bad[0])
            raise TruncatedError(
                f"block {i} occupies data bytes {int(self._offsets[i])}..{int(ends[i])}, but the data "
                f"section has {data_len} bytes",
                file=file,
                fragment=i,
            )
        total = int(self._sizes.sum())
        if total != h.compressed_size:
            raise FormatError(
                f"compressed_size is {h.compressed_size}, but the index blocks sum to {total}", file=file
            )
        if h.num_blocks:
            ratio = _LZ4_MAX_RATIO if h.algorithm is HctnAlgorithm.LZ4 else ZSTD_MAX_RATIO
            lengths = np.full(h.num_blocks, h.block_size, dtype=np.uint64)
            lengths[-1] = h.block_length(h.num_blocks - 1)
            bad = np.flatnonzero(lengths > self._sizes * np.uint64(ratio) + np.uint64(_EXPANSION_SLACK))
            if bad.size:
                i = int(bad[0])
                raise LimitError(
                    f"block {i} claims {int(lengths[i])} bytes from {int(self._sizes[i])} stored bytes, more "
                    f"than {h.algorithm.name} can expand (at most {ratio}x)",
                    file=file,
                    fragment=i,
                )

    @property
    def name(self) -> str:
        """The file name used in errors."""
        return self._src.name

    @property
    def shape(self) -> tuple[int, ...]:
        """The tensor's logical shape."""
        return self.header.shape

    @property
    def num_blocks(self) -> int:
        """How many blocks the file holds."""
        return self.header.num_blocks

    def entry(self, i: int) -> HctnBlockEntry:
        """The index entry of block ``i``."""
        self._check_block_index(i)
        checksum = None if self._checksums is None else int(self._checksums[i])
        return HctnBlockEntry(int(self._offsets[i]), int(self._sizes[i]), checksum)

    @property
    def entries(self) -> list[HctnBlockEntry]:
        """Every index entry, in block order."""
        return [self.entry(i) for i in range(self.num_blocks)]

    def _check_block_index(self, i: int) -> None:
        if not 0 <= i < self.num_blocks:
            raise IndexError(f"{self.name}: block {i} out of range (file has {self.num_blocks} blocks)")

    def read_block(self, i: int) -> bytes:
        """The stored (compressed) bytes of block ``i``, checked against its checksum when it has one.

        Raises:
            ChecksumError: the stored bytes do not match the index checksum.
            IndexError: ``i`` is not a block of this file.
        """
        entry = self.entry(i)
        data = self._src.read(
            self.data_offset + entry.offset, entry.compressed_size, f"block {i}", fragment=i
        )
        if entry.verifiable:
            computed = xxhash.xxh3_64_intdigest(data)
            if computed != entry.checksum:
                raise ChecksumError(
                    f"block checksum mismatch: stored {entry.checksum:016x}, computed {computed:016x}",
                    file=self.name,
                    fragment=i,
                )
        return data

    def decompress_block(self, i: int) -> bytes:
        """Block ``i`` decompressed, exactly ``header.block_length(i)`` bytes.

        Raises:
            DecodeError: the block does not decompress to exactly its expected length.
            ChecksumError: see :meth:`read_block`.
        """
        data = self.read_block(i)
        size = self.header.block_length(i)
        try:
            if self.header.algorithm is HctnAlgorithm.LZ4:
                out = lz4_block_decompress(data, size)
            else:
                out = zstd_decompress_bounded(data, size)
                if len(out) != size:
                    raise DecodeError(f"zstd block decompressed to {len(out)} bytes, expected {size}")
        except HoloTensorError as err:
            raise err.located(file=self.name, fragment=i) from None
        return out

    def _decompress_into(self, out: np.ndarray) -> None:
        pos = 0
        for i in range(self.num_blocks):
            block = self.decompress_block(i)
            out[pos : pos + len(block)] = np.frombuffer(block, dtype=np.uint8)
            pos += len(block)

    def read_bytes(self) -> bytes:
        """The whole decompressed payload (``original_size`` bytes)."""
        return b"".join(self.decompress_block(i) for i in range(self.num_blocks))

    def to_tensor(self) -> torch.Tensor:
        """The tensor in its stored shape and dtype (F32, F16, BF16, I8), read on a little-endian host.

        I4 has no element layout in the container (upstream writes it two different ways), so an
        I4 file comes back as its raw payload: a 1-D ``torch.uint8`` tensor of ``original_size``
        bytes, for the caller to unpack with the layout it knows.

        Raises:
            FormatError: the file was opened with ``allow_shape_mismatch`` and its shape does not
                match ``original_size``.
        """
        h = self.header
        if not self._shape_ok:
            raise FormatError(
                f"shape {h.shape} of {h.dtype.name} does not match original_size {h.original_size}; "
                "use read_bytes()",
                file=self.name,
            )
        if h.dtype is HctnDType.I4:
            out = torch.empty(h.original_size, dtype=torch.uint8)
        else:
            out = torch.empty(h.shape, dtype=h.dtype.torch_dtype)
        if out.numel():
            self._decompress_into(out.reshape(-1).view(torch.uint8).numpy())
        return out

    def verify(self) -> HctnVerification:
        """Check every block's stored bytes against its checksum, without decompressing.

        Returns counts of blocks verified and of blocks without a checksum (8-byte entries, or a
        stored 0, which upstream means "not computed"): those are unverified, not trusted.

        Raises:
            ChecksumError: a block does not match its checksum.
        """
        verified = 0
        for i in range(self.num_blocks):
            self.read_block(i)
            verified += self._checksums is not None and int(self._checksums[i]) != 0
        return HctnVerification(self.header_verified, verified, self.num_blocks - verified)

    def close(self) -> None:
        """Release the file."""
        self._src.close()

    def __enter__(self) -> HctnReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _payload(
    data: torch.Tensor | bytes | bytearray | memoryview,
    dtype: HctnDType | None,
    shape: tuple[int, ...] | None,
) -> tuple[memoryview, HctnDType, tuple[int, ...]]:
    """Resolve the payload bytes, dtype and shape of what the caller gave to the writer."""
    if isinstance(data, torch.Tensor):
        t_dtype, t_shape = HctnDType.from_torch(data.dtype), tuple(data.shape)
        if dtype is not None and HctnDType(dtype) is not t_dtype:
            raise ValueError(f"dtype {HctnDType(dtype).name} given for a {data.dtype} tensor")
        if shape is not None and tuple(shape) != t_shape:
            raise ValueError(f"shape {tuple(shape)} given for a tensor of shape {t_shape}")
        flat = data.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        return memoryview(flat.numpy()), t_dtype, t_shape
    if dtype is None or shape is None:
        raise TypeError("raw bytes need dtype= and shape=")
    dtype, shape = HctnDType(dtype), tuple(int(d) for d in shape)
    if any(d < 0 for d in shape):
        raise ValueError(f"negative dimension in shape {shape}")
    view = memoryview(data).cast("B")
    lo, hi = byte_size_range(dtype, math.prod(shape))
    if not lo <= len(view) <= hi:
        raise ValueError(f"shape {shape} of {dtype.name} needs {lo} bytes (I4: up to {hi}), got {len(view)}")
    return view, dtype, shape


def _encode_parts(
    data: torch.Tensor | bytes | bytearray | memoryview,
    *,
    dtype: HctnDType | None,
    shape: tuple[int, ...] | None,
    algorithm: HctnAlgorithm,
    block_size: int,
    quantization: HctnQuantization | None,
    level: int,
) -> list[bytes]:
    """Header, quantization record, index and blocks of a v2 file, in file order."""
    payload, dtype, shape = _payload(data, dtype, shape)
    algorithm = HctnAlgorithm(algorithm)
    if len(shape) > 2:
        raise ValueError(
            f"HCTN v2 cannot store rank {len(shape)}: upstream's dim 2 sits under the header checksum "
            "and is overwritten (rank 4+ does not fit the header); reshape to rank <= 2"
        )
    if not 0 < block_size <= _U32_MAX:
        raise ValueError(f"block_size must be in 1..{_U32_MAX}, got {block_size}")
    blocks = []
    for start in range(0, len(payload), block_size):
        chunk = payload[start : start + block_size]
        if algorithm is HctnAlgorithm.LZ4:
            blocks.append(lz4_block_compress(chunk, high_compression=level > 9))
        else:
            blocks.append(zstd_compress(chunk, level=level))
    if len(blocks) > _U32_MAX:
        raise ValueError(f"{len(blocks)} blocks do not fit HCTN's u32 block count; raise block_size")
    index = np.zeros(len(blocks), dtype=_INDEX16)
    sizes = np.array([len(b) for b in blocks], dtype=np.uint64)
    offsets = np.cumsum(sizes) - sizes
    if len(blocks) and int(offsets[-1]) > _U32_MAX:
        raise ValueError("compressed data past 4 GiB cannot be addressed by HCTN's u32 block offsets")
    index["offset"], index["size"] = offsets, sizes
    index["checksum"] = [xxhash.xxh3_64_intdigest(b) for b in blocks]
    flags = V2_DEFAULT_FLAGS | (FLAG_QUANTIZATION if quantization is not None else 0)
    header = HctnHeader(
        2, algorithm, dtype, flags, len(payload), int(sizes.sum()), block_size, len(blocks), shape
    ).to_bytes()
    quant = [quantization.to_bytes()] if quantization is not None else []
    return [header, *quant, index.tobytes(), *blocks]


def encode_hctn(
    data: torch.Tensor | bytes | bytearray | memoryview,
    *,
    dtype: HctnDType | None = None,
    shape: tuple[int, ...] | None = None,
    algorithm: HctnAlgorithm = HctnAlgorithm.ZSTD,
    block_size: int = DEFAULT_BLOCK_SIZE,
    quantization: HctnQuantization | None = None,
    level: int = 3,
) -> bytes:
    """Encode one tensor as an HCTN v2 file, laid out byte for byte like upstream's ``HctWriterV2``.

    Flags are 0x0003 (header and block checksums; 0x0004 is added with ``quantization``), the index
    has 16-byte entries, and each ``block_size`` chunk is one raw LZ4 block or one zstd frame.

    Args:
        data: a float32/float16/bfloat16/int8 tensor (its dtype and shape are used), or raw
            little-endian bytes with ``dtype`` and ``shape`` given.
        dtype, shape: required for raw bytes; must agree with a tensor if given with one.
        algorithm: LZ4 or ZSTD.
        block_size: uncompressed bytes per block.
        quantization: an optional quantization record.
        level: zstd level; for LZ4, a level above 9 selects LZ4-HC.

    Raises:
        ValueError: rank above 2, sizes that do not fit the format's fields, or bytes that do not
            match the shape.
        TypeError: a tensor dtype HCTN cannot hold, or raw bytes without dtype/shape.

    Example:
        >>> encode_hctn(bytes(4), dtype=HctnDType.I8, shape=(4,))[:4]
        b'HCTN'
    """
    return b"".join(
        _encode_parts(
            data,
            dtype=dtype,
            shape=shape,
            algorithm=algorithm,
            block_size=block_size,
            quantization=quantization,
            level=level,
        )
    )


def write_hctn(
    path: str | os.PathLike[str],
    data: torch.Tensor | bytes | bytearray | memoryview,
    *,
    dtype: HctnDType | None = None,
    shape: tuple[int, ...] | None = None,
    algorithm: HctnAlgorithm = HctnAlgorithm.ZSTD,
    block_size: int = DEFAULT_BLOCK_SIZE,
    quantization: HctnQuantization | None = None,
    level: int = 3,
) -> None:
    """Write :func:`encode_hctn`'s file to ``path`` atomically (temporary file, fsync, rename).

    On any error the temporary file is removed and ``path`` is left as it was.
    """
    parts = _encode_parts(
        data,
        dtype=dtype,
        shape=shape,
        algorithm=algorithm,
        block_size=block_size,
        quantization=quantization,
        level=level,
    )
    with atomic_write(path) as handle:
        for part in parts:
            handle.write(part)

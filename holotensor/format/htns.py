"""Upstream HTNS "HoloTensor" fragment containers (version 1): a validating, lazy reader down to
fragment bytes and a byte-compatible writer of the framing.

An HTNS file holds one tensor as independently decodable fragments::

    [96-byte header][N x 24-byte index entries][fragment payloads]

The payload formats (SV03, RPH, LRDF) are not decoded here; this module moves fragment bytes.
Upstream behaviour kept for compatibility: the header checksum is verified only when header flag
0x0001 is set (clearing the flag bypasses it, so :attr:`HtnsReader.header_verified` says whether it
happened); fragment checksums cover the *stored* bytes and are checked only under flag 0x0002; entry
flag bit 0 marks a zstd-compressed payload; a file with ``total_fragments == 0`` may carry one hidden
"inline" entry. Checks added beyond upstream: ``ndim <= 4``, every offset and size against the file,
a cap on decompressed sizes, and the entries' fragment indices must be exactly 0..N-1 in any order:
duplicates are rejected (upstream silently uses the first; no writer produces them, so they only
come from damage), as are indices >= N (upstream's ``read_all`` fails on them too).

Example:
    >>> data = encode_htns([b"first", b"second"], encoding=HtnsEncoding.SPECTRAL, shape=(2, 2))
    >>> HtnsReader(data).fragment(1).data
    b'second'
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from types import TracebackType

import numpy as np
import xxhash

from holotensor.errors import (
    ChecksumError,
    FormatError,
    HoloTensorError,
    LimitError,
    TruncatedError,
    UnsupportedCodecError,
    UnsupportedVersionError,
)
from holotensor.format.atomic import atomic_write
from holotensor.format.block_codecs import zstd_compress, zstd_decompress_bounded
from holotensor.format.byte_source import ByteSource
from holotensor.format.hctn_header import HctnAlgorithm, HctnDType

__all__ = [
    "DEFAULT_QUALITY_CURVES",
    "ENTRY_FLAG_ZSTD",
    "HTNS_FLAG_ESSENTIAL_FIRST",
    "HTNS_FLAG_FRAGMENT_CHECKSUMS",
    "HTNS_FLAG_HEADER_CHECKSUM",
    "HTNS_FLAG_INTERLEAVED",
    "HTNS_FLAG_QUALITY_CURVE",
    "HTNS_FLAG_QUANTIZATION",
    "HTNS_MAGIC",
    "HtnsEncoding",
    "HtnsEntry",
    "HtnsFragment",
    "HtnsHeader",
    "HtnsReader",
    "HtnsVerification",
    "encode_htns",
    "write_htns",
]

HTNS_MAGIC = b"HTNS"
HTNS_VERSION = 1
HEADER_SIZE = 96
ENTRY_SIZE = 24
MAX_NDIM = 4

HTNS_FLAG_HEADER_CHECKSUM = 0x0001
HTNS_FLAG_FRAGMENT_CHECKSUMS = 0x0002
HTNS_FLAG_QUANTIZATION = 0x0004  # set by upstream's with_quantization; no record is ever written
HTNS_FLAG_QUALITY_CURVE = 0x0008
HTNS_FLAG_ESSENTIAL_FIRST = 0x0010
HTNS_FLAG_INTERLEAVED = 0x0020
ENTRY_FLAG_ZSTD = 0x0001
_DEFAULT_FLAGS = HTNS_FLAG_HEADER_CHECKSUM | HTNS_FLAG_FRAGMENT_CHECKSUMS

_FIXED = struct.Struct("<4sIBBHHHQQBB")  # magic .. ndim: bytes 0..33
_DIMS = struct.Struct("<4Q")  # bytes 34..65
_CURVE = struct.Struct("<4f")  # bytes 66..81
_DIMS_OFFSET, _CURVE_OFFSET, _CHECKSUM_OFFSET = 34, 66, 88
_ENTRY = np.dtype(
    [
        ("index", "<u2"),
        ("flags", "<u2"),
        ("offset", "<u4"),
        ("size", "<u4"),
        ("uncompressed", "<u4"),
        ("checksum", "<u8"),
    ]
)
_U16_MAX, _U32_MAX = (1 << 16) - 1, (1 << 32) - 1
_INLINE_MAX_SIZE = 1_000_000_000  # upstream's acceptance bound for the hidden inline entry
_DECOMPRESS_SLACK = 1 << 16


class HtnsEncoding(IntEnum):
    """Holographic encoding of the fragments (header byte 8)."""

    SPECTRAL = 0
    RANDOM_PROJECTION = 1
    LOW_RANK_DISTRIBUTED = 2


# Upstream encoders' default quality curve (a0..a3) and min_fragments, per encoding.
DEFAULT_QUALITY_CURVES: dict[HtnsEncoding, tuple[tuple[float, float, float, float], int]] = {
    HtnsEncoding.SPECTRAL: ((0.6, 0.3, 0.08, 0.02), 1),
    HtnsEncoding.RANDOM_PROJECTION: ((0.1, 0.8, 0.08, 0.02), 2),
    HtnsEncoding.LOW_RANK_DISTRIBUTED: ((0.3, 0.5, 0.15, 0.05), 1),
}


@dataclass(frozen=True)
class HtnsHeader:
    """The fields of the 96-byte HTNS header.

    ``compression`` is kept as the raw byte (upstream code: 0 LZ4, 1 zstd; its docs: 0 none, 1 LZ4,
    2 zstd). It is informational, the per-entry flag decides, so any value is accepted where upstream
    rejects values above 1. ``quality_curve`` holds the f32 coefficients a0..a3.
    """

    encoding: HtnsEncoding
    compression: int
    flags: int
    total_fragments: int
    min_fragments: int
    original_size: int
    seed: int
    dtype: HctnDType
    shape: tuple[int, ...]
    quality_curve: tuple[float, float, float, float]
    version: int = HTNS_VERSION

    def to_bytes(self) -> bytes:
        """Serialize as upstream does, with the header checksum always written at bytes 88..95.

        Raises:
            ValueError: ndim above 4 or a field that does not fit its width.
        """
        if len(self.shape) > MAX_NDIM:
            raise ValueError(f"HTNS holds at most {MAX_NDIM} dims, got shape {self.shape}")
        if len(self.quality_curve) != 4:
            raise ValueError(f"quality_curve needs 4 coefficients a0..a3, got {len(self.quality_curve)}")
        for name, value, top in (
            ("version", self.version, _U32_MAX),
            ("compression", self.compression, 0xFF),
            ("flags", self.flags, _U16_MAX),
            ("total_fragments", self.total_fragments, _U16_MAX),
            ("min_fragments", self.min_fragments, _U16_MAX),
            ("original_size", self.original_size, (1 << 64) - 1),
            ("seed", self.seed, (1 << 64) - 1),
            *(("dim", d, (1 << 64) - 1) for d in self.shape),
        ):
            if not 0 <= value <= top:
                raise ValueError(f"HTNS {name} {value} does not fit 0..{top}")
        head = bytearray(HEADER_SIZE)
        _FIXED.pack_into(
            head,
            0,
            HTNS_MAGIC,
            self.version,
            int(self.encoding),
            self.compression,
            self.flags,
            self.total_fragments,
            self.min_fragments,
            self.original_size,
            self.seed,
            int(self.dtype),
            len(self.shape),
        )
        _DIMS.pack_into(head, _DIMS_OFFSET, *self.shape, *([0] * (MAX_NDIM - len(self.shape))))
        with np.errstate(over="ignore"):  # like Rust's `as f32`, out-of-range values become +-inf
            head[_CURVE_OFFSET : _CURVE_OFFSET + 16] = np.array(self.quality_curve, dtype="<f4").tobytes()
        struct.pack_into(
            "<Q", head, _CHECKSUM_OFFSET, xxhash.xxh3_64_intdigest(bytes(head[:_CHECKSUM_OFFSET]))
        )
        return bytes(head)


@dataclass(frozen=True)
class HtnsEntry:
    """One 24-byte index entry; ``offset`` is relative to the data section."""

    index: int
    flags: int
    offset: int
    stored_size: int
    uncompressed_size: int
    checksum: int

    @property
    def compressed(self) -> bool:
        """Whether the stored payload is a zstd frame (entry flag bit 0)."""
        return bool(self.flags & ENTRY_FLAG_ZSTD)


@dataclass(frozen=True)
class HtnsFragment:
    """A fragment's payload bytes (decompressed if stored as zstd) and whether its checksum was checked."""

    index: int
    data: bytes
    entry: HtnsEntry
    verified: bool


@dataclass(frozen=True)
class HtnsVerification:
    """What :meth:`HtnsReader.verify` could and could not check."""

    header_verified: bool
    fragments_verified: int
    fragments_unverified: int


def _parse_header(raw: bytes, *, file: str, max_original_size: int) -> tuple[HtnsHeader, bool]:
    """Parse and check the 96 header bytes, in upstream's order: magic, version, checksum, rest."""
    magic, version, encoding, compression, flags, total, minimum, original, seed, dtype, ndim = (
        _FIXED.unpack_from(raw)
    )
    if magic != HTNS_MAGIC:
        raise FormatError(f"not an HTNS file: magic {magic!r}, expected {HTNS_MAGIC!r}", file=file)
    if version != HTNS_VERSION:
        raise UnsupportedVersionError(
            f"HTNS version {version} is not supported (only {HTNS_VERSION})", file=file
        )
    verified = bool(flags & HTNS_FLAG_HEADER_CHECKSUM)
    if verified:
        stored = int.from_bytes(raw[_CHECKSUM_OFFSET:HEADER_SIZE], "little")
        computed = xxhash.xxh3_64_intdigest(raw[:_CHECKSUM_OFFSET])
        if stored != computed:
            raise ChecksumError(
                f"header checksum mismatch: stored {stored:016x}, computed {computed:016x}", file=file
            )
    if encoding not in HtnsEncoding._value2member_map_:
        raise UnsupportedCodecError(
            f"unknown holographic encoding {encoding} (0 spectral, 1 random projection, 2 low-rank)",
            file=file,
        )
    if dtype not in HctnDType._value2member_map_:
        raise FormatError(f"unknown HTNS dtype code {dtype} (known: 0..4)", file=file)
    if ndim > MAX_NDIM:
        raise FormatError(f"ndim is {ndim}, but the HTNS header holds at most {MAX_NDIM} dims", file=file)
    if original > max_original_size:
        raise LimitError(
            f"original_size {original} exceeds the limit {max_original_size} (raise max_original_size to read)",
            file=file,
        )
    shape = _DIMS.unpack_from(raw, _DIMS_OFFSET)[:ndim]
    curve = _CURVE.unpack_from(raw, _CURVE_OFFSET)
    header = HtnsHeader(
        HtnsEncoding(encoding),
        compression,
        flags,
        total,
        minimum,
        original,
        seed,
        HctnDType(dtype),
        shape,
        curve,
    )
    return header, verified


class HtnsReader:
    """A validating, lazy reader of one HTNS v1 file, down to fragment bytes.

    Opening reads and checks the header and the whole index; payloads are read (memory-mapped)
    when :meth:`fragment` asks for them.

    Args:
        source: a path, or the file's bytes.
        name: how errors name the file (defaults to the path).
        max_original_size: refuse tensors whose ``original_size`` exceeds this many bytes.

    Attributes:
        header: the parsed header.
        header_verified: whether the header checksum was checked (flag 0x0001 set).
        inline: whether the file is upstream's legacy "inline" variant (one hidden entry).
        entries: the index entries, in file order.

    Raises:
        FormatError, TruncatedError, LimitError, ChecksumError, UnsupportedVersionError,
        UnsupportedCodecError: the file is malformed or unsupported (each names the file).
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | bytes | bytearray | memoryview,
        *,
        name: str | None = None,
        max_original_size: int = 1 << 36,
    ) -> None:
        self._src = ByteSource(source, name=name)
        try:
            self._open(max_original_size)
        except BaseException:
            self._src.close()
            raise

    def _open(self, max_original_size: int) -> None:
        src, file = self._src, self._src.name
        raw = src.read(0, HEADER_SIZE, "HTNS header")
        self.header, self.header_verified = _parse_header(raw, file=file, max_original_size=max_original_size)
        n = self.header.total_fragments
        self.inline = False
        if n == 0:
            entries = self._inline_entry()
        else:
            table = src.read(HEADER_SIZE, n * ENTRY_SIZE, f"index of {n} fragment entries")
            entries = np.frombuffer(table, dtype=_ENTRY)
        self.data_offset = HEADER_SIZE + ENTRY_SIZE * max(n, len(entries))
        self._check_entries(entries)
        self.entries = [
            HtnsEntry(*(int(e[k]) for k in ("index", "flags", "offset", "size", "uncompressed", "checksum")))
            for e in entries
        ]
        self._by_index = {e.index: pos for pos, e in enumerate(self.entries)}

    def _inline_entry(self) -> np.ndarray:
        """Upstream's legacy variant: with no fragments declared, one entry may follow the header."""
        if self._src.size < HEADER_SIZE + ENTRY_SIZE:
            return np.zeros(0, dtype=_ENTRY)
        entry = np.frombuffer(self._src.read(HEADER_SIZE, ENTRY_SIZE, "inline entry"), dtype=_ENTRY)
        if int(entry["index"][0]) == 0 and 0 < int(entry["size"][0]) < _INLINE_MAX_SIZE:
            self.inline = True
            return entry
        return np.zeros(0, dtype=_ENTRY)

    def _check_entries(self, entries: np.ndarray) -> None:
        file = self._src.name
        data_len = self._src.size - self.data_offset
        ends = entries["offset"].astype(np.uint64) + entries["size"].astype(np.uint64)
        bad = np.flatnonzero(ends > data_len)
        if bad.size:
            pos = int(bad[0])
            raise TruncatedError(
                f"index entry {pos} occupies data bytes {int(entries['offset'][pos])}..{int(ends[pos])}, but "
                f"the data section has {data_len} bytes",
                file=file,
                fragment=int(entries["index"][pos]),
            )
        indices = entries["index"]
        bad = np.flatnonzero(indices >= len(indices))
        if bad.size:
            pos = int(bad[0])
            raise FormatError(
                f"index entry {pos} holds fragment index {int(indices[pos])}, but the file has "
                f"{len(indices)} fragments (indices must be 0..{len(indices) - 1})",
                file=file,
                fragment=int(indices[pos]),
            )
        uniq, counts = np.unique(indices, return_counts=True)
        if (counts > 1).any():
            dup = int(uniq[counts > 1][0])
            where = np.flatnonzero(indices == dup)[:2].tolist()
            raise FormatError(
                f"fragment index {dup} appears in index entries {where[0]} and {where[1]}; duplicates are rejected",
                file=file,
                fragment=dup,
            )

    @property
    def name(self) -> str:
        """The file name used in errors."""
        return self._src.name

    @property
    def total_fragments(self) -> int:
        """Fragments in the file: the header's count, or 1 for the inline variant (as upstream)."""
        return 1 if self.inline else self.header.total_fragments

    @property
    def fragment_indices(self) -> list[int]:
        """The fragment indices the index holds, in file order."""
        return [e.index for e in self.entries]

    def _hard_limit(self) -> int:
        """The most a compressed fragment may expand to when its entry gives no sane size."""
        return min(2 * self.header.original_size + _DECOMPRESS_SLACK, _U32_MAX)

    def fragment(self, i: int) -> HtnsFragment:
        """Read fragment ``i`` (by its fragment index): checksum-checked under flag 0x0002, decompressed
        if its entry says zstd.

        A compressed fragment's output is capped by the entry's uncompressed size when that is
        sane (above the stored size, since upstream's writer copies the stored size there, and at
        most ``2 * original_size + 64 KiB``), else by that bound itself; its exact length is not
        required to match the entry (upstream never checks it).

        Raises:
            IndexError: ``i`` is not a fragment of this file (indices are 0..total_fragments-1).
            ChecksumError: the stored bytes do not match the entry checksum.
            DecodeError: the zstd payload is corrupt, truncated or too large.
        """
        pos = self._by_index.get(i)
        if pos is None:
            raise IndexError(
                f"{self.name}: fragment {i} out of range (file has {len(self.entries)} fragments)"
            )
        entry = self.entries[pos]
        stored = self._src.read(
            self.data_offset + entry.offset, entry.stored_size, f"fragment {i}", fragment=i
        )
        verified = bool(self.header.flags & HTNS_FLAG_FRAGMENT_CHECKSUMS)
        if verified:
            computed = xxhash.xxh3_64_intdigest(stored)
            if computed != entry.checksum:
                raise ChecksumError(
                    f"fragment checksum mismatch: stored {entry.checksum:016x}, computed {computed:016x}",
                    file=self.name,
                    fragment=i,
                )
        data = stored
        if entry.compressed:
            hard = self._hard_limit()
            sane = entry.stored_size < entry.uncompressed_size <= hard
            limit = entry.uncompressed_size if sane else hard
            try:
                data = zstd_decompress_bounded(stored, limit)
            except HoloTensorError as err:
                raise err.located(file=self.name, fragment=i) from None
        return HtnsFragment(i, data, entry, verified)

    def verify(self) -> HtnsVerification:
        """Check every fragment's stored bytes (and decompress compressed ones).

        Fragments count as unverified when header flag 0x0002 is clear (upstream then skips checks).

        Raises:
            ChecksumError, DecodeError: as :meth:`fragment`.
        """
        verified = sum(self.fragment(e.index).verified for e in self.entries)
        return HtnsVerification(self.header_verified, verified, len(self.entries) - verified)

    def predicted_quality(self, k: int) -> float:
        """The header curve's predicted quality with ``k`` fragments loaded, by upstream's rule.

        ``clamp(sum(a_i * (k/N)^i), 0, 1)``, with N = 0 giving 0, k >= N giving 1 and
        k < min_fragments giving 0.
        """
        n = self.total_fragments
        if n == 0:
            return 0.0
        if k >= n:
            return 1.0
        if k < self.header.min_fragments:
            return 0.0
        x = k / n
        value = sum(a * x**p for p, a in enumerate(self.header.quality_curve))
        return float(min(max(value, 0.0), 1.0))

    def close(self) -> None:
        """Release the file."""
        self._src.close()

    def __enter__(self) -> HtnsReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _encode_parts(
    payloads: Sequence[bytes | bytearray | memoryview],
    *,
    encoding: HtnsEncoding,
    shape: Sequence[int],
    dtype: HctnDType,
    original_size: int | None,
    seed: int,
    compression: int,
    flags: int,
    min_fragments: int | None,
    quality_curve: Sequence[float] | None,
    zstd: bool | Sequence[bool],
    level: int,
) -> list[bytes]:
    """Header, index and stored payloads of an HTNS v1 file, in file order."""
    encoding, dtype, shape = HtnsEncoding(encoding), HctnDType(dtype), tuple(int(d) for d in shape)
    n = len(payloads)
    if n > _U16_MAX:
        raise ValueError(f"HTNS holds at most {_U16_MAX} fragments, got {n}")
    compress = [zstd] * n if isinstance(zstd, bool) else list(zstd)
    if len(compress) != n:
        raise ValueError(f"zstd has {len(compress)} flags for {n} payloads")
    default_curve, default_min = DEFAULT_QUALITY_CURVES[encoding]
    curve = tuple(float(a) for a in (default_curve if quality_curve is None else quality_curve))
    if original_size is None:
        original_size = math.prod(shape) * dtype.element_bytes
    header = HtnsHeader(
        encoding,
        int(compression),
        flags,
        n,
        default_min if min_fragments is None else min_fragments,
        original_size,
        seed,
        dtype,
        shape,
        curve,  # type: ignore[arg-type]  # its length is checked by to_bytes
    ).to_bytes()
    stored = [
        zstd_compress(p, level=level) if c else bytes(p) for p, c in zip(payloads, compress, strict=True)
    ]
    index = np.zeros(n, dtype=_ENTRY)
    sizes = np.array([len(s) for s in stored], dtype=np.uint64)
    offsets = np.cumsum(sizes) - sizes
    raw_sizes = [len(memoryview(p).cast("B")) for p in payloads]
    if n and (int(offsets[-1]) > _U32_MAX or int(sizes.max()) > _U32_MAX or max(raw_sizes) > _U32_MAX):
        raise ValueError("HTNS offsets and sizes are u32: the payloads must fit 4 GiB")
    index["index"] = np.arange(n)
    index["flags"] = [ENTRY_FLAG_ZSTD if c else 0 for c in compress]
    index["offset"], index["size"], index["uncompressed"] = offsets, sizes, raw_sizes
    index["checksum"] = [xxhash.xxh3_64_intdigest(s) for s in stored]
    return [header, index.tobytes(), *stored]


def encode_htns(
    payloads: Sequence[bytes | bytearray | memoryview],
    *,
    encoding: HtnsEncoding,
    shape: Sequence[int],
    dtype: HctnDType = HctnDType.F32,
    original_size: int | None = None,
    seed: int = 0,
    compression: int = HctnAlgorithm.LZ4,
    flags: int = _DEFAULT_FLAGS,
    min_fragments: int | None = None,
    quality_curve: Sequence[float] | None = None,
    zstd: bool | Sequence[bool] = False,
    level: int = 3,
) -> bytes:
    """Frame already-encoded fragment payloads as an HTNS v1 file, byte for byte like upstream.

    Payloads get fragment indices 0..N-1 in the given order and are laid out contiguously; every
    entry carries the XXH3-64 of its stored bytes. Defaults follow upstream's ``HoloTensorEncoder``:
    flags 0x0003, compression byte 0 (LZ4, informational only), seed 0, F32, and the encoding's
    default quality curve and ``min_fragments``.

    Args:
        payloads: the fragment payloads (SV03 / RPH / LRDF bytes), fragment 0 first.
        encoding: the holographic encoding the payloads use.
        shape: the tensor's shape (at most 4 dims).
        dtype, original_size, seed, compression, flags, min_fragments, quality_curve: header fields;
            ``original_size`` defaults to numel times the dtype's byte size.
        zstd: compress every payload (True) or the chosen ones (a list) as a zstd frame, marking
            the entry with flag bit 0 and recording the uncompressed size.
        level: zstd level.

    Raises:
        ValueError: more than 65535 fragments or 4 dims, or sizes past the u32 fields.

    Example:
        >>> encode_htns([b"x"], encoding=HtnsEncoding.SPECTRAL, shape=(1,))[:4]
        b'HTNS'
    """
    return b"".join(
        _encode_parts(
            payloads,
            encoding=encoding,
            shape=shape,
            dtype=dtype,
            original_size=original_size,
            seed=seed,
            compression=compression,
            flags=flags,
            min_fragments=min_fragments,
            quality_curve=quality_curve,
            zstd=zstd,
            level=level,
        )
    )


def write_htns(
    path: str | os.PathLike[str],
    payloads: Sequence[bytes | bytearray | memoryview],
    *,
    encoding: HtnsEncoding,
    shape: Sequence[int],
    dtype: HctnDType = HctnDType.F32,
    original_size: int | None = None,
    seed: int = 0,
    compression: int = HctnAlgorithm.LZ4,
    flags: int = _DEFAULT_FLAGS,
    min_fragments: int | None = None,
    quality_curve: Sequence[float] | None = None,
    zstd: bool | Sequence[bool] = False,
    level: int = 3,
) -> None:
    """Write :func:`encode_htns`'s file to ``path`` atomically (temporary file, fsync, rename).

    On any error the temporary file is removed and ``path`` is left as it was.
    """
    parts = _encode_parts(
        payloads,
        encoding=encoding,
        shape=shape,
        dtype=dtype,
        original_size=original_size,
        seed=seed,
        compression=compression,
        flags=flags,
        min_fragments=min_fragments,
        quality_curve=quality_curve,
        zstd=zstd,
        level=level,
    )
    with atomic_write(path) as handle:
        for part in parts:
            handle.write(part)

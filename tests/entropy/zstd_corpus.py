"""Corpus for the reference zstd decoder: data generators, libzstd-made frames, hand-made frames.

Everything is generated from fixed seeds, small enough for a pure-Python decoder (a few KB up
to ~200 KB for the multi-block, multi-threaded case), and chosen so that together the frames
exercise every feature of RFC 8878 the decoder supports; the tests count them.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

import numpy as np
import zstandard

__all__ = [
    "CorpusItem",
    "bf16_planes",
    "binary_records",
    "build_corpus",
    "frame_with_blocks",
    "libzstd_decompress",
    "skippable_frame",
    "text",
]

_WORDS = [
    "tensor",
    "weight",
    "layer",
    "model",
    "gradient",
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "it",
    "for",
    "as",
    "with",
    "was",
    "on",
    "be",
    "by",
    "this",
    "are",
    "or",
    "from",
    "at",
    "an",
    "which",
    "have",
    "not",
    "compression",
    "entropy",
    "block",
    "frame",
    "literal",
    "match",
    "offset",
]


@dataclass(frozen=True)
class CorpusItem:
    """One test case: the original bytes, the compressed bytes, and the dictionary if any."""

    name: str
    raw: bytes
    compressed: bytes
    dictionary: bytes | None = None


def text(n: int, seed: int) -> bytes:
    """Word salad with punctuation and numbers: text-like statistics and many short matches."""
    rng = random.Random(seed)
    parts = []
    size = 0
    while size < n:
        word = rng.choice(_WORDS)
        if rng.random() < 0.05:
            word = f"{word}{rng.randrange(1000)},"
        parts.append(word)
        size += len(word) + 1
    return " ".join(parts).encode()[:n]


def binary_records(n: int, seed: int) -> bytes:
    """Little-endian structs (counter, small enum, noisy float): binary with regular strides."""
    rng = np.random.default_rng(seed)
    count = n // 12 + 1
    rec = np.zeros(count, dtype=[("id", "<u4"), ("kind", "<u2"), ("pad", "<u2"), ("value", "<f4")])
    rec["id"] = np.arange(count) * 3
    rec["kind"] = rng.integers(0, 4, count)
    rec["value"] = np.round(rng.normal(0, 1, count), 2)
    return rec.tobytes()[:n]


def bf16_planes(n: int, seed: int) -> tuple[bytes, bytes]:
    """Exponent bytes and sign+mantissa bytes of ``n`` bf16 weights drawn from N(0, 0.02)."""
    rng = np.random.default_rng(seed)
    bits = (rng.normal(0, 0.02, n).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    exponent = ((bits >> 7) & 0xFF).astype(np.uint8)
    sign_mantissa = (((bits >> 8) & 0x80) | (bits & 0x7F)).astype(np.uint8)
    return exponent.tobytes(), sign_mantissa.tobytes()


def skippable_frame(payload: bytes, nibble: int = 0) -> bytes:
    """A skippable frame with magic 0x184D2A5<nibble>."""
    return struct.pack("<II", 0x184D2A50 | nibble, len(payload)) + payload


def frame_with_blocks(
    blocks: list[tuple[int, bytes | int, int]],
    *,
    content_size: int | None = None,
    fcs_flag: int | None = None,
    single_segment: bool = False,
    window_descriptor: int = 0x50,
    descriptor_extra: int = 0,
    checksum: int | None = None,
    dictionary_id: int | None = None,
) -> bytes:
    """Hand-build a zstd frame from ``(block_type, content, block_size)`` triples.

    ``content`` is the raw bytes for raw/compressed blocks or the byte value for RLE blocks; the
    last triple gets the Last_Block bit. ``descriptor_extra`` is OR-ed into the descriptor (to
    set reserved/unused bits); ``checksum`` appends a content checksum and sets its flag;
    ``dictionary_id`` is written in the smallest Dictionary_ID field that holds it.
    """
    fcs_sizes = {0: 1 if single_segment else 0, 1: 2, 2: 4, 3: 8}
    did_size = 0 if dictionary_id is None else 1 if dictionary_id < 256 else 2 if dictionary_id < 65536 else 4
    if fcs_flag is None:
        fcs_flag = 0 if content_size is None or (single_segment and content_size < 256) else 2
    did_flag = {0: 0, 1: 1, 2: 2, 4: 3}[did_size]
    fhd = (
        (fcs_flag << 6) | (single_segment << 5) | ((checksum is not None) << 2) | did_flag | descriptor_extra
    )
    out = bytearray(struct.pack("<IB", 0xFD2FB528, fhd))
    if not single_segment:
        out.append(window_descriptor)
    if did_size:
        out += dictionary_id.to_bytes(did_size, "little")
    if fcs_sizes[fcs_flag]:
        value = content_size - (256 if fcs_flag == 1 else 0)
        out += value.to_bytes(fcs_sizes[fcs_flag], "little")
    for i, (kind, content, size) in enumerate(blocks):
        header = (size << 3) | (kind << 1) | (i == len(blocks) - 1)
        out += header.to_bytes(3, "little")
        out += bytes([content]) if isinstance(content, int) else content
    if checksum is not None:
        out += struct.pack("<I", checksum)
    return bytes(out)


def libzstd_decompress(data: bytes, dictionary: bytes | None = None) -> bytes:
    """libzstd's answer for concatenated frames; raises ``zstandard.ZstdError`` if it rejects
    the data or the data ends inside a frame."""
    kwargs = {"max_window_size": 1 << 31}
    if dictionary is not None:
        kwargs["dict_data"] = zstandard.ZstdCompressionDict(dictionary)
    decompressor = zstandard.ZstdDecompressor(**kwargs)
    out = []
    rest = data
    if not rest:
        raise zstandard.ZstdError("empty input")
    while rest:
        stream = decompressor.decompressobj()
        out.append(stream.decompress(rest))
        if not stream.eof:
            raise zstandard.ZstdError("input ends inside a frame")
        rest = stream.unused_data
    return b"".join(out)


def _blocks(chunks: list[bytes], level: int) -> bytes:
    """One frame whose blocks end where ``chunks`` end (COMPRESSOBJ_FLUSH_BLOCK)."""
    obj = zstandard.ZstdCompressor(level=level).compressobj()
    out = [obj.compress(c) + obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK) for c in chunks]
    out.append(obj.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH))
    return b"".join(out)


def _rle_block_data(seed: int) -> list[bytes]:
    """A random 4 KB block without 0xAA, then a block of 150 pieces "0xAA + 64 bytes copied
    from 1100..1899 bytes back": at a high level its literals are all 0xAA (RLE literals) and
    literal length, offset and match length codes are each constant (RLE mode for all three)."""
    rng = random.Random(seed)
    alphabet = [b for b in range(256) if b != 0xAA]
    data = bytearray(rng.choice(alphabet) for _ in range(4096))
    for _ in range(150):
        distance = rng.randrange(1100, 1900)
        data += b"\xaa"
        start = len(data) - distance
        data += data[start : start + 64]
    data += b"\xaa"
    return [bytes(data[:4096]), bytes(data[4096:])]


def build_corpus() -> list[CorpusItem]:
    """All corpus items (about 1.3 MB of raw data in total)."""
    items: list[CorpusItem] = []

    def add(name: str, raw: bytes, compressed: bytes, dictionary: bytes | None = None) -> None:
        items.append(CorpusItem(name, raw, compressed, dictionary))

    for level in (-7, -1, 1, 3, 6, 9, 12, 16, 19, 22):
        t = text(6000 + 700 * (level % 5), seed=level + 50)
        add(f"text-l{level}", t, zstandard.ZstdCompressor(level=level).compress(t))
        b = binary_records(5000, seed=level + 80)
        add(f"binary-l{level}", b, zstandard.ZstdCompressor(level=level).compress(b))
    t = text(20000, seed=7)
    for checksum in (False, True):
        for content_size in (False, True):
            c = zstandard.ZstdCompressor(level=5, write_checksum=checksum, write_content_size=content_size)
            add(f"text-ck{int(checksum)}-cs{int(content_size)}", t, c.compress(t))
    add(
        "tiny-single-segment",
        t[:200],
        zstandard.ZstdCompressor(level=3, write_checksum=True).compress(t[:200]),
    )
    add("empty", b"", zstandard.compress(b""))
    small_window = zstandard.ZstdCompressionParameters.from_level(3, window_log=10)
    add("window-1k", t, zstandard.ZstdCompressor(compression_params=small_window).compress(t))

    rng = random.Random(3)
    noise = bytes(rng.randrange(256) for _ in range(3000))
    add("incompressible", noise, zstandard.ZstdCompressor(level=3).compress(noise))
    small_alphabet = bytes(rng.randrange(8) for _ in range(3000))
    add("alphabet-8", small_alphabet, zstandard.ZstdCompressor(level=3).compress(small_alphabet))

    chunks = [text(3000, seed=11), bytes(5000), text(3000, seed=12), b"z" * 40, text(300, seed=13)]
    add("flushed-blocks", b"".join(chunks), _blocks(chunks, level=6))
    chunks = _rle_block_data(seed=0)
    add("rle-literals", b"".join(chunks), _blocks(chunks, level=19))
    literals_only = bytes(rng.randrange(32, 96) for _ in range(1000))
    add("literals-only", literals_only, zstandard.ZstdCompressor(level=1).compress(literals_only))
    chunks = [text(4000, seed=20 + i) for i in range(6)]
    add("repeat-tables", b"".join(chunks), _blocks(chunks, level=19))

    far = text(30000, seed=9)
    ldm_data = far + noise * 10 + far
    ldm = zstandard.ZstdCompressionParameters.from_level(3, enable_ldm=True, window_log=20)
    add("ldm", ldm_data, zstandard.ZstdCompressor(compression_params=ldm).compress(ldm_data))
    big = text(120000, seed=21) + binary_records(80000, seed=22)
    add("threads-2", big, zstandard.ZstdCompressor(level=3, threads=2, write_checksum=True).compress(big))

    exponent, mantissa = bf16_planes(12000, seed=4)
    for level in (1, 19):
        add(f"bf16-exponent-l{level}", exponent, zstandard.ZstdCompressor(level=level).compress(exponent))
        add(f"bf16-mantissa-l{level}", mantissa, zstandard.ZstdCompressor(level=level).compress(mantissa))

    samples = [text(400 + 37 * i, seed=100 + i) for i in range(200)]
    trained = zstandard.train_dictionary(4096, samples)
    for level in (3, 19):
        c = zstandard.ZstdCompressor(level=level, dict_data=trained, write_checksum=True)
        for i in (0, 1):
            add(f"dict-trained-l{level}-{i}", samples[i], c.compress(samples[i]), trained.as_bytes())
    raw_dict = text(3000, seed=300)
    raw_cd = zstandard.ZstdCompressionDict(raw_dict, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    sample = text(2000, seed=301) + raw_dict[1000:1800]
    add("dict-raw", sample, zstandard.ZstdCompressor(level=9, dict_data=raw_cd).compress(sample), raw_dict)

    a, b = text(1500, seed=400), binary_records(1500, seed=401)
    frames = zstandard.compress(a) + skippable_frame(b"user metadata", 7) + zstandard.compress(b, 19)
    add("concatenated+skippable", a + b, frames + skippable_frame(b""))
    return items

"""HCTN reader/writer: upstream goldens, hand-built v0/v1/v2 files, upstream quirks, hostile input."""

from __future__ import annotations

import contextlib
import os
import struct

import numpy as np
import pytest
import torch
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holotensor.errors import (
    ChecksumError,
    DecodeError,
    FormatError,
    HoloTensorError,
    LimitError,
    TruncatedError,
    UnsupportedCodecError,
    UnsupportedVersionError,
)
from holotensor.format.block_codecs import lz4_block_compress, zstd_compress
from holotensor.format.hctn import HctnBlockEntry, HctnReader, HctnVerification, encode_hctn, write_hctn
from holotensor.format.hctn_header import (
    HctnAlgorithm,
    HctnDType,
    HctnHeader,
    HctnQuantization,
    QuantizationScheme,
)
from tests.format.test_hctn_header import GOLDEN_HEADER


def _rechecksum(data: bytes | bytearray) -> bytes:
    """Recompute the v2 header checksum of a patched file (so checks behind it are reached)."""
    out = bytearray(data)
    out[56:64] = xxhash.xxh3_64_intdigest(bytes(out[:56])).to_bytes(8, "little")
    return bytes(out)


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return _rechecksum(out)


def _hand_built(
    payload: bytes,
    *,
    version: int,
    shape: tuple[int, ...],
    dtype: int = 3,
    algorithm: int = 1,
    flags: int = 0,
    block_size: int = 16,
    entry_size: int = 8,
    checksums: bool = False,
    header_checksum: bool = False,
) -> bytes:
    """An HCTN file assembled field by field from the upstream description (not via the writer)."""
    chunks = [payload[i : i + block_size] for i in range(0, len(payload), block_size)]
    blocks = [zstd_compress(c) if algorithm == 1 else lz4_block_compress(c) for c in chunks]
    head = bytearray(64)
    struct.pack_into(
        "<4sIBBHQQIIB", head, 0, b"HCTN", version, algorithm, dtype, flags, len(payload),
        sum(map(len, blocks)), block_size, len(blocks), len(shape),
    )  # fmt: skip
    for i, d in enumerate(shape):
        struct.pack_into("<Q", head, 37 + 8 * i, d)
    if header_checksum:  # upstream v2: hash bytes 0..55, then overwrite 56..63
        struct.pack_into("<Q", head, 56, xxhash.xxh3_64_intdigest(bytes(head[:56])))
    index = bytearray()
    offset = 0
    for b in blocks:
        index += struct.pack("<II", offset, len(b))
        if entry_size == 16:
            index += struct.pack("<Q", xxhash.xxh3_64_intdigest(b) if checksums else 0)
        offset += len(b)
    return bytes(head) + bytes(index) + b"".join(blocks)


def _exercise(data: bytes) -> None:
    """Open and read everything a caller could ask for."""
    with HctnReader(data) as reader:
        reader.verify()
        reader.read_bytes()
        reader.to_tensor()


# --- goldens ---------------------------------------------------------------------------------


def test_golden_header_parses() -> None:
    file = GOLDEN_HEADER + struct.pack("<IIQ", 0, 1234, 0) + bytes(1234)
    reader = HctnReader(file)
    assert reader.header == HctnHeader(
        2, HctnAlgorithm.ZSTD, HctnDType.F16, 3, 8192, 1234, 16384, 1, (64, 64)
    )
    assert reader.header_verified
    assert reader.entries == [HctnBlockEntry(0, 1234, 0)]
    assert reader.verify().blocks_unverified == 1
    with pytest.raises(DecodeError) as info:  # 1234 zero bytes are no zstd frame
        reader.decompress_block(0)
    assert info.value.fragment == 0 and info.value.file == "<bytes>"


def test_quantization_in_file() -> None:
    q = HctnQuantization(QuantizationScheme.SYMMETRIC_INT8, False, 0.0625, 3, 64)
    data = encode_hctn(torch.arange(-50, 50, dtype=torch.int8), quantization=q)
    assert data[10:12] == b"\x07\x00" and data[64:72] == q.to_bytes()
    reader = HctnReader(data)
    assert reader.quantization == q and reader.header.index_offset == 72
    assert torch.equal(reader.to_tensor(), torch.arange(-50, 50, dtype=torch.int8))


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", list(HctnAlgorithm))
@pytest.mark.parametrize(
    ("dtype", "shape", "block_size"),
    [
        (torch.float32, (37, 53), 1000),
        (torch.float16, (256,), 512),  # exact multiple of the block size
        (torch.bfloat16, (3, 7), 16384),
        (torch.int8, (5, 1), 1),
        (torch.float32, (), 16384),
        (torch.float16, (0, 4), 16384),
    ],
)
def test_round_trip(
    algorithm: HctnAlgorithm, dtype: torch.dtype, shape: tuple[int, ...], block_size: int
) -> None:
    g = torch.Generator().manual_seed(0)
    tensor = (torch.randn(shape, generator=g) * 50).to(dtype)
    data = encode_hctn(tensor, algorithm=algorithm, block_size=block_size)
    reader = HctnReader(data)
    out = reader.to_tensor()
    assert out.dtype == dtype and out.shape == tensor.shape and torch.equal(out, tensor)
    nbytes = tensor.numel() * tensor.element_size()
    assert reader.read_bytes() == tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
    assert reader.header.num_blocks == -(-nbytes // block_size)
    assert data[8] == int(algorithm) and data[10:12] == b"\x03\x00"
    assert reader.header.entry_size == 16
    check = reader.verify()
    assert (
        check.header_verified and check.blocks_verified == reader.num_blocks and check.blocks_unverified == 0
    )


def test_write_and_read_file(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "t.hct")
    tensor = torch.linspace(-1, 1, 40000).reshape(200, 200)
    write_hctn(path, tensor, algorithm=HctnAlgorithm.LZ4, level=12)
    with HctnReader(path) as reader:
        assert reader.name == path
        assert torch.equal(reader.to_tensor(), tensor)
        blk = reader.read_block(1)
        assert xxhash.xxh3_64_intdigest(blk) == reader.entry(1).checksum
        assert len(reader.decompress_block(1)) == 16384
        with pytest.raises(IndexError):
            reader.read_block(reader.num_blocks)
    assert sorted(os.listdir(tmp_path)) == ["t.hct"]


def test_atomic_write_leaves_target_untouched(
    tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = os.path.join(tmp_path, "t.hct")
    with open(path, "wb") as f:
        f.write(b"old")

    def boom(src: str, dst: str) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        write_hctn(path, torch.zeros(10))
    assert os.listdir(tmp_path) == ["t.hct"]
    with open(path, "rb") as f:
        assert f.read() == b"old"


def test_i4_returns_raw_bytes() -> None:
    data = encode_hctn(bytes(range(5)), dtype=HctnDType.I4, shape=(3, 3))  # ceil(9 / 2) = 5 bytes
    out = HctnReader(data).to_tensor()
    assert out.dtype == torch.uint8 and out.tolist() == [0, 1, 2, 3, 4]
    assert HctnReader(encode_hctn(b"", dtype=HctnDType.I4, shape=(0,))).to_tensor().shape == (0,)
    with pytest.raises(ValueError, match="needs 5 bytes"):
        encode_hctn(bytes(4), dtype=HctnDType.I4, shape=(3, 3))


def test_writer_rejects_what_hctn_cannot_hold() -> None:
    with pytest.raises(ValueError, match="rank 3"):
        encode_hctn(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="rank 4"):
        encode_hctn(bytes(16), dtype=HctnDType.I8, shape=(2, 2, 2, 2))
    with pytest.raises(TypeError, match="int32"):
        encode_hctn(torch.zeros(4, dtype=torch.int32))
    with pytest.raises(TypeError, match="dtype= and shape="):
        encode_hctn(bytes(4))
    with pytest.raises(ValueError, match="block_size"):
        encode_hctn(torch.zeros(4), block_size=0)
    with pytest.raises(ValueError, match="shape"):
        encode_hctn(torch.zeros(4), shape=(2, 2))


# --- hand-built upstream variants ------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("algorithm", [0, 1])
def test_v0_v1_files(version: int, algorithm: int) -> None:
    payload = bytes(range(200)) * 3
    data = _hand_built(payload, version=version, shape=(600,), algorithm=algorithm, block_size=128)
    reader = HctnReader(data)
    assert reader.header.version == version and reader.header.entry_size == 8
    assert not reader.header_verified
    assert reader.read_bytes() == payload
    assert reader.entry(0).checksum is None and not reader.entry(0).verifiable
    assert reader.verify() == HctnVerification(False, 0, reader.num_blocks)


def test_v1_ignores_block_checksum_flag() -> None:
    # Upstream's rule: 16-byte entries need version >= 2 AND flag 0x0002; a v1 file with the flag has 8.
    payload = bytes(range(64))
    data = _hand_built(payload, version=1, shape=(64,), flags=0x0003, entry_size=8)
    reader = HctnReader(data)
    assert reader.header.entry_size == 8 and not reader.header_verified
    assert reader.read_bytes() == payload


def test_v2_without_block_checksum_flag_has_8_byte_entries() -> None:
    payload = bytes(range(100))
    data = _hand_built(payload, version=2, shape=(100,), flags=0x0001, entry_size=8, header_checksum=True)
    reader = HctnReader(data)
    assert reader.header.entry_size == 8 and reader.header_verified
    assert reader.read_bytes() == payload


def test_v2_without_block_checksums_quirk_is_read() -> None:
    # Upstream's without_block_checksums(): flag 0x0002 cleared, 16-byte entries (checksums 0) written.
    payload = bytes(range(100)) * 3
    data = _hand_built(payload, version=2, shape=(300,), flags=0x0001, entry_size=16, header_checksum=True)
    reader = HctnReader(data)
    assert reader.header.entry_size == 8 and reader.entry_size == 16
    assert reader.read_bytes() == payload
    assert reader.verify() == HctnVerification(True, 0, reader.num_blocks)
    with pytest.raises(FormatError, match="compressed_size"):  # damaged: the flagged layout's error
        HctnReader(data[:-1])


def test_v2_zero_block_checksum_is_unverified() -> None:
    payload = bytes(range(100))
    data = _hand_built(
        payload, version=2, shape=(100,), flags=0x0003, entry_size=16, checksums=False, header_checksum=True
    )
    reader = HctnReader(data)
    assert reader.entry(0).checksum == 0
    check = reader.verify()
    assert check.blocks_verified == 0 and check.blocks_unverified == reader.num_blocks
    assert reader.read_bytes() == payload


def test_v1_rank3_reads_dim2_directly() -> None:
    payload = bytes(range(24))
    data = _hand_built(payload, version=1, shape=(2, 3, 4), dtype=3)
    reader = HctnReader(data)
    assert reader.shape == (2, 3, 4)
    assert torch.equal(reader.to_tensor(), torch.arange(24, dtype=torch.int8).reshape(2, 3, 4))


def test_v2_rank3_dim2_recovered_from_original_size() -> None:
    shape = (4, 16, 64)
    payload = torch.arange(4 * 16 * 64, dtype=torch.float32).numpy().tobytes()
    data = _hand_built(
        payload, version=2, shape=shape, dtype=0, flags=0x0003, block_size=4096, entry_size=16,
        checksums=True, header_checksum=True,
    )  # fmt: skip
    # Upstream's bug, built as its writer does: dim 2 reads back as its low 3 bytes under 5 checksum
    # bytes (the reference's [4,16,64] -> 4978099699278938176 = 0x4515c34d28_000040 has that form).
    garbage = int.from_bytes(data[53:61], "little")
    assert garbage & 0xFFFFFF == 64 and garbage >> 24 == int.from_bytes(data[56:61], "little") != 0
    assert 4978099699278938176 & 0xFFFFFF == 64
    reader = HctnReader(data)
    assert reader.shape == shape and reader.header_verified
    assert torch.equal(reader.to_tensor(), torch.arange(4 * 16 * 64, dtype=torch.float32).reshape(shape))


def test_v2_rank3_unrecoverable() -> None:
    data = _hand_built(bytes(10), version=2, shape=(3, 1, 9), dtype=3, header_checksum=True, flags=1)
    with pytest.raises(FormatError, match="not a multiple"):
        HctnReader(data)


def test_rank4_rejected() -> None:
    data = _patch(encode_hctn(torch.zeros(2, 2)), 36, "<B", 4)
    with pytest.raises(UnsupportedVersionError, match="rank 4 > 3"):
        HctnReader(data)


def test_shape_mismatch_opt_in() -> None:
    # Like upstream's convert_safetensors_to_hct: "F32" of shape [n] over n raw bytes.
    payload = bytes(range(40))
    data = _hand_built(payload, version=2, shape=(40,), dtype=0, flags=3, entry_size=16, checksums=True,
                       header_checksum=True)  # fmt: skip
    with pytest.raises(FormatError, match="needs 160 bytes"):
        HctnReader(data)
    reader = HctnReader(data, allow_shape_mismatch=True)
    assert reader.read_bytes() == payload
    with pytest.raises(FormatError, match="read_bytes"):
        reader.to_tensor()


# --- hostile and damaged input ---------------------------------------------------------------


def _small_file() -> bytes:
    return encode_hctn(torch.arange(60, dtype=torch.int8).reshape(6, 10), block_size=16)


def test_truncated_at_every_offset() -> None:
    data = _small_file()
    for n in range(len(data)):
        with pytest.raises(TruncatedError):
            _exercise(data[:n])
    _exercise(data)


def test_empty_file(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "empty.hct")
    open(path, "wb").close()
    with pytest.raises(TruncatedError) as info:
        HctnReader(path)
    assert info.value.file == path


def test_header_bit_flips() -> None:
    data = _small_file()
    for bit in range(64 * 8):
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        if bit == 10 * 8:  # clearing the header-checksum flag turns the check off, as upstream
            with HctnReader(bytes(bad)) as reader:
                assert not reader.header_verified
            continue
        with pytest.raises(HoloTensorError) as info:
            _exercise(bytes(bad))
        if bit >= 8 * 8:  # past magic and version, the checksum catches everything
            assert type(info.value) is ChecksumError


def test_index_bit_flips() -> None:
    data = _small_file()
    n = HctnReader(data).num_blocks
    for bit in range(64 * 8, (64 + 16 * n) * 8):
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises((TruncatedError, FormatError, ChecksumError)):
            _exercise(bytes(bad))


def test_payload_bit_flips_name_the_block() -> None:
    data = _small_file()
    reader = HctnReader(data)
    start = reader.data_offset
    for pos in range(start, len(data)):
        bad = bytearray(data)
        bad[pos] ^= 0x40
        with pytest.raises(ChecksumError) as info:
            _exercise(bytes(bad))
        block = next(
            i for i, e in enumerate(reader.entries) if e.offset <= pos - start < e.offset + e.compressed_size
        )
        assert info.value.fragment == block and "mismatch" in str(info.value)


def test_wrong_magic_and_version() -> None:
    data = _small_file()
    with pytest.raises(FormatError, match="magic"):
        HctnReader(b"HCTX" + data[4:])
    with pytest.raises(UnsupportedVersionError, match="version 3"):
        HctnReader(_patch(data, 4, "<I", 3))


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "error", "match"),
    [
        (8, "<B", 7, UnsupportedCodecError, "algorithm 7"),
        (9, "<B", 9, FormatError, "dtype code 9"),
        (28, "<I", 0, FormatError, "block_size is 0"),
        (32, "<I", 0xFFFFFFFF, FormatError, "num_blocks"),
        (12, "<Q", 1 << 62, FormatError, "num_blocks"),
        (20, "<Q", 5, FormatError, "compressed_size"),
    ],
)
def test_hostile_header_fields(offset: int, fmt: str, value: int, error: type, match: str) -> None:
    with pytest.raises(error, match=match) as info:
        HctnReader(_patch(_small_file(), offset, fmt, value))
    assert type(info.value) is error


def test_hostile_sizes_hit_limits_before_allocating() -> None:
    huge = bytearray(_hand_built(bytes(16), version=1, shape=(16,)))
    struct.pack_into("<QQIIBQ", huge, 12, 1 << 50, 10, 1 << 30, 1 << 20, 1, 1 << 50)
    with pytest.raises(LimitError, match="block_size"):
        HctnReader(bytes(huge))
    with pytest.raises(LimitError, match="original_size"):
        HctnReader(bytes(huge), max_block_size=1 << 30)
    with pytest.raises(TruncatedError, match="index of 1048576"):
        HctnReader(bytes(huge), max_block_size=1 << 30, max_original_size=1 << 60)


def test_absurd_empty_shape() -> None:
    # Zero elements, so original_size 0 fits, but torch cannot even describe the shape.
    data = _hand_built(b"", version=1, shape=(0, 1 << 63), dtype=0)
    with pytest.raises(FormatError, match="larger than any tensor"):
        HctnReader(data)
    assert HctnReader(_hand_built(b"", version=1, shape=(0, 1 << 40), dtype=0)).to_tensor().shape == (
        0,
        1 << 40,
    )


def test_block_claiming_impossible_expansion() -> None:
    # One 16 MiB zstd block backed by 20 stored bytes: no zstd frame can expand that far.
    head = _hand_built(bytes(16), version=1, shape=(16,))[:64]
    head = bytearray(head)
    struct.pack_into("<QQIIBQ", head, 12, 1 << 24, 20, 1 << 24, 1, 1, 1 << 24)
    data = bytes(head) + struct.pack("<II", 0, 20) + bytes(20)
    with pytest.raises(LimitError, match="block 0 claims") as info:
        HctnReader(data)
    assert info.value.fragment == 0


def test_offsets_past_the_end() -> None:
    data = bytearray(_small_file())
    struct.pack_into("<I", data, 64 + 16, 10_000)  # block 1 offset
    with pytest.raises(TruncatedError, match="block 1") as info:
        HctnReader(bytes(data))
    assert info.value.fragment == 1


@pytest.mark.parametrize("algorithm", [0, 1])
def test_wrong_decompressed_length(algorithm: int) -> None:
    data = bytearray(
        _hand_built(bytes(range(30)), version=1, shape=(30,), algorithm=algorithm, block_size=30)
    )
    # Claim 31 bytes: the block holds 30.
    struct.pack_into("<QQI", data, 12, 31, struct.unpack_from("<Q", data, 20)[0], 31)
    struct.pack_into("<Q", data, 37, 31)
    with pytest.raises(DecodeError, match="expected 31") as info:
        HctnReader(bytes(data)).read_bytes()
    assert info.value.fragment == 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(blob: bytes) -> None:
    for data in (blob, b"HCTN" + blob, _rechecksum(b"HCTN\x02\x00\x00\x00" + blob.ljust(56, b"\0"))):
        with contextlib.suppress(HoloTensorError):
            _exercise(data)


_VALID = [
    encode_hctn(torch.arange(-40, 40, dtype=torch.int8).reshape(8, 10), block_size=32),
    encode_hctn(torch.linspace(0, 1, 50), algorithm=HctnAlgorithm.LZ4, block_size=64,
                quantization=HctnQuantization(QuantizationScheme.AWQ_INT4, True, 0.5, -8, 32)),
    _hand_built(bytes(range(90)), version=1, shape=(3, 5, 6), block_size=40),
]  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_VALID),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    st.booleans(),
    st.integers(0, 400),
)
def test_fuzz_mutations(valid: bytes, edits: list[tuple[int, int]], fix_checksum: bool, cut: int) -> None:
    data = bytearray(valid)
    for pos, value in edits:
        data[pos % len(data)] = value
    data = bytes(data)
    if fix_checksum:
        data = _rechecksum(data)
    for candidate in (data, data[: len(data) - cut]):
        with contextlib.suppress(HoloTensorError):
            _exercise(candidate)


def test_mutated_payload_without_checksums_still_decodes_or_raises_decode_error() -> None:
    # v1 files have no block checksums, so damage reaches the decompressor: it must say so cleanly.
    data = _hand_built(bytes(range(90)) * 4, version=1, shape=(360,), block_size=120)
    reader = HctnReader(data)
    rng = np.random.default_rng(0)
    for _ in range(100):
        bad = bytearray(data)
        pos = int(rng.integers(reader.data_offset, len(data)))
        bad[pos] = int(rng.integers(0, 256))
        try:
            out = HctnReader(bytes(bad)).read_bytes()
        except DecodeError as err:
            assert err.fragment is not None
        else:
            assert len(out) == 360


_small_or_huge = st.one_of(st.integers(0, 300), st.integers(0, (1 << 32) - 1))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 5), st.integers(0, 0x1F)),
    st.tuples(_small_or_huge, _small_or_huge, _small_or_huge, _small_or_huge),
    st.integers(0, 5),
    st.lists(st.one_of(st.integers(0, 20), st.integers(0, (1 << 64) - 1)), min_size=3, max_size=3),
    st.binary(max_size=200),
)
def test_fuzz_structured_headers(
    codes: tuple[int, int, int, int],
    sizes: tuple[int, int, int, int],
    rank: int,
    dims: list[int],
    tail: bytes,
) -> None:
    version, algorithm, dtype, flags = codes
    original, compressed, block_size, num_blocks = sizes
    head = bytearray(64)
    struct.pack_into(
        "<4sIBBHQQIIB", head, 0, b"HCTN", version, algorithm, dtype, flags, original, compressed, block_size,
        num_blocks, rank,
    )  # fmt: skip
    for i, d in enumerate(dims):
        struct.pack_into("<Q", head, 37 + 8 * i, d)
    with contextlib.suppress(HoloTensorError):
        _exercise(_rechecksum(head) + tail)

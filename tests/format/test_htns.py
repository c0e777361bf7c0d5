"""HTNS reader/writer: the upstream golden file, the inline variant, upstream quirks, hostile input."""

from __future__ import annotations

import contextlib
import os
import struct

import numpy as np
import pytest
import xxhash
import zstandard
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
from holotensor.format.hctn_header import HctnDType
from holotensor.format.htns import (
    HtnsEncoding,
    HtnsEntry,
    HtnsHeader,
    HtnsReader,
    HtnsVerification,
    encode_htns,
    write_htns,
)
from tests.format.htns_golden import GOLDEN
from tests.format.htns_golden import GOLDEN_PAYLOADS as PAYLOADS


def _rechecksum(data: bytes | bytearray) -> bytes:
    out = bytearray(data)
    out[88:96] = xxhash.xxh3_64_intdigest(bytes(out[:88])).to_bytes(8, "little")
    return bytes(out)


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return _rechecksum(out)


def _entry(index: int, flags: int, offset: int, size: int, uncompressed: int, payload: bytes) -> bytes:
    return struct.pack("<HHIIIQ", index, flags, offset, size, uncompressed, xxhash.xxh3_64_intdigest(payload))


def _exercise(data: bytes) -> None:
    with HtnsReader(data) as reader:
        reader.verify()
        for i in reader.fragment_indices:
            reader.fragment(i)
        reader.predicted_quality(1)


# --- the golden file -------------------------------------------------------------------------


def test_golden_file_framing_is_byte_exact() -> None:
    assert len(GOLDEN) == 248
    assert encode_htns(PAYLOADS, encoding=HtnsEncoding.SPECTRAL, shape=(4, 4)) == GOLDEN
    assert int.from_bytes(GOLDEN[88:96], "little") == 0x67AA1930B4442B7F
    assert xxhash.xxh3_64_intdigest(GOLDEN[:88]) == 0x67AA1930B4442B7F


def test_golden_file_reads() -> None:
    reader = HtnsReader(GOLDEN)
    assert reader.header == HtnsHeader(
        HtnsEncoding.SPECTRAL, 0, 3, 2, 1, 64, 0, HctnDType.F32, (4, 4),
        tuple(np.array([0.6, 0.3, 0.08, 0.02], dtype=np.float32).tolist()),  # type: ignore[arg-type]
    )  # fmt: skip
    assert reader.header_verified and not reader.inline and reader.data_offset == 0x90
    assert reader.entries == [
        HtnsEntry(0, 0, 0, 52, 52, 0xD393833273CA22DC),
        HtnsEntry(1, 0, 52, 52, 52, 0x300277E7730D9080),
    ]
    frags = [reader.fragment(0), reader.fragment(1)]
    assert [f.data for f in frags] == PAYLOADS and all(f.verified for f in frags)
    assert reader.verify() == HtnsVerification(True, 2, 0)
    # The SV03 coefficients are raster-interleaved across the two fragments; libm decides low bits.
    c0 = np.frombuffer(PAYLOADS[0][20:], dtype="<f4")
    c1 = np.frombuffer(PAYLOADS[1][20:], dtype="<f4")
    coeffs = np.empty(16, dtype=np.float32)
    coeffs[0::2], coeffs[1::2] = c0, c1
    np.testing.assert_allclose(
        coeffs[:5], [30, -4.460887, 4.55e-6, -0.3170309, -17.84354], rtol=1e-4, atol=1e-8
    )


def test_predicted_quality_follows_upstream_rule() -> None:
    reader = HtnsReader(GOLDEN)
    a = np.array([0.6, 0.3, 0.08, 0.02], dtype=np.float32).astype(float)
    assert reader.predicted_quality(0) == 0.0  # below min_fragments
    assert reader.predicted_quality(1) == pytest.approx(a[0] + a[1] / 2 + a[2] / 4 + a[3] / 8)
    assert reader.predicted_quality(2) == 1.0
    empty = HtnsReader(encode_htns([], encoding=HtnsEncoding.SPECTRAL, shape=(1,)))
    assert empty.total_fragments == 0 and empty.predicted_quality(3) == 0.0


# --- round trips and writer ------------------------------------------------------------------


def test_round_trip_with_zstd(tmp_path: os.PathLike[str]) -> None:
    payloads = [bytes(range(256)) * 20, b"", b"tail"]
    path = os.path.join(tmp_path, "x.htns")
    write_htns(
        path,
        payloads,
        encoding=HtnsEncoding.LOW_RANK_DISTRIBUTED,
        shape=(8, 8, 2),
        zstd=[True, False, True],
        seed=7,
    )
    with HtnsReader(path) as reader:
        assert [e.compressed for e in reader.entries] == [True, False, True]
        assert reader.entries[0].uncompressed_size == len(payloads[0]) > reader.entries[0].stored_size
        assert [reader.fragment(i).data for i in range(3)] == payloads
        h = reader.header
        assert (h.seed, h.shape, h.min_fragments, h.original_size) == (7, (8, 8, 2), 1, 512)
        assert h.quality_curve == pytest.approx((0.3, 0.5, 0.15, 0.05))
    assert os.listdir(tmp_path) == ["x.htns"]


def test_zstd_frame_without_content_size() -> None:
    raw = bytes(range(200)) * 10
    cobj = zstandard.ZstdCompressor().compressobj()
    frame = cobj.compress(raw) + cobj.flush()
    assert zstandard.get_frame_parameters(frame).content_size == zstandard.CONTENTSIZE_UNKNOWN
    data = bytearray(encode_htns([frame], encoding=HtnsEncoding.SPECTRAL, shape=(2000,), dtype=HctnDType.I8))
    struct.pack_into("<H", data, 96 + 2, 1)  # mark it zstd, uncompressed size left = stored size
    out = HtnsReader(bytes(data)).fragment(0).data
    assert out == raw


def test_writer_limits() -> None:
    with pytest.raises(ValueError, match="at most 4 dims"):
        encode_htns([b""], encoding=HtnsEncoding.SPECTRAL, shape=(1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="zstd has 1 flags for 2"):
        encode_htns([b"", b""], encoding=HtnsEncoding.SPECTRAL, shape=(1,), zstd=[True])
    with pytest.raises(ValueError, match="4 coefficients"):
        encode_htns([b""], encoding=HtnsEncoding.SPECTRAL, shape=(1,), quality_curve=[1.0])
    big = encode_htns([b""], encoding=HtnsEncoding.SPECTRAL, shape=(1,), quality_curve=[1e40, -1e40, 0.5, 0])
    assert HtnsReader(big).header.quality_curve == (float("inf"), float("-inf"), 0.5, 0.0)
    with pytest.raises(ValueError, match="65535 fragments"):
        encode_htns([b""] * 65536, encoding=HtnsEncoding.SPECTRAL, shape=(1,))
    with pytest.raises(ValueError, match="flags"):
        encode_htns([b""], encoding=HtnsEncoding.SPECTRAL, shape=(1,), flags=1 << 16)


def test_atomic_write_leaves_target_untouched(
    tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = os.path.join(tmp_path, "x.htns")
    with open(path, "wb") as f:
        f.write(b"old")

    def boom(src: str, dst: str) -> None:
        raise OSError("no")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="no"):
        write_htns(path, PAYLOADS, encoding=HtnsEncoding.SPECTRAL, shape=(4, 4))
    assert os.listdir(tmp_path) == ["x.htns"]
    with open(path, "rb") as f:
        assert f.read() == b"old"


# --- upstream quirks -------------------------------------------------------------------------


def test_header_checksum_bypass_is_reported() -> None:
    data = bytearray(GOLDEN)
    data[10] &= ~0x01  # clear HEADER_CHECKSUM
    data[90] ^= 0xFF  # and damage the checksum: upstream reads on
    reader = HtnsReader(bytes(data))
    assert not reader.header_verified
    assert reader.fragment(0).data == PAYLOADS[0]
    with pytest.raises(ChecksumError, match="header checksum"):
        HtnsReader(GOLDEN[:90] + bytes([GOLDEN[90] ^ 0xFF]) + GOLDEN[91:])


def test_fragment_checksums_off_means_unverified() -> None:
    data = bytearray(_patch(GOLDEN, 10, "<H", 0x0001))
    data[0x90 + 30] ^= 1  # damage fragment 0: nobody can tell
    reader = HtnsReader(bytes(data))
    frag = reader.fragment(0)
    assert not frag.verified and frag.data != PAYLOADS[0]
    assert reader.verify() == HtnsVerification(True, 0, 2)


def test_inline_variant() -> None:
    payload = b"legacy fragment bytes"
    head = bytearray(encode_htns([], encoding=HtnsEncoding.SPECTRAL, shape=(3, 7)))
    data = bytes(head) + _entry(0, 0, 4, len(payload), len(payload), payload) + b"pad!" + payload
    reader = HtnsReader(data)
    assert reader.inline and reader.total_fragments == 1 and reader.header.total_fragments == 0
    assert reader.data_offset == 120
    assert reader.fragment(0).data == payload and reader.fragment(0).verified
    assert reader.predicted_quality(1) == 1.0


def test_not_inline_when_the_hidden_entry_fails_the_heuristic() -> None:
    head = encode_htns([], encoding=HtnsEncoding.SPECTRAL, shape=(3,))
    for entry in (_entry(1, 0, 0, 4, 4, b"abcd"), _entry(0, 0, 0, 0, 0, b"")):
        reader = HtnsReader(head + entry + b"abcd")
        assert not reader.inline and reader.entries == [] and reader.total_fragments == 0
    assert HtnsReader(head).entries == []


def test_duplicate_indices_rejected() -> None:
    data = bytearray(GOLDEN)
    struct.pack_into("<H", data, 96 + 24, 0)  # entry 1 also claims fragment 0
    with pytest.raises(FormatError, match="fragment index 0 appears in index entries 0 and 1") as info:
        HtnsReader(bytes(data))
    assert info.value.fragment == 0


def test_fragment_indices_must_be_0_to_n_minus_1() -> None:
    data = bytearray(GOLDEN)
    struct.pack_into("<H", data, 96, 1)
    struct.pack_into("<H", data, 96 + 24, 0)
    reader = HtnsReader(bytes(data))  # any order is fine
    assert reader.fragment_indices == [1, 0] and reader.fragment(0).data == PAYLOADS[1]
    with pytest.raises(IndexError):
        reader.fragment(2)
    struct.pack_into("<H", data, 96 + 24, 5)
    with pytest.raises(FormatError, match="index entry 1 holds fragment index 5") as info:
        HtnsReader(bytes(data))
    assert info.value.fragment == 5


# --- hostile and damaged input ---------------------------------------------------------------


def test_truncated_at_every_offset() -> None:
    for n in range(len(GOLDEN)):
        with pytest.raises(TruncatedError):
            _exercise(GOLDEN[:n])
    _exercise(GOLDEN)


def test_header_bit_flips() -> None:
    for bit in range(96 * 8):
        bad = bytearray(GOLDEN)
        bad[bit // 8] ^= 1 << (bit % 8)
        if bit == 10 * 8:  # clearing HEADER_CHECKSUM bypasses the check, as upstream
            with HtnsReader(bytes(bad)) as reader:
                assert not reader.header_verified
            continue
        with pytest.raises(HoloTensorError) as info:
            _exercise(bytes(bad))
        if bit >= 8 * 8:
            assert type(info.value) is ChecksumError


def test_index_bit_flips() -> None:
    for bit in range(96 * 8, 0x90 * 8):
        pos = bit // 8
        if (pos - 96) % 24 in (2, 3, 12, 13, 14, 15):  # entry flag bits 1..15 and uncompressed size: unused
            continue
        bad = bytearray(GOLDEN)
        bad[pos] ^= 1 << (bit % 8)
        with pytest.raises(HoloTensorError):
            _exercise(bytes(bad))


def test_payload_bit_flips_name_the_fragment() -> None:
    for pos in range(0x90, len(GOLDEN)):
        bad = bytearray(GOLDEN)
        bad[pos] ^= 0x08
        with pytest.raises(ChecksumError) as info:
            _exercise(bytes(bad))
        assert info.value.fragment == (0 if pos < 0x90 + 52 else 1)


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "error", "match"),
    [
        (4, "<I", 2, UnsupportedVersionError, "version 2"),
        (8, "<B", 3, UnsupportedCodecError, "encoding 3"),
        (32, "<B", 5, FormatError, "dtype code 5"),
        (33, "<B", 5, FormatError, "ndim is 5"),
        (33, "<B", 255, FormatError, "ndim is 255"),
        (16, "<Q", 1 << 63, LimitError, "original_size"),
        (12, "<H", 0xFFFF, TruncatedError, "65535 fragment entries"),
    ],
)
def test_hostile_header_fields(offset: int, fmt: str, value: int, error: type, match: str) -> None:
    with pytest.raises(error, match=match) as info:
        HtnsReader(_patch(GOLDEN, offset, fmt, value))
    assert type(info.value) is error


def test_wrong_magic() -> None:
    with pytest.raises(FormatError, match="magic"):
        HtnsReader(b"HTNX" + GOLDEN[4:])


def test_offsets_past_the_end() -> None:
    data = bytearray(GOLDEN)
    struct.pack_into("<I", data, 96 + 24 + 4, 0xFFFFFFFF)
    with pytest.raises(TruncatedError, match="index entry 1") as info:
        HtnsReader(bytes(data))
    assert info.value.fragment == 1


def _compressed_file(raw: bytes, uncompressed: int, original_size: int) -> bytes:
    frame = zstandard.ZstdCompressor().compress(raw)
    head = encode_htns([], encoding=HtnsEncoding.SPECTRAL, shape=(1,), original_size=original_size)
    head = _patch(head, 12, "<H", 1)
    return head + _entry(0, 1, 0, len(frame), uncompressed, frame) + frame


def test_zstd_output_capped_by_sane_uncompressed_size() -> None:
    data = _compressed_file(bytes(5000), 100, 10_000)
    with pytest.raises(DecodeError, match="more than the allowed 100 bytes") as info:
        HtnsReader(data).fragment(0)
    assert info.value.fragment == 0


def test_zstd_output_capped_by_original_size_when_entry_is_insane() -> None:
    # The entry claims 0 bytes: the cap falls back to 2 * original_size + 64 KiB.
    assert len(HtnsReader(_compressed_file(bytes(5000), 0, 10)).fragment(0).data) == 5000
    with pytest.raises(DecodeError, match="allowed 65556 bytes"):
        HtnsReader(_compressed_file(bytes(200_000), 0, 10)).fragment(0)
    with pytest.raises(DecodeError, match="allowed 65556 bytes"):  # an absurd entry size is not trusted
        HtnsReader(_compressed_file(bytes(200_000), 1 << 31, 10)).fragment(0)


def test_corrupt_zstd_payload() -> None:
    frame = zstandard.ZstdCompressor().compress(bytes(range(256)) * 8)
    for bad in (frame[:-5], frame + b"junk", b"\x00" * len(frame)):
        head = _patch(
            encode_htns([], encoding=HtnsEncoding.SPECTRAL, shape=(1,), original_size=2048), 12, "<H", 1
        )
        data = head + _entry(0, 1, 0, len(bad), 2048, bad) + bad
        with pytest.raises(DecodeError) as info:
            HtnsReader(data).fragment(0)
        assert info.value.fragment == 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(blob: bytes) -> None:
    for data in (
        blob,
        b"HTNS\x01\x00\x00\x00" + blob,
        _rechecksum(b"HTNS\x01\x00\x00\x00" + blob.ljust(88, b"\0")),
    ):
        with contextlib.suppress(HoloTensorError):
            _exercise(data)


_VALID = [
    GOLDEN,
    encode_htns(
        [bytes(range(100)), b"x" * 300], encoding=HtnsEncoding.RANDOM_PROJECTION, shape=(10, 40), zstd=True
    ),
    encode_htns([], encoding=HtnsEncoding.SPECTRAL, shape=(3,)) + _entry(0, 0, 0, 3, 3, b"abc") + b"abc",
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_VALID),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    st.booleans(),
    st.integers(0, 300),
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


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.tuples(st.integers(0, 3), st.integers(0, 0x3F), st.one_of(st.integers(0, 4), st.integers(0, 0xFFFF))),
    st.one_of(st.integers(0, 500), st.integers(0, (1 << 64) - 1)),
    st.tuples(st.integers(0, 5), st.integers(0, 6)),
    st.lists(
        st.tuples(
            st.integers(0, 4),
            st.integers(0, 3),
            st.integers(0, 300),
            st.integers(0, 300),
            st.integers(0, 1 << 32 - 1),
        ),
        max_size=4,
    ),
    st.binary(max_size=300),
)
def test_fuzz_structured_headers(
    codes: tuple[int, int, int],
    original: int,
    dtype_ndim: tuple[int, int],
    entries: list[tuple[int, int, int, int, int]],
    tail: bytes,
) -> None:
    encoding, flags, total = codes
    dtype, ndim = dtype_ndim
    head = bytearray(96)
    struct.pack_into(
        "<4sIBBHHHQQBB", head, 0, b"HTNS", 1, encoding, 0, flags, total, 1, original, 0, dtype, ndim
    )
    index = b"".join(
        struct.pack("<HHIIIQ", i, f, off, size, unc, xxhash.xxh3_64_intdigest(tail[off : off + size]))
        for i, f, off, size, unc in entries
    )
    with contextlib.suppress(HoloTensorError):
        _exercise(_rechecksum(head) + index + tail)

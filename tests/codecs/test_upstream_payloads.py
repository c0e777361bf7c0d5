"""Upstream holographic payloads: the reference's golden bytes and values (sections 5.4, 8, 9.1,
10.4), HTNS round trips through write_htns / HtnsReader / decode_htns, and hostile payloads."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from holotensor.analysis import cosine, rel_l2
from holotensor.codecs.dct import dct2
from holotensor.codecs.holographic import (
    LRDF_RAW,
    SV02_MAGIC,
    decode_compressive,
    decode_htns,
    decode_lrdf,
    decode_rph,
    decode_spectral,
    encode_compressive,
    encode_htns_payloads,
    encode_lrdf_raw,
    encode_rph,
    encode_sv03,
    htns_matrix_shape,
    normals,
    rph_fragment_seed,
    uniforms,
    xorshift64,
)
from holotensor.errors import DecodeError, HoloTensorError, LimitError
from holotensor.format.htns import HtnsEncoding, HtnsReader, encode_htns, write_htns
from tests.format.htns_golden import GOLDEN, GOLDEN_PAYLOADS

SEQ = torch.arange(16.0).reshape(4, 4)
# Reference section 9.1: HCT3 fragments of the 4x4 identity, N=2, retention 0.25.
HCT3_F0 = bytes.fromhex("33544348 04000000 04000000 04000000 01000000 03000000 2184 003c".replace(" ", ""))
HCT3_F1 = bytes.fromhex("0100 0200 03000000 003c 003c 003c".replace(" ", ""))


def _htns(payloads, encoding, shape, **kw) -> HtnsReader:
    return HtnsReader(encode_htns(payloads, encoding=encoding, shape=shape, **kw))


# --- RNG (section 8.2) -------------------------------------------------------------------------


def test_rng_golden_sequences() -> None:
    assert [int(v) for v in xorshift64(42, 4)] == [
        0xAD5D36AEB, 0xB00AEBFBF40316FE, 0x100DBDB3BF576F53, 0xDD6F7DFD0A82754D,
    ]  # fmt: skip
    assert [int(v) for v in xorshift64(0, 2)] == [0x40822041, 0x100041060C011441]
    np.testing.assert_array_equal(
        uniforms(42, 4), np.array([0.0, 0.6876666, 0.06270963, 0.8649824], dtype=np.float32)
    )
    np.testing.assert_allclose(normals(42, 4), [-2.5903778, 1.5561351, -0.6922739, -0.8501777], rtol=2e-6)
    np.testing.assert_allclose(normals(0, 4), [6.2695131, 0.9668661, 1.1079519, 0.1441491], rtol=2e-6)
    assert not xorshift64((1 << 64) - 1, 5).any()  # state 0: upstream's generator is stuck


def test_rng_lanes_and_jumps_agree_with_stepping() -> None:
    x, seq = np.array([8], dtype=np.uint64), []  # seed 7 -> state 8
    for _ in range(3000):
        x ^= x << np.uint64(13)
        x ^= x >> np.uint64(7)
        x ^= x << np.uint64(17)
        seq.append(int(x[0]))
    long = xorshift64(7, 3000)
    assert long.tolist() == seq
    assert xorshift64(7, 1000, start=1234).tolist() == seq[1234:2234]
    np.testing.assert_array_equal(normals(7, 500, start=300), normals(7, 800)[300:])
    assert xorshift64(7, 0).size == 0
    with pytest.raises(ValueError):
        xorshift64(7, -1)


# --- RPH (section 8.2) -------------------------------------------------------------------------


def test_rph_golden_fragment() -> None:
    assert [rph_fragment_seed(42, k) for k in range(3)] == [0x2A, 0x9E3779B97F4A7C3F, 0x3C6EF372FE94F854]
    frags = encode_rph(torch.tensor([1.0, 2.0, 3.0, 4.0]), 2, seed=42)
    assert [len(f) for f in frags] == [268, 268]
    assert frags[0][:16].hex() == "400000002a000000000000009b941ebf"
    assert struct.unpack_from("<Q", frags[1], 4)[0] == 0x9E3779B97F4A7C3F
    np.testing.assert_allclose(
        np.frombuffer(frags[0][12:28], dtype="<f4"),
        [-0.61945504, 0.05101401, 0.67321646, -0.22465451],
        rtol=1e-5,
    )


def test_rph_upstream_quality_check() -> None:
    """Section 10.4: RPH on 0..31, 4 fragments, seed 42: cosine > 0.5; more fragments do better."""
    x = torch.arange(32.0)
    reader = _htns(encode_htns_payloads(x, HtnsEncoding.RANDOM_PROJECTION, fragments=4, seed=42),
                   HtnsEncoding.RANDOM_PROJECTION, (32,), seed=42)  # fmt: skip
    cos = [cosine(x, decode_htns(reader, k)) for k in range(1, 5)]
    assert cos[-1] > 0.5 and cos == sorted(cos)
    assert decode_htns(reader, [3]).shape == (32,)  # any subset back-projects


def test_rph_limits_and_bad_payloads() -> None:
    frag = encode_rph(torch.ones(8), 1, proj_dim=3)[0]
    assert len(frag) == 12 + 12
    with pytest.raises(DecodeError, match="need 24 bytes"):
        decode_rph([(0, frag[:-1])], 8)
    with pytest.raises(DecodeError, match="proj_dim 0"):
        decode_rph([(0, b"\0" * 12)], 8)
    with pytest.raises(DecodeError, match="header"):
        decode_rph([(0, b"\1\0")], 8)
    hostile = struct.pack("<IQ", 1 << 20, 1) + bytes(4 << 20)  # 1M projections of a 4096-vector
    with pytest.raises(LimitError, match="normals"):
        decode_rph([(0, hostile)], 4096)
    with pytest.raises(LimitError):
        encode_rph(torch.ones(1 << 16), 1)


# --- spectral SV03 / SV02 / V1 (sections 5.4, 8.1) ---------------------------------------------


def test_golden_sv03_file_decodes() -> None:
    reader = HtnsReader(GOLDEN)
    torch.testing.assert_close(decode_htns(reader), SEQ, rtol=0, atol=1e-4)
    rows = torch.tensor([1.5, 5.5, 9.5, 13.5])[:, None].expand(4, 4)
    torch.testing.assert_close(decode_htns(reader, [0]), rows, rtol=0, atol=1e-4)  # fragment 0: row means
    ramp = torch.tensor([-1.5, -0.5, 0.5, 1.5]).expand(4, 4)
    torch.testing.assert_close(decode_htns(reader, [1]), ramp, rtol=0, atol=1e-4)  # fragment 1: the ramp
    torch.testing.assert_close(decode_htns(reader, 1), rows, rtol=0, atol=1e-4)


def test_sv03_writer_matches_golden_framing() -> None:
    ours = encode_htns_payloads(SEQ, HtnsEncoding.SPECTRAL, fragments=2)
    data = encode_htns(ours, encoding=HtnsEncoding.SPECTRAL, shape=(4, 4))
    assert len(data) == len(GOLDEN) == 248
    assert data[:96] == GOLDEN[:96]  # header, incl. its checksum 0x67aa1930b4442b7f
    for k in range(2):  # index entries: all fields exact but the checksum, which covers our floats
        ours_entry, gold_entry = data[96 + 24 * k : 120 + 24 * k], GOLDEN[96 + 24 * k : 120 + 24 * k]
        assert ours_entry[:16] == gold_entry[:16]
        assert struct.unpack_from("<Q", ours_entry, 16)[0] == xxhash.xxh3_64_intdigest(ours[k])
        assert ours[k][:20] == GOLDEN_PAYLOADS[k][:20]  # SV03 header
        np.testing.assert_allclose(
            np.frombuffer(ours[k][20:], "<f4"),
            np.frombuffer(GOLDEN_PAYLOADS[k][20:], "<f4"),
            rtol=0,
            atol=1e-4,
        )
    assert xxhash.xxh3_64_intdigest(GOLDEN_PAYLOADS[0]) == 0xD393833273CA22DC


def test_sv03_fragment_layout() -> None:
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    frags = encode_sv03(x, 4)
    c = dct2(x.double()).reshape(-1).float().numpy()
    for k, f in enumerate(frags):
        assert struct.unpack_from("<5I", f) == (0x33305653, 15, 4, k, len(c[k::4]))
        np.testing.assert_array_equal(np.frombuffer(f[20:], "<f4"), c[k::4])
    many = encode_sv03(torch.ones(1, 2), 4)  # fragments past n hold nothing
    assert [struct.unpack_from("<I", f, 16)[0] for f in many] == [1, 1, 0, 0]
    torch.testing.assert_close(decode_spectral(list(enumerate(many)), 1, 2), torch.ones(1, 2))


def test_sv03_bad_payloads() -> None:
    good = encode_sv03(SEQ, 2)[0]
    head = struct.unpack("<5I", good[:20])
    for patch, match in [
        ((head[0], 15, *head[2:]), "16"),  # n disagrees with the shape
        ((*head[:2], 0, *head[3:]), "F is 0"),
        ((*head[:4], 9), "only 8 fit"),  # too many for the stride
        ((*head[:4], 7), "need 48 bytes"),  # count and length disagree
    ]:
        with pytest.raises(DecodeError, match=match):
            decode_spectral([(0, struct.pack("<5I", *patch) + good[20:])], 4, 4)
    huge = struct.pack("<5I", 0x33305653, 16, 1, 0, 0xFFFFFFFF)
    with pytest.raises(DecodeError):  # a huge count is rejected from the header alone
        decode_spectral([(0, huge)], 4, 4)
    with pytest.raises(DecodeError, match="header"):
        decode_spectral([(0, good[:10])], 4, 4)


def _sv02(c: np.ndarray, f: int) -> list[bytes]:
    """Upstream's SV02 layout (no upstream writer): importance order by |c|, rank-strided slices."""
    order = np.argsort(-np.abs(c), kind="stable").astype("<u4")
    by_rank = c[order].astype("<f4")
    frags = [struct.pack("<3I", SV02_MAGIC, c.size, f) + order.tobytes() + by_rank[0::f].tobytes()]
    for k in range(1, f):
        frags.append(struct.pack("<3I", SV02_MAGIC, k, by_rank[k::f].size) + by_rank[k::f].tobytes())
    return frags


def test_sv02_decodes_and_needs_fragment_0() -> None:
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    frags = _sv02(dct2(x.double()).reshape(-1).numpy(), 3)
    reader = _htns(frags, HtnsEncoding.SPECTRAL, (4, 6))
    torch.testing.assert_close(decode_htns(reader), x, rtol=0, atol=1e-5)
    errors = [rel_l2(x, decode_htns(reader, k)) for k in (1, 2, 3)]
    assert errors[0] > errors[1] > errors[2]
    with pytest.raises(DecodeError, match="fragment 0"):
        decode_htns(reader, [1, 2])
    with pytest.raises(DecodeError, match="mixed"):
        decode_spectral([(0, frags[0]), (1, encode_sv03(x, 2)[1])], 4, 6)
    bad_order = bytearray(frags[0])
    bad_order[12:16] = struct.pack("<I", 24)
    with pytest.raises(DecodeError, match="coefficient 24"):
        decode_spectral([(0, bytes(bad_order))], 4, 6)
    with pytest.raises(DecodeError, match="orders 25"):
        decode_spectral([(0, struct.pack("<3I", SV02_MAGIC, 25, 3))], 4, 6)
    with pytest.raises(DecodeError, match="rank"):
        decode_spectral([(0, frags[0]), (1, struct.pack("<3I", SV02_MAGIC, 22, 2) + bytes(8))], 4, 6)


def test_v1_pairs_first_value_wins() -> None:
    c = dct2(SEQ.double()).reshape(-1).numpy()
    pairs = np.zeros(17, dtype=[("index", "<u4"), ("value", "<f4")])
    pairs["index"][:16], pairs["value"][:16] = np.arange(16), c
    pairs[16] = (0, 1e6)  # a later value for position 0 is ignored
    frag = struct.pack("<2I", 16, 1) + pairs.tobytes()
    torch.testing.assert_close(decode_spectral([(0, frag)], 4, 4), SEQ, rtol=0, atol=1e-4)
    sv03 = encode_sv03(SEQ, 2)[0]  # SV03 sets even positions first; V1 cannot overwrite them
    mixed = decode_spectral(
        [(0, sv03), (1, struct.pack("<2I", 1, 0) + np.array([(0, 1e6)], pairs.dtype).tobytes())], 4, 4
    )
    torch.testing.assert_close(mixed, decode_spectral([(0, sv03)], 4, 4))
    with pytest.raises(DecodeError, match="coefficient 16"):
        decode_spectral([(0, struct.pack("<2IIf", 0, 1, 16, 1.0))], 4, 4)
    with pytest.raises(DecodeError, match="pairs"):
        decode_spectral([(0, b"\0" * 12)], 4, 4)


# --- LRDF (section 8.3) ------------------------------------------------------------------------


def test_lrdf_round_trip_and_upstream_check(tmp_path) -> None:
    i = torch.arange(64.0)
    x = ((i // 8) + (i % 8)).reshape(8, 8)  # section 10.4: 4 fragments, MSE < 10 (it is rank 2)
    payloads = encode_htns_payloads(x, HtnsEncoding.LOW_RANK_DISTRIBUTED, fragments=4)
    assert [struct.unpack_from("<3I", p) for p in payloads] == [(8, 8, 2)] * 4
    write_htns(tmp_path / "x.hct", payloads, encoding=HtnsEncoding.LOW_RANK_DISTRIBUTED, shape=(8, 8))
    with HtnsReader(tmp_path / "x.hct") as reader:
        assert torch.mean((decode_htns(reader) - x) ** 2).item() < 1e-8
        assert rel_l2(x, decode_htns(reader, 1)) < 1e-5  # fragment 0 holds both real components
        assert rel_l2(x, decode_htns(reader, [1, 2, 3])) > 0.99  # without fragment 0 nothing is left
    s = torch.linalg.svdvals(x.double())
    (sigma0,) = struct.unpack_from("<f", payloads[0], 12)
    assert sigma0 == pytest.approx(s[0].item(), rel=1e-5)
    tail = encode_htns_payloads(torch.ones(2, 3), HtnsEncoding.LOW_RANK_DISTRIBUTED, fragments=4)
    assert [len(p) for p in tail] == [12 + 4 * 6, 12 + 4 * 6, 12, 12]  # rank 2: empty fragments


def test_lrdf_raw_mode_is_lossless_and_adds() -> None:
    x = torch.randn(5, 7, generator=torch.Generator().manual_seed(4))
    raw = encode_lrdf_raw(x)
    assert struct.unpack_from("<3I", raw) == (5, 7, LRDF_RAW)
    assert torch.equal(decode_lrdf([(0, raw)], 5, 7), x)
    assert torch.equal(decode_lrdf([(0, raw), (1, raw)], 5, 7), 2 * x)
    with pytest.raises(DecodeError, match="need 152 bytes"):
        decode_lrdf([(0, raw[:-4])], 5, 7)


def test_lrdf_bad_payloads() -> None:
    frag = encode_htns_payloads(torch.eye(3), HtnsEncoding.LOW_RANK_DISTRIBUTED, fragments=1)[0]
    with pytest.raises(DecodeError, match="dimension mismatch"):
        decode_lrdf([(0, frag)], 3, 4)
    with pytest.raises(DecodeError, match="components"):
        decode_lrdf([(0, frag[:-4])], 3, 3)  # truncated component list (upstream cuts it short silently)
    with pytest.raises(DecodeError):
        decode_lrdf([(0, struct.pack("<3I", 3, 3, 0x7FFFFFFF))], 3, 3)


# --- compressive HCT3 / HCT2 (section 9.1) -----------------------------------------------------


def test_hct3_golden_identity() -> None:
    assert xxhash.xxh3_64_intdigest(HCT3_F0) == 0x25C5349BB7B51B15
    assert xxhash.xxh3_64_intdigest(HCT3_F1) == 0x1CE189524532309B
    torch.testing.assert_close(
        decode_compressive([(0, HCT3_F0), (1, HCT3_F1)]), torch.eye(4), rtol=0, atol=1e-6
    )
    torch.testing.assert_close(
        decode_compressive([(1, HCT3_F1), (0, HCT3_F0)], shape=(4, 4)), torch.eye(4), rtol=0, atol=1e-6
    )
    torch.testing.assert_close(decode_compressive([(0, HCT3_F0)]), torch.full((4, 4), 0.25))  # DC only
    with pytest.raises(DecodeError, match="expected 2x8"):
        decode_compressive([(0, HCT3_F0)], shape=(2, 8))


def test_hct3_writer_matches_golden_and_upstream_checks() -> None:
    assert encode_compressive(torch.eye(4), 2, 0.25) == [HCT3_F0, HCT3_F1]
    x = torch.sin(0.1 * torch.arange(256.0)).reshape(16, 16)  # section 10.4
    for retention, bound in ((1.0, 1e-4), (0.2, 0.5)):
        y = decode_compressive(list(enumerate(encode_compressive(x, 4, retention))), shape=(16, 16))
        assert torch.mean((x - y) ** 2).item() < bound
    (single,) = encode_compressive(x, 1, 0.5)  # one fragment keeps every retained coefficient
    assert struct.unpack_from("<6I", single)[3:] == (128, 128, 0)
    f32 = encode_compressive(x, 3, 1.0, f16=False)
    assert struct.unpack_from("<I", f32[0])[0] == 0x48435432
    torch.testing.assert_close(decode_compressive(list(enumerate(f32))), x, rtol=0, atol=1e-5)
    with pytest.raises(ValueError):
        encode_compressive(torch.zeros(0, 3), 2, 0.5)


def test_hct2_is_hct3_with_f32_values() -> None:
    f0 = struct.pack("<6I", 0x48435432, 4, 4, 4, 1, 3) + bytes.fromhex("2184") + struct.pack("<f", 1.0)
    f1 = struct.pack("<HHI3f", 1, 2, 3, 1.0, 1.0, 1.0)
    torch.testing.assert_close(decode_compressive([(0, f0), (1, f1)]), torch.eye(4), rtol=0, atol=1e-6)


def test_compressive_bad_payloads() -> None:
    with pytest.raises(DecodeError, match="exactly one fragment 0"):
        decode_compressive([(1, HCT3_F1)])
    with pytest.raises(DecodeError, match="exactly one fragment 0"):
        decode_compressive([(0, HCT3_F0), (0, HCT3_F0)])
    with pytest.raises(DecodeError, match="set bits"):
        decode_compressive([(0, HCT3_F0[:24] + bytes.fromhex("2180") + HCT3_F0[26:])])
    with pytest.raises(DecodeError, match="past the matrix"):
        odd = struct.pack("<6I", 0x48435433, 3, 1, 1, 1, 0) + bytes([0b1001]) + HCT3_F0[26:]
        decode_compressive([(0, odd)])
    with pytest.raises(DecodeError, match="0 of 2"):  # upstream underflows on a detail index 0
        decode_compressive([(0, HCT3_F0), (1, b"\0\0" + HCT3_F1[2:])])
    with pytest.raises(DecodeError, match="only 4 are kept"):
        decode_compressive([(0, HCT3_F0), (1, HCT3_F1[:4] + struct.pack("<I", 4) + HCT3_F1[8:] + b"\0\x3c")])
    with pytest.raises(DecodeError, match="need 14 bytes"):
        decode_compressive([(0, HCT3_F0), (1, HCT3_F1[:-2])])
    with pytest.raises(DecodeError, match="bitmap"):  # 2^32 coefficients claimed: refused before allocating
        decode_compressive([(0, struct.pack("<6I", 0x48435433, 1 << 16, 1 << 16, 0, 0, 0))])


# --- HTNS tensors: shapes, round trips, selection ------------------------------------------------


@pytest.mark.parametrize("shape", [(), (7,), (4, 6), (2, 3, 4), (2, 1, 2, 3)])
@pytest.mark.parametrize("encoding", list(HtnsEncoding))
def test_htns_round_trip(tmp_path, shape: tuple[int, ...], encoding: HtnsEncoding) -> None:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    payloads = encode_htns_payloads(x, encoding, fragments=3, seed=9)
    write_htns(tmp_path / "t.hct", payloads, encoding=encoding, shape=shape, seed=9)
    with HtnsReader(tmp_path / "t.hct") as reader:
        y = decode_htns(reader)
        assert y.shape == shape and y.dtype == torch.float32
        if encoding == HtnsEncoding.RANDOM_PROJECTION:
            assert cosine(x, y) > 0.3
        else:
            assert rel_l2(x, y) < 1e-5


def test_inline_and_zstd_fragments_decode() -> None:
    payload = GOLDEN_PAYLOADS[0]
    head = encode_htns([], encoding=HtnsEncoding.SPECTRAL, shape=(4, 4))
    entry = struct.pack("<HHIIIQ", 0, 0, 0, len(payload), len(payload), xxhash.xxh3_64_intdigest(payload))
    inline = HtnsReader(head + entry + payload)  # upstream's legacy "inline" variant
    assert inline.inline
    rows = torch.tensor([1.5, 5.5, 9.5, 13.5])[:, None].expand(4, 4)
    torch.testing.assert_close(decode_htns(inline), rows, rtol=0, atol=1e-4)
    packed = _htns(GOLDEN_PAYLOADS, HtnsEncoding.SPECTRAL, (4, 4), zstd=[False, True])
    assert packed.entries[1].compressed
    torch.testing.assert_close(decode_htns(packed), SEQ, rtol=0, atol=1e-4)


def test_spectral_htns_prefixes_improve() -> None:
    x = torch.randn(16, 24, generator=torch.Generator().manual_seed(6)).cumsum(1)
    reader = _htns(
        encode_htns_payloads(x, HtnsEncoding.SPECTRAL, fragments=4), HtnsEncoding.SPECTRAL, x.shape
    )
    errors = [rel_l2(x, decode_htns(reader, k)) for k in range(1, 5)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-5


def test_htns_matrix_convention() -> None:
    assert htns_matrix_shape(()) == (1, 1)
    assert htns_matrix_shape((5,)) == (1, 5)
    assert htns_matrix_shape((3, 4)) == (3, 4)
    assert htns_matrix_shape((2, 3, 4)) == (2, 12)  # d0 x prod(rest), unlike the HCT V2 codecs
    payloads = encode_htns_payloads(torch.zeros(2, 3, 4), HtnsEncoding.SPECTRAL, fragments=1)
    assert struct.unpack_from("<I", payloads[0], 4)[0] == 24


def test_htns_selection_and_header_errors() -> None:
    reader = HtnsReader(GOLDEN)
    for bad in (0, 3, [], [2], [0, 5]):
        with pytest.raises(ValueError):
            decode_htns(reader, bad)
    torch.testing.assert_close(decode_htns(reader, [1, 1, 0]), decode_htns(reader))  # a set: each once
    lying = _htns(GOLDEN_PAYLOADS, HtnsEncoding.SPECTRAL, (4, 4), original_size=60)
    with pytest.raises(DecodeError, match="original_size") as info:
        decode_htns(lying)
    assert info.value.file is not None
    wrong_shape = _htns(GOLDEN_PAYLOADS, HtnsEncoding.SPECTRAL, (4, 5))
    with pytest.raises(DecodeError, match="holds 16 coefficients") as info:
        decode_htns(wrong_shape)
    assert info.value.fragment == 0 and info.value.file is not None
    with pytest.raises(ValueError, match="4 dims"):
        encode_htns_payloads(torch.zeros(1, 1, 1, 1, 2), HtnsEncoding.SPECTRAL)
    with pytest.raises(ValueError, match="float"):
        encode_htns_payloads(torch.zeros(2, dtype=torch.int32), HtnsEncoding.SPECTRAL)
    with pytest.raises(ValueError, match="NaN"):
        encode_htns_payloads(torch.tensor([float("inf")]), HtnsEncoding.LOW_RANK_DISTRIBUTED)


_DECODERS = [
    lambda p: decode_spectral([(0, p)], 3, 5),
    lambda p: decode_spectral([(0, struct.pack("<I", SV02_MAGIC) + p)], 3, 5),
    lambda p: decode_spectral([(0, struct.pack("<I", 0x33305653) + p)], 3, 5),
    lambda p: decode_rph([(0, p)], 15),
    lambda p: decode_lrdf([(0, struct.pack("<2I", 3, 5) + p)], 3, 5),
    lambda p: decode_compressive([(0, struct.pack("<I", 0x48435433) + p)]),
    lambda p: decode_compressive([(0, HCT3_F0), (1, p)]),
]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(range(len(_DECODERS))), st.binary(max_size=96))
def test_hostile_payloads_raise_library_errors(which: int, payload: bytes) -> None:
    try:
        out = _DECODERS[which](payload)
    except HoloTensorError:
        return
    assert isinstance(out, torch.Tensor)

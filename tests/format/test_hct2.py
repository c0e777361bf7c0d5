import json
import os

import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holotensor.errors import (
    ChecksumError,
    FormatError,
    HoloTensorError,
    LimitError,
    TruncatedError,
    UnsupportedCodecError,
    UnsupportedVersionError,
)
from holotensor.format import CodecRecord, HCT2Reader, HCT2Writer, QualityPoint, StoredFragment
from tests.format.hct2_craft import craft, tensor_doc

RAW = CodecRecord("lossless", 1, {"level": "default"}, {})


def write_sample(path, n=3):
    with HCT2Writer(path, {"purpose": "test"}) as w:
        for i in range(n):
            payloads = [bytes([i]) * (10 + i), bytes(range(7))]
            w.add(
                f"t{i}",
                "U8",
                (sum(map(len, payloads)),),
                RAW,
                [StoredFragment(p, len(p), "raw", {}, role=f"part{j}") for j, p in enumerate(payloads)],
                [QualityPoint(2, 0.0, 1.0, False)],
            )
    return path


def test_round_trip_and_alignment(tmp_path):
    path = write_sample(tmp_path / "a.hct")
    with HCT2Reader(path) as r:
        assert r.keys() == ["t0", "t1", "t2"]
        assert r.metadata == {"purpose": "test"}
        e = r.entry("t1")
        assert [f.role for f in e.fragments] == ["part0", "part1"]
        assert all(f.offset % 64 == 0 for f in e.fragments)
        assert bytes(r.fragment_bytes("t1", 0)) == b"\x01" * 11
        assert bytes(r.fragment_bytes("t2", 1)) == bytes(range(7))
        assert e.quality == (QualityPoint(2, 0.0, 1.0, False),)
        with pytest.raises(IndexError):
            r.fragment_bytes("t1", 2)
        with pytest.raises(KeyError, match="nope"):
            r.entry("nope")


def test_empty_file_and_empty_fragments(tmp_path):
    with HCT2Writer(tmp_path / "e.hct"):
        pass
    with HCT2Reader(tmp_path / "e.hct") as r:
        assert r.keys() == []
    with HCT2Writer(tmp_path / "z.hct") as w:
        w.add("z", "F32", (0, 3), RAW, [StoredFragment(b"", 0, "raw", {})])
        w.add("s", "F32", (), RAW, [])
    with HCT2Reader(tmp_path / "z.hct") as r:
        assert bytes(r.fragment_bytes("z", 0)) == b""
        assert r.entry("s").shape == ()


def test_writer_is_atomic(tmp_path):
    target = tmp_path / "x.hct"
    target.write_bytes(b"old content")
    with pytest.raises(RuntimeError), HCT2Writer(target) as w:
        w.add("a", "U8", (1,), RAW, [StoredFragment(b"a", 1, "raw", {})])
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["x.hct"]


def test_writer_rejects_duplicates(tmp_path):
    w = HCT2Writer(tmp_path / "d.hct")
    w.add("a", "U8", (1,), RAW, [StoredFragment(b"a", 1, "raw", {})])
    with pytest.raises(ValueError, match="already added"):
        w.add("a", "U8", (1,), RAW, [])
    w.abort()
    assert not (tmp_path / "d.hct").exists()
    assert os.listdir(tmp_path) == []


def test_unwritable_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        HCT2Writer(tmp_path / "missing" / "x.hct")


def test_truncated_at_every_offset(tmp_path):
    data = write_sample(tmp_path / "a.hct", n=2).read_bytes()
    for cut in range(len(data)):
        (tmp_path / "t.hct").write_bytes(data[:cut])
        with pytest.raises((TruncatedError, FormatError)):
            HCT2Reader(tmp_path / "t.hct")


def test_trailing_garbage(tmp_path):
    data = write_sample(tmp_path / "a.hct").read_bytes()
    (tmp_path / "t.hct").write_bytes(data + b"\0")
    with pytest.raises(FormatError, match="follow the header"):
        HCT2Reader(tmp_path / "t.hct")


def test_flipped_bits_everywhere(tmp_path):
    """Every single-bit flip is caught, at open (preamble, header) or when the fragment is read;
    only the zero padding between payloads carries no information."""
    path = write_sample(tmp_path / "a.hct", n=2)
    data = bytearray(path.read_bytes())
    with HCT2Reader(path) as r:
        covered = {
            p for n in r.keys() for f in r.entry(n).fragments for p in range(f.offset, f.offset + f.size)
        }
        header_start = int.from_bytes(data[16:24], "little")
    for pos in range(len(data)):
        damaged = bytearray(data)
        damaged[pos] ^= 1 << (pos % 8)
        (tmp_path / "f.hct").write_bytes(damaged)
        try:
            with HCT2Reader(tmp_path / "f.hct") as r:
                for name in r.keys():
                    for i in range(len(r.entry(name).fragments)):
                        r.fragment_bytes(name, i)
        except HoloTensorError:
            continue
        assert 64 <= pos < header_start and pos not in covered, f"flip at byte {pos} went unnoticed"


def test_wrong_magic_and_version(tmp_path):
    good = craft({"tensors": []})
    (tmp_path / "m.hct").write_bytes(b"PK\3\4" + good[4:])
    with pytest.raises(FormatError, match="magic"):
        HCT2Reader(tmp_path / "m.hct")
    (tmp_path / "v.hct").write_bytes(craft({"tensors": []}, major=3))
    with pytest.raises(UnsupportedVersionError):
        HCT2Reader(tmp_path / "v.hct")
    (tmp_path / "n.hct").write_bytes(craft({"tensors": []}, minor=7))
    with HCT2Reader(tmp_path / "n.hct") as r:  # newer minor versions are readable
        assert r.version == (2, 7)


def test_unknown_keys_ignored_requires_enforced(tmp_path):
    doc = {"tensors": [tensor_doc(future_field={"x": 1})], "extension": [1, 2]}
    (tmp_path / "u.hct").write_bytes(craft(doc, b"abcd"))
    with HCT2Reader(tmp_path / "u.hct") as r:
        assert bytes(r.fragment_bytes("t", 0)) == b"abcd"
    (tmp_path / "r.hct").write_bytes(craft({"requires": ["sparse-v9"], "tensors": []}))
    with pytest.raises(UnsupportedVersionError, match="sparse-v9"):
        HCT2Reader(tmp_path / "r.hct")


HOSTILE = [
    ({"shape": [1 << 40, 1 << 40]}, LimitError, "2\\^62"),
    ({"shape": [-1]}, FormatError, "shape"),
    ({"shape": [1] * 65}, LimitError, "rank"),
    ({"dtype": "F4"}, UnsupportedCodecError, "dtype"),
    ({"name": "x" * 5000}, LimitError, "name"),
    (
        {
            "fragments": [
                {
                    "offset": 64,
                    "size": 1 << 40,
                    "raw_size": 4,
                    "coding": "raw",
                    "coding_params": {},
                    "xxh3": "0" * 16,
                }
            ]
        },
        FormatError,
        "outside the data section",
    ),
    (
        {
            "fragments": [
                {
                    "offset": 65,
                    "size": 1,
                    "raw_size": 1,
                    "coding": "raw",
                    "coding_params": {},
                    "xxh3": "0" * 16,
                }
            ]
        },
        FormatError,
        "multiple of 64",
    ),
    (
        {
            "fragments": [
                {
                    "offset": 64,
                    "size": 4,
                    "raw_size": 1 << 63,
                    "coding": "raw",
                    "coding_params": {},
                    "xxh3": "0" * 16,
                }
            ]
        },
        FormatError,
        "raw_size",
    ),
    (
        {
            "fragments": [
                {"offset": 64, "size": 4, "raw_size": 4, "coding": "raw", "coding_params": {}, "xxh3": "xyz"}
            ]
        },
        FormatError,
        "xxh3",
    ),
    ({"quality": [{"fragments": 2, "rel_l2": 0, "cosine": 1, "measured": True}]}, FormatError, "quality"),
    ({"codec": {"name": "lossless", "version": 0}}, FormatError, "version"),
]


@pytest.mark.parametrize(("override", "error", "match"), HOSTILE)
def test_hostile_headers(tmp_path, override, error, match):
    (tmp_path / "h.hct").write_bytes(craft({"tensors": [tensor_doc(**override)]}, b"abcd"))
    with pytest.raises(error, match=match) as info:
        HCT2Reader(tmp_path / "h.hct")
    assert "h.hct" in str(info.value)


def test_hostile_documents(tmp_path):
    cases = [
        (b"[]", "JSON object"),
        (b'{"tensors": [], "tensors": []}', "duplicate"),
        (b'{"tensors": [], "x": NaN}', "NaN"),
        (b"\xff\xfe{}", "UTF-8"),
        (b"[" * 100000 + b"]" * 100000, "nested"),
        (json.dumps({"tensors": [], "metadata": {"k": "v" * (2 << 20)}}).encode(), "metadata"),
        (json.dumps({"tensors": [tensor_doc("a"), tensor_doc("a")]}).encode(), "twice"),
        (json.dumps({"tensors": [tensor_doc("a"), tensor_doc("b")]}).encode(), "overlap"),
    ]
    for raw, match in cases:
        (tmp_path / "h.hct").write_bytes(craft(raw, b"abcd"))
        with pytest.raises(FormatError, match=match):
            HCT2Reader(tmp_path / "h.hct")


def test_preamble_claims_terabytes(tmp_path):
    data = bytearray(craft({"tensors": []}))
    data[24:32] = (1 << 40).to_bytes(8, "little")
    (tmp_path / "b.hct").write_bytes(data)
    with pytest.raises(LimitError):
        HCT2Reader(tmp_path / "b.hct")


def test_payload_corruption_names_tensor_and_fragment(tmp_path):
    path = write_sample(tmp_path / "a.hct")
    with HCT2Reader(path) as r:
        off = r.entry("t1").fragments[1].offset
    data = bytearray(path.read_bytes())
    data[off] ^= 0xFF
    path.write_bytes(data)
    with HCT2Reader(path) as r, pytest.raises(ChecksumError) as info:
        r.fragment_bytes("t1", 1)
    assert "'t1'" in str(info.value) and "fragment 1" in str(info.value) and "a.hct" in str(info.value)
    assert xxhash.xxh3_64_intdigest(b"") == 0x2D06800538D394C2


@pytest.fixture(scope="module")
def sample_bytes(tmp_path_factory) -> bytes:
    return write_sample(tmp_path_factory.mktemp("fuzz") / "base.hct", n=2).read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzz_reader(tmp_path, sample_bytes, data):
    """Random mutations of a valid file raise only HoloTensorError subclasses, at open or on read."""
    base = bytearray(sample_bytes)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "set", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(0, len(base) - 1)))
        if kind == "flip" and base:
            base[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set" and base:
            base[pos] = data.draw(st.integers(0, 255))
        elif kind == "cut":
            del base[pos:]
        else:
            base[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    (tmp_path / "f.hct").write_bytes(base)
    try:
        with HCT2Reader(tmp_path / "f.hct") as r:
            for name in r.keys():
                for i in range(len(r.entry(name).fragments)):
                    r.fragment_bytes(name, i)
    except HoloTensorError:
        pass


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(tmp_path, blob):
    (tmp_path / "r.hct").write_bytes(blob)
    with pytest.raises(HoloTensorError):
        HCT2Reader(tmp_path / "r.hct")

"""The reference zstd decoder against libzstd: bit-exact on a generated corpus that covers every
supported feature (counted by parsing), and only library errors on malformed input."""

from __future__ import annotations

import collections
import struct
import tracemalloc

import pytest
import xxhash
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holotensor.entropy.zstd_ref import decompress, parse_frames
from holotensor.entropy.zstd_ref.fse import LL_DEFAULT, ML_DEFAULT, OF_DEFAULT
from holotensor.entropy.zstd_ref.huffman import read_tree
from holotensor.errors import ChecksumError, DecodeError, HoloTensorError, TruncatedError
from tests.entropy import zstd_corpus

CORPUS = zstd_corpus.build_corpus()
ITEMS = {item.name: item for item in CORPUS}


def _decode(item: zstd_corpus.CorpusItem, data: bytes | None = None, limit: int | None = None) -> bytes:
    data = item.compressed if data is None else data
    limit = len(item.raw) if limit is None else limit
    return decompress(data, dictionary=item.dictionary, max_output_size=limit)


def _patched(data: bytes, pos: int, value: int) -> bytes:
    out = bytearray(data)
    out[pos] = value
    return bytes(out)


def _first_block(name: str):
    item = ITEMS[name]
    return item, parse_frames(item.compressed, dictionary=item.dictionary)[0].blocks[0]


# --- tables -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "rows"),
    [
        (
            LL_DEFAULT,
            [(0, 0, 4, 0), (1, 0, 4, 16), (2, 1, 5, 32), (10, 14, 6, 0), (17, 25, 5, 32), (22, 0, 4, 32)],
        ),
        (LL_DEFAULT, [(38, 25, 4, 0), (39, 25, 4, 16), (43, 0, 4, 48), (60, 35, 6, 0), (63, 32, 6, 0)]),
        (
            ML_DEFAULT,
            [(0, 0, 6, 0), (1, 1, 4, 0), (2, 2, 5, 32), (22, 1, 4, 16), (43, 1, 4, 32), (44, 1, 4, 48)],
        ),
        (ML_DEFAULT, [(45, 2, 4, 16), (57, 52, 6, 0), (63, 46, 6, 0)]),
    ],
)
def test_predefined_tables_match_appendix_a(table, rows):
    for state, symbol, nbits, baseline in rows:
        assert (table.symbols[state], table.nbits[state], table.baselines[state]) == (symbol, nbits, baseline)


def test_offset_table_matches_appendix_a_exactly():
    symbols = [0, 6, 9, 15, 21, 3, 7, 12, 18, 23, 5, 8, 14, 20, 2, 7, 11, 17, 22, 4, 8, 13, 19, 1, 6, 10]
    symbols += [16, 28, 27, 26, 25, 24]
    assert OF_DEFAULT.symbols == symbols
    assert OF_DEFAULT.nbits == [4 if s in (1, 6, 11, 15, 20, 24) else 5 for s in range(32)]
    assert OF_DEFAULT.baselines == [16 if s in (15, 20, 24) else 0 for s in range(32)]


def test_huffman_tree_from_direct_weights():
    # Weights 4,3,2,0,1 (+ implied 1 for symbol 5) is the RFC's example: codes 1, 01, 001, -, 0000, 0001.
    table, end, mode = read_tree(bytes([127 + 5, 0x43, 0x20, 0x10]), 0, 4)
    assert (end, mode, table.max_bits) == (4, "direct", 4)
    assert table.symbols == [4, 5, 2, 2, 1, 1, 1, 1] + [0] * 8
    assert table.nbits == [4, 4, 3, 3, 2, 2, 2, 2] + [1] * 8


@pytest.mark.parametrize(
    ("description", "message"),
    [
        (bytes([127 + 3, 0x22, 0x10]), "power of two"),
        (bytes([127 + 1, 0xC0]), "exceeds 11"),
        (bytes([127 + 2, 0x00]), "all weights are zero"),
        (bytes([127 + 2, 0x22]), "weight 1"),
        (bytes([0]), "FSE size 0"),
        (bytes([5, 0x30]), "does not fit"),
        (bytes([127 + 6, 0x11]), "runs past"),
    ],
)
def test_invalid_huffman_trees_raise(description, message):
    with pytest.raises(DecodeError, match=message):
        read_tree(description, 0, len(description))


# --- bit-exact against libzstd --------------------------------------------------------------


@pytest.mark.parametrize("item", CORPUS, ids=[item.name for item in CORPUS])
def test_decodes_bit_exact_like_libzstd(item):
    assert zstd_corpus.libzstd_decompress(item.compressed, item.dictionary) == item.raw
    assert _decode(item) == item.raw


def test_corpus_covers_every_feature():
    seen: collections.Counter = collections.Counter()
    for item in CORPUS:
        for frame in parse_frames(item.compressed, dictionary=item.dictionary):
            seen[f"frame {frame.kind}"] += 1
            if frame.kind != "zstd":
                continue
            seen[f"fcs field {frame.frame_content_size_flag} single {frame.single_segment}"] += 1
            seen["checksum" if frame.content_checksum_flag else "no checksum"] += 1
            seen["dictionary id" if frame.dictionary_id else "no dictionary id"] += 1
            seen["multi-block" if len(frame.blocks) > 1 else "single block"] += 1
            for i, block in enumerate(frame.blocks):
                seen[f"block {block.type}"] += 1
                lit, seq = block.literals, block.sequences
                if lit is None:
                    continue
                seen[f"literals {lit.type}"] += 1
                if lit.streams:
                    seen[f"huffman {lit.streams} streams"] += 1
                if lit.weights_mode:
                    seen[f"weights {lit.weights_mode}"] += 1
                if item.dictionary and i == 0 and lit.type == "treeless":
                    seen["dictionary huffman table"] += 1
                if seq.count == 0:
                    seen["literals-only block"] += 1
                    continue
                for field, mode in (("ll", seq.ll_mode), ("of", seq.of_mode), ("ml", seq.ml_mode)):
                    seen[f"{field} {mode}"] += 1
                    if item.dictionary and i == 0 and mode == "repeat":
                        seen["dictionary fse table"] += 1
                seen["repeat offsets"] += seq.repeat_offsets
                seen["repeat offsets, literal length 0"] += seq.repeat_offsets_ll0
    expected = [
        "frame zstd", "frame skippable", "checksum", "no checksum", "dictionary id", "no dictionary id",
        "multi-block", "fcs field 0 single True", "fcs field 0 single False", "fcs field 1 single True",
        "fcs field 1 single False", "fcs field 2 single True",
        "block raw", "block rle", "block compressed",
        "literals raw", "literals rle", "literals compressed", "literals treeless",
        "huffman 1 streams", "huffman 4 streams", "weights direct", "weights fse",
        "literals-only block", "repeat offsets", "repeat offsets, literal length 0",
        "dictionary huffman table", "dictionary fse table",
    ]  # fmt: skip
    expected += [
        f"{field} {mode}" for field in ("ll", "of", "ml") for mode in ("predefined", "rle", "fse", "repeat")
    ]
    missing = [feature for feature in expected if not seen[feature]]
    assert not missing, f"corpus lacks {missing}; saw {dict(seen)}"


@pytest.mark.parametrize("name", ["text-l19", "flushed-blocks", "dict-trained-l3-0", "rle-literals"])
def test_kept_sections_account_for_each_block(name):
    item = ITEMS[name]
    for block in parse_frames(item.compressed, dictionary=item.dictionary, keep_sections=True)[0].blocks:
        if block.type != "compressed":
            assert block.literal_bytes is None and block.sequence_array is None
            continue
        assert len(block.literal_bytes) == block.literals.regenerated_size
        assert block.sequence_array.shape == (block.sequences.count, 3)
        lengths, offsets, matches = block.sequence_array.T
        assert int(lengths.sum()) <= len(block.literal_bytes) and (offsets > 0).all() and (matches >= 3).all()
        assert block.decoded_size == len(block.literal_bytes) + int(matches.sum())
    assert parse_frames(item.compressed, dictionary=item.dictionary)[0].blocks[0].literal_bytes is None


def test_frame_fields_agree_with_libzstd():
    for item in CORPUS:
        for frame in parse_frames(item.compressed, dictionary=item.dictionary):
            if frame.kind == "skippable":
                assert frame.magic & 0xFFFFFFF0 == 0x184D2A50
                continue
            params = zstandard.get_frame_parameters(item.compressed[frame.offset :])
            expected_size = (
                None if params.content_size == zstandard.CONTENTSIZE_UNKNOWN else params.content_size
            )
            assert frame.content_size == expected_size, item.name
            assert frame.window_size == params.window_size, item.name
            assert (frame.dictionary_id or 0) == params.dict_id, item.name
            assert frame.content_checksum_flag == params.has_checksum, item.name
            assert frame.decoded_size == sum(b.decoded_size for b in frame.blocks)


@pytest.mark.parametrize(
    ("size", "options"),
    [
        (5, {"content_size": 5, "single_segment": True}),
        (300, {"content_size": 300, "single_segment": True, "fcs_flag": 1}),
        (70000, {"content_size": 70000, "single_segment": True, "fcs_flag": 2}),
        (5, {"content_size": 5, "fcs_flag": 3, "window_descriptor": 0x2D}),
        (5, {"window_descriptor": 0x07, "descriptor_extra": 0x10}),
        (5, {"content_size": 5, "checksum": xxhash.xxh64(b"abccc").intdigest() & 0xFFFFFFFF}),
    ],
)
def test_hand_made_headers_decode_like_libzstd(size, options):
    blocks = [(0, b"ab", 2)] + [(1, ord("c"), min(size - 2 - i, 100000)) for i in range(0, size - 2, 100000)]
    frame = zstd_corpus.frame_with_blocks(blocks, **options)
    expected = b"ab" + b"c" * (size - 2)
    assert zstd_corpus.libzstd_decompress(frame) == expected
    assert decompress(frame, max_output_size=size) == expected
    info = parse_frames(frame)[0]
    assert (info.content_size, info.single_segment, info.unused_bit) == (
        options.get("content_size"),
        options.get("single_segment", False),
        bool(options.get("descriptor_extra")),
    )


@pytest.mark.parametrize("dictionary_id", [200, 40000, 3000000])
def test_dictionary_id_field_sizes(dictionary_id):
    trained = bytearray(ITEMS["dict-trained-l3-0"].dictionary)
    trained[4:8] = dictionary_id.to_bytes(4, "little")
    frame = zstd_corpus.frame_with_blocks([(0, b"xyz", 3)], dictionary_id=dictionary_id)
    assert zstd_corpus.libzstd_decompress(frame, bytes(trained)) == b"xyz"
    assert decompress(frame, dictionary=bytes(trained), max_output_size=3) == b"xyz"
    assert parse_frames(frame)[0].dictionary_id_flag == (
        1 if dictionary_id < 256 else 2 if dictionary_id < 65536 else 3
    )
    with pytest.raises(DecodeError, match="needs dictionary"):
        decompress(frame, dictionary=ITEMS["dict-trained-l3-0"].dictionary, max_output_size=3)


# --- malformed input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["tiny-single-segment", "dict-trained-l19-0", "concatenated+skippable", "rle-literals"]
)
def test_every_truncation_raises(name):
    item = ITEMS[name]
    boundaries = {frame.offset for frame in parse_frames(item.compressed, dictionary=item.dictionary)} - {0}
    for cut in range(len(item.compressed)):
        prefix = item.compressed[:cut]
        if cut in boundaries:
            assert _decode(item, prefix) == zstd_corpus.libzstd_decompress(prefix, item.dictionary)
            continue
        with pytest.raises(HoloTensorError):
            _decode(item, prefix)


def test_truncated_headers_and_blocks_raise_truncated_error():
    frame = zstd_corpus.frame_with_blocks([(0, b"hello", 5)], content_size=5, checksum=0)
    for cut in (1, 4, 5, 7, 10, 12, len(frame) - 1):
        with pytest.raises(TruncatedError, match="zstd frame 0"):
            decompress(frame[:cut], max_output_size=5)
    with pytest.raises(TruncatedError):
        decompress(b"", max_output_size=0)


def test_every_bit_flip_raises_or_matches_libzstd():
    item = ITEMS["tiny-single-segment"]
    rejected = 0
    for bit in range(len(item.compressed) * 8):
        data = bytearray(item.compressed)
        data[bit // 8] ^= 1 << (bit % 8)
        try:
            out = _decode(item, bytes(data), limit=1000)
        except HoloTensorError:
            rejected += 1
            continue
        assert out == zstd_corpus.libzstd_decompress(bytes(data)), f"bit {bit}"
    assert rejected > 0.9 * len(item.compressed) * 8


def test_wrong_checksum_raises_checksum_error():
    item = ITEMS["text-ck1-cs1"]
    data = _patched(item.compressed, len(item.compressed) - 1, item.compressed[-1] ^ 0x40)
    with pytest.raises(ChecksumError, match=r"zstd frame 0 \(at byte 0\): content checksum at byte \d+"):
        _decode(item, data)
    frame = zstd_corpus.frame_with_blocks([(0, b"hello", 5)], checksum=1234)
    with pytest.raises(ChecksumError):
        decompress(frame, max_output_size=5)


def test_offset_before_start_of_output_raises():
    item = ITEMS["dict-raw"]
    with pytest.raises(DecodeError, match="reaches before the start"):
        decompress(item.compressed, max_output_size=len(item.raw))


def test_offset_beyond_window_raises():
    near = zstd_corpus.text(12000, seed=1)
    far = bytes(zstd_corpus.binary_records(30000, seed=2))
    data = near + far + near
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=16)
    obj = zstandard.ZstdCompressor(compression_params=params).compressobj()
    chunks = [data[i : i + 8192] for i in range(0, len(data), 8192)]
    frame = b"".join(obj.compress(c) + obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK) for c in chunks)
    frame += obj.flush()
    assert decompress(frame, max_output_size=len(data)) == data
    header = parse_frames(frame)[0]
    assert header.window_size == 1 << 16 and header.window_descriptor == 6 << 3
    smaller_window = _patched(frame, 5, 5 << 3)
    with pytest.raises(DecodeError, match="reaches before the window"):
        decompress(smaller_window, max_output_size=len(data))


@pytest.mark.parametrize(("declared", "message"), [(3, "frame content size"), (9, "declares 9")])
def test_content_size_mismatch_raises(declared, message):
    frame = zstd_corpus.frame_with_blocks([(0, b"hello", 5)], content_size=declared, fcs_flag=2)
    with pytest.raises(DecodeError, match=message):
        decompress(frame, max_output_size=100)
    with pytest.raises(DecodeError, match=message):
        parse_frames(frame)


def test_max_output_size_is_enforced_before_allocating():
    item = ITEMS["threads-2"]
    with pytest.raises(DecodeError, match="max_output_size"):
        _decode(item, limit=len(item.raw) - 1)
    bomb = zstd_corpus.frame_with_blocks([(1, 0, 128 * 1024)] * 1000, window_descriptor=0x58)
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError, match="max_output_size=1000000"):
            decompress(bomb, max_output_size=1_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3_000_000
    with pytest.raises(ValueError):
        decompress(bomb, max_output_size=-1)


def test_reserved_bits_raise():
    frame = zstd_corpus.frame_with_blocks([(0, b"ab", 2)], descriptor_extra=0x08)
    with pytest.raises(DecodeError, match="reserved bit"):
        decompress(frame, max_output_size=2)
    frame = zstd_corpus.frame_with_blocks([(3, b"ab", 2)])
    with pytest.raises(DecodeError, match="reserved block type"):
        decompress(frame, max_output_size=2)
    item, block = _first_block("text-l3")
    seq = block.sequences
    modes = seq.offset + (1 if seq.count < 128 else 2 if seq.count < 0x7F00 else 3)
    with pytest.raises(DecodeError, match="reserved bits of the modes byte"):
        _decode(item, _patched(item.compressed, modes, item.compressed[modes] | 1))


def test_invalid_fse_table_raises():
    item, block = _first_block("text-l19")
    seq = block.sequences
    assert seq.ll_mode == "fse"
    table = seq.offset + (1 if seq.count < 128 else 2 if seq.count < 0x7F00 else 3) + 1
    with pytest.raises(DecodeError, match="accuracy log 20 exceeds 9"):
        _decode(item, _patched(item.compressed, table, item.compressed[table] | 0x0F))


def test_missing_tables_for_treeless_and_repeat_modes_raise():
    item, block = _first_block("text-l3")
    lit = block.literals
    assert lit.type == "compressed"
    with pytest.raises(DecodeError, match=r"treeless literals .* no earlier Huffman table"):
        _decode(item, _patched(item.compressed, lit.offset, item.compressed[lit.offset] | 3))
    seq = block.sequences
    modes = seq.offset + (1 if seq.count < 128 else 2 if seq.count < 0x7F00 else 3)
    with pytest.raises(DecodeError, match=r"repeat mode .* no earlier table"):
        _decode(item, _patched(item.compressed, modes, 0xFC))


def test_errors_name_the_frame_and_byte():
    item = ITEMS["concatenated+skippable"]
    frames = parse_frames(item.compressed)
    second = frames[2]
    assert [f.kind for f in frames] == ["zstd", "skippable", "zstd", "skippable"]
    data = _patched(item.compressed, second.offset + 4, item.compressed[second.offset + 4] | 0x08)
    with pytest.raises(
        DecodeError, match=rf"zstd frame 2 \(at byte {second.offset}\): .* at byte {second.offset + 4}"
    ):
        _decode(item, data)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"\x00\x01\x02\x03", DecodeError, "unknown magic"),
        (zstandard.compress(b"abc") + b"\x28\xb5", TruncatedError, "frame magic"),
        (zstandard.compress(b"abc") + b"junk", DecodeError, r"zstd frame 1 .* unknown magic"),
        (struct.pack("<II", 0x184D2A5F, 10) + b"short", TruncatedError, "skippable frame user data"),
    ],
)
def test_bad_framing_raises(data, error, message):
    with pytest.raises(error, match=message):
        decompress(data, max_output_size=100)


def test_malformed_dictionaries_raise():
    trained = ITEMS["dict-trained-l3-0"].dictionary
    with pytest.raises(DecodeError, match="dictionary: "):
        decompress(ITEMS["dict-trained-l3-0"].compressed, dictionary=trained[:40], max_output_size=1000)
    with pytest.raises(DecodeError, match="at least 8"):
        decompress(ITEMS["text-l3"].compressed, dictionary=b"short", max_output_size=10**6)
    with pytest.raises(DecodeError, match="needs dictionary"):
        decompress(ITEMS["dict-trained-l3-0"].compressed, max_output_size=1000)


# --- fuzzing --------------------------------------------------------------------------------

_FUZZ_ITEMS = [
    "text-l3", "binary-l19", "tiny-single-segment", "dict-trained-l19-0", "dict-raw", "flushed-blocks",
    "rle-literals", "literals-only", "alphabet-8", "concatenated+skippable", "bf16-exponent-l19",
]  # fmt: skip

_mutation = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(0, 7)),
    st.tuples(st.just("set"), st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.floats(0, 1, exclude_max=True), st.just(0)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True), st.just(0)),
)


def _mutate(data: bytes, mutations: list) -> bytes:
    out = bytearray(data)
    for kind, where, value in mutations:
        if not out:
            break
        # Bias towards the headers, where one byte changes the most structure.
        pos = int(where * where * len(out))
        if kind == "flip":
            out[pos] ^= 1 << value
        elif kind == "set":
            out[pos] = value
        elif kind == "insert":
            out.insert(pos, value)
        elif kind == "delete":
            del out[pos]
        else:
            del out[pos:]
    return bytes(out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(_FUZZ_ITEMS), mutations=st.lists(_mutation, min_size=1, max_size=3))
def test_fuzzed_frames_raise_library_errors_or_match_libzstd(name, mutations):
    item = ITEMS[name]
    data = _mutate(item.compressed, mutations)
    try:
        out = _decode(item, data, limit=4 * len(item.raw) + 1024)
    except HoloTensorError:
        return
    assert out == zstd_corpus.libzstd_decompress(data, item.dictionary)

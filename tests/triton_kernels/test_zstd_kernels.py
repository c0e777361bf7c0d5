"""The Triton zstd decoder (interpreted without a GPU) against libzstd and the reference decoder.

The interpreter runs scalar kernel code at roughly a millisecond per sequence, so the corpus is
small: frames of a few hundred bytes to a few KB, batched into few launches (one launch decodes
every frame of a test, which is also what the batched API is for).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
import zstandard

from holotensor.codecs.lossless import LosslessConfig
from holotensor.entropy.fields import LAYOUTS
from holotensor.entropy.zstd import ZstdCoder
from holotensor.entropy.zstd_ref import decompress, parse_frames
from holotensor.entropy.zstd_ref.fse import LL_DEFAULT, ML_DEFAULT, OF_DEFAULT
from holotensor.errors import HoloTensorError
from tests.entropy.zstd_corpus import (
    bf16_planes,
    build_corpus,
    frame_with_blocks,
    libzstd_decompress,
    skippable_frame,
    text,
)
from triton_kernels.field_merge import merge_planes
from triton_kernels.zstd import STATUS_FALLBACK, STATUS_NAMES, decode_frames
from triton_kernels.zstd.decode import _predefined
from triton_kernels.zstd.layout import (
    STATUS_BAD_HEADER,
    STATUS_BAD_HUFFMAN,
    STATUS_BAD_STREAM,
    STATUS_OVERSIZE,
    STATUS_SIZE_MISMATCH,
    STATUS_TRUNCATED,
)
from triton_kernels.zstd.sequences import predefined_tables_kernel


def _decode(frames: list[bytes], sizes: list[int]) -> tuple[list[int], list[bytes]]:
    """Decode ``frames`` in one launch into slots of ``sizes``; returns statuses and slot bytes."""
    stored = torch.frombuffer(bytearray(b"".join(frames) or b"\0"), dtype=torch.uint8)
    offsets = np.cumsum([0, *[len(f) for f in frames]])[:-1].tolist()
    out_offsets = np.cumsum([0, *sizes])[:-1].tolist()
    out = torch.zeros(max(sum(sizes), 1), dtype=torch.uint8)
    status = decode_frames(stored, offsets, [len(f) for f in frames], out, out_offsets, sizes)
    data = bytes(out.numpy())
    return status.tolist(), [data[o : o + n] for o, n in zip(out_offsets, sizes, strict=True)]


def _features(frames: list[bytes]) -> set[str]:
    """What the reference decoder saw in ``frames``: block, literal and sequence-table kinds."""
    seen = set()
    for frame in frames:
        for info in parse_frames(frame):
            for block in info.blocks:
                seen.add(block.type)
                if block.literals is not None:
                    lit = block.literals
                    seen.add(f"literals-{lit.type}")
                    if lit.streams:
                        seen.add(f"streams-{lit.streams}")
                    if lit.weights_mode:
                        seen.add(f"weights-{lit.weights_mode}")
                if block.sequences is not None and block.sequences.count:
                    seq = block.sequences
                    seen.update(f"seq-{mode}" for mode in (seq.ll_mode, seq.of_mode, seq.ml_mode))
                    if seq.repeat_offsets:
                        seen.add("repeat-offsets")
    return seen


def _lossless_frames(tensor: torch.Tensor, frame_size: int) -> tuple[list[list[bytes]], list[bytes]]:
    """The lossless codec's frames per plane (its zstd settings, smaller frames) and the planes."""
    encoded = LosslessConfig().encode(tensor)
    frames, planes = [], []
    for fragment in encoded.fragments:
        options = {**fragment.coding_options, "frame_size": frame_size}
        stored, params = ZstdCoder().encode(memoryview(fragment.data), options)
        ends = np.cumsum(params["frames"]).tolist()
        frames.append([stored[e - n : e] for e, n in zip(ends, params["frames"], strict=True)])
        planes.append(bytes(fragment.data))
    return frames, planes


def test_lossless_bf16_planes_decode_and_merge_bit_exact() -> None:
    gen = torch.Generator().manual_seed(0)
    weights = (torch.randn(3 * 1024 + 300, generator=gen) * 0.02).to(torch.bfloat16)
    frames, planes = _lossless_frames(weights, frame_size=1024)
    flat = [f for plane in frames for f in plane]
    sizes = [min(1024, len(p) - 1024 * i) for p in planes for i in range(-(-len(p) // 1024))]
    status, slots = _decode(flat, sizes)
    assert status == [0] * len(flat)
    decoded = [b"".join(slots[: len(frames[0])]), b"".join(slots[len(frames[0]) :])]
    assert decoded == planes
    features = _features(flat)
    assert {"raw", "compressed", "literals-compressed", "streams-4", "weights-fse"} <= features
    segments = [[(s.src, s.width, s.dst) for s in plane] for plane in LAYOUTS["float16"].planes]
    tensors = [torch.frombuffer(bytearray(p), dtype=torch.uint8) for p in decoded]
    assert torch.equal(
        merge_planes(tensors, torch.bfloat16, segments).view(torch.int16), weights.view(torch.int16)
    )


def _flushed(chunks: list[bytes], level: int) -> bytes:
    """One frame with a block per chunk (zstd then reuses Huffman and FSE tables across blocks)."""
    obj = zstandard.ZstdCompressor(level=level).compressobj()
    out = [obj.compress(c) + obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK) for c in chunks]
    return b"".join(out) + obj.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)


def _phrases(seed: int, blocks: int) -> list[bytes]:
    """Blocks of 33 words from a 4-word vocabulary: few sequences with the same statistics."""
    rng = random.Random(seed)
    vocabulary = (b"alpha ", b"beta ", b"gamma ", b"delta ")
    return [b"".join(rng.choice(vocabulary) for _ in range(33)) for _ in range(blocks)]


def _literal_corpus() -> list[bytes]:
    """Frames whose decoding is mostly literals: every block and literals type."""
    exponent, mantissa = bf16_planes(1200, seed=2)
    rng = random.Random(1)
    small_alphabet = bytes(rng.randrange(6) for _ in range(300))
    fast = zstandard.ZstdCompressionParameters.from_level(1, strategy=zstandard.STRATEGY_FAST, min_match=7)
    return [
        zstandard.ZstdCompressor(compression_params=fast).compress(exponent),
        zstandard.ZstdCompressor(level=3).compress(mantissa),
        zstandard.ZstdCompressor(level=3).compress(exponent[:200]),  # one Huffman stream
        zstandard.ZstdCompressor(level=3).compress(small_alphabet),  # direct weights
        zstandard.compress(b""),
        _flushed([exponent[i : i + 200] for i in range(0, 600, 200)], level=3),  # treeless literals
        frame_with_blocks([(1, 0x5A, 3000), (0, mantissa[:100], 100), (1, 7, 50)], content_size=3150),
        frame_with_blocks([(2, bytes([1 | 20 << 3, 0x41, 0]), 3)], content_size=20),  # RLE literals
    ]


def _sequence_corpus() -> list[bytes]:
    """Text-like frames: sequences with every table mode but RLE, repeat offsets, long matches."""
    words = text(800, seed=40)
    return [
        zstandard.ZstdCompressor(level=19, write_checksum=True).compress(words[:500]),
        zstandard.ZstdCompressor(level=1, write_content_size=False).compress(words[500:800]),
        zstandard.compress(b"abc" * 300),
        _flushed(_phrases(seed=1, blocks=3), level=9),  # repeat-mode sequence tables
    ]


_CORPORA = {
    "literals": (
        _literal_corpus,
        {"raw", "rle", "literals-rle", "literals-treeless", "streams-1", "streams-4", "weights-direct"}
        | {"weights-fse"},
    ),
    "sequences": (
        _sequence_corpus,
        {"literals-raw", "seq-predefined", "seq-fse", "seq-repeat", "repeat-offsets"},
    ),
}


@pytest.mark.parametrize("corpus", sorted(_CORPORA))
def test_frames_match_libzstd(corpus: str) -> None:
    make, wanted = _CORPORA[corpus]
    frames = make()
    expected = [libzstd_decompress(f) for f in frames]
    status, slots = _decode(frames, [len(e) for e in expected])
    assert status == [0] * len(frames), [STATUS_NAMES[s] for s in status]
    assert slots == expected
    features = _features(frames)
    assert wanted <= features, wanted - features


def test_predefined_tables_match_the_reference() -> None:
    probs, logs = _predefined(torch.device("cpu"))
    rows = torch.zeros(3, 512, dtype=torch.int32)
    predefined_tables_kernel[(3,)](probs, logs, rows, torch.zeros(3, dtype=torch.int64))
    for row, ref in zip(rows, (LL_DEFAULT, OF_DEFAULT, ML_DEFAULT), strict=True):
        cells = row[: 1 << ref.accuracy_log].to(torch.int64)
        assert (cells & 255).tolist() == ref.symbols
        assert ((cells >> 8) & 255).tolist() == ref.nbits
        assert (cells >> 16).tolist() == ref.baselines


def test_dictionary_and_skippable_frames_are_routed_to_the_cpu() -> None:
    samples = [text(300 + 20 * i, seed=i) for i in range(40)]
    trained = zstandard.train_dictionary(1024, samples)
    payload = text(500, seed=99)
    with_dict = zstandard.ZstdCompressor(level=3, dict_data=trained).compress(payload)
    blocks = zstandard.ZstdCompressor(level=1).compressobj()
    many = b"".join(
        blocks.compress(b"%d" % i) + blocks.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK) for i in range(6)
    )
    many += blocks.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)
    frames = [with_dict, skippable_frame(b"user data"), many]
    status, slots = _decode(frames, [len(payload), 0, 6])
    assert status == [STATUS_FALLBACK, STATUS_FALLBACK, 0]  # 7 blocks for 6 bytes: decoded here
    assert slots[2] == b"012345"


def _corrupt(frame: bytes, rng: random.Random) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.choice((1, 2, 8))):
        pos = rng.randrange(len(data))
        data[pos] ^= 1 << rng.randrange(8)
    return bytes(data)


def _reference_or_none(frame: bytes, size: int) -> bytes | None:
    """The reference decoder's output if it accepts ``frame`` as exactly ``size`` bytes.

    The reference is the oracle here, not libzstd: libzstd accepts some corrupt Huffman streams
    (bits left over or missing at the end of a stream) that RFC 8878 and this decoder reject."""
    try:
        data = decompress(frame, max_output_size=size)
    except HoloTensorError:
        return None
    declared = parse_frames(frame)[0].content_size
    return data if len(data) == size and declared in (None, size) else None


@pytest.mark.slow
def test_corrupt_frames_fail_per_frame_or_match_the_reference() -> None:
    rng = random.Random(7)
    exponent, _ = bf16_planes(600, seed=3)
    fast = zstandard.ZstdCompressionParameters.from_level(1, strategy=zstandard.STRATEGY_FAST, min_match=7)
    sources = [
        zstandard.ZstdCompressor(compression_params=fast).compress(exponent),
        zstandard.ZstdCompressor(level=19).compress(text(300, seed=8)),
        zstandard.ZstdCompressor(level=3).compress(exponent[:150]),
    ]
    frames, sizes = [], []
    for frame in sources:
        size = len(libzstd_decompress(frame))
        variants = [frame[:cut] for cut in (0, 5, len(frame) // 2, len(frame) - 1)]
        variants += [_corrupt(frame, rng) for _ in range(5)]
        frames += [*variants, frame, frame]  # and a slot too small, one too large
        sizes += [size] * len(variants) + [size - 1, size + 1]
    status, slots = _decode(frames, sizes)
    assert all(s >= 2 for s in status[:4]), status[:4]  # truncated copies of frame 0
    for frame, size, code, slot in zip(frames, sizes, status, slots, strict=True):
        expected = _reference_or_none(frame, size)
        if expected is None:
            assert code >= 2, f"status {code} for a frame the reference rejects"
        else:
            assert code == 0 and slot == expected


def test_error_codes_name_what_is_wrong() -> None:
    exponent, _ = bf16_planes(200, seed=6)
    frame = zstandard.ZstdCompressor(level=3).compress(exponent)
    block = parse_frames(frame)[0].blocks[0]
    assert block.literals.streams == 1
    tree = block.literals.offset + 3  # a 1-stream literals header is 3 bytes
    stream_end = tree + block.literals.compressed_size - 1
    no_tree = bytearray(frame)
    no_tree[tree] = 0
    no_marker = bytearray(frame)
    no_marker[stream_end] = 0
    no_size = zstandard.ZstdCompressor(level=3, write_content_size=False).compress(exponent)
    cases = {
        b"": STATUS_TRUNCATED,
        b"\x00" + frame[1:]: STATUS_BAD_HEADER,
        frame[:-1]: STATUS_TRUNCATED,
        bytes(no_tree): STATUS_BAD_HUFFMAN,
        bytes(no_marker): STATUS_BAD_STREAM,
    }
    frames = [*cases, frame, no_size]
    status, _ = _decode(frames, [200] * len(cases) + [201, 199])
    assert status == [*cases.values(), STATUS_SIZE_MISMATCH, STATUS_OVERSIZE]


@pytest.mark.slow
def test_rle_sequence_tables_from_the_reference_corpus() -> None:
    item = next(i for i in build_corpus() if i.name == "rle-literals")
    assert "seq-rle" in _features([item.compressed])
    status, slots = _decode([item.compressed], [len(item.raw)])
    assert status == [0] and slots == [item.raw]


def test_no_frames() -> None:
    status, _ = _decode([], [])
    assert status == []


@pytest.mark.parametrize(
    ("offsets", "sizes", "out_offsets", "out_sizes", "message"),
    [
        ([0], [100], [0], [1], "past the buffer"),
        ([0], [4], [0], [100], "past the buffer"),
        ([0, 0], [4, 4], [0, 1], [2, 2], "overlap"),
        ([0], [4], [0, 2], [1], "entries"),
        ([-1], [4], [0], [1], "negative"),
    ],
)
def test_bad_arguments_raise(
    offsets: list, sizes: list, out_offsets: list, out_sizes: list, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        decode_frames(
            torch.zeros(8, dtype=torch.uint8),
            offsets,
            sizes,
            torch.zeros(8, dtype=torch.uint8),
            out_offsets,
            out_sizes,
        )


_COMPILE_SCRIPT = """
import triton, triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton_kernels import field_merge as F
from triton_kernels.zstd import decode as D, huffman as H, parse as P, sequences as S

kernels = [
    (P.parse_frames_kernel, "src frame_off frame_size out_off out_size blk strm frame status COUNT",
     "*u8 *i64 *i64 *i64 *i64 *i64 *i64 *i64 *i32 constexpr", {"COUNT": False}),
    (P.parse_frames_kernel, "src frame_off frame_size out_off out_size blk strm frame status COUNT",
     "*u8 *i64 *i64 *i64 *i64 *i64 *i64 *i64 *i32 constexpr", {"COUNT": True}),
    (H.huffman_table_kernel, "src blk tree_slots status table rank fse max_bits",
     "*u8 *i64 *i64 *i32 *i32 *i32 *i32 *i64", {}),
    (H.huffman_literals_kernel, "src out blk strm status table_row table max_bits nslots LANES",
     "*u8 *u8 *i64 *i64 *i32 *i64 *i32 *i64 i32 constexpr", {"LANES": 32}),
    (S.predefined_tables_kernel, "probs logs fse al", "*i32 *i32 *i32 *i64", {}),
    (D._copy_kernel, "src out blk jobs status CHUNK", "*u8 *u8 *i64 *i64 *i32 constexpr", {"CHUNK": 1024}),
    (F._merge_planes_kernel, "p0 p1 p2 p3 p4 p5 p6 p7 seg out numel NPLANES ACC BLOCK",
     "*u8 *u8 *u8 *u8 *u8 *u8 *u8 *u8 *i32 *i16 i64 constexpr constexpr constexpr",
     {"NPLANES": 2, "ACC": tl.int32, "BLOCK": 1024}),
]
for execute in (False, True):
    kernels.append((S.sequences_kernel,
        "src out blk frame frames out_off out_size seq_row codes fse al status EXECUTE",
        "*u8 *u8 *i64 *i64 *i64 *i64 *i64 *i64 *i64 *i32 *i64 *i32 constexpr", {"EXECUTE": execute}))
for fn, _names, types, consts in kernels:
    signature = dict(zip(fn.arg_names, types.split()))
    triton.compile(ASTSource(fn=fn, signature=signature, constexprs=consts), target=GPUTarget("cuda", 90, 32))
print("compiled", len(kernels))
"""


@pytest.mark.slow
def test_kernels_compile_for_a_cuda_target(tmp_path) -> None:
    """The interpreter accepts code a GPU compiler would not; compile every kernel for sm_90."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", _COMPILE_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "compiled 9" in done.stdout

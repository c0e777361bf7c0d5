"""The "zstd" and "raw" entropy codings: round trips, standard frames, parameter checks that
allocate nothing, and corrupted frames."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from holotensor.entropy.base import get_coder
from holotensor.entropy.raw import RawCoder
from holotensor.entropy.zstd import DEFAULT_FRAME_SIZE, MAX_FRAME_SIZE, ZstdCoder, min_frame_size
from holotensor.errors import DecodeError, FormatError, HoloTensorError, LimitError

_FAST = {"strategy": "fast", "min_match": 7, "hash_log": 6, "chain_log": 6, "search_log": 1, "window_log": 17}


def _data(n: int, seed: int = 0) -> bytes:
    """Weight-exponent-like bytes: compressible but not trivially."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(120, 4, n), 0, 255).astype(np.uint8).tobytes()


def _frames(stored: bytes, params: dict) -> list[bytes]:
    ends = np.cumsum(params["frames"]).tolist()
    return [stored[e - s : e] for e, s in zip(ends, params["frames"], strict=True)]


def test_registered() -> None:
    assert isinstance(get_coder("zstd"), ZstdCoder)
    assert isinstance(get_coder("raw"), RawCoder)


@pytest.mark.parametrize("frame_size", [1000, 4096])
@pytest.mark.parametrize("delta", [-1, 0, 1])
@pytest.mark.parametrize("frames", [0, 1, 3])
def test_round_trip_at_frame_boundaries(frame_size: int, delta: int, frames: int) -> None:
    n = max(0, frames * frame_size + delta)
    data = _data(n)
    coder = ZstdCoder()
    stored, params = coder.encode(memoryview(data), {"frame_size": frame_size})
    assert params["frame_size"] == frame_size
    assert len(params["frames"]) == -(-n // frame_size)
    coder.check(params, len(stored), n)
    out = coder.decode(memoryview(stored), params, n)
    assert isinstance(out, bytearray) and bytes(out) == data


def test_empty_input() -> None:
    coder = ZstdCoder()
    stored, params = coder.encode(memoryview(b""), {})
    assert stored == b"" and params == {"frame_size": DEFAULT_FRAME_SIZE, "frames": []}
    coder.check(params, 0, 0)
    assert coder.decode(memoryview(b""), params, 0) == bytearray()


@pytest.mark.parametrize("checksum", [False, True])
def test_every_frame_is_standard_zstd(checksum: bool) -> None:
    data = _data(10_000, seed=2)
    stored, params = ZstdCoder().encode(memoryview(data), {"frame_size": 4096, "checksum": checksum, **_FAST})
    frames = _frames(stored, params)
    assert len(frames) == 3
    plain = zstandard.ZstdDecompressor()
    assert b"".join(plain.decompress(f) for f in frames) == data
    for i, f in enumerate(frames):
        fp = zstandard.get_frame_parameters(f)
        assert fp.content_size == min(4096, len(data) - 4096 * i)
        assert fp.has_checksum == checksum


def test_options_reach_libzstd() -> None:
    data = _data(50_000, seed=3) * 4  # repeats that only a long-window matcher finds
    coder = ZstdCoder()
    small, _ = coder.encode(memoryview(data), {"frame_size": len(data), **_FAST})
    big, _ = coder.encode(memoryview(data), {"frame_size": len(data), "level": 19})
    assert len(big) < len(small)


def test_options_are_validated() -> None:
    coder = ZstdCoder()
    with pytest.raises(ValueError, match="unknown zstd options"):
        coder.encode(memoryview(b"x"), {"levle": 3})
    with pytest.raises(ValueError, match="strategy"):
        coder.encode(memoryview(b"x"), {"strategy": "fastest"})
    for bad in (0, MAX_FRAME_SIZE + 1, 1.5, True):
        with pytest.raises(ValueError, match="frame_size"):
            coder.encode(memoryview(b"x"), {"frame_size": bad})


def test_min_frame_size_is_a_real_floor() -> None:
    coder = ZstdCoder()
    for n in (1, 1000, 1 << 17, (1 << 17) + 1, 1 << 20):
        _, params = coder.encode(memoryview(bytes(n)), {"frame_size": n, "level": 19})
        assert params["frames"][0] >= min_frame_size(n)
    assert min_frame_size(1 << 17) == 10 and min_frame_size((1 << 17) + 1) == 14


def _valid() -> tuple[bytes, dict, int]:
    data = _data(10_000, seed=4)
    stored, params = ZstdCoder().encode(memoryview(data), {"frame_size": 4096})
    return stored, params, len(data)


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda p, s, r: ({**p, "frames": [*p["frames"][:-1], p["frames"][-1] + 1]}, s, r), FormatError),
        (lambda p, s, r: ({**p, "frames": p["frames"][:-1]}, s, r), FormatError),
        (lambda p, s, r: ({**p, "frames": [*p["frames"], 20]}, s + 20, r), FormatError),
        (lambda p, s, r: (p, s, r + 4096), FormatError),
        (
            lambda p, s, r: ({**p, "frames": [5, p["frames"][0] - 5 + p["frames"][1], p["frames"][2]]}, s, r),
            FormatError,
        ),
        (
            lambda p, s, r: ({**p, "frames": [p["frames"][0], p["frames"][1], 3]}, s - p["frames"][2] + 3, r),
            FormatError,
        ),
        (lambda p, s, r: ({**p, "frame_size": MAX_FRAME_SIZE + 1}, s, r), LimitError),
        (lambda p, s, r: ({**p, "frame_size": 0}, s, r), LimitError),
        (lambda p, s, r: ({**p, "frame_size": "4096"}, s, r), LimitError),
        (lambda p, s, r: ({**p, "frames": [float(x) for x in p["frames"]]}, s, r), FormatError),
        (lambda p, s, r: ({**p, "frames": [True] * 3}, 3, r), FormatError),
        (lambda p, s, r: ({**p, "frames": "123"}, s, r), FormatError),
        (lambda p, s, r: ({"frame_size": 4096}, s, r), FormatError),
        (lambda p, s, r: ({**p, "extra": 1}, s, r), FormatError),
        (lambda p, s, r: (p, s, -1), FormatError),
    ],
    ids=[
        "sum-too-big",
        "too-few-frames",
        "too-many-frames",
        "raw-size-needs-more-frames",
        "frame-below-minimum",
        "last-frame-below-minimum",
        "frame-size-over-limit",
        "frame-size-zero",
        "frame-size-not-int",
        "sizes-not-int",
        "sizes-bool",
        "frames-not-list",
        "missing-key",
        "extra-key",
        "negative-raw",
    ],
)
def test_check_rejects_inconsistent_params(mutate, error: type[Exception]) -> None:
    stored, params, raw = _valid()
    bad_params, stored_size, raw_size = mutate(params, len(stored), raw)
    coder = ZstdCoder()
    with pytest.raises(error):
        coder.check(bad_params, stored_size, raw_size)
    with pytest.raises(HoloTensorError):  # decode re-checks before it allocates anything
        coder.decode(memoryview(stored), bad_params, raw_size)


def test_check_allocates_nothing_for_huge_claims() -> None:
    """A tiny fragment claiming a terabyte is rejected before any buffer is made."""
    coder = ZstdCoder()
    claims = [
        ({"frame_size": MAX_FRAME_SIZE, "frames": [20] * 3}, 60, 1 << 40),  # too few frames
        ({"frame_size": MAX_FRAME_SIZE, "frames": [20]}, 20, MAX_FRAME_SIZE),  # frame below its floor
        ({"frame_size": 1 << 30, "frames": [20]}, 20, 1 << 30),  # frame size over the limit
    ]
    tracemalloc.start()
    try:
        for params, stored_size, raw_size in claims:
            with pytest.raises((FormatError, LimitError)):
                coder.decode(memoryview(bytes(stored_size)), params, raw_size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_header_lying_about_content_size_is_caught_before_allocation() -> None:
    """A frame whose header claims more than its slot is a DecodeError, not a big allocation."""
    lie = zstandard.ZstdCompressor(write_content_size=True).compress(bytes(1 << 20))
    params = {"frame_size": 4096, "frames": [len(lie)]}
    with pytest.raises(DecodeError, match="frame 0: header declares 1048576 bytes, expected 4096"):
        ZstdCoder().decode(memoryview(lie), params, 4096)


def test_frame_without_content_size_is_rejected() -> None:
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(_data(4096))
    with pytest.raises(DecodeError, match="frame 0"):
        ZstdCoder().decode(memoryview(frame), {"frame_size": 4096, "frames": [len(frame)]}, 4096)


def _flip_every_bit_sample(checksum: bool) -> tuple[int, int]:
    """Flip bits across a stored fragment; count (DecodeErrors, silently different outputs)."""
    data = _data(9000, seed=7)
    coder = ZstdCoder()
    stored, params = coder.encode(memoryview(data), {"frame_size": 4096, "checksum": checksum, **_FAST})
    errors = wrong = 0
    rng = np.random.default_rng(11)
    for pos in sorted(set(rng.integers(0, len(stored), 150).tolist()) | {0, 4, 5, len(stored) - 1}):
        bad = bytearray(stored)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            out = coder.decode(memoryview(bytes(bad)), params, len(data))
        except DecodeError as exc:
            assert "zstd frame" in str(exc)
            errors += 1
        else:
            assert len(out) == len(data)
            wrong += bytes(out) != data
    return errors, wrong


def test_corrupted_frames_with_checksum_always_raise() -> None:
    errors, wrong = _flip_every_bit_sample(checksum=True)
    assert errors > 0 and wrong == 0


def test_corrupted_frames_without_checksum_never_crash() -> None:
    """Without zstd's checksum (the default) a flip may decode to other bytes of the right size;
    the container's xxh3 over stored bytes is what catches those. Nothing else may happen."""
    errors, _ = _flip_every_bit_sample(checksum=False)
    assert errors > 0


def test_truncated_and_garbage_frames() -> None:
    stored, params, raw = _valid()
    frames = _frames(stored, params)
    coder = ZstdCoder()
    cut = frames[0][:-2] + frames[1] + frames[2] + b"\0\0"
    with pytest.raises(DecodeError, match="frame 0"):
        coder.decode(memoryview(cut), params, raw)
    junk = bytes(len(stored))
    with pytest.raises(DecodeError, match="frame 0: bad frame header"):
        coder.decode(memoryview(junk), params, raw)
    swapped = frames[1] + frames[0] + frames[2]
    swapped_params = {**params, "frames": [params["frames"][1], params["frames"][0], params["frames"][2]]}
    out = coder.decode(memoryview(swapped), swapped_params, raw)  # same sizes: decodes, reordered
    assert bytes(out) != _data(10_000, seed=4)


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=3000), frame_size=st.integers(1, 1500), level=st.sampled_from([1, 3, 19]))
def test_round_trip_property(data: bytes, frame_size: int, level: int) -> None:
    coder = ZstdCoder()
    stored, params = coder.encode(memoryview(data), {"frame_size": frame_size, "level": level})
    coder.check(params, len(stored), len(data))
    assert bytes(coder.decode(memoryview(stored), params, len(data))) == data


def test_raw_coder() -> None:
    coder = RawCoder()
    stored, params = coder.encode(memoryview(b"abc"), {})
    assert stored == b"abc" and params == {}
    coder.check({}, 3, 3)
    assert coder.decode(memoryview(stored), {}, 3) == bytearray(b"abc")
    assert coder.decode(memoryview(b""), {}, 0) == bytearray()
    with pytest.raises(FormatError):
        coder.check({}, 3, 4)
    with pytest.raises(FormatError):
        coder.check({"x": 1}, 3, 3)
    with pytest.raises(FormatError):
        coder.decode(memoryview(b"abc"), {}, 2)
    with pytest.raises(ValueError):
        coder.encode(memoryview(b"abc"), {"level": 3})


def test_decode_frame_into_checks_sizes_and_damage():
    import zstandard as zs

    from holotensor.errors import DecodeError

    coder = ZstdCoder()
    data = bytes(range(256)) * 64
    frame = zs.ZstdCompressor(write_content_size=True, write_checksum=True).compress(data)
    out = bytearray(len(data))
    coder.decode_frame_into(memoryview(frame), memoryview(out), 3)
    assert bytes(out) == data
    with pytest.raises(DecodeError, match="frame 3: header declares"):
        coder.decode_frame_into(memoryview(frame), memoryview(out)[:-1], 3)
    with pytest.raises(DecodeError, match="frame 3"):
        coder.decode_frame_into(memoryview(frame[:-6]), memoryview(out), 3)
    damaged = bytearray(frame)
    damaged[len(damaged) // 2] ^= 0x40
    with pytest.raises(DecodeError, match="frame 3"):
        coder.decode_frame_into(memoryview(bytes(damaged)), memoryview(out), 3)

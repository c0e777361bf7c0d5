"""Field splitting: exact inverse for every layout and dtype, the documented bit positions, and
the entropy bound's field definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from holotensor.analysis import order0_entropy_bits
from holotensor.dtypes import dtype_info, supported_dtypes
from holotensor.entropy import fields
from holotensor.entropy.fields import (
    LAYOUTS,
    PlaneLayout,
    Segment,
    field_entropy_bits,
    merge_planes,
    split_planes,
)

_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _random_elements(n: int, itemsize: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n * itemsize,), dtype=torch.uint8, generator=g).view(_VIEW[itemsize])


@pytest.mark.parametrize("name", sorted(LAYOUTS))
@pytest.mark.parametrize("n", [0, 1, 7, 1000, fields._CHUNK + 3])
def test_split_merge_is_exact(name: str, n: int) -> None:
    layout = LAYOUTS[name]
    x = _random_elements(n, layout.itemsize, seed=n)
    planes = split_planes(x, layout)
    assert len(planes) == len(layout.planes)
    assert all(p.dtype == np.uint8 and p.size == n for p in planes)
    merged = merge_planes(planes, layout, n)
    assert merged.tobytes() == x.numpy().tobytes()


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_split_matches_segment_definition(name: str) -> None:
    """Each plane byte is exactly the bits its segments name (a per-element Python oracle)."""
    layout = LAYOUTS[name]
    x = _random_elements(300, layout.itemsize, seed=3)
    values = [int(v) for v in x.numpy().view(f"<u{layout.itemsize}")]
    planes = split_planes(x, layout)
    for plane, segs in zip(planes, layout.planes, strict=True):
        expect = [sum(((v >> s.src) & ((1 << s.width) - 1)) << s.dst for s in segs) for v in values]
        assert plane.tolist() == expect


def test_bf16_float16_layout_is_exponent_and_sign_mantissa() -> None:
    x = torch.tensor([1.0, -2.0, -0.0, float("inf"), float("nan"), 3.0e-41], dtype=torch.bfloat16)
    u = x.view(torch.int16).numpy().view(np.uint16).astype(np.int64)
    exp, sm = split_planes(x, LAYOUTS["float16"])
    assert exp.tolist() == ((u >> 7) & 0xFF).tolist()
    assert sm.tolist() == (((u >> 8) & 0x80) | (u & 0x7F)).tolist()
    exp2, sm2 = split_planes(x, LAYOUTS["float16-s2"])
    assert exp2.tolist() == ((u >> 5) & 0xFF).tolist()
    assert sm2.tolist() == (((u >> 8) & 0xE0) | (u & 0x1F)).tolist()


def test_float32_layout_planes() -> None:
    x = _random_elements(64, 4, seed=9)
    u = x.numpy().view(np.uint32).astype(np.int64)
    planes = split_planes(x, LAYOUTS["float32"])
    assert [p.tolist() for p in planes] == [
        ((u >> 23) & 0xFF).tolist(),
        (((u >> 24) & 0x80) | ((u >> 16) & 0x7F)).tolist(),
        ((u >> 8) & 0xFF).tolist(),
        (u & 0xFF).tolist(),
    ]


def test_split_accepts_non_contiguous_and_any_shape() -> None:
    base = _random_elements(60, 2, seed=1).view(torch.bfloat16).reshape(6, 10)
    view = base.t()[::2]
    planes = split_planes(view, LAYOUTS["float16"])
    merged = merge_planes(planes, LAYOUTS["float16"], view.numel())
    assert merged.tobytes() == view.contiguous().view(torch.int16).numpy().tobytes()


def test_split_rejects_wrong_itemsize() -> None:
    with pytest.raises(ValueError, match="2-byte"):
        split_planes(torch.zeros(3, dtype=torch.float32), LAYOUTS["float16"])


def test_merge_rejects_bad_planes() -> None:
    layout = LAYOUTS["float16"]
    with pytest.raises(ValueError, match="planes"):
        merge_planes([b"\0" * 4], layout, 4)
    with pytest.raises(ValueError, match="expected 4"):
        merge_planes([b"\0" * 4, b"\0" * 3], layout, 4)


@pytest.mark.parametrize(
    ("planes", "match"),
    [
        (((Segment(0, 8, 0),),), "no plane"),  # 16-bit element, only 8 bits covered
        (((Segment(0, 8, 0),), (Segment(4, 8, 0),), (Segment(12, 4, 0),)), "overlaps"),
        (((Segment(1, 8, 1),), (Segment(8, 8, 0),)), "symbol"),
        (((Segment(0, 4, 4), Segment(8, 4, 0)), (Segment(4, 4, 0), Segment(12, 4, 4))), "down"),
        (((Segment(0, 8, 0),), (Segment(8, 8, 0), Segment(16, 1, 0))), "within 16 bits"),
    ],
)
def test_layout_validation(planes: tuple[tuple[Segment, ...], ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PlaneLayout("bad", 2, tuple(f"p{i}" for i in range(len(planes))), planes)


def test_layout_rejects_segments_that_collide_at_another_shift() -> None:
    # bits 6..9 -> symbol 0..3 (shift 6) and bits 12..15 -> symbol 4..7 (shift 8): moved by 6,
    # bits 12..13 land on symbol bits 6..7, so the whole-array extraction would mix them
    planes = ((Segment(6, 4, 0), Segment(12, 4, 4)), (Segment(0, 6, 0), Segment(10, 2, 6)))
    with pytest.raises(ValueError, match="lands inside"):
        PlaneLayout("bad", 2, ("a", "b"), planes)


def test_all_layouts_are_mergeable_and_fields_are_not() -> None:
    assert all(layout.mergeable for layout in LAYOUTS.values())
    fp16_fields = fields._field_layout(dtype_info("F16"))
    assert not fp16_fields.mergeable
    with pytest.raises(ValueError, match="mergeable"):
        merge_planes([b""] * len(fp16_fields.planes), fp16_fields, 0)


_FIELD_WIDTHS = {
    "BF16": (8, 8),
    "F16": (5, 3, 8),
    "F32": (8, 8, 8, 8),
    "F64": (11, 5, 8, 8, 8, 8, 8, 8),
    "F8_E4M3": (4, 4),
    "F8_E5M2": (5, 3),
    "F8_E8M0": (8,),
    "I64": (8,) * 8,
    "I32": (8,) * 4,
    "I16": (8, 8),
    "I8": (8,),
    "U8": (8,),
    "BOOL": (8,),
}


@pytest.mark.parametrize("name", supported_dtypes())
def test_field_layout_widths_cover_the_element(name: str) -> None:
    info = dtype_info(name)
    layout = fields._field_layout(info)
    assert sum(layout.symbol_widths) == 8 * info.itemsize
    if name in _FIELD_WIDTHS:
        assert layout.symbol_widths == _FIELD_WIDTHS[name]


@pytest.mark.parametrize("name", supported_dtypes())
def test_field_entropy_matches_hand_computed_fields(name: str) -> None:
    """The bound of random bit patterns equals the entropy of the fields cut out by hand."""
    info = dtype_info(name)
    n = 2000
    x = _random_elements(n, info.itemsize, seed=5)
    if info.kind == "bool":
        x = x & 1
    t = x.view(info.torch_dtype)
    got = field_entropy_bits(t)
    u = [int(v) for v in x.numpy().view(f"<u{info.itemsize}")]
    if info.kind == "float" and info.exponent_bits + info.mantissa_bits < 8 * info.itemsize:  # has a sign
        e, m = info.exponent_bits, info.mantissa_bits
        top = m % 8
        sign = 8 * info.itemsize - 1
        hand = {
            "exponent": [(v >> m) & ((1 << e) - 1) for v in u],
            "sign_mantissa": [((v >> sign) << top) | ((v >> (m - top)) & ((1 << top) - 1)) for v in u],
        }
        widths = {"exponent": e, "sign_mantissa": top + 1}
        for i in range(m // 8):
            hand[f"mantissa{i}"] = [(v >> (8 * i)) & 0xFF for v in u]
            widths[f"mantissa{i}"] = 8
    else:
        hand = {f"byte{i}": [(v >> (8 * i)) & 0xFF for v in u] for i in range(info.itemsize)}
        widths = dict.fromkeys(hand, 8)
    assert set(got) == set(hand)
    for role, symbols in hand.items():
        want = order0_entropy_bits(torch.tensor(symbols), 1 << widths[role])
        assert math.isclose(got[role], want, rel_tol=1e-12), role


def test_field_entropy_of_constant_and_empty() -> None:
    assert field_entropy_bits(torch.ones(100, dtype=torch.bfloat16)) == {
        "exponent": 0.0,
        "sign_mantissa": 0.0,
    }
    assert sum(field_entropy_bits(torch.zeros(0, dtype=torch.float32)).values()) == 0.0

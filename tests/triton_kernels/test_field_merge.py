"""merge_planes (Triton, interpreted without a GPU) and merge_planes_ref against holotensor's split/merge."""

import numpy as np
import pytest
import torch

from holotensor.entropy.fields import LAYOUTS, split_planes
from holotensor.entropy.fields import merge_planes as fields_merge
from triton_kernels.field_merge import merge_planes, merge_planes_ref

_CASES = [
    ("float16", torch.bfloat16),
    ("float16", torch.float16),
    ("float16-s2", torch.bfloat16),
    ("float32", torch.float32),
    ("float32-s2", torch.float32),
    ("bytes1", torch.uint8),
    ("bytes2", torch.int16),
    ("bytes4", torch.int32),
    ("bytes8", torch.int64),
]


def _segments(name: str) -> list[list[tuple[int, int, int]]]:
    return [[(s.src, s.width, s.dst) for s in plane] for plane in LAYOUTS[name].planes]


@pytest.mark.parametrize(("name", "dtype"), _CASES)
@pytest.mark.parametrize("numel", [0, 1, 1023, 1025, 3001])
def test_matches_fields_merge_on_random_bits(name: str, dtype: torch.dtype, numel: int) -> None:
    layout = LAYOUTS[name]
    gen = torch.Generator().manual_seed(numel)
    raw = torch.randint(0, 256, (numel * layout.itemsize,), dtype=torch.uint8, generator=gen)
    planes = [torch.from_numpy(p) for p in split_planes(raw.view(dtype), layout)]
    expected = torch.from_numpy(
        fields_merge([p.numpy() for p in planes], layout, numel).view(np.uint8).copy()
    )
    assert torch.equal(expected, raw)
    for fn in (merge_planes, merge_planes_ref):
        got = fn(planes, dtype, _segments(name))
        assert got.dtype == dtype and got.shape == (numel,)
        assert torch.equal(got.view(torch.uint8), expected), fn.__name__


def test_special_values_survive() -> None:
    values = torch.tensor(
        [0.0, -0.0, float("inf"), -float("inf"), float("nan"), 1e-40, -3.5], dtype=torch.float32
    )
    planes = [torch.from_numpy(p) for p in split_planes(values, LAYOUTS["float32-s2"])]
    got = merge_planes(planes, torch.float32, _segments("float32-s2"))
    assert torch.equal(got.view(torch.int32), values.view(torch.int32))


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        ([[(7, 8, 0)]], "got 2 planes"),
        ([[(7, 8, 0)], [(15, 1, 7), (0, 6, 0)]], "uncovered"),
        ([[(7, 8, 0)], [(14, 2, 6), (0, 7, 0)]], "overlaps"),
        ([[(7, 8, 1)], [(15, 1, 7), (0, 7, 0)]], "does not fit"),
    ],
)
def test_bad_layout_is_rejected(segments: list, message: str) -> None:
    planes = [torch.zeros(4, dtype=torch.uint8), torch.zeros(4, dtype=torch.uint8)]
    with pytest.raises(ValueError, match=message):
        merge_planes(planes, torch.bfloat16, segments)


def test_planes_of_different_lengths_are_rejected() -> None:
    planes = [torch.zeros(4, dtype=torch.uint8), torch.zeros(5, dtype=torch.uint8)]
    with pytest.raises(ValueError, match="plane 1 has 5 bytes"):
        merge_planes_ref(planes, torch.bfloat16, _segments("float16"))

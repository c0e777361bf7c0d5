"""codebook_decode (Triton, interpreted without a GPU) against codebook_decode_ref and a plain gather."""

from __future__ import annotations

import pytest
import torch

from triton_kernels.codebook import MAX_STAGES, codebook_decode, codebook_decode_ref

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _case(m: int, n: int, g: int, k: int, d: int, dtype: torch.dtype, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, k, (m, n, g), generator=gen, dtype=torch.int32)
    cbs = torch.randn(m, k, d, generator=gen).to(dtype)
    scales = (torch.rand(n, generator=gen) + 0.5).to(torch.float16)
    return codes.to(DEVICE), cbs.to(DEVICE), scales.to(DEVICE)


@pytest.mark.parametrize(
    ("m", "n", "g", "k", "d"),
    [
        (1, 0, 4, 8, 4),
        (1, 1, 1, 1, 1),
        (1, 1, 3, 5, 8),
        (2, 7, 5, 16, 3),
        (3, 33, 9, 256, 8),
        (2, 129, 8, 4096, 1),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_gather_is_bit_exact(m: int, n: int, g: int, k: int, d: int, dtype: torch.dtype) -> None:
    codes, cbs, scales = _case(m, n, g, k, d, dtype, seed=n + g)
    plain = cbs[0].float()[codes[0].long()]
    for s in range(1, m):  # stage order, as the kernel sums
        plain = plain + cbs[s].float()[codes[s].long()]
    plain = plain.reshape(n, g * d)
    got = codebook_decode(codes, cbs)
    assert got.dtype == torch.float32 and got.shape == (n, g * d)
    assert torch.equal(got, codebook_decode_ref(codes, cbs))
    assert torch.equal(got, plain)
    scaled = codebook_decode(codes, cbs, scales)
    assert torch.equal(scaled, codebook_decode_ref(codes, cbs, scales))  # same fp32 ops in the same order
    torch.testing.assert_close(scaled, plain * scales.float().unsqueeze(1), rtol=0, atol=0)


@pytest.mark.parametrize("cols", [4, 5, 6])
def test_cols_drops_padding(cols: int) -> None:
    codes, cbs, scales = _case(2, 3, 2, 4, 3, torch.float16)  # 2 groups of 3: widths 4..6
    got = codebook_decode(codes, cbs, scales, cols=cols)
    assert got.shape == (3, cols) and got.is_contiguous()
    assert torch.equal(got, codebook_decode_ref(codes, cbs, scales)[:, :cols])
    assert torch.equal(got, codebook_decode_ref(codes, cbs, scales, cols=cols))


def test_strided_and_int64_codes() -> None:
    codes, cbs, scales = _case(2, 6, 10, 16, 4, torch.float32)
    strided = codes.long().transpose(1, 2).contiguous().transpose(1, 2)  # same values, other strides
    cbs_t = cbs.transpose(1, 2).contiguous().transpose(1, 2)
    assert not strided.is_contiguous() and not cbs_t.is_contiguous()
    assert torch.equal(codebook_decode(strided, cbs_t, scales), codebook_decode_ref(codes, cbs, scales))
    u8 = codes.to(torch.uint8)
    assert torch.equal(codebook_decode(u8, cbs, scales), codebook_decode_ref(codes, cbs, scales))


def test_max_stages() -> None:
    codes, cbs, _ = _case(MAX_STAGES, 2, 3, 4, 2, torch.float32)
    assert torch.equal(codebook_decode(codes, cbs), codebook_decode_ref(codes, cbs))


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda c, b, s: (c.float(), b, s), "integer"),
        (lambda c, b, s: (c[0], b, s), "integer"),
        (lambda c, b, s: (c, b.int(), s), "codebooks"),
        (lambda c, b, s: (c, b[:1], s), "stages"),
        (lambda c, b, s: (c, b, s[:-1]), "scales"),
        (lambda c, b, s: (c, b, s.int()), "scales"),
        (lambda c, b, s: (c + 100, b, s), r"\[0, 16\)"),
        (lambda c, b, s: (c - 1, b, s), r"\[0, 16\)"),
        (lambda c, b, s: (c, b[:, :0], s), "at least one"),
    ],
)
def test_launcher_rejects_bad_input(mutate, match: str) -> None:
    codes, cbs, scales = _case(2, 4, 3, 16, 4, torch.float16)
    args = mutate(codes, cbs, scales)
    for fn in (codebook_decode, codebook_decode_ref):
        with pytest.raises(ValueError, match=match):
            fn(*args)


@pytest.mark.parametrize("cols", [0, 8, 13, True])
def test_launcher_rejects_bad_cols(cols) -> None:
    codes, cbs, _ = _case(1, 2, 3, 4, 4, torch.float32)
    with pytest.raises(ValueError, match="cols"):
        codebook_decode(codes, cbs, cols=cols)


def test_too_many_stages() -> None:
    codes, cbs, _ = _case(MAX_STAGES + 1, 1, 1, 2, 1, torch.float32)
    with pytest.raises(ValueError, match="stages"):
        codebook_decode(codes, cbs)

"""dequantize (Triton, interpreted without a GPU) and dequantize_ref against holotensor's blockquant math."""

import pytest
import torch

from holotensor.codecs import quant_math as qm
from triton_kernels.dequant import dequantize, dequantize_ref

_SHAPES = [(1, 1), (3, 37), (2, 3, 100), (3, 1025)]
_OUT = [torch.float16, torch.bfloat16, torch.float32]


def _quantized(shape, bits, gs, sym, sdt="fp16", seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g) * 0.1 + 0.02
    return qm.QuantizedTensor.from_codes(*qm.quantize(w, bits, gs, sym, sdt), bits, gs)


def _run(fn, qt, dtype):
    return fn(
        qt.packed, qt.scales, qt.zeros, bits=qt.bits, group_size=qt.group_size, shape=qt.shape, dtype=dtype
    )


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("shape", _SHAPES)
@pytest.mark.parametrize("sym", [False, True])
def test_bit_exact_against_holotensor(bits, shape, sym):
    gs = 32 if shape[-1] >= 64 else None
    qt = _quantized(shape, bits, gs, sym, seed=bits)
    expected = qt.dequantize(torch.float32)
    for dtype in _OUT:
        for fn in (dequantize, dequantize_ref):
            got = _run(fn, qt, dtype)
            assert got.shape == expected.shape and got.dtype == dtype
            assert torch.equal(got, expected.to(dtype)), (fn.__name__, dtype)


@pytest.mark.parametrize("gs", [32, 100, 256, None])
def test_group_sizes_and_bf16_scales(gs):
    qt = _quantized((4, 300), 3, gs, False, "bf16", seed=5)
    assert torch.equal(_run(dequantize, qt, torch.float32), qt.dequantize(torch.float32))


def test_empty_and_block_edges():
    qt = _quantized((0, 64), 4, 32, False)
    assert _run(dequantize, qt, torch.float16).shape == (0, 64)
    for n in (1023, 1024, 1025):
        qt = _quantized((1, n), 5, None, True, seed=n)
        assert torch.equal(_run(dequantize, qt, torch.float32), qt.dequantize())


def test_bad_inputs():
    qt = _quantized((4, 64), 4, 32, False)
    args = dict(bits=4, group_size=32, shape=(4, 64))
    with pytest.raises(ValueError, match="bits"):
        dequantize(qt.packed, qt.scales, qt.zeros, bits=9, group_size=32, shape=(4, 64))
    with pytest.raises(ValueError, match="bytes"):
        dequantize(qt.packed[:-1], qt.scales, qt.zeros, **args)
    with pytest.raises(ValueError, match="uint8"):
        dequantize(qt.packed.to(torch.int16), qt.scales, qt.zeros, **args)
    with pytest.raises(ValueError, match="scales must be"):
        dequantize(qt.packed, qt.scales[:, :1].contiguous(), qt.zeros, **args)
    with pytest.raises(ValueError, match="scales must be"):
        dequantize(qt.packed, qt.scales.float(), qt.zeros, **args)
    with pytest.raises(ValueError, match="differs"):
        dequantize(qt.packed, qt.scales, qt.zeros.bfloat16(), **args)
    with pytest.raises(ValueError, match="output dtype"):
        dequantize(qt.packed, qt.scales, qt.zeros, **args, dtype=torch.int32)
    with pytest.raises(ValueError, match="group_size"):
        dequantize(qt.packed, qt.scales, qt.zeros, bits=4, group_size=0, shape=(4, 64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (compiled kernel)")
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_compiled_kernel_on_gpu(bits):
    qt = _quantized((256, 4096), bits, 128, bits != 4, seed=bits)
    zeros = None if qt.zeros is None else qt.zeros.cuda()
    dev = qm.QuantizedTensor(qt.packed.cuda(), qt.scales.cuda(), zeros, qt.shape, qt.bits, qt.group_size)
    for dtype in _OUT:
        assert torch.equal(_run(dequantize, dev, dtype).cpu(), qt.dequantize(torch.float32).to(dtype))

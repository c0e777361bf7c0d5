"""The fused decode path (frame by frame, merged in cache) equals the generic path and rejects
damaged input with the fragment named."""

import pytest
import torch

from holotensor.codecs import LosslessConfig, StoredView, TensorSpec
from holotensor.codecs.pipeline import encode_tensor
from holotensor.dtypes import from_torch
from holotensor.entropy import get_coder
from holotensor.errors import DecodeError, FormatError


def stored_views(enc):
    return [
        StoredView(memoryview(b"".join(f.data) if isinstance(f.data, list) else bytes(f.data)), f.raw_size, f.coding,
                   f.coding_params)
        for f in enc.fragments
    ]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, torch.int32, torch.uint8])
@pytest.mark.parametrize("numel", [1, 4097, 70000])
@pytest.mark.parametrize("level", ["default", "max"])
def test_fused_equals_generic(dtype, numel, level):
    g = torch.Generator().manual_seed(numel)
    bits = torch.randint(0, 256, (numel * torch.empty(0, dtype=dtype).element_size(),), generator=g, dtype=torch.uint8)
    t = bits.view(dtype)
    cfg = LosslessConfig(level=level, frame_size=4096)
    enc = encode_tensor(t, cfg)
    spec = TensorSpec(from_torch(dtype), tuple(t.shape))
    fused = cfg.decode_stored(stored_views(enc), enc.codec.params, spec)
    assert fused is not None
    assert torch.equal(fused.view(torch.uint8), t.view(torch.uint8))
    generic = cfg.decode(
        [memoryview(get_coder(s.coding).decode(s.data, s.coding_params, s.raw_size)) for s in stored_views(enc)],
        enc.codec.params,
        spec,
    )
    assert torch.equal(generic.view(torch.uint8), fused.view(torch.uint8))


def test_fused_errors_name_the_fragment():
    t = torch.randn(20000).bfloat16()
    cfg = LosslessConfig(frame_size=4096, frame_checksum=True)  # so the coder itself sees the damage
    enc = encode_tensor(t, cfg)
    spec = TensorSpec(from_torch(t.dtype), tuple(t.shape))
    views = stored_views(enc)
    damaged = bytearray(views[0].data)
    damaged[len(damaged) // 2] ^= 0xFF
    views[0] = StoredView(memoryview(bytes(damaged)), views[0].raw_size, "zstd", views[0].coding_params)
    with pytest.raises(DecodeError) as info:
        cfg.decode_stored(views, enc.codec.params, spec)
    assert info.value.fragment == 0
    views = stored_views(enc)
    bad = dict(views[1].coding_params, frames=views[1].coding_params["frames"][:-1])
    views[1] = StoredView(views[1].data, views[1].raw_size, "zstd", bad)
    with pytest.raises(FormatError) as info:
        cfg.decode_stored(views, enc.codec.params, spec)
    assert info.value.fragment == 1


def test_fused_declines_what_it_cannot_do():
    t = torch.randn(100).bfloat16()
    cfg = LosslessConfig()
    enc = encode_tensor(t, cfg)
    spec = TensorSpec(from_torch(t.dtype), tuple(t.shape))
    views = stored_views(enc)
    mixed = [views[0], StoredView(views[1].data, views[1].raw_size, "raw", {})]
    assert cfg.decode_stored(mixed, enc.codec.params, spec) is None

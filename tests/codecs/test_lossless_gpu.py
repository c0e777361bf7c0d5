"""The lossless device path (Triton zstd + field merge) equals the CPU path. Without a GPU it runs
under the Triton interpreter on CPU tensors (tests/conftest.py sets TRITON_INTERPRET=1)."""

import pytest
import torch

from holotensor.codecs import LosslessConfig, StoredView, TensorSpec
from holotensor.codecs.lossless_gpu import decode_planes_on_device, device_decoder_available
from holotensor.codecs.pipeline import encode_tensor
from holotensor.dtypes import from_torch
from holotensor.entropy.fields import LAYOUTS

pytestmark = pytest.mark.skipif(not device_decoder_available(), reason="Triton is not installed")


def views(enc):
    return [
        StoredView(memoryview(b"".join(f.data) if isinstance(f.data, list) else bytes(f.data)), f.raw_size, f.coding,
                   f.coding_params)
        for f in enc.fragments
    ]


@pytest.mark.slow
@pytest.mark.parametrize("level", ["default", "max"])
def test_device_path_equals_cpu_path(level):
    t = (torch.randn(600, generator=torch.Generator().manual_seed(3)) * 0.02).bfloat16()
    cfg = LosslessConfig(level=level, frame_size=256)
    enc = encode_tensor(t, cfg)
    spec = TensorSpec(from_torch(t.dtype), tuple(t.shape))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    got = decode_planes_on_device(views(enc), LAYOUTS[enc.codec.params["layout"]], spec, device)
    assert got.device.type == device
    assert torch.equal(got.cpu().view(torch.int16), t.view(torch.int16))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_load_file_onto_the_gpu(tmp_path):
    import holotensor

    tensors = {"w": torch.randn(1024, 512).bfloat16(), "b": torch.randn(512)}
    holotensor.save_file(tensors, tmp_path / "m.hct")
    loaded = holotensor.load_file(tmp_path / "m.hct", device="cuda")
    for name, t in tensors.items():
        assert loaded[name].is_cuda and torch.equal(loaded[name].cpu(), t)

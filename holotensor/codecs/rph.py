"""The "rph" codec: upstream haagenti's random-projection holography, kept for compatibility.

Each fragment stores an upstream RPH payload (:mod:`holotensor.codecs.holographic.random_projection`):
``proj_dim`` Gaussian projections of the flattened tensor, drawn from upstream's xorshift64
generator with a per-fragment seed, and decoding back-projects the loaded fragments. Any prefix
decodes, and quality grows with every fragment, but the method has two known weaknesses, which is
why it is here for compatibility rather than compression:

* it is lossy even with every fragment: back-projection is not a least-squares solve, and with
  about n projections in all the error is about as large as the signal (cosine ~0.7);
* it costs O(n^2) time (proj_dim x n random normals per fragment, regenerated at decode), and it is
  no smaller than the tensor (F x proj_dim f32 values for n inputs).

So :class:`RphConfig` refuses tensors above ``max_elements`` (default 2^12). Measured on a 2-core
CPU (~15 M normals/s), ``save_file`` with 8 fragments, which also decodes every prefix to measure
quality, took 11 s for 64x64 (0.3 s for 32x32 with 4 fragments) and 164 s for 128x128; full-set cosine ~0.71 on
Gaussian data in each case.

::

    x (n) --R_k x / sqrt(d), k = 0..F-1--> y_k (d values each)
    decode(k) = sum_j P_j^T y_j / sum_j P_j^2   (elementwise), P_j = R_j / sqrt(d)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from holotensor.codecs.base import CodecConfig, Encoded, FragmentPayload, TensorSpec, register_codec
from holotensor.codecs.holographic.random_projection import decode_rph, encode_rph
from holotensor.errors import DecodeError

__all__ = ["RphConfig"]


@register_codec("rph")
@dataclass(frozen=True)
class RphConfig(CodecConfig):
    """Upstream random projection (back-projection), progressive by fragment.

    Args:
        fragments: how many fragments (upstream default 8).
        seed: the generator seed (fragment k uses ``seed + k * 0x9E3779B97F4A7C15``).
        proj_dim: projections per fragment; ``None`` is upstream's ``max(n // fragments, 64)``.
        max_elements: refuse larger tensors (the cost is O(n^2)).
    """

    version = 1
    lossless = False
    progressive = True

    fragments: int = 8
    seed: int = 0
    proj_dim: int | None = None
    max_elements: int = 1 << 12

    def __post_init__(self) -> None:
        if (
            not isinstance(self.fragments, int)
            or isinstance(self.fragments, bool)
            or not 1 <= self.fragments <= 0xFFFF
        ):
            raise ValueError(f"fragments must be an integer in [1, 65535], not {self.fragments!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 1 << 64:
            raise ValueError(f"seed must be an integer in [0, 2^64), not {self.seed!r}")
        if self.proj_dim is not None and (
            not isinstance(self.proj_dim, int) or not 1 <= self.proj_dim < 1 << 32
        ):
            raise ValueError(f"proj_dim must be None or an integer in [1, 2^32), not {self.proj_dim!r}")
        if not isinstance(self.max_elements, int) or self.max_elements < 1:
            raise ValueError(f"max_elements must be a positive integer, not {self.max_elements!r}")

    def encode(self, tensor: torch.Tensor) -> Encoded:
        if not tensor.is_floating_point():
            raise ValueError(f"rph needs a floating-point tensor, not {tensor.dtype}")
        n = tensor.numel()
        if n > self.max_elements:
            raise ValueError(
                f"rph refuses a tensor of {n} elements (max_elements={self.max_elements}): random projection "
                "costs O(n^2) and stays lossy; use the spectral or lowrank codec, or raise max_elements"
            )
        if n == 0:
            return Encoded([], {"n": 0})
        x = tensor.detach().cpu().reshape(-1).float()
        if not torch.isfinite(x).all():
            raise ValueError("rph cannot encode NaN or Inf values")
        payloads = encode_rph(x, self.fragments, self.seed, self.proj_dim)
        fragments = [FragmentPayload(p, "zstd", {}, role=f"projection {k}") for k, p in enumerate(payloads)]
        return Encoded(fragments, {"n": n})

    def min_fragments(self, params: Mapping[str, Any], n_fragments: int) -> int:
        return min(1, n_fragments)

    def decode(
        self,
        payloads: Sequence[memoryview],
        params: Mapping[str, Any],
        spec: TensorSpec,
        *,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        n = params.get("n")
        if n != spec.numel:
            raise DecodeError(f"rph params say {n} elements, the shape {spec.shape} has {spec.numel}")
        if spec.dtype.kind != "float":
            raise DecodeError(f"rph decodes to floating-point dtypes, not {spec.dtype.name}")
        if n and not payloads:
            raise DecodeError("rph needs at least 1 fragment")
        if len(payloads) > self.fragments:
            raise DecodeError(f"rph got {len(payloads)} payloads, the config has {self.fragments} fragments")
        flat = decode_rph(list(enumerate(payloads)), n, device=device)
        return flat.to(spec.dtype.torch_dtype).reshape(spec.shape)

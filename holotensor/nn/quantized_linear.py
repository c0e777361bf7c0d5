"""QuantLinear: an ``nn.Linear`` whose weight passes through a :class:`LearnedQuantizer`.

Used for quantization-aware training: the forward pass sees the fake-quantized weight, the
float weight and the quantizer's steps (and offsets) learn, and :meth:`QuantLinear.freeze` hands
out the integer codes for export through the blockquant codec. The bias stays in float.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from holotensor.codecs.base import TensorSpec
from holotensor.codecs.blockquant import BlockQuantConfig
from holotensor.codecs.quant_math import QuantizedTensor
from holotensor.dtypes import from_torch
from holotensor.nn.learned_quantizer import LearnedQuantizer

__all__ = ["QuantLinear"]


class QuantLinear(nn.Linear):
    """Linear layer with a learned groupwise weight quantizer (and optionally an input quantizer).

    Args:
        in_features, out_features, bias: as ``nn.Linear``.
        config: bits, group size, symmetry and scale dtype of the weight codes; its
            ``scale_search`` becomes the quantizer's initialisation.
        act_bits: if given, inputs pass through a per-tensor activation quantizer of that width.

    Example:
        >>> layer = QuantLinear.from_linear(nn.Linear(256, 64), BlockQuantConfig(bits=4, group_size=128))
        >>> layer(torch.randn(2, 256)).shape
        torch.Size([2, 64])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        config: BlockQuantConfig | None = None,
        act_bits: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.config = config if config is not None else BlockQuantConfig()
        self.weight_quantizer = self._weight_quantizer(self.weight)
        self.input_quantizer = None if act_bits is None else LearnedQuantizer(act_bits, shape=None)

    def _weight_quantizer(self, weight: torch.Tensor) -> LearnedQuantizer:
        cfg = self.config
        return LearnedQuantizer(
            cfg.bits,
            shape=tuple(weight.shape),
            group_size=cfg.group_size,
            symmetric=cfg.symmetric,
            scale_dtype=cfg.scale_dtype,
            init=cfg.scale_search,
        ).to(weight.device)

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, config: BlockQuantConfig | None = None, *, act_bits: int | None = None
    ) -> QuantLinear:
        """Wrap ``linear``: its weight and bias Parameters are shared, not copied, and the
        quantizer is initialised from the weight."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"from_linear needs an nn.Linear, got {type(linear).__name__}")
        layer = cls(
            linear.in_features, linear.out_features, linear.bias is not None, config=config, device="meta"
        )
        layer.weight = linear.weight
        layer.bias = linear.bias
        layer.weight_quantizer = layer._weight_quantizer(linear.weight)
        layer.weight_quantizer.initialize(linear.weight)
        if act_bits is not None:
            layer.input_quantizer = LearnedQuantizer(act_bits, shape=None).to(linear.weight.device)
        layer.train(linear.training)
        return layer

    def quantized_weight(self) -> torch.Tensor:
        """The fake-quantized weight the forward pass uses."""
        return self.weight_quantizer(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        return F.linear(x, self.quantized_weight(), self.bias)

    def freeze(self) -> QuantizedTensor:
        """Integer codes plus scales/zeros of the weight (see :meth:`LearnedQuantizer.freeze`)."""
        return self.weight_quantizer.freeze(self.weight)

    def to_linear(self) -> nn.Linear:
        """A plain ``nn.Linear`` holding the dequantized weight (for inference without QAT)."""
        linear = nn.Linear(
            self.in_features, self.out_features, self.bias is not None, device="meta", dtype=self.weight.dtype
        )
        linear.weight = nn.Parameter(self.freeze().dequantize(self.weight.dtype))
        linear.bias = None if self.bias is None else nn.Parameter(self.bias.detach().clone())
        return linear

    @property
    def bits_per_weight(self) -> float:
        """Bits per weight including scales and zeros, before entropy coding."""
        spec = TensorSpec(from_torch(self.weight.dtype), tuple(self.weight.shape))
        return self.config.bits_per_weight(spec)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, blockquant {self.config.describe()}, {self.bits_per_weight:.3f} bits/weight"

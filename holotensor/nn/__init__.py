"""torch modules for training loops: fake quantizers, quantized layers, and the in-place
``compress_(model, policy)`` that swaps them in."""

from holotensor.nn.compress import compress_, register_compress_handler
from holotensor.nn.learned_quantizer import LearnedQuantizer
from holotensor.nn.quantized_linear import QuantLinear

__all__ = ["LearnedQuantizer", "QuantLinear", "compress_", "register_compress_handler"]

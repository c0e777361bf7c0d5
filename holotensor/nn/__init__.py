"""torch modules for training loops: fake quantizers, quantized and tensor-train layers, and the
in-place ``compress_(model, policy)`` that swaps them in."""

from holotensor.nn.codebook_linear import CodebookDecoder, CodebookLinear
from holotensor.nn.compress import compress_, register_compress_handler
from holotensor.nn.learned_quantizer import LearnedQuantizer
from holotensor.nn.mps_linear import MPSLinear
from holotensor.nn.quantized_linear import QuantLinear
from holotensor.nn.tt_embedding import TTEmbedding

__all__ = [
    "CodebookDecoder",
    "CodebookLinear",
    "LearnedQuantizer",
    "MPSLinear",
    "QuantLinear",
    "TTEmbedding",
    "compress_",
    "register_compress_handler",
]

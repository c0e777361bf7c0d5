"""Quality metrics and plots: the yardsticks every codec is measured with."""

from holotensor.analysis.metrics import cosine, order0_entropy_bits, rel_l2, sqnr_db

__all__ = ["cosine", "order0_entropy_bits", "rel_l2", "sqnr_db"]

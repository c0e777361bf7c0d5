"""Quality metrics and plots: the yardsticks every codec is measured with."""

from holotensor.analysis.fidelity import average_ranks, embedding_fidelity, spearman
from holotensor.analysis.metrics import cosine, order0_entropy_bits, rel_l2, sqnr_db

__all__ = ["average_ranks", "cosine", "embedding_fidelity", "order0_entropy_bits", "rel_l2", "spearman", "sqnr_db"]

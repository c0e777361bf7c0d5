"""Model definitions used by tests, benchmarks and notebooks (not part of the installed library)."""

from models.fidelity import fidelity_of, load_sentences, reference_embeddings, reference_model
from models.minilm import MiniLM, MiniLMConfig, default_model_dir, mean_pool
from models.tokenizer import SentenceTokenizer

__all__ = [
    "MiniLM",
    "MiniLMConfig",
    "SentenceTokenizer",
    "default_model_dir",
    "fidelity_of",
    "load_sentences",
    "mean_pool",
    "reference_embeddings",
    "reference_model",
]

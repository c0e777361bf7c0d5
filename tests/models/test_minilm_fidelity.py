"""The committed sentence set and the fidelity_of yardstick on real (and perturbed) MiniLM weights."""

import pytest
import torch
from safetensors.torch import load_file

from holotensor.analysis.fidelity import embedding_fidelity
from models.fidelity import SENTENCES_PATH, fidelity_of, load_sentences, reference_embeddings, reference_model
from models.minilm import MiniLM, default_model_dir


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    return load_file(default_model_dir() / "model.safetensors")


def _noisy(weights: dict[str, torch.Tensor], level: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """Add Gaussian noise of ``level`` times each matrix's own standard deviation to every 2-D weight."""
    g = torch.Generator().manual_seed(seed)
    return {
        k: v + level * v.std() * torch.randn(v.shape, generator=g)
        if v.dim() == 2 and v.is_floating_point()
        else v
        for k, v in weights.items()
    }


def test_sentence_file_has_200_unique_natural_lines():
    raw = SENTENCES_PATH.read_bytes().decode("utf-8").splitlines()
    sentences = load_sentences()
    assert raw == sentences  # no blank lines, no stray whitespace
    assert len(sentences) >= 200
    assert len(set(sentences)) == len(sentences)
    words = [len(s.split()) for s in sentences]
    assert min(words) >= 5 and max(words) <= 40
    assert sum(s.endswith("?") for s in sentences) >= 20


def test_reference_embeddings_are_cached_copies():
    a, b = reference_embeddings(), reference_embeddings()
    assert a.shape == (len(load_sentences()), 384)
    a.zero_()
    assert b.abs().sum() > 0 and reference_embeddings().abs().sum() > 0


def test_more_noise_lowers_fidelity_monotonically(weights):
    ref_model = reference_model()
    sentences = load_sentences()[::10]
    ref = ref_model.encode(sentences)
    results = [
        embedding_fidelity(
            ref,
            MiniLM.from_state_dict(_noisy(weights, level), tokenizer=ref_model.tokenizer).encode(sentences),
        )
        for level in (0.01, 0.05, 0.2)
    ]
    assert results[0]["mean_cosine"] < 1.0 - 1e-6
    for key in ("mean_cosine", "min_cosine", "spearman"):
        values = [r[key] for r in results]
        assert values == sorted(values, reverse=True) and len(set(values)) == len(values), (key, values)
    assert results[-1]["mean_cosine"] < 0.99


@pytest.mark.slow
def test_fidelity_of_original_and_partly_perturbed_weights(weights):
    same = fidelity_of(weights)
    assert same["n"] == len(load_sentences())
    assert same["mean_cosine"] == pytest.approx(1.0, abs=1e-9)
    assert same["spearman"] == pytest.approx(1.0, abs=1e-9)
    assert same["top1_agreement"] == 1.0
    key = "encoder.layer.2.intermediate.dense.weight"
    one = fidelity_of({key: _noisy({key: weights[key]}, 0.2)[key]}, partial=True)
    assert 0.9 < one["mean_cosine"] < 1.0 - 1e-6
    with pytest.raises(ValueError, match="missing"):
        fidelity_of({key: weights[key]})

"""MiniLM calibration statistics: one Hessian per encoder Linear, from unpadded inputs, usable by
the CLI runner and the statistics file."""

import pytest
import torch
from safetensors.torch import save_file

from holotensor.api.calibrate import load_hessians
from models.calibration import CALIBRATION_PATH, encoder_hessians, main, minilm_hessians
from models.fidelity import load_sentences, reference_model

SAMPLES = ["A short one.", "Another sentence that is a little longer than the first one.", "Third."]


@pytest.fixture(scope="module")
def hessians() -> dict[str, torch.Tensor]:
    return encoder_hessians(reference_model(), SAMPLES)


def test_one_hessian_per_encoder_linear(hessians):
    model = reference_model()
    linears = {f"{n}.weight": m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert sorted(hessians) == sorted(linears) and len(hessians) == 36
    for name, h in hessians.items():
        assert h.shape == (linears[name].in_features,) * 2 and torch.isfinite(h).all()
    q, k = (hessians[f"encoder.layer.2.attention.self.{p}.weight"] for p in ("query", "key"))
    assert torch.equal(q, k)


def test_padding_never_enters_the_statistics(hessians):
    """Samples one by one give the same statistics as the length-grouped batches."""
    singles = [encoder_hessians(reference_model(), [s]) for s in SAMPLES]
    _, mask = reference_model().tokenizer(SAMPLES)
    counts = mask.sum(dim=1).double()
    name = "encoder.layer.0.intermediate.dense.weight"
    pooled = sum(c * h[name].double() for c, h in zip(counts, singles, strict=True)) / counts.sum()
    assert torch.allclose(hessians[name].double(), pooled, rtol=1e-4, atol=1e-6)


def test_runner_and_statistics_file(tmp_path):
    model = reference_model()
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    via_runner = minilm_hessians([path], SAMPLES * 2, limit=3)
    stats = tmp_path / "stats.hct"
    (tmp_path / "samples.txt").write_text("\n".join(SAMPLES) + "\n", encoding="utf-8")
    assert main([str(tmp_path / "samples.txt"), str(stats)]) == 0
    from_file = load_hessians(stats)
    name = "encoder.layer.5.output.dense.weight"
    assert torch.allclose(via_runner[name], from_file[name], rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="no calibration samples"):
        encoder_hessians(model, [])


def test_calibration_text_is_apart_from_the_evaluation_sentences():
    samples = [line.strip().lower() for line in CALIBRATION_PATH.read_text(encoding="utf-8").splitlines()]
    evaluation = {s.lower() for s in load_sentences()}
    assert len(samples) == 200 and not evaluation.intersection(samples)


def test_upgrade_order_ranks_the_damaged_tensor_first():
    from models.calibration import upgrade_order

    ref = reference_model()
    names = ["encoder.layer.0.attention.self.value.weight", "encoder.layer.3.attention.self.query.weight"]
    original = {n: ref.state_dict()[n] for n in names}
    g = torch.Generator().manual_seed(0)
    # tensor 0 is badly damaged at the "low" precision, tensor 1 barely: upgrading 0 gains more
    low = {names[0]: original[names[0]] + 0.05 * torch.randn(original[names[0]].shape, generator=g),
           names[1]: original[names[1]] + 1e-4 * torch.randn(original[names[1]].shape, generator=g)}
    assert upgrade_order(ref, low, original, SAMPLES) == names


def test_allocate_levels_spends_the_budget_where_it_gains_most():
    from models.calibration import allocate_levels

    ref = reference_model()
    a, b = "encoder.layer.0.attention.self.value.weight", "encoder.layer.3.attention.self.query.weight"
    original = {n: ref.state_dict()[n] for n in (a, b)}
    g = torch.Generator().manual_seed(0)

    def noisy(scale_a: float, scale_b: float) -> dict[str, torch.Tensor]:
        return {a: original[a] + scale_a * torch.randn(original[a].shape, generator=g),
                b: original[b] + scale_b * torch.randn(original[b].shape, generator=g)}  # fmt: skip

    levels = [noisy(0.1, 0.1), noisy(0.05, 1e-4), original]
    bits = [dict.fromkeys((a, b), float(i + 1)) for i in range(3)]
    # one move up fits (mean 2.5 bits): the badly damaged tensor gets it
    assert allocate_levels(ref, levels, bits, SAMPLES, 2.5) == {a: 2, b: 1}
    assert allocate_levels(ref, levels, bits, SAMPLES, 2.0) == {a: 1, b: 1}
    assert allocate_levels(ref, levels, bits, SAMPLES, 3.0) == {a: 2, b: 2}
    with pytest.raises(ValueError, match="already takes"):
        allocate_levels(ref, levels, bits, SAMPLES, 1.5)
    with pytest.raises(ValueError, match="two or more levels"):
        allocate_levels(ref, levels[:1], bits[:1], SAMPLES, 2.5, start=0)
    with pytest.raises(ValueError, match="same tensors"):
        allocate_levels(ref, [levels[0], {a: original[a]}], bits[:2], SAMPLES, 2.5, start=0)

"""Quantization-aware fine-tuning of the small character GPT recovers most of what post-training
round-to-nearest loses, at int4 and int3 (numbers printed: run with ``pytest -s``)."""

import copy

import pytest
import torch

from holotensor.codecs import BlockQuantConfig
from holotensor.nn import QuantLinear, compress_
from models.gpt import corpus_split, evaluate, load_checkpoint, train

STEPS = 80  # fine-tuning steps (lr 1e-4), the same for QAT and for the full-precision reference


def _exported(model: torch.nn.Module) -> torch.nn.Module:
    """The model with every QuantLinear replaced by a plain Linear holding its frozen codes."""
    out = copy.deepcopy(model)
    for name, module in list(out.named_modules()):
        if isinstance(module, QuantLinear):
            parent, _, child = name.rpartition(".")
            setattr(out.get_submodule(parent) if parent else out, child, module.to_linear())
    return out


@pytest.mark.slow
def test_qat_recovers_most_of_the_rtn_loss_gap():
    torch.manual_seed(0)
    model, vocab = load_checkpoint()
    _, train_ids, val_ids = corpus_split()
    assert len(vocab) == model.config.vocab_size
    fp = evaluate(model, val_ids)
    tuned = copy.deepcopy(model)
    train(tuned, train_ids, STEPS, lr=1e-4, seed=1)
    reference = min(fp, evaluate(tuned, val_ids))  # the better full-precision loss, to be fair to RTN
    print(f"\nchar-GPT validation loss (nats/char): full precision {fp:.4f}, after {STEPS} more steps "
          f"{evaluate(tuned, val_ids):.4f}")  # fmt: skip
    for bits in (4, 3):
        cfg = BlockQuantConfig(bits=bits, group_size=128, symmetric=False, scale_search="minmax")
        qat = copy.deepcopy(model)
        assert len(compress_(qat, {"*": cfg})) == 4 * model.config.n_layers + 1
        rtn = evaluate(qat, val_ids)  # before training, the quantizers hold the RTN (min/max) codes
        train(qat, train_ids, STEPS, lr=1e-4, seed=1)
        after = evaluate(qat, val_ids)
        exported = evaluate(_exported(qat), val_ids)
        recovered = (rtn - after) / (rtn - reference)
        print(
            f"int{bits} g128: RTN {rtn:.4f} (gap {rtn - reference:+.4f}), QAT {after:.4f} "
            f"(gap {after - reference:+.4f}), exported codes {exported:.4f}: "
            f"{recovered:.0%} of the gap recovered"
        )
        assert rtn - reference > 0.003, "RTN should cost measurable loss at this width"
        assert recovered >= 0.5
        assert abs(exported - after) < 1e-4

"""The character GPT: shapes, causality, vocabulary errors, checkpoint round trip."""

import pytest
import torch

from models.gpt import GPT, CharVocab, GPTConfig, batches, evaluate, load_checkpoint, save_checkpoint, train


def test_vocab_round_trip_and_errors():
    v = CharVocab("abcab")
    assert len(v) == 3 and v.decode(v.encode("cab")) == "cab"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        v.encode("z")
    with pytest.raises(ValueError, match="empty"):
        CharVocab("")


def test_forward_is_causal_and_checks_the_context():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, context=16, d_model=32, n_layers=2, n_heads=4)).eval()
    ids = torch.randint(0, 11, (2, 16))
    changed = ids.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 11
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert a.shape == (2, 16, 11)
    assert torch.allclose(a[:, :10], b[:, :10], atol=1e-6) and not torch.allclose(a[:, 10:], b[:, 10:])
    with pytest.raises(ValueError, match="exceeds the context"):
        model(torch.zeros(1, 17, dtype=torch.int64))
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(vocab_size=5, d_model=30, n_heads=4)


def test_training_lowers_the_loss_and_checkpoints_round_trip(tmp_path):
    torch.manual_seed(0)
    text = "abcabcabd" * 40
    v = CharVocab(text)
    data = v.encode(text)
    model = GPT(GPTConfig(vocab_size=len(v), context=8, d_model=32, n_layers=1, n_heads=2))
    before = evaluate(model, data)
    train(model, data, 60, batch_size=8)
    after = evaluate(model, data)
    assert after < 0.5 * before
    save_checkpoint(model, v, tmp_path / "g.safetensors")
    back, v2 = load_checkpoint(tmp_path / "g.safetensors")
    assert v2.chars == v.chars
    assert abs(evaluate(back, data) - after) < 1e-2  # weights stored in fp16
    x, y = next(batches(data, 8, 4, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(x[:, 1:], y[:, :-1])

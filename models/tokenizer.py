"""BERT WordPiece tokenization for the MiniLM encoder, through the `tokenizers` package.

The checkpoint's tokenizer.json pins truncation at 128 tokens and pads every input to a fixed 128;
sentence-transformers overrides both (max_seq_length 256, padding to the longest input of a batch),
and so does this wrapper, so that the encoder sees exactly what the reference pipeline feeds it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

__all__ = ["SentenceTokenizer"]


class SentenceTokenizer:
    """Turns sentences into padded ``input_ids`` and ``attention_mask`` tensors.

    Lower-casing, accent stripping, punctuation and CJK splitting, greedy longest-match WordPiece and
    the ``[CLS] ... [SEP]`` template all come from tokenizer.json; truncation keeps the first
    ``max_length - 2`` word pieces and still ends with ``[SEP]``.

    Example:
        >>> tok = SentenceTokenizer.from_file(model_dir / "tokenizer.json", max_length=256)
        >>> ids, mask = tok(["Hello, world!"])
        >>> ids.tolist()
        [[101, 7592, 1010, 2088, 999, 102]]
    """

    def __init__(self, tokenizer: Tokenizer, max_length: int) -> None:
        if max_length < 2:
            raise ValueError(f"max_length must leave room for [CLS] and [SEP], got {max_length}")
        self._tok = tokenizer
        self._tok.no_padding()
        self._tok.enable_truncation(max_length)
        self.max_length = max_length
        pad_id = tokenizer.token_to_id("[PAD]")
        if pad_id is None:
            raise ValueError("tokenizer has no [PAD] token")
        self.pad_id = pad_id

    @classmethod
    def from_file(cls, path: str | Path, max_length: int = 256) -> SentenceTokenizer:
        """Load a tokenizer.json (as shipped with the checkpoint)."""
        return cls(Tokenizer.from_file(str(path)), max_length)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def tokens(self, sentence: str) -> list[str]:
        """The word pieces of one sentence, special tokens included (for inspection and tests)."""
        return self._tok.encode(sentence).tokens

    def __call__(self, sentences: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokenize a batch; returns int64 ``input_ids`` and ``attention_mask`` of shape [n, longest]."""
        if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences):
            raise TypeError("sentences must be a list of str")
        encodings = self._tok.encode_batch(list(sentences))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        width = int(lengths.max()) if len(encodings) else 0
        ids = np.full((len(encodings), width), self.pad_id, dtype=np.int64)
        mask = np.arange(width)[None, :] < lengths[:, None]
        if len(encodings):
            ids[mask] = np.concatenate([np.asarray(e.ids, dtype=np.int64) for e in encodings])
        return torch.from_numpy(ids), torch.from_numpy(mask.astype(np.int64))

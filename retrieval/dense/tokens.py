"""Texts tokenized once and grouped into batches: the same token ids serve the batch plan, the count of
texts cut to the model's length, and the model's input (padded per batch), so nothing is tokenized twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

SLICE = 2048  # texts per tokenizer call (bounds the Python lists alive at once)


@dataclass(frozen=True)
class Tokens:
    """Token ids of prompt + text for each text, with special tokens, cut to the model's length as the
    tokenizer cuts them (the special tokens at the end kept); `lengths` are the counts before the cut."""

    lengths: np.ndarray  # tokens of each text before the cut
    flat: np.ndarray  # the cut ids of all texts, concatenated (int32: 2 GB for a million 512-token texts)
    offsets: np.ndarray  # text i is flat[offsets[i]:offsets[i + 1]]

    @property
    def cut_lengths(self) -> np.ndarray:
        """Tokens the model reads per text."""
        return np.diff(self.offsets)

    def ids(self, i: int) -> np.ndarray:
        """The cut ids of text i."""
        return self.flat[self.offsets[i]:self.offsets[i + 1]]


def special_tail(tokenizer) -> int:
    """How many special tokens the tokenizer appends after a text (kept when a text is cut)."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    start = next((i for i in range(len(full) - len(plain) + 1) if full[i:i + len(plain)] == plain), 0)
    return len(full) - start - len(plain)


def tokenize(tokenizer, texts: Sequence[str], prompt: str, max_length: int, tail: int) -> Tokens:
    """One fast-tokenizer pass over prompt + text (special tokens, no padding); ids cut to `max_length`."""
    lengths, parts = [], []
    for start in range(0, len(texts), SLICE):
        batch = [prompt + t for t in texts[start:start + SLICE]]
        for ids in tokenizer(batch, add_special_tokens=True, truncation=False, return_attention_mask=False,
                             return_token_type_ids=False, verbose=False)["input_ids"]:
            lengths.append(len(ids))
            parts.append(ids if len(ids) <= max_length else ids[:max_length - tail] + ids[len(ids) - tail:])
    cut = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    flat = np.fromiter(chain.from_iterable(parts), dtype=np.int32, count=int(cut.sum()))
    return Tokens(np.asarray(lengths, dtype=np.int64), flat, np.concatenate([[0], np.cumsum(cut)]))


def pad(tokens: Tokens, rows: Sequence[int], pad_id: int, left: bool) -> dict:
    """input_ids and attention_mask tensors of `rows`, padded to the longest (on the left when `left`)."""
    import torch

    width = int(tokens.cut_lengths[list(rows)].max())
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for r, i in enumerate(rows):
        row = tokens.ids(i)
        cols = slice(width - len(row), width) if left else slice(0, len(row))
        ids[r, cols], mask[r, cols] = row, 1
    return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}


def plan_batches(lengths: Sequence[int], max_tokens: int | None = None, batch_size: int = 32,
                 packed: bool = False) -> list[list[int]]:
    """Indices of texts grouped longest first: under a token budget when `max_tokens` is set (batch size x
    its longest length <= max_tokens, or the sum of lengths when `packed`: inputs without padding, as
    flash_attention_2 runs them; a longer text goes alone), else `batch_size` per batch."""
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max tokens per batch must be >= 1, got {max_tokens}")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    used = 0  # tokens of the last batch when packed
    for i in order:
        last = batches[-1] if batches else None
        if max_tokens is None:
            fits = bool(last) and len(last) < batch_size
        else:
            fits = bool(last) and (used + lengths[i] if packed else (len(last) + 1) * lengths[last[0]]) <= max_tokens
        if fits:
            last.append(i)
            used += lengths[i]
        else:
            batches.append([i])
            used = lengths[i]
    return batches


def batch_tokens(lengths: np.ndarray, packed: bool) -> int:
    """Tokens a batch of texts of these lengths costs: their sum when packed, else size x longest (padding)."""
    return int(lengths.sum() if packed else len(lengths) * lengths.max())

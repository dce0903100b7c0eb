"""Embedding cache: document vectors keyed by what shapes them, so a text is encoded once.

A key is the sha256 of the model's weights hash, the document prompt, the maximum length and
the text itself; an update fills the cache from the index's stored vectors (each stored row
under the key of its text), so only added and changed texts reach the encoder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


class EmbeddingCache:
    """In-memory {key: vector} for one encoder setting (weights, prompt, maximum length)."""

    def __init__(self, weights_sha256: str | None, prompt: str, max_length: int | None):
        self._prefix = f"{weights_sha256}\x00{prompt}\x00{max_length}\x00".encode()
        self._vectors: dict[str, np.ndarray] = {}
        self.encoded = 0  # texts this cache sent to the encoder

    @classmethod
    def for_model(cls, info: dict) -> EmbeddingCache:
        """A cache for the document vectors of the model an index records (Encoder.info(): weights, prompt, length)."""
        return cls(info.get("weights_sha256"), info.get("document_prompt") or "", info.get("max_seq_length"))

    def key(self, text: str) -> str:
        """The cache key of one text."""
        return hashlib.sha256(self._prefix + text.encode("utf-8")).hexdigest()

    def __len__(self) -> int:
        return len(self._vectors)

    def put(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Remember `vectors[i]` as the vector of `texts[i]`."""
        for text, vector in zip(texts, vectors):
            self._vectors[self.key(text)] = vector

    def encode(self, encoder: Callable[[], Any], texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Vectors of `texts` (n x dim, at least one text): cached ones looked up, the rest encoded (once each)
        and cached; `encoder()` gives the Encoder, called only when a text is missing."""
        keys = [self.key(t) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._vectors))
        if missing:
            first = {k: i for i, k in reversed(list(enumerate(keys)))}
            fresh = encoder().encode_documents([texts[first[k]] for k in missing], progress=progress)
            self._vectors.update(zip(missing, fresh))
            self.encoded += len(missing)
        return np.stack([self._vectors[k] for k in keys]).astype(np.float32, copy=False)

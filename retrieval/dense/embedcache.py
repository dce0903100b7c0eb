"""Embedding cache: document vectors keyed by what shapes them, so a text is encoded once.

A key is the sha256 of the model's weights hash, the document prompt, the maximum length and
the text itself; an update fills the cache from the index's stored vectors (each stored row
under the key of its text), so only added and changed texts reach the encoder. `tune` and
`bench --cache DIR` keep one on disk (`attach`): a second run on the same data encodes nothing.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..tempfiles import remove_abandoned, temp_path


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
        missing = self.missing(keys)
        if missing:
            first = {k: i for i, k in reversed(list(enumerate(keys)))}
            fresh = encoder().encode_documents([texts[first[k]] for k in missing], progress=progress)
            self._vectors.update(zip(missing, fresh))
            self.encoded += len(missing)
        return np.stack([self._vectors[k] for k in keys]).astype(np.float32, copy=False)

    def missing(self, keys: Sequence[str]) -> list[str]:
        """The distinct keys (of `key`) without a vector here, in order: what `encode` would encode."""
        return list(dict.fromkeys(k for k in keys if k not in self._vectors))

    def file_stem(self) -> str:
        """The on-disk name of this encoder setting's cache (one pair of .npy files per setting)."""
        return hashlib.sha256(self._prefix).hexdigest()[:16]

    def load(self, folder: Path) -> None:
        """Add the vectors saved in `folder` for this setting (none yet: nothing added)."""
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{folder}: the embedding cache must be a folder, this is a file")
        keys, vectors = (folder / f"{self.file_stem()}.{part}.npy" for part in ("keys", "vectors"))
        if keys.is_file() and vectors.is_file():
            self._vectors.update(zip(_read(keys).tolist(), _read(vectors)))

    def save(self, folder: Path) -> None:
        """Write every cached vector to `folder` (each file replaced in one rename)."""
        folder.mkdir(parents=True, exist_ok=True)
        keys = np.asarray(list(self._vectors), dtype="<U64")
        vectors = np.stack(list(self._vectors.values())) if len(keys) else np.zeros((0, 0), np.float32)
        for part, array in (("keys", keys), ("vectors", vectors)):
            name = f"{self.file_stem()}.{part}.npy"
            remove_abandoned(folder, name)
            tmp = temp_path(folder, name)
            with open(tmp, "wb") as f:
                np.save(f, array, allow_pickle=False)
            os.replace(tmp, folder / name)


def _read(path: Path) -> np.ndarray:
    """One array of a cache folder (never unpickled); a damaged file is the user's to delete, named."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable embedding cache file ({str(e).splitlines()[0][:120]}); "
                         "delete it and its .keys/.vectors twin to start the cache afresh") from None


def attach(encoder, folder: str | Path | None) -> EmbeddingCache:
    """Route `encoder`'s document encoding through a cache kept in `folder` (read now, written after each call);
    `folder` None: a cache in memory only."""
    cache = EmbeddingCache.for_model(encoder.info())
    if folder is not None:
        folder = Path(folder)
        _open(cache, folder)
    plain = encoder.encode_documents

    class _Plain:  # the encoder's own encoding, for the cache's misses
        encode_documents = staticmethod(plain)

    def encode_documents(texts: Sequence[str], progress: bool = True) -> np.ndarray:
        if not len(texts):
            return plain(texts, progress=progress)
        before = cache.encoded
        vectors = cache.encode(lambda: _Plain, texts, progress)
        if cache.encoded > before and folder is not None:
            cache.save(folder)
        return vectors

    encoder.encode_documents = encode_documents
    return cache


def _open(cache: EmbeddingCache, folder: Path) -> None:
    """Read `cache`'s vectors from `folder`, which must be a folder this process can write (checked before any
    encoding: a cache that cannot be written would stop the run after it)."""
    cache.load(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{folder}: cannot create the embedding cache folder ({e.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{folder}: the embedding cache folder is not writable")

"""The VectorStore protocol: what the dense leg needs from an engine that holds its vectors.

A store holds float32 unit vectors under integer ids (the dense leg's passage rows) and finds
the nearest by inner product (= cosine). FAISS is the embedded implementation (stores/faiss.py);
an external engine plugs in by implementing these few methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ...filters import Selection


@runtime_checkable
class VectorStore(Protocol):
    """Vectors under int64 ids, searched by inner product; saved in and loaded from one folder."""

    kind: str  # e.g. "flat", "hnsw", "ivf": exact or approximate search

    @property
    def dim(self) -> int:
        """Vector dimension."""
        ...

    def __len__(self) -> int:
        """Number of stored vectors."""
        ...

    @property
    def exact(self) -> bool:
        """Whether search returns the true nearest vectors (then deeper searches only add rows)."""
        ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Store `vectors` (n x dim) under `ids` (n distinct ids not yet stored)."""
        ...

    def search(self, vectors: np.ndarray, k: int, allowed: Selection | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query vector, best first; id -1 pads short lists. With `allowed` (sorted
        ids and the filter they came from), only those ids are returned, and k of them whenever k are stored;
        each store compiles what it uses (FAISS the ids, a remote engine may evaluate the filter itself)."""
        ...

    def rebuilt(self, vectors: np.ndarray) -> VectorStore:
        """A store of the same kind over `vectors` (ids 0..n-1), for an update; a backend's store gives a local
        exact one, which its backend publishes as the next generation."""
        ...

    def get(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of `ids` (in that order), for exact re-scoring."""
        ...

    def save(self, folder: Path) -> dict:
        """Write the store's files into `folder`; returns its settings for the leg's config."""
        ...

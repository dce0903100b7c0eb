"""The dense leg's vector store in a Milvus collection's `vector` field (see retrieval/milvus/).

Rows are the dense leg's passage rows, as in the FAISS store. A filter reaches Milvus as a boolean
expression in the search request (filters.Selection carries one); plain allowed rows become a
compact `row` expression. Updates write a new collection (retrieval/milvus/publish), so this store
is read-only: add refuses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..dense.stores.faiss import FaissStore, StoreParams
from .collection import MAX_LIMIT, VECTOR, MilvusCollection
from .expressions import rows_expression

READ_ONLY = "a Milvus-backed index is changed by `update` / `delete` (each writes a new collection)"


class MilvusStore:
    """Vectors under row ids in a Milvus collection, searched by inner product."""

    def __init__(self, collection: MilvusCollection, kind: str, dim: int, rows: int):
        self.collection, self.kind, self._dim, self._rows = collection, kind, dim, rows
        self.device, self.params = None, None
        self.backend = "milvus"

    @classmethod
    def load(cls, config: dict) -> MilvusStore:
        """The store a saved config points at."""
        return cls(MilvusCollection(config["uri"], config["collection"]), config["kind"], int(config["dim"]),
                   int(config["rows"]))

    def save(self, folder: Path) -> dict:
        """Nothing to write: the config points at the collection."""
        return {"store": "milvus", "kind": self.kind, "dim": self._dim, "rows": self._rows,
                **self.collection.pointer()}

    def rebuilt(self, vectors: np.ndarray) -> FaissStore:
        """An exact local store over `vectors`: the hand-over the backend publishes as the next collection."""
        return FaissStore.build(vectors, "flat")

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def exact(self) -> bool:
        """FLAT is exact; HNSW approximate."""
        return self.kind == "flat"

    def __len__(self) -> int:
        return self._rows

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Refused: a Milvus-backed index changes by writing its next collection (retriever update/delete)."""
        raise NotImplementedError(READ_ONLY)

    def search(self, vectors: np.ndarray, k: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, rows) per query vector, -1 padded; only `allowed` rows (or its filter) when given."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, self._dim)
        k = max(1, min(k, self._rows, MAX_LIMIT))
        params = {"metric_type": "IP", **({"params": {"ef": max(StoreParams.ef_search, k)}} if self.kind == "hnsw" else {})}
        found = self.collection.search(VECTOR, list(vectors), k, rows_expression(allowed, "row"), params)
        scores = np.full((len(vectors), k), -np.inf, dtype=np.float32)
        ids = np.full((len(vectors), k), -1, dtype=np.int64)
        for i, (rows, _, s) in enumerate(found):
            ids[i, :len(rows)], scores[i, :len(rows)] = rows[:k], s[:k]
        return scores, ids

    def get(self, ids: np.ndarray) -> np.ndarray:
        """Stored vectors of `ids`, in that order (read back from Milvus)."""
        got = self.collection.read(np.asarray(ids, dtype=np.int64), VECTOR)
        return np.asarray(got, dtype=np.float32).reshape(len(got), self._dim)

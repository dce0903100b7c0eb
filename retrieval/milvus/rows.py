"""The dense vectors of a collection's rows, handed to the writer block by block, so a publish holds one block.

Without shards the blocks are consecutive rows of the leg's store. After `--ray` (its shards kept beside the index
until the index is saved, dense/shards.py) each shard file is one block: read, the rows of its texts found by their
embedding-cache keys, handed on; the rows whose text has no shard (found in an embedding cache, or kept from the
previous generation by an update) follow from the store. Either way each row comes once, with the vector it was
encoded to, so the collection equals an in-memory publish's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np

from ..dense.shards import Shards

BLOCK_ROWS = 1_000  # rows per block read from the store


class VectorBlocks:
    """(rows, vectors) blocks covering each of a store's rows once: from `shards` first when given (`row_keys[i]`
    the cache key of row i's text), then from the store; `from_shards` counts the rows the shards gave."""

    def __init__(self, store, shards: Shards | None = None, row_keys: Sequence[str] | None = None):
        if (shards is None) != (row_keys is None):
            raise ValueError("shards need the cache key of every row")
        self.store, self.shards, self.row_keys = store, shards, row_keys
        self.dim, self.rows = int(store.dim), len(store)
        self.from_shards = 0

    @classmethod
    def of(cls, dense, documents: Sequence) -> VectorBlocks:
        """The blocks of a built dense leg: from the shards its encoder wrote under --ray (dense/ray_encode.py)."""
        encoder = dense.loaded_encoder
        shards = None if encoder is None else encoder.shards
        if shards is None:
            return cls(dense.engine)
        return cls(dense.engine, shards, [shards.cache.key(t) for t in dense.row_texts(documents)])

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        done, self.from_shards = np.zeros(self.rows, dtype=bool), 0
        if self.shards is not None:
            rows_of: dict[str, list[int]] = defaultdict(list)
            for row, key in enumerate(self.row_keys):
                rows_of[key].append(row)
            for keys, vectors in self.shards.blocks():
                pairs = [(row, i) for i, key in enumerate(keys) for row in rows_of.get(key, ()) if not done[row]]
                if pairs:
                    rows, picks = (np.asarray(x, dtype=np.int64) for x in zip(*pairs))
                    done[rows] = True
                    self.from_shards += len(rows)
                    yield rows, np.asarray(vectors[picks], dtype=np.float32)
        rest = np.flatnonzero(~done)
        for start in range(0, len(rest), BLOCK_ROWS):
            rows = rest[start:start + BLOCK_ROWS]
            yield rows, np.asarray(self.store.get(rows), dtype=np.float32)

"""Work split for distributed encoding: blocks of whole encoder batches, and finished blocks kept as shards.

A block is a run of consecutive batches of the encoder's own plan (longest first, under its token budget or
batch size), so a worker that plans a block again gets the same batches, and each text is encoded in the same
batch as one process would encode it: the vectors equal a one-process build's. A shard is one finished block's
vectors saved under their texts' embedding-cache keys (model weights hash, document prompt, maximum length,
text sha256, embedcache.py), one `.npz` file written in one rename; an interrupted build that is run again
reads the shards there and encodes only the texts without one.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..tempfiles import remove_abandoned, temp_path
from .embedcache import EmbeddingCache

BLOCKS_PER_WORKER = 4  # at least this many blocks per worker, so a slow or restarted worker is caught up
MAX_BLOCK_TEXTS = 4096  # texts per block at most: the work a failed worker loses, and a shard's size


def plan_blocks(encoder, texts: Sequence[str], prompt: str, workers: int) -> list[np.ndarray]:
    """Text indices in blocks of consecutive whole batches of `encoder.plan` (see the module docstring)."""
    size = max(1, min(MAX_BLOCK_TEXTS, math.ceil(len(texts) / (BLOCKS_PER_WORKER * max(1, workers)))))
    blocks, block = [], []
    for batch in encoder.plan(texts, prompt):
        block.extend(batch)
        if len(block) >= size:
            blocks.append(np.asarray(block, dtype=np.int64))
            block = []
    if block:
        blocks.append(np.asarray(block, dtype=np.int64))
    return blocks


class Shards:
    """The shards of one encoder setting in a folder: {cache key: vector} read back, one block written at a time."""

    def __init__(self, folder: str | Path, cache: EmbeddingCache):
        self.folder, self.cache = Path(folder), cache

    def shard_id(self, keys: Sequence[str]) -> str:
        """A block's name: the sha256 of its texts' cache keys."""
        return hashlib.sha256("".join(keys).encode()).hexdigest()[:32]

    def _files(self) -> list[Path]:
        return sorted(self.folder.glob(f"{self.cache.file_stem()}.*.npz")) if self.folder.is_dir() else []

    def blocks(self) -> Iterator[tuple[list[str], np.ndarray]]:
        """Each shard's (cache keys, vectors), one file read at a time (a Milvus publish streams them, milvus/rows.py);
        a damaged shard is named, to be deleted."""
        for path in self._files():
            try:
                with np.load(path, allow_pickle=False) as f:
                    keys, vectors = f["keys"].tolist(), f["vectors"]
            except (OSError, ValueError, KeyError) as e:
                raise ValueError(f"{path}: not a readable shard ({str(e).splitlines()[0][:120]}); delete it and "
                                 "its texts are encoded again") from None
            yield keys, vectors

    def load(self) -> dict[str, np.ndarray]:
        """Every vector the shards here hold, by cache key."""
        vectors: dict[str, np.ndarray] = {}
        for keys, block in self.blocks():
            vectors.update(zip(keys, block))
        return vectors

    def write(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Save one finished block (keys[i] is the cache key of vectors[i]) in one rename."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{self.cache.file_stem()}.{self.shard_id(keys)}.npz"
        remove_abandoned(self.folder, name)
        tmp = temp_path(self.folder, name)
        with open(tmp, "wb") as f:
            np.savez(f, keys=np.asarray(keys, dtype="<U64"), vectors=np.asarray(vectors, dtype=np.float32))
        os.replace(tmp, self.folder / name)

    def clear(self) -> None:
        """Remove this setting's shards (after the index that used them is saved), and the folder once empty."""
        for path in self._files():
            path.unlink()
        remove_abandoned(self.folder)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()

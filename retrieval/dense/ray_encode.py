"""Encoding on a Ray cluster (`build|update --ray [ADDRESS]`): Ray Data `map_batches` over an actor pool.

Local Ray when no address is given; `auto` or `ray://HOST:PORT` joins a cluster (passed to `ray.init`). One actor
per GPU the cluster has (one GPU each), else one per CPU (one thread each); each loads the model once. The texts
go as blocks of whole batches of the one-process plan (shards.plan_blocks: the same batches, so the same
vectors), streamed through the pool; each finished block comes back to this process and is saved as a shard
under its texts' embedding-cache keys, so Ray's retry of a killed actor's block, or running a killed build again,
encodes only the blocks without a shard. An actor that cannot load the model (a folder missing on its node) stops
the encoding with a message naming the node and the path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from .devices import worker_config
from .embedcache import EmbeddingCache
from .encoders import Encoder
from .shards import Shards, plan_blocks

INSTALL = "--ray needs Ray: pip install '.[ray]' (or pip install 'ray[data]')"


def start(address: str | None) -> dict:
    """Connect to (or, without an address, start) Ray quietly; the cluster's resources. No Ray: a ValueError."""
    try:
        import ray
    except ImportError:
        raise ValueError(INSTALL) from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    import ray.data

    logging.getLogger("ray.data").setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    return ray.cluster_resources()


class _Actor:
    """One Ray worker: the encoder loaded once (or the reason it could not be), then blocks encoded."""

    def __init__(self, config, threads: int):
        import ray

        self.node = ray.util.get_node_ip_address()
        try:
            import torch

            torch.set_num_threads(threads)
            self.encoder, self.error = Encoder(replace(config, device="cuda" if ray.get_gpu_ids() else "cpu")), ""
        except Exception as e:  # noqa: BLE001 - sent back with the node's name, the build stops on it
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            self.encoder, self.error = None, f"Ray worker on node {self.node}: model {config.model or 'bundled'}: {reason}"

    def __call__(self, batch: dict) -> dict:
        shards = list(batch["shard"])
        if self.encoder is None:
            return {"shard": shards, "vectors": [b""] * len(shards), "error": [self.error] * len(shards)}
        vectors = [self.encoder.encode_documents([str(t) for t in texts], progress=False).tobytes()
                   for texts in batch["texts"]]
        return {"shard": shards, "vectors": vectors, "error": [""] * len(shards)}


class RayEncoder:
    """Document encoding through Ray with shards in `folder` (see the module docstring); `encoded` counts texts
    sent to the actors."""

    def __init__(self, encoder, address: str | None, folder: str | Path):
        self.encoder, self.address = encoder, address
        self.shards = Shards(folder, EmbeddingCache.for_model(encoder.info()))
        self.encoded = 0

    def encode(self, texts: Sequence[str], progress: bool = True) -> np.ndarray:
        """Unit float32 document vectors of `texts` in input order: from the shards, the rest encoded by Ray."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        keys = [self.shards.cache.key(t) for t in texts]
        have = self.shards.load()
        first = {k: i for i, k in reversed(list(enumerate(keys))) if k not in have}
        if first:
            missing = [texts[i] for i in first.values()]
            have.update(self._run(missing, list(first)))
            self.encoded += len(missing)
        return np.stack([have[k] for k in keys]).astype(np.float32, copy=False)

    def finish(self) -> None:
        """The index is saved: its shards are no longer needed."""
        self.shards.clear()

    def _run(self, texts: list[str], keys: list[str]) -> dict[str, np.ndarray]:
        """Encode `texts` (cache keys `keys`) on the actor pool, each finished block saved as a shard."""
        import ray.data

        resources = start(self.address)
        gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
        workers = gpus or cpus
        blocks = plan_blocks(self.encoder, texts, self.encoder.document_prompt, workers)
        by_id = {self.shards.shard_id([keys[i] for i in b]): b for b in blocks}
        items = [{"shard": sid, "texts": [texts[i] for i in b]} for sid, b in by_id.items()]
        data = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _Actor, batch_size=1, compute=ray.data.ActorPoolStrategy(size=min(workers, len(items))),
            fn_constructor_kwargs={"config": worker_config(self.encoder), "threads": 1},
            num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1)
        out: dict[str, np.ndarray] = {}
        for row in data.iter_rows():
            if row["error"]:
                raise ValueError(f"{row['error']}; the index was not written")
            block = by_id[row["shard"]]
            vectors = np.frombuffer(row["vectors"], dtype=np.float32).reshape(len(block), -1)
            block_keys = [keys[i] for i in block]
            self.shards.write(block_keys, vectors)
            out.update(zip(block_keys, vectors))
        return out


def attach(encoder, address: str | None, folder: str | Path) -> RayEncoder:
    """Route `encoder`'s document encoding through Ray, with shards kept in `folder` (queries stay here); the
    encoder's `shards` are where a Milvus publish reads the vectors back from, block by block (milvus/rows.py)."""
    ray_encoder = RayEncoder(encoder, address, folder)
    encoder.encode_documents, encoder.shards = ray_encoder.encode, ray_encoder.shards
    return ray_encoder

"""The Milvus backend (index/backends.py's seam): built legs published into a collection, its engines opened
from the manifest, the replaced collections dropped, and fusion by Milvus (`--fusion server`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..index.backends import Backend, Resources
from ..ranking import Ranking
from . import MilvusSetupError, MilvusTarget
from .bm25 import load_engine
from .fusion import server_fuse
from .legs import (
    collections_in,
    collections_of,
    dense_kind_of,
    drop_collections,
    milvus_backend,
    previous_collections,
    publish_legs,
    target_of,
)
from .store import MilvusStore


class MilvusBackend(Backend):
    """An index whose vectors and BM25 weights live in a Milvus collection; `target`: where a build publishes
    (None for a loaded index, whose next generation goes where its legs are)."""

    name = "milvus"

    def __init__(self, target: MilvusTarget | None = None):
        self.target = target

    @classmethod
    def opened(cls, manifest: Mapping) -> MilvusBackend:
        return cls()

    def handover_kind(self, kind: str) -> str:
        """Exact: the local store only hands the vectors over; the collection gets the asked kind."""
        return "flat"

    def publish(self, documents: Sequence, legs: dict, *, dense_kind: str = "auto",
                progress: bool = False) -> tuple[dict, dict]:
        if self.target is None:
            raise MilvusSetupError("the Milvus backend needs a target (--uri) to publish a new index")
        return publish_legs(self.target, documents, legs, dense_kind=dense_kind, progress=progress)

    def next_generation(self, before: Mapping, legs: dict, documents: Sequence,
                        progress: bool = False) -> tuple[dict, dict]:
        return publish_legs(target_of(before), documents, legs, dense_kind=dense_kind_of(before), progress=progress)

    def open_engine(self, leg: str, folder: Path, config: dict) -> Any | None:
        if leg == "dense" and config["store"].get("store") == "milvus":
            return MilvusStore.load(config["store"])
        if leg == "bm25" and "milvus" in config:
            return load_engine(folder, config)
        return None

    def fuse(self, retriever, queries: Sequence[str], allowed: Any = None,
             inputs: Mapping[str, Mapping] | None = None) -> list[Ranking]:
        return server_fuse(retriever, queries, allowed, inputs)

    def held(self, legs: Mapping) -> Resources:
        return collections_in(legs)

    def pointed(self, manifest: Mapping | None) -> Resources:
        return collections_of(manifest)

    def replaced(self, manifest: Mapping | None) -> Resources:
        return previous_collections(manifest)

    def entry(self, manifest: Mapping, replaced: Resources) -> dict | None:
        return milvus_backend(manifest, replaced)

    def drop(self, resources: Resources) -> None:
        drop_collections(resources)

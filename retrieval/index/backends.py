"""Where an index's engines live: the Backend seam between the legs and an external engine.

A leg builds and ranks through its engine (the dense leg a VectorStore, the BM25 leg a lexical
engine). The local backend (this base class) keeps them as files in the index folder: FAISS and
bm25s. Another backend (Milvus, retrieval/milvus/backend.py) publishes the built legs into its own
engines, opens them again from the manifest, drops what an index no longer points at, and may
fuse on its side. The manifest's `backend` entry names it; `BACKENDS` maps that name to the class
that opens it ("module:Class", imported on first use, as sentence-transformers' modules.json names
its classes), so the core never imports a backend's client library.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..ranking import Ranking

BACKENDS = {"milvus": "retrieval.milvus.backend:MilvusBackend"}  # name in the manifest -> the class opening it
Resources = set[tuple[str, str]]  # what an index points at outside its folder, e.g. (uri, collection)


class Backend:
    """The local backend: every engine is a leg's own files; nothing is published, held outside or fused."""

    name = "embedded"  # the CLI's --backend embedded

    @classmethod
    def opened(cls, manifest: Mapping) -> Backend:
        """The backend of a saved index, from its manifest."""
        return cls()

    def handover_kind(self, kind: str) -> str:
        """The kind of local vector store a dense leg builds (a publishing backend takes an exact one over)."""
        return kind

    def publish(self, documents: Sequence, legs: dict, *, dense_kind: str = "auto",
                progress: bool = False) -> tuple[dict, dict]:
        """The built legs searching this backend's engines (leg.with_engine), and the build figures."""
        return legs, {}

    def next_generation(self, before: Mapping, legs: dict, documents: Sequence,
                        progress: bool = False) -> tuple[dict, dict]:
        """Updated legs published as the generation after the one `before` searched (update, delete)."""
        return legs, {}

    def open_engine(self, leg: str, folder: Path, config: dict) -> Any | None:
        """The engine a saved leg's config points at in this backend (None: the leg reads its own files)."""
        return None

    def fuse(self, retriever, queries: Sequence[str], allowed: Any = None,
             inputs: Mapping[str, Mapping] | None = None) -> list[Ranking]:
        """Each query's fused ranking (document rows and scores), fused by the backend's engine (`--fusion server`)."""
        raise ValueError("--fusion server needs a Milvus-backed index with a dense and a client BM25 leg")

    def held(self, legs: Mapping) -> Resources:
        """What the legs search outside the index folder."""
        return set()

    def pointed(self, manifest: Mapping | None) -> Resources:
        """What a saved manifest's legs search outside the folder."""
        return set()

    def replaced(self, manifest: Mapping | None) -> Resources:
        """What a saved manifest's generation replaced (dropped once the next generation is in place)."""
        return set()

    def entry(self, manifest: Mapping, replaced: Resources) -> dict | None:
        """The manifest's `backend` entry (None: local), naming what this generation `replaced`."""
        return None

    def drop(self, resources: Resources) -> None:
        """Drop resources no index generation searches any more."""


LOCAL = Backend()


def chosen(backend: Backend | None) -> Backend:
    """The backend asked for (None: the local one)."""
    return LOCAL if backend is None else backend


def of_manifest(manifest: Mapping | None) -> Backend:
    """The backend a manifest's `backend` entry names (the local one when it has none)."""
    name = ((manifest or {}).get("backend") or {}).get("name", Backend.name)
    if name == Backend.name:
        return LOCAL
    if name not in BACKENDS:
        raise ValueError(f"unknown index backend {name!r} in the manifest (known: {', '.join(BACKENDS)})")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls).opened(manifest)


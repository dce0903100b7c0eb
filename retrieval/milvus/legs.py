"""Publishing built legs into a Milvus collection, and finding the collections an index points at."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence

import numpy as np

from ..corpus import Document
from ..dense.stores.faiss import default_kind
from ..legs.dense import DenseLeg
from ..legs.lexical import Bm25Leg
from ..lexical.analysis import bm25_fields
from . import MilvusSetupError, MilvusTarget, is_lite
from .bm25 import MilvusBm25, MilvusEngine, MilvusTextBm25, analyzer_params
from .collection import Columns, MilvusCollection, fit_varchar, publish
from .rows import VectorBlocks
from .store import MilvusStore

DENSE, BM25 = DenseLeg.name, Bm25Leg.name  # the legs a Milvus collection holds, by their registered names
LEGS = (DENSE, BM25)


def publish_legs(target: MilvusTarget, documents: Sequence[Document], legs: Mapping, *, dense_kind: str = "auto",
                 progress: bool = False) -> tuple[dict, dict]:
    """Write the built `legs` into a new collection, its dense index of `dense_kind` (auto: by size, as the
    embedded store chooses); returns the legs searching it (each given its Milvus engine) and build figures."""
    t = time.perf_counter()

    unknown = [name for name in legs if name not in LEGS]
    if unknown:
        raise MilvusSetupError(f"the Milvus backend holds the {DENSE} and {BM25} legs, not {', '.join(unknown)}")
    dense, bm25 = legs.get(DENSE), legs.get(BM25)
    columns, vocab, figures = Columns(docs=np.arange(len(documents))), None, {}
    if dense is not None:
        columns.docs = dense.row_docs()
        columns.vectors = VectorBlocks.of(dense, documents)  # streamed: from --ray's shards when there are
        n, dim = columns.vectors.rows, columns.vectors.dim
        columns.kind = _kind(default_kind(n, dim) if dense_kind == "auto" else dense_kind)
    if bm25 is not None:
        settings = bm25.analyzer.settings
        if settings.title == "field" or bm25.engine.rebuild_engine != "bm25s":
            raise MilvusSetupError("the Milvus backend takes BM25 from bm25s with the title joined or left out "
                                   "(not --title field, not rank-bm25)")
        columns.k1_b = (float(bm25.engine.params["k1"]), float(bm25.engine.params["b"]))
        if target.bm25 == "client":
            vocab, columns.sparse = bm25.engine.document_weights()
        else:
            fitted = [fit_varchar(t) for t in bm25_fields(documents, settings.title)[0]]
            columns.texts = [text for text, _ in fitted]
            figures["milvus_texts_cut"] = sum(cut for _, cut in fitted)  # over a server VARCHAR's 65,535 bytes
            columns.analyzer = analyzer_params(settings.language, is_lite(target.uri))
    records = [{"id": d.id, **d.metadata()} for d in documents]
    collection = publish(target, target.new_name(), columns, records, progress)
    out = dict(legs)
    if dense is not None:
        out[DENSE] = dense.with_engine(MilvusStore(collection, columns.kind, columns.vectors.dim, len(columns.docs)))
        if columns.vectors.shards is not None:
            figures["milvus_rows_from_shards"] = columns.vectors.from_shards
    if bm25 is not None:
        params = dict(bm25.engine.params)
        out[BM25] = bm25.with_engine(MilvusBm25(collection, vocab, params, len(documents)) if target.bm25 == "client"
                                       else MilvusTextBm25(collection, params, len(documents)))
    figures["milvus_seconds"] = time.perf_counter() - t
    return out, figures


def collections_in(legs: Mapping) -> set[tuple[str, str]]:
    """(uri, collection) pairs the legs search (none for embedded legs)."""
    return {(c.uri, c.name) for c in map(_collection, legs.values()) if c is not None}


def target_of(legs: Mapping) -> MilvusTarget | None:
    """The Milvus target the legs were published to (None: embedded), to publish their next generation."""
    for leg in legs.values():
        collection = _collection(leg)
        if collection is not None:
            bm25 = legs.get(BM25)
            mode = "server" if bm25 is not None and isinstance(bm25.engine, MilvusTextBm25) else "client"
            return MilvusTarget(collection.uri, base_name(collection.name), mode)
    return None


def dense_kind_of(legs: Mapping) -> str:
    """The dense index kind a Milvus-backed index was published with (its next generation keeps it)."""
    dense = legs.get(DENSE)
    return dense.engine.kind if dense is not None else "auto"


def collections_of(manifest: Mapping | None) -> set[tuple[str, str]]:
    """(uri, collection) pairs an index manifest's legs point at."""
    found = set()
    for config in (manifest or {}).values():
        if isinstance(config, Mapping):
            for part in (config, config.get("store"), config.get("milvus")):
                if isinstance(part, Mapping) and "uri" in part and "collection" in part:
                    found.add((part["uri"], part["collection"]))
    return found


def milvus_backend(manifest: Mapping, replaced: set[tuple[str, str]]) -> dict | None:
    """The manifest's `backend` entry of a Milvus-backed index: engine, URI and collection (never a token), and
    the collections this generation replaced (dropped by the next save)."""
    pairs = collections_of(manifest)
    if not pairs:
        return None
    uri, name = sorted(pairs)[0]
    return {"name": "milvus", "uri": uri, "collection": name, "lite": is_lite(uri),
            "previous": [list(p) for p in sorted(replaced)]}


def previous_collections(manifest: Mapping | None) -> set[tuple[str, str]]:
    """The collections an index manifest's generation replaced."""
    return {tuple(p) for p in ((manifest or {}).get("backend") or {}).get("previous", [])}


def drop_collections(pairs: set[tuple[str, str]]) -> None:
    """Drop replaced collections (a failure is left for the operator: the index itself is already switched)."""
    for uri, name in sorted(pairs):
        try:
            MilvusCollection(uri, name).drop()
        except (MilvusSetupError, OSError):
            pass


def base_name(name: str) -> str:
    """The base of a generation's collection name (without its time stamp)."""
    return re.sub(r"_\d{14}[0-9a-f]{4}$", "", name)


def _collection(leg) -> MilvusCollection | None:
    """The collection a leg's engine searches (None: a local engine)."""
    engine = leg.engine
    return engine.collection if isinstance(engine, (MilvusStore, MilvusEngine)) else None


def _kind(kind: str) -> str:
    if kind not in ("flat", "hnsw"):
        raise MilvusSetupError(f"the Milvus backend builds flat (exact) or hnsw dense indexes, not {kind!r}")
    return kind

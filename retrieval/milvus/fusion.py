"""Fusion inside Milvus (`--fusion server`): one hybrid_search per query, fused by Milvus's RRFRanker (equal
weights) or WeightedRanker (other weights: a score fusion with Milvus's normalisation, not weighted RRF).

Each request carries its own filter expression: a top-level filter on hybrid_search is ignored by pymilvus.
It needs one collection row per statute (no passages or title rows) and the client BM25 leg's sparse vectors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..ranking import Ranking
from . import MilvusSetupError
from .bm25 import MilvusBm25
from .collection import BM25, MAX_LIMIT, VECTOR, milvus_errors
from .expressions import rows_expression
from .store import MilvusStore


def server_fuse(retriever, queries: Sequence[str], allowed: np.ndarray | None = None,
                inputs: Mapping[str, Mapping] | None = None) -> list[Ranking]:
    """Each query's fused ranking (document rows and scores), best first, fused by Milvus."""
    from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

    dense, bm25 = _legs(retriever)
    config, depth = retriever.fusion, min(retriever.depth(), MAX_LIMIT)
    weights = [config.weights.get("dense", 1.0), config.weights.get("bm25", 1.0)]
    ranker = RRFRanker(config.k) if config.method == "rrf" and weights[0] == weights[1] else WeightedRanker(*weights)
    given = (inputs or {}).get("dense", {}).get("vectors")
    vectors = np.asarray(given, np.float32).reshape(len(queries), -1) if given is not None else dense.encode_queries(queries)
    expr = rows_expression(allowed, "doc") or ""
    collection, out = dense.engine.collection, []
    for query, vector in zip(queries, vectors):
        requests = [AnnSearchRequest([vector], VECTOR, {"metric_type": "IP"}, depth, expr=expr)]
        sparse = bm25.engine.query_vector(bm25.windows(query)[0])
        if sparse:
            requests.append(AnnSearchRequest([sparse], BM25, {"metric_type": "IP"}, depth, expr=expr))
        with milvus_errors(f"hybrid search of {collection.name}"):
            hits = collection.client.hybrid_search(collection.name, requests, ranker, limit=depth,
                                                   output_fields=["doc"])[0]
        out.append([(int(h["entity"]["doc"]), float(h["distance"])) for h in hits])
    return out


def _legs(retriever):
    dense, bm25 = retriever.leg.get("dense"), retriever.leg.get("bm25")
    if dense is None or bm25 is None or not isinstance(bm25.engine, MilvusBm25) or \
            not isinstance(dense.engine, MilvusStore):
        raise MilvusSetupError("--fusion server needs a Milvus-backed index with a dense and a client BM25 leg")
    if dense.passages or len(dense.title_docs) or bm25.query_window:
        raise MilvusSetupError("--fusion server needs one row per statute: no chunking, title vectors or query "
                               "windows (Milvus would fuse passages, not statutes)")
    return dense, bm25

"""Chunked dense retrieval at scale: statutes stored as passages (token windows and a title vector each) in
an approximate store, ranked per statute, against the exact ranking over every passage.

The corpus is synthetic (perf/synthetic.py's vectors): each statute has a centre vector; its windows
and title are the centre plus noise, so a statute's passages agree as a real statute's do. Queries
have three windows each, drawn around a query centre. Nothing is encoded, so the figures are the
store's and the aggregation's, not a model's.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..dense.chunking import ChunkSettings
from ..dense.stores.faiss import FaissStore
from ..legs.base import RowOrder
from ..legs.dense import OVERFETCH, DenseLeg
from . import synthetic
from .blocks import embed_block
from .measure import MB, highest_rss, latency

CHUNKING = ChunkSettings(documents=True, queries=True, doc_agg="max", query_agg="max", title_weight=0.3)
PASSAGE_NOISE, TITLE_NOISE, QUERY_NOISE = 0.6, 0.4, 0.5


@dataclass(frozen=True)
class PassageCorpus:
    """Passage vectors (text windows first, then titles) and the statute of each."""

    vectors: np.ndarray
    passage_docs: np.ndarray
    title_docs: np.ndarray

    @property
    def n_docs(self) -> int:
        return len(self.title_docs)


def passage_corpus(n_passages: int, dim: int = 384, seed: int = 0) -> PassageCorpus:
    """About `n_passages` rows: statutes with 1-7 windows (mean 4) plus one title each."""
    rng = np.random.default_rng([seed, 7])
    n_docs = max(1, n_passages // 5)
    windows = rng.integers(1, 8, n_docs)
    passage_docs = np.repeat(np.arange(n_docs), windows)
    centres = synthetic.vectors(n_docs, dim, seed)
    text = _around(centres[passage_docs], PASSAGE_NOISE, rng)
    titles = _around(centres, TITLE_NOISE, rng)
    return PassageCorpus(np.concatenate([text, titles]), passage_docs, np.arange(n_docs))


def query_windows(n: int, dim: int = 384, seed: int = 0, windows: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """`windows` vectors per query around a query centre, and the query of each."""
    rng = np.random.default_rng([seed, 8])
    owner = np.repeat(np.arange(n), windows)
    return _around(synthetic.query_vectors(n, dim, seed)[owner], QUERY_NOISE, rng), owner


def measure(n_passages: int, n_queries: int = 200, depth: int = 10, kind: str = "hnsw", repeats: int = 3,
            dim: int = 384, seed: int = 0) -> dict:
    """Build the store, then per query: latency of the leg's ranking, and recall@depth of its statute ranking
    against the exact scores over every passage of every statute."""
    corpus = passage_corpus(n_passages, dim, seed)
    qv, owner = query_windows(n_queries, dim, seed)
    order = RowOrder(np.arange(corpus.n_docs))
    t = time.perf_counter()
    store = FaissStore.build(corpus.vectors, kind)
    build_s = time.perf_counter() - t
    leg = DenseLeg(store, order, n_docs=corpus.n_docs, chunking=CHUNKING, passage_docs=corpus.passage_docs,
                   title_docs=corpus.title_docs)
    found = leg.rank_vectors(qv, owner, n_queries, depth)
    recall = []
    for q in range(n_queries):
        exact = leg.exact_scores_of(qv[owner == q], np.zeros(int((owner == q).sum()), np.int64))[0]
        truth = {row for row, _ in order.top(exact, depth)}
        recall.append(len(truth & {row for row, _ in found[q]}) / depth)
    timing = latency(lambda q: leg.rank_vectors(qv[owner == q], np.zeros(int((owner == q).sum()), np.int64), 1, depth),
                     list(range(n_queries)), repeats)
    peak = highest_rss()
    return {"asked_passages": n_passages, "passages": len(corpus.vectors), "statutes": corpus.n_docs, "text_windows": len(corpus.passage_docs),
            "dim": dim, "kind": kind, "store_params": asdict(store.params), "overfetch": OVERFETCH,
            "chunking": CHUNKING.to_dict(), "queries": n_queries, "query_windows": int(len(qv) / n_queries),
            "depth": depth, "build_seconds": build_s, "recall_at_depth": float(np.mean(recall)),
            "query": timing, "process_peak_rss_mb": None if peak is None else peak / MB}


def markdown(result: dict) -> str:
    """The result as a table row and its setting."""
    q = result["query"]
    return (f"| {result['passages']:,} passages ({result['statutes']:,} statutes: {result['text_windows']:,} chunk "
            f"windows + {result['statutes']:,} titles), chunked {result['kind'].upper()} | "
            f"p50 {q['p50_ms']:.2f} ms, p95 {q['p95_ms']:.2f} ms | recall@{result['depth']} of the statute ranking "
            f"vs exact: {result['recall_at_depth']:.3f} | build {result['build_seconds']:.0f} s |")


def _around(centres: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors `centres` + `noise` x a random unit direction."""
    d = rng.standard_normal(centres.shape).astype(np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    x = centres + noise * d
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def report(result: dict) -> str:
    """performance-passages.md: what was measured, how, and the figures."""
    c, q = result["chunking"], result["query"]
    return "\n".join([
        "# Chunked statutes at scale: passage-level dense search", "",
        f"Command: `{result.get('command', 'python -m retrieval perf passages N')}` (machine: see "
        "performance.md; this figure's run is described below).", "",
        "| corpus and store | query latency (one query, 3 windows) | quality | build |", "| --- | --- | --- | --- |",
        markdown(result), "",
        f"- Corpus: synthetic (perf/synthetic.py vectors, {result['dim']} dimensions): {result['statutes']:,} statutes "
        f"with 1-7 text windows each ({result['text_windows']:,} windows) and one title vector each, "
        f"{result['passages']:,} rows in one {result['kind'].upper()} store ({result['store_params']}).",
        f"- Settings: document and query windows, statute score = max over its windows (doc_agg {c['doc_agg']}), "
        f"max over the query's windows, title weight {c['title_weight']}.",
        f"- Search: each query window retrieves its top {result['overfetch']} x {result['depth']} passages "
        "(OVERFETCH x depth); every statute with a retrieved passage is scored exactly over all its passages.",
        f"- Recall: share of the exact top {result['depth']} statutes (exact scores over every passage of every "
        f"statute) that the leg returns, mean over {result['queries']} queries.",
        f"- Latency: `DenseLeg.rank_vectors` for one query (given vectors: no encoding), median over "
        f"{q['runs']} passes of each pass's p50 / p95; mean {q['mean_ms']:.2f} ms.",
        f"- Peak RSS of the process: {result['process_peak_rss_mb']:.0f} MB." if result["process_peak_rss_mb"] else "",
        ""])


BEGIN, END = "<!-- chunked-passages -->", "<!-- /chunked-passages -->"


def embed(performance_md: Path, result: dict) -> None:
    """Put the passage benchmark's headline into performance.md (replacing an earlier one), between markers, so
    a rerun of either benchmark keeps the other's figures."""
    asked = result.get("asked_passages", result["passages"])
    embed_block(performance_md, BEGIN, END, "\n".join([
        f"## Chunked statutes at scale: {asked:,}-passage synthetic corpus (passage-level dense search)", "",
        "| corpus and store | query latency | quality | build |", "| --- | --- | --- | --- |", markdown(result), "",
        f"Details and method: [performance-passages.md](performance-passages.md); command: "
        f"`{result.get('command', 'python -m retrieval perf passages N')}`."]))

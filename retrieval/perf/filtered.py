"""Filtered search at scale: query latency when a filter keeps 1%, 10% or 50% of the statutes, exact and HNSW.

Every statute of the synthetic corpus (perf/synthetic.py: text for BM25, vectors standing in for
embeddings; no model) carries a numeric `meta.bucket` = row mod 100, so `bucket < 1`, `bucket < 10`
and `bucket < 50` keep 1%, 10% and 50%. Searches go through the retriever's public path,
`search(..., allowed=retriever.where(expr))`; each result is checked: k hits, all inside the filter
(a post-filter that starves would return fewer).
"""

from __future__ import annotations

import time
from dataclasses import replace

from ..dense.stores.faiss import FaissStore
from ..legs.dense import DenseLeg
from ..retriever import HYBRID, HybridRetriever
from . import synthetic
from .measure import MB, cpu_seconds, highest_rss, latency, machine, run_context, shared_cpu_note

SELECTIVITIES = (0.01, 0.1, 0.5)
KINDS = ("flat", "hnsw")
K = 10
BEGIN, END = "<!-- filtered-search -->", "<!-- /filtered-search -->"


def expression(share: float | None) -> str | None:
    """The filter keeping `share` of the statutes (None: no filter)."""
    return None if share is None else f"bucket < {round(share * 100)}"


def measure(n: int, n_queries: int = 200, repeats: int = 3, dim: int = 384, seed: int = 0) -> dict:
    """Per dense store kind and mode (dense, bm25 once, hybrid): latency and hits at each selectivity."""
    started, cpu_start = time.perf_counter(), cpu_seconds()
    docs = [replace(d, meta={"bucket": row % 100}) for row, d in enumerate(synthetic.documents(n, seed))]
    items = list(zip(synthetic.queries(n_queries, seed), synthetic.query_vectors(n_queries, dim, seed)))
    lexical = HybridRetriever.build(docs, legs=["bm25"], progress=False)
    bm25 = lexical.leg["bm25"]
    out: dict = {"n": n, "machine": machine(), "dim": dim, "queries": n_queries, "k": K, "repeats": repeats, "runs": []}
    for kind in KINDS:
        t = time.perf_counter()
        store = FaissStore.build(synthetic.vectors(n, dim, seed), kind)
        out[f"{kind}_build_seconds"] = time.perf_counter() - t
        retriever = HybridRetriever(docs, {"dense": DenseLeg(store, bm25.order, n_docs=n), "bm25": bm25},
                                    info=lexical.info)
        for mode in ("dense", "bm25", HYBRID) if kind == KINDS[0] else ("dense", HYBRID):
            for share in (None, *SELECTIVITIES):
                out["runs"].append({"store": kind, "mode": mode, **_run(retriever, mode, share, items, repeats)})
    peak = highest_rss()
    out["process_peak_rss_mb"] = None if peak is None else peak / MB
    return {**out, **run_context(started, cpu_start)}


def _run(retriever: HybridRetriever, mode: str, share: float | None, items: list, repeats: int) -> dict:
    """One mode at one selectivity: the filter's cost, search latency, fewest hits, hits outside the filter,
    and queries starved (fewer than k hits although more allowed documents match)."""
    t = time.perf_counter()
    allowed = retriever.where(expression(share)) if share is not None else None
    where_ms = (time.perf_counter() - t) * 1000
    inside = None if allowed is None else {retriever.ids[r] for r in allowed}
    counts, outside, starved = [], 0, 0
    for query, vector in items:
        hits = retriever.search(query, k=K, mode=mode, query_vector=vector, allowed=allowed)
        counts.append(len(hits))
        outside += 0 if inside is None else sum(h.id not in inside for h in hits)
        starved += len(hits) < min(K, _matching(retriever, mode, query, vector, inside))
    timing = latency(lambda it: retriever.search(it[0], k=K, mode=mode, query_vector=it[1], allowed=allowed),
                     items, repeats)
    return {"share": share, "filter": expression(share), "allowed": None if allowed is None else len(allowed),
            "where_ms": where_ms, "min_hits": min(counts), "hits_outside_filter": outside, "starved": starved,
            "query": timing}


def _matching(retriever: HybridRetriever, mode: str, query: str, vector, inside: set[str] | None) -> int:
    """How many allowed documents the mode's legs can return for the query at all (unfiltered, whole depth);
    at least k is assumed without asking when the leg is dense (every document has a score)."""
    legs = retriever.legs_for(mode)
    if "dense" in legs:
        return K if inside is None else min(K, len(inside))
    ranked = retriever.leg_rankings([query], legs, depth=len(retriever))
    ids = {retriever.ids[r] for ranking in ranked.values() for r, _ in ranking[0]}
    return len(ids if inside is None else ids & inside)


def markdown(result: dict) -> str:
    """The headline block for performance.md: p50 / p95 per store, mode and selectivity, and the hit checks."""
    shares = [None, *SELECTIVITIES]
    head = " | ".join("no filter" if s is None else f"{s:.0%} kept" for s in shares)
    rows = []
    for store, mode in dict.fromkeys((r["store"], r["mode"]) for r in result["runs"]):
        runs = {r["share"]: r for r in result["runs"] if r["store"] == store and r["mode"] == mode}
        cells = " | ".join(f"{runs[s]['query']['p50_ms']:.2f} / {runs[s]['query']['p95_ms']:.2f}" for s in shares)
        hits = min(runs[s]["min_hits"] for s in shares)
        outside = sum(runs[s]["hits_outside_filter"] for s in shares)
        starved = sum(runs[s]["starved"] for s in shares)
        rows.append(f"| {'–' if mode == 'bm25' else store} | {mode} | {cells} | {hits} | {starved} | {outside} |")
    where = sorted(r["where_ms"] for r in result["runs"] if r["share"] is not None)
    return "\n".join([
        f"## Filtered search at {result['n']:,} statutes: 1%, 10%, 50% selectivity", "",
        f"Query latency in ms, p50 / p95 per query (k = {result['k']}, {result['queries']} queries, median of "
        f"{result['repeats']} passes), through `search(..., allowed=retriever.where('bucket < N'))`. Synthetic "
        f"corpus (perf/synthetic.py: text for BM25, {result['dim']}-d vectors given, no model). *fewest hits*: the "
        f"smallest number of hits any query got; *starved*: queries (over all filters) with fewer than k hits although "
        f"k allowed documents could match (BM25 scores only documents sharing a word with the query); *outside*: "
        f"hits that fail the filter.", "",
        f"| dense store | mode | {head} | fewest hits | starved | outside |",
        "| --- | --- |" + " ---: |" * (len(shares) + 3),
        *rows, "",
        f"Builds: exact {result['flat_build_seconds']:.1f} s, HNSW {result['hnsw_build_seconds']:.1f} s. Evaluating "
        f"a filter over {result['n']:,} statutes (`where`, once per filter, not in the latencies above; the first call "
        f"also reads every statute's fields): median {where[len(where) // 2]:.0f} ms, at most {where[-1]:.0f} ms. "
        f"{shared_cpu_note(result)} Command: `{result.get('command', 'python -m retrieval perf filtered N')}`; "
        "figures in performance-filtered.json.",
    ])

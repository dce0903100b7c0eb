"""The benchmark's measurements, one function per component: BM25, FAISS, fusion, index folder, AILA.

Every figure goes through the project's own code paths (HybridRetriever, FaissStore,
fusion, store); each returns plain JSON-ready dicts.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from .. import fusion
from ..corpus import Document, read_corpus
from ..dense.stores.faiss import INDEX_FILE, KINDS, FaissStore, StoreParams, default_kind, ivf_nlist
from ..index.format import index_bytes, read_manifest, verify_checksums
from ..ranking import RowOrder
from ..retriever import HYBRID, HybridRetriever
from .measure import MB, latency, repeated_runs, summarise_runs, timed_run

DEFAULTS = StoreParams()
RECALL_TARGET = 0.95
EF_SEARCH_SWEEP = (16, 32, 64, 128, 256, 512)
NPROBE_SWEEP = (1, 2, 4, 8, 16, 32, 64, 128, 256)
K = 10


def bm25(docs: list[Document], queries: list[str], engine: str, repeats: int,
         build_budget_s: float) -> tuple[dict, HybridRetriever]:
    """BM25 build (analysis + indexing) time and memory, and per-query latency of the leg's top-k."""
    runs, retriever = repeated_runs(
        lambda: HybridRetriever.build(docs, legs=["bm25"], bm25_backend=engine, progress=False),
        repeats, build_budget_s)
    query = latency(lambda q: retriever.leg_rankings([q], ["bm25"]), queries, repeats)
    return {"engine": engine, "build": summarise_runs(runs), "query": query,
            "depth": retriever.depth()}, retriever


def dense(vectors: np.ndarray, query_vectors: np.ndarray, repeats: int, build_budget_s: float,
          work: Path) -> tuple[dict, FaissStore]:
    """Exact, HNSW and IVF: build time and memory, file size, single-query latency, recall@10 vs exact.

    HNSW's efSearch and IVF's nprobe are swept; the smallest reaching RECALL_TARGET is reported.
    The leg's full list (depth, at most 1000) is checked at the default efSearch / nprobe, as a
    loaded index searches. Returns the results and the index of the kind `default_kind` picks for
    this size, at the default search parameters.
    """
    n = len(vectors)
    depth = min(1000, n)
    exact = FaissStore.build(vectors, "flat")
    truth = exact.search(query_vectors, K)[1]
    truth_depth = exact.search(query_vectors, depth)[1]
    del exact
    dim = int(vectors.shape[1])
    out: dict = {"n": n, "dim": dim, "default_kind": default_kind(n, dim), "kinds": {}}
    keep = None
    for kind in KINDS:
        runs, index = repeated_runs(lambda: FaissStore.build(vectors, kind), repeats, build_budget_s)
        index.save(work)
        result = {"build": summarise_runs(runs), "file_mb": (work / INDEX_FILE).stat().st_size / MB}
        if kind == "flat":
            result.update(_point(index, query_vectors, truth, repeats))
            # FAISS's own search, every OpenMP thread on one query (FaissStore.search uses one)
            result["all_threads"] = latency(lambda v: index.index.search(v[None], K), list(query_vectors), repeats)
        else:
            param, values, default = (("ef_search", EF_SEARCH_SWEEP, DEFAULTS.ef_search) if kind == "hnsw"
                                      else ("nprobe", [v for v in NPROBE_SWEEP if v <= ivf_nlist(n)], DEFAULTS.nprobe))
            sweep = [{param: v, **_point(index, query_vectors, truth, repeats, **{param: v})} for v in values]
            chosen = next((p for p in sweep if p["recall_at_10"] >= RECALL_TARGET), sweep[-1])
            index.set_search_params(**{param: default})
            result.update({**chosen, "sweep": sweep, "default": default,
                           "recall_at_depth": _recall(index.search(query_vectors, depth)[1], truth_depth)})
            result.update({"m": DEFAULTS.hnsw_m, "ef_construction": DEFAULTS.ef_construction} if kind == "hnsw"
                          else {"nlist": ivf_nlist(n)})
        result["depth"] = depth
        out["kinds"][kind] = result
        if kind == out["default_kind"]:
            keep = index
        index = None  # free this kind before building the next (two million-vector indexes at once skew memory)
    return out, keep


def fusion_cost(repeats: int, calls: int = 1000) -> dict:
    """RRF over two lists of 1000 documents that share half their rows, per call."""
    order = RowOrder(np.arange(1500))
    lists = [[(r, 1.0 / (r + 1)) for r in range(1000)], [(d, 1.0 / (r + 1)) for r, d in enumerate(range(500, 1500))]]
    return {"lists": 2, "length": 1000, "overlap": 500,
            **latency(lambda _: fusion.rrf(lists, order), [None] * calls, repeats)}


def index_folder(retriever: HybridRetriever, queries: list[str], query_vectors: np.ndarray, repeats: int,
                 build_budget_s: float, work: Path) -> dict:
    """Save size and time, sha256 vs size checks, load time read vs mapped, and query latency once loaded."""
    path = work / "index"
    save_runs, manifest = repeated_runs(lambda: retriever.save(path), repeats, build_budget_s)
    parts: dict[str, int] = {}
    for name, meta in manifest["files"].items():
        part = name.split("/")[0] if "/" in name else "documents"
        parts[part] = parts.get(part, 0) + meta["bytes"]
    out = {
        "dense_kind": manifest["dense"]["index"], "files_mb": index_bytes(manifest) / MB,
        "parts_mb": {k: v / MB for k, v in parts.items()},
        "save": summarise_runs(save_runs),
        "sha256_check": summarise_runs(repeated_runs(lambda: verify_checksums(path, manifest), repeats,
                                                     build_budget_s)[0]),
        "size_check": summarise_runs(repeated_runs(lambda: read_manifest(path, verify=False), repeats,
                                                   build_budget_s)[0]),
        "load": {},
    }
    item = (queries[0], query_vectors[0])
    for label, kwargs in (("read", {"mmap": False, "verify": False}), ("mmap", {"mmap": True, "verify": False}),
                          ("read+sha256", {"mmap": False, "verify": True}), ("default", {})):
        loaded = None  # let the previous load go first
        runs, loaded = repeated_runs(lambda: HybridRetriever.load(path, **kwargs), repeats, build_budget_s)
        first, _ = timed_run(lambda: _search(loaded, item, "hybrid"))
        out["load"][label] = {**summarise_runs(runs), "first_query_ms": first.seconds * 1000}
    default = loaded  # loaded last, with the default (size-dependent) mmap and verify
    items = list(zip(queries, query_vectors))
    out["query"] = {mode: latency(lambda it: _search(default, it, mode), items, repeats)
                    for mode in (HYBRID, *default.legs)}
    return out


def aila(aila_dir: Path, n_queries: int, repeats: int, work: Path, statutes: int | None = None) -> dict:
    """End to end on AILA 2019 with the bundled MiniLM: per-query latency with the model loaded."""
    docs = read_corpus(aila_dir / "Object_statutes")[:statutes]
    texts = aila_queries(aila_dir / "Query_doc.txt")
    items = list(itertools.islice(itertools.cycle(texts), n_queries))
    build, built = timed_run(lambda: HybridRetriever.build(docs, progress=False))
    built.save(work / "aila")
    del built
    load, retriever = timed_run(lambda: HybridRetriever.load(work / "aila"))
    leg = retriever.leg["dense"]
    enc = leg.encoder
    out = {
        "statutes": len(docs), "distinct_queries": len(texts), "queries": len(items),
        "query_words_mean": float(np.mean([len(q.split()) for q in texts])),
        "model": retriever.info["dense"]["model"], "device": enc.device, "dtype": enc.dtype,
        "max_seq_length": enc.max_seq_length,
        "dense_kind": leg.store.kind, "build_seconds": build.seconds, "load_seconds": load.seconds,
        "encode": latency(lambda q: leg.encode_queries([q]), items, repeats),
    }
    out["search"] = {mode: latency(lambda q: retriever.search(q, k=K, mode=mode), items, repeats)
                     for mode in (HYBRID, *retriever.legs)}
    return out


def aila_queries(path: Path) -> list[str]:
    """The query texts of AILA's Query_doc.txt (`id||text` lines, split at the first `||`)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split("||", 1)[1].strip() for line in lines if "||" in line]


def _point(index: FaissStore, query_vectors: np.ndarray, truth: np.ndarray, repeats: int, **params) -> dict:
    """Recall@10 (batch search) and single-query latency at k=10 under `params`."""
    if params:
        index.set_search_params(**params)
    recall = _recall(index.search(query_vectors, K)[1], truth)
    return {"recall_at_10": recall,
            **latency(lambda v: index.search(v[None], K), list(query_vectors), repeats)}


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's true neighbours that were found."""
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def _search(retriever: HybridRetriever, item: tuple[str, np.ndarray], mode: str):
    query, vector = item
    return retriever.search(query, k=K, mode=mode, query_vector=vector)

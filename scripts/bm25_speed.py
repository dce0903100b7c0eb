"""BM25 speed on STARD: build, save, load (mmap or not, checksums or sizes only), query latency, bm25s vs rank-bm25.

    PYTHONPATH=. python scripts/bm25_speed.py --stard DIR [-n 100] [--out /tmp/bm25-speed]

Prints one JSON object. Both engines index the same tokens (the default `--language zh`
analysis) and answer the same N queries; a query's time covers analysis, scoring every
document and taking the top 10. Loads are timed in this process after a first warm-up
load (so imports and the OS file cache are warm), median of three.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from retrieval.index.format import read_manifest
from retrieval.lexical.analysis import AnalyzerSettings
from retrieval.lexical.engines import build_lexical
from retrieval.retriever import HybridRetriever


def seconds(fn, repeat: int = 1) -> tuple[float, object]:
    """Median wall time of `fn()` over `repeat` calls, and its last result."""
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def latency_ms(search, queries: list[str]) -> dict:
    """p50 and p95 milliseconds of `search(q)` over the queries."""
    times = []
    for q in queries:
        t = time.perf_counter()
        search(q)
        times.append((time.perf_counter() - t) * 1000)
    return {"p50": float(np.percentile(times, 50)), "p95": float(np.percentile(times, 95)), "queries": len(times)}


def _cpu() -> str:
    """The CPU model and the cores this process may use."""
    import os

    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.machine()
    return f"{model}, {len(os.sched_getaffinity(0))} cores"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stard", required=True, type=Path, help="STARD folder (corpus.jsonl, queries.jsonl)")
    p.add_argument("-n", type=int, default=100, help="queries timed per engine (default 100)")
    p.add_argument("--out", type=Path, default=Path("/tmp/bm25-speed"), help="index folder to write")
    args = p.parse_args()

    from retrieval.corpus import read_corpus

    read_s, docs = seconds(lambda: read_corpus(args.stard / "corpus.jsonl"))
    with open(args.stard / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for line in f][:args.n]
    settings = AnalyzerSettings.for_language("zh")

    build_s, built = seconds(lambda: HybridRetriever.build(docs, legs=["bm25"], analysis=settings, progress=False))
    save_s, _ = seconds(lambda: built.save(args.out))
    files = read_manifest(args.out, verify=False)["files"]
    HybridRetriever.load(args.out, mmap=True)  # warm-up
    loads = {f"{'mmap' if mmap else 'read'}_{'sha256' if verify else 'sizes'}":
             seconds(lambda: HybridRetriever.load(args.out, mmap=mmap, verify=verify), repeat=3)[0]
             for mmap in (True, False) for verify in (True, False)}
    verify_s, _ = seconds(lambda: read_manifest(args.out, verify=True), repeat=3)

    loaded = HybridRetriever.load(args.out, mmap=True)
    bm25s_top10 = latency_ms(lambda q: loaded.leg_rankings([q], ["bm25"], depth=10), queries)
    search = latency_ms(lambda q: loaded.search(q, k=10, mode="bm25"), queries)

    analyzer = loaded.analyzer
    tokens = analyzer.many(d.indexed_text() for d in docs)
    rank_build_s, rank = seconds(lambda: build_lexical(tokens, "rank-bm25"))
    other = HybridRetriever(docs, encoder=None, dense=None, analyzer=analyzer, lexical=rank)
    rank_top10 = latency_ms(lambda q: other.leg_rankings([q], ["bm25"], depth=10), queries)

    print(json.dumps({
        "machine": {"cpu": _cpu(), "python": platform.python_version()},
        "documents": len(docs), "analysis": settings.to_dict(), "read_corpus_s": read_s,
        "bm25s": {
            "build_s": build_s, "build_parts_s": built.info["build"], "save_s": save_s,
            "index_mb": sum(m["bytes"] for m in files.values()) / 1e6,
            "load_s": loads, "sha256_check_s": verify_s,
            "query_ms": bm25s_top10, "search_ms": search,
        },
        "rank_bm25": {"build_s": rank_build_s, "query_ms": rank_top10},
        "speedup_p50": rank_top10["p50"] / bm25s_top10["p50"],
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

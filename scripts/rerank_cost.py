"""Added latency of the rerank stage per query, at several depths, for the rerankers in a folder written by
scripts/make_tiny_models.py (--minilm for the MiniLM-L6-sized one). Prints one JSON object.

The first stage is a BM25 index of the AILA 2019 statutes (AILA2019_DIR); the queries are AILA's first
--queries case descriptions. Added latency = median over queries of (search with rerank) - (search without).
The models are random: their scores mean nothing, only their cost does.
  python scripts/rerank_cost.py MODELS_DIR [--depths 20,50,100] [--queries 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from retrieval.corpus import read_corpus  # noqa: E402
from retrieval.rerank import RerankConfig, Reranker, RerankStage  # noqa: E402
from retrieval.retriever import HybridRetriever  # noqa: E402

MODELS = ("qwen3-reranker", "cross-encoder", "minilm-cross-encoder")


def main() -> int:
    """Time each model found in MODELS_DIR at each depth; print the JSON summary."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", help="folder written by scripts/make_tiny_models.py")
    p.add_argument("--depths", default="20,50,100")
    p.add_argument("--queries", type=int, default=5)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    aila = Path(os.environ.get("AILA2019_DIR", ""))
    if not (aila / "Object_statutes").is_dir():
        print("error: set AILA2019_DIR to the AILA 2019 release folder", file=sys.stderr)
        return 2
    retriever = HybridRetriever.build(read_corpus(aila / "Object_statutes"), legs=["bm25"], progress=False)
    lines = (aila / "Query_doc.txt").read_text(encoding="utf-8").splitlines()
    queries = [line.split("||", 1)[1] for line in lines if "||" in line][: args.queries]
    depths = [int(d) for d in args.depths.split(",")]
    out = {"statutes": len(retriever), "queries": len(queries), "device": args.device, "cpu": platform.processor(),
           "cores": os.cpu_count(), "load_average_1min_before": round(os.getloadavg()[0], 2),
           "first_stage": "BM25 (bm25s)", "models": {}}
    for name in (m for m in MODELS if (Path(args.models) / m).is_dir()):
        reranker = Reranker(RerankConfig(model=str(Path(args.models) / name), device=args.device))
        retriever.search(queries[0], rerank=RerankStage(reranker, min(depths)))  # warm-up
        out["models"][name] = {"max_length": reranker.max_length, "dtype": reranker.dtype,
                               "added_ms_per_query": {d: _added_ms(retriever, reranker, queries, d) for d in depths}}
    out["load_average_1min_after"] = round(os.getloadavg()[0], 2)  # other jobs on the machine slow every figure
    print(json.dumps(out, indent=2))
    return 0


def _added_ms(retriever: HybridRetriever, reranker: Reranker, queries: list[str], depth: int) -> float:
    """Median over queries of the milliseconds a rerank at `depth` adds to one search."""
    added = []
    for q in queries:
        t = time.perf_counter()
        retriever.search(q, k=10)
        plain = time.perf_counter() - t
        t = time.perf_counter()
        retriever.search(q, k=10, rerank=RerankStage(reranker, depth))
        added.append(time.perf_counter() - t - plain)
    return round(1000 * statistics.median(added), 1)


if __name__ == "__main__":
    raise SystemExit(main())

"""The embedded backend against Milvus Lite at scale, measured in one run: build seconds and hybrid query
p50 / p95 on the same synthetic corpus (perf/synthetic.py texts and vectors: nothing is encoded).

`python -m retrieval perf milvus 10000,100000 --out-dir DIR` writes milvus-scale.json and .md.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from . import synthetic
from .measure import latency, machine


def measure(sizes: list[int], n_queries: int = 100, repeats: int = 1) -> dict:
    """Per size and backend: build seconds (whole `HybridRetriever.build`), hybrid query latency, dense kind."""
    from ..milvus import MilvusTarget
    from ..milvus.backend import MilvusBackend
    from ..retriever import HybridRetriever

    items = list(zip(synthetic.queries(n_queries), synthetic.query_vectors(n_queries)))
    rows = []
    with tempfile.TemporaryDirectory(prefix="milvus-perf-") as tmp:
        for n in sizes:
            docs, doc_vectors = synthetic.documents(n), synthetic.vectors(n)
            for backend in ("embedded", "milvus"):
                target = MilvusBackend(MilvusTarget(str(Path(tmp) / f"m{n}.db"), f"perf{n}")) if backend == "milvus" else None
                t = time.perf_counter()
                r = HybridRetriever.build(docs, vectors=doc_vectors, progress=False, backend=target)
                build = time.perf_counter() - t
                lat = latency(lambda qv: r.search(qv[0], k=10, query_vector=qv[1]), items, repeats)
                rows.append({"passages": n, "backend": backend, "dense_kind": r.leg["dense"].store.kind,
                             "build_s": build, **lat})
    return {"machine": machine(), "queries": n_queries, "rows": rows}


def report(result: dict) -> str:
    """The table of one run (markdown)."""
    lines = ["| passages | backend | dense index | build s | hybrid query p50 ms | p95 ms |",
             "| ---: | --- | --- | ---: | ---: | ---: |"]
    for r in result["rows"]:
        lines.append(f"| {r['passages']:,} | {r['backend']} | {r['dense_kind']} | {r['build_s']:.1f} | "
                     f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} |")
    return "\n".join(lines) + "\n"

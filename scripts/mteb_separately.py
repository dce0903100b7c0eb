"""MTEB's own dense, BM25 and HybridSearch evaluations run one after another, as a user would
without this project: the baseline that `retrieval bench` (one process, texts encoded once) is
timed against.

    python scripts/mteb_separately.py [--aila-dir DIR] [--model M] [--runs dense,bm25,hybrid_rrf] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--aila-dir", default=os.environ.get("AILA2019_DIR"), help="AILA 2019 release folder")
    p.add_argument("--model", help="sentence-transformers folder (default: the bundled all-MiniLM-L6-v2)")
    p.add_argument("--runs", default="dense,bm25,hybrid_rrf", help="which of dense,bm25,hybrid_rrf to run")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    t0 = time.perf_counter()
    import mteb
    from sentence_transformers import SentenceTransformer

    from retrieval.dense.encoders import DEFAULT_MODEL, resolve_model
    from retrieval.evaluation.datasets import load_aila, load_aila_from_hub, mteb_task
    from retrieval.evaluation.mteb_reference import mteb_reference_models

    data = load_aila(args.aila_dir) if args.aila_dir else load_aila_from_hub()
    path = resolve_model(args.model)
    models = mteb_reference_models(lambda: SentenceTransformer(path, device="cpu"), args.model or DEFAULT_MODEL, stock=True)

    out = {"import_and_data_seconds": time.perf_counter() - t0, "runs": {}}
    makers = {"dense": models["dense"][1], "bm25": models["bm25"][1], "hybrid_rrf": models["hybrid"][1]}
    for name in args.runs.split(","):
        make = makers[name]
        t = time.perf_counter()
        score = mteb.evaluate(make(), mteb_task(data), cache=None, show_progress_bar=False).task_results[0].get_score()
        out["runs"][name] = {"ndcg_at_10": score, "seconds": time.perf_counter() - t}
    out["total_seconds"] = time.perf_counter() - t0
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for name, r in out["runs"].items():
            print(f"{name:<11} nDCG@10 {r['ndcg_at_10']:.5f}  {r['seconds']:.1f}s (model load + evaluate)")
        print(f"total {out['total_seconds']:.1f}s (imports and data {out['import_and_data_seconds']:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

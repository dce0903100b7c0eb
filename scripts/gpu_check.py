"""Check the Qwen3/CUDA path on a machine with a GPU and no network; print one JSON summary.

Steps: (1) the tiny-Qwen3 tests on the device (RETRIEVAL_TEST_DEVICE); (2) GPU vs CPU dense search
rankings (torch on CUDA, and faiss-gpu when faiss sees a GPU, against faiss on the CPU); (3) encoding
throughput (tokens/s) and peak GPU memory of a random model with Qwen3-Embedding-0.6B's shape in bf16 on
the AILA texts (AILA2019_DIR), token-budget batches vs a fixed batch of 8; (4) reranker throughput (pairs/s)
and peak GPU memory of a random Qwen3-Reranker-0.6B-shaped judge in fp16 and bf16 on (AILA query, statute)
pairs (GPU only). `--cpu`: steps 1-3 on the CPU with a tiny model and a few texts. Run it through
scripts/gpu_check.sh; see docs/gpu.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from qwen3_tiny import QWEN3_06B_SHAPE, STATUTE_TEXT, build_qwen3_folder  # noqa: E402
from tiny_rerankers import build_qwen3_reranker_folder  # noqa: E402

from retrieval.corpus import read_corpus  # noqa: E402
from retrieval.dense import DenseIndex, faiss_gpu_count  # noqa: E402
from retrieval.encoders import Encoder, EncoderConfig  # noqa: E402
from retrieval.rerank import RerankConfig, Reranker  # noqa: E402

# Qwen3-Reranker-0.6B's config.json differs from the embedding model's only in its position limit.
QWEN3_RERANKER_06B_SHAPE = {**QWEN3_06B_SHAPE, "max_position_embeddings": 40960}

# Per mode: search sizes, model shape, tokenizer vocabulary, texts, token budget, seq cap, timed repeats.
SETTINGS = {
    "cpu": {"search": (2000, 64, 16, 50), "shape": None, "vocab": 640, "texts": 28, "budget": 2048,
            "max_seq_length": 256, "repeats": 1, "dtype": "float32", "test_timeout": 150},
    "gpu": {"search": (100_000, 1024, 256, 100), "shape": QWEN3_06B_SHAPE, "vocab": 16384, "texts": None,
            "budget": 16384, "max_seq_length": None, "repeats": 3, "dtype": "bfloat16", "test_timeout": 240},
}


def main() -> int:
    """Run the steps, print the JSON summary (and write it to --out); exit 1 when a step failed."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true", help="dry mode: the same steps on the CPU, tiny and quick")
    p.add_argument("--no-tests", action="store_true", help="skip step 1 (the tests have just run)")
    p.add_argument("--out", help="also write the summary to this file")
    args = p.parse_args()
    mode = "cpu" if args.cpu else "gpu"
    cfg = SETTINGS[mode]
    device = "cpu" if args.cpu else "cuda"
    summary: dict = {"mode": mode, "environment": environment()}
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        summary["error"] = "torch sees no CUDA device (use --cpu for the dry run)"
    else:
        if not args.no_tests:
            summary["tests"] = run_tests(device, cfg["test_timeout"])
        summary["search"] = compare_search(device, *cfg["search"])
        summary["throughput"] = measure_throughput(device, cfg)
        summary["rerank"] = rerank_step(device, cfg)
    summary["ok"] = _ok(summary)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0 if summary["ok"] else 1


def environment() -> dict:
    """Versions, the GPU, and what faiss and flash-attn offer."""
    import importlib.metadata as md
    import importlib.util

    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "faiss_gpus": faiss_gpu_count(), "flash_attn": importlib.util.find_spec("flash_attn") is not None}
    for pkg in ("transformers", "sentence-transformers", "tokenizers", "faiss-cpu", "faiss-gpu-cu12", "bm25s"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def run_tests(device: str, timeout: int) -> dict:
    """The tiny-Qwen3 tests with RETRIEVAL_TEST_DEVICE=device; returns pytest's exit code and last line."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "not gpu_check",
           "tests/test_qwen3.py", "tests/test_retriever.py::test_torch_topk_matches_faiss"]
    t = time.perf_counter()
    try:
        run = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "RETRIEVAL_TEST_DEVICE": device},
                             capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"rc": None, "result": f"timed out after {timeout} s"}
    lines = (run.stdout + run.stderr).strip().splitlines()
    if run.returncode:
        print("\n".join(lines[-40:]), file=sys.stderr)
    return {"rc": run.returncode, "result": lines[-1] if lines else "", "seconds": round(time.perf_counter() - t, 1)}


def compare_search(device: str, n: int, dim: int, nq: int, k: int) -> dict:
    """Top-k from the GPU backends (torch, faiss-gpu) against faiss on the CPU, on random unit vectors."""
    rng = np.random.default_rng(0)
    vectors = _unit(rng.standard_normal((n, dim), dtype=np.float32))
    queries = _unit(vectors[rng.choice(n, nq, replace=False)] + 0.3 * rng.standard_normal((nq, dim), dtype=np.float32))
    ref_scores, ref_rows = _timed_search(DenseIndex.build(vectors, backend="faiss"), queries, k)[:2]
    out: dict = {"vectors": n, "dim": dim, "queries": nq, "k": k, "reference": "faiss (cpu)", "backends": {}}
    for backend in ["torch"] + (["faiss-gpu"] if faiss_gpu_count() else []):
        scores, rows, seconds = _timed_search(DenseIndex.build(vectors, backend=backend), queries, k)
        same = (rows == ref_rows).all(axis=1)
        # A list may differ only by swapping near-equal scores: rank-by-rank scores then still agree.
        near_ties = np.array([np.allclose(scores[q], ref_scores[q], atol=1e-5) for q in range(nq)])
        out["backends"][backend] = {
            "device": device if backend == "torch" else "cuda",
            "identical_rankings": float(same.mean()), "near_tie_swaps": int((~same & near_ties).sum()),
            "max_score_diff": float(np.abs(scores - ref_scores).max()), "search_seconds": round(seconds, 4),
        }
        out["backends"][backend]["ok"] = bool((same | near_ties).all())
    out["same_ranking"] = all(b["ok"] for b in out["backends"].values())
    return out


def measure_throughput(device: str, cfg: dict) -> dict:
    """Encode the texts with token-budget batches and with fixed batches of 8; tokens/s and peak memory each."""
    import torch

    texts = _texts(cfg["texts"])
    with tempfile.TemporaryDirectory(prefix="gpu-check-model-") as tmp:
        t = time.perf_counter()
        folder = build_qwen3_folder(Path(tmp) / "qwen3", shape=cfg["shape"], texts=texts,
                                    tokenizer_vocab=cfg["vocab"], device=device)
        out: dict = {"texts": len(texts), "model_shape": cfg["shape"] or "tiny", "dtype": cfg["dtype"],
                     "build_seconds": round(time.perf_counter() - t, 1)}
        vectors = {}
        for name, budget, batch in (("token_budget", cfg["budget"], 32), ("fixed_batch_8", 0, 8)):
            enc = Encoder(EncoderConfig(model=str(folder), device=device, dtype=cfg["dtype"], batch_size=batch,
                                        max_tokens_per_batch=budget, max_seq_length=cfg["max_seq_length"]))
            out[name], vectors[name] = _measure(enc, texts, cfg["repeats"])
            del enc
            if device == "cuda":
                torch.cuda.empty_cache()
    cosine = (vectors["token_budget"] * vectors["fixed_batch_8"]).sum(axis=1)
    out["min_cosine_between_modes"] = float(cosine.min())
    out["speedup"] = round(out["token_budget"]["tokens_per_second"] / out["fixed_batch_8"]["tokens_per_second"], 3)
    return out


def rerank_step(device: str, cfg: dict) -> dict:
    """Step 4, reranker throughput: measured on a GPU only (a 0.6B judge on a CPU says nothing about one)."""
    if not device.startswith("cuda"):
        return {"skipped": "CPU dry run: reranker throughput is measured on a GPU only"}
    return measure_rerank_throughput(device, cfg)


def measure_rerank_throughput(device: str, cfg: dict, queries: int = 4, statutes: int = 50) -> dict:
    """Pairs/s and peak GPU memory of a random Qwen3-Reranker-0.6B-shaped judge, fp16 and bf16, scoring each of
    `queries` AILA queries against `statutes` statutes in token-budget batches (the reranker's defaults)."""
    import torch

    texts = _texts(cfg["texts"])  # statutes first, the last four are queries
    pairs = [(q, s) for q in texts[-4:][:queries] for s in texts[:-4][:statutes]]
    cuda = device.startswith("cuda")
    with tempfile.TemporaryDirectory(prefix="gpu-check-reranker-") as tmp:
        shape = QWEN3_RERANKER_06B_SHAPE if cfg["shape"] else None
        folder = build_qwen3_reranker_folder(Path(tmp) / "qwen3-reranker", shape=shape, texts=texts,
                                             tokenizer_vocab=cfg["vocab"], device=device)
        out: dict = {"pairs": len(pairs), "model_shape": "Qwen3-Reranker-0.6B" if cfg["shape"] else "tiny"}
        for dtype in ("float16", "bfloat16"):
            reranker = Reranker(RerankConfig(model=str(folder), device=device, dtype=dtype,
                                             max_length=cfg["max_seq_length"]))
            reranker.score_pairs(*zip(*pairs[:4]))  # warm-up
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            scores = reranker.score_pairs(*zip(*pairs))
            if cuda:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t
            out[dtype] = {"seconds": round(seconds, 3), "pairs_per_second": round(len(pairs) / seconds, 1),
                          "max_length": reranker.max_length, "max_tokens_per_batch": reranker.token_budget,
                          "batches": len(reranker.plan(pairs)), "non_finite_scores": int((~np.isfinite(scores)).sum()),
                          "peak_gpu_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None}
            del reranker
            if cuda:
                torch.cuda.empty_cache()
    return out


def _measure(enc: Encoder, texts: list[str], repeats: int) -> tuple[dict, np.ndarray]:
    import torch

    cuda = enc.device.startswith("cuda")
    lengths = np.minimum(enc.token_lengths(texts), enc.max_seq_length)
    plan = enc.plan(texts)
    enc.encode_documents(texts[:8], progress=False)  # warm-up
    if cuda:
        torch.cuda.synchronize()
        weights = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        vectors = enc.encode_documents(texts, progress=False)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    seconds = statistics.median(times)
    tokens, padded = int(lengths.sum()), int(sum(len(b) * lengths[b].max() for b in plan))
    return {
        "max_tokens_per_batch": enc.token_budget, "batch_size": enc.config.batch_size,
        "batches": len(plan), "largest_batch": max(map(len, plan)), "tokens": tokens, "padded_tokens": padded,
        "seconds": round(seconds, 4), "tokens_per_second": round(tokens / seconds, 1),
        "texts_per_second": round(len(texts) / seconds, 2),
        "weights_mib": round(weights / 2**20, 1) if cuda else None,
        "peak_gpu_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
    }, vectors


def _texts(limit: int | None) -> list[str]:
    """AILA statutes and queries from AILA2019_DIR (the first `limit`), else the builder's statute sentences."""
    folder = os.environ.get("AILA2019_DIR")
    if not folder or not Path(folder).is_dir():
        return STATUTE_TEXT[:limit]
    texts = [d.indexed_text() for d in read_corpus(Path(folder) / "Object_statutes")]
    queries = (Path(folder) / "Query_doc.txt").read_text(encoding="utf-8").splitlines()
    texts += [line.split("||", 1)[1] for line in queries if "||" in line]
    if limit:
        texts = texts[: limit - 4] + texts[-4:]  # a few long queries too
    return texts


def _timed_search(index: DenseIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    index.search(queries[:1], k)  # warm-up (moves the matrix to the GPU)
    t = time.perf_counter()
    scores, rows = index.search(queries, k)
    return scores, rows, time.perf_counter() - t


def _unit(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def _ok(summary: dict) -> bool:
    if "error" in summary:
        return False
    tests_ok = summary.get("tests", {"rc": 0})["rc"] == 0
    return tests_ok and summary["search"]["same_ranking"] and summary["throughput"]["min_cosine_between_modes"] > 0.99


if __name__ == "__main__":
    raise SystemExit(main())

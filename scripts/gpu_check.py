"""Check the Qwen3/CUDA path on a machine with a GPU and no network; one JSON summary, rewritten after each step.

Steps: imports (what is here, what is skipped and why); the tiny-Qwen3 and GPU-path tests on the device;
dense search against an exact (flat) numpy reference: torch and torch-fp16 on the device, faiss on the CPU,
faiss-gpu flat and IVF when faiss has a GPU build, and HNSW on the CPU beside them; the card's measured bf16
matmul rate; a random model of Qwen3-Embedding-0.6B's shape (head_dim 128, rope_theta 1e6): build, load and
weights-hash time, bf16 against fp32 (cosine), sdpa against flash_attention_2 when flash_attn is installed,
tokens/s with its utilisation of the card (2 x non-embedding parameters FLOP per token), peak memory of the
device (faiss's allocations included), single-query latency; with --model PATH, the real weights against
the model card's example scores; reranker throughput (pairs/s) and peak memory of a random
Qwen3-Reranker-0.6B-shaped judge in fp16 and bf16 on (AILA query, statute) pairs (GPU only); a short
fine-tune (retrieval/finetune): LoRA on the random Qwen3-0.6B-shaped model and a full fine-tune of the bundled
MiniLM on AILA's (query window, statute) pairs, training tokens/s and peak memory. `--cpu`: the same steps on
the CPU, tiny. See docs/gpu.md and docs/finetune.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from qwen3_tiny import QWEN3_06B_SHAPE, STATUTE_TEXT, build_qwen3_folder  # noqa: E402
from tiny_rerankers import build_qwen3_reranker_folder  # noqa: E402

from retrieval.dense import gpu  # noqa: E402
from retrieval.dense.encoders import Encoder, EncoderConfig, weights_sha256  # noqa: E402
from retrieval.dense.torch_search import TorchExactSearch  # noqa: E402
from retrieval.rerank import RerankConfig, Reranker  # noqa: E402

# Qwen3-Reranker-0.6B's config.json differs from the embedding model's only in its position limit.
QWEN3_RERANKER_06B_SHAPE = {**QWEN3_06B_SHAPE, "max_position_embeddings": 40960}

MODULES = ("faiss", "bm25s", "Stemmer", "rank_bm25", "jieba", "mteb", "flash_attn", "pytest",
           "sentence_transformers", "transformers", "tokenizers", "safetensors")
TEST_NEEDS = ("pytest", "faiss", "bm25s", "Stemmer")  # the tests build BM25 legs and faiss indexes
TEST_FILES = ("tests/test_qwen3.py", "tests/test_gpu.py", "tests/test_retriever.py::test_torch_topk_matches_faiss")
DATASHEET_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0}  # dense, SXM parts (vendor datasheets)
# Qwen3-Embedding-0.6B's model card: cosine of its two example queries (with its "query" prompt) and documents.
CARD_QUERIES = ["What is the capital of China?", "Explain gravity"]
CARD_DOCUMENTS = ["The capital of China is Beijing.",
                  "Gravity is a force that attracts two bodies towards each other. It gives weight to physical "
                  "objects and is responsible for the movement of planets around the sun."]
CARD_SCORES = [[0.7646, 0.1414], [0.1355, 0.6000]]
CARD_TOLERANCE = 0.01  # bf16 on a GPU moves them by ~2e-3
# Per mode: search (vectors, dim, queries, k), HNSW vectors, model shape, tokenizer vocabulary, texts, token
# budget, max_seq_length, timed repeats, matmul size, time budget (s) for the whole run and for the tests.
SETTINGS = {
    "cpu": {"search": (3000, 64, 16, 50), "hnsw": 2000, "shape": None, "vocab": 640, "texts": 28, "budget": 2048,
            "max_seq_length": 256, "repeats": 1, "matmul": 512, "deadline": 500, "test_timeout": 400},
    "gpu": {"search": (100_000, 1024, 256, 100), "hnsw": 20_000, "shape": QWEN3_06B_SHAPE, "vocab": 16384,
            "texts": None, "budget": 16384, "max_seq_length": None, "repeats": 3, "matmul": 8192, "deadline": 540,
            "test_timeout": 200},
}


class Run:
    """The summary being built: each step's result (or error) and seconds, written to `out` after every step."""

    def __init__(self, mode: str, out: Path, deadline: float):
        self.summary: dict = {"mode": mode, "steps": {}}
        self.out, self.deadline, self.t0 = out, deadline, time.perf_counter()

    def step(self, name: str, fn, *args, skip: str | None = None) -> dict:
        """Run fn(*args) as step `name` unless skipped; an exception is recorded, not raised."""
        if skip is None and time.perf_counter() - self.t0 > self.deadline:
            skip = f"time budget of {self.deadline} s spent"
        if skip is not None:
            result = {"skipped": skip}
        else:
            t = time.perf_counter()
            with MemoryWatch() as memory:
                try:
                    result = fn(*args)
                except Exception as e:  # noqa: BLE001 - a failed step is reported and the others still run
                    result = {"error": f"{type(e).__name__}: {e}",
                              "traceback": traceback.format_exc().strip().splitlines()[-6:]}
            result["seconds"] = round(time.perf_counter() - t, 2)
            result.update(memory.result())
        self.summary["steps"][name] = result
        self.write()
        return result

    def write(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.summary, indent=2) + "\n", encoding="utf-8")


class MemoryWatch:
    """Peak device memory in use during a step (all allocations on the card: torch's and faiss's), polled every
    20 ms from a thread, and torch's own peak; nothing on a CPU."""

    def __enter__(self):
        import torch

        self.cuda = torch.cuda.is_available()
        self.peak, self.stop = 0, threading.Event()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.base = self._used()
            self.thread = threading.Thread(target=self._poll, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.cuda:
            self.thread.join()
        return False

    def _used(self) -> int:
        import torch

        free, total = torch.cuda.mem_get_info()
        return total - free

    def _poll(self) -> None:
        while not self.stop.wait(0.02):
            self.peak = max(self.peak, self._used())

    def result(self) -> dict:
        if not self.cuda:
            return {}
        import torch

        return {"device_memory_peak_mib": round(max(self.peak, self._used()) / 2**20, 1),
                "device_memory_before_mib": round(self.base / 2**20, 1),
                "torch_peak_allocated_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1)}


def main() -> int:
    """Run the steps; print the summary (also when a step failed); exit 1 unless every step that ran passed."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true", help="dry mode: the same steps on the CPU, tiny and quick")
    p.add_argument("--no-tests", action="store_true", help="skip the test step (the tests have just run)")
    p.add_argument("--model", help="a local Qwen3-Embedding-0.6B folder: check its example scores (model card)")
    p.add_argument("--out", default="results/gpu_check.json", help="the JSON summary, rewritten after each step")
    args = p.parse_args()
    mode = "cpu" if args.cpu else "gpu"
    cfg, device = SETTINGS[mode], "cpu" if args.cpu else "cuda"
    run = Run(mode, Path(args.out), cfg["deadline"])
    try:
        env = run.step("environment", environment, device)
        mods = run.step("imports", imports)
        no_device = "torch sees no CUDA device (use --cpu for the dry run)" if "error" in env else None
        missing = [m for m in TEST_NEEDS if mods.get(m) == "missing"]
        run.step("tests", run_tests, device, cfg["test_timeout"], skip=no_device or (
            "--no-tests" if args.no_tests else f"missing here: {', '.join(missing)}" if missing else None))
        run.step("search", compare_search, device, cfg, mods.get("faiss") != "missing", skip=no_device)
        matmul = run.step("matmul", matmul_rate, device, cfg["matmul"], skip=no_device)
        run.step("qwen3_shape", qwen3_shape, device, cfg, matmul, skip=no_device)
        run.step("model_card", model_card, args.model, device, skip=no_device or (None if args.model else "no --model"))
        run.step("rerank", measure_rerank_throughput, device, cfg, skip=no_device or (
            "CPU dry run: reranker throughput is measured on a GPU only" if args.cpu else None))
        run.step("finetune", measure_finetune, device, cfg, skip=no_device)
    finally:
        run.summary["ok"] = _ok(run.summary["steps"])
        run.write()
        print(json.dumps(run.summary, indent=2))
    return 0 if run.summary["ok"] else 1


def environment(device: str) -> dict:
    """Python, torch and CUDA versions, the GPU and its compute capability, faiss's GPU count."""
    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "torch_arch_list": torch.cuda.get_arch_list() if torch.cuda.is_available() else []}
    if gpu.is_cuda(device):
        if not torch.cuda.is_available():
            return {**out, "error": "torch sees no CUDA device"}
        out.update(gpu=gpu.describe(device), auto_dtype=gpu.auto_dtype(device),
                   memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1))
    try:
        out["faiss_gpus"] = gpu.faiss_gpu_count()
    except ImportError:
        out["faiss_gpus"] = None
    return out


def imports() -> dict:
    """Each module the steps may use: its version, or 'missing' (the steps that need it are skipped)."""
    import importlib.metadata as md

    out = {}
    for name in MODULES:
        if importlib.util.find_spec(name) is None:
            out[name] = "missing"
            continue
        dists = {"Stemmer": ["PyStemmer"], "rank_bm25": ["rank-bm25"], "flash_attn": ["flash-attn"],
                 "sentence_transformers": ["sentence-transformers"],
                 "faiss": ["faiss-gpu", "faiss-gpu-cuvs", "faiss-gpu-cu12", "faiss-cpu"]}.get(name, [name])
        out[name] = "present"
        for dist in dists:
            try:
                out[name] = f"{dist} {md.version(dist)}"
                break
            except md.PackageNotFoundError:
                continue
    return out


def run_tests(device: str, timeout: int) -> dict:
    """The tiny-Qwen3 and GPU-path tests with RETRIEVAL_TEST_DEVICE=device (tests that need mteb skip without it)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "not gpu_check", *TEST_FILES]
    try:
        done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "RETRIEVAL_TEST_DEVICE": device},
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = (done.stdout + done.stderr).strip().splitlines()
    out = {"rc": done.returncode, "result": lines[-1] if lines else ""}
    if done.returncode:
        out["error"] = "tests failed"
        out["tail"] = lines[-30:]
    return out


def compare_search(device: str, cfg: dict, have_faiss: bool) -> dict:
    """Top-k of each backend against exact top-k computed with numpy (float64), on random unit vectors."""
    n, dim, nq, k = cfg["search"]
    rng = np.random.default_rng(0)
    vectors = _unit(rng.standard_normal((n, dim), dtype=np.float32))
    queries = _unit(vectors[rng.choice(n, nq, replace=False)] + 0.3 * rng.standard_normal((nq, dim), dtype=np.float32))
    ref_scores, ref_rows = _exact_top(vectors, queries, k)
    out: dict = {"vectors": n, "dim": dim, "queries": nq, "k": k, "reference": "exact, numpy float64", "backends": {}}
    searchers = {f"torch ({device})": TorchExactSearch(vectors, device),
                 f"torch-fp16 ({device})": TorchExactSearch(vectors, device, "float16")}
    if have_faiss:
        searchers.update(_faiss_searchers(vectors, device))
    else:
        out["faiss"] = "skipped: faiss is not importable here"
    for name, search in searchers.items():
        out["backends"][name] = _timed(search, queries, k, ref_scores, ref_rows, exact="IVF" not in name)
    if have_faiss:
        m = cfg["hnsw"]  # HNSW on the CPU beside the GPU searches, over the first m vectors
        out["backends"][f"faiss HNSW (cpu, {m} vectors)"] = _hnsw_beside(vectors[:m], queries, k)
    out["ok"] = all(b["ok"] for b in out["backends"].values())
    return out


def _exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k (scores, rows) in float64, ties by lower row."""
    exact = queries.astype(np.float64) @ vectors.T.astype(np.float64)
    rows = np.argsort(-exact, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(exact, rows, 1), rows


def _timed(search, queries: np.ndarray, k: int, ref_scores, ref_rows, exact: bool) -> dict:
    search(queries[:1], k)  # warm-up (the GPU copy, kernels)
    t = time.perf_counter()
    scores, rows = search(queries, k)
    return _agreement(scores, rows, ref_scores, ref_rows, time.perf_counter() - t, exact)


def _faiss_searchers(vectors: np.ndarray, device: str) -> dict:
    """faiss flat on the CPU, and faiss-gpu flat and IVF when faiss has a GPU build that passes the test search."""
    from retrieval.dense.stores.faiss import FaissStore

    out = {"faiss flat (cpu)": FaissStore.build(vectors, "flat", backend="faiss").search}
    if gpu.is_cuda(device) and gpu.faiss_gpu_usable(gpu.device_index(device)):
        out["faiss-gpu flat"] = FaissStore.build(vectors, "flat", backend="faiss-gpu", device=device).search
        ivf = FaissStore.build(vectors, "ivf", backend="faiss-gpu", device=device)
        ivf.set_search_params(nprobe=64)
        out["faiss-gpu IVF (nprobe 64)"] = ivf.search
    return out


def _hnsw_beside(vectors: np.ndarray, queries: np.ndarray, k: int) -> dict:
    """An HNSW index with `auto` backend: it must stay on the CPU even when faiss reports a GPU; recall@k."""
    from retrieval.dense.stores.faiss import FaissStore

    index = FaissStore.build(vectors, "hnsw")
    ref_scores, ref_rows = _exact_top(vectors, queries, k)
    out = _timed(index.search, queries, k, ref_scores, ref_rows, exact=False)
    out.update(backend=index.backend, faiss_gpus=gpu.faiss_gpu_count())
    out["ok"] = index.backend == "faiss" and out["recall_at_k"] > 0.5
    return out


def _agreement(scores, rows, ref_scores, ref_rows, seconds: float, exact: bool) -> dict:
    """Exact backends: same rows, or rows that differ only by swapping scores equal within 1e-5 (torch-fp16 too:
    its top is re-scored in float32). Approximate ones (HNSW, IVF): recall@k against the exact reference."""
    k = ref_rows.shape[1]
    recall = float(np.mean([len(set(r) & set(t)) / k for r, t in zip(rows, ref_rows)]))
    out = {"recall_at_k": round(recall, 4), "search_seconds": round(seconds, 4)}
    if exact:
        same = (rows == ref_rows).all(axis=1)
        near = np.array([np.allclose(s, t, atol=1e-5) for s, t in zip(scores, ref_scores)])
        out.update(identical_rankings=float(same.mean()), near_tie_swaps=int((~same & near).sum()),
                   max_score_diff=float(np.abs(scores - ref_scores).max()), ok=bool((same | near).all()))
    else:
        out["ok"] = recall > 0.5
    return out


def matmul_rate(device: str, size: int) -> dict:
    """The device's measured rate of a size^3 matrix product (bf16 on CUDA, fp32 on a CPU), mean of 10 after 3."""
    import torch

    dtype = torch.bfloat16 if gpu.is_cuda(device) else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for i in range(13):
        if i == 3:
            _sync(device)
            t = time.perf_counter()
        a @ b
    _sync(device)
    seconds = (time.perf_counter() - t) / 10
    name = gpu.describe(device)
    sheet = next((v for part, v in DATASHEET_BF16_TFLOPS.items() if part in name), None)
    return {"size": size, "dtype": str(dtype).removeprefix("torch."), "tflops": round(2 * size**3 / seconds / 1e12, 4),
            "datasheet_bf16_dense_tflops": sheet}


def qwen3_shape(device: str, cfg: dict, matmul: dict) -> dict:
    """A random model of Qwen3-Embedding-0.6B's shape (tiny with --cpu): build, hash and load times, bf16 against
    fp32, flash_attention_2 against sdpa, throughput and utilisation, single-query latency."""
    texts = _texts(cfg["texts"])
    with tempfile.TemporaryDirectory(prefix="gpu-check-model-") as tmp:
        t = time.perf_counter()
        folder = str(build_qwen3_folder(Path(tmp) / "qwen3", shape=cfg["shape"], texts=texts,
                                        tokenizer_vocab=cfg["vocab"], device=device))
        out: dict = {"texts": len(texts), "build_seconds": round(time.perf_counter() - t, 2), **_shape(folder)}
        out.update(_load_and_hash(folder, device, cfg))
        enc = out.pop("encoder")
        out["token_budget"], bf16 = _throughput(enc, texts, cfg["repeats"], matmul)
        enc.token_budget, enc.config = None, replace(enc.config, batch_size=8)
        out["fixed_batch_8"], fixed = _throughput(enc, texts, cfg["repeats"], matmul)
        out["min_cosine_token_budget_vs_fixed_batch"] = _min_cosine(bf16, fixed)
        out["single_query_latency"] = _latency(enc, cfg["search"][0], device)
        del enc
        fp32 = Encoder(_config(folder, device, cfg, dtype="float32"))
        out["min_cosine_bf16_vs_fp32"] = _min_cosine(bf16, fp32.encode_documents(texts, progress=False))
        del fp32
        out["flash_attention_2"] = _flash(folder, device, cfg, texts, bf16, matmul)
    _free(device)
    out["ok"] = out["min_cosine_token_budget_vs_fixed_batch"] > 0.99 and out["min_cosine_bf16_vs_fp32"] > 0.99
    return out


def _config(folder: str, device: str, cfg: dict, **kw) -> EncoderConfig:
    base = {"model": folder, "device": device, "dtype": "bfloat16", "max_tokens_per_batch": cfg["budget"],
            "max_seq_length": cfg["max_seq_length"]}
    return EncoderConfig(**{**base, **kw})


def _shape(folder: str) -> dict:
    """The shape the saved config.json declares (rope theta wherever transformers keeps it)."""
    c = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    rope = c.get("rope_theta") or (c.get("rope_parameters") or {}).get("rope_theta")
    keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
            "intermediate_size", "vocab_size")
    return {"shape": {**{k: c.get(k) for k in keys}, "rope_theta": rope}}


def _load_and_hash(folder: str, device: str, cfg: dict) -> dict:
    """Model load seconds (bf16) and weights sha256 seconds, first and from the (size, mtime) cache."""
    weights_sha256.cache_clear()
    t = time.perf_counter()
    weights_sha256(folder)
    first = time.perf_counter() - t
    weights_sha256.cache_clear()
    t = time.perf_counter()
    weights_sha256(folder)
    cached = time.perf_counter() - t
    t = time.perf_counter()
    enc = Encoder(_config(folder, device, cfg))
    _sync(device)
    return {"encoder": enc, "load_seconds": round(time.perf_counter() - t, 2), "hash_seconds": round(first, 3),
            "hash_cached_seconds": round(cached, 4), "weights_mib": round(sum(
                f.stat().st_size for f in Path(folder).glob("*.safetensors")) / 2**20, 1), "describe": enc.describe()}


def _throughput(enc: Encoder, texts: list[str], repeats: int, matmul: dict) -> tuple[dict, np.ndarray]:
    """Tokens/s (median of `repeats`) and its share of the measured and datasheet bf16 rates."""
    tokens = enc.tokenize(texts)
    plan = enc.plan(texts)
    lengths = tokens.cut_lengths
    enc.encode_documents(texts[:8], progress=False)  # warm-up
    times = []
    for _ in range(repeats):
        _sync(enc.device)
        t = time.perf_counter()
        vectors = enc.encode_documents(texts, progress=False)
        _sync(enc.device)
        times.append(time.perf_counter() - t)
    rate = int(lengths.sum()) / statistics.median(times)
    params = sum(p.numel() for p in enc.model.parameters())
    embedding = enc.model[0].auto_model.get_input_embeddings().weight.numel()
    flops = 2 * (params - embedding) * rate
    out = {"max_tokens_per_batch": enc.token_budget, "batch_size": enc.config.batch_size, "batches": len(plan),
           "tokens": int(lengths.sum()), "padded_tokens": int(sum(len(b) * lengths[b].max() for b in plan)),
           "seconds": round(statistics.median(times), 4), "tokens_per_second": round(rate, 1),
           "parameters": params, "non_embedding_parameters": params - embedding,
           "model_tflops": round(flops / 1e12, 5)}
    if matmul.get("tflops"):
        out["utilisation_of_measured_matmul"] = round(flops / 1e12 / matmul["tflops"], 4)
    if matmul.get("datasheet_bf16_dense_tflops"):
        out["utilisation_of_datasheet_bf16"] = round(flops / 1e12 / matmul["datasheet_bf16_dense_tflops"], 4)
    return out, vectors


def _latency(enc: Encoder, n: int, device: str) -> dict:
    """One short query at a time: encode + exact top-10 over n random unit vectors on the device (median of 20)."""
    rng = np.random.default_rng(1)
    search = TorchExactSearch(_unit(rng.standard_normal((n, enc.dim), dtype=np.float32)), device)
    query = "The accused set his wife on fire over dowry demands"
    times = []
    for i in range(23):
        _sync(device)
        t = time.perf_counter()
        search(enc.encode_queries([f"{query} ({i})"]), 10)
        _sync(device)
        times.append(time.perf_counter() - t)
    return {"vectors": n, "median_ms": round(1000 * statistics.median(times[3:]), 2),
            "max_ms": round(1000 * max(times[3:]), 2)}


def _flash(folder: str, device: str, cfg: dict, texts: list[str], sdpa: np.ndarray, matmul: dict) -> dict:
    """flash_attention_2 (bf16, packed batches) against sdpa, when it can run here."""
    problem = gpu.flash_attention_problem(device, "bfloat16")
    if problem:
        return {"skipped": problem}
    enc = Encoder(_config(folder, device, cfg, attn="flash_attention_2"))
    out, vectors = _throughput(enc, texts, cfg["repeats"], matmul)
    out["min_cosine_vs_sdpa"] = _min_cosine(vectors, sdpa)
    return out


def model_card(path: str, device: str) -> dict:
    """The real Qwen3-Embedding-0.6B weights: load and hash time, and the model card's example cosine scores."""
    weights_sha256.cache_clear()
    t = time.perf_counter()
    enc = Encoder(EncoderConfig(model=path, device=device, query_instruction=(
        "Given a web search query, retrieve relevant passages that answer the query")))
    loaded = time.perf_counter() - t
    t = time.perf_counter()
    digest = weights_sha256(enc.model_path)
    hashed = time.perf_counter() - t
    scores = enc.encode_queries(CARD_QUERIES) @ enc.encode_documents(CARD_DOCUMENTS, progress=False).T
    diff = float(np.abs(scores - np.array(CARD_SCORES)).max())
    return {"describe": enc.describe(), "load_seconds": round(loaded, 2), "hash_seconds": round(hashed, 2),
            "weights_sha256": digest, "scores": np.round(scores, 4).tolist(), "card_scores": CARD_SCORES,
            "max_abs_diff": round(diff, 5), "ok": diff <= CARD_TOLERANCE}


def measure_rerank_throughput(device: str, cfg: dict, queries: int = 4, statutes: int = 50) -> dict:
    """Pairs/s and peak GPU memory of a random Qwen3-Reranker-0.6B-shaped judge, fp16 and bf16, scoring each of
    `queries` AILA queries against `statutes` statutes in token-budget batches (the reranker's defaults)."""
    import torch

    texts = _texts(cfg["texts"])  # statutes first, the last four are queries
    pairs = [(q, s) for q in texts[-4:][:queries] for s in texts[:-4][:statutes]]
    with tempfile.TemporaryDirectory(prefix="gpu-check-reranker-") as tmp:
        shape = QWEN3_RERANKER_06B_SHAPE if cfg["shape"] else None
        folder = build_qwen3_reranker_folder(Path(tmp) / "qwen3-reranker", shape=shape, texts=texts,
                                             tokenizer_vocab=cfg["vocab"], device=device)
        out: dict = {"pairs": len(pairs), "model_shape": "Qwen3-Reranker-0.6B" if cfg["shape"] else "tiny"}
        for dtype in ("float16", "bfloat16"):
            reranker = Reranker(RerankConfig(model=str(folder), device=device, dtype=dtype,
                                             max_length=cfg["max_seq_length"]))
            reranker.score_pairs(*zip(*pairs[:4]))  # warm-up
            _sync(device)
            torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            scores = reranker.score_pairs(*zip(*pairs))
            _sync(device)
            seconds = time.perf_counter() - t
            out[dtype] = {"seconds": round(seconds, 3), "pairs_per_second": round(len(pairs) / seconds, 1),
                          "max_length": reranker.max_length, "max_tokens_per_batch": reranker.token_budget,
                          "batches": len(reranker.plan(pairs)), "non_finite_scores": int((~np.isfinite(scores)).sum()),
                          "peak_gpu_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1)}
            del reranker
            _free(device)
    return out


def measure_finetune(device: str, cfg: dict) -> dict:
    """One epoch of contrastive training on AILA's (query window, statute) pairs (the builder's sentences without
    AILA2019_DIR): LoRA on a random Qwen3-Embedding-0.6B-shaped model (tiny with --cpu), then the bundled MiniLM
    in full; training tokens/s of each (anchor and positive tokens over training seconds)."""
    from retrieval.finetune.options import TrainConfig
    from retrieval.finetune.pairs import query_pairs
    from retrieval.finetune.train import train

    data = _finetune_data(cfg["texts"])
    out: dict = {"queries": len(data.queries)}
    with tempfile.TemporaryDirectory(prefix="gpu-check-finetune-") as tmp:
        qwen3 = str(build_qwen3_folder(Path(tmp) / "qwen3", shape=cfg["shape"], texts=_texts(cfg["texts"]),
                                       tokenizer_vocab=cfg["vocab"], device=device))
        for name, model, lora, length in (("qwen3_lora", qwen3, True, cfg["max_seq_length"] or 512),
                                          ("minilm_full", None, False, None)):
            enc = Encoder(EncoderConfig(model=model, device=device, dtype="float32", max_seq_length=length))
            rows = query_pairs(enc, data, list(data.queries))
            tokens = int(enc.tokenize(rows.anchors, enc.query_prompt).cut_lengths.sum()
                         + enc.tokenize(rows.positives).cut_lengths.sum())
            _sync(device)
            t = time.perf_counter()
            log = train(enc.model, rows, None, Path(tmp) / name, TrainConfig(lora=lora, validation=0.0,
                        batch_size=min(32, len(rows))), enc.query_prompt)
            _sync(device)
            seconds = time.perf_counter() - t
            out[name] = {"pairs": len(rows), "steps": log["steps"], "train_loss": round(log["train_loss"], 4),
                         "seconds": round(seconds, 2), "tokens_per_second": round(tokens / seconds, 1)}
            del enc
            _free(device)
    out["ok"] = all(out[n]["steps"] > 0 for n in ("qwen3_lora", "minilm_full"))
    return out


def _finetune_data(limit: int | None):
    """AILA's queries and judgments from AILA2019_DIR, else a query per builder sentence judging that sentence."""
    from retrieval.evaluation.datasets import RetrievalData, load_aila, subset

    folder = os.environ.get("AILA2019_DIR")
    if folder and Path(folder).is_dir():
        data = load_aila(folder)
        return subset(data, list(data.queries)[: limit // 4 if limit else None])
    corpus = {f"S{i}": {"title": "", "text": t} for i, t in enumerate(STATUTE_TEXT[:limit])}
    return RetrievalData("builder", "eng-Latn", corpus, {f"Q{i}": t[:60] for i, t in enumerate(STATUTE_TEXT[:limit])},
                         {f"Q{i}": {f"S{i}": 1} for i in range(len(corpus))})


def _texts(limit: int | None) -> list[str]:
    """AILA statutes and queries from AILA2019_DIR (the first `limit`), else the builder's statute sentences."""
    from retrieval.corpus import read_corpus

    folder = os.environ.get("AILA2019_DIR")
    if not folder or not Path(folder).is_dir():
        return STATUTE_TEXT[:limit]
    texts = [d.indexed_text() for d in read_corpus(Path(folder) / "Object_statutes")]
    queries = (Path(folder) / "Query_doc.txt").read_text(encoding="utf-8").splitlines()
    texts += [line.split("||", 1)[1] for line in queries if "||" in line]
    if limit:
        texts = texts[: limit - 4] + texts[-4:]  # a few long queries too
    return texts


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return round(float((a * b).sum(axis=1).min()), 6)


def _unit(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def _sync(device: str) -> None:
    if gpu.is_cuda(device):
        import torch

        torch.cuda.synchronize()


def _free(device: str) -> None:
    if gpu.is_cuda(device):
        gpu.free_cuda_memory()


def _ok(steps: dict) -> bool:
    """Every step that ran finished without error and passed its own test."""
    return all("error" not in r and r.get("ok", True) for r in steps.values())


if __name__ == "__main__":
    raise SystemExit(main())

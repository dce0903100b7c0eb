"""The BM25 build as whole processes: `python -m retrieval build --legs bm25` beside raw bm25s, same corpus.

Each side is one child process from start to exit (start-up, reading the JSONL corpus, analysis,
indexing, writing the index), timed by wall clock, its peak resident memory taken from the
kernel's VmHWM of its largest process and, sampled every 50 ms, the sum over its whole tree (the
project's analysis workers included). Raw bm25s tokenizes the way MTEB's BM25 baseline
does. Query latency is then measured on both saved indexes in this process, and the two
indexes' scores are compared query by query.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..index.format import prefers_mmap
from ..retriever import HybridRetriever
from . import synthetic
from .measure import MB, latency

# MTEB's baseline-bm25s: bm25s's tokenizer with English stopwords and the Snowball stemmer, Lucene BM25
RAW_BM25S = """
import json, sys, bm25s, Stemmer
texts = []
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line); t, x = r["title"], r["text"]
    texts.append(x if (not t or t in x) else f"{t} {x}")
tok = bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)
m = bm25s.BM25(method="lucene", k1=1.5, b=0.75); m.index(tok, show_progress=False); m.save(sys.argv[2], allow_pickle=False)
"""
SAMPLE_S = 0.05  # seconds between memory polls


def compare(n: int, queries: list[str], repeats: int, budget_s: float, work: Path, seed: int = 0) -> dict:
    """Both builds at `n` synthetic passages (the best of up to `repeats` runs each), then query latency."""
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.jsonl"
    synthetic.write_jsonl(corpus, synthetic.iter_documents(n, seed))
    ours, raw = work / "ours", work / "raw"
    project = [sys.executable, "-m", "retrieval", "build", str(corpus), "--legs", "bm25", "--language", "en",
               "--out", str(ours)]
    out = {"n": n, "corpus_mb": corpus.stat().st_size / MB,
           "project": best_of(project, ours, repeats, budget_s),
           "raw_bm25s": best_of([sys.executable, "-c", RAW_BM25S, str(corpus), str(raw)], raw, repeats, budget_s)}
    corpus.unlink()
    out.update(_queries(ours, raw, queries))
    shutil.rmtree(work)
    return out


def best_of(command: list[str], output: Path, repeats: int, budget_s: float) -> dict:
    """Run `command` up to `repeats` times (again only while a run takes under `budget_s`); the best figures."""
    runs = []
    for _ in range(repeats):
        shutil.rmtree(output, ignore_errors=True)
        runs.append(run_process(command))
        if runs[-1]["seconds"] > budget_s:
            break
    return {"seconds": min(r["seconds"] for r in runs), "peak_rss_mb": min(r["peak_rss_mb"] for r in runs),
            "tree_peak_rss_mb": min(r["tree_peak_rss_mb"] for r in runs), "runs": len(runs)}


def run_process(command: list[str]) -> dict:
    """Wall seconds and peak memory (MB) of one child process run to its end; raises if it fails.

    Peaks are polled from /proc: each process's VmHWM (its own peak since exec; the kernel's rusage
    would report this big parent's size for any child smaller than it) and the sum of VmRSS over
    the process and its descendants.
    """
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    peaks: dict[int, int] = {}
    tree_peak = 0
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env)
        while child.poll() is None:
            now = 0
            for pid in _tree(child.pid):
                rss, hwm = _memory(pid)
                now += rss
                peaks[pid] = max(peaks.get(pid, 0), hwm)
            tree_peak = max(tree_peak, now)
            time.sleep(SAMPLE_S)
        seconds = time.perf_counter() - start
        if child.returncode:
            err.seek(0)
            raise RuntimeError(f"{' '.join(command[:4])} failed: {err.read().decode(errors='replace')[-500:]}")
    peak = max(peaks.values(), default=0)
    return {"seconds": seconds, "peak_rss_mb": peak / MB, "tree_peak_rss_mb": max(tree_peak, peak) / MB}


def _tree(pid: int) -> list[int]:
    """A process and its descendants (Linux /proc/PID/task/PID/children)."""
    out, frontier = [], [pid]
    while frontier:
        out += frontier
        found = []
        for p in frontier:
            try:
                found += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
            except OSError:
                pass
        frontier = found
    return out


def _memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in bytes; zeros once it is gone."""
    values = {"VmRSS:": 0, "VmHWM:": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(maxsplit=1)[0] if line else ""
            if key in values:
                values[key] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return values["VmRSS:"], values["VmHWM:"]


def _queries(ours: Path, raw: Path, queries: list[str]) -> dict:
    """Query p50 on both indexes (depth min(1000, n)), and the largest score difference between them."""
    import bm25s
    import Stemmer

    retriever = HybridRetriever.load(ours, verify=False)
    model = bm25s.BM25.load(str(raw), mmap=prefers_mmap(retriever.info), show_progress=False)  # as ours loads
    stemmer = Stemmer.Stemmer("english")
    depth = retriever.depth()

    def raw_tokens(q: str):
        return bm25s.tokenize([q], stopwords="en", stemmer=stemmer, show_progress=False, return_ids=False)[0]

    def ours_top(q: str):
        return retriever.order.top(retriever.leg["bm25"].scores(q), depth, positive=True)

    diff = max(float(np.abs(retriever.leg["bm25"].scores(q) - _raw_scores(model, raw_tokens(q))).max()) for q in queries)
    return {"depth": depth, "max_score_diff": diff, "query": {
        "project_leg_rankings": latency(lambda q: retriever.leg_rankings([q], ["bm25"]), queries, 1),
        "project_top_positive": latency(ours_top, queries, 1),
        "raw_bm25s_retrieve": latency(lambda q: model.retrieve([raw_tokens(q)], k=depth, show_progress=False),
                                      queries, 1),
    }}


def _raw_scores(model, tokens: list[str]) -> np.ndarray:
    ids = model.get_tokens_ids(tokens)
    return model.get_scores(ids) if ids else np.zeros(model.scores["num_docs"], np.float32)

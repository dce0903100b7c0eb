"""Speed and scale, measured: how build, query, load and memory costs grow with the corpus.

`run_perf` generates synthetic corpora of each size (`synthetic`), measures every component
through the project's own code (`suites`), and writes performance.json, performance.md and
log-log plots (`report`). `python -m retrieval perf` and `scripts/perf.py` call it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..dense.stores import faiss as dense
from ..index import format as store
from ..legs.dense import DenseLeg
from ..lexical.postings import default_workers
from ..retriever import HybridRetriever, library_versions
from . import bm25_build, report, suites, synthetic
from .measure import MB, cpu_seconds, highest_rss, machine, other_cpu_share, return_freed_memory

FULL_SIZES = (1000, 10_000, 100_000, 1_000_000)
BM25_BUILD_SIZES = (100_000, 300_000, 1_000_000)


@dataclass(frozen=True)
class PerfConfig:
    """What to measure: corpus sizes, runs per figure, queries per latency run, AILA folder."""

    sizes: tuple[int, ...] = FULL_SIZES
    repeats: int = 3
    queries: int = 200
    aila_dir: Path | None = None
    quick: bool = False  # tiny sizes; AILA end to end on its first 30 statutes only
    seed: int = 0
    dim: int = 384
    rank_bm25_budget_s: float = 600.0  # rank-bm25 is skipped at sizes estimated to take longer
    build_budget_s: float = 120.0  # a build (or load, save) that takes longer is run once
    bm25_build_sizes: tuple[int, ...] = BM25_BUILD_SIZES  # whole-process BM25 builds beside raw bm25s

    def __post_init__(self):
        if not self.sizes or min(self.sizes) < 2:
            raise ValueError(f"corpus sizes must be at least 2, got {self.sizes}")
        if self.repeats < 1 or self.queries < 1:
            raise ValueError("repeats and queries must be at least 1")

    @classmethod
    def quick_config(cls) -> PerfConfig:
        """Tiny sizes, one run, 20 queries: a smoke test of the whole benchmark."""
        return cls(sizes=(200, 1000), repeats=1, queries=20, quick=True, bm25_build_sizes=(1000,))


def run_perf(config: PerfConfig, out_dir: Path) -> list[Path]:
    """Measure every size in `config`; write performance.json, performance.md and plots into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return_freed_memory()
    started, cpu_start = time.perf_counter(), cpu_seconds()
    result: dict = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(), "versions": _versions(),
        "config": {**asdict(config), "aila_dir": str(config.aila_dir) if config.aila_dir else None},
        "rules": _rules(), "sizes": [],
    }
    with tempfile.TemporaryDirectory(prefix="retrieval-perf-") as tmp:
        for n in sorted(set(config.sizes)):
            result["sizes"].append(_measure_size(n, config, Path(tmp), result["sizes"]))
        result["bm25_build"] = _bm25_builds(config, Path(tmp))
        _say("fusion")
        result["fusion"] = suites.fusion_cost(config.repeats)
        if config.aila_dir:
            _say("AILA end to end with MiniLM")
            result["aila"] = suites.aila(config.aila_dir, config.queries, config.repeats, Path(tmp),
                                         statutes=30 if config.quick else None)
        else:
            result["aila"] = {"skipped": "no AILA 2019 folder given (--aila-dir or AILA2019_DIR)"}
    result["machine"]["load_average_end"] = list(os.getloadavg())
    result["wall_seconds"] = time.perf_counter() - started
    result["machine"]["other_processes_cpu_share"] = other_cpu_share(
        cpu_start, cpu_seconds(), result["wall_seconds"], result["machine"]["logical_cores"] or 1)
    json_path = out_dir / "performance.json"
    json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return [json_path, *report.write(result, out_dir)]


def run_bm25_builds(config: PerfConfig, out_dir: Path) -> list[Path]:
    """Only the BM25 builds beside raw bm25s (at `config.bm25_build_sizes`), added to the performance.json
    of an earlier full run in `out_dir`; performance.md and the plots are written again from it."""
    json_path = out_dir / "performance.json"
    if not json_path.is_file():
        raise ValueError(f"{json_path}: no earlier perf run to add the BM25 builds to (run `retrieval perf` "
                         "first)")
    result = json.loads(json_path.read_text(encoding="utf-8"))
    return_freed_memory()
    with tempfile.TemporaryDirectory(prefix="retrieval-perf-") as tmp:
        result["bm25_build"] = _bm25_builds(config, Path(tmp))
    json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return [json_path, *report.write(result, out_dir)]


def _bm25_builds(config: PerfConfig, tmp: Path) -> dict:
    """The whole-process BM25 builds at each size, with when and on what machine load they ran."""
    started, cpu_start = time.perf_counter(), cpu_seconds()
    out: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "load_average": list(os.getloadavg()), "workers": default_workers(), "sizes": []}
    queries = synthetic.queries(config.queries, config.seed)
    for n in sorted(set(config.bm25_build_sizes)):
        _say(f"n={n}: BM25 build, project vs raw bm25s (whole processes)")
        out["sizes"].append(bm25_build.compare(n, queries, config.repeats, config.build_budget_s,
                                               tmp / f"bm25-build-{n}", config.seed))
    wall = time.perf_counter() - started
    out["wall_seconds"], out["load_average_end"] = wall, list(os.getloadavg())
    out["other_processes_cpu_share"] = other_cpu_share(cpu_start, cpu_seconds(), wall, os.cpu_count() or 1)
    return out


def _measure_size(n: int, config: PerfConfig, tmp: Path, previous: list[dict]) -> dict:
    started = time.perf_counter()
    work = tmp / f"n{n}"
    work.mkdir()
    _say(f"n={n}: generating")
    docs = synthetic.documents(n, config.seed)
    queries = synthetic.queries(config.queries, config.seed)
    vectors = synthetic.vectors(n, config.dim, config.seed)
    query_vectors = synthetic.query_vectors(config.queries, config.dim, config.seed)
    out: dict = {"n": n, "generate_seconds": time.perf_counter() - started,
                 "words_mean": sum(len(d.text.split()) for d in docs[:2000]) / min(n, 2000)}
    _say(f"n={n}: bm25s")
    out["bm25s"], lexical = suites.bm25(docs, queries, "bm25s", config.repeats, config.build_budget_s)
    estimate = _rank_bm25_estimate(n, previous)
    if estimate and estimate["estimated_seconds"] > config.rank_bm25_budget_s:
        out["rank_bm25"] = {"skipped": True, **estimate}
    else:
        _say(f"n={n}: rank-bm25")
        out["rank_bm25"], _ = suites.bm25(docs, queries, "rank-bm25", config.repeats, config.build_budget_s)
    _say(f"n={n}: FAISS flat, HNSW, IVF")
    out["dense"], index = suites.dense(vectors, query_vectors, config.repeats, config.build_budget_s, work)
    _say(f"n={n}: index folder save and load")
    bm25 = lexical.leg["bm25"]
    retriever = HybridRetriever(docs, {"dense": DenseLeg(index, bm25.order, n_docs=n), "bm25": bm25}, info=lexical.info)
    out["index"] = suites.index_folder(retriever, queries, query_vectors, config.repeats,
                                       config.build_budget_s, work)
    shutil.rmtree(work)
    out["wall_seconds"] = time.perf_counter() - started
    peak = highest_rss()
    out["process_peak_rss_mb"] = None if peak is None else peak / MB  # the whole benchmark so far
    return out


def _rank_bm25_estimate(n: int, previous: list[dict]) -> dict | None:
    """Seconds rank-bm25 would take at `n`, scaled linearly from the largest size it ran at."""
    done = [p for p in previous if not p["rank_bm25"].get("skipped")]
    if not done:
        return None
    last = done[-1]
    build, query = last["rank_bm25"]["build"], last["rank_bm25"]["query"]
    seconds = build["seconds"] * build["runs"] + query["mean_ms"] / 1000 * query["calls"] * query["runs"]
    return {"estimated_seconds": seconds * n / last["n"], "from_n": last["n"]}


def _rules() -> dict:
    """The size rules and index parameters in force (what the defaults are)."""
    return {
        "exact_max_bytes": dense.EXACT_MAX_BYTES, "mmap_min_bytes": store.MMAP_MIN_BYTES,
        "hnsw": {"m": suites.DEFAULTS.hnsw_m, "ef_construction": suites.DEFAULTS.ef_construction,
                 "ef_search": suites.DEFAULTS.ef_search},
        "ivf": {"nlist": "4 * sqrt(n), at most n / 39", "nprobe": suites.DEFAULTS.nprobe,
                "train_per_list": dense.IVF_TRAIN_PER_LIST},
        "recall_target": suites.RECALL_TARGET,
    }


def _versions() -> dict:
    import importlib.metadata as md

    return {**library_versions(), "matplotlib": md.version("matplotlib")}


def _say(message: str) -> None:
    print(f"perf {time.strftime('%H:%M:%S')}: {message}", file=sys.stderr, flush=True)


__all__ = ["BM25_BUILD_SIZES", "FULL_SIZES", "PerfConfig", "run_bm25_builds", "run_perf"]

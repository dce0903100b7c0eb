"""Timing and memory primitives for the benchmark: repeated runs, latency percentiles, peak RSS."""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MB = 1 << 20
WARMUP = 3  # untimed calls before each latency measurement
_highest_rss = 0  # the process's peak RSS before the last reset of VmHWM


def return_freed_memory() -> None:
    """Make glibc give freed large blocks back to the OS, so one run's freed memory does not hide the
    next run's growth (glibc otherwise raises its mmap threshold and keeps such blocks)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 128 << 10)  # M_MMAP_THRESHOLD, fixed: large blocks mapped, unmapped when freed
    libc.mallopt(-1, 128 << 10)  # M_TRIM_THRESHOLD: trim the heap's free top


def rss_bytes() -> int | None:
    """Resident set size of this process now (Linux), else None."""
    return _status_kb("VmRSS")


@dataclass
class Run:
    """One timed run: wall seconds, peak RSS growth and RSS still held after it (bytes; None off Linux)."""

    seconds: float
    peak_rss: int | None
    held_rss: int | None


def timed_run(fn: Callable[[], object]) -> tuple[Run, object]:
    """Run `fn` once: its wall time and, on Linux, its peak RSS growth (VmHWM reset first)."""
    gc.collect()
    reset = _reset_peak_rss()
    before = rss_bytes()
    t = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t
    peak, after = _status_kb("VmHWM"), rss_bytes()
    if not reset or before is None or peak is None or after is None:
        return Run(seconds, None, None), result
    return Run(seconds, peak - before, after - before), result


def repeated_runs(fn: Callable[[], object], repeats: int, budget_s: float) -> tuple[list[Run], object]:
    """Up to `repeats` runs of `fn`, stopping once a run took over `budget_s`; the last result is kept."""
    runs: list[Run] = []
    result = None
    for _ in range(repeats):
        result = None  # let the previous result go before the next build
        run, result = timed_run(fn)
        runs.append(run)
        if run.seconds > budget_s:
            break
    return runs, result


def summarise_runs(runs: list[Run]) -> dict:
    """Median seconds and memory (MB) over runs, and how many runs there were."""
    def med(values: Iterable[float | None]) -> float | None:
        values = [v for v in values if v is not None]
        return float(np.median(values)) if values else None

    peak, held = med(r.peak_rss for r in runs), med(r.held_rss for r in runs)
    return {"seconds": med(r.seconds for r in runs), "runs": len(runs),
            "peak_rss_mb": None if peak is None else peak / MB, "held_rss_mb": None if held is None else held / MB}


def latency(fn: Callable[[object], object], items: list, repeats: int, warmup: int = WARMUP) -> dict:
    """Per-call latency over `items`: median over `repeats` passes of each pass's p50, p95 and mean (ms)."""
    for item in items[:warmup]:
        fn(item)
    passes = []
    for _ in range(repeats):
        times = np.empty(len(items))
        for i, item in enumerate(items):
            t = time.perf_counter()
            fn(item)
            times[i] = time.perf_counter() - t
        passes.append((np.percentile(times, 50), np.percentile(times, 95), times.mean()))
    p50, p95, mean = (float(np.median(col)) * 1000 for col in zip(*passes))
    return {"p50_ms": p50, "p95_ms": p95, "mean_ms": mean, "calls": len(items), "runs": repeats}


def machine() -> dict:
    """CPU model, cores, memory, OS, load average and thread settings of this machine."""
    import faiss
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor() or platform.machine())
    mem_kb = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                   if line.startswith("MemTotal:")), None)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu, "logical_cores": os.cpu_count(), "usable_cores": usable,
        "memory_gib": None if mem_kb is None else round(mem_kb / (1 << 20), 1),
        "os": platform.platform(), "load_average": list(os.getloadavg()),
        "torch_threads": torch.get_num_threads(), "faiss_threads": faiss.omp_get_max_threads(),
    }


def cpu_seconds() -> dict[str, float] | None:
    """CPU seconds used so far by the whole machine (/proc/stat, every core) and by this process with its
    children: the difference over a run is what other processes took from it. None off Linux."""
    fields = _read("/proc/stat").split("\n", 1)[0].split()
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
    busy = sum(ticks) - ticks[3] - ticks[4]
    own = os.times()
    return {"machine": busy / os.sysconf("SC_CLK_TCK"),
            "own": own.user + own.system + own.children_user + own.children_system}


def other_cpu_share(start: dict[str, float] | None, end: dict[str, float] | None, wall: float,
                    cores: int) -> float | None:
    """Share of the machine's CPU capacity that other processes used between two `cpu_seconds()` readings."""
    if start is None or end is None or wall <= 0:
        return None
    other = (end["machine"] - start["machine"]) - (end["own"] - start["own"])
    return max(other, 0.0) / (wall * cores)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _status_kb(field: str) -> int | None:
    for line in _read("/proc/self/status").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return None


def highest_rss() -> int | None:
    """This process's peak RSS so far (bytes), across the resets that per-run peaks need."""
    peak = _status_kb("VmHWM")
    return None if peak is None else max(peak, _highest_rss)


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS; False where Linux does not allow it."""
    global _highest_rss
    _highest_rss = highest_rss() or 0
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def shared_cpu_note(result: dict) -> str:
    """One sentence on the machine and its load during a run (from `machine()`, `other_processes_cpu_share`,
    `load_average_end` and `wall_seconds` in `result`), for a report block."""
    m, share = result["machine"], result["other_processes_cpu_share"]
    others = "not recorded" if share is None else f"{share:.0%} of the CPU time"
    loads = "; ".join(f"{label} {', '.join(f'{v:.2f}' for v in values)}" for label, values in
                      (("start", m["load_average"]), ("end", result["load_average_end"])))
    return (f"Machine: {m['cpu']}, {m['logical_cores']} cores shared with other jobs (other processes used {others} "
            f"during the run; load average {loads}); whole run {result['wall_seconds'] / 60:.1f} min.")


def run_context(started: float, cpu_start: dict[str, float] | None) -> dict:
    """The run's wall time, load at the end and the CPU share other processes took, since `started`
    (perf_counter) and `cpu_start` (`cpu_seconds()`)."""
    wall = time.perf_counter() - started
    return {"wall_seconds": wall, "load_average_end": list(os.getloadavg()),
            "other_processes_cpu_share": other_cpu_share(cpu_start, cpu_seconds(), wall, os.cpu_count() or 1)}

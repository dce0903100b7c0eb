"""Wall time of `retrieval bench` against MTEB's own dense, BM25 and HybridSearch evaluations,
measured in one sitting: repeats alternate the contenders so drift in machine load hits all alike.

Contenders (each a fresh Python process, timed from launch to exit):
  bench            python -m retrieval bench --out TMP        (one process, texts encoded once)
  mteb_one_process python scripts/mteb_separately.py          (MTEB's three evaluations in one process)
  mteb_processes   python scripts/mteb_separately.py --runs R, once per run (as three separate MTEB runs)

    python scripts/bench_vs_mteb.py [--aila-dir DIR] [--model M] [--repeats 3] [--json]
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

ROOT = Path(__file__).resolve().parent.parent
MTEB_RUNS = ("dense", "bm25", "hybrid_rrf")


def timed(cmd: list[str]) -> float:
    """Seconds from launching `cmd` to its exit; a failed command stops the comparison."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["no error output"])[-1]
        sys.exit(f"bench_vs_mteb: {' '.join(cmd)} failed ({proc.returncode}): {last}")
    return time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--aila-dir", default=os.environ.get("AILA2019_DIR"), help="AILA 2019 release folder")
    p.add_argument("--model", help="sentence-transformers folder or Hub id (default: the bundled all-MiniLM-L6-v2)")
    p.add_argument("--repeats", type=int, default=3, help="rounds; medians are reported")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args()
    if args.repeats < 1:
        p.error(f"--repeats must be >= 1, got {args.repeats}")
    common = (["--aila-dir", args.aila_dir] if args.aila_dir else []) + (["--model", args.model] if args.model else [])
    py = sys.executable
    seconds: dict[str, list[float]] = {"bench": [], "mteb_one_process": [], "mteb_processes": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            seconds["bench"].append(timed([py, "-m", "retrieval", "bench", "--out", f"{tmp}/b{i}", *common]))
            seconds["mteb_one_process"].append(timed([py, "scripts/mteb_separately.py", *common]))
            seconds["mteb_processes"].append(sum(timed([py, "scripts/mteb_separately.py", "--runs", r, *common])
                                                 for r in MTEB_RUNS))
            print(f"round {i + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in seconds.items()),
                  file=sys.stderr)
    med = {k: statistics.median(v) for k, v in seconds.items()}
    out = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores",
        "load_average_end": os.getloadavg(),
        "repeats": args.repeats,
        "seconds": seconds,
        "median_seconds": med,
        "ratio_bench_to_mteb_one_process": med["bench"] / med["mteb_one_process"],
        "ratio_bench_to_mteb_processes": med["bench"] / med["mteb_processes"],
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in med.items():
            print(f"{k:<17} median {v:.1f}s  (runs: {', '.join(f'{s:.1f}' for s in seconds[k])})")
        print(f"bench / MTEB in one process: {out['ratio_bench_to_mteb_one_process']:.2f}; "
              f"bench / MTEB as three processes: {out['ratio_bench_to_mteb_processes']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

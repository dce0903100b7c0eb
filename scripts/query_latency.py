"""Per-query latency on the AILA 2019 index with the bundled MiniLM loaded (README's query-latency row).

Builds the 197-statute index (dense + BM25), saves and loads it, then times
`HybridRetriever.search(query, k=10, mode)` for each of the 50 AILA queries in every mode, after
timing the query encoding alone (the same measurement as `perf`'s AILA section, retrieval/perf/suites.py).
Hybrid runs the dense leg (query encoding included) and BM25, so it cannot be faster than dense: a
difference between the two is noise. Prints one JSON object.

  python scripts/query_latency.py --aila-dir "$AILA2019_DIR" [--queries 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from retrieval.perf.measure import cpu_seconds, machine, other_cpu_share
from retrieval.perf.suites import aila


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n")[-1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--aila-dir", default=os.environ.get("AILA2019_DIR"),
                   help="AILA 2019 release folder (default: $AILA2019_DIR)")
    p.add_argument("--queries", type=int, default=50, help="timed queries, the AILA queries cycled (default: 50)")
    p.add_argument("--repeats", type=int, default=3, help="passes over the queries, the median reported (default: 3)")
    args = p.parse_args(argv)
    if not args.aila_dir or not Path(args.aila_dir, "Object_statutes").is_dir():
        print("error: give --aila-dir (or AILA2019_DIR): the AILA 2019 folder with Object_statutes/", file=sys.stderr)
        return 2
    info, started, cpu_start = machine(), time.perf_counter(), cpu_seconds()
    with tempfile.TemporaryDirectory(prefix="query-latency-") as work:
        result = aila(Path(args.aila_dir), args.queries, args.repeats, Path(work))
    wall = time.perf_counter() - started
    result["machine"] = {**info, "other_processes_cpu_share": other_cpu_share(
        cpu_start, cpu_seconds(), wall, info["logical_cores"] or 1), "wall_seconds": wall}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

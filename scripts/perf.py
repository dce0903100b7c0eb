"""Speed and scale benchmark: the same as `python -m retrieval perf` (see docs/performance.md).

    python scripts/perf.py --sizes 1000,10000,100000,1000000 --repeats 3 --out-dir docs
"""

from __future__ import annotations

import sys

from retrieval.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["perf", *sys.argv[1:]]))

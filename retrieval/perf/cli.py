"""The `perf` command: the main suite (`retrieval perf`), and one subcommand per extra benchmark
(`passages`, `updates`, `filtered`, `milvus`, `bm25-builds`). Parsing and writing the results only."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from ..cli_help import command
from . import PerfConfig, run_bm25_builds, run_perf

PERF_OUT = "results/perf"  # perf's default folder: a newcomer's run leaves docs/ (the published figures) alone
OUT_HELP = (f"folder for the results (default: {PERF_OUT}, outside the tracked files; --out-dir docs rewrites "
            "the published figures)")
MOVED = {"--passages": "passages N", "--updates": "updates N", "--filtered": "filtered N",
         "--milvus": "milvus SIZES", "--bm25-builds-only": "bm25-builds"}  # the mode flags before subcommands


def perf_parser(sub) -> None:
    """The `perf` command and its subcommands."""
    f = command(sub, "perf", "measure build, query, load and memory costs against corpus size", """
retrieval perf --quick                           # a smoke test, into results/perf
retrieval perf --sizes 1000,10000,100000,1000000 --repeats 3 --out-dir docs   # the published figures
retrieval perf passages 1000000 --out-dir docs   # one of the extra benchmarks (retrieval perf passages --help)""")
    f.add_argument("--sizes", help="comma-separated corpus sizes (default 1000,10000,100000,1000000)")
    f.add_argument("--repeats", type=int, help="runs per figure, the median reported (default 3)")
    f.add_argument("--queries", type=int, help="queries per latency run (default 200)")
    f.add_argument("--out-dir", default=PERF_OUT, help=OUT_HELP.replace("the results", "performance.md, "
                                                                          "performance.json and plots"))
    f.add_argument("--aila-dir", default=os.environ.get("AILA2019_DIR"),
                   help="AILA 2019 release folder for the end-to-end MiniLM figures (default: $AILA2019_DIR)")
    f.add_argument("--quick", action="store_true", help="tiny sizes and one repeat (a smoke test)")
    f.add_argument("--bm25-build-sizes", help="sizes of the whole-process BM25 builds beside raw bm25s "
                                              "(default 100000,300000,1000000)")
    for flag in MOVED:
        f.add_argument(flag, nargs="?", action=_Moved, help=argparse.SUPPRESS)
    f.set_defaults(func=cmd_perf)
    modes = f.add_subparsers(dest="mode", metavar="BENCHMARK",
                             help="an extra benchmark instead of the main suite (default: none, the main suite): "
                                  "passages, updates, filtered, milvus or bm25-builds")
    _modes(modes)


class _Moved(argparse.Action):
    """An old mode flag of `perf`: one line naming the subcommand that replaced it, exit 2."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.exit(2, f"error: perf {option_string} is now a subcommand: retrieval perf {MOVED[option_string]}\n")


def _mode(modes, name: str, summary: str, example: str, target: tuple[str, str], queries: int | None,
          repeats: int | None, func) -> argparse.ArgumentParser:
    """One subcommand: its target (N or SIZES), --out-dir, and --queries, --repeats where it has them (given
    before the subcommand's name, they hold too)."""
    p = command(modes, name, summary, f"retrieval perf {name} {example}")
    dest, text = target
    p.add_argument(dest.lower(), type=int if dest == "N" else str, metavar=dest, help=text)
    p.add_argument("--out-dir", default=argparse.SUPPRESS, help=OUT_HELP)
    if queries:
        p.add_argument("--queries", type=int, default=argparse.SUPPRESS,
                       help=f"queries per latency run (default {queries})")
    if repeats:
        p.add_argument("--repeats", type=int, default=argparse.SUPPRESS,
                       help=f"runs per figure, the median reported (default {repeats})")
    p.set_defaults(func=func)
    return p


def _modes(modes) -> None:
    """The extra benchmarks, one subcommand each."""
    _mode(modes, "passages", "the chunked dense leg at scale: statute ranking latency and recall vs exact "
          "(performance-passages.json/.md)", "1000000 --out-dir docs",
          ("N", "chunked statutes (windows + titles) as N passages in an HNSW store, at least 10"), 200, 3, cmd_passages)
    _mode(modes, "updates", "update 1 in 100 passages of an index vs rebuilding it: the wall-time ratio update / "
          "rebuild (performance-updates.json, a block in performance.md)", "100000 --out-dir docs",
          ("N", "passages of the index built (MiniLM + BM25), at least 100"), None, None, cmd_live)
    _mode(modes, "filtered", "filtered search latency at 1, 10 and 50 percent selectivity, exact and HNSW "
          "(performance-filtered.json, a block in performance.md)", "100000 --queries 100 --out-dir docs",
          ("N", "synthetic statutes, at least 100"), 200, 3, cmd_live)
    _mode(modes, "milvus", "embedded vs Milvus Lite build seconds and hybrid query latency (milvus-scale.json/.md)",
          "10000,100000 --queries 100", ("SIZES", "comma-separated corpus sizes"), 100, 1, cmd_milvus)
    b = command(modes, "bm25-builds", "only the whole-process BM25 builds beside raw bm25s, added to the "
                                      "performance.json already in --out-dir", """
retrieval perf bm25-builds --sizes 1000000 --repeats 1 --out-dir docs""")
    b.add_argument("--sizes", help="comma-separated corpus sizes (default 100000,300000,1000000)")
    b.add_argument("--out-dir", default=argparse.SUPPRESS, help=OUT_HELP)
    b.add_argument("--repeats", type=int, default=argparse.SUPPRESS, help="runs per figure, the median reported "
                                                                          "(default 3)")
    b.set_defaults(func=cmd_bm25_builds)


def _sizes(text: str | None, default: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(s) for s in text.split(",")) if text else default


def cmd_perf(args: argparse.Namespace) -> int:
    """The main suite: write performance.md, performance.json and plots."""
    base = PerfConfig.quick_config() if args.quick else PerfConfig()
    config = PerfConfig(sizes=_sizes(args.sizes, base.sizes), repeats=args.repeats or base.repeats,
                        queries=args.queries or base.queries, aila_dir=Path(args.aila_dir) if args.aila_dir else None,
                        quick=args.quick, bm25_build_sizes=_sizes(args.bm25_build_sizes, base.bm25_build_sizes))
    return _wrote(run_perf(config, Path(args.out_dir)))


def cmd_bm25_builds(args: argparse.Namespace) -> int:
    """`perf bm25-builds`: the BM25 builds alone, added to an earlier run's performance.json."""
    base = PerfConfig()
    config = PerfConfig(repeats=args.repeats or base.repeats, bm25_build_sizes=_sizes(args.sizes, base.bm25_build_sizes))
    return _wrote(run_bm25_builds(config, Path(args.out_dir)))


def _wrote(written: list[Path]) -> int:
    print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0


def cmd_milvus(args: argparse.Namespace) -> int:
    """`perf milvus SIZES`: embedded vs Milvus Lite build and hybrid query latency; milvus-scale.json / .md."""
    from . import milvus

    result = milvus.measure(list(_sizes(args.sizes, ())), n_queries=args.queries or 100, repeats=args.repeats or 1)
    out = _out(args, result)
    (out / "milvus-scale.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    table = milvus.report(result)
    (out / "milvus-scale.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


def cmd_passages(args: argparse.Namespace) -> int:
    """`perf passages N`: the chunked dense leg at scale; writes performance-passages.json and .md."""
    from . import passages

    if args.n < 10:
        raise ValueError(f"perf passages: N must be at least 10, got {args.n}")
    result = passages.measure(args.n, n_queries=args.queries or 200, repeats=args.repeats or 3)
    out = _out(args, result)
    (out / "performance-passages.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    (out / "performance-passages.md").write_text(passages.report(result), encoding="utf-8")
    passages.embed(out / "performance.md", result)
    print(passages.markdown(result))
    return 0


def cmd_live(args: argparse.Namespace) -> int:
    """`perf updates N` (update 1% of an N-passage index vs rebuild) or `perf filtered N` (filtered search
    latency by selectivity): writes performance-updates.json or performance-filtered.json and a block in
    performance.md."""
    from . import blocks, filtered, updates

    if args.n < 100:
        raise ValueError(f"perf {args.mode}: N must be at least 100, got {args.n}")
    if args.mode == "updates":
        module = updates
        with tempfile.TemporaryDirectory(prefix="retrieval-perf-updates-") as work:
            result = updates.measure(args.n, Path(work))
    else:
        module = filtered
        result = filtered.measure(args.n, n_queries=args.queries or 200, repeats=args.repeats or 3)
    out = _out(args, result)
    (out / f"performance-{args.mode}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    text = module.markdown(result)
    blocks.embed_block(out / "performance.md", module.BEGIN, module.END, text)
    print(text)
    return 0


def _out(args: argparse.Namespace, result: dict) -> Path:
    """The --out-dir folder, made; `result` records the command that produced it."""
    result["command"] = " ".join(["python -m retrieval", *sys.argv[1:]])
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out

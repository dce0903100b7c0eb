"""A bounded load test of /api/search on loopback: fixed request count (or seconds) and concurrency, then it stops.

    python scripts/load_test.py INDEX [INDEX ...] [--requests 2000] [--concurrency 32] [--json]
    python scripts/load_test.py --url http://127.0.0.1:8000 [...]
    python scripts/load_test.py INDEX --compare --aila AILA_DIR [--seconds 10] [--levels 1,8,32,64] [--out F.json]

With index folders it starts `python -m retrieval serve` on a free loopback port, waits for
/api/health, runs, and stops the server; with --url it uses a server already running.
Reports throughput, latency percentiles (p50/p95/p99) and the count of failed requests.
--compare serves the index twice at once, one search at a time (--max-batch 1) and batched
(the defaults), and measures both side by side, point by point, for AILA's statute titles
(short queries) and case descriptions (long ones).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import numpy as np

QUERIES = [
    "dowry death of a married woman within seven years of marriage",
    "the accused set his wife on fire over dowry demands",
    "murder with intention of causing death",
    "theft of movable property without consent",
    "cheating and dishonestly inducing delivery of property",
    "criminal trespass into a house at night",
    "cruelty by husband or relatives of husband",
    "abetment of suicide",
    "kidnapping a minor from lawful guardianship",
    "criminal breach of trust by a public servant",
    "rioting armed with deadly weapon",
    "grievous hurt caused by dangerous weapons",
    "writ of habeas corpus by the high court",
    "right to life and personal liberty",
    "forgery of a valuable security",
    "punishment for rape",
]


PATHS = {"one-at-a-time": ["--max-batch", "1", "--batch-wait-ms", "0"], "batched": []}  # serve options


async def _run(url: str, queries: Sequence[str], requests: int, concurrency: int, mode: str, k: int,
               seconds: float | None = None) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    todo = itertools.count() if seconds else iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def worker() -> None:
            for i in todo:
                if seconds and time.perf_counter() - t0 > seconds:
                    break
                body = {"q": queries[i % len(queries)], "mode": mode, "k": k}
                t = time.perf_counter()
                try:
                    response = await client.post("/api/search", json=body)
                    failure = None if response.status_code == 200 else f"HTTP {response.status_code}"
                except httpx.HTTPError as e:
                    failure = type(e).__name__
                latencies.append(time.perf_counter() - t)
                if failure:
                    errors[failure] = errors.get(failure, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    ms = np.asarray(latencies) * 1000
    return {
        "url": url, "mode": mode, "k": k, "requests": len(latencies), "concurrency": concurrency,
        "errors": sum(errors.values()), "error_kinds": errors, "seconds": round(wall, 3),
        "throughput_rps": round(len(latencies) / wall, 2),
        "latency_ms": {name: round(float(np.percentile(ms, q)), 2)
                       for name, q in (("p50", 50), ("p95", 95), ("p99", 99))} | {"max": round(float(ms.max()), 2)},
    }


def run(url: str, queries: Sequence[str] = QUERIES, requests: int = 2000, concurrency: int = 32,
        mode: str = "hybrid", k: int = 10, seconds: float | None = None) -> dict:
    """Send `requests` searches (or as many as `seconds` allow), `concurrency` at a time, cycling through
    `queries` (POST /api/search); returns the figures."""
    if requests < 1 or concurrency < 1 or (seconds is not None and seconds <= 0):
        raise ValueError("requests, concurrency and seconds must be >= 1 (seconds > 0)")
    return asyncio.run(_run(url.rstrip("/"), list(queries), requests, concurrency, mode, k, seconds))


def aila_queries(folder: str | Path) -> dict[str, list[str]]:
    """AILA 2019's statute titles (short typed questions) and its case descriptions (long), as query sets."""
    folder = Path(folder)
    titles = [p.read_text(encoding="utf-8").splitlines()[0].removeprefix("Title:").strip()
              for p in sorted((folder / "Object_statutes").glob("*.txt"))]
    cases = [line.split("||", 1)[1].strip() for line in (folder / "Query_doc.txt").read_text(encoding="utf-8").splitlines()
             if "||" in line]
    if not titles or not cases:
        raise ValueError(f"{folder}: no statute titles or no case descriptions (Object_statutes/, Query_doc.txt)")
    return {"AILA statute titles": titles, "AILA case descriptions": cases}


def compare(indexes: Sequence[str], sets: dict[str, list[str]], levels: Sequence[int], seconds: float,
            mode: str, k: int, log: Path) -> list[dict]:
    """Both serving paths (PATHS) started at once and measured point by point: per query set and concurrency,
    one-at-a-time then batched, so load from other jobs falls on both alike."""
    rows = []
    with ExitStack() as stack:
        urls = {name: stack.enter_context(server(indexes, log.with_suffix(f".{name}.log"), extra=options))
                for name, options in PATHS.items()}
        for set_name, queries in sets.items():
            for level in levels:
                for name, url in urls.items():
                    report = run(url, queries, concurrency=level, mode=mode, k=k, seconds=seconds)
                    rows.append({"path": name, "queries": set_name, **report})
                    print(_line(rows[-1]), file=sys.stderr, flush=True)
    return rows


def _line(r: dict) -> str:
    lat = r["latency_ms"]
    return (f"{r['queries']} | {r['path']} | {r['concurrency']} | {r['throughput_rps']} | {lat['p50']} | {lat['p95']} "
            f"| {lat['p99']} | {r['requests']} | {r['errors']}")


def comparison_table(rows: list[dict]) -> str:
    """A Markdown table of the comparison, with batched / one-at-a-time throughput per point."""
    one = {(r["queries"], r["concurrency"]): r["throughput_rps"] for r in rows if r["path"] == "one-at-a-time"}
    out = ["| queries | path | concurrency | req/s | p50 ms | p95 ms | p99 ms | requests | errors | batched / one |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        ratio = r["throughput_rps"] / one[r["queries"], r["concurrency"]] if r["path"] == "batched" else None
        out.append(f"| {_line(r)} | {'' if ratio is None else f'{ratio:.2f}x'} |")
    return "\n".join(out)


def plot_comparison(rows: list[dict], path: Path) -> None:
    """Requests/s against concurrency, one panel per query set, a line per serving path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(r["queries"] for r in rows))
    fig, axes = plt.subplots(1, len(sets), figsize=(5 * len(sets), 3.6), squeeze=False)
    for ax, name in zip(axes[0], sets):
        for serving in PATHS:
            points = [(r["concurrency"], r["throughput_rps"]) for r in rows if (r["queries"], r["path"]) == (name, serving)]
            ax.plot(*zip(*points), marker="o", label=serving)
        ax.set(title=name, xlabel="concurrent clients", ylabel="requests/s", xscale="log")
        ax.set_xticks([r["concurrency"] for r in rows if r["queries"] == name], minor=False)
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@contextmanager
def server(indexes: Sequence[str], log: Path, startup_seconds: float = 300, extra: Sequence[str] = ()) -> Iterator[str]:
    """`python -m retrieval serve INDEX...` on a free loopback port; yields its URL, stops it on exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "retrieval", "serve", *indexes, "--port", str(port), *extra],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + startup_seconds
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited ({proc.returncode}); see {log}")
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer /api/health in {startup_seconds:.0f}s; see {log}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("index", nargs="*", help="index folder(s) to serve for the test")
    p.add_argument("--url", help="an already running server instead of index folders")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--seconds", type=float, help="run this long instead of a request count")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--mode", default="hybrid", choices=("hybrid", "dense", "bm25"))
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--queries", help="a UTF-8 file with one query per line (default: built-in English queries)")
    p.add_argument("--server-log", default="load_test_server.log", help="where the started server logs")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--compare", action="store_true", help="one-at-a-time vs batched serving, side by side")
    p.add_argument("--aila", help="with --compare: the AILA 2019 folder (statute titles and case descriptions)")
    p.add_argument("--levels", default="1,8,32,64", help="with --compare: concurrency levels (default 1,8,32,64)")
    p.add_argument("--out", help="with --compare: write the rows to this JSON file")
    p.add_argument("--plot", help="with --compare: draw requests/s against concurrency into this PNG")
    args = p.parse_args()
    if bool(args.index) == bool(args.url) or (args.compare and not (args.index and args.aila)):
        p.error("give index folder(s) or --url, not both; --compare needs index folder(s) and --aila")
    try:
        return _compare(args) if args.compare else _single(args)
    except (RuntimeError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def _single(args: argparse.Namespace) -> int:
    queries = QUERIES
    if args.queries:
        queries = [q for q in Path(args.queries).read_text(encoding="utf-8").splitlines() if q.strip()]
    if args.url:
        report = run(args.url, queries, args.requests, args.concurrency, args.mode, args.k, args.seconds)
    else:
        with server(args.index, Path(args.server_log)) as url:
            report = run(url, queries, args.requests, args.concurrency, args.mode, args.k, args.seconds)
    if args.json:
        print(json.dumps(report))
    else:
        lat = report["latency_ms"]
        print(f"{report['requests']} requests, concurrency {report['concurrency']}, {report['mode']}: "
              f"{report['throughput_rps']} req/s over {report['seconds']} s; latency ms p50 {lat['p50']} "
              f"p95 {lat['p95']} p99 {lat['p99']} max {lat['max']}; errors {report['errors']}")
    return 1 if report["errors"] else 0


def _compare(args: argparse.Namespace) -> int:
    levels = [int(x) for x in args.levels.split(",")]
    rows = compare(args.index, aila_queries(args.aila), levels, args.seconds or 10.0, args.mode, args.k,
                   Path(args.server_log))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    if args.plot:
        plot_comparison(rows, Path(args.plot))
    print(comparison_table(rows))
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())

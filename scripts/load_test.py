"""A bounded load test of /api/search on loopback: fixed request count and concurrency, then it stops.

    python scripts/load_test.py INDEX [INDEX ...] [--requests 2000] [--concurrency 32] [--json]
    python scripts/load_test.py --url http://127.0.0.1:8000 [...]

With index folders it starts `python -m retrieval serve` on a free loopback port, waits for
/api/health, runs, and stops the server; with --url it uses a server already running.
Reports throughput, latency percentiles (p50/p95/p99) and the count of failed requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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


async def _run(url: str, queries: Sequence[str], requests: int, concurrency: int, mode: str, k: int) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    todo = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def worker() -> None:
            for i in todo:
                params = {"q": queries[i % len(queries)], "mode": mode, "k": k}
                t = time.perf_counter()
                try:
                    response = await client.get("/api/search", params=params)
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
        "url": url, "mode": mode, "k": k, "requests": requests, "concurrency": concurrency,
        "errors": sum(errors.values()), "error_kinds": errors, "seconds": round(wall, 3),
        "throughput_rps": round(requests / wall, 2),
        "latency_ms": {name: round(float(np.percentile(ms, q)), 2)
                       for name, q in (("p50", 50), ("p95", 95), ("p99", 99))} | {"max": round(float(ms.max()), 2)},
    }


def run(url: str, queries: Sequence[str] = QUERIES, requests: int = 2000, concurrency: int = 32,
        mode: str = "hybrid", k: int = 10) -> dict:
    """Send `requests` searches, `concurrency` at a time, cycling through `queries`; returns the figures."""
    if requests < 1 or concurrency < 1:
        raise ValueError("requests and concurrency must be >= 1")
    return asyncio.run(_run(url.rstrip("/"), list(queries), requests, concurrency, mode, k))


@contextmanager
def server(indexes: Sequence[str], log: Path, startup_seconds: float = 300) -> Iterator[str]:
    """`python -m retrieval serve INDEX...` on a free loopback port; yields its URL, stops it on exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "retrieval", "serve", *indexes, "--port", str(port)],
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
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--mode", default="hybrid", choices=("hybrid", "dense", "bm25"))
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--queries", help="a UTF-8 file with one query per line (default: built-in English queries)")
    p.add_argument("--server-log", default="load_test_server.log", help="where the started server logs")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    if bool(args.index) == bool(args.url):
        p.error("give index folder(s) or --url, not both")
    queries = QUERIES
    if args.queries:
        queries = [q for q in Path(args.queries).read_text(encoding="utf-8").splitlines() if q.strip()]
    try:
        if args.url:
            report = run(args.url, queries, args.requests, args.concurrency, args.mode, args.k)
        else:
            with server(args.index, Path(args.server_log)) as url:
                report = run(url, queries, args.requests, args.concurrency, args.mode, args.k)
    except (RuntimeError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report))
    else:
        lat = report["latency_ms"]
        print(f"{report['requests']} requests, concurrency {report['concurrency']}, {report['mode']}: "
              f"{report['throughput_rps']} req/s over {report['seconds']} s; latency ms p50 {lat['p50']} "
              f"p95 {lat['p95']} p99 {lat['p99']} max {lat['max']}; errors {report['errors']}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())

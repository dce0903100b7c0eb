"""A bounded load test of /api/search on loopback: fixed request count (or seconds) and concurrency, then it stops.

    python scripts/load_test.py INDEX [INDEX ...] [--requests 2000] [--concurrency 32] [--json]
    python scripts/load_test.py --url http://127.0.0.1:8000 [...]
    python scripts/load_test.py INDEX --compare --aila AILA_DIR [--seconds 10] [--levels 1,8,32,64] [--out F.json]
        [--plot F.png] [--overload-seconds 30] [--reload-seconds 20] [--rebuild-from CORPUS]

With index folders it starts `python -m retrieval serve` on a free loopback port, waits for
/api/health, runs, and stops the server; with --url it uses a server already running.
Reports throughput, latency percentiles (p50/p95/p99) and the count of failed requests.
--compare serves the index twice at once, one search at a time (--max-batch 1) and batched
(the defaults), and measures both side by side, point by point, for AILA's statute titles
(short queries) and case descriptions (long ones). Then, on the batched server (which serves a
copy of the first index folder): overload, statute titles arriving at a fixed rate (open loop,
each on its own connection) of twice the best batched requests/s, counting every status; and a reload in the middle of a
steady load: the copy is rebuilt (`python -m retrieval build CORPUS --out COPY`), POST
/api/admin/reload switches to it, and every request must succeed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Iterator, Sequence
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


SERVER_LOG = "results/load_test/server.log"  # untracked, as every result
PATHS = {"one-at-a-time": ["--max-batch", "1", "--batch-wait-ms", "0"], "batched": []}  # serve options


Sample = tuple[float, float, int | str]  # (seconds from the start when sent, latency in seconds, status or error)


async def _timed(request: Awaitable[int], t0: float, samples: list[Sample]) -> None:
    """Await one request; record when it was sent, how long it took and its status (or the error's name)."""
    t = time.perf_counter()
    try:
        status: int | str = await request
    except (httpx.HTTPError, OSError, ValueError) as e:
        status = type(e).__name__
    samples.append((t - t0, time.perf_counter() - t, status))


async def _status(client: httpx.AsyncClient, body: dict) -> int:
    return (await client.post("/api/search", json=body)).status_code


async def _post_alone(host: str, port: int, body: dict) -> int:
    """POST /api/search on a connection of its own, closed after the answer: light enough for an open-loop sender
    to keep its schedule at hundreds of requests/s on a busy CPU, which an httpx client with thousands of
    requests in flight did not (docs/serving.md)."""
    data = json.dumps(body).encode()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"POST /api/search HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
        await writer.drain()
        head = (await reader.readline()).split()
        if len(head) < 2 or not head[1].isdigit():
            raise ConnectionError("the connection closed before an HTTP status line")
        await reader.read()
        return int(head[1])
    finally:
        writer.close()


def _percentiles(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99/max in milliseconds (None for no values)."""
    ms = np.asarray(seconds, dtype=float) * 1000
    if not ms.size:
        return dict.fromkeys(("p50", "p95", "p99", "max"))
    return {name: round(float(np.percentile(ms, q)), 2)
            for name, q in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))}


async def _run(url: str, queries: Sequence[str], requests: int, concurrency: int, mode: str, k: int,
               seconds: float | None = None) -> dict:
    samples: list[Sample] = []
    todo = itertools.count() if seconds else iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def worker() -> None:
            for i in todo:
                if seconds and time.perf_counter() - t0 > seconds:
                    break
                await _timed(_status(client, {"q": queries[i % len(queries)], "mode": mode, "k": k}), t0, samples)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    errors: dict[str, int] = {}
    for *_, status in samples:
        if status != 200:
            kind = f"HTTP {status}" if isinstance(status, int) else status
            errors[kind] = errors.get(kind, 0) + 1
    return {
        "url": url, "mode": mode, "k": k, "requests": len(samples), "concurrency": concurrency,
        "errors": sum(errors.values()), "error_kinds": errors, "seconds": round(wall, 3),
        "throughput_rps": round(len(samples) / wall, 2), "latency_ms": _percentiles([s[1] for s in samples]),
    }


def run(url: str, queries: Sequence[str] = QUERIES, requests: int = 2000, concurrency: int = 32,
        mode: str = "hybrid", k: int = 10, seconds: float | None = None) -> dict:
    """Send `requests` searches (or as many as `seconds` allow), `concurrency` at a time, cycling through
    `queries` (POST /api/search); returns the figures."""
    if requests < 1 or concurrency < 1 or (seconds is not None and seconds <= 0):
        raise ValueError("requests, concurrency and seconds must be >= 1 (seconds > 0)")
    return asyncio.run(_run(url.rstrip("/"), list(queries), requests, concurrency, mode, k, seconds))


def _status_counts(samples: Sequence[Sample]) -> dict[str, int]:
    """How many requests ended in each status (or transport error), the key as text."""
    counts: dict[str, int] = {}
    for *_, status in samples:
        counts[str(status)] = counts.get(str(status), 0) + 1
    return dict(sorted(counts.items()))


def _window(samples: Sequence[Sample], start: float, end: float) -> dict:
    """Requests sent in [start, end) seconds and answered 200: their count and latency percentiles."""
    ms = [latency for t, latency, status in samples if start <= t < end and status == 200]
    return {"requests": len(ms), **_percentiles(ms)}


def _timeline(samples: Sequence[Sample], bin_s: float = 1.0) -> list[dict]:
    """Per `bin_s` of send time: requests sent, answered 200, refused 503, other; accepted p50/p99 ms."""
    bins: dict[int, list[Sample]] = {}
    for sample in samples:
        bins.setdefault(int(sample[0] // bin_s), []).append(sample)
    out = []
    for i, group in sorted(bins.items()):
        ok = [latency for _, latency, status in group if status == 200]
        refused = sum(status == 503 for *_, status in group)
        lat = _percentiles(ok)
        out.append({"t": round(i * bin_s, 3), "sent": len(group), "ok": len(ok), "503": refused,
                    "other": len(group) - len(ok) - refused, "p50_ms": lat["p50"], "p99_ms": lat["p99"]})
    return out


async def _open_loop(url: str, queries: Sequence[str], rate: float, seconds: float, mode: str,
                     k: int) -> tuple[list[Sample], float, float]:
    """Send searches at `rate` per second for `seconds` whatever the answers (open loop), each on its own
    connection, then wait for all; returns the samples, the seconds the sending took and the most the sender fell
    behind its schedule."""
    samples: list[Sample] = []
    tasks, lag = [], 0.0
    where = urllib.parse.urlsplit(url)
    t0 = time.perf_counter()
    for i in range(max(1, round(rate * seconds))):
        late = time.perf_counter() - t0 - i / rate
        if late < 0:
            await asyncio.sleep(-late)
        lag = max(lag, late)
        request = _post_alone(where.hostname, where.port, {"q": queries[i % len(queries)], "mode": mode, "k": k})
        tasks.append(asyncio.create_task(_timed(request, t0, samples)))
    sending = time.perf_counter() - t0
    await asyncio.gather(*tasks)
    return samples, sending, lag


def overload(url: str, queries: Sequence[str], rate: float, seconds: float = 30, mode: str = "hybrid",
             k: int = 10) -> dict:
    """Searches offered at a fixed `rate` (meant: twice the sustainable one) for `seconds`: every status counted,
    accepted requests' latency, the share of 503s; `unexpected` counts answers other than 200, 503 and 504."""
    samples, sending, lag = asyncio.run(_open_loop(url.rstrip("/"), list(queries), rate, seconds, mode, k))
    counts = _status_counts(samples)
    return {
        "target_rps": round(rate, 2), "seconds": seconds, "requests": len(samples),
        "offered_rps": round(len(samples) / sending, 2), "max_send_lag_ms": round(lag * 1000, 2),
        "status_counts": counts, "share_503": round(counts.get("503", 0) / len(samples), 4),
        "accepted_latency_ms": _percentiles([latency for _, latency, status in samples if status == 200]),
        "unexpected": sum(n for status, n in counts.items() if status not in ("200", "503", "504")),
        "timeline": _timeline(samples),
    }


async def _generation(client: httpx.AsyncClient, index: str) -> str | None:
    """The generation /metrics says `index` serves."""
    text = (await client.get("/metrics")).text
    found = re.search(rf'^retrieval_index_generation\{{index="{re.escape(index)}",generation="([^"]*)"\}}', text, re.M)
    return found.group(1) if found else None


async def _rebuild_then_reload(client: httpx.AsyncClient, rebuild: Sequence[str], t0: float, events: dict) -> dict:
    """Run the rebuild command, then POST /api/admin/reload; note when each began and ended (seconds from t0)."""
    events["rebuild_start"] = round(time.perf_counter() - t0, 3)
    proc = await asyncio.create_subprocess_exec(*rebuild, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise RuntimeError(f"the rebuild exited {proc.returncode}: {tail[0]}")
    events["rebuild_end"] = round(time.perf_counter() - t0, 3)
    reply = await client.post("/api/admin/reload")
    events["reloaded"] = round(time.perf_counter() - t0, 3)
    reply.raise_for_status()
    return reply.json()


async def _reload_run(url: str, queries: Sequence[str], index: str, rebuild: Sequence[str], seconds: float,
                      concurrency: int, mode: str, k: int) -> dict:
    samples: list[Sample] = []
    events: dict = {}
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        before = await _generation(client, index)
        t0 = time.perf_counter()

        async def worker(first: int) -> None:
            for i in itertools.count(first, concurrency):
                if stop.is_set():
                    break
                body = {"q": queries[i % len(queries)], "mode": mode, "k": k, "index": index}
                await _timed(_status(client, body), t0, samples)

        async def switch() -> dict:
            try:
                await asyncio.sleep(seconds / 4)
                reply = await _rebuild_then_reload(client, rebuild, t0, events)
                await asyncio.sleep(max(seconds - (time.perf_counter() - t0), seconds / 4))
                return reply
            finally:
                stop.set()

        reply, *_ = await asyncio.gather(switch(), *(worker(i) for i in range(concurrency)))
        events["end"] = round(time.perf_counter() - t0, 3)
        after = await _generation(client, index)
    return {"samples": samples, "events": events, "before": before, "after": after, "reply": reply}


def reload_during_load(url: str, queries: Sequence[str], index: str, rebuild: Sequence[str], seconds: float = 20,
                       concurrency: int = 8, mode: str = "hybrid", k: int = 10) -> dict:
    """A steady load (`concurrency` clients) on `index` for at least `seconds`; a quarter in, `rebuild` (a command
    that writes the served folder's next generation) runs, then POST /api/admin/reload. Reports the generation
    before and after (from /metrics), every status (`failed`: all but 200), latency before, during the rebuild,
    in the 2 s after the switch and after it."""
    measured = asyncio.run(_reload_run(url.rstrip("/"), list(queries), index, list(rebuild), seconds, concurrency,
                                       mode, k))
    samples, ev = measured["samples"], measured["events"]
    windows = {"before rebuild": (0, ev["rebuild_start"]), "during rebuild": (ev["rebuild_start"], ev["rebuild_end"]),
               "2 s after reload": (ev["reloaded"], ev["reloaded"] + 2), "after reload": (ev["reloaded"], ev["end"])}
    counts = _status_counts(samples)
    statuses = [entry["status"] for entry in measured["reply"]["indexes"] if entry["index"] == index]
    return {
        "index": index, "concurrency": concurrency, "requests": len(samples), "status_counts": counts,
        "failed": len(samples) - counts.get("200", 0), "generation_before": measured["before"],
        "generation_after": measured["after"], "reload_status": statuses[0] if statuses else None, "events": ev,
        "latency_ms": {name: _window(samples, *span) for name, span in windows.items()},
        "timeline": _timeline(samples),
    }


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


def compare(urls: dict[str, str], sets: dict[str, list[str]], levels: Sequence[int], seconds: float, mode: str,
            k: int) -> list[dict]:
    """The serving paths (name -> URL of a server started with PATHS[name]) measured point by point: per query set
    and concurrency, one-at-a-time then batched, so load from other jobs falls on both alike."""
    rows = []
    for set_name, queries in sets.items():
        for level in levels:
            for name, url in urls.items():
                report = run(url, queries, concurrency=level, mode=mode, k=k, seconds=seconds)
                rows.append({"path": name, "queries": set_name, **report})
                print(_line(rows[-1]), file=sys.stderr, flush=True)
    return rows


def phases(url: str, folder: Path, sets: dict[str, list[str]], rows: list[dict], args: argparse.Namespace) -> dict:
    """After the comparison, on the batched server (which serves `folder`, a copy), with the first query set:
    overload at twice its best batched requests/s, then a rebuild of `folder` and a reload during a steady load."""
    out = {}
    set_name, queries = next(iter(sets.items()))
    if args.overload_seconds:
        best = max(r["throughput_rps"] for r in rows if (r["path"], r["queries"]) == ("batched", set_name))
        out["overload"] = {"sustainable_rps": best, **overload(url, queries, 2 * best, args.overload_seconds, args.mode,
                                                               args.k)}
    if args.reload_seconds:
        corpus = args.rebuild_from or str(Path(args.aila) / "Object_statutes")
        rebuild = [sys.executable, "-m", "retrieval", "build", corpus, "--out", str(folder)]
        out["reload"] = reload_during_load(url, queries, folder.name, rebuild, args.reload_seconds,
                                           args.reload_concurrency, args.mode, args.k)
    return out


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


def phase_lines(result: dict) -> list[str]:
    """One line each for the overload and reload phases, as printed after the table."""
    lines = []
    if "overload" in result:
        o = result["overload"]
        lat = o["accepted_latency_ms"]
        lines.append(f"overload: {o['target_rps']} req/s offered (2 x {o['sustainable_rps']}) for {o['seconds']} s, "
                     f"sent at {o['offered_rps']} req/s (sender at most {o['max_send_lag_ms']} ms late): "
                     f"{o['requests']} requests, statuses {o['status_counts']}, 503 share {o['share_503']:.1%}; "
                     f"accepted p50 {lat['p50']} p95 {lat['p95']} p99 {lat['p99']} ms; other than 200/503/504: "
                     f"{o['unexpected']}")
    if "reload" in result:
        r = result["reload"]
        windows = "; ".join(f"{name}: {w['requests']} ok, p50 {w['p50']} p99 {w['p99']} max {w['max']} ms"
                            for name, w in r["latency_ms"].items())
        lines.append(f"reload: {r['generation_before']} -> {r['generation_after']} ({r['reload_status']}), "
                     f"{r['requests']} requests at concurrency {r['concurrency']}, failed {r['failed']}, "
                     f"statuses {r['status_counts']}; events (s) {r['events']}; {windows}")
    return lines


def plot(result: dict, path: Path) -> None:
    """Requests/s against concurrency, one panel per query set, a line per serving path; below, when measured,
    latency over time under overload and around the reload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["compare"]
    sets = list(dict.fromkeys(r["queries"] for r in rows))
    below = [name for name in ("overload", "reload") if name in result]
    ncols = max(len(sets), len(below))
    fig, axes = plt.subplots(1 + bool(below), ncols, figsize=(5 * ncols, 3.6 * (1 + bool(below))), squeeze=False)
    for ax, name in zip(axes[0], sets):
        for serving in PATHS:
            points = [(r["concurrency"], r["throughput_rps"]) for r in rows if (r["queries"], r["path"]) == (name, serving)]
            ax.plot(*zip(*points), marker="o", label=serving)
        ax.set(title=name, xlabel="concurrent clients", ylabel="requests/s", xscale="log")
        ax.set_xticks([r["concurrency"] for r in rows if r["queries"] == name], minor=False)
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend()
    for ax, name in zip(axes[-1] if below else [], below):
        _plot_timeline(ax, result[name], name)
    for ax in axes.flat[len(sets):ncols]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_timeline(ax, phase: dict, name: str) -> None:
    """Accepted requests' p50/p99 latency per second of the phase; 503s per second (overload) or the rebuild
    and the reload marked (reload)."""
    line = phase["timeline"]
    t = [b["t"] for b in line]
    ax.plot(t, [b["p50_ms"] for b in line], label="p50 (200s)")
    ax.plot(t, [b["p99_ms"] for b in line], label="p99 (200s)")
    if name == "overload":
        ax.set_title(f"overload: {phase['target_rps']} req/s offered (2x sustainable)")
        twin = ax.twinx()
        twin.bar(t, [b["503"] for b in line], width=0.8, align="edge", alpha=0.25, color="grey", label="503s")
        ax.set_zorder(twin.get_zorder() + 1)  # the latency lines over the bars
        ax.patch.set_visible(False)
        twin.set(ylabel="503 answers per second", ylim=(0, max(1, *(b["503"] for b in line)) * 1.1))
        twin.legend(loc="upper right", fontsize="small")
    else:
        ev = phase["events"]
        ax.axvspan(ev["rebuild_start"], ev["rebuild_end"], alpha=0.15, color="grey", label="rebuild running")
        ax.axvline(ev["reloaded"], color="red", linestyle="--", label="reload (switch)")
        ax.set_title(f"reload under load: {phase['generation_before']} -> {phase['generation_after']}, "
                     f"{phase['failed']} failed", fontsize="medium")
    ax.set(xlabel="seconds (by send time)", ylabel="latency ms")
    ax.legend(loc="upper left", fontsize="small")


@contextmanager
def server(indexes: Sequence[str], log: Path, startup_seconds: float = 300, extra: Sequence[str] = ()) -> Iterator[str]:
    """`python -m retrieval serve INDEX...` on a free loopback port; yields its URL, stops it on exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    log.parent.mkdir(parents=True, exist_ok=True)
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
    p.add_argument("--server-log", default=SERVER_LOG,
                   help=f"where the started server logs (default: {SERVER_LOG}; --compare: one file per path beside it)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--compare", action="store_true", help="one-at-a-time vs batched serving, side by side")
    p.add_argument("--aila", help="with --compare: the AILA 2019 folder (statute titles and case descriptions)")
    p.add_argument("--levels", default="1,8,32,64", help="with --compare: concurrency levels (default 1,8,32,64)")
    p.add_argument("--out", help="with --compare: write the results to this JSON file")
    p.add_argument("--plot", help="with --compare: draw requests/s against concurrency (and the phases) into this PNG")
    p.add_argument("--overload-seconds", type=float, default=30,
                   help="with --compare: then offer twice the best batched rate this long (default 30; 0: skip)")
    p.add_argument("--reload-seconds", type=float, default=20,
                   help="with --compare: then rebuild and reload during a load of at least this long (default 20; "
                        "0: skip)")
    p.add_argument("--reload-concurrency", type=int, default=8, help="clients during the reload (default 8)")
    p.add_argument("--rebuild-from", help="corpus the reload phase rebuilds the index from (default: AILA's statutes)")
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
    sets = aila_queries(args.aila)
    log = Path(args.server_log)
    with tempfile.TemporaryDirectory(prefix="load-test-") as tmp, ExitStack() as stack:
        copies = [Path(shutil.copytree(ix, Path(tmp) / Path(ix).resolve().name)) for ix in args.index]
        urls = {name: stack.enter_context(server(args.index if name == "one-at-a-time" else copies,
                                                 log.with_suffix(f".{name}.log"), extra=options))
                for name, options in PATHS.items()}
        result = {"compare": compare(urls, sets, levels, args.seconds or 10.0, args.mode, args.k)}
        result |= phases(urls["batched"], copies[0], sets, result["compare"], args)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    if args.plot:
        plot(result, Path(args.plot))
    print(comparison_table(result["compare"]))
    print("\n".join(phase_lines(result)))
    return 0 if ok(result) else 1


def ok(result: dict) -> bool:
    """No failed request in the comparison, nothing but 200/503/504 under overload, none failed across the reload,
    and the reload switched generation."""
    r = result.get("reload")
    reloaded = r is None or (not r["failed"] and r["reload_status"] == "reloaded"
                             and r["generation_before"] != r["generation_after"])
    overloaded = not result.get("overload", {}).get("unexpected")
    return reloaded and overloaded and not any(row["errors"] for row in result["compare"])


if __name__ == "__main__":
    raise SystemExit(main())

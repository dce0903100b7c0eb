"""Serving many users: micro-batching, BM25 beside encoder batches, 503/504, POST search, reload, metrics, access log."""

from __future__ import annotations

import json
import logging
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from project_scripts import load_script

from retrieval.cli import main
from retrieval.corpus import Document
from retrieval.index.format import read_manifest
from retrieval.retriever import HybridRetriever
from retrieval.web import background, create_app
from retrieval.web.batching import BatchConfig, Batcher, QueueFull
from retrieval.web.served import ServedIndex

QUERIES = ["dowry death of a married woman", "murder with intention", "theft of movable property", "cheating",
           "criminal trespass at night", "burns within seven years of marriage", "deceiving a person", "homicide"]
ROOT = Path(__file__).resolve().parents[1]
PROM = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eEinfINa]+( \d+)?$')


@pytest.fixture(scope="module")
def retriever(tiny_index):
    return HybridRetriever.load(tiny_index)


def _ids_scores(hits):
    return [(h.id, round(h.score, 5)) for h in hits]


@pytest.fixture
def blocked_dense(retriever, monkeypatch):
    """The dense leg signals `inside` and waits for `go` before ranking: an encoder batch as long as a test likes."""
    gate = SimpleNamespace(go=threading.Event(), inside=threading.Event())
    leg = retriever.leg["dense"]
    rank = leg.rank

    def slow(*args, **kwargs):
        gate.inside.set()
        assert gate.go.wait(30)
        return rank(*args, **kwargs)

    monkeypatch.setattr(leg, "rank", slow)
    yield gate
    gate.go.set()


def _behind_a_blocked_search(batcher: Batcher, gate: SimpleNamespace, asks: list[tuple]) -> list:
    """Answers to `asks` (query, k, mode) submitted while the worker is held in a dense search: one gather."""
    first = batcher.submit("warm", 1, "dense")
    assert gate.inside.wait(30)
    futures = [batcher.submit(*ask) for ask in asks]
    gate.go.set()
    assert first.result(30).batch_size == 1
    return [f.result(30) for f in futures]


def test_a_batch_gives_each_search_its_own_hits(retriever, blocked_dense):
    batcher = Batcher("t", lambda: retriever, BatchConfig(wait_ms=5, max_batch=len(QUERIES)))
    answers = _behind_a_blocked_search(batcher, blocked_dense, [(q, 3, "hybrid") for q in QUERIES])
    assert [a.batch_size for a in answers] == [len(QUERIES)] * len(QUERIES)
    assert [_ids_scores(a.hits) for a in answers] == [_ids_scores(retriever.search(q, k=3)) for q in QUERIES]


def test_mixed_modes_and_k_are_grouped_and_match_searches_alone(retriever, blocked_dense):
    batcher = Batcher("t", lambda: retriever, BatchConfig(wait_ms=5, max_batch=64))
    asks = [(q, k, mode) for q in QUERIES[:4] for k in (1, 4) for mode in ("hybrid", "dense", "bm25")]
    answers = _behind_a_blocked_search(batcher, blocked_dense, asks)
    assert {a.batch_size for a in answers} == {4}  # 24 searches in one gather: six (mode, k) groups of four
    assert [_ids_scores(a.hits) for a in answers] == [_ids_scores(retriever.search(q, k=k, mode=m)) for q, k, m in asks]


def test_bm25_does_not_wait_behind_an_encoder_batch(retriever, blocked_dense):
    served = ServedIndex("t", retriever, batch=BatchConfig(wait_ms=1))
    hybrid = served.submit("dowry death", 3, "hybrid", rerank=True)
    bm25 = served.submit("dowry death", 3, "bm25", rerank=True)
    assert bm25.result(10).hits[0].id == "S1"
    assert not hybrid.done() and served.queued() == 1
    blocked_dense.go.set()
    assert hybrid.result(30).hits[0].id == "S1"


def test_a_full_queue_refuses_at_once(retriever, blocked_dense):
    batcher = Batcher("t", lambda: retriever, BatchConfig(wait_ms=0, max_batch=1, max_queue=2))
    held = [batcher.submit("murder", 1, "dense") for _ in range(2)]
    with pytest.raises(QueueFull, match="limit 2"):
        batcher.submit("murder", 1, "dense")
    blocked_dense.go.set()
    assert all(f.result(30).hits for f in held)
    assert batcher.submit("murder", 1, "dense").result(30).hits  # room again once answered


def test_overload_is_503_with_retry_after_and_slow_is_504(retriever, blocked_dense):
    app = create_app({"t": retriever}, batch=BatchConfig(wait_ms=0, max_batch=1, max_queue=1), timeout_s=0.5)
    with background(app) as url, ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: _post(url, {"q": "murder", "mode": "dense"}), range(4)))
        statuses = sorted(status for status, _, _ in answers)
        assert statuses.count(503) >= 2 and set(statuses) <= {503, 504}
        for status, headers, body in answers:
            assert ("retry-after" in headers) == (status == 503)
            assert "busy" in body["detail"] if status == 503 else "longer than 0.5 s" in body["detail"]
        blocked_dense.go.set()
        assert _post(url, {"q": "murder", "mode": "bm25"})[0] == 200


def _post(url: str, body: dict, path: str = "/api/search") -> tuple[int, dict, dict]:
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, json.load(e)


def test_post_search_equals_get_and_is_in_the_schema(retriever):
    client = TestClient(create_app({"t": retriever}))
    params = {"q": "dowry death " * 200, "k": 4, "mode": "hybrid"}
    got = client.post("/api/search", json=params).json()
    assert got["hits"] == client.get("/api/search", params=params).json()["hits"] and len(got["hits"]) == 4
    assert client.post("/api/search", json={"q": "x", "k": 0}).status_code == 400
    assert client.post("/api/search", json={"q": " "}).json()["detail"].startswith("empty query")
    assert client.post("/api/search", json={"q": "盗窃" * 10_000}).status_code == 200  # 20,000 CJK characters
    huge = client.post("/api/search", json={"q": "x" * 300_000})
    assert huge.status_code == 413 and "the limit is 262,144" in huge.json()["detail"]
    schema = client.get("/openapi.json").json()
    assert "post" in schema["paths"]["/api/search"] and "SearchBody" in schema["components"]["schemas"]


def test_concurrent_http_searches_equal_sequential_ones(retriever):
    app = create_app({"t": retriever}, batch=BatchConfig(wait_ms=20))
    asks = [{"q": q, "k": k} for q in QUERIES for k in (2, 5)]
    with background(app) as url:
        alone = [_post(url, a)[2]["hits"] for a in asks]
        with ThreadPoolExecutor(len(asks)) as pool:
            together = list(pool.map(lambda a: _post(url, a)[2]["hits"], asks))
        metrics = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    assert [[(h["id"], round(h["score"], 5)) for h in hits] for hits in together] == \
           [[(h["id"], round(h["score"], 5)) for h in hits] for hits in alone]
    sizes = re.findall(r'retrieval_batch_size_bucket\{worker="t/encoder",le="1"\} (\d+)', metrics)
    count = re.findall(r'retrieval_batch_size_count\{worker="t/encoder"\} (\d+)', metrics)
    assert int(count[0]) < 2 * len(asks) and int(sizes[0]) < int(count[0])  # some searches shared a batch


def test_metrics_are_prometheus_text_and_access_log_is_json(retriever, caplog):
    client = TestClient(create_app({"t": retriever}))
    with caplog.at_level(logging.INFO, logger="retrieval.access"):
        client.get("/api/search", params={"q": "theft"})
        client.get("/api/search", params={"q": ""})
    lines = [json.loads(r.message) for r in caplog.records if r.name == "retrieval.access"]
    assert [(x["path"], x["status"], x["batch"]) for x in lines] == [("/api/search", 200, 1), ("/api/search", 400, None)]
    assert all(x["ms"] > 0 for x in lines)
    text = client.get("/metrics").text
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert samples and all(PROM.match(line) for line in samples)
    assert 'retrieval_requests_total{path="/api/search",status="200"} 1' in samples
    assert 'retrieval_requests_total{path="/api/search",status="400"} 1' in samples
    assert 'retrieval_queue_depth{index="t"} 0' in samples
    assert any(s.startswith('retrieval_request_seconds_count{path="/api/search"} 2') for s in samples)


def _build(docs, path, encoder):
    HybridRetriever.build(docs, encoder=encoder, progress=False).save(path)
    return read_manifest(path, verify=False)["generation"]


def test_reload_switches_to_a_new_generation_and_refuses_a_damaged_one(tmp_path, tiny_docs, encoder, caplog):
    folder = tmp_path / "ix"
    first = _build(tiny_docs, folder, encoder)
    app = create_app({"ix": HybridRetriever.load(folder)}, folders={"ix": folder})
    client = TestClient(app)
    assert client.post("/api/admin/reload").json()["indexes"][0]["status"] == "unchanged"
    extra = Document("S6", "Extortion", "Title: Extortion\nDesc: Whoever intentionally puts any person in fear "
                                        "of injury and dishonestly induces delivery of property commits extortion.")
    second = _build([*tiny_docs, extra], folder, encoder)
    assert second != first
    report = client.post("/api/admin/reload").json()["indexes"][0]
    assert (report["status"], report["generation"]) == ("reloaded", second)
    assert client.get("/api/search", params={"q": "extortion fear of injury", "k": 1}).json()["hits"][0]["id"] == "S6"
    third = _build(tiny_docs, folder, encoder)
    (folder / third / "dense" / "index.faiss").write_bytes(b"damaged")
    with caplog.at_level(logging.ERROR, logger="retrieval.web.reload"):
        report = client.post("/api/admin/reload").json()["indexes"][0]
    assert (report["status"], report["generation"]) == ("refused", second)
    assert "refused, still serving " + second in caplog.text
    assert client.get("/api/health").json()["indexes"][0]["documents"] == 6
    number = int(second.removeprefix("gen-"))
    assert f'retrieval_index_generation{{index="ix",generation="{second}"}} {number}' in client.get("/metrics").text


def test_reload_is_for_loopback_clients_only(retriever):
    client = TestClient(create_app({"t": retriever}), client=("192.0.2.7", 5000))
    response = client.post("/api/admin/reload")
    assert response.status_code == 403 and "this machine only" in response.json()["detail"]


@pytest.mark.parametrize("argv, words", [(["--max-batch", "0"], "max batch"), (["--timeout-s", "0"], "--timeout-s"),
                                         (["--batch-wait-ms", "-1"], "batch wait")])
def test_serve_rejects_bad_batching_options(tiny_index, capsys, argv, words):
    assert main(["serve", str(tiny_index), *argv]) == 2
    assert words in capsys.readouterr().err


def test_watch_picks_up_a_new_generation(tmp_path, tiny_docs, encoder):
    folder = tmp_path / "ix"
    _build(tiny_docs, folder, encoder)
    app = create_app({"ix": HybridRetriever.load(folder)}, folders={"ix": folder})
    stop = threading.Event()
    app.state.reloader.watch(0.1, stop)
    try:
        second = _build(tiny_docs[:4], folder, encoder)
        deadline = time.monotonic() + 30
        while app.state.reloader.served["ix"].generation != second and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
    assert TestClient(app).get("/api/health").json()["indexes"][0]["documents"] == 4


def test_serve_reloads_on_sighup_and_finishes_in_flight_searches_on_sigterm(tmp_path, tiny_docs, encoder):
    folder = tmp_path / "ix"
    _build(tiny_docs, folder, encoder)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    proc = subprocess.Popen([sys.executable, "-m", "retrieval", "serve", str(folder), "--port", url.rsplit(":", 1)[1]],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: _get_json(url + "/api/health"), proc)
        _build(tiny_docs[:3], folder, encoder)
        proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: _get_json(url + "/api/health")["indexes"][0]["documents"] == 3, proc)
        done: list[tuple[int, float]] = []
        long_query = "dowry death of a married woman burnt by her husband within seven years of marriage " * 200
        threads = [threading.Thread(target=lambda: done.append((_post(url, {"q": long_query, "k": 3})[0],
                                                                time.monotonic()))) for _ in range(24)]
        [t.start() for t in threads]
        time.sleep(0.5)
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        [t.join(60) for t in threads]
        assert proc.wait(60) == 0
    finally:
        proc.kill()
    assert [status for status, _ in done] == [200] * 24
    assert max(t for _, t in done) > stopped  # some searches were still running when SIGTERM came, and finished
    assert "switched from generation gen-000001 to gen-000002" in proc.stderr.read()


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def _wait_for(ready, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            if ready():
                return
        except (OSError, KeyError):
            pass
        time.sleep(0.2)
    raise AssertionError("timed out")


@pytest.fixture(scope="module")
def load_test():
    """scripts/load_test.py as a module."""
    return load_script("load_test")


def _rows(rps: dict[str, float]) -> list[dict]:
    """Comparison rows as load_test.compare makes them: one point per serving path with these requests/s."""
    return [{"path": path, "queries": "short", "concurrency": 8, "throughput_rps": value, "requests": 1, "errors": 0,
             "latency_ms": {"p50": 1, "p95": 2, "p99": 3}} for path, value in rps.items()]


def test_load_test_runs_for_seconds_and_tables_the_ratio(retriever, load_test):
    with background(create_app({"t": retriever})) as url:
        report = load_test.run(url, QUERIES, concurrency=4, seconds=0.5)
    assert report["requests"] > 0 and report["errors"] == 0 and report["seconds"] >= 0.5
    rows = _rows({"one-at-a-time": 10.0, "batched": 25.0})
    table = load_test.comparison_table(rows).splitlines()
    assert table[-1].endswith("| 2.50x |") and table[-2].endswith("|  |")


def test_load_test_overload_counts_every_answer_and_503s_while_the_queue_is_full(retriever, blocked_dense, load_test):
    def release_half_a_second_after_the_first_search_enters() -> None:
        assert blocked_dense.inside.wait(30)
        time.sleep(0.5)
        blocked_dense.go.set()

    # the first search holds the encoder for 0.5 s and the queue has room for one: what arrives meanwhile gets 503
    threading.Thread(target=release_half_a_second_after_the_first_search_enters, daemon=True).start()
    with background(create_app({"t": retriever}, batch=BatchConfig(max_queue=1))) as url:
        report = load_test.overload(url, QUERIES, rate=40, seconds=1.5)
    counts = report["status_counts"]
    assert report["requests"] == 60 == sum(counts.values()) == sum(b["sent"] for b in report["timeline"])
    assert set(counts) == {"200", "503"} and report["unexpected"] == 0
    assert report["share_503"] == round(counts["503"] / 60, 4)
    assert sum(b["ok"] for b in report["timeline"]) == counts["200"]
    assert set(report["accepted_latency_ms"]) == {"p50", "p95", "p99", "max"}


def test_load_test_reload_phase_rebuilds_the_served_folder_with_no_failed_request(tmp_path, tiny_docs, encoder,
                                                                                  load_test):
    folder = tmp_path / "ix"
    first = _build(tiny_docs, folder, encoder)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n" for d in tiny_docs[:4]),
                      encoding="utf-8")
    rebuild = [sys.executable, "-m", "retrieval", "build", str(corpus), "--out", str(folder)]
    with background(create_app({"ix": HybridRetriever.load(folder)}, folders={"ix": folder})) as url:
        report = load_test.reload_during_load(url, QUERIES, "ix", rebuild, seconds=2, concurrency=2)
        assert _get_json(url + "/api/health")["indexes"][0]["documents"] == 4
    second = read_manifest(folder, verify=False)["generation"]
    assert (report["generation_before"], report["generation_after"], report["reload_status"]) == (first, second, "reloaded")
    assert second != first and report["failed"] == 0 and report["status_counts"] == {"200": report["requests"]}
    ev = report["events"]
    assert 0 < ev["rebuild_start"] < ev["rebuild_end"] <= ev["reloaded"] < ev["end"]
    assert set(report["latency_ms"]) == {"before rebuild", "during rebuild", "2 s after reload", "after reload"}
    assert report["latency_ms"]["after reload"]["requests"] > 0
    assert sum(b["sent"] for b in report["timeline"]) == report["requests"]
    rows = _rows(dict.fromkeys(load_test.PATHS, 10.0))
    load_test.plot({"compare": rows, "reload": report}, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 0 and load_test.ok({"compare": rows, "reload": report})
    assert not load_test.ok({"compare": rows, "reload": report | {"failed": 1}})
    assert "failed 0" in load_test.phase_lines({"reload": report})[0]

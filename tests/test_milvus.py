"""The Milvus backend against Milvus Lite, embedded (a .db folder) and through a loopback URI: the same rankings as
the embedded backend (client BM25), filters as Milvus expressions, updates into a new collection, the Lite pitfalls."""

import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="the Milvus backend's client (extra 'milvus') is not installed")
pytest.importorskip("milvus_lite", reason="Milvus Lite (extra 'milvus-lite', CPU installs) is not installed")

from retrieval.cli import main  # noqa: E402
from retrieval.corpus import Document  # noqa: E402
from retrieval.milvus import MilvusSetupError, MilvusTarget, connect  # noqa: E402
from retrieval.milvus.backend import MilvusBackend  # noqa: E402
from retrieval.milvus.collection import Columns, index_params, publish  # noqa: E402
from retrieval.milvus.expressions import filter_expression  # noqa: E402
from retrieval.retriever import HybridRetriever  # noqa: E402

QUERIES = ["theft of property", "murder with intent", "cheating and forgery", "dowry death", "trespass at night"]
WORDS = ["theft", "murder", "cheating", "trespass", "dowry", "forgery", "bribery", "defamation", "property", "night"]


def _docs(n: int = 40) -> list[Document]:
    return [Document(f"S{i}", f"Offence {i}", f"Whoever commits {WORDS[i % 10]} of {WORDS[(i * 3) % 10]} "
                     f"{'and ' + WORDS[(i * 7) % 10] if i % 3 else ''} shall be punished.",
                     act="IPC" if i % 2 else "EA", valid_from="2000-01-01" if i % 5 else None,
                     valid_to="2015-01-01" if i % 4 == 0 else None) for i in range(n)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Milvus Lite serving on a free loopback port (the remote code path), stopped afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path_factory.mktemp("milvus-server")
    exe = Path(sys.executable).with_name("milvus-lite")
    proc = subprocess.Popen([str(exe), "server", "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(params=["lite", "uri"])
def uri(request, tmp_path_factory):
    """A Milvus Lite file, or the loopback server."""
    if request.param == "lite":
        return str(tmp_path_factory.mktemp("lite") / "m.db")
    return request.getfixturevalue("server")


def _same(a: HybridRetriever, b: HybridRetriever, allowed_a=None, allowed_b=None) -> None:
    for mode in ("dense", "bm25", "hybrid"):
        for q in QUERIES:
            x = a.search(q, k=10, mode=mode, allowed=allowed_a)
            y = b.search(q, k=10, mode=mode, allowed=allowed_b)
            assert [h.id for h in x] == [h.id for h in y], (mode, q)
            assert np.allclose([h.score for h in x], [h.score for h in y], atol=1e-5), (mode, q)


def test_rankings_and_filters_equal_the_embedded_backend(uri, encoder, tmp_path):
    docs = _docs()
    embedded = HybridRetriever.build(docs, encoder=encoder, progress=False)
    built = HybridRetriever.build(docs, encoder=encoder, progress=False, backend=MilvusBackend(MilvusTarget(uri, "t")))
    built.save(tmp_path / "ix")
    loaded = HybridRetriever.load(tmp_path / "ix")
    assert loaded.info["backend"]["name"] == "milvus" and "token" not in str(loaded.info["backend"])
    assert type(loaded.leg["dense"].store).__name__ == "MilvusStore"
    _same(embedded, loaded)
    for kwargs in ({"act": "IPC"}, {"as_of": "2016-06-01"}, {"act": "EA", "as_of": "2010-01-01"}):
        want, got = embedded.where(**kwargs), loaded.where(**kwargs)
        assert filter_expression(got.filter)  # the filter goes to Milvus as an expression
        _same(embedded, loaded, want, got)
        hits = loaded.search("theft", k=len(want) + 5, mode="dense", allowed=got)
        assert len(hits) == len(want)  # every matching statute, and no other
    loaded.fuse_in = "server"  # Milvus's RRFRanker in one hybrid_search, each request filtered
    allowed = loaded.where(act="IPC")
    server = [loaded.search(q, k=10, allowed=allowed) for q in QUERIES]
    project = [embedded.search(q, k=10, allowed=embedded.where(act="IPC")) for q in QUERIES]
    assert all({h.id for h in s} <= {d.id for d in docs if d.act == "IPC"} and s for s in server)
    assert sum({h.id for h in s} == {h.id for h in p} for s, p in zip(server, project)) >= 3
    loaded.fuse_in = "project"
    for expr, compiled in (("act = IPC and valid_to < 2016-01-01", True), ("act in (IPC, EA) and not act = EA", True),
                           ("valid_from >= 2000-01-01 or jurisdiction != IN", True), ("section != 3", False),
                           ("id != S1", False)):  # a field Milvus does not hold
        assert bool(filter_expression(loaded.where(expr).filter)) is compiled, expr  # else it goes as the rows it allows
        _same(embedded, loaded, embedded.where(expr), loaded.where(expr))


def test_update_and_delete_write_a_new_collection_equal_to_a_fresh_build(encoder, tmp_path):
    uri = str(tmp_path / "m.db")
    docs = _docs()
    HybridRetriever.build(docs[:30], encoder=encoder, progress=False, backend=MilvusBackend(MilvusTarget(uri, "u"))).save(tmp_path / "ix")
    first = HybridRetriever.load(tmp_path / "ix").info["backend"]["collection"]
    r = HybridRetriever.load(tmp_path / "ix")
    changed = [replace(d, text=d.text + " Amended by bribery.") if d.id in ("S3", "S4") else d for d in docs[2:]]
    plan = r.update_to(changed)
    assert (len(plan.added), len(plan.changed), len(plan.removed)) == (10, 2, 2)
    r.save(tmp_path / "ix")
    r.delete(["S10"])
    r.save(tmp_path / "ix")
    after = HybridRetriever.load(tmp_path / "ix")
    fresh = HybridRetriever.build([d for d in changed if d.id != "S10"], encoder=encoder, progress=False)
    _same(fresh, after)
    names = set(connect(uri).list_collections())
    second = after.info["backend"]["previous"][0][1]  # kept until the next save: a server on it can reload first
    assert first not in names and names == {second, after.info["backend"]["collection"]}


def test_cli_build_query_filter_delete(tmp_path, capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(
        f'{{"id": "c{i}", "title": "T{i}", "text": "{t}", "act": "{a}"}}' for i, (t, a) in enumerate(
            [("Whoever dishonestly takes movable property commits theft.", "IPC"),
             ("Whoever commits theft shall be punished.", "IPC"),
             ("Whoever abstracts energy commits theft of electricity.", "EA"),
             ("The State shall not deny equality before the law.", "CONST")])), encoding="utf-8")
    ix, db = tmp_path / "2019-ix", tmp_path / "m.db"  # a folder name that is no valid collection name as it is
    assert main(["build", str(corpus), "--out", str(ix), "--backend", "milvus", "--uri", str(db), "--legs", "bm25"]) == 0
    capsys.readouterr()
    assert main(["query", str(ix), "theft", "--act", "IPC", "--json"]) == 0
    import json

    assert {h["id"] for h in json.loads(capsys.readouterr().out)["hits"]} == {"c0", "c1"}
    assert main(["delete", str(ix), "c1"]) == 0
    capsys.readouterr()
    assert main(["query", str(ix), "theft", "--json"]) == 0
    assert [h["id"] for h in json.loads(capsys.readouterr().out)["hits"]] == ["c2", "c0"]
    assert json.loads((ix / "manifest.json").read_text())["backend"]["collection"].startswith("_2019_ix_")
    assert main(["build", str(corpus), "--out", str(tmp_path / "x"), "--uri", str(db)]) == 2
    assert "go with --backend milvus" in capsys.readouterr().err
    assert main(["build", str(corpus), "--out", str(tmp_path / "x"), "--backend", "milvus", "--uri", "x.sqlite"]) == 2
    assert "ending in .db" in capsys.readouterr().err
    assert main(["build", str(corpus), "--out", str(tmp_path / "x"), "--backend", "milvus", "--uri",
                 "http://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "cannot connect to Milvus at http://127.0.0.1:1" in err and "read" not in err  # before any work


def _server_bm25(uri: str, name: str, k1: float, b: float, form) -> list[float]:
    target = MilvusTarget(uri, name, "server")
    texts = ["theft theft theft of a car in the city of delhi today", "theft", "murder"]
    columns = Columns(docs=np.arange(3), texts=texts, analyzer={"tokenizer": "standard"}, k1_b=(k1, b))
    coll = publish(target, target.new_name(), columns, [{"id": str(i)} for i in range(3)]) if form is None else None
    if coll is None:  # the form a plain pymilvus user writes: {"bm25_k1": ...} (silently dropped by Milvus Lite)
        from retrieval.milvus import collection as c

        original = c.index_params
        c.index_params = form
        try:
            coll = publish(target, target.new_name(), columns, [{"id": str(i)} for i in range(3)])
        finally:
            c.index_params = original
    found = coll.search("text_bm25", ["theft"], 3, params={"metric_type": "BM25"})[0]
    coll.drop()
    return dict(zip(found[1].tolist(), found[2].tolist()))


def test_lite_bm25_parameters_take_effect_and_scores_are_positive(tmp_path):
    uri = str(tmp_path / "m.db")
    default, other = _server_bm25(uri, "a", 1.2, 0.75, None), _server_bm25(uri, "b", 0.1, 0.0, None)
    assert all(s > 0 for s in default.values())  # Milvus Lite reports BM25 negated; the engine flips it
    assert default != other  # k1 / b reached the engine
    with pytest.raises(MilvusSetupError, match="ignored the BM25 parameters"):
        _server_bm25(uri, "c", 0.1, 0.0, lambda values, uri: values)  # the flat form: dropped, and caught
    assert index_params({"bm25_k1": 1.0}, "http://h:19530") == {"bm25_k1": 1.0}
    assert connect(uri).list_collections() == []  # the refused collection was dropped


def test_server_bm25_and_its_difference_are_measurable(encoder, tmp_path):
    docs = _docs()
    r = HybridRetriever.build(docs, encoder=encoder, progress=False, legs=["bm25"],
                              backend=MilvusBackend(MilvusTarget(str(tmp_path / "m.db"), "s", "server")))
    hits = r.search("theft of property", k=5, mode="bm25")
    assert hits and all(h.score > 0 for h in hits)
    assert r.leg["bm25"].index.engine == "milvus-server"


def test_missing_lite_and_makefile_refusal(tmp_path, monkeypatch):
    import retrieval.milvus as m

    monkeypatch.setitem(sys.modules, "milvus_lite", None)
    with pytest.raises(MilvusSetupError, match=r"pip install -e '\.\[milvus-lite\]'"):
        m.connect(str(tmp_path / "new.db"))
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run(["make", "-s", "-C", str(root), "install", "FAISS=gpu", "MILVUS=milvus-lite",
                          f"VENV={tmp_path / 'venv'}"], capture_output=True, text=True, env={**os.environ})
    assert run.returncode != 0 and "milvus-lite depends on faiss-cpu" in run.stdout + run.stderr
    assert not (tmp_path / "venv").exists()


def test_rest_api_serves_a_milvus_index_as_the_embedded_one(encoder, tmp_path):
    from fastapi.testclient import TestClient

    from retrieval.web import create_app

    docs = _docs()
    HybridRetriever.build(docs, encoder=encoder, progress=False).save(tmp_path / "e")
    HybridRetriever.build(docs, encoder=encoder, progress=False,
                          backend=MilvusBackend(MilvusTarget(str(tmp_path / "m.db"), "w"))).save(tmp_path / "m")
    client = TestClient(create_app({"e": HybridRetriever.load(tmp_path / "e"),
                                    "m": HybridRetriever.load(tmp_path / "m")}))
    for params in ({"q": "theft of property"}, {"q": "murder", "act": "IPC"}, {"q": "dowry", "as_of": "2016-01-01"},
                   {"q": "trespass", "mode": "bm25"}):
        got = [client.get("/api/search", params={**params, "index": name, "k": 8}).json()["hits"] for name in "em"]
        assert [h["id"] for h in got[0]] == [h["id"] for h in got[1]] and got[0], params
        assert [h["matched_terms"] for h in got[0]] == [h["matched_terms"] for h in got[1]], params
    assert client.get("/api/facets", params={"index": "m"}).json()["act"] == ["EA", "IPC"]


def test_the_milvus_backend_names_its_legs_as_the_leg_registry_does():
    """No leg name is spelled out in milvus/legs.py: the legs a collection holds are the registered dense and
    BM25 leg types."""
    import inspect

    from retrieval.legs import leg_type
    from retrieval.milvus import legs

    assert legs.LEGS == (leg_type("dense").name, leg_type("bm25").name)
    source = inspect.getsource(legs)
    assert '"dense"' not in source and '"bm25"' not in source

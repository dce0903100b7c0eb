"""A third leg, defined only here, runs through HybridRetriever, save/load, update, the CLI, bench (MTEB) and the web
API with no edit to any of them: the Leg protocol (LegBase's defaults) is the one seam."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from test_bench import write_dataset

from retrieval.cli import main
from retrieval.legs import Leg, LegBase, register_leg
from retrieval.retriever import HybridRetriever


@register_leg("titlewords")
class TitleWordsLeg(LegBase):
    """Scores a document by how many query words its title holds (lower-cased whole words)."""

    def __init__(self, titles: list[set[str]], order):
        self.titles, self.order = titles, order

    @classmethod
    def build(cls, documents: Sequence, options, order) -> TitleWordsLeg:
        return cls([set(d.title.lower().split()) for d in documents], order)

    @classmethod
    def load(cls, folder: Path, config: dict, options, order) -> TitleWordsLeg:
        return cls([set(t) for t in json.loads((folder / "titles.json").read_text())], order)

    def save(self, folder: Path) -> dict:
        (folder / "titles.json").write_text(json.dumps([sorted(t) for t in self.titles]))
        return {"what": "query words in the title"}

    def __len__(self) -> int:
        return len(self.titles)

    def rank(self, queries, depth, allowed=None, **inputs):
        out = []
        for q in queries:
            words = set(q.lower().split())
            scores = np.array([len(words & t) for t in self.titles], dtype=np.float32)
            rows = np.flatnonzero(scores > 0)
            if allowed is not None:
                rows = np.intersect1d(rows, allowed)
            out.append(self.order.top(scores[rows], depth, rows))
        return out

    def matched_terms(self, query: str, row: int) -> tuple[str, ...]:
        return tuple(w for w in query.lower().split() if w in self.titles[row])


def test_the_test_leg_satisfies_the_protocol(tiny_docs):
    r = HybridRetriever.build(tiny_docs, legs=["bm25", "titlewords"], progress=False)
    assert isinstance(r.leg["titlewords"], Leg) and isinstance(r.leg["bm25"], Leg)


def test_a_new_leg_through_the_retriever_save_load_and_cli(tiny_docs, tmp_path, capsys):
    r = HybridRetriever.build(tiny_docs, legs=["bm25", "titlewords"], progress=False)
    hits = r.search("criminal trespass into a house", k=3)
    assert hits[0].id == "S4" and hits[0].leg("titlewords").rank == 1 and hits[0].leg("bm25").rank == 1
    assert "criminal" in hits[0].matched_terms
    assert [h.id for h in r.search("murder", k=5, mode="titlewords")] == ["S2"]
    r.save(tmp_path / "ix")
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["legs"] == ["bm25", "titlewords"] and manifest["titlewords"]["type"] == "titlewords"
    assert main(["query", str(tmp_path / "ix"), "dowry death trespass", "--json", "--mode", "titlewords"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["legs"] == ["bm25", "titlewords"] and [h["id"] for h in out["hits"]] == ["S1", "S4"]
    assert out["hits"][1]["titlewords"]["rank"] == 2 and out["hits"][1]["bm25"]["rank"] is None


def test_a_new_leg_in_the_bench_through_mteb(tmp_path):
    out = tmp_path / "b"
    assert main(["bench", "--dataset", str(write_dataset(tmp_path / "data")), "--legs", "bm25,titlewords",
                 "--out", str(out)]) == 0
    runs = json.loads((out / "report.json").read_text())["runs"]
    assert set(runs) == {"bm25", "titlewords", "hybrid"}
    assert 0 < runs["titlewords"]["ndcg_at_10"] <= 1 and 0 < runs["hybrid"]["ndcg_at_10"] <= 1


def test_a_new_leg_in_the_web_api(tiny_docs, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from retrieval.web.app import create_app

    HybridRetriever.build(tiny_docs, legs=["bm25", "titlewords"], progress=False).save(tmp_path / "ix")
    client = TestClient(create_app({"ix": HybridRetriever.load(tmp_path / "ix")}))
    body = client.get("/api/search", params={"q": "cheating", "mode": "titlewords"}).json()
    assert [h["id"] for h in body["hits"]] == ["S5"] and body["hits"][0]["titlewords"] == {"rank": 1, "score": 1.0}
    health = client.get("/api/health").json()["indexes"][0]
    assert health["legs"] == ["bm25", "titlewords"] and "titlewords" in health["modes"]


def test_a_new_leg_goes_through_update_as_a_fresh_build_would(tiny_docs, tmp_path, capsys):
    corpus = tmp_path / "c.jsonl"
    write = lambda docs: corpus.write_text(  # noqa: E731
        "".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n" for d in docs))
    write(tiny_docs)
    assert main(["build", str(corpus), "--legs", "bm25,titlewords", "--out", str(tmp_path / "ix")]) == 0
    renamed = [d.__class__(d.id, "Cheating murder" if d.id == "S1" else d.title, d.text) for d in tiny_docs[:-1]]
    write(renamed)
    assert main(["update", str(tmp_path / "ix"), str(corpus)]) == 0
    capsys.readouterr()
    assert main(["query", str(tmp_path / "ix"), "cheating murder", "--json", "--mode", "titlewords"]) == 0
    hits = [h["id"] for h in json.loads(capsys.readouterr().out)["hits"]]
    fresh = HybridRetriever.build(renamed, legs=["bm25", "titlewords"], progress=False)
    assert hits == [h.id for h in fresh.search("cheating murder", k=10, mode="titlewords")] and hits[0] == "S1"
    r = HybridRetriever.build(tiny_docs, legs=["bm25", "titlewords"], progress=False)
    r.delete(["S1"])
    assert "S1" not in [h.id for h in r.search("dowry death", k=5, mode="titlewords")] and len(r.leg["titlewords"]) == len(tiny_docs) - 1


def test_an_unknown_leg_is_refused(tiny_docs, capsys, tmp_path):
    with pytest.raises(ValueError, match="unknown leg 'sparse'"):
        HybridRetriever.build(tiny_docs, legs=["bm25", "sparse"], progress=False)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n" for d in tiny_docs))
    assert main(["build", str(corpus), "--legs", "bm25,sparse", "--out", str(tmp_path / "ix")]) == 2
    assert "unknown leg 'sparse'" in capsys.readouterr().err

"""A title weight applies to the documents that have a title: corpora with no titles, some or all go through
tune, bench, build and query alike, and settings tuned with a title weight carry to any of them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_bench import CORPUS, QRELS, QUERIES

from retrieval.cli import main
from retrieval.corpus import Document
from retrieval.dense.chunking import ChunkSettings
from retrieval.retriever import HybridRetriever

TITLED = {"none": set(), "some": {"d2", "d4"}, "all": {"d1", "d2", "d3", "d4"}}
TITLE_WEIGHTED = {"fusion": {"method": "dbsf", "k": 60, "weights": {"dense": 0.4, "bm25": 0.6}},
                  "chunking": {"documents": True, "queries": False, "doc_agg": "mean", "title_weight": 0.5}}


def titled_dataset(folder: Path, titles: str) -> Path:
    """The tiny BEIR data set of test_bench with the titles of TITLED[titles] kept, the others empty."""
    folder.mkdir(parents=True)
    rows = [{**r, "title": r["title"] if r["id"] in TITLED[titles] else ""} for r in CORPUS]
    for name, lines in (("corpus.jsonl", rows), ("queries.jsonl", QUERIES)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in lines))
    (folder / "qrels.tsv").write_text(QRELS)
    return folder


@pytest.mark.parametrize("titles", ["none", "some", "all"])
def test_tune_bench_build_and_query_work_whatever_share_of_documents_has_a_title(titles, tmp_path):
    data = titled_dataset(tmp_path / "d", titles)
    assert main(["tune", "--dataset", str(data), "--legs", "dense", "--folds", "3", "--out", str(tmp_path / "t")]) == 0
    grid = json.loads((tmp_path / "t" / "tune.json").read_text())["grid"]
    assert any(g["chunking"]["title_weight"] > 0 for g in grid) == (titles != "none")
    settings = tmp_path / "f.json"
    settings.write_text(json.dumps(TITLE_WEIGHTED))
    assert main(["bench", "--dataset", str(data), "--fusion-config", str(settings), "--out", str(tmp_path / "b")]) == 0
    tuned = json.loads((tmp_path / "b" / "report.json").read_text())["runs"]["tuned"]
    assert tuned["settings"]["chunking"]["title_weight"] == 0.5 and 0 < tuned["ndcg_at_10"] <= 1
    corpus = data / "corpus.jsonl"
    assert main(["build", str(corpus), "--out", str(tmp_path / "ix"), "--fusion-config", str(settings)]) == 0
    assert main(["query", str(tmp_path / "ix"), "wife burned for dowry", "--json"]) == 0


def test_settings_with_a_title_weight_query_an_index_of_untitled_documents_built_without_them(tmp_path, capsys):
    corpus = titled_dataset(tmp_path / "d", "none") / "corpus.jsonl"
    settings = tmp_path / "f.json"
    settings.write_text(json.dumps({"chunking": {"title_weight": 0.5}}))
    assert main(["build", str(corpus), "--out", str(tmp_path / "ix")]) == 0
    capsys.readouterr()
    assert main(["query", str(tmp_path / "ix"), "wife burned for dowry", "--fusion-config", str(settings),
                 "--json", "--mode", "dense"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"][0]["id"] == "d2"


def test_a_titled_index_built_without_title_vectors_still_asks_for_a_rebuild(tmp_path, capsys):
    corpus = titled_dataset(tmp_path / "d", "some") / "corpus.jsonl"
    settings = tmp_path / "f.json"
    settings.write_text(json.dumps({"chunking": {"title_weight": 0.5}}))
    assert main(["build", str(corpus), "--out", str(tmp_path / "ix")]) == 0
    assert main(["query", str(tmp_path / "ix"), "dowry", "--fusion-config", str(settings)]) == 2
    assert "built without" in capsys.readouterr().err


def test_a_title_weight_mixes_titles_into_titled_documents_only(encoder):
    docs = [Document(r["id"], r["title"] if r["id"] in TITLED["some"] else "", r["text"]) for r in CORPUS]
    leg = HybridRetriever.build(docs, encoder=encoder, legs=["dense"], encode_titles=True, progress=False).leg["dense"]
    queries = [q["text"] for q in QUERIES]
    plain, mixed = leg.exact_scores(queries), leg.exact_scores(queries, ChunkSettings(title_weight=0.5))
    titled = np.array([d.id in TITLED["some"] for d in docs])
    assert np.allclose(plain[:, ~titled], mixed[:, ~titled]) and not np.allclose(plain[:, titled], mixed[:, titled])

"""The MTEB benchmark: search-model protocol, exact MTEB numbers, report files, the notebook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval.cli import main
from retrieval.dense.chunking import ChunkSettings
from retrieval.evaluation.search_model import RetrieverSearch, SharedLegs, run_name
from retrieval.evaluation.stats import paired_difference
from retrieval.settings import Bm25Params, FusionConfig, Settings
from retrieval.spec import IndexSpec

CORPUS = [
    {"id": "d1", "title": "Theft", "text": "Whoever dishonestly takes movable property commits theft."},
    {"id": "d2", "title": "Dowry death", "text": "Death of a woman by burns within seven years of marriage."},
    {"id": "d3", "title": "Cheating", "text": "Whoever deceives a person to deliver property cheats."},
    {"id": "d4", "title": "Murder", "text": "Culpable homicide with the intention of causing death."},
]
QUERIES = [{"id": "q1", "text": "he took my bicycle dishonestly"}, {"id": "q2", "text": "wife burned for dowry"},
           {"id": "q3", "text": "he deceived me to hand over money"}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq2\td4\t1\nq3\td3\t1\n"


def write_dataset(folder: Path) -> Path:
    """A tiny BEIR-style statute data set (3 queries, 4 statutes)."""
    folder.mkdir(parents=True)
    for name, rows in (("corpus.jsonl", CORPUS), ("queries.jsonl", QUERIES)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "qrels.tsv").write_text(QRELS)
    return folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data") / "tiny-statutes")


@pytest.fixture(scope="module")
def small_report(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "b"
    tuned = out.parent / "fusion.json"
    tuned.write_text(json.dumps({"fusion": {"method": "rrf", "k": 10, "weights": {"dense": 1.0, "bm25": 2.0}}}))
    assert main(["bench", "--dataset", str(dataset), "--out", str(out), "--parity", "--trec-runs",
                 "--fusion-config", str(tuned)]) == 0
    return out


def test_search_model_is_not_a_cross_encoder_and_names_differ():
    from mteb.models.models_protocols import CrossEncoderProtocol, SearchProtocol

    model = RetrieverSearch(SharedLegs(None, IndexSpec(legs=("bm25",))), "bm25", Settings(), "m")
    assert isinstance(model, SearchProtocol) and not isinstance(model, CrossEncoderProtocol)
    assert not hasattr(model, "predict")
    names = {run_name("m", "dense"), run_name("m", "hybrid"), run_name("m", "hybrid", Settings(FusionConfig(k=10))),
             run_name("m", "hybrid", Settings(FusionConfig(weights={"dense": 2, "bm25": 1}))),
             run_name("m", "hybrid", Settings(bm25=Bm25Params(k1=2.0))), run_name("m", "hybrid", Settings(query_prompt="q: ")),
             run_name("m", "hybrid", Settings(chunking=ChunkSettings(queries=True))), run_name("other", "dense")}
    assert len(names) == 8


def test_report_schema_and_files(small_report):
    r = json.loads((small_report / "report.json").read_text())
    assert r["task"] == "tiny-statutes" and r["language"] == "eng-Latn"
    assert set(r["runs"]) == {"dense", "bm25", "hybrid", "default", "tuned"}
    assert "default_minus_dense" in r["comparison"] or "default_minus_bm25" in r["comparison"]
    for scores in r["runs"].values():
        for m in ("ndcg", "map", "recall", "precision", "mrr"):
            for k in (1, 3, 5, 10, 20, 100, 1000):
                assert f"{m}_at_{k}" in scores
        assert scores["seconds"] >= 0
    assert set(r["per_query"]["dense"]) == {"q1", "q2", "q3"}
    c = r["comparison"]["hybrid_minus_dense"]
    assert set(c) >= {"mean", "ci95", "p_value"} and c["ci95"][0] <= c["mean"] <= c["ci95"][1]
    assert r["runs"]["tuned"]["settings"]["fusion"]["k"] == 10
    assert r["parity"]["all_ok"] and set(r["parity"]) >= {"dense", "bm25", "hybrid"}
    assert r["query_prompt"] == "" and r["encoder"]["weights_sha256"]
    for name in ("report.md", "ndcg10.png", "mteb/dense.json", "runs/hybrid.trec"):
        assert (small_report / name).is_file(), name
    ablation_json = {p.name for p in (small_report / "mteb").iterdir()} - {f"{run}.json" for run in r["runs"]}
    assert "tuned_with_equal-weight_RRF_k-60.json" in ablation_json
    assert not any(" " in name for name in ablation_json)
    first = (small_report / "runs" / "hybrid.trec").read_text().splitlines()[0].split()
    assert len(first) == 6 and first[1] == "Q0" and first[3] == "1"
    md = (small_report / "report.md").read_text()
    assert "hybrid − dense" in md and "Parity" in md


def test_per_query_mean_equals_mteb_ndcg(small_report):
    r = json.loads((small_report / "report.json").read_text())
    for run, per_query in r["per_query"].items():
        mean = sum(per_query.values()) / len(per_query)
        assert mean == pytest.approx(r["runs"][run]["ndcg_at_10"], abs=1e-5)


def test_paired_difference_statistics():
    a = {str(i): 0.5 + 0.01 * i for i in range(40)}
    b = {str(i): 0.5 for i in range(40)}
    same = paired_difference(b, b)
    assert same["mean"] == 0 and same["p_value"] == 1.0
    better = paired_difference(a, b)
    assert better["mean"] == pytest.approx(0.195) and better["p_value"] < 0.001 and better["ci95"][0] > 0


def test_notebook_runs_on_a_report(small_report):
    import os

    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(Path(__file__).parents[1] / "notebooks" / "dense_vs_hybrid.ipynb", as_version=4)
    os.environ["REPORT_JSON"] = str(small_report / "report.json")
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(small_report)}}).execute()
    finally:
        del os.environ["REPORT_JSON"]
    text = "".join(o.get("text", "") for cell in nb.cells for o in cell.get("outputs", []))
    assert "tiny-statutes" in text and "ok=True" in text


@pytest.mark.slow
def test_aila_bench_exact_mteb_numbers_and_parity(aila_dir, tmp_path):
    out = tmp_path / "b"
    assert main(["bench", "--parity", "--aila-dir", str(aila_dir), "--out", str(out)]) == 0
    r = json.loads((out / "report.json").read_text())
    assert r["task"] == "AILAStatutes" and r["queries"] == 50 and r["documents"] == 82
    assert r["runs"]["dense"]["ndcg_at_10"] == pytest.approx(0.20516, abs=1e-4)
    assert r["runs"]["bm25"]["ndcg_at_10"] == pytest.approx(0.21618, abs=1e-4)
    assert r["runs"]["hybrid"]["ndcg_at_10"] == pytest.approx(0.22334, abs=1e-4)
    assert all(r["parity"][k]["abs_diff"] <= 1e-4 for k in ("dense", "bm25", "hybrid"))


def test_bench_without_data_or_network_says_what_to_set(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("AILA2019_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert main(["bench", "--legs", "bm25", "--out", str(tmp_path / "b")]) == 2
    assert "AILA2019_DIR" in capsys.readouterr().err

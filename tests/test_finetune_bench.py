"""A fine-tuned model in `bench` (base vs fine-tuned vs hybrid, paired; never scored on its training queries),
and `finetune` on a corpus alone (label-free pairs: title -> text, heading -> body)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_bench import CORPUS, QUERIES, write_dataset

from retrieval.cli import main
from retrieval.dense.encoders import EncoderConfig
from retrieval.evaluation.datasets import RetrievalData
from retrieval.evaluation.tune import TuneConfig
from retrieval.finetune import FinetuneConfig, TrainConfig, run_finetune
from retrieval.finetune.pairs import corpus_pairs
from retrieval.spec import IndexSpec


@pytest.fixture(scope="module")
def corpus_model(qwen3_dir, tmp_path_factory) -> Path:
    """The tiny Qwen3 fine-tuned on the tiny corpus's (title -> text) pairs alone, no query."""
    out = tmp_path_factory.mktemp("ftmodel") / "titles"
    corpus = {r["id"]: {"title": r["title"], "text": r["text"]} for r in CORPUS}
    spec = IndexSpec(encoder=EncoderConfig(model=str(qwen3_dir), device="cpu"))
    run_finetune(FinetuneConfig(TuneConfig(data=RetrievalData("tiny", "eng-Latn", corpus, {}, {}), spec=spec, folds=0),
                                TrainConfig(batch_size=2), corpus_pairs=True), out)
    return out


def bench(model: Path, out: Path, *extra: str) -> dict:
    """`bench` of `model` on the tiny data set (written beside `out` once); its report.json."""
    data = out.parent / "data"
    if not data.exists():
        write_dataset(data)
    assert main(["bench", "--dataset", str(data), "--model", str(model), "--device", "cpu", "--out", str(out),
                 *extra]) == 0
    return json.loads((out / "report.json").read_text())


def trained_on(model: Path, queries: list[str], tmp_path: Path) -> Path:
    """A copy of `model` whose finetune.json says its final model trained on `queries`."""
    copy = tmp_path / "ft"
    shutil.copytree(model, copy)
    report = json.loads((copy / "finetune.json").read_text())
    report["final"]["trained_queries"] = queries
    (copy / "finetune.json").write_text(json.dumps(report))
    return copy


def test_corpus_pairs_pair_a_heading_with_the_body_under_it_and_a_title_with_its_text():
    corpus = {"S1": {"title": "", "text": "Title: Punishment for theft\nDesc: Whoever commits theft shall be punished."},
              "S2": {"title": "Cheating", "text": "Whoever deceives any person cheats."},
              "S3": {"title": "", "text": "No heading here, only a body."}}
    pairs = corpus_pairs(RetrievalData("t", "eng-Latn", corpus, {}, {}))
    assert list(zip(pairs.anchors, pairs.positives)) == [
        ("Punishment for theft", "Whoever commits theft shall be punished."),
        ("Cheating", "Whoever deceives any person cheats.")]
    assert pairs.query_ids == [None, None]


def test_finetune_on_a_corpus_alone_trains_on_label_free_pairs_and_no_query(qwen3_dir, tmp_path, capsys):
    dataset = write_dataset(tmp_path / "data")
    out = tmp_path / "ft"
    assert main(["finetune", "--corpus", str(dataset / "corpus.jsonl"), "--out", str(out), "--model", str(qwen3_dir),
                 "--device", "cpu", "--train-batch-size", "2"]) == 0
    assert f"{len(CORPUS)} label-free pairs" in capsys.readouterr().out
    report = json.loads((out / "finetune.json").read_text())
    assert report["final"]["trained_queries"] == [] and report["final"]["validation_queries"] == []
    assert report["final"]["pairs"] == len(CORPUS) and report["data"]["corpus_pairs"] is True
    assert report["data"]["queries"] == 0


def test_finetune_on_a_corpus_refuses_folds_in_one_line(qwen3_dir, tmp_path, capsys):
    dataset = write_dataset(tmp_path / "data")
    assert main(["finetune", "--corpus", str(dataset / "corpus.jsonl"), "--folds", "2", "--out",
                 str(tmp_path / "ft"), "--model", str(qwen3_dir), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "--corpus" in err and "--folds" in err and not (tmp_path / "ft").exists()


def test_bench_of_a_fine_tuned_model_shows_its_base_dense_leg_with_paired_differences(corpus_model, qwen3_dir,
                                                                                       tmp_path):
    report = bench(corpus_model, tmp_path / "ft")
    assert list(report["runs"])[:3] == ["base_dense", "dense", "bm25"] and "hybrid" in report["runs"]
    base = bench(qwen3_dir, tmp_path / "base", "--legs", "dense")
    assert report["per_query"]["base_dense"] == base["per_query"]["dense"]  # the base model, not the fine-tuned one
    assert report["per_query"]["dense"] != base["per_query"]["dense"]
    for run in ("dense", "hybrid"):
        c = report["comparison"][f"{run}_minus_base_dense"]
        diffs = [report["per_query"][run][q] - report["per_query"]["base_dense"][q] for q in report["per_query"][run]]
        assert c["mean"] == pytest.approx(sum(diffs) / len(diffs)) and c["queries"] == len(QUERIES)
        assert c["ci95"][0] <= c["mean"] <= c["ci95"][1] and 0 < c["p_value"] <= 1
    ft = report["finetuned"]
    assert ft["base_model"] == str(qwen3_dir) and ft["base_weights_match"] and ft["queries_trained_on_left_out"] == 0
    md = (tmp_path / "ft" / "report.md").read_text()
    assert "| dense − base_dense |" in md and "| hybrid − base_dense |" in md and "fine-tuned from" in md


def test_bench_leaves_out_the_queries_a_fine_tuned_model_trained_on(corpus_model, tmp_path, capsys):
    report = bench(trained_on(corpus_model, ["q1"], tmp_path), tmp_path / "b")
    assert report["queries"] == len(QUERIES) - 1 and report["finetuned"]["queries_trained_on_left_out"] == 1
    assert all("q1" not in scores for scores in report["per_query"].values())
    assert report["comparison"]["dense_minus_base_dense"]["queries"] == len(QUERIES) - 1
    assert "left out 1 queries the model trained on" in capsys.readouterr().out
    assert "1 queries the model trained on are left out" in (tmp_path / "b" / "report.md").read_text()


def test_bench_refuses_a_fine_tuned_model_that_trained_on_every_query(corpus_model, tmp_path, capsys):
    dataset = write_dataset(tmp_path / "data")
    model = trained_on(corpus_model, [q["id"] for q in QUERIES], tmp_path)
    assert main(["bench", "--dataset", str(dataset), "--model", str(model), "--device", "cpu", "--out",
                 str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err and not (tmp_path / "b").exists()
    assert str(model / "finetune.json") in errors[0] and f"all {len(QUERIES)} queries" in errors[0]
    assert "finetune --folds" in errors[0]

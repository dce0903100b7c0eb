"""Tuning: cross-validation without leakage, the tune command, settings accepted by build/query/bench."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_bench import write_dataset

from retrieval.cli import main
from retrieval.evaluation.tune import choose_row, cross_validate

QIDS = [f"q{i}" for i in range(10)]


def test_cross_validation_never_uses_held_out_labels():
    # Row i is perfect for query i alone; the last row is 0.5 everywhere. A protocol that looked at
    # a query's own labels would pick row i for query i and score 1.0; honest CV picks the 0.5 row.
    matrix = np.vstack([np.eye(10), np.full((1, 10), 0.5)])
    res = cross_validate(matrix, QIDS, folds=5, seed=0)
    assert np.mean(list(res["per_query"].values())) == pytest.approx(0.5)
    assert all(f["chosen"] == 10 for f in res["folds"])


def test_held_out_scores_do_not_change_the_choice():
    rng = np.random.default_rng(1)
    matrix = rng.random((30, 10))
    base = cross_validate(matrix, QIDS, folds=5, seed=3)
    order = np.random.default_rng(3).permutation(10)
    test = np.array_split(order, 5)[2]
    changed = matrix.copy()
    changed[:, test] = rng.random((30, len(test)))  # other labels for fold 2's queries only
    again = cross_validate(changed, QIDS, folds=5, seed=3)
    assert again["folds"][2]["chosen"] == base["folds"][2]["chosen"]
    assert len(again["folds"]) == 5 and set(again["per_query"]) == set(QIDS)


def selection_grid(steady_gain: float | None = None) -> np.ndarray:
    """Rows: BM25 alone, dense alone, then fused settings that each gain 0.2 on one query and lose 0.01 on the
    others (the best of them leads on any training set by luck), and optionally one that gains everywhere."""
    bm25 = np.linspace(0.3, 0.7, 10)
    lucky = bm25 + 0.2 * np.eye(10) - 0.01
    rows = [bm25, bm25 - 0.2, *lucky] + ([bm25 + steady_gain] if steady_gain is not None else [])
    return np.vstack(rows)


def test_a_fused_setting_that_leads_the_training_queries_by_luck_loses_to_the_best_single_leg():
    matrix = selection_grid()
    row, why = choose_row(matrix, matrix, list(range(10)), single=[0, 1])
    assert row == 0 and why["best_fused"] == 2 and why["best_single_leg"] == 0
    assert why["train_margin"] == pytest.approx(0.01) and why["train_margin"] < why["train_margin_se"]
    assert why["inner_gain"] == pytest.approx(-0.01) and why["rule"].startswith("single leg")
    assert choose_row(matrix, matrix, list(range(10)))[0] == 2  # plain argmax takes the lucky fused row
    res = cross_validate(matrix, QIDS, folds=5, seed=0, single=[0, 1])
    assert all(f["chosen"] == 0 and f["selection"]["rule"].startswith("single leg") for f in res["folds"])


def test_a_fused_setting_clearly_above_the_best_single_leg_is_chosen():
    matrix = selection_grid(steady_gain=0.05)
    row, why = choose_row(matrix, matrix, list(range(10)), single=[0, 1])
    assert row == 12 and why["rule"].startswith("fused") and why["inner_gain"] == pytest.approx(0.05)
    res = cross_validate(matrix, QIDS, folds=5, seed=0, single=[0, 1])
    assert all(f["chosen"] == 12 for f in res["folds"])


def test_the_selection_rule_sees_training_queries_only():
    matrix = selection_grid()
    test = np.array_split(np.random.default_rng(0).permutation(10), 5)[1]
    changed = matrix.copy()
    changed[2:, test] += 0.5  # every fused row far better on fold 1's held-out queries only
    assert cross_validate(changed, QIDS, 5, 0, single=[0, 1])["folds"][1]["selection"] == \
        cross_validate(matrix, QIDS, 5, 0, single=[0, 1])["folds"][1]["selection"]


def test_tune_command_writes_report_and_settings_used_by_bench_and_build(tmp_path, monkeypatch):
    from retrieval import settings as settings_module

    written, write = [], settings_module.write_settings
    monkeypatch.setattr(settings_module, "write_settings", lambda path, *a, **kw: written.append(path) or write(path, *a, **kw))
    data = write_dataset(tmp_path / "tiny")
    out = tmp_path / "t"
    assert main(["tune", "--dataset", str(data), "--out", str(out), "--folds", "3"]) == 0
    assert written == [out / "fusion.json"]  # the settings file's one writer, settings.write_settings
    report = json.loads((out / "tune.json").read_text())
    assert 0.0 <= report["out_of_fold"]["ndcg_at_10"] <= 1.0
    assert len(report["out_of_fold"]["folds"]) == 3 and len(report["grid"]) > 100
    assert set(report["single_legs_out_of_fold"]) == {"dense", "bm25"}
    assert all({"id", "label", "fusion", "chunking", "bm25", "ndcg_at_10"} <= set(g) for g in report["grid"])
    assert (out / "tune.md").read_text().startswith("# Tuning on tiny")
    settings = json.loads((out / "fusion.json").read_text())
    assert {"fusion", "chunking", "bm25", "tuned_on", "out_of_fold_ndcg_at_10", "model"} <= set(settings)
    b = tmp_path / "b"
    assert main(["bench", "--dataset", str(data), "--out", str(b), "--fusion-config", str(out / "fusion.json")]) == 0
    bench = json.loads((b / "report.json").read_text())
    assert bench["runs"]["tuned"]["settings"]["fusion"] == settings["fusion"]
    assert main(["build", str(data / "corpus.jsonl"), "--out", str(tmp_path / "ix"),
                 "--fusion-config", str(out / "fusion.json")]) == 0
    assert main(["query", str(tmp_path / "ix"), "wife burned for dowry", "--json"]) == 0


def test_tune_and_bench_take_the_bm25_analysis_options(tmp_path):
    data = write_dataset(tmp_path / "tiny")
    args = ["--dataset", str(data), "--legs", "bm25", "--stopwords", "none", "--title", "none"]
    assert main(["tune", *args, "--out", str(tmp_path / "t"), "--folds", "3"]) == 0
    analysis = json.loads((tmp_path / "t" / "tune.json").read_text())["bm25_analysis"]
    assert analysis["stopwords"] is None and analysis["title"] == "none" and analysis["language"] == "en"
    assert '"stopwords": null' in (tmp_path / "t" / "tune.md").read_text()
    assert main(["bench", *args, "--out", str(tmp_path / "b")]) == 0
    bench = json.loads((tmp_path / "b" / "report.json").read_text())["bm25"]["analysis"]
    assert bench == analysis


def test_tune_and_bench_pass_the_user_dictionary_on(tmp_path, capsys):
    data = write_dataset(tmp_path / "tiny")
    words = tmp_path / "words.txt"
    words.write_text("dowry death\n", encoding="utf-8")
    args = ["--dataset", str(data), "--legs", "bm25", "--user-dict", str(words)]
    # English analysis has no jieba: the words reach the analyzer, which refuses them (not silently dropped)
    assert main(["tune", *args, "--out", str(tmp_path / "t"), "--folds", "3"]) == 2
    assert main(["bench", *args, "--out", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err.count("a user dictionary needs Chinese analysis") == 2


def test_tune_rejects_more_folds_than_queries(tmp_path, capsys):
    data = write_dataset(tmp_path / "tiny")
    assert main(["tune", "--dataset", str(data), "--out", str(tmp_path / "t"), "--legs", "bm25"]) == 2
    assert "more than the 3 queries" in capsys.readouterr().err


@pytest.mark.slow
def test_aila_tune_out_of_fold(aila_dir, tmp_path):
    out = tmp_path / "t"
    assert main(["tune", "--aila-dir", str(aila_dir), "--out", str(out)]) == 0
    report = json.loads((out / "tune.json").read_text())
    assert report["queries"] == 50 and report["track_split"]["test"] == "AILA_Q11-Q50"
    dense, bm25 = (report["baselines_all_queries"][k] for k in ("dense", "bm25"))
    assert dense == pytest.approx(0.20516, abs=1e-4) and bm25 == pytest.approx(0.21618, abs=1e-4)
    # the targets, measured here on every run: fusion must not hurt, and the OOF bar is 0.30
    assert report["out_of_fold"]["minus_best_single_leg"] >= -0.005
    assert report["out_of_fold"]["ndcg_at_10"] >= 0.30

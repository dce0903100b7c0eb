"""Direct tests of modules that were only exercised end to end: lexical engines, bench specs and comparisons,
report files, per-query scoring, settings, the vector store."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from retrieval.dense.chunking import ChunkSettings
from retrieval.dense.stores.faiss import FaissStore
from retrieval.evaluation import bench, report, scoring
from retrieval.lexical.engines import build_lexical, load_lexical
from retrieval.settings import Bm25Params, FusionConfig, Settings, read_settings, write_settings
from retrieval.spec import IndexSpec

DOCS = [["theft", "movabl", "properti"], ["murder", "death"], ["theft", "theft", "robberi"], [], ["cheat"]]


# ---- lexical.py ----------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["bm25s", "rank-bm25"])
def test_lexical_engines_score_save_load_and_postings(engine, tmp_path):
    index = build_lexical(DOCS, engine)
    scores = index.scores(["theft"])
    assert scores.dtype == np.float32 and scores.shape == (5,)
    assert scores[2] > scores[0] > 0 and scores[1] == 0 and scores[3] == 0  # tf 2 beats tf 1; no match = 0
    assert index.present(2, ["theft", "death", "robberi"]) == {"theft", "robberi"} and len(index) == 5
    index.save(tmp_path)
    loaded = load_lexical(tmp_path, index.engine, index.params)
    assert np.allclose(loaded.scores(["theft", "death"]), index.scores(["theft", "death"]))
    assert loaded.present(1, ["death"]) == {"death"} and loaded.present(0, ["death"]) == set()


def test_bm25s_matches_its_formula():
    index = build_lexical(DOCS, "bm25s", k1=1.2, b=0.5)
    n, df, lengths = 5, 2, np.array([3, 2, 3, 0, 1])
    avg = lengths.mean()
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5))  # Lucene's
    for row, tf in ((0, 1), (2, 2)):
        want = idf * tf / (tf + 1.2 * (1 - 0.5 + 0.5 * lengths[row] / avg))
        assert index.scores(["theft"])[row] == pytest.approx(want, rel=1e-5)


def test_title_field_adds_weighted_title_scores():
    titles = [["theft"], ["murder"], [], ["theft"], []]
    both = build_lexical(DOCS, "bm25s", title_tokens=titles, title_weight=2.0)
    text, title = build_lexical(DOCS, "bm25s"), build_lexical(titles, "bm25s")
    assert np.allclose(both.scores(["theft"]), text.scores(["theft"]) + 2.0 * title.scores(["theft"]))
    assert both.present(3, ["theft"]) == {"theft"}  # from the title alone


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="unknown BM25 engine"):
        build_lexical(DOCS, "lucene")


# ---- evaluation/scoring.py -------------------------------------------------------------
def test_ndcg_at_10_per_query_and_missing_queries_score_zero():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 1}, "q3": {}}
    results = {"q1": {"a": 2.0, "x": 1.0}, "q2": {"x": 3.0, "c": 2.0}}
    got = scoring.ndcg_at_10(results, qrels)
    assert set(got) == {"q1", "q2"} and got["q1"] == pytest.approx(1.0)
    ideal = 1 + 1 / np.log2(3)
    assert got["q2"] == pytest.approx((1 / np.log2(3)) / ideal)
    assert scoring.ndcg_at_10({}, qrels) == {"q1": 0.0, "q2": 0.0}


def test_metric_scores_keeps_ranking_metrics_only():
    got = scoring.metric_scores({"ndcg_at_10": 0.5, "map_at_1": 1, "main_score": 0.5, "evaluation_time": 3.0,
                                 "languages": ["eng"]})
    assert got == {"ndcg_at_10": 0.5, "map_at_1": 1.0, "main_score": 0.5}


# ---- evaluation/bench.py ----------------------------------------------------------------
def _cfg(legs, tuned=None):
    data = SimpleNamespace(corpus={"S1": {"title": "Theft", "text": "Whoever commits theft shall be punished."}})
    return bench.BenchConfig(data=data, spec=IndexSpec(legs=legs), tuned=tuned)


def test_bench_runs_and_ablation_follow_the_legs():
    assert [r for r, _, _ in bench._run_specs(_cfg(("bm25",)))] == ["bm25"]
    assert [r for r, _, _ in bench._run_specs(_cfg(("dense", "bm25")))] == ["dense", "bm25", "hybrid", "default"]
    tuned = Settings(FusionConfig("dbsf", weights={"dense": 0.4, "bm25": 0.6}), ChunkSettings(title_weight=0.5),
                     Bm25Params(k1=3.0))
    specs = bench._run_specs(_cfg(("dense", "bm25"), tuned))
    assert specs[-1] == ("tuned", "hybrid", tuned)
    ablation = {name: s for name, _, s in bench._ablation_specs(_cfg(("dense", "bm25"), tuned))}
    assert ablation["tuned with default BM25 (k1 1.5, b 0.75, whole query)"].bm25 == Bm25Params()
    assert ablation["tuned without chunking or titles"].chunking == ChunkSettings()
    assert ablation["tuned with equal-weight RRF k=60"].fusion == FusionConfig()
    assert bench._ablation_specs(_cfg(("dense", "bm25"))) == []


def test_bench_comparisons_are_paired_differences():
    per_query = {"dense": {"q1": 0.2, "q2": 0.4}, "bm25": {"q1": 0.1, "q2": 0.1}, "hybrid": {"q1": 0.3, "q2": 0.5}}
    got = bench._comparisons(per_query)
    assert set(got) == {"hybrid_minus_dense", "hybrid_minus_bm25"}
    assert got["hybrid_minus_dense"]["mean"] == pytest.approx(0.1) and got["hybrid_minus_bm25"]["mean"] == pytest.approx(0.3)


# ---- evaluation/report.py -------------------------------------------------------------------
def _report():
    run = {f"{m}_at_{k}": 0.4 for m in scoring.REPORT_METRICS for k in scoring.K_VALUES}
    run.update(ndcg_at_10=0.5, seconds=1.0)
    return {"task": "T", "queries": 2, "documents": 3, "model": "m", "legs": ["dense", "bm25"], "runs":
            {"dense": run, "bm25": {**run, "ndcg_at_10": 0.3}, "hybrid": {**run, "ndcg_at_10": 0.55}},
            "per_query": {"dense": {"q1": 0.5, "q2": 0.5}, "bm25": {"q1": 0.3, "q2": 0.3},
                          "hybrid": {"q1": 0.5, "q2": 0.6}},
            "comparison": {}, "run_names": {"dense": "a b", "bm25": "c", "hybrid": "d"},
            "phases": {"total_seconds": 3.0}, "protocol": "p", "mteb_version": "2", "language": "eng",
            "bm25": {"engine": "bm25s", "analysis": None}, "truncated": {}, "device": "cpu", "encoder": None,
            "query_prompt": None,
            "parity": {"bm25": {"ours": 0.3, "mteb": 0.3, "abs_diff": 0.0, "ok": True, "mteb_model": "x"},
                       "tolerance": 1e-4, "all_ok": True},
            "stock_mteb": {"rule": "stock", "bm25": {"ndcg_at_10": 0.29, "mteb_model": "x"}}}


def test_report_files_markdown_and_trec_runs(tmp_path):
    written = report.write_report(tmp_path, _report(), {"dense": {"q1": {"a": 1.0, "b": 1.0, "c": 2.0}}},
                                  {"tuned with k=60": {"x": 1}}, trec_runs=True)
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert names == {"report.json", "mteb/tuned_with_k-60.json", "report.md", "ndcg10.png", "runs/dense.trec"}
    md = (tmp_path / "report.md").read_text()
    assert "| bm25 | 0.30000 | 0.30000 | 0.0e+00 | yes | x |" in md
    assert "| bm25 | 0.30000 | 0.29000 | +0.01000 |" in md  # stock MTEB beside ours
    lines = (tmp_path / "runs" / "dense.trec").read_text().splitlines()
    assert lines == ["q1 Q0 c 1 2.000000 a_b", "q1 Q0 b 2 1.000000 a_b", "q1 Q0 a 3 1.000000 a_b"]  # ties: id desc
    assert json.loads((tmp_path / "report.json").read_text())["runs"]["hybrid"]["ndcg_at_10"] == 0.55


# ---- settings.py ------------------------------------------------------------------------------
def test_settings_round_trip_keeps_the_query_prompt(tmp_path):
    s = Settings(FusionConfig("rsf", weights={"dense": 0.3, "bm25": 0.7}), ChunkSettings(documents=True),
                 Bm25Params(k1=3.0, b=1.0, query_window=20), "Instruct: statutes\nQuery:")
    write_settings(tmp_path / "f.json", s, tuned_on="x")
    assert read_settings(tmp_path / "f.json") == s
    for bad in ({"bm25": {"k2": 1}}, {"fusion": {"method": "max"}}, {"bm25": {"b": 2}}, {"query_prompt": 3}):
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match="bad.json: cannot read settings"):
            read_settings(tmp_path / "bad.json")


def test_build_takes_the_query_prompt_of_a_settings_file(tmp_path, tiny_docs):
    from retrieval.cli import main

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n" for d in tiny_docs))
    write_settings(tmp_path / "f.json", Settings(query_prompt="query: "))
    assert main(["build", str(corpus), "--out", str(tmp_path / "ix"), "--fusion-config", str(tmp_path / "f.json")]) == 0
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["dense"]["query_prompt"] == "query: "


# ---- stores/faiss.py ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_store_add_allowed_and_get(kind):
    rng = np.random.default_rng(0)
    v = rng.standard_normal((400, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    store = FaissStore.build(v[:300], kind, ids=np.arange(1000, 1300))
    store.add(np.arange(2000, 2100), v[300:])
    assert len(store) == 400 and np.allclose(store.get(np.array([2005, 1001])), v[[305, 1]], atol=1e-6)
    if kind == "ivf":
        store.set_search_params(nprobe=store.index.nlist)  # every list: exact
    _, ids = store.search(v[[305]], 1)
    assert ids[0, 0] == 2005
    allowed = np.array([1003, 1007, 2050])
    _, ids = store.search(v[:2], 3, allowed=allowed)
    assert all(set(row) == set(allowed) for row in ids)  # k of them when k are allowed
    with pytest.raises(ValueError, match="one new, distinct id"):
        store.add(np.array([1000]), v[:1])


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_a_store_saved_with_removal_marks_loads_without_the_marked_vectors(tmp_path, kind):
    """Stores no longer mark removals (updates rebuild from kept vectors); a folder that has deleted.npy still loads."""
    from retrieval.dense.stores.faiss import DELETED_FILE

    v = np.random.default_rng(1).standard_normal((50, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    config = FaissStore.build(v, kind, ids=np.arange(100, 150)).save(tmp_path)
    marks = np.zeros(50, dtype=bool)
    marks[[3, 7]] = True
    np.save(tmp_path / DELETED_FILE, marks)  # as a store with `remove`d ids saved it
    store = FaissStore.load(tmp_path, config)
    assert len(store) == 48 and store.kind == kind and 103 not in store.search(v[[3]], 5)[1]
    assert store.search(v[[4]], 1)[1][0, 0] == 104


def test_a_vector_store_needs_no_remove_updates_rebuild_from_kept_vectors():
    from retrieval.dense.stores.base import VectorStore

    assert not hasattr(FaissStore, "remove")
    methods = {"dim", "__len__", "exact", "add", "search", "rebuilt", "get", "save"}
    store = type("Minimal", (), {**{m: lambda self, *a: None for m in methods}, "kind": "flat"})()
    assert isinstance(store, VectorStore)

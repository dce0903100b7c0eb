import json

import numpy as np

from retrieval.cli import main
from retrieval.perf import PerfConfig, measure, report, run_perf, suites, synthetic


def test_quick_run_writes_json_markdown_and_plots_into_results_not_the_published_docs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # as a newcomer runs it from the repository root
    assert main(["perf", "--quick", "--aila-dir", ""]) == 0
    assert not (tmp_path / "docs").exists()
    out = tmp_path / "results" / "perf"
    result = json.loads((out / "performance.json").read_text())
    assert {"machine", "versions", "config", "rules", "sizes", "fusion", "aila", "wall_seconds"} <= set(result)
    assert result["machine"]["cpu"] and result["machine"]["usable_cores"] >= 1
    assert 0 <= result["machine"]["other_processes_cpu_share"] <= 1
    assert [s["n"] for s in result["sizes"]] == [200, 1000]
    last = result["sizes"][-1]
    assert last["bm25s"]["build"]["seconds"] > 0 and last["bm25s"]["query"]["p50_ms"] > 0
    assert last["rank_bm25"]["query"]["p95_ms"] >= last["rank_bm25"]["query"]["p50_ms"] > 0
    kinds = last["dense"]["kinds"]
    assert set(kinds) == {"flat", "hnsw", "ivf"} and kinds["flat"]["recall_at_10"] == 1.0
    assert kinds["hnsw"]["ef_search"] in [p["ef_search"] for p in kinds["hnsw"]["sweep"]]
    assert 0 < kinds["ivf"]["recall_at_10"] <= 1 and kinds["ivf"]["nprobe"] >= 1
    index = last["index"]
    assert set(index["load"]) == {"read", "mmap", "read+sha256", "default"}
    assert index["files_mb"] > 0 and index["sha256_check"]["seconds"] > 0
    assert set(index["query"]) == {"hybrid", "dense", "bm25"}
    assert result["fusion"]["length"] == 1000 and result["fusion"]["p50_ms"] > 0
    assert "skipped" in result["aila"]
    md = (out / "performance.md").read_text()
    assert md.startswith("# Performance") and "Preliminary run" in md and "p50" in md and "recall" in md
    for kind in ("build", "query", "load", "memory"):
        png = out / f"performance-{kind}.png"
        assert png.read_bytes()[:4] == b"\x89PNG" and f"]({png.name})" in md


def test_rank_bm25_skipped_when_estimated_over_budget(tmp_path):
    result = _quick(tmp_path, sizes=(100, 200), queries=5, rank_bm25_budget_s=1e-6)
    assert "build" in result["sizes"][0]["rank_bm25"]
    skipped = result["sizes"][1]["rank_bm25"]
    assert skipped["skipped"] and skipped["from_n"] == 100 and skipped["estimated_seconds"] > 0
    assert "rank-bm25 | skipped: estimated" in (tmp_path / "performance.md").read_text()


def test_aila_end_to_end_quick(tmp_path, aila_dir):
    out = suites.aila(aila_dir, n_queries=2, repeats=1, work=tmp_path, statutes=5)
    assert out["statutes"] == 5 and out["distinct_queries"] == 50 and out["queries"] == 2
    assert set(out["search"]) == {"hybrid", "dense", "bm25"} and out["encode"]["p50_ms"] > 0
    assert out["model"].startswith("all-MiniLM-L6-v2")


def test_other_processes_cpu_share_and_shared_cpu_warning():
    start = {"machine": 100.0, "own": 10.0}
    # 20 s wall on 2 cores = 40 core-seconds; the machine used 30, this process 10: others took 20 = half
    assert measure.other_cpu_share(start, {"machine": 130.0, "own": 20.0}, wall=20.0, cores=2) == 0.5
    assert measure.other_cpu_share(start, {"machine": 110.0, "own": 20.0}, wall=20.0, cores=2) == 0.0
    assert measure.other_cpu_share(None, start, wall=1.0, cores=2) is None
    reading = measure.cpu_seconds()
    assert reading is None or reading["machine"] >= reading["own"] >= 0
    run = {"sizes": [{"n": 1_000_000}], "config": {"quick": False, "repeats": 3}, "started": "t", "wall_seconds": 60,
           "machine": {"other_processes_cpu_share": 0.2}}
    assert "Other processes used 20%" in report._header(run)
    run["machine"]["other_processes_cpu_share"] = 0.01
    assert "Shared CPU" not in report._header(run)


def test_synthetic_data_are_deterministic_prefixes():
    small, large = synthetic.documents(30), synthetic.documents(60)
    assert small == large[:30] and len({d.id for d in large}) == 60
    assert all(50 <= len(d.text.split()) <= 300 for d in large)
    v = synthetic.vectors(25, dim=16)
    assert np.array_equal(v, synthetic.vectors(50, dim=16)[:25])
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert synthetic.queries(5) == synthetic.queries(5) and len(synthetic.queries(5)) == 5


def _quick(tmp_path, **changes) -> dict:
    config = PerfConfig(**{**PerfConfig.quick_config().__dict__, **changes})
    run_perf(config, tmp_path)
    return json.loads((tmp_path / "performance.json").read_text())


def test_perf_passages_small_run_and_report_block(tmp_path):
    from retrieval.cli import main
    from retrieval.perf import passages

    (tmp_path / "performance.md").write_text("# Performance\n\nearlier figures\n")
    assert main(["perf", "passages", "3000", "--queries", "10", "--repeats", "1", "--out-dir", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "performance-passages.json").read_text())
    assert result["passages"] > 2900 and result["statutes"] == 600 and 0.5 <= result["recall_at_depth"] <= 1
    md = (tmp_path / "performance.md").read_text()
    assert md.startswith("# Performance\n\nearlier figures") and md.count(passages.BEGIN) == 1
    passages.embed(tmp_path / "performance.md", {**result, "recall_at_depth": 0.5})  # replaced, not added
    md = (tmp_path / "performance.md").read_text()
    assert md.count(passages.BEGIN) == 1 and "vs exact: 0.500" in md


def test_passage_leg_is_exact_when_it_fetches_every_passage():
    import numpy as np

    from retrieval.dense.stores.faiss import FaissStore
    from retrieval.legs.base import RowOrder
    from retrieval.legs.dense import DenseLeg
    from retrieval.perf import passages

    corpus = passages.passage_corpus(500, dim=16)
    qv, owner = passages.query_windows(5, dim=16)
    leg = DenseLeg(FaissStore.build(corpus.vectors, "flat"), RowOrder(np.arange(corpus.n_docs)),
                   n_docs=corpus.n_docs, chunking=passages.CHUNKING, passage_docs=corpus.passage_docs,
                   title_docs=corpus.title_docs)
    depth = corpus.n_docs  # the whole corpus asked of an exact store: every statute is a candidate
    for q, ranking in enumerate(leg.rank_vectors(qv, owner, 5, depth)):
        exact = leg.exact_scores_of(qv[owner == q], np.zeros(int((owner == q).sum()), np.int64))[0]
        assert [r for r, _ in ranking] == [r for r, _ in leg.order.top(exact, depth)]


def test_update_benchmark_corpora_change_one_percent():
    from retrieval.perf import updates

    before, after, counts = updates.corpora(1000)
    assert counts == {"changed": 5, "added": 2, "removed": 3}
    old, new = {d.id: d for d in before}, {d.id: d for d in after}
    assert len(set(old) - set(new)) == 3 and len(set(new) - set(old)) == 2
    changed = [i for i in set(old) & set(new) if old[i] != new[i]]
    assert len(changed) == 5 and all(new[i].text == old[i].text + updates.AMENDMENT for i in changed)


def test_perf_updates_small_run_times_three_commands(tmp_path):
    """Build, update and rebuild run as whole commands; the update encodes only changed and added texts."""
    from retrieval.perf import updates

    (tmp_path / "performance.md").write_text("# Performance\n\nearlier figures\n")
    assert main(["perf", "updates", "200", "--out-dir", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "performance-updates.json").read_text())
    plan = result["plan"]
    assert (len(plan["changed"]), len(plan["added"]), len(plan["removed"]), plan["unchanged"]) == (2, 1, 1, 197)
    assert plan["encoded"] == 3 and result["dense"]["index"] == "flat"
    c = result["commands"]
    assert c["update"]["command"].startswith("python -m retrieval update ")
    assert result["ratio"] == c["update"]["seconds"] / c["rebuild"]["seconds"] > 0
    md = (tmp_path / "performance.md").read_text()
    assert md.startswith("# Performance\n\nearlier figures") and md.count(updates.BEGIN) == 1
    assert f"ratio: {result['ratio']:.3f}" in md and "WORK/corpus-changed.jsonl" in md


def test_perf_filtered_small_run_k_hits_inside_the_filter(tmp_path):
    from retrieval.perf import filtered

    assert main(["perf", "filtered", "2000", "--queries", "5", "--repeats", "1", "--out-dir", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "performance-filtered.json").read_text())
    runs = result["runs"]
    assert {(r["store"], r["mode"]) for r in runs} == {("flat", "dense"), ("flat", "bm25"), ("flat", "hybrid"),
                                                       ("hnsw", "dense"), ("hnsw", "hybrid")}
    assert [r["allowed"] for r in runs[:4]] == [None, 20, 200, 1000]
    assert all(r["starved"] == 0 and r["hits_outside_filter"] == 0 for r in runs)
    assert all(r["min_hits"] == filtered.K for r in runs if r["mode"] != "bm25")
    md = (tmp_path / "performance.md").read_text()
    assert md.count(filtered.BEGIN) == 1 and "| hnsw | dense |" in md


def test_filtered_benchmark_counts_starved_queries():
    """A search that returns fewer than k hits while k allowed documents match counts as starved."""
    from retrieval.perf import filtered

    class Starving:  # a retriever whose filtered search drops every other hit
        legs, ids = ("dense",), [f"P{i}" for i in range(100)]

        def where(self, expr):
            return np.arange(50)

        def legs_for(self, mode):
            return self.legs

        def search(self, query, k, mode, query_vector, allowed):
            return [type("Hit", (), {"id": self.ids[r]})() for r in (allowed[:k:2] if allowed is not None else range(k))]

    run = filtered._run(Starving(), "dense", 0.5, [("q", None)] * 3, repeats=1)
    assert (run["starved"], run["min_hits"], run["hits_outside_filter"]) == (3, 5, 0)


def test_an_old_perf_mode_flag_says_in_one_line_which_subcommand_replaced_it(capsys):
    import pytest

    for old, new in [(["--passages", "3000"], "retrieval perf passages N"), (["--bm25-builds-only"], "perf bm25-builds"),
                     (["--updates", "200"], "perf updates N"), (["--milvus", "1000"], "perf milvus SIZES")]:
        with pytest.raises(SystemExit) as e:
            main(["perf", *old, "--out-dir", "x"])
        err = capsys.readouterr().err
        assert e.value.code == 2 and len(err.splitlines()) == 1 and new in err and old[0] in err, err


def test_perf_subcommands_take_their_options_before_or_after_the_benchmark_name(tmp_path, monkeypatch):
    """`perf --out-dir D filtered N` and `perf filtered N --out-dir D` both write into D."""
    from retrieval.perf import cli

    seen = []
    monkeypatch.setattr(cli, "cmd_live", lambda args: seen.append((args.out_dir, args.queries, args.n)) or 0)
    monkeypatch.setattr(cli, "cmd_passages", lambda args: seen.append((args.out_dir, args.queries, args.n)) or 0)
    assert main(["perf", "--out-dir", "A", "--queries", "7", "filtered", "300"]) == 0
    assert main(["perf", "passages", "400", "--out-dir", "B"]) == 0
    assert seen == [("A", 7, 300), ("B", None, 400)]

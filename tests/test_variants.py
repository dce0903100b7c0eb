"""Derived comparison sets (scripts/default_fusion.py, scripts/langid_compare.py): AILA without titles, STARD subsets."""

from __future__ import annotations

from pathlib import Path

from test_eval_datasets import write_aila, write_folder

from retrieval.evaluation.variants import aila_statutes, aila_without_titles, stard_subset


def test_aila_without_titles_keeps_every_statute_cut_after_desc_and_the_judged_queries(tmp_path: Path) -> None:
    folder = write_aila(tmp_path, "AILA_Q1||a\nAILA_Q2||b\nAILA_Q3||c\n", "AILA_Q1 Q0 S1 1\nAILA_Q2 Q0 S1 0\n")
    assert aila_statutes(folder) == {"S1": "Title: S1\nDesc: text", "S2": "Title: S2\nDesc: text"}
    data = aila_without_titles(folder)
    assert data.corpus == {s: {"title": "", "text": "text"} for s in ("S1", "S2")}  # S2 is judged by no query
    assert data.queries == {"AILA_Q1": "a"} and data.qrels == {"AILA_Q1": {"S1": 1}}


def test_a_stard_subset_holds_the_drawn_queries_their_articles_and_others_and_is_the_same_for_a_seed(tmp_path):
    corpus = [{"id": f"d{i}", "title": "", "text": f"第{i}条 依法成立的合同，受法律保护。"} for i in range(20)]
    queries = [{"id": f"q{i}", "text": f"合同{i}"} for i in range(6)]
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{2 * i}\t1\n" for i in range(6))
    folder = write_folder(tmp_path / "stard", corpus, queries, qrels)
    sub = stard_subset(folder, seed=3, queries=2, others=4)
    assert len(sub.queries) == 2 and set(sub.qrels) == set(sub.queries) and len(sub.corpus) == 2 + 4
    assert {d for judged in sub.qrels.values() for d in judged} <= set(sub.corpus)
    again = stard_subset(folder, seed=3, queries=2, others=4)
    assert (list(again.corpus), list(again.queries)) == (list(sub.corpus), list(sub.queries))

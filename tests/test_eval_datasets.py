"""Offline data sets for MTEB: AILAStatutes rebuilt from the release, BEIR-style folders, their validation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from retrieval.corpus import CorpusError
from retrieval.evaluation.datasets import (
    DatasetError,
    RetrievalData,
    descriptive_stats,
    load_aila,
    load_dataset_folder,
    mteb_task,
)

AILA_DIR = os.environ.get("AILA2019_DIR")
STARD_DIR = os.environ.get("STARD_DIR")
needs_aila = pytest.mark.skipif(not AILA_DIR, reason="AILA2019_DIR is not set")
needs_stard = pytest.mark.skipif(not STARD_DIR, reason="STARD_DIR is not set")

CORPUS = [
    {"id": "d1", "title": "Theft", "text": "Whoever steals movable property shall be punished."},
    {"id": "d2", "title": "", "text": "A contract needs free consent of the parties."},
    {"id": "d3", "text": "The court may issue writs of habeas corpus."},
]
QUERIES = [
    {"id": "q1", "text": "Someone steals my property."},
    {"id": "q2", "text": "Is a contract without consent valid?"},
]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n"


def write_folder(folder: Path, corpus: list | str = CORPUS, queries: list | str = QUERIES, qrels: str = QRELS) -> Path:
    """A BEIR-style folder; lists of rows become JSON lines, strings are written as they are."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
        text = rows if isinstance(rows, str) else "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "qrels.tsv").write_text(qrels, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def aila() -> RetrievalData:
    return load_aila(AILA_DIR)


@needs_aila
def test_aila_matches_mteb_published_statistics(aila: RetrievalData) -> None:
    import mteb

    stats = descriptive_stats(aila)
    documents, queries = stats["documents_text_statistics"], stats["queries_text_statistics"]
    relevant = stats["relevant_docs_statistics"]
    assert stats["num_documents"] == 82
    assert (documents["total_text_length"], documents["min_text_length"], documents["max_text_length"]) == (
        161_756,
        162,
        26_037,
    )
    assert stats["num_queries"] == 50
    assert queries["total_text_length"] == 151_921
    assert relevant["num_relevant_docs"] == 217
    assert (relevant["min_relevant_docs_per_query"], relevant["max_relevant_docs_per_query"]) == (2, 5)

    published = mteb.get_task("AILAStatutes").metadata.descriptive_stats["test"]
    for key, value in published.items():
        expected = {k: stats[key][k] for k in value} if isinstance(value, dict) else stats[key]
        assert expected == value, key


@needs_aila
def test_aila_content(aila: RetrievalData) -> None:
    assert (aila.name, aila.language) == ("AILAStatutes", "eng-Latn")
    assert list(aila.queries) == [f"AILA_Q{n}" for n in range(1, 51)]
    assert "S58" not in aila.corpus and all(not query.startswith("|") for query in aila.queries.values())
    assert all(doc["title"] == "" and doc["text"].startswith("Title: ") for doc in aila.corpus.values())
    assert all(doc["text"] == doc["text"].strip() for doc in aila.corpus.values())
    assert set(aila.corpus) == {doc_id for judged in aila.qrels.values() for doc_id in judged}


@needs_aila
def test_aila_task_is_mteb_own_with_data_injected(aila: RetrievalData) -> None:
    import mteb

    task = mteb_task(aila)
    assert task.metadata == mteb.get_task("AILAStatutes").metadata
    assert task.data_loaded
    split = task.dataset["default"]["test"]
    assert (len(split["corpus"]), len(split["queries"]), split["top_ranked"]) == (82, 50, None)
    assert split["relevant_docs"] == aila.qrels
    assert not mteb_task().data_loaded


def _bm25():
    import mteb

    return mteb.get_model_meta("mteb/baseline-bm25s").load_model()


@needs_aila
def test_aila_bm25_reproduces_leaderboard_ndcg_at_10(aila: RetrievalData) -> None:
    """The public leaderboard's BM25 figure on the rebuilt data (dense and RRF: tests/test_bench.py)."""
    import mteb

    result = mteb.evaluate(_bm25(), mteb_task(aila), cache=None, show_progress_bar=False)
    (task_result,) = result.task_results
    assert task_result.task_name == "AILAStatutes"
    assert task_result.get_score() == pytest.approx(0.21618, abs=1e-4)


@needs_stard
def test_stard_folder() -> None:
    data = load_dataset_folder(STARD_DIR)
    assert (data.name, data.language) == ("stard", "zho-Hans")
    assert (len(data.queries), len(data.corpus), sum(map(len, data.qrels.values()))) == (1_235, 58_626, 2_205)
    task = mteb_task(data)
    metadata = task.metadata
    assert (metadata.name, metadata.type, metadata.main_score) == ("stard", "Retrieval", "ndcg_at_10")
    assert (metadata.eval_langs, metadata.eval_splits) == (["zho-Hans"], ["test"])
    assert task.data_loaded and len(task.dataset["default"]["test"]["corpus"]) == 58_626


def test_tiny_folder_is_read_and_evaluated(tmp_path: Path) -> None:
    import mteb

    data = load_dataset_folder(write_folder(tmp_path / "tiny-laws"))
    assert (data.name, data.language) == ("tiny-laws", "eng-Latn")
    assert data.corpus["d3"] == {"title": "", "text": "The court may issue writs of habeas corpus."}
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}}
    assert descriptive_stats(data)["relevant_docs_statistics"]["num_relevant_docs"] == 2

    result = mteb.evaluate(_bm25(), mteb_task(data), cache=None, show_progress_bar=False)
    (task_result,) = result.task_results
    assert task_result.task_name == "tiny-laws"
    assert task_result.get_score() == pytest.approx(1.0)


def test_language_detection_and_override(tmp_path: Path) -> None:
    corpus = [{"id": "1", "title": "民法典第一条", "text": "依法成立的合同，受法律保护。"}]
    queries = [{"id": "q", "text": "合同什么时候生效？(law)"}]
    folder = write_folder(tmp_path / "zh", corpus, queries, "query-id\tcorpus-id\tscore\nq\t1\t1\n")
    assert load_dataset_folder(folder).language == "zho-Hans"
    assert load_dataset_folder(folder, language="eng-Latn").language == "eng-Latn"


LINE = json.dumps(CORPUS[0]) + "\n"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"qrels": QRELS + "q9\td1\t1\n"}, r"qrels\.tsv:4: unknown query id 'q9'"),
        ({"qrels": QRELS + "q1\td9\t1\n"}, r"qrels\.tsv:4: unknown corpus id 'd9'"),
        ({"qrels": QRELS + "q1\td1\t1\n"}, r"qrels\.tsv:4: duplicate judgment of 'q1', 'd1'"),
        ({"qrels": QRELS + "q1\td3\n"}, r"qrels\.tsv:4: expected '<query-id><TAB><corpus-id><TAB><integer score>'"),
        ({"qrels": "q1\td1\t1\n"}, r"qrels\.tsv:1: expected the header"),
        ({"qrels": "query-id\tcorpus-id\tscore\n"}, r"qrels\.tsv: no relevance judgments"),
        ({"corpus": LINE + LINE}, r"corpus\.jsonl:2: duplicate id 'd1'"),
        ({"queries": [QUERIES[0], QUERIES[0]]}, r"queries\.jsonl:2: duplicate id 'q1'"),
        ({"queries": [QUERIES[0], {"id": "q2", "text": " "}]}, r"queries\.jsonl:2: empty query text"),
        ({"queries": [QUERIES[0], {"id": "q2"}]}, r"queries\.jsonl:2: field 'text' must be a string"),
        ({"corpus": LINE + '{"id": "d2", "text": }\n'}, r"corpus\.jsonl:2: invalid JSON"),
        ({"corpus": LINE + "[1, 2]\n"}, r"corpus\.jsonl:2: expected a JSON object"),
        ({"corpus": [{"id": "", "text": "x"}]}, r"corpus\.jsonl:1: empty id"),
    ],
)
def test_folder_errors_name_file_and_line(tmp_path: Path, files: dict, message: str) -> None:
    folder = write_folder(tmp_path / "bad", **files)
    with pytest.raises(CorpusError, match=message) as error:  # DatasetError is a CorpusError
        load_dataset_folder(folder)
    assert "\n" not in str(error.value)


def test_folder_bad_bytes_and_missing_file(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "bad")
    (folder / "queries.jsonl").write_bytes(json.dumps(QUERIES[0]).encode() + b'\n{"id": "q2", "text": "\xff"}\n')
    with pytest.raises(CorpusError, match=r"queries\.jsonl:2: not valid UTF-8 \(byte 0xff\)"):
        load_dataset_folder(folder)
    (folder / "qrels.tsv").unlink()
    (folder / "queries.jsonl").unlink()
    with pytest.raises(CorpusError, match=r"queries\.jsonl: cannot read \(No such file"):
        load_dataset_folder(folder)


def write_aila(folder: Path, queries: str, judgments: str) -> Path:
    """A two-statute AILA-style release."""
    (folder / "Object_statutes").mkdir(parents=True)
    for statute in ("S1", "S2"):
        (folder / "Object_statutes" / f"{statute}.txt").write_text(f"Title: {statute}\nDesc: text\n")
    (folder / "Query_doc.txt").write_text(queries)
    (folder / "relevance_judgments_statutes.txt").write_text(judgments)
    return folder


def test_aila_reader_on_tiny_release(tmp_path: Path) -> None:
    judgments = "AILA_Q1 Q0 S1 1\nAILA_Q1 Q0 S2 0\nAILA_Q1 Q0 S58 1\nAILA_Q2 Q0 S2 1"
    data = load_aila(write_aila(tmp_path, "AILA_Q1||a || b\r\nAILA_Q2||c\n", judgments))
    assert data.queries == {"AILA_Q1": "a || b", "AILA_Q2": "c"}
    assert data.qrels == {"AILA_Q1": {"S1": 1}, "AILA_Q2": {"S2": 1}}
    assert data.corpus == {s: {"title": "", "text": f"Title: {s}\nDesc: text"} for s in ("S1", "S2")}


@pytest.mark.parametrize(
    ("queries", "judgments", "message"),
    [
        ("AILA_Q1||a\nAILA_Q2 b\n", "", r"Query_doc\.txt:2: expected '<query-id>\|\|<text>'"),
        ("AILA_Q1||a\nAILA_Q1||b\n", "", r"Query_doc\.txt:2: duplicate id 'AILA_Q1'"),
        ("AILA_Q1||a\n", "AILA_Q1 Q0 S1 1\nAILA_Q1 S2 1\n", r"relevance_judgments_statutes\.txt:2: expected"),
        ("AILA_Q1||a\n", "AILA_Q1 Q0 S1 2\n", r"relevance_judgments_statutes\.txt:1: expected"),
        ("AILA_Q1||a\n", "AILA_Q7 Q0 S1 1\n", r"relevance_judgments_statutes\.txt:1: unknown query id 'AILA_Q7'"),
    ],
)
def test_aila_errors_name_file_and_line(tmp_path: Path, queries: str, judgments: str, message: str) -> None:
    folder = write_aila(tmp_path, queries, judgments)
    with pytest.raises(DatasetError, match=message):
        load_aila(folder)


def test_aila_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"Query_doc\.txt: No such file"):
        load_aila(tmp_path)

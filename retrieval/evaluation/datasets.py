"""Retrieval data sets loaded from local files and handed to MTEB, so that nothing is downloaded."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..corpus import CorpusError, iter_jsonl
from ..languages import analysis_language

if TYPE_CHECKING:
    from mteb.abstasks.retrieval import AbsTaskRetrieval

AILA_TASK = "AILAStatutes"
SPLIT = "test"
SUBSET = "default"
_AILA_JUDGMENT = re.compile(r"(\S+)\s+Q0\s+(S\d+)\s+([01])\s*")
_QRELS_HEADER = ["query-id", "corpus-id", "score"]


class DatasetError(CorpusError):
    """A data file is missing or malformed; the message names the file and, where known, the line."""


@dataclass(frozen=True)
class RetrievalData:
    """A retrieval data set in memory, in the shape MTEB evaluates (one test split)."""

    name: str
    language: str
    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_aila(aila_dir: str | Path) -> RetrievalData:
    """Rebuild MTEB's AILAStatutes test set from the AILA 2019 release, so MTEB needs no download."""
    root = Path(aila_dir)
    queries_path = root / "Query_doc.txt"
    queries: dict[str, str] = {}
    for number, line in enumerate(_lines(queries_path), 1):
        query_id, separator, text = line.partition("||")
        if not (separator and query_id and text):
            raise DatasetError(f"{queries_path}:{number}: expected '<query-id>||<text>'")
        _add(queries, query_id, text, queries_path, number)

    judgments_path = root / "relevance_judgments_statutes.txt"
    qrels: dict[str, dict[str, int]] = {}
    for number, line in enumerate(_lines(judgments_path), 1):
        match = _AILA_JUDGMENT.fullmatch(line)
        if match is None:
            raise DatasetError(f"{judgments_path}:{number}: expected '<query-id> Q0 S<n> <0|1>'")
        query_id, statute_id, score = match.groups()
        if query_id not in queries:
            raise DatasetError(f"{judgments_path}:{number}: unknown query id {query_id!r}")
        # MTEB keeps the relevant pairs whose statute exists; S58 is judged but has no file.
        if score == "1" and (root / "Object_statutes" / f"{statute_id}.txt").is_file():
            qrels.setdefault(query_id, {})[statute_id] = 1

    statute_ids = sorted({s for judged in qrels.values() for s in judged}, key=lambda s: int(s[1:]))
    corpus = {
        s: {"title": "", "text": _read_text(root / "Object_statutes" / f"{s}.txt").strip()}
        for s in statute_ids
    }
    return RetrievalData(AILA_TASK, "eng-Latn", corpus, queries, qrels)


def load_dataset_folder(folder: str | Path, language: str | None = None) -> RetrievalData:
    """Load a BEIR-style folder (corpus.jsonl, queries.jsonl, qrels.tsv), failing early on bad data."""
    root = Path(folder)
    corpus: dict[str, dict[str, str]] = {}
    path = root / "corpus.jsonl"
    for number, row in iter_jsonl(path):
        document = {"title": _text(row, "title", path, number, default=""), "text": _text(row, "text", path, number)}
        _add(corpus, _identifier(row, path, number), document, path, number)

    queries: dict[str, str] = {}
    path = root / "queries.jsonl"
    for number, row in iter_jsonl(path):
        text = _text(row, "text", path, number)
        if not text.strip():
            raise DatasetError(f"{path}:{number}: empty query text")
        _add(queries, _identifier(row, path, number), text, path, number)

    qrels = _read_qrels(root / "qrels.tsv", queries, corpus)
    return RetrievalData(root.name, language or _mteb_language(queries.values()), corpus, queries, qrels)


def mteb_task(data: RetrievalData | None = None) -> AbsTaskRetrieval:
    """An MTEB retrieval task already holding `data`, so `mteb.evaluate` downloads nothing.

    AILA data goes into MTEB's own AILAStatutes task (its name, metadata and dataset revision); other data gets a
    task of its own. Without data this is the stock AILAStatutes task, which downloads its data when evaluated.
    """
    import mteb
    from datasets import Dataset
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData

    task = mteb.get_task(AILA_TASK) if data is None or data.name == AILA_TASK else _custom_task(data)
    if data is not None:
        corpus = Dataset.from_dict(
            {
                "id": list(data.corpus),
                "title": [document["title"] for document in data.corpus.values()],
                "text": [document["text"] for document in data.corpus.values()],
            }
        )
        queries = Dataset.from_dict({"id": list(data.queries), "text": list(data.queries.values())})
        split = RetrievalSplitData(corpus=corpus, queries=queries, relevant_docs=data.qrels, top_ranked=None)
        task.dataset = {SUBSET: {SPLIT: split}}
        task.data_loaded = True
    return task


def descriptive_stats(data: RetrievalData) -> dict[str, Any]:
    """MTEB's descriptive statistics of `data` (as in mteb/descriptive_stats), to compare with published ones."""
    task = mteb_task(data)
    return dict(task._calculate_descriptive_statistics_from_split(SPLIT, hf_subset=SUBSET))


def data_fingerprint(data: RetrievalData) -> str:
    """sha256 of the corpus, queries and judgments: the same data gives the same hex digest."""
    return hashlib.sha256(json.dumps([data.corpus, data.queries, data.qrels], sort_keys=True).encode()).hexdigest()


def subset(data: RetrievalData, query_ids: Iterable[str]) -> RetrievalData:
    """The same corpus with only these queries and their judgments."""
    keep = list(query_ids)
    return RetrievalData(data.name, data.language, data.corpus, {q: data.queries[q] for q in keep},
                         {q: data.qrels[q] for q in keep if q in data.qrels})


def _custom_task(data: RetrievalData) -> AbsTaskRetrieval:
    """A retrieval task for a local data set; a class, as MTEB looks up instruction prompts by task class."""
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.task_metadata import TaskMetadata

    fingerprint = data_fingerprint(data)
    metadata = TaskMetadata(
        name=data.name,
        description=f"Local retrieval data set {data.name!r}, read from a BEIR-style folder.",
        dataset={"path": f"local/{data.name}", "revision": fingerprint[:16]},
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        eval_splits=[SPLIT],
        eval_langs=[data.language],
        main_score="ndcg_at_10",
    )
    task_class = type("LocalRetrieval", (AbsTaskRetrieval,), {"metadata": metadata, "__module__": __name__})
    return task_class()


def _read_text(path: Path) -> str:
    """The file decoded as UTF-8, with the line of the first bad byte in the error."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"{path}: {error.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise DatasetError(f"{path}:{line}: invalid UTF-8 byte 0x{raw[error.start]:02x}") from None


def _lines(path: Path) -> list[str]:
    """The lines of a text file, without line endings and without the empty piece after a final newline."""
    lines = [line.removesuffix("\r") for line in _read_text(path).split("\n")]
    return lines[:-1] if lines[-1] == "" else lines


def _text(row: dict[str, Any], field: str, path: Path, number: int, default: str | None = None) -> str:
    """A string field of a JSON row (or `default` when absent)."""
    value = row.get(field, default)
    if not isinstance(value, str):
        raise DatasetError(f"{path}:{number}: field {field!r} must be a string")
    return value


def _identifier(row: dict[str, Any], path: Path, number: int) -> str:
    """The non-empty string id of a JSON row."""
    identifier = _text(row, "id", path, number)
    if not identifier:
        raise DatasetError(f"{path}:{number}: empty id")
    return identifier


def _add(items: dict[str, Any], key: str, value: Any, path: Path, number: int) -> None:
    """Insert a new id, refusing duplicates."""
    if key in items:
        raise DatasetError(f"{path}:{number}: duplicate id {key!r}")
    items[key] = value


def _read_qrels(path: Path, queries: dict[str, str], corpus: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Relevance judgments from a TSV file with a header, checked against the known query and corpus ids."""
    lines = _lines(path)
    if not lines or lines[0].split("\t") != _QRELS_HEADER:
        raise DatasetError(f"{path}:1: expected the header 'query-id<TAB>corpus-id<TAB>score'")
    qrels: dict[str, dict[str, int]] = {}
    for number, line in enumerate(lines[1:], 2):
        fields = line.split("\t")
        if len(fields) != 3 or not re.fullmatch(r"-?\d+", fields[2]):
            raise DatasetError(f"{path}:{number}: expected '<query-id><TAB><corpus-id><TAB><integer score>'")
        query_id, doc_id, score = fields
        if query_id not in queries:
            raise DatasetError(f"{path}:{number}: unknown query id {query_id!r}")
        if doc_id not in corpus:
            raise DatasetError(f"{path}:{number}: unknown corpus id {doc_id!r}")
        judged = qrels.setdefault(query_id, {})
        if doc_id in judged:
            raise DatasetError(f"{path}:{number}: duplicate judgment of {query_id!r}, {doc_id!r}")
        judged[doc_id] = int(score)
    if not qrels:
        raise DatasetError(f"{path}: no relevance judgments")
    return qrels


def _mteb_language(texts: Iterable[str]) -> str:
    """MTEB's language code for the texts' language, as BM25's `--language auto` identifies it."""
    return "zho-Hans" if analysis_language(list(texts)) == "zh" else "eng-Latn"


def load_aila_from_hub() -> RetrievalData:
    """MTEB's AILAStatutes as downloaded by MTEB (needs network); a clear error when offline."""
    import mteb

    task = mteb.get_task(AILA_TASK)
    try:
        task.load_data()
    except Exception as e:  # offline, hub unreachable, ...
        raise DatasetError(
            f"cannot download {AILA_TASK} ({type(e).__name__}); offline, set --aila-dir or AILA2019_DIR "
            "to the AILA 2019 release folder (Object_statutes/, Query_doc.txt, relevance_judgments_statutes.txt)"
        ) from None
    split = task.dataset[SUBSET][SPLIT]
    corpus = {row["id"]: {"title": row.get("title") or "", "text": row["text"]} for row in split["corpus"]}
    queries = {row["id"]: row["text"] for row in split["queries"]}
    qrels = {q: dict(d) for q, d in split["relevant_docs"].items()}
    return RetrievalData(AILA_TASK, "eng-Latn", corpus, queries, qrels)

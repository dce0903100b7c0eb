"""Training pairs for the dense leg: (query window, relevant statute) per judged query, hard negatives mined.

A long query is cut into the windows the dense leg uses at query time (legs/dense.split_for), and each window
is paired with every statute judged relevant to its query. Hard negatives come from
sentence_transformers.util.mine_hard_negatives over the base model; a document judged relevant to the
query is never a negative (mine_hard_negatives treats all of an anchor's rows as its positives, and the
rows left are checked again here). Label-free pairs (a statute's title -> its text, a heading -> the body under
it) use no query at all; `corpus_only` makes training data of a corpus alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..corpus import CorpusError, Document
from ..dense.chunking import ChunkSettings
from ..dense.encoders import Encoder
from ..evaluation.datasets import RetrievalData
from ..legs.dense import split_for


@dataclass(frozen=True)
class Pairs:
    """Rows of (anchor, positive, negatives...) and the query each row came from (None: label-free)."""

    anchors: list[str]
    positives: list[str]
    negatives: list[list[str]]
    query_ids: list[str | None]

    def __len__(self) -> int:
        return len(self.anchors)

    def columns(self) -> dict[str, list[str]]:
        """The columns of a datasets.Dataset for the trainer: anchor, positive, negative_1.. (as many as every row has)."""
        n = min((len(n) for n in self.negatives), default=0)
        cols = {"anchor": self.anchors, "positive": self.positives}
        cols.update({f"negative_{i + 1}": [row[i] for row in self.negatives] for i in range(n)})
        return cols


def documents(data: RetrievalData) -> dict[str, Document]:
    """The corpus as the legs index it."""
    return {d: Document.from_row(d, v.get("title"), v["text"]) for d, v in data.corpus.items()}


def check_queries(data: RetrievalData, qids: Sequence[str], source: str) -> None:
    """Training queries must exist and be judged: one line naming the first that is not."""
    for q in qids:
        if q not in data.queries:
            raise CorpusError(f"{source}: unknown query id {q!r}")
        if not any(s > 0 for s in data.qrels.get(q, {}).values()):
            raise CorpusError(f"{source}: training query {q!r} has no relevance judgments (qrels)")


def read_query_ids(path: str | Path, data: RetrievalData) -> list[str]:
    """Training query ids from a file: one per line, or a BEIR qrels split (query-id first, header skipped)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise CorpusError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    out: list[str] = []
    for number, line in enumerate(lines, 1):
        q = line.split("\t")[0].strip()
        if not q or (number == 1 and q == "query-id"):
            continue
        if q not in data.queries:
            raise CorpusError(f"{path}:{number}: unknown query id {q!r}")
        if q not in out:
            out.append(q)
    if not out:
        raise CorpusError(f"{path}: names no query")
    return out


def query_pairs(encoder: Encoder, data: RetrievalData, qids: Sequence[str]) -> Pairs:
    """(window, relevant statute text) for every window of every training query."""
    docs = documents(data)
    anchors, positives, owners = [], [], []
    for q in qids:
        windows, _ = split_for(encoder, [data.queries[q]], ChunkSettings(queries=True), encoder.query_prompt)
        relevant = [docs[d].indexed_text() for d, s in data.qrels.get(q, {}).items() if s > 0 and d in docs]
        for w in windows:
            for text in relevant:
                anchors.append(w)
                positives.append(text)
                owners.append(q)
    return Pairs(anchors, positives, [[] for _ in anchors], owners)


def corpus_pairs(data: RetrievalData) -> Pairs:
    """Label-free pairs of the statutes that have a title: title -> text, or, where the text opens with its
    heading (AILA's `Title: ...` line), heading -> the body after it."""
    rows = [(d.title, body) for d in documents(data).values() if d.title and (body := _body(d))]
    return Pairs([a for a, _ in rows], [b for _, b in rows], [[] for _ in rows], [None] * len(rows))


def _body(doc: Document) -> str:
    """The text without its title: the whole text when it does not hold the title, the lines after a heading
    line that holds it (AILA's `Desc:` label cut), else '' (no clean split)."""
    if doc.title not in doc.text:
        return doc.text
    first, _, rest = doc.text.partition("\n")
    if doc.title not in first:
        return ""
    rest = rest.strip()
    return rest[len("Desc:"):].strip() if rest.startswith("Desc:") else rest


def corpus_only(path: str | Path) -> RetrievalData:
    """A corpus alone (any format `build` reads) as training data without queries: label-free pairs only."""
    from ..corpus import read_corpus

    docs = read_corpus(path)
    return RetrievalData(Path(path).name, "und", {d.id: {"title": d.title, "text": d.text} for d in docs}, {}, {})


def merge(a: Pairs, b: Pairs) -> Pairs:
    """Both sets of rows, `a` first."""
    return Pairs(a.anchors + b.anchors, a.positives + b.positives, a.negatives + b.negatives, a.query_ids + b.query_ids)


def with_hard_negatives(pairs: Pairs, encoder: Encoder, data: RetrievalData, n: int, seed: int) -> Pairs:
    """Each row gains `n` negatives mined by the base model over the whole corpus, none judged relevant to the
    row's query; rows for which fewer than `n` are found are left out."""
    if n <= 0 or not len(pairs):
        return pairs
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    corpus = list(dict.fromkeys(d.indexed_text() for d in documents(data).values()))
    mined = mine_hard_negatives(Dataset.from_dict({"anchor": pairs.anchors, "positive": pairs.positives}),
                                encoder.model, corpus=corpus, num_negatives=n, sampling_strategy="top",
                                query_prompt=encoder.query_prompt, corpus_prompt=encoder.document_prompt,
                                output_format="n-tuple", batch_size=encoder.config.batch_size, verbose=False)
    by_row = {(r["anchor"], r["positive"]): [r[f"negative_{i + 1}"] for i in range(n)] for r in mined}
    relevant = _relevant_texts(pairs, data)
    negatives = []
    for a, p, q in zip(pairs.anchors, pairs.positives, pairs.query_ids):
        found = [t for t in by_row.get((a, p), []) if t not in relevant.get(q, ())]
        negatives.append(found if len(found) == n else [])
    keep = [i for i, neg in enumerate(negatives) if neg]
    return Pairs([pairs.anchors[i] for i in keep], [pairs.positives[i] for i in keep], [negatives[i] for i in keep],
                 [pairs.query_ids[i] for i in keep])


def _relevant_texts(pairs: Pairs, data: RetrievalData) -> dict[str | None, set[str]]:
    """Per query, the texts of every document judged relevant to it (never a negative of that query)."""
    docs = documents(data)
    return {q: {docs[d].indexed_text() for d, s in data.qrels.get(q, {}).items() if s > 0 and d in docs}
            for q in set(pairs.query_ids) if q is not None}

"""The BM25 leg's two engines in a Milvus collection.

`client`: the project's analysis and bm25s weights (the embedded leg's, exactly) stored as each
statute's sparse vector; a query is the sparse vector of its token counts, so the inner product is
the embedded BM25 score. The weights depend on corpus-wide statistics (idf, average length), so
an update re-derives them all and writes the next collection: exact, at the price of rewriting every
statute's weights (no re-encoding). `server`: Milvus's own BM25 function over the text (its
analyzer, its statistics; on Milvus Lite kept per segment), so scores and rankings differ.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..lexical.engines import LexicalIndex
from .collection import BM25, MAX_LIMIT, TEXT_BM25, MilvusCollection
from .expressions import rows_expression

VOCAB_FILE = "milvus_vocab.json"
PREFETCH_MAX = 10_000  # statutes whose term ids are kept for showing matched words


class MilvusEngine(LexicalIndex):
    """What both engines share: the collection, the statute count, saving the pointer."""

    engine = ""
    rebuild_engine = "bm25s"  # how `update` rebuilds the weights before writing the next collection

    def __init__(self, collection: MilvusCollection, params: dict, n_docs: int):
        self.collection, self.params, self.n_docs = collection, params, n_docs

    def __len__(self) -> int:
        return self.n_docs

    def pointer(self) -> dict:
        return {**self.collection.pointer(), "documents": self.n_docs}

    def _rank(self, field: str, data: list, owner: list[int], n_queries: int, depth: int, allowed, order,
              params: dict) -> list[list[tuple[int, float]]]:
        """Each query's top-`depth` statutes with a positive score: the best over its windows (each window's
        top-`depth` holds every statute whose best window it is, so the merge is exact)."""
        best: list[dict[int, float]] = [{} for _ in range(n_queries)]
        for qi, (_, docs, scores) in zip(owner, self._search(field, data, depth, allowed, params)):
            mine = best[qi]
            for d, s in zip(docs.tolist(), scores.tolist()):
                if s > mine.get(d, 0.0):  # positive scores only (score-0 statutes share no term)
                    mine[d] = s
        out = []
        for mine in best:
            docs = np.fromiter(mine, dtype=np.int64, count=len(mine))
            scores = np.fromiter(mine.values(), dtype=np.float32, count=len(mine))
            out.append(order.order(docs, scores)[:depth])
        return out

    def _search(self, field: str, data: list, depth: int, allowed, params: dict) -> list:
        """Each search's hits down to `depth`, and deeper while the depth-th score ties to the end of the list: the
        ties at the cut are then all here, so the leg picks among them as the embedded leg does (by id)."""
        limit, expr = depth, rows_expression(allowed, "doc")
        while True:
            found = self.collection.search(field, data, limit, expr, params)
            if limit >= min(self.n_docs, MAX_LIMIT) or not any(
                    len(s) == limit and s[-1] == s[depth - 1] for _, _, s in found):
                return found
            limit = min(4 * limit, self.n_docs, MAX_LIMIT)


class MilvusBm25(MilvusEngine):
    """Client BM25: the project's weights as sparse vectors (rankings equal the embedded leg's)."""

    engine = "milvus-client"

    def __init__(self, collection: MilvusCollection, vocab: dict[str, int], params: dict, n_docs: int):
        super().__init__(collection, params, n_docs)
        self.vocab = vocab
        self._terms: dict[int, set[int]] = {}  # term ids of recently shown statutes (prefetch)

    @classmethod
    def load(cls, folder: Path, config: dict) -> MilvusBm25:
        saved = json.loads((folder / VOCAB_FILE).read_text(encoding="utf-8"))
        return cls(MilvusCollection(config["uri"], config["collection"]), saved, config["params"], config["documents"])

    def save(self, folder: Path) -> dict:
        (folder / VOCAB_FILE).write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")
        return self.pointer()

    def rank_windows(self, queries: Sequence[str], windows: Sequence[list[list[str]]], depth: int, allowed,
                     order) -> list[list[tuple[int, float]]]:
        """Per query, its top statutes; each window searched as the sparse vector of its token counts."""
        data, owner = [], []
        for qi, query_windows in enumerate(windows):
            for tokens in query_windows:
                vector = self.query_vector(tokens)
                if vector:
                    data.append(vector)
                    owner.append(qi)
        return self._rank(BM25, data, owner, len(queries), depth, allowed, order, {"metric_type": "IP"})

    def prefetch(self, rows: Sequence[int]) -> None:
        """Read the term ids of these statutes in one request, for `present`."""
        todo = sorted({int(r) for r in rows} - set(self._terms))
        if len(self._terms) + len(todo) > PREFETCH_MAX:
            self._terms.clear()
        if todo:
            self._terms.update((r, set()) for r in todo)
            for doc, weights in self.collection.read_where(f"doc in {todo}", BM25, "doc"):
                self._terms[int(doc)].update(int(t) for t in weights)

    def present(self, row: int, tokens: list[str]) -> set[str]:
        """Tokens with a weight in the statute's sparse vector."""
        if int(row) not in self._terms:
            self.prefetch([row])
        held = self._terms[int(row)]
        return {t for t in tokens if self.vocab.get(t) in held}

    def query_vector(self, tokens: list[str]) -> dict[int, float]:
        """{term id: count} of the known tokens (bm25s sums a repeated query token once per occurrence)."""
        return {self.vocab[t]: float(c) for t, c in Counter(tokens).items() if t in self.vocab}


class MilvusTextBm25(MilvusEngine):
    """Server BM25: Milvus analyses the text and scores with its own statistics."""

    engine = "milvus-server"

    @classmethod
    def load(cls, folder: Path, config: dict) -> MilvusTextBm25:
        return cls(MilvusCollection(config["uri"], config["collection"]), config["params"], config["documents"])

    def save(self, folder: Path) -> dict:
        return self.pointer()

    def rank_windows(self, queries: Sequence[str], windows, depth: int, allowed,
                     order) -> list[list[tuple[int, float]]]:
        """Per query, Milvus's BM25 top statutes for the query text (its analyzer; no query windows)."""
        return self._rank(TEXT_BM25, list(queries), list(range(len(queries))), len(queries), depth, allowed, order,
                          {"metric_type": "BM25"})

    def present(self, row: int, tokens: list[str]) -> set[str]:
        """Unknown: Milvus's analysis is not the project's."""
        return set()


def analyzer_params(language: str, lite: bool) -> dict:
    """Milvus's analyzer for a language: the built-in english / chinese analyzers on a server; on Milvus Lite,
    which has only the standard and jieba tokenizers, those (its lowercase / stemmer filters are ignored)."""
    if language == "zh":
        return {"tokenizer": "jieba"} if lite else {"type": "chinese"}
    return {"tokenizer": "standard", "filter": ["lowercase"]} if lite else {"type": "english"}


def load_engine(folder: Path, config: dict) -> MilvusEngine:
    """The engine a BM25 leg config names, on the collection it points at."""
    engines = {cls.engine: cls for cls in (MilvusBm25, MilvusTextBm25)}
    if config["engine"] not in engines:
        raise ValueError(f"unknown Milvus BM25 engine {config['engine']!r} in the index manifest")
    return engines[config["engine"]].load(folder, {**config["milvus"], "params": config["params"]})

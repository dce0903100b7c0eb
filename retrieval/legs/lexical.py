"""The BM25 leg: analyzer + lexical engine + query windows.

A document that shares no analysed term with the query (score 0) is not in the leg's list.
A query longer than `query_window` tokens scores by its best window (half-overlapping), so
one issue of a long case description finds its statute.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..lexical.analysis import Analyzer, AnalyzerSettings, resolve_settings
from ..languages import SAMPLE
from ..lexical.engines import LexicalIndex, build_bm25, load_lexical, top_positive
from ..settings import Bm25Params
from .base import BuildOptions, LoadOptions, Ranking, RowOrder, register_leg


@register_leg("bm25")
class Bm25Leg:
    """BM25 over analysed documents (bm25s by default, rank-bm25 as an option)."""

    name = "bm25"

    def __init__(self, analyzer: Analyzer, index: LexicalIndex, order: RowOrder, query_window: int = 0):
        self.analyzer, self.index, self.order = analyzer, index, order
        self.query_window = query_window

    @classmethod
    def build(cls, documents: Iterable, options: BuildOptions, order: RowOrder) -> Bm25Leg:
        """Analyse and index `documents` with the options' analysis, engine and k1/b.

        A re-iterable `documents` (a list, a DocumentTable, a store.DocumentStream) is read pass by pass, never
        held whole; a one-shot iterator is listed first.
        """
        import time

        t = time.perf_counter()
        docs = list(documents) if isinstance(documents, Iterator) else documents
        sample = itertools.islice(docs, SAMPLE) if options.analysis is None else ()
        settings = options.analysis or resolve_settings(options.language, [d.indexed_text() for d in sample])
        analyzer = Analyzer.for_documents(settings, docs, options.user_words)
        params = options.bm25 or Bm25Params()
        index = build_bm25(docs, analyzer, options.bm25_backend, workers=options.bm25_workers,
                           progress=options.progress, **params.engine_params())
        options.timings["bm25_seconds"] = time.perf_counter() - t
        return cls(analyzer, index, order, params.query_window)

    @classmethod
    def load(cls, folder: Path, config: dict, options: LoadOptions, order: RowOrder) -> Bm25Leg:
        """The leg saved in `folder`; a query-time `options.bm25` may change the query window."""
        settings = AnalyzerSettings.from_dict(config["analysis"])
        if "milvus" in config:  # the weights live in a Milvus collection (retrieval/milvus/)
            from ..milvus.bm25 import load_engine

            index = load_engine(folder, config)
        else:
            index = load_lexical(folder, config["engine"], config["params"], mmap=options.mmap,
                                 title_weight=settings.title_weight if settings.title == "field" else None)
        window = options.bm25.query_window if options.bm25 is not None else config.get("query_window", 0)
        return cls(Analyzer.load(folder, settings), index, order, int(window))

    def save(self, folder: Path) -> dict:
        """The engine's files and the user dictionary; config: engine, k1/b, analysis, query window."""
        pointer = self.index.save(folder)  # a Milvus engine returns where its collection is
        self.analyzer.save(folder)
        return {"engine": self.index.engine, "params": self.index.params, "analysis": self.analyzer.settings.to_dict(),
                "query_window": self.query_window, **({"milvus": pointer} if pointer else {})}

    def __len__(self) -> int:
        return len(self.index)

    def rank(self, queries: Sequence[str], depth: int, allowed: np.ndarray | None = None, *,
             query_window: int | None = None, **inputs: Any) -> list[Ranking]:
        """Per query, the top-`depth` documents scoring above 0 (inside `allowed` when given); `query_window`:
        this call's window (None: the leg's)."""
        if hasattr(self.index, "rank_windows"):  # an engine that ranks itself (Milvus)
            windows = [self.windows(q, query_window) for q in queries]
            return self.index.rank_windows(queries, windows, depth, allowed, self.order)
        out = []
        for q in queries:
            scores = self.scores(q, query_window)
            if allowed is not None:
                inside = np.zeros(len(scores), dtype=bool)
                inside[allowed] = True
                scores = np.where(inside, scores, 0)
            rows, kept = top_positive(scores, depth, self.order.id_ranks)
            out.append([(int(r), float(s)) for r, s in zip(rows, kept)])
        return out

    def scores(self, query: str, query_window: int | None = None) -> np.ndarray:
        """BM25 score of every document (best window's for a query longer than the window, None: the leg's)."""
        windows = self.windows(query, query_window)
        return self.index.scores(windows[0]) if len(windows) == 1 else np.max([self.index.scores(w) for w in windows], axis=0)

    def windows(self, query: str, query_window: int | None = None) -> list[list[str]]:
        """The query's tokens, or its half-overlapping windows of `query_window` tokens (None: the leg's) when it
        is longer."""
        tokens = self.analyzer(query)
        w = self.query_window if query_window is None else query_window
        if not w or len(tokens) <= w:
            return [tokens]
        step = max(1, w // 2)
        return [tokens[i:i + w] for i in range(0, len(tokens) - w + step, step)]

    def prefetch(self, rows: Sequence[int]) -> None:
        """Let a remote engine fetch the postings of the rows about to be shown in one request (Milvus)."""
        if hasattr(self.index, "prefetch"):
            self.index.prefetch(rows)

    def matched_terms(self, query: str, row: int) -> tuple[str, ...]:
        """Query words whose token document `row` contains, from the postings (no text is re-read, so the cost
        does not grow with the document's length), in query order; Chinese n-grams are explained by the whole words
        whose every token the document has (Analyzer.reader_terms)."""
        terms = self.analyzer.reader_terms(query)
        present = self.index.present(row, list(dict.fromkeys(token for _, tokens in terms for token in tokens)))
        return tuple(dict.fromkeys(word for word, tokens in terms if all(token in present for token in tokens)))

    def info(self) -> dict:
        """The analysis in use (reports)."""
        return self.analyzer.settings.to_dict()


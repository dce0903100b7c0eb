"""The BM25 leg: analyzer + lexical engine + query windows.

A document that shares no analysed term with the query (score 0) is not in the leg's list.
A query longer than `query_window` tokens scores by its best window (half-overlapping), so
one issue of a long case description finds its statute.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..corpus import Document
from ..filters import selection
from ..index.backends import chosen
from ..languages import SAMPLE
from ..lexical.analysis import Analyzer, AnalyzerSettings, resolve_settings
from ..lexical.chinese import law_names
from ..lexical.engines import LexicalIndex, build_bm25, load_lexical
from ..settings import Bm25Params
from .base import BuildOptions, LegBase, LoadOptions, Ranking, RowOrder, register_leg


@register_leg("bm25", default=True)
class Bm25Leg(LegBase):
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
        index = chosen(options.backend).open_engine(cls.name, folder, config)  # weights held by a backend
        if index is None:
            index = load_lexical(folder, config["engine"], config["params"], mmap=options.mmap,
                                 title_weight=settings.title_weight if settings.title == "field" else None)
        window = options.bm25.query_window if options.bm25 is not None else config.get("query_window", 0)
        return cls(Analyzer.load(folder, settings), index, order, int(window))

    def save(self, folder: Path) -> dict:
        """The engine's files and the user dictionary; config: engine, k1/b, analysis, query window."""
        pointer = self.index.save(folder)  # a backend's engine returns where its data is
        self.analyzer.save(folder)
        return {"engine": self.index.engine, "params": self.index.params, "analysis": self.analyzer.settings.to_dict(),
                "query_window": self.query_window, **({"milvus": pointer} if pointer else {})}

    def __len__(self) -> int:
        return len(self.index)

    def rank(self, queries: Sequence[str], depth: int, allowed: np.ndarray | None = None, *,
             query_window: int | None = None, **inputs: Any) -> list[Ranking]:
        """Per query, the top-`depth` documents scoring above 0 (inside `allowed` when given); `query_window`:
        this call's window (None: the leg's)."""
        allowed = selection(allowed)
        windows = [self.windows(q, query_window) for q in queries]
        ranked = self.index.rank_windows(queries, windows, depth, allowed, self.order)
        if ranked is not None:  # an engine that ranks itself (a backend's)
            return ranked
        out = []
        for query_windows in windows:
            scores = self.window_scores(query_windows)
            if allowed is not None:
                inside = np.zeros(len(scores), dtype=bool)
                inside[allowed.rows] = True
                scores = np.where(inside, scores, 0)
            out.append(self.order.top(scores, depth, positive=True))
        return out

    def scores(self, query: str, query_window: int | None = None) -> np.ndarray:
        """BM25 score of every document (best window's for a query longer than the window, None: the leg's)."""
        return self.window_scores(self.windows(query, query_window))

    def window_scores(self, windows: list[list[str]]) -> np.ndarray:
        """BM25 score of every document for a query's token windows: the best window's."""
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
        """Let a remote engine fetch the postings of the rows about to be shown in one request."""
        self.index.prefetch(rows)

    @property
    def engine(self) -> LexicalIndex:
        """The lexical engine."""
        return self.index

    def with_engine(self, engine: LexicalIndex) -> Bm25Leg:
        """The same analysis and windows over another engine holding the same weights (a backend's copy)."""
        return Bm25Leg(self.analyzer, engine, self.order, self.query_window)

    def rebuilt(self, before: Sequence[Document], after: Sequence[Document], order: RowOrder, plan: Any,
                progress: bool = False) -> Bm25Leg:
        """Built afresh on `after` (BM25 statistics are corpus-wide) with this leg's analysis, user words, engine,
        k1/b and window; the law names of the old titles are re-derived from the new ones."""
        settings, words = self.analyzer.settings, list(self.analyzer.user_words)
        if settings.law_names:
            derived = {w.strip().lower() for w in law_names(d.title for d in before)}
            words = [w for w in words if w not in derived]
        params = Bm25Params(k1=self.index.params.get("k1"), b=self.index.params.get("b"), query_window=self.query_window)
        options = BuildOptions(analysis=replace(settings, user_dict=None), user_words=words,
                               bm25_backend=self.index.rebuild_engine, bm25=params, progress=progress)
        return Bm25Leg.build(after, options, order)

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


"""The lexical leg: BM25 over analysed tokens, with bm25s (default) or rank-bm25 as engine.

Both engines take token lists from `analysis` and return one score per document, so the
retriever ranks and fuses them the same way. Saved as plain arrays and JSON, never pickled.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence, Sized
from pathlib import Path
from typing import Protocol

import numpy as np

from ..corpus import Document
from .analysis import Analyzer, bm25_fields
from .postings import CHUNK_SIZE, Postings, collect, default_workers

ENGINES = ("bm25s", "rank-bm25")


class LexicalIndex(Protocol):
    """A BM25 index: one score per document for a tokenised query. An engine subclasses it for the defaults of
    what a remote engine may do instead (rank the query windows itself, prefetch the shown rows' postings)."""

    engine: str
    params: dict

    def scores(self, tokens: list[str]) -> np.ndarray:
        """BM25 score of every document (float32, corpus order)."""
        ...

    def save(self, folder: Path) -> dict | None:
        """Write the index files into `folder`; a remote engine returns where its data is (the leg's config)."""
        ...

    def present(self, row: int, tokens: list[str]) -> set[str]:
        """Which of `tokens` document `row` contains (from the postings: no text is re-read)."""
        ...

    def __len__(self) -> int:
        ...

    @property
    def rebuild_engine(self) -> str:
        """The local engine an update rebuilds this index with (a remote engine's weights are bm25s's)."""
        return self.engine

    def rank_windows(self, queries: Sequence[str], windows: Sequence[list[list[str]]], depth: int, allowed,
                     order) -> list[list[tuple[int, float]]] | None:
        """Per query, its top-`depth` rows ranked by the engine itself (None: the leg ranks `scores`)."""
        return None

    def prefetch(self, rows: Sequence[int]) -> None:
        """Fetch the postings of the rows about to be shown in one request (a remote engine; else nothing)."""


def build_lexical(token_lists: list[list[str]], engine: str = "bm25s", *, k1: float = 1.5,
                  b: float = 0.75, method: str = "lucene", title_tokens: list[list[str]] | None = None,
                  title_weight: float = 1.0) -> LexicalIndex:
    """Index tokenised documents (and titles as a second field, when given); defaults are MTEB's BM25 baseline."""
    if engine == "bm25s":
        text = Bm25sIndex.build(token_lists, k1=k1, b=b, method=method)
    elif engine == "rank-bm25":
        text = RankBm25Index(token_lists, k1=k1, b=b)
    else:
        raise ValueError(f"unknown BM25 engine {engine!r} (choose from {', '.join(ENGINES)})")
    if title_tokens is None:
        return text
    title = build_lexical(title_tokens, engine, k1=k1, b=b, method=method)
    return TitleFieldIndex(text, title, title_weight)


def build_bm25(documents: Iterable[Document], analyzer: Analyzer, engine: str = "bm25s", *, k1: float = 1.5,
               b: float = 0.75, workers: int | None = None, chunk_size: int = CHUNK_SIZE,
               progress: bool = False) -> LexicalIndex:
    """The BM25 leg of `documents` under the analyzer's title mode; defaults are MTEB's BM25 baseline.

    bm25s streams the texts in chunks through `workers` analysis processes (default: the cores
    available); the index is the same for any number of workers and chunk size. rank-bm25 takes
    token lists.
    """
    texts, titles = bm25_fields(documents, analyzer.settings.title)
    weight = analyzer.settings.title_weight
    if engine != "bm25s":
        return build_lexical(analyzer.many(texts), engine, k1=k1, b=b, title_weight=weight,
                             title_tokens=None if titles is None else analyzer.many(titles))
    workers = default_workers() if workers is None else workers

    def index(items, what: str) -> Bm25sIndex:
        bar = _bar(len(documents) if isinstance(documents, Sized) else None, progress, what)
        try:
            postings = collect(items, analyzer, workers=workers, chunk_size=chunk_size,
                               on_chunk=None if bar is None else bar.update)
        finally:  # closed before an error (a bad corpus line met while streaming) is printed
            if bar is not None:
                bar.close()
        return Bm25sIndex.from_postings(postings, k1=k1, b=b)

    text = index(texts, "BM25 texts")
    return text if titles is None else TitleFieldIndex(text, index(titles, "BM25 titles"), weight)


def load_lexical(folder: Path, engine: str, params: dict, *, mmap: bool = False,
                 title_weight: float | None = None) -> LexicalIndex:
    """Load an index written by `save` (with its title field when `title_weight` is given); `mmap` maps bm25s's arrays."""
    if title_weight is not None:
        return TitleFieldIndex(load_lexical(folder, engine, params, mmap=mmap),
                               load_lexical(folder / TitleFieldIndex.FOLDER, engine, params, mmap=mmap), title_weight)
    if engine == "bm25s":
        return Bm25sIndex.load(folder, mmap=mmap)
    if engine == "rank-bm25":
        with open(folder / "tokens.jsonl", encoding="utf-8") as f:
            return RankBm25Index([json.loads(line) for line in f], **params)
    raise ValueError(f"unknown BM25 engine {engine!r} in the index manifest")


class TitleFieldIndex(LexicalIndex):
    """Text BM25 plus title BM25, scores added with a weight: a simple, fast stand-in for BM25F."""

    FOLDER = "title"

    def __init__(self, text: LexicalIndex, title: LexicalIndex, weight: float):
        self.text, self.title, self.weight = text, title, weight
        self.engine, self.params = text.engine, text.params

    def scores(self, tokens: list[str]) -> np.ndarray:
        """Text score + weight * title score of every document."""
        return self.text.scores(tokens) + np.float32(self.weight) * self.title.scores(tokens)

    def present(self, row: int, tokens: list[str]) -> set[str]:
        """Tokens found in the document's text or title."""
        return self.text.present(row, tokens) | self.title.present(row, tokens)

    def __len__(self) -> int:
        return len(self.text)

    def save(self, folder: Path) -> None:
        """The text index in `folder`, the title index in its subfolder `title/`."""
        self.text.save(folder)
        (folder / self.FOLDER).mkdir()
        self.title.save(folder / self.FOLDER)


class Bm25sIndex(LexicalIndex):
    """bm25s: scores precomputed into a sparse matrix at build time, so a query is a few sums."""

    engine = "bm25s"

    def __init__(self, model):
        self._model = model
        self.params = {"method": model.method, "k1": model.k1, "b": model.b}

    @classmethod
    def build(cls, token_lists: list[list[str]], *, k1: float, b: float, method: str = "lucene") -> Bm25sIndex:
        """Build from token lists (the index bm25s's own `index` makes of them)."""
        return cls.from_postings(collect(token_lists, None), k1=k1, b=b, method=method)

    @classmethod
    def from_postings(cls, postings: Postings, *, k1: float, b: float, method: str = "lucene") -> Bm25sIndex:
        """bm25s's index of collected postings, its weights computed here with NumPy (bm25build)."""
        from .weights import bm25s_model

        return cls(bm25s_model(postings, k1=k1, b=b, method=method))

    @classmethod
    def load(cls, folder: Path, *, mmap: bool) -> Bm25sIndex:
        """Load bm25s's own files (arrays memory-mapped when asked)."""
        import bm25s

        return cls(bm25s.BM25.load(str(folder), mmap=mmap, allow_pickle=False, show_progress=False))

    def scores(self, tokens: list[str]) -> np.ndarray:
        """BM25 score of every document; unknown tokens add nothing."""
        ids = self._model.get_tokens_ids(tokens)
        if not ids:
            return np.zeros(self._model.scores["num_docs"], dtype=np.float32)
        return np.asarray(self._model.get_scores(ids), dtype=np.float32)

    def present(self, row: int, tokens: list[str]) -> set[str]:
        """Tokens whose posting list (a CSC column of document rows) holds `row`."""
        vocab, s = self._model.vocab_dict, self._model.scores
        found = set()
        for token in dict.fromkeys(tokens):
            t = vocab.get(token)
            if t is not None and np.any(s["indices"][s["indptr"][t]:s["indptr"][t + 1]] == row):
                found.add(token)
        return found

    def __len__(self) -> int:
        return int(self._model.scores["num_docs"])

    def document_weights(self) -> tuple[dict[str, int], list[dict[int, float]]]:
        """The vocabulary and each document's {token id: BM25 weight}: the rows of the CSC matrix (a Milvus
        collection stores them as sparse vectors)."""
        s, n = self._model.scores, len(self)
        indptr = np.asarray(s["indptr"])
        tokens = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        docs, data = np.asarray(s["indices"]), np.asarray(s["data"], dtype=np.float32)
        order = np.argsort(docs, kind="stable")
        bounds = np.searchsorted(docs[order], np.arange(n + 1))
        rows = [dict(zip(tokens[order[a:b]].tolist(), data[order[a:b]].tolist())) for a, b in zip(bounds, bounds[1:])]
        return {str(k): int(v) for k, v in self._model.vocab_dict.items()}, rows

    def save(self, folder: Path) -> None:
        """bm25s's own format: CSC arrays as .npy plus vocab and params JSON."""
        self._model.save(str(folder), allow_pickle=False, show_progress=False)


class RankBm25Index(LexicalIndex):
    """rank-bm25's BM25Okapi (the user's named package): simple, slower, rebuilt on load."""

    engine = "rank-bm25"

    def __init__(self, token_lists: list[list[str]], *, k1: float = 1.5, b: float = 0.75, **_: object):
        from rank_bm25 import BM25Okapi

        self._tokens = token_lists
        # BM25Okapi divides by zero on an all-empty corpus; an empty token keeps it defined.
        self._model = BM25Okapi([t or [""] for t in token_lists], k1=k1, b=b)
        self.params = {"method": "okapi", "k1": k1, "b": b}

    def scores(self, tokens: list[str]) -> np.ndarray:
        """BM25Okapi score of every document."""
        return np.asarray(self._model.get_scores(tokens), dtype=np.float32)

    def present(self, row: int, tokens: list[str]) -> set[str]:
        """Tokens in the document's term counts."""
        counts = self._model.doc_freqs[row]
        return {t for t in tokens if t in counts}

    def __len__(self) -> int:
        return len(self._tokens)

    def save(self, folder: Path) -> None:
        """The token lists as JSON lines; the model is rebuilt from them on load."""
        with open(folder / "tokens.jsonl", "w", encoding="utf-8") as f:
            for tokens in self._tokens:
                f.write(json.dumps(tokens, ensure_ascii=False) + "\n")


def _bar(total: int | None, show: bool, what: str):
    """A progress bar over documents for large builds (or of a stream, `total` None), else None."""
    if not show or (total is not None and total < 2000):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=what, unit="doc")

"""Texts in chunks -> BM25 postings: (token id, document, term frequency) as NumPy arrays.

Each distinct English word is analysed once (a word -> token id cache; stopwords dropped
before stemming), so a million passages cost one dictionary look-up per word, not a stem.
Chunks may be analysed in worker processes, each with its own vocabulary; `Postings` maps
them onto one vocabulary that numbers tokens in order of first occurrence in the corpus,
as bm25s does, so the result does not depend on the number of workers or the chunk size.
"""

from __future__ import annotations

import ctypes
import gc
import itertools
import multiprocessing
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from .analysis import Analyzer, AnalyzerSettings

CHUNK_SIZE = 10_000  # documents analysed at a time
_SEP, _DROP = -1, -2  # ids of the document separator word and of words that are not indexed
_SEPARATOR = " QQ "  # after lower(), no text holds an upper-case letter: "QQ" marks where a document ends
_WORD_CHAR = re.compile(r"\w")
_WORDS = re.compile(r"\w\w+")  # bm25s's (?u)\b\w\w+\b: the same matches, found a little faster
_ASCII_SPLIT = {i: " " for i in range(128) if not _WORD_CHAR.match(chr(i)) and not chr(i).isspace()}


@dataclass
class ChunkPostings:
    """One chunk's postings, grouped by token (documents ascending in a group), in a worker's own token ids."""

    worker: int
    new_tokens: list[str]  # tokens the worker met for the first time, in order of its new ids
    tokens: np.ndarray  # int32, the token of each group, each token once
    counts: np.ndarray  # int32, postings in each group (documents of the chunk holding the token)
    doc: np.ndarray  # uint8, uint16 or int32, each posting's document (its position in the chunk)
    tf: np.ndarray  # uint8, uint16 or int32, times the token occurs in the document
    lengths: np.ndarray  # int32, indexed tokens of each document of the chunk


class _Vocabulary(dict):
    """token -> id, a new token getting the next id (and remembered as new until `take_new`)."""

    def __init__(self):
        super().__init__()
        self._new: list[str] = []

    def __missing__(self, token: str) -> int:
        i = self[token] = len(self)
        self._new.append(token)
        return i

    def take_new(self) -> list[str]:
        new, self._new = self._new, []
        return new


class _WordIds(dict):
    """English word -> token id, or _DROP for stopwords and one-letter words: each word analysed once."""

    def __init__(self, analyzer: Analyzer, vocabulary: _Vocabulary):
        super().__init__({_SEPARATOR.strip(): _SEP})
        self._token, self._vocabulary = analyzer.word_token, vocabulary

    def __missing__(self, word: str) -> int:
        token = self._token(word) if len(word) > 1 else None
        i = self[word] = _DROP if token is None else self._vocabulary[token]
        return i


class ChunkAnalyzer:
    """Turns chunks of texts into ChunkPostings under one analyzer; keeps its caches between chunks."""

    def __init__(self, analyzer: Analyzer | None, worker: int = 0):
        """`analyzer` None: the texts given are token lists already."""
        self.worker = worker
        self._analyzer = analyzer
        self._vocabulary = _Vocabulary()
        english = analyzer is not None and analyzer.settings.language == "en"
        self._words = _WordIds(analyzer, self._vocabulary) if english else None

    def __call__(self, texts: list) -> ChunkPostings:
        """Postings of `texts` (strings, or token lists when built without an analyzer)."""
        if self._words is not None:
            token, doc = self._english(texts)
        else:
            token, doc = self._tokenized(texts)
        return _postings(self.worker, self._vocabulary.take_new(), token, doc, len(texts))

    def _english(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """All words of the chunk in one pass over one string, documents separated by a marker word."""
        text = _SEPARATOR.join([t.lower() for t in texts])
        words = text.translate(_ASCII_SPLIT).split() if text.isascii() else _WORDS.findall(text)
        ids = _lookup(self._words, words)
        doc = np.cumsum(ids == _SEP, dtype=np.int32)
        keep = ids >= 0
        return ids[keep], doc[keep]

    def _tokenized(self, texts: list) -> tuple[np.ndarray, np.ndarray]:
        """Tokens of each text by the analyzer (or as given), looked up in the vocabulary."""
        tokens = [self._analyzer(t) for t in texts] if self._analyzer is not None else texts
        ids = _lookup(self._vocabulary, list(itertools.chain.from_iterable(tokens)))
        doc = np.repeat(np.arange(len(texts), dtype=np.int32), [len(t) for t in tokens])
        return ids, doc


def _lookup(table: dict, keys: list[str]) -> np.ndarray:
    """int32 ids of `keys` in a dict that fills its misses (so in order of first occurrence).

    One C-level pass straight into the array: no tuple of ids, no second dict of the chunk's own words
    (measured 15-25% less analysis time than looking each distinct word up once through such a dict).
    """
    return np.fromiter(map(table.__getitem__, keys), dtype=np.int32, count=len(keys))


def _postings(worker: int, new_tokens: list[str], token: np.ndarray, doc: np.ndarray, n: int) -> ChunkPostings:
    """Count each (token, document) pair; postings grouped by token, documents ascending."""
    lengths = np.bincount(doc, minlength=n).astype(np.int32)
    pairs, tf = np.unique(token.astype(np.int64) * n + doc, return_counts=True)
    tokens, counts = _runs(pairs // n)
    return ChunkPostings(worker, new_tokens, tokens.astype(np.int32), counts.astype(np.int32),
                         _small(pairs % n), _small(tf), lengths)


def _runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a sorted array, and how many times each occurs."""
    starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]])) if len(values) else values
    return values[starts], np.diff(np.append(starts, len(values)))


def _small(values: np.ndarray) -> np.ndarray:
    """The smallest of uint8, uint16 and int32 that holds the (non-negative) values: postings stay compact."""
    top = values.max() if values.size else 0
    return values.astype(np.uint8 if top < 1 << 8 else np.uint16 if top < 1 << 16 else np.int32)


class Postings:
    """Every chunk's postings under one vocabulary, tokens numbered by first occurrence in the corpus."""

    def __init__(self):
        self.vocabulary: dict[str, int] = {}
        self.chunks: list[tuple[np.ndarray, ...]] = []  # (tokens, counts, doc, tf) as in ChunkPostings
        self.lengths: list[np.ndarray] = []  # indexed tokens per document, one array per chunk
        self._df = np.zeros(0, dtype=np.int64)
        self._ids: dict[int, np.ndarray] = {}  # worker -> its token ids mapped to ours

    def add(self, chunk: ChunkPostings) -> None:
        """Take the next chunk (chunks must come in corpus order)."""
        vocabulary = self.vocabulary
        known = self._ids.get(chunk.worker, np.zeros(0, dtype=np.int32))
        # a worker's new tokens are in the order they first occur in this chunk, so new ids follow that order
        new = np.array([vocabulary.setdefault(t, len(vocabulary)) for t in chunk.new_tokens], dtype=np.int32)
        ids = self._ids[chunk.worker] = np.concatenate([known, new])
        tokens = ids[chunk.tokens]
        self.chunks.append((tokens, chunk.counts, chunk.doc, chunk.tf))
        self.lengths.append(chunk.lengths)
        self._df = np.pad(self._df, (0, len(vocabulary) - len(self._df)))
        self._df[tokens] += chunk.counts  # each token once per chunk

    @property
    def documents(self) -> int:
        """Documents added so far."""
        return sum(len(x) for x in self.lengths)

    def document_frequencies(self) -> np.ndarray:
        """Documents containing each token (int64, by token id)."""
        return np.pad(self._df, (0, len(self.vocabulary) - len(self._df)))


def collect(texts: Iterable, analyzer: Analyzer | None, *, workers: int = 1, chunk_size: int = CHUNK_SIZE,
            on_chunk: Callable[[int], None] | None = None) -> Postings:
    """Postings of `texts` (token lists when `analyzer` is None), analysed in `workers` processes.

    `on_chunk(documents)` is called after each chunk (a progress bar). The result is the same for
    any number of workers and any chunk size.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk size must be >= 1, got {chunk_size}")
    postings = Postings()
    chunks = _chunks(texts, chunk_size)
    for chunk in _analysed(chunks, analyzer, workers):
        postings.add(chunk)
        release_memory()  # the chunk's texts and analysis temporaries
        if on_chunk is not None:
            on_chunk(len(chunk.lengths))
    return postings


def release_memory() -> None:
    """Hand freed heap memory back to the OS (glibc keeps it otherwise), so placing one chunk's
    postings into the final arrays does not hold both; a no-op off glibc."""
    if _libc is not None:
        _libc.malloc_trim(0)


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_libc = _glibc()


def default_workers() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _analysed(chunks: Iterator[list], analyzer: Analyzer | None, workers: int) -> Iterator[ChunkPostings]:
    """ChunkPostings in chunk order: here, or from a pool of worker processes when `workers` > 1."""
    if workers <= 1 or analyzer is None:
        run = ChunkAnalyzer(analyzer)
        yield from map(run, chunks)
        return
    first = next(chunks, None)
    if first is None:
        return
    second = next(chunks, None)
    if second is None:  # one chunk: not worth starting processes
        yield ChunkAnalyzer(analyzer)(first)
        return
    init = (analyzer.settings.to_dict(), analyzer.user_words)
    with _pool(workers, init) as pool:
        yield from pool.imap(_analyse, itertools.chain([first, second], chunks))


def _pool(workers: int, init: tuple):
    """Worker processes: forked on Linux (quick, and scripts need no __main__ guard), else spawned.

    The parent's objects are frozen out of the garbage collector while forking, so the children's
    collections do not touch (and copy) the pages that hold the corpus.
    """
    if not sys.platform.startswith("linux"):
        return multiprocessing.get_context("spawn").Pool(workers, initializer=_start_worker, initargs=init)
    gc.freeze()
    try:
        return multiprocessing.get_context("fork").Pool(workers, initializer=_start_worker, initargs=init)
    finally:
        gc.unfreeze()


_worker: ChunkAnalyzer | None = None


def _start_worker(settings: dict, user_words: tuple[str, ...]) -> None:
    global _worker
    _worker = ChunkAnalyzer(Analyzer(AnalyzerSettings.from_dict(settings), user_words), worker=os.getpid())


def _analyse(texts: list[str]) -> ChunkPostings:
    return _worker(texts)

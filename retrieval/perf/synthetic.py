"""Deterministic synthetic statute-like passages, queries and unit vectors for the benchmark.

Text: words drawn from a fixed vocabulary (common English and legal words first, then
made-up words built from syllables) with Zipf-Mandelbrot frequencies, 50 to 300 words a
passage. Vectors: 384-d unit vectors around topic centres with a decaying spectrum of
variances, a stand-in for sentence embeddings where no model can encode a million passages
on a CPU. Row i is the same whatever the corpus size, so smaller corpora are prefixes of
larger ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..corpus import Document

VOCABULARY_SIZE = 50_000
ZIPF_EXPONENT = 1.07
ZIPF_SHIFT = 2.7
WORDS_MIN, WORDS_MAX, WORDS_MEDIAN = 50, 300, 140
QUERY_WORDS = (8, 24)
TOPICS = 1000
TOPIC_WEIGHT = 0.45  # share of a vector's length along its topic centre before normalising
SPECTRUM_DECAY = 0.9  # variance of the j-th noise direction ~ (j + 1) ** -decay
CHUNK = 10_000

HEAD_WORDS = (
    "the of and to any or in shall be by such person which a for with as is under section this "
    "who may that act court on not been has from order other than whoever made an said offence "
    "property government public law provided authority punished imprisonment term years fine "
    "extend officer case within shall be liable state magistrate proceedings accused evidence "
    "person having where time writing notice relating provisions respect purpose including "
    "thereof herein competent jurisdiction appeal sentence trial charge offender woman husband "
    "marriage death hurt grievous voluntarily causes intent knowledge dishonestly fraudulently "
    "movable immovable possession consent servant contract agreement tenant landlord lease "
    "rent suit decree execution judgment inquiry police report arrest warrant bail custody "
    "complaint witness document forgery cheating trust criminal breach conspiracy abetment "
    "attempt murder culpable homicide dowry cruelty theft robbery extortion trespass mischief "
    "defamation negligence compensation damages penalty tax income assessment employer wages"
).split()
_SYLLABLES = tuple(c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ar", "en", "is", "ot"))


def documents(n: int, seed: int = 0) -> list[Document]:
    """`n` passages with ids P0000000, P0000001, ... in a shuffled-looking order of ids."""
    return list(iter_documents(n, seed))


def iter_documents(n: int, seed: int = 0) -> Iterator[Document]:
    """The passages of `documents`, made one chunk at a time (a million need not be held at once)."""
    vocab = vocabulary(seed)
    for start in range(0, n, CHUNK):
        rng = np.random.default_rng([seed, 1, start // CHUNK])
        lengths = _lengths(rng, CHUNK)[:n - start]  # a whole chunk's lengths: the same prefix for any n
        words = vocab[_word_ids(rng, int(lengths.sum()))]
        ends = np.cumsum(lengths)
        for i, end in enumerate(ends):
            text = " ".join(words[end - lengths[i]:end])
            row = start + i
            yield Document(_doc_id(row), f"Section {row} {' '.join(words[end - lengths[i]:][:4])}",
                           text.capitalize() + ".")


def queries(n: int, seed: int = 0) -> list[str]:
    """`n` keyword queries of 8 to 24 words from the same vocabulary and frequencies."""
    vocab = vocabulary(seed)
    rng = np.random.default_rng([seed, 2])
    lengths = rng.integers(QUERY_WORDS[0], QUERY_WORDS[1] + 1, n)
    words = vocab[_word_ids(rng, int(lengths.sum()))]
    ends = np.cumsum(lengths)
    return [" ".join(words[end - length:end]) for end, length in zip(ends, lengths)]


def vectors(n: int, dim: int = 384, seed: int = 0) -> np.ndarray:
    """`n` float32 unit vectors (passages); row i does not depend on `n`."""
    return np.concatenate([_vector_chunk(seed, 1, start // CHUNK, CHUNK, dim)[:n - start]
                           for start in range(0, n, CHUNK)] or [np.zeros((0, dim), np.float32)])


def query_vectors(n: int, dim: int = 384, seed: int = 0) -> np.ndarray:
    """`n` query unit vectors drawn like the passages' (new points, not copies of passages)."""
    return _vector_chunk(seed, 2, 0, n, dim)


@lru_cache(maxsize=4)
def vocabulary(seed: int = 0) -> np.ndarray:
    """VOCABULARY_SIZE distinct words, most frequent first: the head words, then made-up words."""
    rng = np.random.default_rng([seed, 0])
    words = list(dict.fromkeys(HEAD_WORDS))
    seen = set(words)
    while len(words) < VOCABULARY_SIZE:
        word = "".join(_SYLLABLES[i] for i in rng.integers(0, len(_SYLLABLES), rng.integers(2, 5)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return np.array(words, dtype=object)


@lru_cache(maxsize=4)
def _zipf_cdf() -> np.ndarray:
    weights = (np.arange(VOCABULARY_SIZE) + ZIPF_SHIFT) ** -ZIPF_EXPONENT
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def _word_ids(rng: np.random.Generator, count: int) -> np.ndarray:
    return np.minimum(np.searchsorted(_zipf_cdf(), rng.random(count)), VOCABULARY_SIZE - 1)


def _lengths(rng: np.random.Generator, count: int) -> np.ndarray:
    """Passage lengths in words: log-normal around WORDS_MEDIAN, clipped to [WORDS_MIN, WORDS_MAX]."""
    raw = rng.lognormal(np.log(WORDS_MEDIAN), 0.45, count)
    return np.clip(raw, WORDS_MIN, WORDS_MAX).astype(np.int64)


def _doc_id(row: int) -> str:
    """A 7-digit id from a fixed permutation of the row (ids not in row order, as in real corpora)."""
    return f"P{(row * 7_368_787) % 10_000_019:07d}"


@lru_cache(maxsize=4)
def _vector_basis(seed: int, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Topic centres, a random rotation and per-direction noise scales (fixed per seed)."""
    rng = np.random.default_rng([seed, 3])
    centres = rng.standard_normal((TOPICS, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    scales = (np.arange(dim) + 1.0) ** (-SPECTRUM_DECAY / 2)
    scales /= np.sqrt((scales**2).sum())
    return centres, rotation.astype(np.float32), scales.astype(np.float32)


def _vector_chunk(seed: int, stream: int, chunk: int, count: int, dim: int) -> np.ndarray:
    centres, rotation, scales = _vector_basis(seed, dim)
    rng = np.random.default_rng([seed, stream + 10, chunk])
    topics = rng.integers(0, TOPICS, count)
    noise = (rng.standard_normal((count, dim)).astype(np.float32) * scales) @ rotation
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    x = TOPIC_WEIGHT * centres[topics] + (1 - TOPIC_WEIGHT) * noise
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def write_jsonl(path: Path, docs: Iterable[Document]) -> Path:
    """Documents as a JSONL corpus (id, title, text), written one by one; returns `path`."""
    with open(path, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"id": d.id, "title": d.title, "text": d.text}, ensure_ascii=False) + "\n")
    return path

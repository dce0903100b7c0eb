"""Text analysis for BM25: text -> tokens, the same way for documents and queries.

English follows MTEB's BM25 baseline (bm25s's regex split, its English stopwords, a
Snowball stemmer), so our BM25 scores equal MTEB's. Chinese is segmented with jieba.
The settings are plain data, saved in the index manifest and reused at query time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

_WORD = re.compile(r"(?u)\b\w\w+\b")
_HAS_WORD_CHAR = re.compile(r"\w")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True)
class AnalyzerSettings:
    """What turns text into BM25 tokens; stored in the manifest so queries match the index."""

    language: str = "en"  # "en" or "zh"
    stopwords: bool = True
    stemmer: str | None = "english"  # a PyStemmer algorithm, English only
    zh_mode: str = "accurate"  # jieba "accurate" or "search", or "char" (one token per character)
    user_words: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        """Plain JSON-ready settings."""
        d = asdict(self)
        d["user_words"] = list(self.user_words)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> AnalyzerSettings:
        """Settings back from the manifest."""
        d = dict(d)
        d["user_words"] = tuple(d.get("user_words", ()))
        return cls(**d)

    @classmethod
    def for_language(cls, language: str) -> AnalyzerSettings:
        """Defaults for 'en' (MTEB's BM25 baseline) or 'zh' (jieba accurate mode, stopwords)."""
        if language == "en":
            return cls()
        if language == "zh":
            return cls(language="zh", stemmer=None)
        raise ValueError(f"unknown language {language!r} (want en or zh)")


class Analyzer:
    """Callable text -> list of tokens under fixed AnalyzerSettings."""

    def __init__(self, settings: AnalyzerSettings):
        self.settings = settings
        if settings.language not in ("en", "zh"):
            raise ValueError(f"unknown analysis language {settings.language!r}")
        self._stop = _stopwords(settings.language) if settings.stopwords else frozenset()
        self._stem = _stemmer(settings.stemmer) if settings.stemmer else None
        if settings.language == "zh" and settings.zh_mode != "char":
            _jieba_add_words(settings.user_words)

    def __call__(self, text: str) -> list[str]:
        """Tokens of one text, in order, duplicates kept (BM25 counts them)."""
        return [token for _, token in self.terms(text)]

    def many(self, texts: Iterable[str]) -> list[list[str]]:
        """Tokens of each text."""
        return [self(t) for t in texts]

    def terms(self, text: str) -> list[tuple[str, str]]:
        """(surface word, index token) pairs: the token is what BM25 matches, the word what users read."""
        text = text.lower()
        if self.settings.language == "zh":
            words = self._zh_words(text)
        else:
            words = [w for w in _WORD.findall(text) if w not in self._stop]
        tokens = self._stem.stemWords(words) if self._stem is not None else words
        return list(zip(words, tokens))

    def _zh_words(self, text: str) -> list[str]:
        mode = self.settings.zh_mode
        if mode == "char":
            pieces: Sequence[str] = [c for c in text if not c.isspace()]
        else:
            jieba = _jieba()
            pieces = jieba.lcut_for_search(text) if mode == "search" else jieba.lcut(text)
        return [p for p in (s.strip() for s in pieces)
                if p and _HAS_WORD_CHAR.search(p) and p not in self._stop]


def detect_language(texts: Iterable[str], sample: int = 200) -> str:
    """'zh' when CJK characters make up at least a fifth of the letters in a sample, else 'en'."""
    cjk = letters = 0
    for i, t in enumerate(texts):
        if i >= sample:
            break
        cjk += len(_CJK.findall(t))
        letters += sum(1 for c in t if c.isalpha())
    return "zh" if letters and cjk / letters >= 0.2 else "en"


@lru_cache(maxsize=None)
def _stopwords(language: str) -> frozenset[str]:
    from bm25s import tokenization

    words = tokenization.STOPWORDS_EN if language == "en" else tokenization.STOPWORDS_CHINESE
    return frozenset(words)


@lru_cache(maxsize=None)
def _stemmer(algorithm: str):
    import Stemmer

    return Stemmer.Stemmer(algorithm)


@lru_cache(maxsize=1)
def _jieba():
    """jieba, initialised once per process, its cache file in the user's cache folder."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    cache_dir = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "retrieval"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        jieba.dt.tmp_dir = str(cache_dir)
    except OSError:
        pass  # jieba falls back to the system temp folder
    jieba.initialize()
    return jieba


_ADDED_WORDS: set[str] = set()


def _jieba_add_words(words: Iterable[str]) -> None:
    jieba = _jieba()
    for w in words:
        if w not in _ADDED_WORDS:
            jieba.add_word(w)
            _ADDED_WORDS.add(w)

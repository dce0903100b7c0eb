"""Text analysis for BM25: text -> tokens, the same way for documents and queries.

English follows MTEB's BM25 baseline (bm25s's regex split, its English stopwords, a
Snowball stemmer), so our BM25 scores equal MTEB's. Chinese is segmented with jieba
(accurate or search mode) or cut into characters (and character bigrams); article numbers,
a user dictionary (law names) and stopword lists are options (see `chinese`). The settings
are plain data, saved in the index manifest and reused at query time.
"""

from __future__ import annotations

import operator
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from pathlib import Path

from ..corpus import Document
from ..languages import analysis_language
from . import chinese

_WORD = re.compile(r"(?u)\b\w\w+\b")
_HAS_WORD_CHAR = re.compile(r"\w")
_CJK_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK = re.compile(f"[{_CJK_CHARS}]")
_RUNS = re.compile(f"[{_CJK_CHARS}]+|[^\\W{_CJK_CHARS}]+")  # a run of CJK characters, or of other word characters

LANGUAGES = ("en", "zh")
ZH_MODES = ("accurate", "search", "char", "ngram")
JIEBA_MODES = ("accurate", "search")
TITLE_MODES = ("join", "field", "none")
USER_DICT = "user_dict.txt"  # where the BM25 leg keeps its user dictionary, in its folder


@dataclass(frozen=True)
class AnalyzerSettings:
    """What turns text into BM25 tokens; stored in the manifest so queries match the index."""

    language: str = "en"  # "en" or "zh"
    stopwords: str | None = "bm25s"  # a list in chinese.STOPWORD_LISTS, or None for no stopwords
    stemmer: str | None = "english"  # a PyStemmer algorithm; in Chinese text it stems Latin words only
    zh_mode: str = "accurate"  # jieba "accurate" or "search"; "char": characters; "ngram": characters + bigrams
    article_numbers: bool = False  # zh: 第四百六十五条 and 第465条 both become the one token 第465条
    law_names: bool = False  # zh, jieba modes: law names from the corpus titles join the user dictionary
    user_dict: str | None = None  # set by a build: the index's user dictionary file (relative to the index)
    title: str = "join"  # "join": title + text; "field": its own BM25 field; "none": not indexed
    title_weight: float = 1.0  # title="field": a document's score = text score + title_weight * title score

    def __post_init__(self):
        _check(self.language, LANGUAGES, "language")
        _check(self.zh_mode, ZH_MODES, "zh_mode")
        _check(self.title, TITLE_MODES, "title")
        if self.stopwords is not None:
            _check(self.stopwords, chinese.STOPWORD_LISTS, "stopword list")
        if self.law_names and not self.uses_jieba:
            raise ValueError("law_names needs Chinese analysis in a jieba mode (accurate or search)")
        if self.title_weight < 0:
            raise ValueError(f"title_weight must be >= 0, got {self.title_weight}")

    @property
    def uses_jieba(self) -> bool:
        """Whether text is segmented by jieba (and so a user dictionary applies)."""
        return self.language == "zh" and self.zh_mode in JIEBA_MODES

    def to_dict(self) -> dict:
        """Plain JSON-ready settings."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> AnalyzerSettings:
        """Settings back from the manifest; the first format's stopwords true/false and empty user_words are read too."""
        d = dict(d)
        if isinstance(d.get("stopwords"), bool):
            d["stopwords"] = "bm25s" if d["stopwords"] else None
        if not d.get("user_words", True):
            del d["user_words"]
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown analysis settings {', '.join(sorted(unknown))}; rebuild the index")
        return cls(**d)

    @classmethod
    def for_language(cls, language: str, **overrides) -> AnalyzerSettings:
        """Defaults for 'en' (MTEB's BM25 baseline) or 'zh' (the best variant on STARD, docs/stard.md)."""
        if language == "en":
            return cls(**overrides)
        if language == "zh":
            return cls(**{"language": "zh", "zh_mode": "ngram", "stopwords": "legal", "article_numbers": True,
                          **overrides})
        raise ValueError(f"unknown language {language!r} (want en or zh)")


def resolve_settings(language: str, texts: Sequence[str], **overrides) -> AnalyzerSettings:
    """Settings for `language` ('auto': identified in a sample of `texts`, languages.analysis_language), with
    `overrides` of its defaults."""
    lang = analysis_language(texts) if language == "auto" else language
    return AnalyzerSettings.for_language(lang, **overrides)


class Analyzer:
    """Callable text -> list of tokens under fixed AnalyzerSettings (and user words, for jieba)."""

    def __init__(self, settings: AnalyzerSettings, user_words: Iterable[str] = ()):
        self.settings = settings
        self.user_words = tuple(dict.fromkeys(w.strip().lower() for w in user_words if w.strip()))
        if self.user_words and not settings.uses_jieba:
            raise ValueError("a user dictionary needs Chinese analysis in a jieba mode (accurate or search)")
        self._stop = chinese.stopwords(settings.stopwords, settings.language) if settings.stopwords else frozenset()
        self._stem = _stemmer(settings.stemmer) if settings.stemmer else None
        self._stem_word = _stemmer(settings.stemmer, cached=False).stemWord if settings.stemmer else None
        self._jieba = chinese.jieba_tokenizer(self.user_words) if settings.uses_jieba else None

    @classmethod
    def for_documents(cls, settings: AnalyzerSettings, documents: Sequence[Document],
                      user_words: Iterable[str] = ()) -> Analyzer:
        """An analyzer to index `documents`: the user's words plus, if asked, the law names in their titles."""
        words = list(user_words)
        if settings.law_names:
            words += chinese.law_names(d.title for d in documents)
        return cls(replace(settings, user_dict=USER_DICT if words else None), words)

    @classmethod
    def load(cls, folder: Path, settings: AnalyzerSettings) -> Analyzer:
        """The analyzer of an index folder (its user dictionary read from the folder)."""
        words = chinese.read_user_dict(folder / settings.user_dict) if settings.user_dict else ()
        return cls(settings, words)

    def save(self, folder: Path) -> None:
        """Write the user dictionary (if any) where the settings say, inside the index folder."""
        if self.settings.user_dict:
            chinese.write_user_dict(folder / self.settings.user_dict, self.user_words)

    def __call__(self, text: str) -> list[str]:
        """Tokens of one text, in order, duplicates kept (BM25 counts them)."""
        return [token for _, token in self.terms(text)]

    def many(self, texts: Iterable[str]) -> list[list[str]]:
        """Tokens of each text."""
        return [self(t) for t in texts]

    def terms(self, text: str) -> list[tuple[str, str]]:
        """(surface word, index token) pairs: the token is what BM25 matches, the word what users read."""
        stop = self._stop
        return [(word, token) for word, token in self.segment(text) if word not in stop]

    def reader_terms(self, text: str) -> list[tuple[str, list[str]]]:
        """(word, its index tokens) pairs to explain a match with: the words a reader sees. Chinese character or
        n-gram analysis ranks by characters and bigrams, which cross word boundaries (为个), so it is explained
        by jieba's words instead, and the shorter words a long one is made of (chinese.word_parts); words of two or
        more characters: one character matches inside unrelated words."""
        if self.settings.language != "zh" or self.settings.zh_mode not in ("char", "ngram"):
            return [(word, [token]) for word, token in self.terms(text)]
        text = unicodedata.normalize("NFKC", text).lower()
        pieces = chinese.split_articles(text) if self.settings.article_numbers else [(text, None)]
        out: list[tuple[str, list[str]]] = []
        for piece, article in pieces:
            if article:
                out.append((piece, [article]))
                continue
            jieba = chinese.jieba_tokenizer(self.user_words)
            for whole in jieba.lcut(piece):
                for word in (whole.strip(), *chinese.word_parts(jieba, whole.strip())):
                    if word in self._stop or not _HAS_WORD_CHAR.search(word) or (_CJK.match(word) and len(word) < 2):
                        continue
                    if tokens := self(word):
                        out.append((word, tokens))
        return out

    def keeps(self, word: str) -> bool:
        """Whether a segmented word is indexed (it is not a stopword)."""
        return word not in self._stop

    def word_token(self, word: str) -> str | None:
        """English: the index token of one lowercased word, None for a stopword (`terms` word by word).

        Its stemmer keeps no cache of its own: callers cache whole words (postings.ChunkAnalyzer).
        """
        if word in self._stop:
            return None
        return self._stem_word(word) if self._stem_word is not None else word

    def segment(self, text: str) -> list[tuple[str, str]]:
        """(word, token) pairs before stopword removal: lowercased words that hold a letter or digit."""
        if self.settings.language == "en":
            words = _WORD.findall(text.lower())
            return list(zip(words, self._stem.stemWords(words) if self._stem is not None else words))
        text = unicodedata.normalize("NFKC", text).lower()
        pieces = chinese.split_articles(text) if self.settings.article_numbers else [(text, None)]
        out: list[tuple[str, str]] = []
        for piece, article in pieces:
            if article:
                out.append((piece, article))
            else:
                words = self._cut(piece)
                out.extend(zip(words, self._stem_latin(words)))
        return out

    def _cut(self, text: str) -> list[str]:
        mode = self.settings.zh_mode
        if mode in ("char", "ngram"):
            return _char_grams(text, bigrams=mode == "ngram")
        words = self._jieba.lcut_for_search(text) if mode == "search" else self._jieba.lcut(text)
        return [w for w in (s.strip() for s in words) if w and _HAS_WORD_CHAR.search(w)]

    def _stem_latin(self, words: list[str]) -> list[str]:
        """Stemmed Latin words, other words as they are."""
        if self._stem is None:
            return words
        stem = self._stem.stemWord
        return [stem(w) if w.isascii() and w.isalpha() else w for w in words]


def bm25_fields(documents: Iterable[Document], title: str) -> tuple[Iterator[str], Iterator[str] | None]:
    """What BM25 indexes of each document under a title mode: (texts, titles or None), made one by one."""
    if title == "join":
        return (d.indexed_text() for d in documents), None
    return (d.text for d in documents), ((d.title for d in documents) if title == "field" else None)


def shown_in(words: Sequence[str], text: str) -> tuple[str, ...]:
    """The matched words to show for a document of `text`: Chinese ones only where the text holds them whole
    (character n-grams also match a word whose characters stand apart)."""
    if not any(_CJK.search(w) for w in words):
        return tuple(words)
    folded = unicodedata.normalize("NFKC", text).lower()
    return tuple(w for w in words if not _CJK.search(w) or w in folded)


def _char_grams(text: str, bigrams: bool) -> list[str]:
    """Each CJK character (and, with `bigrams`, each overlapping pair); other word runs whole."""
    out: list[str] = []
    for run in _RUNS.findall(text):
        if not _CJK.match(run):
            out.append(run)
            continue
        out.extend(run)
        if bigrams:
            out.extend(map(operator.add, run, run[1:]))
    return out


def _check(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r} (choose from {', '.join(allowed)})")


@lru_cache(maxsize=None)
def _stemmer(algorithm: str, cached: bool = True):
    """A PyStemmer stemmer; `cached` False: without its word cache, which costs 4x a stem on unseen words."""
    import Stemmer

    stemmer = Stemmer.Stemmer(algorithm)
    if not cached:
        stemmer.maxCacheSize = 0
    return stemmer

"""Chinese legal text: article numbers, law names from titles, jieba with user words, stopword lists.

Article numbers are written both ways (第四百六十五条, 第465条); both become one token,
第465条, so a question that names an article finds its title. Law names come from corpus
titles (law name + article number) and join jieba's dictionary so a named law stays one word.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..index.cache import cache_dir

PRC = "中华人民共和国"
_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_NUM = "[0-9０-９]+|[零〇一二两三四五六七八九十百千万]+"
# 第四百六十五条, 第 465 条, 465条, 第一百三十三条之一; Chinese numerals only after 第.
_ARTICLE = f"(?:第\\s*(?P<n>{_NUM})|(?P<d>[0-9０-９]+))\\s*条(?:之(?P<sub>{_NUM}))?"
ARTICLE = re.compile(_ARTICLE)
_TITLE = re.compile(f"^(?P<name>.+?)\\s*{_ARTICLE}$")


def cn_number(s: str) -> int:
    """An Arabic or Chinese numeral as an int: '465', '四百六十五', '一千二百六十', '十二' -> 12."""
    if s.isdigit():
        return int(s)
    total = section = 0
    digit: int | None = None
    for ch in s:
        if ch in _DIGITS:
            digit = _DIGITS[ch]
        elif ch == "万":
            total += (section + (digit or 0)) * 10000
            section, digit = 0, None
        else:
            section += (1 if digit is None else digit) * _UNITS[ch]
            digit = None
    return total + section + (digit or 0)


def article_token(match: re.Match) -> str:
    """The one token form of an article reference: 第465条, or 第133条之1."""
    token = f"第{cn_number(match['n'] or match['d'])}条"
    return f"{token}之{cn_number(match['sub'])}" if match["sub"] else token


def split_articles(text: str) -> Iterator[tuple[str, str | None]]:
    """Pieces of `text` in order: (article reference, its token) or (other text, None)."""
    start = 0
    for m in ARTICLE.finditer(text):
        if m.start() > start:
            yield text[start:m.start()], None
        yield m.group(), article_token(m)
        start = m.end()
    if start < len(text):
        yield text[start:], None


def law_name(title: str) -> str | None:
    """The law named by an article title ('中华人民共和国民法典第四百六十五条' -> '中华人民共和国民法典')."""
    m = _TITLE.match(title.strip())
    return m["name"] if m else None


def law_names(titles: Iterable[str]) -> list[str]:
    """Short law names found in article titles, for the user dictionary.

    '中华人民共和国民法典' gives '民法典': jieba then cuts the full name into 中华人民共和国 +
    民法典, so both the full and the short name match. Titles of judicial interpretations
    ('最高人民法院关于…的解释') are descriptions, not names people type, and are left out.
    """
    names = {n.removeprefix(PRC) or n for n in map(law_name, titles) if n and "关于" not in n}
    return sorted(n for n in names if len(n) > 1)


def read_user_dict(path: str | Path) -> list[str]:
    """Words of a user dictionary: one per line, jieba's 'word [freq] [tag]' accepted (freq, tag ignored)."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read the user dictionary ({e})") from None
    return [line.split()[0] for line in lines if line.strip() and not line.lstrip().startswith("#")]


def write_user_dict(path: Path, words: Iterable[str]) -> None:
    """Write words one per line (a file jieba and `read_user_dict` both read)."""
    path.write_text("".join(f"{w}\n" for w in words), encoding="utf-8")


@lru_cache(maxsize=1)
def _base_jieba():
    """jieba's default tokenizer, initialised once per process, its cache file in the user's cache folder."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    if os.access(folder, os.W_OK):
        jieba.dt.tmp_dir = str(folder)  # else jieba uses the system temp folder
    jieba.dt.initialize()
    return jieba.dt


@lru_cache(maxsize=4)
def jieba_tokenizer(words: tuple[str, ...] = ()):
    """A jieba tokenizer that also knows `words`; a copy of the shared base, so analyzers do not mix words."""
    base = _base_jieba()
    if not words:
        return base
    import jieba

    tok = jieba.Tokenizer()
    tok.FREQ, tok.total, tok.initialized, tok.tmp_dir = dict(base.FREQ), base.total, True, base.tmp_dir
    for w in words:
        tok.add_word(w)
    return tok


def word_parts(tokenizer, word: str) -> list[str]:
    """The shorter dictionary words inside a word of three or more characters, side by side, left to right, the
    longest first at each place (个人行为 -> 个人, 行为; 人财物 -> 财物), from jieba's search mode."""
    if len(word) < 3:
        return []
    pieces = [p for p in tokenizer.lcut_for_search(word) if p != word and len(p) > 1]
    out, at = [], 0
    while at < len(word):
        here = [p for p in pieces if word.startswith(p, at)]
        if here:
            out.append(max(here, key=len))
        at += len(out[-1]) if here else 1
    return out


STOPWORD_LISTS = ("bm25s", "legal")


@lru_cache(maxsize=None)
def stopwords(name: str, language: str) -> frozenset[str]:
    """A stopword list: 'bm25s' (bm25s's list for the language) or 'legal' (zh, curated for legal questions).

    Chinese lists also hold bm25s's English stopwords, for the Latin words in mixed text.
    """
    from bm25s.tokenization import STOPWORDS_CHINESE, STOPWORDS_EN

    english = frozenset(STOPWORDS_EN)
    if language == "en" and name == "bm25s":
        return english
    if language == "zh" and name == "bm25s":
        return english | frozenset(STOPWORDS_CHINESE)
    if language == "zh" and name == "legal":
        text = resources.files("retrieval").joinpath("data/stopwords_zh_legal.txt").read_text(encoding="utf-8")
        return english | {w for line in text.splitlines() if not line.startswith("#") for w in line.split()}
    raise ValueError(f"no stopword list {name!r} for language {language!r} (lists: {', '.join(STOPWORD_LISTS)})")

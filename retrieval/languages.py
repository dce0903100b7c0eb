"""Which languages a corpus is in and which its model reads, and the default query mode that follows.

The corpus's languages are identified by py3langid (its model is numpy arrays, loaded without pickle)
over a fixed-seed sample of documents; the model's come from its card (the sentence-transformers
README.md `language:` metadata), the Qwen3-Embedding family (multilingual) or `--model-languages`.
When the model reads none of the corpus's main language, its dense leg ranks close to random and
fusing it halves what BM25 finds (docs/languages.md), so the index's default mode becomes BM25.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SAMPLE = 200  # documents identified per corpus
SEED = 0  # the sample's seed: the same corpus gives the same sample
SNIPPET = 500  # characters of each document identified (its title and the start of its text)
MIN_LETTERS = 8  # a text with fewer letters is too short to identify (a short Chinese query has a dozen)
MIN_CONFIDENCE = 0.5  # py3langid's normalised probability below which a document is not identified
MIN_IDENTIFIED = 0.5  # the share of the sample that must be identified to name the corpus's languages
MAIN_SHARE = 0.5  # the share of identified documents the main language must hold (else: mixed)
COVERED_SHARE = 0.1  # a corpus with at least this share in the model's languages keeps hybrid (mixed)
ZH_SHARE = 0.2  # BM25 analysis: Chinese when at least this share of identified documents is Chinese
MULTILINGUAL = "multilingual"
_FOLD = {"wuu": "zh", "yue": "zh"}  # Chinese varieties py3langid names apart: one BM25 analysis, one model coverage
_CODE = re.compile(r"[a-z]{2,3}")
_BUNDLED = "all-MiniLM-L6-v2 (bundled)"


def sample_texts(texts: Iterable[str], size: int = SAMPLE, seed: int = SEED) -> list[str]:
    """A fixed-seed uniform sample of `size` texts (reservoir sampling: one pass, `size` texts held)."""
    rng, out = random.Random(seed), []
    for i, text in enumerate(texts):
        if i < size:
            out.append(text)
        elif (j := rng.randrange(i + 1)) < size:
            out[j] = text
    return out


def identify(texts: Sequence[str]) -> dict:
    """The languages of sampled texts: each one's share of the identified texts, the main one (None when too few
    are identified or none holds MAIN_SHARE) and why not."""
    found = Counter(lang for lang in map(identify_text, texts) if lang)
    identified = sum(found.values())
    shares = {lang: round(n / identified, 4) for lang, n in found.most_common()} if identified else {}
    out = {"library": _library(), "sample": len(texts), "identified": identified, "shares": shares, "main": None}
    if identified < max(1, MIN_IDENTIFIED * len(texts)):
        out["unidentified"] = "too short or unclear"
    elif next(iter(shares.values())) < MAIN_SHARE:
        out["unidentified"] = "mixed"
    else:
        out["main"] = next(iter(shares))
    return out


def identify_text(text: str) -> str | None:
    """One text's ISO 639-1 code, None when it is too short or py3langid is unsure."""
    snippet = " ".join(text[:SNIPPET].split())
    if sum(c.isalpha() for c in snippet) < MIN_LETTERS:
        return None
    lang, confidence = _identifier().classify(snippet)
    return _FOLD.get(lang, lang) if confidence >= MIN_CONFIDENCE else None


def analysis_language(texts: Sequence[str]) -> str:
    """BM25's analysis language for `--language auto`: 'zh' when a fifth of the sample is identified as Chinese."""
    return "zh" if identify(sample_texts(texts))["shares"].get("zh", 0) >= ZH_SHARE else "en"


def parse_languages(value: str) -> tuple[str, ...]:
    """`--model-languages`: comma-separated ISO 639 codes (en,de) or 'multilingual'; ValueError naming a bad one."""
    codes = tuple(dict.fromkeys(c.strip().lower() for c in value.split(",") if c.strip()))
    known = set(_identifier().nb_classes) | {MULTILINGUAL}
    for code in codes or ("",):
        if code not in known and not (_CODE.fullmatch(code.split("-")[0]) and code.split("-")[0] in known):
            raise ValueError(f"--model-languages: {code!r} is not a language code (want ISO 639 codes such as "
                             f"en,zh,de, or {MULTILINGUAL})")
    return tuple(c.split("-")[0] for c in codes)


def model_languages(model: str | None, stated: str | None = None) -> dict:
    """The languages a model reads and where that was read: {"languages": [...], "source": ...}; languages [] when
    not known (then "source" says how to state them)."""
    from .defaults import QWEN3, model_family
    from .dense.encoders import model_folder, resolve_model

    if stated:
        return {"languages": list(parse_languages(stated)), "source": "--model-languages"}
    path = resolve_model(model)
    name = _BUNDLED if path != model and model in (None, "all-MiniLM-L6-v2") else (model or path)
    folder = model_folder(path)
    card = _card_languages(folder / "README.md") if folder else None
    if card:
        return {"languages": card, "source": f"model card of {name} (README.md language:)"}
    if model_family(model) == QWEN3:
        return {"languages": [MULTILINGUAL], "source": f"{name}: the Qwen3-Embedding family is multilingual"}
    return {"languages": [], "source": f"{name} has no model card with a language: field; "
                                       f"state its languages with --model-languages (e.g. en,de or {MULTILINGUAL})"}


@dataclass(frozen=True)
class Plan:
    """What a build does about languages: the legs it builds, the index's default mode and the line it says."""

    legs: tuple[str, ...]
    default_mode: str
    note: str | None


def plan(corpus: dict, model: dict, legs: Sequence[str], legs_given: bool, model_name: str) -> Plan:
    """Legs and default mode: BM25 where the model reads none of the corpus's main language (the BM25 leg alone
    unless `legs_given`), hybrid otherwise; with a one-line note wherever the choice is not plain."""
    legs = tuple(legs)
    if not {"dense", "bm25"} <= set(legs):
        return Plan(legs, "hybrid", None)
    langs, shares = model["languages"], corpus["shares"]
    found = ", ".join(f"{lang} {share:.0%}" for lang, share in list(shares.items())[:4]) or "none"
    where = f"corpus languages {found} of {corpus['identified']} identified in {corpus['sample']} sampled documents"
    if not langs:
        return Plan(legs, "hybrid", f"language: {where}; {model['source']}; keeping hybrid")
    if corpus["main"] is None:
        return Plan(legs, "hybrid", f"language: {where}: {corpus['unidentified']} to identify a main language; "
                                    f"keeping hybrid (model {model_name} reads {', '.join(langs)})")
    covered = 1.0 if MULTILINGUAL in langs else sum(s for lang, s in shares.items() if lang in langs)
    if corpus["main"] in langs or MULTILINGUAL in langs:
        return Plan(legs, "hybrid", None)
    reads = f"model {model_name} reads {', '.join(langs)}"
    if covered >= COVERED_SHARE:
        return Plan(legs, "hybrid", f"language: mixed corpus: {where}; {reads}, so {covered:.0%} of the sample is "
                                    f"in a language it reads; keeping hybrid")
    if legs_given:
        return Plan(legs, "bm25", f"language: {where}; {reads}, not {corpus['main']}: dense built as asked, but the "
                                  f"index's default mode is bm25 (query --mode hybrid fuses; --model-languages "
                                  f"{corpus['main']} if the model does read it)")
    return Plan(("bm25",), "bm25", f"language: {where}; {reads}, not {corpus['main']}: building the BM25 leg only "
                                   f"(--legs dense,bm25 builds both; --model-languages {corpus['main']} if the model "
                                   f"does read it)")


def default_mode(info: dict) -> str:
    """An index's default query mode from its manifest (indexes built before languages were known: hybrid)."""
    return info.get("languages", {}).get("default_mode", "hybrid")


def not_default_note(info: dict, mode: str) -> str | None:
    """Why `mode` (asked for) is not the index's default, when it is hybrid over an index whose default is BM25."""
    languages = info.get("languages", {})
    if mode == "hybrid" and languages.get("default_mode") == "bm25":
        return f"note: hybrid is not this index's default mode: {languages.get('note', 'the model cannot read it')}"
    return None


def _card_languages(readme: Path) -> list[str] | None:
    """The `language:` of a model card's YAML front matter, as codes (None: no card or no such field)."""
    import yaml

    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("---"):
        return None
    try:
        meta = yaml.safe_load(text.split("---", 2)[1])
    except (yaml.YAMLError, IndexError):
        return None
    value = meta.get("language") if isinstance(meta, dict) else None
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [str(v).lower().split("-")[0] for v in values if str(v).strip()] or None


def _library() -> str:
    import importlib.metadata as md

    return f"py3langid {md.version('py3langid')}"


@lru_cache(maxsize=1)
def _identifier():
    """py3langid's identifier with normalised probabilities (its bundled model: npz arrays, no pickle)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

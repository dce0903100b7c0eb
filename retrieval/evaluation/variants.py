"""Data sets derived from AILA and STARD for comparisons (docs/languages.md): AILA without titles, STARD subsets."""

from __future__ import annotations

import random
from pathlib import Path

from .datasets import RetrievalData, _read_text, load_aila, load_dataset_folder


def aila_statutes(aila_dir: str | Path) -> dict[str, str]:
    """Every AILA statute file's text (`Title: ...` then `Desc: ...`), judged or not, by id (S1, S2, ...)."""
    return {p.stem: _read_text(p).strip() for p in sorted((Path(aila_dir) / "Object_statutes").glob("S*.txt"))}


def aila_without_titles(aila_dir: str | Path) -> RetrievalData:
    """All AILA statutes with the `Title:` line cut (the text after `Desc:`), AILA's judged queries: a set where
    BM25 cannot lean on the statute titles the queries rarely share words with."""
    aila = load_aila(aila_dir)
    corpus = {s: {"title": "", "text": text.split("Desc:", 1)[-1].strip()} for s, text in aila_statutes(aila_dir).items()}
    queries = {q: aila.queries[q] for q in sorted(aila.qrels)}
    return RetrievalData("AILA-no-titles", aila.language, corpus, queries, aila.qrels)


def stard_subset(stard_dir: str | Path, seed: int, queries: int = 200, others: int = 2000) -> RetrievalData:
    """`queries` STARD queries drawn with `seed`, their relevant articles and `others` articles drawn beside them:
    a corpus small enough to encode on a CPU in minutes, the same for the same seed."""
    full = load_dataset_folder(stard_dir)
    rng = random.Random(seed)
    chosen = sorted(rng.sample(sorted(q for q in full.queries if q in full.qrels), queries))
    relevant = {d for q in chosen for d in full.qrels[q]}
    drawn = rng.sample([d for d in full.corpus if d not in relevant], others)
    corpus = {d: full.corpus[d] for d in [d for d in full.corpus if d in relevant] + drawn}
    return RetrievalData(f"STARD-subset-seed{seed}", full.language, corpus, {q: full.queries[q] for q in chosen},
                         {q: full.qrels[q] for q in chosen})

"""What a search returns: Hits with each leg's rank and score, and their JSON views."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class LegHit:
    """A document's place in one leg's ranking."""

    rank: int
    score: float


@dataclass(frozen=True)
class Hit:
    """One result: id, title, fused score, each leg's rank and score (legs that list it), matched query words.

    Reranked (see rerank.py): `rank` and `score` are the final ones (the rerank score within the rerank depth,
    the fused score below it), `first_stage` the fused list's rank and score, `rerank_score` None below the depth.
    """

    rank: int
    id: str
    title: str
    score: float
    legs: Mapping[str, LegHit] = field(default_factory=dict)
    matched_terms: tuple[str, ...] = ()
    first_stage: LegHit | None = None
    rerank_score: float | None = None

    def leg(self, name: str) -> LegHit | None:
        """This document's place in leg `name` (None: not in that leg's list)."""
        return self.legs.get(name)

    def to_dict(self, legs: Sequence[str] | None = None) -> dict:
        """The JSON shape of `query --json` and the web API: one {rank, score} per leg of the index (nulls when
        the document is not in that leg's list)."""
        absent = {"rank": None, "score": None}
        per_leg = {leg: asdict(self.legs[leg]) if leg in self.legs else dict(absent) for leg in (legs or self.legs)}
        return {"rank": self.rank, "id": self.id, "title": self.title, "score": self.score, **per_leg,
                "matched_terms": list(self.matched_terms),
                **({"first_stage": asdict(self.first_stage), "rerank_score": self.rerank_score}
                   if self.first_stage else {})}


def results_json(query: str, mode: str, legs: Sequence[str], hits: Sequence[Hit], seconds: float) -> dict:
    """One search's answer as `query --json` prints it and the web API returns it (`legs`: the index's legs)."""
    return {"query": query, "mode": mode, "legs": list(legs), "hits": [h.to_dict(legs) for h in hits],
            "seconds": round(seconds, 6)}

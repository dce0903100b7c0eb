"""What a search returns: Hits with each leg's rank and score, and their JSON views."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from .corpus import META_FIELDS
from .filters import in_force


@dataclass(frozen=True)
class LegHit:
    """A document's place in one leg's ranking."""

    rank: int
    score: float


@dataclass(frozen=True)
class Hit:
    """One result: id, title, fused score, each leg's rank and score (legs that list it), matched query words, and
    the statute's act, jurisdiction, section, valid_from and valid_to (`statute`: those the document has).

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
    statute: Mapping[str, str] = field(default_factory=dict)

    def in_force(self, day: str) -> bool | None:
        """Whether the statute is in force on `day` (ISO); None when the document has no dates."""
        if "valid_from" not in self.statute and "valid_to" not in self.statute:
            return None
        return in_force(day)(self.statute)

    def force_note(self, day: str) -> str | None:
        """'not in force since D' / 'not in force until D' when the statute is not in force on `day`, else None."""
        if self.in_force(day) is not False:
            return None
        until = self.statute.get("valid_from")
        return f"not in force until {until}" if until and day < until else f"not in force since {self.statute['valid_to']}"

    def leg(self, name: str) -> LegHit | None:
        """This document's place in leg `name` (None: not in that leg's list)."""
        return self.legs.get(name)

    def to_dict(self, legs: Sequence[str] | None = None, day: str | None = None) -> dict:
        """The JSON shape of `query --json` and the web API: one {rank, score} per leg of the index (nulls when
        the document is not in that leg's list); the statute fields the document has, and `in_force` on `day`
        (default today) when it has a valid_from or valid_to."""
        absent = {"rank": None, "score": None}
        per_leg = {leg: asdict(self.legs[leg]) if leg in self.legs else dict(absent) for leg in (legs or self.legs)}
        force = self.in_force(day or today())
        return {"rank": self.rank, "id": self.id, "title": self.title, "score": self.score, **per_leg,
                "matched_terms": list(self.matched_terms),
                **{name: self.statute[name] for name in META_FIELDS if name in self.statute},
                **({} if force is None else {"in_force": force}),
                **({"first_stage": asdict(self.first_stage), "rerank_score": self.rerank_score}
                   if self.first_stage else {})}


def today() -> str:
    """Today's date (ISO): the day `in_force` refers to when no --as-of / as_of is given."""
    return datetime.date.today().isoformat()


def statute_fields(record: Mapping) -> dict[str, str]:
    """A document record's act, jurisdiction, section, valid_from and valid_to (those it has)."""
    return {name: record[name] for name in META_FIELDS if record.get(name)}


def results_json(query: str, mode: str, legs: Sequence[str], hits: Sequence[Hit], seconds: float,
                 as_of: str | None = None, warnings: Sequence[str] = ()) -> dict:
    """One search's answer as `query --json` prints it and the web API returns it (`legs`: the index's legs;
    `in_force` on `as_of`, default today; `warnings`: the filter's, listed when there are any)."""
    return {"query": query, "mode": mode, "legs": list(legs), "hits": [h.to_dict(legs, as_of) for h in hits],
            "seconds": round(seconds, 6), **({"warnings": list(warnings)} if warnings else {})}

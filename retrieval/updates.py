"""Updating an index in place: add, change and delete documents so that it equals a fresh build.

The retriever's rows follow the resulting corpus (`update_to`: the new corpus's order, kept
missing documents after it; `add`: appended; `update`: changed in place; `delete`: dropped),
so ties break as a fresh build's do. Each leg re-makes itself from its stored parts (Leg.rebuilt:
BM25 rebuilds from the texts with the index's analysis and k1/b, its statistics being corpus-wide;
the dense leg encodes only texts whose vectors it does not already hold and rebuilds its vector
store), and the index's backend publishes them as its next generation. Saving writes a new
generation (index/format.write_index), switched to atomically.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .corpus import META_FIELDS, Document, fingerprint, validate
from .index.backends import Backend, chosen
from .index.format import NotFoundError, rank_ids
from .legs import RowOrder


@dataclass
class Plan:
    """What an update does, by document id."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    encoded: int = 0  # texts (passages, titles) sent to the encoder
    seconds: float = 0.0
    to_encode: int | None = None  # a dry run: texts the update would encode (to_encode)
    changes: dict[str, list[str]] = field(default_factory=dict)  # a dry run: changed id -> its changed fields

    def summary(self) -> str:
        """One line: added / changed / removed / unchanged, texts encoded (or, in a dry run, to encode), seconds."""
        counts = (f"added {len(self.added)}, changed {len(self.changed)}, removed {len(self.removed)}, "
                  f"unchanged {self.unchanged}")
        if self.to_encode is not None:
            return f"{counts}; would encode {self.to_encode} texts"
        return f"{counts}; encoded {self.encoded} texts in {self.seconds:.1f}s"

    def to_dict(self) -> dict:
        out = {"added": self.added, "changed": self.changed, "removed": self.removed, "unchanged": self.unchanged,
               "encoded": self.encoded, "seconds": round(self.seconds, 3)}
        if self.to_encode is not None:
            out.update(encoded=0, to_encode=self.to_encode, changes=self.changes)
        return out


def plan_update(current: Sequence[Document], corpus: Sequence[Document],
                keep_missing: bool = False) -> tuple[Plan, list[Document]]:
    """The plan that brings `current` in line with `corpus`, and the resulting documents in row order."""
    before = {d.id: d for d in current}
    now = {d.id for d in corpus}
    plan = Plan(added=[d.id for d in corpus if d.id not in before],
                changed=[d.id for d in corpus if d.id in before and before[d.id] != d])
    kept = [d for d in current if d.id not in now]
    if keep_missing:
        plan.unchanged += len(kept)
    else:
        plan.removed, kept = [d.id for d in kept], []
    plan.unchanged += len(corpus) - len(plan.added) - len(plan.changed)
    return plan, [*corpus, *kept]


def plan_upsert(current: Sequence[Document], documents: Iterable[Document],
                only_new: bool = False) -> tuple[Plan, list[Document]]:
    """New documents appended, known ids replaced in place (`only_new`: a known id is an error)."""
    docs = validate(documents, "documents to add")
    rows = {d.id: i for i, d in enumerate(current)}
    out, plan = list(current), Plan()
    for d in docs:
        if d.id not in rows:
            plan.added.append(d.id)
            out.append(d)
        elif only_new:
            raise ValueError(f"document {d.id!r} is already in the index (use update to change it)")
        elif out[rows[d.id]] != d:
            plan.changed.append(d.id)
            out[rows[d.id]] = d
    plan.unchanged = len(current) - len(plan.changed)
    return plan, out


def plan_delete(current: Sequence[Document], ids: Iterable[str]) -> tuple[Plan, list[Document]]:
    """The documents without `ids` (an unknown id is an error; deleting every document too)."""
    gone = list(dict.fromkeys(ids))
    known = {d.id for d in current}
    unknown = [i for i in gone if i not in known]
    if unknown:
        raise NotFoundError(f"not in the index: {', '.join(map(repr, unknown[:5]))}")
    out = [d for d in current if d.id not in set(gone)]
    if not out:
        raise ValueError("deleting every document would leave an empty index")
    return Plan(removed=gone, unchanged=len(out)), out


def rebuilt_legs(legs: dict, before: Sequence[Document], after: Sequence[Document], plan: Plan,
                 progress: bool = False, backend: Backend | None = None) -> dict:
    """Each leg re-made for the documents `after` from its state over `before` (Leg.rebuilt), then published as
    the backend's next generation (a Milvus-backed index: a new collection)."""
    order = RowOrder(rank_ids([d.id for d in after]))
    out = {name: leg.rebuilt(before, after, order, plan, progress) for name, leg in legs.items()}
    return chosen(backend).next_generation(legs, out, after, progress)[0]


def updated_info(info: dict, docs: Sequence[Document], plan: Plan) -> dict:
    """The manifest fields `save` reads, for the updated corpus."""
    out = {"documents": len(docs), "corpus_fingerprint": fingerprint(docs),
           "build": {**info.get("build", {}), "update": plan.to_dict()}}
    if info.get("rerank"):
        out["rerank"] = info["rerank"]
    return out


def to_encode(legs: dict, before: Sequence[Document], after: Sequence[Document]) -> int:
    """How many texts (passages, titles) updating `legs` from `before` to `after` would encode: those whose vector
    a leg does not hold (a dry run's count)."""
    return sum(leg.to_encode(before, after) for leg in legs.values())


def changed_fields(before: Document, after: Document) -> list[str]:
    """The fields in which two versions of a document differ: title, text, metadata fields, meta keys."""
    out = [f for f in ("title", "text", *META_FIELDS) if getattr(before, f) != getattr(after, f)]
    return out + [f"meta.{k}" for k in sorted(before.meta.keys() | after.meta.keys())
                  if before.meta.get(k) != after.meta.get(k)]


class Updatable:
    """add / update / delete / update_to for HybridRetriever: each re-makes the legs for the resulting
    documents in memory and returns its Plan; `save` then writes the index's next generation."""

    def add(self, documents: Iterable[Document], progress: bool = False) -> Plan:
        """Index new documents (ids not in the index yet), after the current ones."""
        before = self.documents()
        return self._apply(before, *plan_upsert(before, documents, only_new=True), progress)

    def update(self, documents: Iterable[Document], progress: bool = False) -> Plan:
        """Add new documents and replace those whose id is known (in place)."""
        before = self.documents()
        return self._apply(before, *plan_upsert(before, documents), progress)

    def delete(self, ids: Iterable[str], progress: bool = False) -> Plan:
        """Remove documents by id."""
        before = self.documents()
        return self._apply(before, *plan_delete(before, ids), progress)

    def update_to(self, corpus: Sequence[Document], keep_missing: bool = False, progress: bool = False) -> Plan:
        """Bring the index in line with `corpus`: rows in its order; ids missing from it removed (or kept)."""
        before = self.documents()
        return self._apply(before, *plan_update(before, corpus, keep_missing), progress)

    def documents(self) -> list[Document]:
        """Every document of the index, in row order."""
        return [Document(**self._doc(row)) for row in range(len(self))]

    def _apply(self, before: list[Document], plan: Plan, docs: list[Document], progress: bool) -> Plan:
        t = time.perf_counter()
        if plan.added or plan.changed or plan.removed:
            legs = rebuilt_legs(self.leg, before, docs, plan, progress, self.backend)
            plan.seconds = time.perf_counter() - t
            self.info = updated_info(self.info, docs, plan)
            self._docs, self.ids, self.leg = docs, [d.id for d in docs], legs
            self._rows = self._fields = None
        return plan

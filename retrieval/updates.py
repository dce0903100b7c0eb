"""Updating an index in place: add, change and delete documents so that it equals a fresh build.

The retriever's rows follow the resulting corpus (`update_to`: the new corpus's order, kept
missing documents after it; `add`: appended; `update`: changed in place; `delete`: dropped),
so ties break as a fresh build's do. Each leg is re-made from the old one's stored parts: BM25
is rebuilt from the texts with the index's analysis and k1/b (its statistics are corpus-wide,
so rebuilding is the exact way, and cheap next to encoding); the dense leg encodes only texts
whose vectors it does not already hold (embedcache.py) and rebuilds its vector store. Saving
writes a new generation (store.write_index), switched to atomically.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .corpus import META_FIELDS, Document, fingerprint, validate
from .dense.embedcache import EmbeddingCache
from .legs import BuildOptions, RowOrder, leg_type
from .settings import Bm25Params
from .index.format import NotFoundError, rank_ids


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
                 progress: bool = False) -> dict:
    """Each leg re-made for the documents `after` from its state over `before` (see the module docstring)."""
    from .milvus.legs import dense_kind_of, publish_legs, target_of

    order = RowOrder(rank_ids([d.id for d in after]))
    out = {}
    for name, leg in legs.items():
        remake = _REMAKE.get(leg.name)
        if remake is None:
            raise ValueError(f"the {name} leg cannot be updated in place; rebuild the index")
        out[name] = remake(leg, before, after, order, plan, progress)
    target = target_of(legs)
    if target is not None:  # a Milvus-backed index: the next generation is a new collection
        publish_legs(target, after, out, dense_kind=dense_kind_of(legs), progress=progress)
    return out


def updated_info(info: dict, docs: Sequence[Document], plan: Plan) -> dict:
    """The manifest fields `save` reads, for the updated corpus."""
    out = {"documents": len(docs), "corpus_fingerprint": fingerprint(docs),
           "build": {**info.get("build", {}), "update": plan.to_dict()}}
    if info.get("rerank"):
        out["rerank"] = info["rerank"]
    return out


def _bm25(leg, before, after, order, plan, progress):
    """A BM25 leg built afresh on `after` with the old leg's analysis, user words, engine, k1/b and window."""
    from .lexical.chinese import law_names

    settings, words = leg.analyzer.settings, list(leg.analyzer.user_words)
    if settings.law_names:  # the law names of the old titles are re-derived from the new ones
        derived = {w.strip().lower() for w in law_names(d.title for d in before)}
        words = [w for w in words if w not in derived]
    params = Bm25Params(k1=leg.index.params.get("k1"), b=leg.index.params.get("b"), query_window=leg.query_window)
    options = BuildOptions(analysis=replace(settings, user_dict=None), user_words=words,
                           bm25_backend=getattr(leg.index, "local_engine", leg.index.engine), bm25=params,
                           progress=progress)
    return leg_type("bm25").build(after, options, order)


def _dense(leg, before, after, order, plan, progress):
    """A dense leg over `after`: stored vectors reused by text, only new texts encoded, the store rebuilt."""
    from .legs.dense import DenseLeg
    from .dense.stores.faiss import FaissStore, StoreParams

    new_texts, passage_docs, title_docs, title_vectors = _dense_texts(leg, after)
    cache = stored_cache(leg, before)
    vectors = cache.encode(lambda: leg.encoder, new_texts, progress)
    if len(title_docs):
        titles = cache.encode(lambda: leg.encoder, [after[i].title for i in title_docs], progress)
        vectors = np.concatenate([vectors, titles])
    plan.encoded += cache.encoded
    local = hasattr(leg.store, "collection")  # a Milvus store: the local one only hands over to the next collection
    store = FaissStore.build(vectors, "flat" if local else leg.store.kind, params=leg.store.params or StoreParams(),
                             device=leg.store.device)
    return DenseLeg(store, order, n_docs=len(after), chunking=leg.chunking, passage_docs=passage_docs,
                    title_docs=title_docs, load_encoder=lambda: leg.encoder, model_info=leg.model_info,
                    title_vectors=title_vectors)


def _dense_texts(leg, after: Sequence[Document]) -> tuple[list[str], np.ndarray | None, np.ndarray, bool]:
    """What a dense leg over `after` encodes: its text rows (windows, cut as the build cut, when chunked), their
    statutes (None: one row each), the statutes whose titles get vectors, and whether titles get them."""
    from .legs.dense import split_for

    chunking = leg.chunking
    if leg.encoder is None if chunking.documents else not leg.model_info.get("model"):
        raise ValueError("this index's dense leg has no model (built from given vectors); rebuild it")
    texts, passage_docs = [d.indexed_text() for d in after], None
    if chunking.documents:  # the model's tokenizer
        texts, passage_docs = split_for(leg.encoder, texts, chunking, leg.encoder.document_prompt)
    title_vectors = leg.title_vectors or chunking.title_weight > 0
    title_docs = np.flatnonzero([bool(d.title) for d in after]) if title_vectors else np.zeros(0, dtype=np.int64)
    return texts, passage_docs, title_docs, title_vectors


def to_encode(legs: dict, before: Sequence[Document], after: Sequence[Document]) -> int:
    """How many texts (passages, titles) updating `legs` from `before` to `after` would encode: those whose vector
    the dense leg does not hold (a dry run's count; 0 without a dense leg)."""
    leg = next((leg for leg in legs.values() if leg.name == "dense"), None)
    if leg is None:
        return 0
    texts, _, title_docs, _ = _dense_texts(leg, after)
    cache = stored_cache(leg, before)
    return len(cache.missing([cache.key(t) for t in [*texts, *(after[i].title for i in title_docs)]]))


def changed_fields(before: Document, after: Document) -> list[str]:
    """The fields in which two versions of a document differ: title, text, metadata fields, meta keys."""
    out = [f for f in ("title", "text", *META_FIELDS) if getattr(before, f) != getattr(after, f)]
    return out + [f"meta.{k}" for k in sorted(before.meta.keys() | after.meta.keys())
                  if before.meta.get(k) != after.meta.get(k)]


def stored_cache(leg, documents: Sequence[Document]) -> EmbeddingCache:
    """An embedding cache holding the vectors a dense leg stores, each under the key of the text (passage
    or title) it was encoded from; `documents` are the leg's documents in row order."""
    from .legs.dense import split_for

    cache = EmbeddingCache.for_model(leg.model_info)
    texts = [d.indexed_text() for d in documents]
    if leg.chunking.documents:  # cut as the build cut (the model's tokenizer)
        texts = split_for(leg.encoder, texts, leg.chunking, leg.encoder.document_prompt)[0]
    stored = leg.store.get(np.arange(len(leg.store)))
    cache.put(texts, stored[:len(texts)])
    cache.put([documents[i].title for i in leg.title_docs], stored[len(texts):])
    return cache


_REMAKE = {"bm25": _bm25, "dense": _dense}


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
            legs = rebuilt_legs(self.leg, before, docs, plan, progress)
            plan.seconds = time.perf_counter() - t
            self.info = updated_info(self.info, docs, plan)
            self._docs, self.ids, self.leg = docs, [d.id for d in docs], legs
            self._rows = self._fields = None
        return plan

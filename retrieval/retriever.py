"""HybridRetriever: composes legs and fusion into hits.

Data flows one way: documents -> each leg (legs/: dense, BM25, or any registered leg) -> per-leg
rankings -> fusion -> Hits -> stages (a reranker); a ranking is rows and scores in RowOrder throughout
(ranking.py), the ids attached once, in the Hits. The retriever never looks inside a leg: it ranks each
through the Leg protocol, and each Hit carries each leg's rank and score and the matched query words.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import filters, fusion
from .corpus import Document, fingerprint
from .hits import Hit, LegHit, results_json, statute_fields
from .index import folder as index_folder
from .index.backends import Backend, chosen
from .index.folder import library_versions
from .index.format import DocumentTable, rank_ids
from .legs import BuildOptions, Leg, default_legs, leg_type
from .lexical.analysis import shown_in
from .ranking import Ranking, RowOrder
from .settings import MAX_DEPTH, Bm25Params, FusionConfig, Settings, read_settings
from .updates import Updatable

if TYPE_CHECKING:
    from .rerank import HitStage

LEGS = default_legs()  # the legs `build` makes unless told otherwise (registered as defaults)
HYBRID = "hybrid"
WHERE_CACHE = 64  # filters whose allowed rows a retriever keeps
_WHERE_LOCK = threading.Lock()  # where() runs in a server's threads: one cache change at a time


class HybridRetriever(Updatable):
    """Any set of legs over one corpus, fused by FusionConfig; add / update / delete come from updates.py."""

    def __init__(self, docs: DocumentTable | list[Document], legs: Mapping[str, Leg], *,
                 fusion_config: FusionConfig = FusionConfig(), info: dict | None = None,
                 backend: Backend | None = None):
        if not legs:
            raise ValueError("a retriever needs at least one leg")
        self._docs = docs
        self.ids = docs.ids if isinstance(docs, DocumentTable) else [d.id for d in docs]
        self.leg = dict(legs)
        self.fusion = fusion_config
        self.info = info or {}
        self._rows: dict[str, int] | None = None
        self._order: tuple[list[str], RowOrder] | None = None  # the ids it was made for, and the order
        self._fields: filters.FieldTable | None = None  # each document's fields but its text, read once for filters
        self._where: dict[tuple, filters.Selection] = {}  # recent filters' allowed rows (where)
        self.backend = chosen(backend)  # where the legs' engines live (index/backends.py)
        self.fuse_in = "project"  # or "server": fused by the backend's engine (Backend.fuse)

    @classmethod
    def build(cls, documents: Sequence[Document], *, legs: Sequence[str] = LEGS,
              fusion_config: FusionConfig = FusionConfig(), **options: Any) -> HybridRetriever:
        """Index `documents` with each named leg; `options` are BuildOptions fields (encoder, analysis, chunking,
        bm25, dense_kind, vectors, progress, ...), each leg taking those it needs."""
        names = _check_legs(legs)
        docs = list(documents)
        opts = BuildOptions(**options)
        order = RowOrder(rank_ids([d.id for d in docs]))
        backend = chosen(opts.backend)
        built = {name: leg_type(name).build(docs, opts, order) for name in names}
        built, figures = backend.publish(docs, built, dense_kind=opts.dense_kind, progress=opts.progress)
        opts.timings.update(figures)
        info = {"documents": len(docs), "corpus_fingerprint": fingerprint(docs), "build": opts.timings}
        return cls(docs, built, fusion_config=fusion_config, info=info, backend=backend)

    @classmethod
    def build_into(cls, path: str | Path, documents: Iterable[Document], *, legs: Sequence[str] = LEGS,
                   fusion_config: FusionConfig = FusionConfig(), rerank: dict | None = None,
                   languages: dict | None = None, **options: Any) -> dict:
        """`build` and `save` in one go, the documents streaming (index_folder.build_into); `options` are
        BuildOptions fields, `rerank` the index's named reranker, `languages` the corpus's and model's
        (languages.plan). Returns the manifest."""
        return index_folder.build_into(cls, path, documents, _check_legs(legs), fusion_config,
                                       {"rerank": rerank, "languages": languages}, BuildOptions(**options))

    @property
    def legs(self) -> tuple[str, ...]:
        """The names of this retriever's legs."""
        return tuple(self.leg)

    def __len__(self) -> int:
        return len(self.ids)

    # ---- saving and loading (index_folder.py) ---------------------------------------------
    def save(self, path: str | Path) -> dict:
        """Write the index folder (see store.write_index): documents, then each leg in its own folder."""
        return index_folder.save(self, path)

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool | None = None, verify: bool | None = None,
             fusion_config: FusionConfig | None = None, **options: Any) -> HybridRetriever:
        """Open an index folder after checking its files; `options` are LoadOptions fields (model, device,
        dense_backend, chunking, bm25, load_encoder, encoder). `mmap` None: map a large index's arrays, read a small
        one's; `verify` None: sha256 of every file when the index is read, sizes only when mapped."""
        return index_folder.load(cls, path, mmap, verify, fusion_config, options)

    # ---- searching --------------------------------------------------------------------
    def depth(self) -> int:
        """Each leg's list length: the configured depth, else the whole corpus, at most MAX_DEPTH."""
        return min(self.fusion.depth or MAX_DEPTH, len(self))

    def leg_rankings(self, queries: Sequence[str], legs: Sequence[str] | None = None, depth: int | None = None,
                     allowed: filters.Selection | np.ndarray | None = None, inputs: Mapping[str, Mapping] | None = None
                     ) -> dict[str, list[Ranking]]:
        """Per leg, per query: (row, score) pairs best first, ties by descending doc id; `inputs`: per-leg
        extras (e.g. {"dense": {"vectors": ...}}), `allowed`: sorted document rows to search within."""
        names = _check_legs(legs or self.legs, available=self.legs)
        depth = min(depth or self.depth(), len(self))
        allowed = filters.selection(allowed)
        return {name: self.leg[name].rank(queries, depth, allowed, **(inputs or {}).get(name, {})) for name in names}

    @property
    def order(self) -> RowOrder:
        """The order of every ranking over these documents (ties by descending id), made again when the ids change."""
        if self._order is None or self._order[0] is not self.ids:
            ranks = getattr(self._docs, "id_ranks", None)
            self._order = (self.ids, RowOrder(rank_ids(self.ids) if ranks is None else ranks))
        return self._order[1]

    def fuse(self, rankings: Mapping[str, Ranking], mode: str = HYBRID, config: FusionConfig | None = None,
             top: int | None = None) -> Ranking:
        """One query's fused ranking for `mode` from its per-leg rankings (its first `top` when given); `config`
        (default: this retriever's) sets method, k, weights and each leg's depth."""
        config = config or self.fusion
        depth = config.depth or MAX_DEPTH
        if mode != HYBRID:
            return rankings[mode][:depth][:top]
        names = [name for name in self.legs if name in rankings]
        weights = [config.weights.get(name, 1.0) for name in names]
        return fusion.fuse(config.method, [rankings[name][:depth] for name in names], self.order, weights, config.k,
                           top)

    def with_ids(self, ranking: Ranking) -> list[tuple[str, float]]:
        """A ranking's (doc id, score) pairs: the ids attached at the edge (MTEB's results, an evaluator)."""
        return [(self.ids[row], score) for row, score in ranking]

    def search(self, query: str, k: int = 10, mode: str = HYBRID, query_vector: np.ndarray | None = None,
               allowed: filters.Selection | np.ndarray | None = None, rerank: HitStage | None = None,
               fuse_in: str | None = None) -> list[Hit]:
        """Top-k Hits for one query; mode 'hybrid' fuses the legs, a leg's name uses that leg alone.
        `query_vector`: the dense leg's query vector, encoded elsewhere; `fuse_in` as in search_many."""
        inputs = None if query_vector is None else {"dense": {"vectors": np.asarray(query_vector).reshape(1, -1)}}
        return self.search_many([query], k, mode, inputs=inputs, allowed=allowed, rerank=rerank, fuse_in=fuse_in)[0]

    def search_many(self, queries: Sequence[str], k: int = 10, mode: str = HYBRID,
                    inputs: Mapping[str, Mapping] | None = None, allowed: filters.Selection | np.ndarray | None = None,
                    rerank: HitStage | None = None, fuse_in: str | None = None) -> list[list[Hit]]:
        """Top-k Hits for each query (each leg ranks the batch at once); `rerank`, a stage after fusion
        (rerank.HitStage, e.g. a RerankStage), is given the top max(k, its depth) hits and returns them reordered.
        `fuse_in` 'server': a Milvus-backed index fused by Milvus, 'project' here (None: the retriever's)."""
        check_k(k)
        for q in queries:
            check_query(q)
        if allowed is not None and not len(allowed):
            return [[] for _ in queries]  # the filter matches no document
        shown = k if rerank is None else max(k, rerank.depth)  # a stage reads the top `depth` fused hits
        allowed = filters.selection(allowed)
        if mode == HYBRID and (fuse_in or self.fuse_in) == "server":  # the backend fuses; the legs' places are unknown
            fused_all, places_all = self.backend.fuse(self, queries, allowed, inputs), [{}] * len(queries)
        else:
            fused_all, places_all = self._fused(queries, mode, allowed, inputs, shown)
        for leg in self.leg.values():  # a leg may look up what the hits show in one batch (a remote engine)
            leg.prefetch([row for fused in fused_all for row, _ in fused[:shown]])
        results = [[self._hit(rank, row, score, places, q) for rank, (row, score) in enumerate(fused[:shown], start=1)]
                   for q, fused, places in zip(queries, fused_all, places_all)]
        if rerank is not None:
            results = [hits[:k] for hits in rerank.apply(queries, results, self.indexed_text)]
        return results

    def _fused(self, queries: Sequence[str], mode: str, allowed: filters.Selection | None,
               inputs: Mapping[str, Mapping] | None, k: int) -> tuple[list, list]:
        """Per query: the fused ranking and each leg's {row: (rank, score)} places. One leg
        alone ranks only the k shown (its top k do not depend on the depth); fusion reads each leg's depth."""
        names = self.legs_for(mode)
        depth = k if len(names) == 1 else None
        per_leg = self.leg_rankings(queries, names, depth=depth, allowed=allowed, inputs=inputs)
        fused_all, places_all = [], []
        for qi in range(len(queries)):
            rankings = {name: per_leg[name][qi] for name in names}
            fused_all.append(self.fuse(rankings, names[0] if len(names) == 1 else mode))
            places_all.append({name: {r: (i + 1, s) for i, (r, s) in enumerate(ranking)}
                               for name, ranking in rankings.items()})
        return fused_all, places_all

    def where(self, expr: str | None = None, *, act: str | None = None, jurisdiction: str | None = None,
              as_of: str | None = None, deadline: float | None = None) -> filters.Selection:
        """Sorted rows of the documents passing a filter expression and/or act, jurisdiction, date in force
        (filters.py), to pass to `search` as `allowed`; its `warnings` name values no document has (FilterError
        for a field the index lacks). The last WHERE_CACHE filters' rows are kept: evaluating one reads every
        document's fields (about 0.5 s at 100,000 statutes), and a served index sees the same few. Past `deadline`
        (time.monotonic()) filters.FilterTimeout; safe to call from several threads."""
        table = self.field_table()
        key = (expr, act, jurisdiction, as_of)
        rows = self._where.get(key)
        if rows is None:
            warnings = filters.vet(expr, table.values(), act=act, jurisdiction=jurisdiction)
            rows = filters.allowed_rows(table.records, expr, act=act, jurisdiction=jurisdiction, as_of=as_of,
                                        deadline=deadline)
            if not len(rows):
                warnings.append("no document matches the filters")
            rows = replace(rows, warnings=tuple(warnings))
            with _WHERE_LOCK:
                if len(self._where) >= WHERE_CACHE:
                    self._where.pop(next(iter(self._where)))
                self._where[key] = rows
        return rows

    def field_table(self) -> filters.FieldTable:
        """Every document's fields but its text (filters, facets), read once: the texts stay on disk."""
        with _WHERE_LOCK:
            if self._fields is None:
                docs = self._docs
                records = docs.records() if isinstance(docs, DocumentTable) else (self._doc(r) for r in range(len(self)))
                self._fields, self._where = filters.FieldTable(records), {}
            return self._fields

    def modes(self) -> tuple[str, ...]:
        """The modes a search accepts: 'hybrid' (all legs fused; on a one-leg index, that leg) and each leg."""
        return (HYBRID, *self.legs)

    def legs_for(self, mode: str) -> tuple[str, ...]:
        """The legs a mode uses ('hybrid': all); the one place modes are checked."""
        if mode == HYBRID:
            return self.legs
        if mode not in self.legs:
            raise ValueError(f"this index has no {mode} leg (modes: {', '.join(self.modes())})")
        return (mode,)

    def document(self, doc_id: str) -> dict:
        """A document's id, title and text by id (KeyError when unknown)."""
        return self._doc(self.row(doc_id))

    def row(self, doc_id: str) -> int:
        """A document's row by id (KeyError when unknown)."""
        if self._rows is None:
            self._rows = {d: i for i, d in enumerate(self.ids)}
        return self._rows[doc_id]

    def indexed_text(self, doc_id: str) -> str:
        """The text a document was indexed with (title and text), by id: what a rerank stage reads."""
        return Document(**self.document(doc_id)).indexed_text()

    def _hit(self, rank: int, row: int, score: float, places: dict, query: str) -> Hit:
        """A Hit from its query's per-leg {row: (rank, score)} places: where the document id is attached."""
        legs = {name: LegHit(p[row][0], float(p[row][1])) for name, p in places.items() if row in p}
        matched = list(dict.fromkeys(w for name in self.legs for w in self.leg[name].matched_terms(query, row)))
        record = self._doc(row)
        matched = shown_in(matched, f"{record['title']}\n{record['text']}")
        return Hit(rank, self.ids[row], record["title"], float(score), legs, matched, statute=statute_fields(record))

    def _doc(self, row: int) -> dict:
        if isinstance(self._docs, DocumentTable):
            return self._docs.get(row)
        d = self._docs[row]
        return {"id": d.id, "title": d.title, "text": d.text, **d.metadata()}


def check_k(k: int) -> None:
    """Refuse a hit count below 1 (or not an integer)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")


def check_query(query: str) -> None:
    """Refuse an empty query, or one with bytes that are not UTF-8 (surrogate escapes from the command line)."""
    if not isinstance(query, str) or not query.strip():
        raise ValueError("empty query")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"query is not valid UTF-8 text (byte {query[e.start].encode('utf-8', 'surrogateescape')!r} "
                         f"at character {e.start})") from None


def _check_legs(legs: Sequence[str], available: Sequence[str] | None = None) -> tuple[str, ...]:
    """Leg names, each registered (and, with `available`, in the index)."""
    names = tuple(dict.fromkeys(legs))
    if not names:
        raise ValueError("at least one leg is needed")
    for name in names:
        if available is not None and name not in available:
            raise ValueError(f"this index has no {name} leg (it has: {', '.join(available)})")
        leg_type(name)
    return names


__all__ = ["Bm25Params", "FusionConfig", "HYBRID", "Hit", "HybridRetriever", "LEGS", "LegHit", "Settings",
           "check_k", "check_query", "library_versions", "read_settings", "results_json"]

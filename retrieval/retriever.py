"""HybridRetriever: builds the two legs from a corpus, searches them, fuses, explains.

Data flows one way: documents -> (analysis -> BM25) and (encoder -> dense index) -> per-leg
rankings -> fusion -> Hits. Each Hit carries each leg's rank and score and the query
words that matched, so a user can see why a statute was found.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import __version__, fusion
from .analysis import Analyzer, AnalyzerSettings, resolve_settings
from .chunking import ChunkSettings, aggregate, split, window_size
from .corpus import Document, fingerprint
from .dense import DenseIndex
from .encoders import Encoder, EncoderConfig, resolve_model, weights_sha256
from .lexical import LexicalIndex, build_bm25, load_lexical
from .store import (DocumentTable, IndexFileError, prefers_mmap, rank_ids, read_manifest, verify_checksums,
                    write_index)

log = logging.getLogger(__name__)

LEGS = ("dense", "bm25")
MODES = ("hybrid", "dense", "bm25")
MAX_DEPTH = 1000


@dataclass(frozen=True)
class FusionConfig:
    """How legs are fused: method (rrf, rsf, dbsf, convex), RRF k, per-leg weights and depth."""

    method: str = "rrf"
    k: int = 60
    weights: dict[str, float] = field(default_factory=lambda: {"dense": 1.0, "bm25": 1.0})
    depth: int | None = None  # per-leg list length; None: the whole corpus, at most 1000

    def __post_init__(self):
        if self.method not in fusion.METHODS:
            raise ValueError(f"unknown fusion method {self.method!r} (choose from {', '.join(fusion.METHODS)})")
        if self.k < 0:
            raise ValueError(f"RRF k must be >= 0, got {self.k}")
        unknown = set(self.weights) - set(LEGS)
        if unknown:
            raise ValueError(f"fusion weights for unknown legs: {', '.join(sorted(unknown))}")
        if self.depth is not None and self.depth < 1:
            raise ValueError(f"fusion depth must be >= 1, got {self.depth}")

    def to_dict(self) -> dict:
        """Plain JSON-ready settings."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FusionConfig:
        """Settings from a dict, ignoring keys that are not fusion settings (e.g. a tune report's)."""
        keys = {"method", "k", "weights", "depth"}
        return cls(**{k: v for k, v in d.items() if k in keys})


@dataclass(frozen=True)
class Settings:
    """What `tune` chooses and build/query/bench accept (--fusion-config): fusion, dense long-text, BM25 k1/b."""

    fusion: FusionConfig = field(default_factory=FusionConfig)
    chunking: ChunkSettings = field(default_factory=ChunkSettings)
    bm25: dict[str, float] = field(default_factory=dict)  # k1, b, query_window; {} = MTEB's baseline (1.5, 0.75, 0)

    def to_dict(self) -> dict:
        """The JSON form of a settings file."""
        return {"fusion": self.fusion.to_dict(), "chunking": self.chunking.to_dict(), "bm25": dict(self.bm25)}

    @classmethod
    def from_dict(cls, data: dict) -> Settings:
        """Settings from JSON; a bare fusion object is accepted too."""
        bm25 = {k: float(v) for k, v in (data.get("bm25") or {}).items() if k in ("k1", "b", "query_window")}
        return cls(FusionConfig.from_dict(data.get("fusion", data)), ChunkSettings.from_dict(data.get("chunking")), bm25)


def read_settings(path: str | Path) -> Settings:
    """Settings from a JSON file as `tune` writes it (fusion.json)."""
    try:
        return Settings.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: cannot read settings ({e})") from None


@dataclass(frozen=True)
class LegHit:
    """A document's place in one leg's ranking."""

    rank: int
    score: float


_ABSENT = {"rank": None, "score": None}  # not in that leg's list (or no such leg)


@dataclass(frozen=True)
class Hit:
    """One result: id, title, fused score, each leg's rank and score, matched query words."""

    rank: int
    id: str
    title: str
    score: float
    dense: LegHit | None = None
    bm25: LegHit | None = None
    matched_terms: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """The JSON shape of `query --json` and the web API."""
        return {
            "rank": self.rank, "id": self.id, "title": self.title, "score": self.score,
            "dense": asdict(self.dense) if self.dense else dict(_ABSENT),
            "bm25": asdict(self.bm25) if self.bm25 else dict(_ABSENT),
            "matched_terms": list(self.matched_terms),
        }


class HybridRetriever:
    """Dense + BM25 retrieval over one corpus, fused by FusionConfig."""

    def __init__(self, docs: DocumentTable | list[Document], *, encoder: Encoder | None,
                 dense: DenseIndex | None, analyzer: Analyzer | None, lexical: LexicalIndex | None,
                 fusion_config: FusionConfig = FusionConfig(), info: dict | None = None,
                 chunking: ChunkSettings = ChunkSettings(), bm25_query_window: int = 0):
        self._docs = docs
        self.chunking = chunking
        self.bm25_query_window = bm25_query_window
        self.ids = docs.ids if isinstance(docs, DocumentTable) else [d.id for d in docs]
        self.encoder, self.dense = encoder, dense
        self.analyzer, self.lexical = analyzer, lexical
        self.fusion = fusion_config
        self.info = info or {}
        self._id_rank: np.ndarray | None = None
        self._rows: dict[str, int] | None = None

    # ---- building -------------------------------------------------------------------
    @classmethod
    def build(cls, documents: Sequence[Document] | DocumentTable, *,
              encoder: Encoder | EncoderConfig | None = None, legs: Sequence[str] = LEGS, language: str = "auto",
              analysis: AnalyzerSettings | None = None, user_words: Sequence[str] = (),
              bm25_backend: str = "bm25s", dense_kind: str = "auto", fusion_config: FusionConfig = FusionConfig(),
              chunking: ChunkSettings = ChunkSettings(), bm25_params: dict | None = None,
              encode_titles: bool | None = None, vectors: np.ndarray | None = None,
              progress: bool = True, bm25_workers: int | None = None) -> HybridRetriever:
        """Analyse and index `documents` for each asked leg ('dense', 'bm25').

        `user_words` extend jieba's dictionary. `bm25_params` (k1, b) override MTEB's baseline
        values, and `query_window` > 0 scores a long query by its windows of that many tokens (max
        over windows); `encode_titles` (default: when the chunk settings mix titles in) stores one
        title vector per document for the dense leg. `vectors` (one unit vector per document, in
        order) builds the dense leg from vectors encoded elsewhere; the encoder is then loaded only
        when given (to record the model). `bm25_workers`: BM25 analysis processes (default: the cores).
        """
        legs = _check_legs(legs)
        docs = documents if isinstance(documents, DocumentTable) else list(documents)  # a table streams from disk
        timings: dict[str, float] = {}
        analyzer = lexical = enc = dense = None
        if "bm25" in legs:
            t = time.perf_counter()
            sample = [d.indexed_text() for d in docs[:200]]  # enough to tell the language
            analyzer = Analyzer.for_documents(analysis or resolve_settings(language, sample), docs, user_words)
            lexical = build_bm25(docs, analyzer, bm25_backend, workers=bm25_workers, progress=progress,
                                 **{k: v for k, v in (bm25_params or {}).items() if k in ("k1", "b")})
            timings["bm25_seconds"] = time.perf_counter() - t
        if "dense" in legs:
            texts = [d.indexed_text() for d in docs]
            if vectors is None or encoder is not None:
                t = time.perf_counter()
                enc = encoder if isinstance(encoder, Encoder) else Encoder(encoder or EncoderConfig())
                timings["model_load_seconds"] = time.perf_counter() - t
            t = time.perf_counter()
            owner = titles = None
            if enc is not None and (encode_titles or (encode_titles is None and chunking.title_weight > 0)):
                titles = enc.encode_documents([d.title for d in docs], progress=progress)
                titles[[not d.title for d in docs]] = 0.0  # no title: the text's score stands alone
            if chunking.documents:
                if vectors is not None:
                    raise ValueError("document chunking needs the encoder, not given document vectors")
                texts, owner = _split(enc, texts, chunking, enc.document_prompt)
                timings["document_chunks"] = len(texts)
            if vectors is None:
                vectors = enc.encode_documents(texts, progress=progress)
                timings["truncated_documents"] = enc.count_truncated(texts, enc.document_prompt)
            else:
                _check_vectors(vectors, len(docs), enc)
            dense = DenseIndex.build(vectors, dense_kind, owner=owner, titles=titles)
            timings["dense_seconds"] = time.perf_counter() - t
        known = docs.fingerprint if isinstance(docs, DocumentTable) else None
        info = {"documents": len(docs), "corpus_fingerprint": known or fingerprint(docs), "build": timings}
        return cls(docs, encoder=enc, dense=dense, analyzer=analyzer, lexical=lexical,
                   fusion_config=fusion_config, info=info, chunking=chunking,
                   bm25_query_window=int((bm25_params or {}).get("query_window", 0)))

    @property
    def legs(self) -> tuple[str, ...]:
        """The legs this retriever has."""
        return tuple(leg for leg, part in (("dense", self.dense), ("bm25", self.lexical)) if part is not None)

    def __len__(self) -> int:
        return len(self.ids)

    # ---- saving and loading -----------------------------------------------------------
    def save(self, path: str | Path) -> dict:
        """Write the index folder atomically (see store.write_index); returns the manifest."""

        def fill(tmp: Path) -> dict:
            if isinstance(self._docs, DocumentTable) and self._docs.fingerprint is None:
                raise ValueError("save a retriever right after build; a loaded index is already on disk")
            if isinstance(self._docs, DocumentTable):  # written while the corpus was read (cli build)
                self._docs.copy_into(tmp)
            else:
                DocumentTable.write(tmp, self._docs)
            manifest = {
                "name": Path(path).name,
                "documents": len(self),
                "corpus_fingerprint": self.info.get("corpus_fingerprint"),
                "legs": list(self.legs),
                "fusion": self.fusion.to_dict(),
                "build": self.info.get("build", {}),
                "versions": library_versions(),
            }
            if self.dense is not None:
                (tmp / "dense").mkdir()
                self.dense.save(tmp / "dense")
                model = self.encoder.info() if self.encoder else {"model": None, "dim": self.dense.dim}
                manifest["dense"] = {**model, "index": self.dense.kind, "chunking": self.chunking.to_dict()}
            if self.lexical is not None:
                (tmp / "lexical").mkdir()
                self.lexical.save(tmp / "lexical")
                self.analyzer.save(tmp)
                manifest["bm25"] = {"engine": self.lexical.engine, "params": self.lexical.params,
                                    "analysis": self.analyzer.settings.to_dict(),
                                    "query_window": self.bm25_query_window}
            return manifest

        return write_index(path, fill)

    @classmethod
    def load(cls, path: str | Path, *, model: str | None = None, device: str | None = None,
             dense_backend: str = "auto", mmap: bool | None = None, verify: bool | None = None,
             fusion_config: FusionConfig | None = None, chunking: ChunkSettings | None = None,
             load_encoder: bool = True) -> HybridRetriever:
        """Open an index folder with the model it was built with, after checking its files.

        `mmap` None: map the arrays of a large index (store.prefers_mmap), read a small one.
        `verify` None: sha256 of every file when the index is read, sizes only when mapped.
        """
        folder = Path(path)
        manifest = read_manifest(folder, verify=False)
        mmap = prefers_mmap(manifest) if mmap is None else mmap
        if (not mmap) if verify is None else verify:
            verify_checksums(folder, manifest)
        try:
            docs = DocumentTable.load(folder, mmap=mmap)
            enc = dense = analyzer = lexical = None
            if "dense" in manifest["legs"]:
                meta = manifest["dense"]
                dense = DenseIndex.load(folder / "dense", meta["index"], mmap=mmap, backend=dense_backend)
                if load_encoder and (model or meta.get("model")):  # no model: built from given vectors
                    enc = Encoder(_encoder_config(meta, model, device))
                    _check_same_model(meta, enc)
            if "bm25" in manifest["legs"]:
                meta = manifest["bm25"]
                settings = AnalyzerSettings.from_dict(meta["analysis"])
                analyzer = Analyzer.load(folder, settings)
                lexical = load_lexical(folder / "lexical", meta["engine"], meta["params"], mmap=mmap,
                                       title_weight=settings.title_weight if settings.title == "field" else None)
        except IndexFileError:
            raise
        except (OSError, ValueError, RuntimeError, KeyError) as e:
            raise IndexFileError(f"{folder}: cannot load index ({type(e).__name__}: {e})") from None
        fusion_config = fusion_config or FusionConfig.from_dict(manifest.get("fusion", {}))
        built = ChunkSettings.from_dict(manifest.get("dense", {}).get("chunking"))
        if chunking is not None and _doc_side(chunking) != _doc_side(built):
            raise ValueError(f"{folder}: the settings ask for document chunking {_doc_side(chunking)}, the index "
                             f"was built with {_doc_side(built)}; rebuild with these settings")
        chunking = chunking or built
        return cls(docs, encoder=enc, dense=dense, analyzer=analyzer, lexical=lexical,
                   fusion_config=fusion_config, info=manifest, chunking=chunking,
                   bm25_query_window=int(manifest.get("bm25", {}).get("query_window", 0)))

    # ---- searching --------------------------------------------------------------------
    def depth(self) -> int:
        """Each leg's list length: the configured depth, else the whole corpus, at most 1000."""
        return min(self.fusion.depth or MAX_DEPTH, len(self))

    def leg_rankings(self, queries: Sequence[str], legs: Sequence[str] | None = None,
                     depth: int | None = None, query_vectors: np.ndarray | None = None
                     ) -> dict[str, list[list[tuple[int, float]]]]:
        """Per leg, per query: (row, score) pairs best first, ties by descending doc id."""
        legs = _check_legs(legs or self.legs, available=self.legs)
        depth = min(depth or self.depth(), len(self))
        out: dict[str, list[list[tuple[int, float]]]] = {}
        if "dense" in legs and self.chunking.active:
            out["dense"] = [self.top(s, depth) for s in self.chunked_dense_scores(queries)]
        elif "dense" in legs:
            if query_vectors is None:
                query_vectors = self.encode_queries(queries)
            scores, rows = self.dense.search(query_vectors, depth)
            out["dense"] = [self._order(r[r >= 0], s[r >= 0]) for s, r in zip(scores, rows)]
        if "bm25" in legs:
            out["bm25"] = [self.top(self.bm25_scores(q), depth) for q in queries]
        return out

    def bm25_scores(self, query: str) -> np.ndarray:
        """BM25 score of every document; a query longer than `bm25_query_window` tokens scores by its
        best window (half-overlapping), so one issue of a long case description finds its statute."""
        tokens, w = self.analyzer(query), self.bm25_query_window
        if not w or len(tokens) <= w:
            return self.lexical.scores(tokens)
        step = max(1, w // 2)
        return np.max([self.lexical.scores(tokens[i:i + w]) for i in range(0, len(tokens) - w + step, step)], axis=0)

    def chunked_dense_scores(self, queries: Sequence[str], chunking: ChunkSettings | None = None) -> np.ndarray:
        """(queries x documents) dense scores aggregated over query and document chunks.

        `chunking` may change the query side (tuning does); its document side must be the index's.
        """
        enc, chunking = self.encoder, chunking or self.chunking
        if enc is None:
            raise RuntimeError("this retriever was loaded without its encoder")
        if _doc_side(chunking) != _doc_side(self.chunking):
            raise ValueError("document chunking differs from the index's")
        if chunking.title_weight > 0 and self.dense.titles is None:
            raise ValueError("these settings mix in title vectors, which this index does not have; rebuild with them")
        if chunking.queries:
            chunks, q_owner = _split(enc, list(queries), chunking, enc.query_prompt)
        else:
            chunks, q_owner = list(queries), np.arange(len(queries))
        d_owner = self.dense.owner if self.dense.owner is not None else np.arange(len(self))
        q_vectors = enc.encode_queries(chunks)
        scores = aggregate(self.dense.all_scores(q_vectors), q_owner, d_owner, len(self), chunking)
        if chunking.title_weight > 0:
            one = np.arange(len(self))
            titles = aggregate(q_vectors @ self.dense.titles.T, q_owner, one, len(self), chunking)
            has = np.any(self.dense.titles != 0, axis=1)
            w = chunking.title_weight
            scores = np.where(has, (1 - w) * scores + w * titles, scores)
        return scores

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Query vectors (with the query prompt); needs the encoder."""
        if self.encoder is None:
            raise RuntimeError("this retriever has no encoder (loaded without it, or built from given vectors): "
                               "pass query vectors")
        return self.encoder.encode_queries(list(queries))

    def fuse(self, rankings: dict[str, list[tuple[int, float]]], mode: str = "hybrid",
             config: FusionConfig | None = None) -> list[tuple[str, float]]:
        """One query's fused (doc id, score) list for `mode`, from its per-leg rankings.

        `config` (default: this retriever's) sets method, k, weights and each leg's depth.
        """
        config = config or self.fusion
        depth = config.depth or MAX_DEPTH
        if mode != "hybrid":
            return [(self.ids[r], s) for r, s in rankings[mode][:depth]]
        legs = [leg for leg in LEGS if leg in rankings]
        weights = [config.weights.get(leg, 1.0) for leg in legs]
        lists = [[(self.ids[r], s) for r, s in rankings[leg][:depth]] for leg in legs]
        return fusion.fuse(config.method, lists, weights, config.k)

    def search(self, query: str, k: int = 10, mode: str = "hybrid",
               query_vector: np.ndarray | None = None) -> list[Hit]:
        """Top-k Hits for one query; mode 'hybrid' fuses the legs, 'dense'/'bm25' use one."""
        vectors = None if query_vector is None else np.asarray(query_vector).reshape(1, -1)
        return self.search_many([query], k, mode, vectors)[0]

    def search_many(self, queries: Sequence[str], k: int = 10, mode: str = "hybrid",
                    query_vectors: np.ndarray | None = None) -> list[list[Hit]]:
        """Top-k Hits for each query (encoded in one batch unless `query_vectors` are given)."""
        legs = self._legs_for(mode)
        per_leg = self.leg_rankings(queries, legs, query_vectors=query_vectors)
        results = []
        for qi, query in enumerate(queries):
            rankings = {leg: per_leg[leg][qi] for leg in legs}
            fused = self.fuse(rankings, legs[0] if len(legs) == 1 else mode)
            places = {leg: {self.ids[r]: (r, i + 1, s) for i, (r, s) in enumerate(rankings[leg])} for leg in legs}
            terms = self.analyzer.terms(query) if self.analyzer is not None else []
            results.append([self._hit(rank, doc_id, score, places, terms)
                            for rank, (doc_id, score) in enumerate(fused[:k], start=1)])
        return results

    def document(self, doc_id: str) -> dict:
        """A document's id, title and text by id (KeyError when unknown)."""
        return self._doc(self._row_of(doc_id))

    def matched_terms(self, query: str, text: str) -> tuple[str, ...]:
        """Query words whose index token occurs in `text` (empty without the BM25 leg)."""
        if self.analyzer is None:
            return ()
        return self._matched(self.analyzer.terms(query), text)

    # ---- internals --------------------------------------------------------------------
    def _legs_for(self, mode: str) -> tuple[str, ...]:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} (choose from {', '.join(MODES)})")
        if mode == "hybrid":
            return self.legs
        if mode not in self.legs:
            raise ValueError(f"this index has no {mode} leg (it has: {', '.join(self.legs)})")
        return (mode,)

    def _hit(self, rank: int, doc_id: str, score: float, places: dict, terms: list[tuple[str, str]]) -> Hit:
        """A Hit from its query's per-leg {id: (row, rank, score)} places and analysed terms."""
        found = {leg: p[doc_id] for leg, p in places.items() if doc_id in p}
        doc = self._doc(next(iter(found.values()))[0])
        legs = {leg: LegHit(leg_rank, float(leg_score)) for leg, (_, leg_rank, leg_score) in found.items()}
        matched = self._matched(terms, Document(**doc).indexed_text()) if terms else ()
        return Hit(rank, doc_id, doc["title"], float(score), dense=legs.get("dense"), bm25=legs.get("bm25"),
                   matched_terms=matched)

    def _matched(self, terms: list[tuple[str, str]], text: str) -> tuple[str, ...]:
        """Surface words of `terms` whose token occurs in `text`, first occurrence order."""
        doc_tokens = set(self.analyzer(text))
        seen: dict[str, None] = {}
        for word, token in terms:
            if token in doc_tokens:
                seen.setdefault(word)
        return tuple(seen)

    def _doc(self, row: int) -> dict:
        if isinstance(self._docs, DocumentTable):
            return self._docs.get(row)
        d = self._docs[row]
        return {"id": d.id, "title": d.title, "text": d.text}

    def _row_of(self, doc_id: str) -> int:
        if self._rows is None:
            self._rows = {d: i for i, d in enumerate(self.ids)}
        return self._rows[doc_id]

    def _id_ranks(self) -> np.ndarray:
        """Position of each document's id in sorted id order (for tie-breaking)."""
        if self._id_rank is None:
            stored = self._docs.id_ranks if isinstance(self._docs, DocumentTable) else None
            self._id_rank = stored if stored is not None else rank_ids(self.ids)
        return self._id_rank

    def _order(self, rows: np.ndarray, scores: np.ndarray) -> list[tuple[int, float]]:
        """Sort by descending score, ties by descending id (trec_eval's order)."""
        order = np.lexsort((-self._id_ranks()[rows], -scores))
        return [(int(rows[i]), float(scores[i])) for i in order]

    def top(self, scores: np.ndarray, depth: int) -> list[tuple[int, float]]:
        """Top-`depth` rows of a full score vector; of the ties at the cut, those with the highest ids."""
        n = len(scores)
        if depth >= n:
            return self._order(np.arange(n), scores)
        # the depth-th highest score; numpy partitions the negated scores at the front fast, but takes
        # ~20x longer to partition at the back when most scores tie (e.g. 0), as BM25's do
        kth = -np.partition(-scores, depth - 1)[depth - 1]
        above, tied = np.flatnonzero(scores > kth), np.flatnonzero(scores == kth)
        need = depth - len(above)
        if len(tied) > need:  # e.g. every zero-score document when few match: keep `need` of them
            tied = tied[np.argpartition(-self._id_ranks()[tied], need - 1)[:need]]
        rows = np.concatenate([above, tied])
        return self._order(rows, scores[rows])


def _check_vectors(vectors: np.ndarray, n: int, encoder: Encoder | None) -> None:
    """Given document vectors must be one row per document, of the encoder's dimension."""
    if vectors.ndim != 2 or len(vectors) != n:
        raise ValueError(f"vectors of shape {vectors.shape} for {n} documents; want one row per document")
    if encoder is not None and vectors.shape[1] != encoder.dim:
        raise ValueError(f"vectors have {vectors.shape[1]} dimensions, {encoder.model_name} gives {encoder.dim}")


def _doc_side(c: ChunkSettings) -> tuple:
    """The chunk settings fixed at build time (how documents were cut)."""
    return (c.documents, c.window, c.overlap) if c.documents else (False,)


def _split(enc: Encoder, texts: list[str], chunking: ChunkSettings, prompt: str) -> tuple[list[str], np.ndarray]:
    """Token windows that fit the model with the prompt and special tokens."""
    reserved = 2 + len(enc.model.tokenizer(prompt, add_special_tokens=False)["input_ids"]) if prompt else 2
    return split(enc.model.tokenizer, texts, window_size(chunking, enc.max_seq_length, reserved), chunking.overlap)


def results_json(query: str, mode: str, legs: Sequence[str], hits: Sequence[Hit], seconds: float) -> dict:
    """One search's answer as `query --json` prints it and the web API returns it (`legs`: the index's legs)."""
    return {"query": query, "mode": mode, "legs": list(legs), "hits": [h.to_dict() for h in hits],
            "seconds": round(seconds, 6)}


def _check_legs(legs: Sequence[str], available: Sequence[str] = LEGS) -> tuple[str, ...]:
    legs = tuple(dict.fromkeys(legs))
    for leg in legs:
        if leg not in LEGS:
            raise ValueError(f"unknown leg {leg!r} (choose from {', '.join(LEGS)})")
        if leg not in available:
            raise ValueError(f"this index has no {leg} leg (it has: {', '.join(available)})")
    if not legs:
        raise ValueError("at least one leg (dense or bm25) is needed")
    return legs


def _encoder_config(meta: dict, model: str | None, device: str | None) -> EncoderConfig:
    """The build-time encoder settings (attention and batching are the query machine's own); a query-time
    `model` must be the same model."""
    return EncoderConfig(
        model=model or meta.get("model_path") or meta["model"], device=device, dtype=meta.get("dtype", "auto"),
        batch_size=meta.get("batch_size", 32), query_prompt=meta.get("query_prompt"),
        max_seq_length=meta.get("max_seq_length"),
    )


def _check_same_model(meta: dict, enc: Encoder) -> None:
    built = meta.get("weights_sha256")
    now = weights_sha256(resolve_model(enc.model_path))
    if built and now and built != now:
        raise IndexFileError(
            f"model mismatch: the index was built with {meta['model']} (weights sha256 {built[:12]}), "
            f"but {enc.model_name} has weights sha256 {now[:12]}; rebuild or use the index's model")
    if enc.dim != meta["dim"]:
        raise IndexFileError(f"model mismatch: index vectors have {meta['dim']} dimensions, {enc.model_name} gives {enc.dim}")


def library_versions() -> dict:
    """Versions of Python, this package and the libraries that shape results."""
    import importlib.metadata as md

    out = {"python": platform.python_version(), "retrieval": __version__}
    for pkg in ("numpy", "faiss-cpu", "faiss-gpu-cu12", "faiss-gpu-cuvs", "bm25s", "rank-bm25",
                "sentence-transformers", "transformers", "torch", "jieba"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


__all__ = ["FusionConfig", "Hit", "HybridRetriever", "LegHit", "LEGS", "MODES", "Settings", "read_settings",
           "results_json"]

"""The dense leg: encoder + vector store + long-text handling.

Without chunking or titles, each document is one row of the store and a query's ranking is the
store's search. With them, the store's rows are passages: the token windows of each statute
(rows 0..T-1, a statute's windows contiguous) and one title vector per statute that has a title
(rows T..). A title weight applies to the statutes that have a title; the others are scored by their text
alone, so settings with a title weight work on a corpus with some titles or none. A query (or each of its windows) retrieves its top passages from the store, ANN or
exact, `OVERFETCH` times the asked depth; every statute with a retrieved passage is a candidate,
and candidates are scored exactly over all their passages (max / mean / top-n, titles mixed
with their weight; see chunking.py). An exact store asked for every statute (or searched past
every passage) makes every statute a candidate, so the scores are the exact all-passage ones; an
approximate store only decides which statutes are candidates.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..corpus import Document
from ..dense.chunking import ChunkSettings, aggregate, split, window_size
from ..dense.embedcache import EmbeddingCache
from ..dense.encoders import Encoder, EncoderConfig, make_encoder, query_dtype, resolve_model, weights_sha256
from ..dense.stores.base import VectorStore
from ..dense.stores.faiss import FaissStore
from ..filters import Selection, selection
from ..index.backends import chosen
from ..index.format import IndexFileError
from ..settings import SettingsError
from .base import BuildOptions, LegBase, LoadOptions, Ranking, RowOrder, register_leg

OVERFETCH = 4  # passages retrieved per query window = OVERFETCH x the statutes asked for (docs/performance.md)
CACHE_MAX_BYTES = 256 << 20  # keep every passage vector in memory for exact re-scoring up to this size
PASSAGES_FILE, TITLES_FILE = "passage_docs.npy", "title_docs.npy"


@register_leg("dense", default=True)
class DenseLeg(LegBase):
    """Dense retrieval of statutes by their passages' vectors (see the module docstring)."""

    name = "dense"

    def __init__(self, store: VectorStore, order: RowOrder, *, n_docs: int, chunking: ChunkSettings = ChunkSettings(),
                 passage_docs: np.ndarray | None = None, title_docs: np.ndarray | None = None,
                 encoder: Encoder | None = None, load_encoder: Callable[[], Encoder] | None = None,
                 model_info: dict | None = None, title_vectors: bool | None = None):
        self.store, self.order, self.n_docs, self.chunking = store, order, n_docs, chunking
        self.passage_docs = passage_docs  # statute of each text row (None: row i is statute i)
        self.title_docs = title_docs if title_docs is not None else np.zeros(0, dtype=np.int64)
        # whether every titled statute's title vector is stored (so when none has a title); default: any is
        self.title_vectors = bool(len(self.title_docs)) if title_vectors is None else title_vectors
        self._encoder, self._load_encoder = encoder, load_encoder
        self.model_info = model_info or (encoder.info() if encoder else {"model": None, "dim": store.dim})
        texts = len(passage_docs) if passage_docs is not None else len(store) - len(self.title_docs)
        self._title_row = np.full(n_docs, -1, dtype=np.int64)
        self._title_row[self.title_docs] = texts + np.arange(len(self.title_docs))
        owner = passage_docs if passage_docs is not None else np.arange(n_docs)
        self._text_start = np.searchsorted(owner, np.arange(n_docs + 1))  # statute d: rows [start[d], start[d+1])
        self._matrix: np.ndarray | None = None

    # ---- building, saving, loading ------------------------------------------------------
    @classmethod
    def build(cls, documents: Sequence, options: BuildOptions, order: RowOrder) -> DenseLeg:
        """Encode the documents (their windows and titles, as the chunk settings say) into a store."""
        docs, chunking = list(documents), options.chunking or ChunkSettings()
        enc = options.encoder
        if options.vectors is None or enc is not None:
            t = time.perf_counter()
            enc = enc if isinstance(enc, Encoder) else make_encoder(enc, options.cache if options.vectors is None else None)
            options.timings["model_load_seconds"] = time.perf_counter() - t
        t = time.perf_counter()
        texts, passage_docs = [d.indexed_text() for d in docs], None
        if chunking.documents:
            if options.vectors is not None:
                raise ValueError("document chunking needs the encoder, not given document vectors")
            texts, passage_docs = split_for(enc, texts, chunking, enc.document_prompt)
            options.timings["document_chunks"] = len(texts)
        if options.vectors is None:
            vectors = enc.encode_documents(texts, progress=options.progress)
            options.timings["truncated_documents"] = enc.count_truncated(texts, enc.document_prompt)
        else:
            vectors = _checked_vectors(options.vectors, len(docs), enc)
        title_docs = np.zeros(0, dtype=np.int64)
        encode = enc is not None and (options.encode_titles or (options.encode_titles is None
                                                                 and chunking.title_weight > 0))
        title_vectors = encode or not any(d.title for d in docs)  # no title to encode: a title weight is moot
        if encode:
            title_docs = np.flatnonzero([bool(d.title) for d in docs])
            titles = enc.encode_documents([docs[i].title for i in title_docs], progress=options.progress)
            vectors = np.concatenate([vectors, titles]) if len(titles) else vectors
        # a publishing backend takes the vectors over from an exact local store and builds the asked kind itself
        store = FaissStore.build(vectors, chosen(options.backend).handover_kind(options.dense_kind),
                                 backend=options.dense_backend, device=enc.device if enc is not None else None)
        options.timings["dense_seconds"] = time.perf_counter() - t
        return cls(store, order, n_docs=len(docs), chunking=chunking, passage_docs=passage_docs, title_docs=title_docs,
                   encoder=enc, title_vectors=title_vectors)

    @classmethod
    def load(cls, folder: Path, config: dict, options: LoadOptions, order: RowOrder) -> DenseLeg:
        """The leg saved in `folder`; its model is loaded (and checked) when a query first needs it."""
        store = chosen(options.backend).open_engine(cls.name, folder, config)
        if store is None:
            store = FaissStore.load(folder, config["store"], mmap=options.mmap, backend=options.dense_backend,
                                    device=options.device)
        passages, titles = (np.load(f, allow_pickle=False) if f.is_file() else None
                            for f in (folder / PASSAGES_FILE, folder / TITLES_FILE))
        built = ChunkSettings.from_dict(config.get("chunking"))
        chunking = options.chunking or built
        if doc_side(chunking) != doc_side(built):
            raise SettingsError(f"the settings ask for document chunking {doc_side(chunking)}, the index was built "
                             f"with {doc_side(built)}; rebuild with these settings")
        make = None
        if options.load_encoder and (options.model or config.get("model")):  # no model: built from given vectors
            made = options.encoder or partial(_load_encoder, config, options.model, options.device)
            make = partial(checked_encoder, made, config, options.model)  # nothing imported before use
        # an index saved without the key encoded titles when it has title rows or was built with a title weight
        title_vectors = config.get("title_vectors", titles is not None or built.title_weight > 0)
        return cls(store, order, n_docs=int(config["documents"]), chunking=chunking, passage_docs=passages,
                   title_docs=titles, load_encoder=make, model_info=config, title_vectors=title_vectors)

    def save(self, folder: Path) -> dict:
        """The store's files, the passage and title maps; config: model, store, chunking, passage counts."""
        store = self.store.save(folder)
        if self.passage_docs is not None:
            np.save(folder / PASSAGES_FILE, self.passage_docs, allow_pickle=False)
        if len(self.title_docs):
            np.save(folder / TITLES_FILE, self.title_docs, allow_pickle=False)
        info = {k: v for k, v in self.model_info.items()
                if k not in ("store", "chunking", "documents", "passages", "title_vectors")}
        return {**info, "store": store, "index": store["kind"], "chunking": self.chunking.to_dict(),
                "documents": self.n_docs, "passages": {"text": self._text_rows, "titles": len(self.title_docs)},
                "title_vectors": self.title_vectors}

    def rebuilt(self, before: Sequence[Document], after: Sequence[Document], order: RowOrder, plan: Any,
                progress: bool = False) -> DenseLeg:
        """The leg over `after`: stored vectors reused by text, only new texts encoded, the store rebuilt."""
        new_texts, passage_docs, title_docs, title_vectors = self._texts_of(after)
        cache = self.stored_cache(before)
        vectors = cache.encode(lambda: self.encoder, new_texts, progress)
        if len(title_docs):
            titles = cache.encode(lambda: self.encoder, [after[i].title for i in title_docs], progress)
            vectors = np.concatenate([vectors, titles])
        plan.encoded += cache.encoded
        return DenseLeg(self.store.rebuilt(vectors), order, n_docs=len(after), chunking=self.chunking,
                        passage_docs=passage_docs, title_docs=title_docs, encoder=self.loaded_encoder,
                        load_encoder=lambda: self.encoder,
                        model_info=self.model_info, title_vectors=title_vectors)

    def to_encode(self, before: Sequence[Document], after: Sequence[Document]) -> int:
        """Texts (passages, titles) of `after` whose vector the leg does not hold."""
        texts, _, title_docs, _ = self._texts_of(after)
        cache = self.stored_cache(before)
        return len(cache.missing([cache.key(t) for t in [*texts, *(after[i].title for i in title_docs)]]))

    def _texts_of(self, after: Sequence[Document]) -> tuple[list[str], np.ndarray | None, np.ndarray, bool]:
        """What the leg over `after` encodes: its text rows (windows, cut as the build cut, when chunked), their
        statutes (None: one row each), the statutes whose titles get vectors, and whether titles get them."""
        chunking = self.chunking
        if self.encoder is None if chunking.documents else not self.model_info.get("model"):
            raise ValueError("this index's dense leg has no model (built from given vectors); rebuild it")
        texts, passage_docs = [d.indexed_text() for d in after], None
        if chunking.documents:  # the model's tokenizer
            texts, passage_docs = split_for(self.encoder, texts, chunking, self.encoder.document_prompt)
        title_vectors = self.title_vectors or chunking.title_weight > 0
        title_docs = np.flatnonzero([bool(d.title) for d in after]) if title_vectors else np.zeros(0, dtype=np.int64)
        return texts, passage_docs, title_docs, title_vectors

    def stored_cache(self, documents: Sequence[Document]) -> EmbeddingCache:
        """An embedding cache holding the vectors the leg stores, each under the key of the text (passage or
        title) it was encoded from; `documents` are the leg's documents in row order."""
        cache = EmbeddingCache.for_model(self.model_info)
        cache.put(self.row_texts(documents), self.store.get(np.arange(len(self.store))))
        return cache

    def row_texts(self, documents: Sequence[Document]) -> list[str]:
        """The text each store row was encoded from (passages cut as the build cut, then titles); `documents` are
        the leg's documents in row order."""
        texts = [d.indexed_text() for d in documents]
        if self.chunking.documents:  # the model's tokenizer
            texts = split_for(self.encoder, texts, self.chunking, self.encoder.document_prompt)[0]
        return texts + [documents[i].title for i in self.title_docs]

    @property
    def engine(self) -> VectorStore:
        """The vector store."""
        return self.store

    def with_engine(self, engine: VectorStore) -> DenseLeg:
        """The same leg searching another store of the same vectors (a backend's copy)."""
        out = copy.copy(self)
        out.store, out._matrix = engine, None
        return out

    def __len__(self) -> int:
        owner = self.passage_docs if self.passage_docs is not None else np.arange(self._text_rows)
        return int(owner.max(initial=-1)) + 1

    @property
    def _text_rows(self) -> int:
        """Rows of text passages (the rest are titles)."""
        return len(self.passage_docs) if self.passage_docs is not None else len(self.store) - len(self.title_docs)

    @property
    def encoder(self) -> Encoder | None:
        """The query encoder, loaded (and checked against the index's model) on first use."""
        if self._encoder is None and self._load_encoder is not None:
            self._encoder, self._load_encoder = self._load_encoder(), None
        return self._encoder

    @property
    def loaded_encoder(self) -> Encoder | None:
        """The encoder when it is loaded already (None: not loaded, or none), without loading it."""
        return self._encoder

    # ---- ranking ------------------------------------------------------------------------
    def encode_queries(self, queries: Sequence[str], prompt: str | None = None) -> np.ndarray:
        """Query vectors (with `prompt`, None: the encoder's query prompt); needs the encoder."""
        if self.encoder is None:
            raise RuntimeError("this index has no encoder (built from given vectors, or loaded without it): "
                               "pass query vectors")
        return self.encoder.encode_queries(list(queries), prompt=prompt)

    @property
    def passages(self) -> bool:
        """Whether statutes are scored through passages (windows, query windows or titles), not one row each."""
        return self.chunking.active

    def rank(self, queries: Sequence[str], depth: int, allowed: np.ndarray | None = None, *,
             vectors: np.ndarray | None = None, prompt: str | None = None, **inputs: Any) -> list[Ranking]:
        """Per query, the top-`depth` statutes by dense score (inside `allowed` when given); `vectors`: the
        queries' vectors encoded elsewhere (one per query); `prompt`: this call's query prompt (None: the encoder's)."""
        if vectors is not None:
            qv, owner = np.asarray(vectors, np.float32).reshape(len(queries), -1), np.arange(len(queries))
        else:
            qv, owner = self._query_windows(queries, self.chunking, prompt)
        return self.rank_vectors(qv, owner, len(queries), depth, allowed)

    def rank_vectors(self, qv: np.ndarray, owner: np.ndarray, n_queries: int, depth: int,
                     allowed: np.ndarray | None = None) -> list[Ranking]:
        """Rankings from query (window) vectors `qv`, `owner[i]` the query of vector i (sorted)."""
        allowed = selection(allowed)
        if not self.passages:
            if len(self.title_docs):  # title rows stay out of a statute-per-row search
                allowed = Selection(np.arange(self.n_docs)) if allowed is None else allowed.over(allowed.rows, self.n_docs)
            scores, rows = self.store.search(qv, depth, allowed)
            return [self.order.order(r[r >= 0], s[r >= 0]) for s, r in zip(scores, rows)]
        out = []
        for qi in range(n_queries):
            mine = owner == qi
            docs = self._candidates(qv[mine], depth, allowed)
            scores = self._scores(qv[mine], np.zeros(int(mine.sum()), np.int64), docs, self.chunking)[0]
            out.append(self.order.top(scores, depth, docs))
        return out

    def exact_scores(self, queries: Sequence[str], chunking: ChunkSettings | None = None,
                     prompt: str | None = None) -> np.ndarray:
        """(queries x statutes) exact scores over every passage (tune's fast path). `chunking` may change the
        query side and the title weight; its document side must be the index's; `prompt` as in `rank`."""
        chunking = chunking or self.chunking
        if doc_side(chunking) != doc_side(self.chunking):
            raise ValueError("document chunking differs from the index's")
        qv, q_owner = self._query_windows(queries, chunking, prompt)
        return self.exact_scores_of(qv, q_owner, chunking)

    def exact_scores_of(self, qv: np.ndarray, owner: np.ndarray, chunking: ChunkSettings | None = None) -> np.ndarray:
        """(queries x statutes) exact scores from query (window) vectors, `owner[i]` the query of vector i."""
        return self._scores(qv, owner, np.arange(self.n_docs), chunking or self.chunking)

    def _query_windows(self, queries: Sequence[str], chunking: ChunkSettings,
                       prompt: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of each query (or of its token windows, with `prompt`) and the query each belongs to."""
        if chunking.title_weight > 0 and not self.title_vectors:
            raise ValueError("these settings mix in title vectors, which this index was built without; rebuild "
                             "with them")
        if chunking.queries:
            texts, owner = split_for(self.encoder, list(queries), chunking,
                                     self.encoder.query_prompt if prompt is None else prompt)
        else:
            texts, owner = list(queries), np.arange(len(queries))
        return self.encode_queries(texts, prompt), owner

    def _candidates(self, qv: np.ndarray, depth: int, allowed: Selection | None) -> np.ndarray:
        """Statutes with a passage among each query window's top OVERFETCH x depth passages (deeper until there
        are `depth` statutes), sorted; at an exact store, every statute (allowed) when that covers every passage
        or the depth asks for every statute."""
        everyone = np.arange(self.n_docs) if allowed is None else allowed.rows
        rows = len(self.store)
        fetch = min(rows, OVERFETCH * depth)
        if self.store.exact and (fetch >= rows or depth >= len(everyone)):
            return everyone
        # the rows of the allowed statutes are those its filter selects (a Milvus store takes the filter itself)
        allowed_rows = None if allowed is None else allowed.over(self._rows_of(everyone))
        limit = rows if allowed_rows is None else len(allowed_rows)
        while True:  # a statute with many passages can fill the list: fetch deeper until `depth` statutes
            _, ids = self.store.search(qv, min(fetch, limit), allowed_rows)
            docs = np.unique(self._doc_of(ids[ids >= 0]))
            if len(docs) >= min(depth, len(everyone)) or fetch >= limit:
                return docs
            fetch *= 2

    def _scores(self, qv: np.ndarray, q_owner: np.ndarray, docs: np.ndarray, chunking: ChunkSettings) -> np.ndarray:
        """(queries x `docs`) scores over all passages of `docs` (sorted statute rows)."""
        rows, counts = self._text_rows_of(docs)
        local = np.repeat(np.arange(len(docs)), counts)
        scores = aggregate(qv @ self._vectors(rows).T, q_owner, local, len(docs), chunking)
        titled = self._title_row[docs] >= 0
        if chunking.title_weight > 0 and titled.any():
            trows = self._title_row[docs][titled]
            titles = aggregate(qv @ self._vectors(trows).T, q_owner, np.arange(len(trows)), len(trows), chunking)
            w = chunking.title_weight
            scores[:, titled] = (1 - w) * scores[:, titled] + w * titles
        return scores

    def _vectors(self, rows: np.ndarray) -> np.ndarray:
        """Stored vectors of `rows`: from a whole-store copy when it is small enough, else from the store."""
        if self._matrix is None and len(self.store) * self.store.dim * 4 <= CACHE_MAX_BYTES:
            self._matrix = self.store.get(np.arange(len(self.store)))
        return self._matrix[rows] if self._matrix is not None else self.store.get(rows)

    def row_docs(self) -> np.ndarray:
        """The statute of every store row (text passages, then titles)."""
        return self._doc_of(np.arange(len(self.store)))

    def _doc_of(self, rows: np.ndarray) -> np.ndarray:
        """Statute of each store row (text passages first, then titles)."""
        texts = self._text_rows
        owner = self.passage_docs if self.passage_docs is not None else np.arange(texts)
        out = np.empty(len(rows), dtype=np.int64)
        is_text = rows < texts
        out[is_text] = owner[rows[is_text]]
        out[~is_text] = self.title_docs[rows[~is_text] - texts]
        return out

    def _text_rows_of(self, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The text passage rows of `docs` (each statute's contiguous) and how many each has."""
        starts = self._text_start[docs]
        counts = self._text_start[docs + 1] - starts
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return np.repeat(starts, counts) + offsets, counts

    def _rows_of(self, docs: np.ndarray) -> np.ndarray:
        """Every store row (passages and title) of `docs`, sorted."""
        title = self._title_row[docs]
        return np.sort(np.concatenate([self._text_rows_of(docs)[0], title[title >= 0]]))


def doc_side(c: ChunkSettings) -> tuple:
    """The chunk settings fixed at build time (how documents were cut)."""
    return (c.documents, c.window, c.overlap) if c.documents else (False,)


def split_for(enc: Encoder, texts: list[str], chunking: ChunkSettings, prompt: str) -> tuple[list[str], np.ndarray]:
    """Token windows that fit the model with the prompt and special tokens."""
    reserved = 2 + len(enc.model.tokenizer(prompt, add_special_tokens=False)["input_ids"]) if prompt else 2
    return split(enc.model.tokenizer, texts, window_size(chunking, enc.max_seq_length, reserved), chunking.overlap)


def _checked_vectors(vectors: np.ndarray, n: int, encoder: Encoder | None) -> np.ndarray:
    """Given document vectors must be one row per document, of the encoder's dimension."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != n:
        raise ValueError(f"vectors of shape {vectors.shape} for {n} documents; want one row per document")
    if encoder is not None and vectors.shape[1] != encoder.dim:
        raise ValueError(f"vectors have {vectors.shape[1]} dimensions, {encoder.model_name} gives {encoder.dim}")
    return vectors


def encoder_config(meta: dict, model: str | None, device: str | None) -> EncoderConfig:
    """The build-time encoder settings (attention, batching and a CPU's float32 are the query machine's own); a
    query-time `model` must be the same model."""
    return EncoderConfig(model=model or meta["model"], device=device, dtype=query_dtype(meta.get("dtype", "auto"), device),
                         batch_size=meta.get("batch_size", 32), query_prompt=meta.get("query_prompt"),
                         max_seq_length=meta.get("max_seq_length"))


def _load_encoder(meta: dict, model: str | None, device: str | None) -> Encoder:
    """The index's encoder for this machine (see encoder_config)."""
    return Encoder(encoder_config(meta, model, device))


def checked_encoder(make: Callable[[], Encoder], meta: dict, model: str | None = None) -> Encoder:
    """The index's encoder, made by `make` (`model`: a query-time --model); refused when its weights or vector
    settings differ from the build's."""
    try:
        enc = make()
    except (OSError, ValueError) as e:
        if isinstance(e, ValueError) and model not in (None, meta.get("model")):  # a --model of the user's: bad input
            raise
        raise IndexFileError(f"cannot load the index's model {model or meta.get('model')} ({type(e).__name__}: "
                             f"{str(e)[:200]}); pass --model with a local folder of that model") from None
    built = meta.get("weights_sha256")
    now = weights_sha256(resolve_model(enc.model_path))
    if built and now and built != now:
        raise IndexFileError(
            f"model mismatch: the index was built with {meta['model']} (weights sha256 {built[:12]}), "
            f"but {enc.model_name} has weights sha256 {now[:12]}; rebuild or use the index's model")
    if enc.dim != meta["dim"]:
        raise IndexFileError(f"model mismatch: index vectors have {meta['dim']} dimensions, {enc.model_name} gives {enc.dim}")
    for key, was in (meta.get("vector_config") or {}).items():
        now = enc.vector_config().get(key)
        if now != was:
            raise IndexFileError(f"model mismatch: {enc.model_name} has {key} {now!r}, the index was built with "
                                 f"{was!r} (its vectors would differ); rebuild or use the index's model")
    return enc

"""The HybridRetriever as an MTEB search model (MTEB 2.x SearchProtocol: index + search).

Runs of one benchmark share a `SharedLegs`: the corpus is analysed and encoded once, and
each query's per-leg rankings are computed once, whatever the number of modes and fusion
settings evaluated. The class has no `predict`, so MTEB does not take it for a cross-encoder.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import replace
from typing import Any

from ..corpus import Document, fingerprint
from ..dense.encoders import Encoder
from ..rerank import Reranker, ordered_scores, rerank_lists
from ..retriever import HybridRetriever
from ..settings import Settings
from ..spec import IndexSpec

SERVER_FUSION = "hybrid-server"  # the mode (and bench run) fused by Milvus (milvus/fusion.py)


class SharedLegs:
    """One corpus's legs and the queries' rankings, built on first use and reused by every run."""

    def __init__(self, encoder: Encoder | None, spec: IndexSpec = IndexSpec(), *, milvus: Any = None):
        self.encoder, self.spec, self.legs = encoder, spec, spec.legs  # encoder: spec.make_encoder()'s, made once
        self.milvus = milvus  # an index.backends.Backend (e.g. milvus.backend.MilvusBackend), or None: local
        self.seconds: dict[str, float] = {}
        self.truncated: dict[str, int] = {}
        self._retrievers: dict[str, HybridRetriever] = {}
        self._prompts: dict[str, str | None] = {}  # query prompt of each retriever's settings (None: the encoder's)
        self._rankings: dict[tuple[str, str], dict[str, list]] = {}

    def retriever(self, documents: list[Document], settings: Settings = Settings()) -> HybridRetriever:
        """The retriever of this corpus with these chunk and BM25 settings, built once (timings in `seconds`)."""
        chunking = settings.chunking
        key = (f"{fingerprint(documents)}/{sorted(chunking.to_dict().items())}/"
               f"{sorted(settings.bm25.to_dict().items())}/{settings.query_prompt}")
        if key not in self._retrievers:
            t = time.perf_counter()
            spec = replace(self.spec, chunking=chunking, bm25=settings.bm25)
            r = HybridRetriever.build(documents, **spec.build_kwargs(
                encoder=self.encoder, analysis=spec.analysis_for([d.indexed_text() for d in documents]),
                backend=self.milvus))
            self._retrievers[key], self._prompts[key] = r, settings.query_prompt
            build = r.info["build"]
            tag = "index" if not (chunking.active or settings.bm25.to_dict()) else "index_tuned"
            self.seconds[f"{tag}_seconds"] = time.perf_counter() - t
            self.seconds.update({f"{tag}_{k}": v for k, v in build.items()
                                 if k.endswith("_seconds") and k != "model_load_seconds"})
            if "truncated_documents" in build:
                self.truncated["chunked documents" if chunking.documents else "documents"] = build["truncated_documents"]
        return self._retrievers[key]

    def close(self) -> None:
        """Drop what these runs wrote into a backend (Milvus collections; a local retriever holds only memory)."""
        for r in self._retrievers.values():
            r.backend.drop(r.backend.held(r.leg))

    def analysis(self) -> dict | None:
        """The BM25 analysis settings in use (None before indexing or without BM25)."""
        for r in self._retrievers.values():
            return r.leg["bm25"].info() if "bm25" in r.leg else None
        return None

    def rankings(self, retriever: HybridRetriever, queries: list[str]) -> list[dict[str, list]]:
        """Each query's full per-leg rankings (the whole corpus, at most 1000), computed once."""
        corpus = next(k for k, r in self._retrievers.items() if r is retriever)  # key of this retriever
        todo = [q for q in dict.fromkeys(queries) if (corpus, q) not in self._rankings]
        if todo:
            t = time.perf_counter()
            prompt = self._prompts[corpus]  # the settings' prompt (from `tune --prompts`) for these queries
            per_leg = retriever.leg_rankings(todo, inputs={"dense": {"prompt": prompt}} if prompt is not None else None)
            for i, q in enumerate(todo):
                self._rankings[(corpus, q)] = {leg: lists[i] for leg, lists in per_leg.items()}
            self.seconds["query_seconds"] = self.seconds.get("query_seconds", 0.0) + time.perf_counter() - t
            if self.encoder is not None and "dense" in self.legs:
                self.truncated["queries"] = self.encoder.count_truncated(todo, self.encoder.query_prompt)
        return [self._rankings[(corpus, q)] for q in queries]


class RetrieverSearch:
    """MTEB search model: one mode ('dense', 'bm25', 'hybrid') and fusion setting over SharedLegs, with an optional
    rerank stage (reranker, depth) over each fused list, as `query --rerank` runs it (rerank.rerank_lists)."""

    def __init__(self, shared: SharedLegs, mode: str = "hybrid", settings: Settings = Settings(),
                 model_label: str = "model", rerank: tuple[Reranker, int] | None = None):
        from mteb.models.model_meta import ModelMeta

        self.shared, self.mode, self.settings, self.rerank = shared, mode, settings, rerank
        self.name = run_name(model_label, mode, settings)
        if rerank is not None:
            self.name += f"__rerank-{_safe(rerank[0].model_name)}-d{rerank[1]}"
        self.mteb_model_meta = ModelMeta.create_empty(overwrites={
            "name": self.name, "revision": "local", "model_type": ["dense" if mode == "dense" else "hybrid"],
        })
        self.results: dict[str, dict[str, float]] = {}
        self._retriever: HybridRetriever | None = None
        self._texts: dict[str, str] = {}  # the statute text a reranker reads, by id

    def index(self, corpus, *, task_metadata=None, hf_split: str = "test", hf_subset: str = "default",
              encode_kwargs: dict | None = None, num_proc: int | None = None, **kwargs: Any) -> None:
        """Build (or reuse) the legs for MTEB's corpus rows (id, title, text)."""
        docs = [Document.from_row(row["id"], row.get("title"), row["text"]) for row in corpus]
        self._retriever = self.shared.retriever(docs, self.settings)
        self._texts = {d.id: d.indexed_text() for d in docs}

    def search(self, queries, *, task_metadata=None, hf_split: str = "test", hf_subset: str = "default",
               top_k: int = 1000, encode_kwargs: dict | None = None, top_ranked=None,
               num_proc: int | None = None, **kwargs: Any) -> dict[str, dict[str, float]]:
        """{query_id: {doc_id: score}} with the top_k fused documents of each query; reranked, the rerank scores
        within the depth and, below, lower scores that keep the fused order (rerank.ordered_scores)."""
        if self._retriever is None:
            raise RuntimeError("search before index")
        ids, texts = list(queries["id"]), list(queries["text"])
        if self.mode == SERVER_FUSION:  # fused by the backend (Milvus: one hybrid_search per query)
            fused = [self._retriever.with_ids(f[:top_k]) for f in self._retriever.backend.fuse(self._retriever, texts)]
        else:
            rankings = self.shared.rankings(self._retriever, texts)
            fused = [self._retriever.with_ids(self._retriever.fuse(r, self.mode, self.settings.fusion, top_k))
                     for r in rankings]
        if self.rerank is None:
            self.results = {qid: dict(ranked) for qid, ranked in zip(ids, fused)}
        else:
            orders = rerank_lists(self.rerank[0], texts, fused, self.rerank[1], self._texts.__getitem__)
            self.results = {qid: ordered_scores(order) for qid, order in zip(ids, orders)}
        return self.results


def run_name(model_label: str, mode: str, settings: Settings = Settings()) -> str:
    """A name that differs for every model, mode and setting (MTEB caches results by name)."""
    name = f"retrieval/{_safe(model_label)}__{mode}"
    fusion, chunking = settings.fusion, settings.chunking
    if mode == "hybrid":
        w = "-".join(f"{leg}{v:g}" for leg, v in sorted(fusion.weights.items()))
        name += f"__{fusion.method}-k{fusion.k}-{w}-d{fusion.depth or 'all'}"
    if chunking.active and mode != "bm25":
        c = chunking
        name += (f"__chunk-{'d' if c.documents else ''}{'q' if c.queries else ''}-w{c.window or 'auto'}"
                 f"-o{c.overlap}-{c.doc_agg}{c.top_n if c.doc_agg == 'topn' else ''}-{c.query_agg}-t{c.title_weight:g}")
    if settings.bm25.to_dict() and mode != "dense":
        name += "__bm25-" + "-".join(f"{k}{v:g}" for k, v in sorted(settings.bm25.to_dict().items()))
    if settings.query_prompt is not None and mode != "bm25":
        name += "__prompt-" + hashlib.sha256(settings.query_prompt.encode()).hexdigest()[:8]
    return name


def _safe(label: str) -> str:
    """A model label as a name part: letters, digits, '.', '_' and '-', its last 60 characters."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-")[-60:] or "model"

"""One served index: its current retriever (switched whole on reload), its reranker, and its two batch workers.

Searches that run a model go to the encoder worker; BM25-only searches go to their own worker, so they never
wait behind an encoder batch. Document look-ups read the current retriever's table and queue nowhere.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from ..index.format import current_generation
from ..languages import default_mode
from ..rerank import RerankStage
from ..retriever import HybridRetriever
from .batching import BatchConfig, Batcher, needs_encoder


@dataclass
class ServedIndex:
    """One loaded index under its name; `folder` (when known) is where a reload reads the next generation."""

    name: str
    retriever: HybridRetriever
    rerank: RerankStage | None = None  # (reranker, depth) applied unless a request says rerank=false
    folder: Path | None = None
    batch: BatchConfig = field(default_factory=BatchConfig)
    on_batch: Callable[[str, int, float], None] | None = None  # metrics hook: worker name, batch size, seconds
    generation: str | None = None
    _facets: tuple[HybridRetriever, dict] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.rerank is not None:
            self.rerank = RerankStage(*self.rerank)  # a plain (reranker, depth) pair becomes the stage
        self.encoder_worker = Batcher(f"{self.name}/encoder", lambda: self.retriever, self.batch, self.on_batch)
        self.plain_worker = Batcher(f"{self.name}/plain", lambda: self.retriever, self.batch, self.on_batch)
        if self.generation is None and self.folder is not None:
            self.generation = current_generation(self.folder)

    def default_mode(self) -> str:
        """The mode a search without one gets: the index's (languages.default_mode)."""
        return default_mode(self.retriever.info)

    def summary(self) -> dict:
        """What /api/health says about this index, with the corpus's and the model's languages (languages.plan)."""
        info = self.retriever.info
        return {"name": self.name, "documents": len(self.retriever), "legs": list(self.retriever.legs),
                "modes": list(self.retriever.modes()), "default_mode": self.default_mode(),
                "model": info.get("dense", {}).get("model"),
                "language": info.get("bm25", {}).get("analysis", {}).get("language"),
                **({"languages": info["languages"]} if info.get("languages") else {}),
                **({"rerank": {"model": self.rerank[0].model_name, "depth": self.rerank[1]}} if self.rerank else {})}

    def facets(self) -> dict[str, list[str]]:
        """The served documents' distinct acts and jurisdictions (filters.FACETS), read once per retriever."""
        retriever = self.retriever
        if self._facets is None or self._facets[0] is not retriever:
            self._facets = (retriever, retriever.field_table().facets())
        return self._facets[1]

    def submit(self, query: str, k: int, mode: str, rerank: bool) -> Future:
        """Queue a search on the worker its mode needs; the Future gives a batching.Answer (QueueFull when full)."""
        reranking = self.rerank if rerank and self.rerank else None
        worker = self.encoder_worker if needs_encoder(self.retriever, mode, reranking is not None) else self.plain_worker
        return worker.submit(query, k, mode, reranking)

    def queued(self) -> int:
        """Searches admitted and not yet answered, over both workers."""
        return self.encoder_worker.depth() + self.plain_worker.depth()

    def switch(self, retriever: HybridRetriever, generation: str | None) -> None:
        """Serve `retriever` from the next batch on; batches already running finish on the old one."""
        self.retriever, self.generation = retriever, generation

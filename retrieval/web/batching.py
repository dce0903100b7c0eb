"""Micro-batching: concurrent searches on one index are gathered for a few milliseconds and run as one
`search_many` call per (mode, k, rerank) group on one worker thread, so the encoder sees one batch, not a queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from ..hits import Hit
from ..rerank import RerankStage
from ..retriever import HybridRetriever

log = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    """The index already holds as many searches as --max-queue allows."""


@dataclass(frozen=True)
class BatchConfig:
    """How long a batch gathers (ms), how many searches it takes, how many an index holds before refusing."""

    wait_ms: float = 3.0
    max_batch: int = 32
    max_queue: int = 256

    def __post_init__(self) -> None:
        if self.wait_ms < 0 or self.max_batch < 1 or self.max_queue < 1:
            raise ValueError(f"batch wait must be >= 0 ms, max batch and max queue >= 1 (got {self})")


@dataclass(frozen=True)
class Answer:
    """A search's hits, with the batch it ran in: its size, its seconds, and the retriever that answered."""

    hits: list[Hit]
    batch_size: int
    seconds: float
    retriever: HybridRetriever


@dataclass
class _Job:
    query: str
    k: int
    mode: str
    rerank: RerankStage | None
    future: Future

    def group(self) -> tuple:
        reranker, depth = self.rerank or (None, 0)
        return self.mode, self.k, id(reranker), depth


class Batcher:
    """One worker thread running the searches submitted to it, in batches of up to `max_batch`."""

    def __init__(self, name: str, retriever: Callable[[], HybridRetriever], config: BatchConfig,
                 on_batch: Callable[[str, int, float], None] | None = None):
        self.name = name
        self.config = config
        self._retriever = retriever  # read at each batch: a reload switches it between batches
        self._on_batch = on_batch or (lambda name, size, seconds: None)
        self._queue: deque[_Job] = deque()
        self._held = 0  # admitted and not yet answered
        self._last = 1  # size of the previous batch: gathering waits only when searches overlap
        self._cond = threading.Condition()
        threading.Thread(target=self._loop, daemon=True, name=f"batcher-{name}").start()

    def depth(self) -> int:
        """Searches admitted and not yet answered (waiting or running)."""
        return self._held

    def submit(self, query: str, k: int, mode: str, rerank: RerankStage | None = None) -> Future:
        """Queue one search; its Future gives an Answer. Raises QueueFull at once when the index is full."""
        future: Future = Future()
        with self._cond:
            if self._held >= self.config.max_queue:
                raise QueueFull(f"{self._held} searches already queued (limit {self.config.max_queue})")
            self._held += 1
            self._queue.append(_Job(query, k, mode, rerank, future))
            self._cond.notify()
        future.add_done_callback(self._release)
        return future

    def _release(self, _future: Future) -> None:
        with self._cond:
            self._held -= 1

    def _loop(self) -> None:
        while True:
            batch = [job for job in self._take() if job.future.set_running_or_notify_cancel()]
            groups: dict[tuple, list[_Job]] = {}
            for job in batch:
                groups.setdefault(job.group(), []).append(job)
            for jobs in groups.values():
                self._run(jobs)

    def _take(self) -> list[_Job]:
        """The next batch: the waiting searches, and, when searches overlap (more than one waiting, or a previous
        batch of several), those arriving within wait_ms; at most max_batch. A lone search does not wait."""
        with self._cond:
            while not self._queue:
                self._cond.wait()
            overlapping = len(self._queue) > 1 or self._last > 1
            deadline = time.monotonic() + (self.config.wait_ms / 1000 if overlapping else 0)
            while len(self._queue) < self.config.max_batch and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.config.max_batch))]
            self._last = len(batch)
            return batch

    def _run(self, jobs: list[_Job]) -> None:
        """One search_many call for jobs sharing mode, k and reranker; if it fails, each job alone."""
        retriever = self._retriever()
        first = jobs[0]
        t = time.perf_counter()
        try:
            results = retriever.search_many([j.query for j in jobs], first.k, first.mode, rerank=first.rerank)
        except Exception as e:  # noqa: BLE001 - handed to the request(s)
            if len(jobs) == 1:
                first.future.set_exception(e)
                return
            log.warning("a batch of %d on %s failed (%s); running each alone", len(jobs), self.name, e)
            for job in jobs:
                self._run([job])
            return
        took = time.perf_counter() - t
        self._on_batch(self.name, len(jobs), took)
        for job, hits in zip(jobs, results):
            job.future.set_result(Answer(hits, len(jobs), took, retriever))


def needs_encoder(retriever: HybridRetriever, mode: str, reranked: bool) -> bool:
    """Whether a search runs a model (a leg with an encoder, or a reranker): such searches share the encoder worker."""
    return reranked or any(getattr(retriever.leg[name], "encoder", None) is not None
                           for name in retriever.legs_for(mode))

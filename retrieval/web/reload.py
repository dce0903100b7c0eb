"""Reload without downtime: load an index folder's new generation beside the old, verify it, then switch.

Requests already in a batch finish on the old retriever; a new generation that fails to load or to answer a
test search is refused (logged) and the old one keeps serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from ..index.format import current_generation
from ..retriever import HybridRetriever
from .metrics import escape_label
from .served import ServedIndex

log = logging.getLogger(__name__)


class Reloader:
    """Reloads the served indexes that have a folder, one reload at a time."""

    def __init__(self, served: Mapping[str, ServedIndex], load: Callable[[Path], HybridRetriever]):
        self.served = served
        self._load = load
        self._lock = threading.Lock()
        self.reloads = 0  # generations switched to
        self.refused = 0  # new generations refused

    def reload(self) -> list[dict]:
        """Each index with a folder: 'reloaded', 'unchanged' (same generation) or 'refused' (with the error)."""
        with self._lock:
            return [self._one(s) for s in self.served.values() if s.folder is not None]

    def _one(self, target: ServedIndex) -> dict:
        generation = current_generation(target.folder)
        out = {"index": target.name, "generation": target.generation}
        if generation == target.generation:
            return out | {"status": "unchanged"}
        try:
            new = self._load(target.folder)
            new.search("warm up", k=1, rerank=target.rerank)  # verifies it answers, loads kernels
        except Exception as e:  # noqa: BLE001 - any failure refuses the new generation
            self.refused += 1
            log.error("index %s: new generation %s refused, still serving %s: %s: %s", target.name, generation,
                      target.generation, type(e).__name__, e)
            return out | {"status": "refused", "error": f"{type(e).__name__}: {e}"}
        old = target.generation
        target.switch(new, new.info.get("generation", generation))
        self.reloads += 1
        log.info("index %s: switched from generation %s to %s", target.name, old, target.generation)
        return out | {"status": "reloaded", "generation": target.generation}

    def in_background(self) -> None:
        """Start a reload on its own thread (for a signal handler, which must return at once)."""
        threading.Thread(target=self.reload, daemon=True, name="reload").start()

    def watch(self, seconds: float, stop: threading.Event) -> threading.Thread:
        """Poll each folder's manifest every `seconds` and reload on a new generation, until `stop` is set."""

        def loop() -> None:
            while not stop.wait(seconds):
                try:
                    self.reload()
                except Exception:  # noqa: BLE001 - a failed poll must not end the watch
                    log.exception("watching the index folders failed")

        thread = threading.Thread(target=loop, daemon=True, name="watch")
        thread.start()
        return thread

    def metric_lines(self) -> list[str]:
        """Each index's generation (its number as the value), and the counts of reloads and refusals."""
        lines = ["# HELP retrieval_index_generation The generation each index serves (gen-NNNNNN as NNNNNN).",
                 "# TYPE retrieval_index_generation gauge"]
        for s in self.served.values():
            number = int(s.generation[4:]) if s.generation and s.generation[4:].isdigit() else 0
            lines.append(f'retrieval_index_generation{{index="{escape_label(s.name)}",generation="{s.generation or ""}"}} {number}')
        return lines + ["# TYPE retrieval_reloads_total counter", f"retrieval_reloads_total {self.reloads}",
                        "# TYPE retrieval_reloads_refused_total counter", f"retrieval_reloads_refused_total {self.refused}"]

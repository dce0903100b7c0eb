"""Counters and histograms an operator watches, written in the Prometheus text format for /metrics."""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Callable, Iterable

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Histogram:
    """Cumulative bucket counts, sum and count of observed values, per label value."""

    def __init__(self, buckets: Iterable[float]):
        self.buckets = tuple(buckets)
        self.series: dict[str, list] = {}  # label value -> [bucket counts..., sum, count]

    def observe(self, label: str, value: float) -> None:
        row = self.series.setdefault(label, [0] * len(self.buckets) + [0.0, 0])
        for i in range(bisect.bisect_left(self.buckets, value), len(self.buckets)):
            row[i] += 1
        row[-2] += value
        row[-1] += 1

    def lines(self, name: str, label: str) -> list[str]:
        out = []
        for value, row in sorted(self.series.items()):
            tag = f'{label}="{escape_label(value)}"'
            out += [f'{name}_bucket{{{tag},le="{b:g}"}} {n}' for b, n in zip(self.buckets, row)]
            out += [f'{name}_bucket{{{tag},le="+Inf"}} {row[-1]}', f"{name}_sum{{{tag}}} {row[-2]:.6f}",
                    f"{name}_count{{{tag}}} {row[-1]}"]
        return out


class Metrics:
    """Requests by status, latency, batch sizes and model seconds per worker; gauges read when rendered."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}  # (path, status) -> count
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batches = Histogram(BATCH_BUCKETS)
        self.batch_seconds: dict[str, float] = {}
        self.gauges: list[Callable[[], list[str]]] = []  # each returns sample lines (queue depth, generation)

    def request(self, path: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        with self._lock:
            self.requests[path, status] = self.requests.get((path, status), 0) + 1
            self.latency.observe(path, seconds)

    def batch(self, worker: str, size: int, seconds: float) -> None:
        """Count one batch run by a worker ('INDEX/encoder' or 'INDEX/plain'), its size and seconds."""
        with self._lock:
            self.batches.observe(worker, size)
            self.batch_seconds[worker] = self.batch_seconds.get(worker, 0.0) + seconds

    def render(self) -> str:
        """All metrics in the Prometheus text exposition format (version 0.0.4)."""
        with self._lock:
            lines = ["# HELP retrieval_requests_total HTTP requests answered, by path and status.",
                     "# TYPE retrieval_requests_total counter"]
            lines += [f'retrieval_requests_total{{path="{escape_label(p)}",status="{s}"}} {n}'
                      for (p, s), n in sorted(self.requests.items())]
            lines += ["# HELP retrieval_request_seconds Request latency.", "# TYPE retrieval_request_seconds histogram",
                      *self.latency.lines("retrieval_request_seconds", "path"),
                      "# HELP retrieval_batch_size Searches per batch run by a worker.",
                      "# TYPE retrieval_batch_size histogram", *self.batches.lines("retrieval_batch_size", "worker"),
                      "# HELP retrieval_batch_seconds_total Seconds spent running batches (encoding the queries "
                      "and searching the legs); the encoder workers' share is the encoder time.",
                      "# TYPE retrieval_batch_seconds_total counter"]
            lines += [f'retrieval_batch_seconds_total{{worker="{escape_label(w)}"}} {s:.6f}'
                      for w, s in sorted(self.batch_seconds.items())]
        for gauge in self.gauges:
            lines += gauge()
        return "\n".join(lines) + "\n"


def escape_label(value: str) -> str:
    """A label value with quotes, backslashes and newlines escaped."""
    return re.sub(r'(["\\])', r"\\\1", value).replace("\n", "\\n")

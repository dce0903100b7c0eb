"""One JSON access-log line per request (path, status, latency, batch size), counted in the metrics too."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from .metrics import Metrics

log = logging.getLogger("retrieval.access")


def add_access_log(app: FastAPI, metrics: Metrics) -> None:
    """Time every request; log it as one JSON line and count it by route (not raw path, to bound the labels)."""

    @app.middleware("http")
    async def access(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        t = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            took = time.perf_counter() - t
            route = request.scope.get("route")
            path = getattr(route, "path", None) or "other"
            metrics.request(path, status, took)
            if log.isEnabledFor(logging.INFO):
                log.info(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                     "method": request.method, "path": request.url.path, "status": status,
                                     "ms": round(took * 1000, 2), "batch": getattr(request.state, "batch_size", None),
                                     "index": getattr(request.state, "index", None),
                                     "client": request.client.host if request.client else None}))

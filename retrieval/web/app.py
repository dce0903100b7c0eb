"""The FastAPI app: a REST API over one or more loaded indexes, and the search page at `/`.

Searches go to their index's batch workers (served.py, batching.py): concurrent searches share one encoder batch,
a full queue answers 503 with Retry-After, a search over --timeout-s answers 504. Document look-ups queue nowhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from .. import __version__
from ..filters import FilterTimeout
from ..rerank import Reranker
from ..retriever import HybridRetriever, check_query, results_json
from .access import add_access_log
from .batching import BatchConfig, QueueFull
from .edge import SECURITY_HEADERS, Edge
from .metrics import Metrics, escape_label
from .reload import Reloader
from .served import ServedIndex

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
MAX_QUERY_CHARS = 20_000
MAX_K = 100
DEFAULT_TIMEOUT_S = 60.0


class SearchBody(BaseModel):
    """POST /api/search: the same fields as the GET parameters, in a JSON body (long case descriptions)."""

    q: str = Field("", description=f"query text, at most {MAX_QUERY_CHARS:,} characters")
    mode: str | None = Field(None, description="hybrid (all legs fused) or one leg of the index: dense, bm25 "
                                               "(default: the index's, /api/health default_mode)")
    k: int = Field(10, ge=1, le=MAX_K, description="number of hits")
    index: str | None = Field(None, description="index name (default: the first served)")
    rerank: bool = Field(True, description="rerank with the index's reranker, if it has one")
    act: str | None = Field(None, description="only documents of this act")
    jurisdiction: str | None = Field(None, description="only documents of this jurisdiction")
    as_of: str | None = Field(None, description="only documents in force on this date (YYYY-MM-DD)")
    filter: str | None = Field(None, description="filter expression (retrieval/filters.py), e.g. "
                                                 "act in (IPC, CrPC) and section = 302")


def create_app(retrievers: Mapping[str, HybridRetriever],
               rerankers: Mapping[str, tuple[Reranker, int]] | None = None, *,
               folders: Mapping[str, Path] | None = None, load: Callable[[Path], HybridRetriever] | None = None,
               batch: BatchConfig = BatchConfig(), timeout_s: float = DEFAULT_TIMEOUT_S) -> FastAPI:
    """The app serving `retrievers` by name; the first one answers requests that name no index. `rerankers`:
    per index name, the (reranker, depth) that reorders its results; `folders` and `load`: where and how a
    reload reads an index's next generation (app.state.reloader)."""
    if not retrievers:
        raise ValueError("no index to serve")
    if timeout_s <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout_s}")
    rerankers, folders = rerankers or {}, folders or {}
    metrics = Metrics()
    served = {name: ServedIndex(name, r, rerank=rerankers.get(name), folder=folders.get(name), batch=batch,
                                on_batch=metrics.batch) for name, r in retrievers.items()}
    app = FastAPI(title="Statute retrieval", version=__version__, docs_url=None, redoc_url=None,  # both need a CDN
                  description="Hybrid (dense + BM25, fused by RRF) search over statutes. "
                              "Errors are JSON: {\"detail\": message}; 503 (with Retry-After) when an index's "
                              "queue is full, 504 when a search takes longer than the server's time limit.")
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _internal_error)
    app.add_middleware(Edge)
    add_access_log(app, metrics)
    app.state.reloader = Reloader(served, load or HybridRetriever.load)
    metrics.gauges += [lambda: _queue_lines(served), app.state.reloader.metric_lines]
    _search_routes(app, served, timeout_s)
    _admin_routes(app, app.state.reloader, metrics)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        """The search page (every response carries a content security policy that allows only its own files)."""
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _search_routes(app: FastAPI, served: Mapping[str, ServedIndex], timeout_s: float) -> None:
    """/api/health, GET and POST /api/search, /api/facets, /api/documents/{id}."""
    default = next(iter(served))

    def pick(index: str | None) -> ServedIndex:
        name = default if index is None else index
        if name not in served:
            raise HTTPException(404, f"unknown index {name!r} (serving: {', '.join(served)})")
        return served[name]

    @app.get("/api/health")
    def health() -> dict:
        """Liveness, and each served index: name, document count, legs, modes, default mode, model, language,
        the corpus's and model's languages (and reranker)."""
        return {"status": "ok", "version": __version__, "indexes": [s.summary() for s in served.values()]}

    @app.get("/api/search")
    async def search(request: Request,
                     q: str = Query("", description=f"query text, at most {MAX_QUERY_CHARS:,} characters"),
                     mode: str | None = Query(None, description="hybrid (all legs fused) or one leg of the index: "
                                                                "dense, bm25 (default: the index's default_mode)"),
                     k: int = Query(10, ge=1, le=MAX_K, description="number of hits"),
                     index: str | None = Query(None, description="index name (default: the first served)"),
                     rerank: bool = Query(True, description="rerank with the index's reranker, if it has one "
                                                            "(false: the first stage alone, to compare)"),
                     act: str | None = Query(None, description="only documents of this act"),
                     jurisdiction: str | None = Query(None, description="only documents of this jurisdiction"),
                     as_of: str | None = Query(None, description="only documents in force on this date (YYYY-MM-DD)"),
                     filter: str | None = Query(None, description="filter expression (retrieval/filters.py), e.g. "
                                                                  "act in (IPC, CrPC) and section = 302")) -> dict:
        """Top-k hits, as `retrieval query --json` prints them: {query, mode, legs, hits, seconds}, and `warnings`
        when a filter value matches no document (an unknown filter field is a 400 naming the index's fields)."""
        body = SearchBody(q=q, mode=mode, k=k, index=index, rerank=rerank, act=act, jurisdiction=jurisdiction,
                          as_of=as_of, filter=filter)
        return await _search(request, pick(index), body, timeout_s)

    @app.post("/api/search")
    async def search_post(request: Request, body: SearchBody) -> dict:
        """The same search with its fields in a JSON body (a long case description does not fit a URL well)."""
        return await _search(request, pick(body.index), body, timeout_s)

    @app.get("/api/facets")
    def facets(index: str | None = Query(None, description="index name (default: the first served)")) -> dict:
        """The index's distinct acts and jurisdictions, for the page's filter select boxes."""
        target = pick(index)
        return {"index": target.name, **target.facets()}

    @app.get("/api/documents/{doc_id:path}")
    def document(doc_id: str, index: str | None = Query(None, description="index name (default: the first served)")
                 ) -> dict:
        """One statute's id, title and full text."""
        target = pick(index)
        try:
            return target.retriever.document(doc_id)
        except KeyError:
            raise HTTPException(404, f"unknown document {doc_id!r} in index {target.name!r}") from None


async def _search(request: Request, target: ServedIndex, body: SearchBody, timeout_s: float) -> dict:
    """Check the request, queue it on its index, and wait at most `timeout_s` for its batch to answer."""
    if body.mode is None:
        body = body.model_copy(update={"mode": target.default_mode()})
    q, mode = body.q, body.mode
    if len(q) > MAX_QUERY_CHARS:
        raise HTTPException(413, f"query is {len(q):,} characters; the limit is {MAX_QUERY_CHARS:,}")
    if not q.strip():
        raise HTTPException(400, "empty query: pass the query text as q")
    try:
        check_query(q)
        target.retriever.legs_for(mode)
    except ValueError as e:
        raise HTTPException(400, f"index {target.name!r}: {e}") from None
    request.state.index = target.name
    if body.act or body.jurisdiction or body.as_of or body.filter:  # rare: searched alone, outside the batches
        deadline = time.monotonic() + timeout_s
        try:
            return await asyncio.wait_for(asyncio.to_thread(_filtered_search, target, body, deadline), timeout_s)
        except (asyncio.TimeoutError, FilterTimeout):
            raise HTTPException(504, f"filtered search on index {target.name!r} took longer than {timeout_s:g} s"
                                ) from None
    try:
        future = target.submit(q, body.k, mode, body.rerank)
    except QueueFull as e:
        raise HTTPException(503, f"index {target.name!r} is busy: {e}; retry shortly",
                            headers={"Retry-After": "1"}) from None
    try:
        answer = await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
    except asyncio.TimeoutError:
        raise HTTPException(504, f"search on index {target.name!r} took longer than {timeout_s:g} s") from None
    request.state.batch_size = answer.batch_size
    out = results_json(q, mode, answer.retriever.legs, answer.hits, answer.seconds)
    reranker = target.rerank[0] if body.rerank and target.rerank else None
    if reranker is not None:
        out["rerank"] = {"model": reranker.model_name, "depth": target.rerank[1]}
    return out


def _filtered_search(target: ServedIndex, body: SearchBody, deadline: float) -> dict:
    """One filtered search on the index served now, as `_search` answers; run in a thread (evaluating a filter
    reads every document), its filter stopped at `deadline` (time.monotonic())."""
    retriever = target.retriever
    try:
        allowed = retriever.where(body.filter, act=body.act, jurisdiction=body.jurisdiction, as_of=body.as_of,
                                  deadline=deadline)
    except ValueError as e:
        raise HTTPException(400, f"index {target.name!r}: {e}") from None
    stage = target.rerank if body.rerank else None
    t = time.perf_counter()
    hits = retriever.search(body.q, k=body.k, mode=body.mode, rerank=stage, allowed=allowed)
    reranker, depth = stage or (None, 0)
    out = results_json(body.q, body.mode, retriever.legs, hits, time.perf_counter() - t, as_of=body.as_of,
                       warnings=allowed.warnings)
    if reranker is not None:
        out["rerank"] = {"model": reranker.model_name, "depth": depth}
    return out


def _admin_routes(app: FastAPI, reloader: Reloader, metrics: Metrics) -> None:
    """POST /api/admin/reload (loopback clients only) and GET /metrics."""

    @app.post("/api/admin/reload")
    async def reload(request: Request) -> dict:
        """Load each index folder's new generation, verify it and switch to it; a refused one keeps the old."""
        if not is_loopback(request.client.host if request.client else ""):
            raise HTTPException(403, "reload is allowed from this machine only")
        return {"indexes": await run_in_threadpool(reloader.reload)}

    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus() -> PlainTextResponse:
        """Requests by status, latency and batch size histograms, batch seconds, queue depth, index generation."""
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")


def _queue_lines(served: Mapping[str, ServedIndex]) -> list[str]:
    return ["# HELP retrieval_queue_depth Searches admitted and not yet answered, per index.",
            "# TYPE retrieval_queue_depth gauge",
            *(f'retrieval_queue_depth{{index="{escape_label(s.name)}"}} {s.queued()}' for s in served.values())]


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or 'localhost'; TestClient says 'testclient') is this machine."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost", "testclient")


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """Parameter errors are 400 with a readable message (FastAPI's default is 422 with a list)."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return JSONResponse({"detail": "invalid parameter " + "; ".join(parts)}, status_code=400)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A failure inside a search is a 500 with a JSON message; the traceback goes to the log."""
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": f"internal error ({type(exc).__name__})"}, status_code=500,
                        headers=SECURITY_HEADERS)

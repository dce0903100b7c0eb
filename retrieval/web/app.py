"""The FastAPI app: a REST API over one or more loaded indexes, and the search page at `/`.

Searches on one index run one at a time, under that index's lock: the encoder is not safe
for concurrent calls, and on a CPU a second encode at once would only share the same cores.
Document look-ups read the index's document table and take no lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..rerank import Reranker
from ..retriever import HybridRetriever, check_query, results_json

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
MAX_QUERY_CHARS = 20_000
MAX_K = 100
PAGE_HEADERS = {  # the page loads only its own files: statute text can never bring in a script
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


@dataclass
class ServedIndex:
    """One loaded index under its name, with the lock that keeps its searches one at a time."""

    name: str
    retriever: HybridRetriever
    lock: threading.Lock = field(default_factory=threading.Lock)
    rerank: tuple[Reranker, int] | None = None  # (reranker, depth) applied unless a request says rerank=false

    def modes(self) -> list[str]:
        """The modes worth offering: each leg, and hybrid when there are two legs."""
        legs = list(self.retriever.legs)
        return ["hybrid", *legs] if len(legs) > 1 else legs

    def summary(self) -> dict:
        """What /api/health says about this index."""
        info = self.retriever.info
        return {"name": self.name, "documents": len(self.retriever), "legs": list(self.retriever.legs),
                "modes": self.modes(), "model": info.get("dense", {}).get("model"),
                "language": info.get("bm25", {}).get("analysis", {}).get("language"),
                **({"rerank": {"model": self.rerank[0].model_name, "depth": self.rerank[1]}} if self.rerank else {})}


def create_app(retrievers: Mapping[str, HybridRetriever],
               rerankers: Mapping[str, tuple[Reranker, int]] | None = None) -> FastAPI:
    """The app serving `retrievers` by name; the first one answers requests that name no index. `rerankers`:
    per index name, the (reranker, depth) that reorders its results."""
    if not retrievers:
        raise ValueError("no index to serve")
    rerankers = rerankers or {}
    served = {name: ServedIndex(name, r, rerank=rerankers.get(name)) for name, r in retrievers.items()}
    default = next(iter(served))
    app = FastAPI(title="Statute retrieval", version=__version__, docs_url=None, redoc_url=None,  # both need a CDN
                  description="Hybrid (dense + BM25, fused by RRF) search over statutes. "
                              "Errors are JSON: {\"detail\": message}.")
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _internal_error)

    def pick(index: str | None) -> ServedIndex:
        name = default if index is None else index
        if name not in served:
            raise HTTPException(404, f"unknown index {name!r} (serving: {', '.join(served)})")
        return served[name]

    @app.get("/api/health")
    def health() -> dict:
        """Liveness, and each served index: name, document count, legs, modes, model, language (and reranker)."""
        return {"status": "ok", "version": __version__, "indexes": [s.summary() for s in served.values()]}

    @app.get("/api/search")
    def search(q: str = Query("", description=f"query text, at most {MAX_QUERY_CHARS:,} characters"),
               mode: str = Query("hybrid", description="hybrid (all legs fused) or one leg of the index: dense, bm25"),
               k: int = Query(10, ge=1, le=MAX_K, description="number of hits"),
               index: str | None = Query(None, description="index name (default: the first served)"),
               rerank: bool = Query(True, description="rerank with the index's reranker, if it has one "
                                                      "(false: the first stage alone, to compare)"),
               act: str | None = Query(None, description="only documents of this act"),
               jurisdiction: str | None = Query(None, description="only documents of this jurisdiction"),
               as_of: str | None = Query(None, description="only documents in force on this date (YYYY-MM-DD)"),
               filter: str | None = Query(None, description="filter expression (retrieval/filters.py), e.g. "
                                                            "act in (IPC, CrPC) and section = 302")) -> dict:
        """Top-k hits, as `retrieval query --json` prints them: {query, mode, hits, seconds}."""
        target = pick(index)
        if len(q) > MAX_QUERY_CHARS:
            raise HTTPException(413, f"query is {len(q):,} characters; the limit is {MAX_QUERY_CHARS:,}")
        if not q.strip():
            raise HTTPException(400, "empty query: pass the query text as q")
        legs = target.retriever.legs
        try:
            check_query(q)
            target.retriever.legs_for(mode)
            allowed = target.retriever.where(filter, act=act, jurisdiction=jurisdiction, as_of=as_of) \
                if act or jurisdiction or as_of or filter else None
        except ValueError as e:
            raise HTTPException(400, f"index {target.name!r}: {e}") from None
        reranker, depth = target.rerank if rerank and target.rerank else (None, 0)
        with target.lock:
            t = time.perf_counter()
            hits = target.retriever.search(q, k=k, mode=mode, rerank=reranker, rerank_depth=depth, allowed=allowed)
            took = time.perf_counter() - t
        out = results_json(q, mode, legs, hits, took)
        if reranker is not None:
            out["rerank"] = {"model": reranker.model_name, "depth": depth}
        return out

    @app.get("/api/documents/{doc_id:path}")
    def document(doc_id: str, index: str | None = Query(None, description="index name (default: the first served)")
                 ) -> dict:
        """One statute's id, title and full text."""
        target = pick(index)
        try:
            return target.retriever.document(doc_id)
        except KeyError:
            raise HTTPException(404, f"unknown document {doc_id!r} in index {target.name!r}") from None

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        """The search page, under a content security policy that allows only its own files."""
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


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
    return JSONResponse({"detail": f"internal error ({type(exc).__name__})"}, status_code=500)

"""Running the app with uvicorn: in the foreground for `retrieval serve`, or from a thread for tests."""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from ..rerank import Reranker, RerankStage
from ..retriever import HybridRetriever
from .app import DEFAULT_TIMEOUT_S, create_app, is_loopback
from .batching import BatchConfig
from .connections import KEEP_ALIVE_S, GuardedH11Protocol, connection_limit, quiet_repeats
from .edge import HostCheck, host_names

# h11 may refuse a request head over this size (with a plain 400). 256 KiB lets a 20,000-character
# query through even when every character is CJK (9 bytes percent-encoded): the app answers it (or 413).
MAX_REQUEST_HEAD = 256 * 1024


def load_indexes(paths: Sequence[str | Path], device: str | None = None,
                 dense_backend: str = "auto") -> dict[str, HybridRetriever]:
    """Each index folder loaded (checksums verified), named by its folder name; names must differ."""
    names = [Path(path).resolve().name for path in paths]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"index folders share a name ({', '.join(twice)}); the API names indexes by folder name")
    return {name: HybridRetriever.load(path, device=device, dense_backend=dense_backend)
            for name, path in zip(names, paths)}


def serve(paths: Sequence[str | Path], host: str = "127.0.0.1", port: int = 8000, device: str | None = None,
          dense_backend: str = "auto", rerank: tuple[Reranker, int] | None = None, rerank_off: bool = False,
          batch: BatchConfig = BatchConfig(), timeout_s: float = DEFAULT_TIMEOUT_S, watch_s: float | None = None) -> None:
    """Load the indexes and serve the page and API on host:port until SIGINT/SIGTERM (requests in flight finish).
    `rerank` (reranker, depth) reorders every index's results; else each index's own named reranker does, unless
    `rerank_off`. SIGHUP, POST /api/admin/reload, or `watch_s` (poll seconds) reload a new generation."""
    retrievers = load_indexes(paths, device, dense_backend)
    rerankers = {} if rerank_off else index_rerankers(retrievers, rerank, device)
    for name, retriever in retrievers.items():
        retriever.search("warm up", k=1, rerank=rerankers.get(name))  # the first call loads kernels
    if not is_loopback(host):
        print(f"warning: listening on {host}: anyone who can reach it can query (there is no login)", file=sys.stderr)
    folders = {name: Path(path) for name, path in zip(retrievers, paths)}
    app = create_app(retrievers, rerankers, folders=folders, batch=batch, timeout_s=timeout_s,
                     load=lambda path: HybridRetriever.load(path, device=device, dense_backend=dense_backend))
    _log_to_stderr()
    signal.signal(signal.SIGHUP, lambda *_: app.state.reloader.in_background())
    stop = threading.Event()
    if watch_s:
        app.state.reloader.watch(watch_s, stop)
    print(f"serving {', '.join(retrievers)} at http://{host}:{port}/ (OpenAPI schema at /openapi.json)", file=sys.stderr)
    # uvicorn finishes the requests in flight on SIGTERM, then raises it again: exit 0 then, not -15
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        uvicorn.Server(_config(app, host, port, access_log=False)).run()
    finally:
        stop.set()


def _log_to_stderr() -> None:
    """Access-log JSON lines and reload messages on stderr, one per line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("retrieval.access", "retrieval.web"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        logger.propagate = False


def index_rerankers(retrievers: Mapping[str, HybridRetriever], rerank: tuple[Reranker, int] | None,
                    device: str | None = None) -> dict[str, RerankStage]:
    """Per index: the given (reranker, depth), else the reranker the index names; indexes with neither are left out."""
    from ..rerank import from_index

    if rerank is not None:
        return {name: RerankStage(*rerank) for name in retrievers}
    return {name: from_index(r.info["rerank"], device) for name, r in retrievers.items() if r.info.get("rerank")}


@contextmanager
def background(app: FastAPI, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `app` from a thread on a free port of `host`; yields the base URL, stops on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(_config(app, host, port, log_level="warning", log_config=None))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="uvicorn")
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the background server stopped while starting")
            time.sleep(0.02)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _config(app: FastAPI, host: str, port: int, **options) -> uvicorn.Config:
    """uvicorn's settings: h11 with a request-read deadline, bounded heads and connections, Host checked."""
    config = uvicorn.Config(HostCheck(app, host_names(host)), host=host, port=port, http=GuardedH11Protocol,
                            h11_max_incomplete_event_size=MAX_REQUEST_HEAD, timeout_keep_alive=KEEP_ALIVE_S,
                            limit_concurrency=connection_limit(), **options)
    quiet_repeats()  # after uvicorn configured its loggers
    return config

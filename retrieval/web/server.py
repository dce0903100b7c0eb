"""Running the app with uvicorn: in the foreground for `retrieval serve`, or from a thread for tests."""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from ..rerank import Reranker
from ..retriever import HybridRetriever
from .app import create_app

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
          dense_backend: str = "auto", rerank: tuple[Reranker, int] | None = None, rerank_off: bool = False) -> None:
    """Load the indexes and serve the page and API on host:port until interrupted. `rerank` (reranker, depth)
    reorders every index's results; else each index's own named reranker does, unless `rerank_off`."""
    retrievers = load_indexes(paths, device, dense_backend)
    rerankers = {} if rerank_off else index_rerankers(retrievers, rerank, device)
    for name, retriever in retrievers.items():
        reranker, depth = rerankers.get(name, (None, 1))
        retriever.search("warm up", k=1, rerank=reranker, rerank_depth=depth)  # the first call loads kernels
    if not _is_loopback(host):
        print(f"warning: listening on {host}: anyone who can reach it can query (there is no login)", file=sys.stderr)
    print(f"serving {', '.join(retrievers)} at http://{host}:{port}/ (OpenAPI schema at /openapi.json)", file=sys.stderr)
    uvicorn.Server(_config(create_app(retrievers, rerankers), host, port)).run()


def index_rerankers(retrievers: Mapping[str, HybridRetriever], rerank: tuple[Reranker, int] | None,
                    device: str | None = None) -> dict[str, tuple[Reranker, int]]:
    """Per index: the given (reranker, depth), else the reranker the index names; indexes with neither are left out."""
    from ..rerank import from_index

    if rerank is not None:
        return {name: rerank for name in retrievers}
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
    return uvicorn.Config(app, host=host, port=port, http="h11", h11_max_incomplete_event_size=MAX_REQUEST_HEAD,
                          **options)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"

"""The Milvus backend: an index whose vectors and BM25 weights live in a Milvus collection.

The legs are built as usual (encoder, analysis, BM25 weights), then *published* into one collection
(collection.py): one row per dense passage row (or per statute without a dense leg), with the
statute's row, its filter fields, its vector, and either the project's BM25 weights as a sparse
vector (`bm25="client"`, rankings equal the embedded leg's) or its text under Milvus's own BM25
function (`bm25="server"`). The legs then search through the collection (stores/milvus.py,
milvus/bm25.py); the index folder keeps the manifest, the document table and a pointer to the
collection, never a password. A URI that is a local path ending in `.db` is Milvus Lite (embedded);
`http(s)://host:port` is a server or cluster, with a token from `--token` or $MILVUS_TOKEN. The rows are
inserted in blocks (rows.py: the dense vectors streamed from --ray's shards when there are), or, on a server with
`--bulk-insert`, written as bulk-writer files into its object store and imported (bulk.py).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BM25_MODES = ("client", "server")
TOKEN_ENV = "MILVUS_TOKEN"
_CLIENTS: dict[str, Any] = {}


class MilvusSetupError(ValueError):
    """A Milvus URI or setting that cannot work, or the client packages missing; the message says what to do."""


@dataclass(frozen=True)
class MilvusTarget:
    """Where and how to publish an index: URI, collection base name, BM25 mode; the token is never saved."""

    uri: str
    collection: str | None = None  # base name; each build/update writes `<base>_<stamp>`
    bm25: str = "client"
    token: str | None = field(default=None, repr=False)
    bulk: str | None = None  # a server's object store to bulk-import from (bulk.py), instead of inserts

    def __post_init__(self):
        if self.bulk is not None:
            from .bulk import ObjectStore, bulk_writer

            if is_lite(self.uri):
                raise MilvusSetupError(f"--bulk-insert: {self.uri} is Milvus Lite, which has no bulk import; "
                                       "leave it out")
            ObjectStore.parse(self.bulk)  # a malformed URL, or the writer missing, stops before any encoding
            bulk_writer()
        if self.bm25 not in BM25_MODES:
            raise MilvusSetupError(f"--bm25 must be one of {', '.join(BM25_MODES)}, got {self.bm25!r}")
        if self.collection is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", self.collection):
            raise MilvusSetupError(f"--collection {self.collection!r}: use letters, digits and '_', "
                                   "starting with a letter or '_'")
        object.__setattr__(self, "uri", normalise_uri(self.uri))

    def new_name(self) -> str:
        """A fresh collection name for one build or update: the base name, a time stamp and 4 random hex."""
        return f"{self.collection or 'statutes'}_{time.strftime('%Y%m%d%H%M%S')}{secrets.token_hex(2)}"


def collection_base(name: str) -> str:
    """A valid collection base name made from an index folder's name (letters, digits, '_'; not a digit first)."""
    base = re.sub(r"\W", "_", name, flags=re.ASCII).strip("_")[:200] or "statutes"
    return base if re.match(r"[A-Za-z_]", base) else f"_{base}"


def is_lite(uri: str) -> bool:
    """Whether `uri` names a Milvus Lite file (a local path ending in .db) rather than a server."""
    return not re.match(r"^[a-z]+://", uri) and uri.endswith(".db")


def normalise_uri(uri: str) -> str:
    """A Lite path made absolute (the index may be queried from another folder); server URIs as given."""
    if is_lite(uri):
        return str(Path(uri).expanduser().resolve())
    if not re.match(r"^(https?|tcp|grpc)://", uri):
        raise MilvusSetupError(f"--uri {uri!r}: give a local path ending in .db (Milvus Lite) or "
                               "http(s)://host:port (a Milvus server)")
    return uri


def connect(uri: str, token: str | None = None, create: bool = True):
    """One pymilvus client per URI in this process; a Milvus Lite folder is shared with the process that has it
    open (lite.py). `create` False (loading an index): a Lite folder that is gone is an error, not created."""
    if uri in _CLIENTS:
        return _CLIENTS[uri]
    try:
        from pymilvus import MilvusClient

        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # its errors reach the user as one line instead
    except ImportError:
        raise MilvusSetupError("the Milvus backend needs pymilvus: pip install -e '.[milvus]'") from None
    if is_lite(uri):
        try:
            import milvus_lite  # noqa: F401
        except ImportError:
            raise MilvusSetupError(f"{uri} is a Milvus Lite file, which needs milvus-lite: "
                                   "pip install -e '.[milvus-lite]' (CPU installs; it brings faiss-cpu)") from None
        from .lite import open_lite

        address = open_lite(uri, create)
    else:
        address = uri
    token = token if token is not None else os.environ.get(TOKEN_ENV, "")
    try:
        client = MilvusClient(uri=address, token=token) if token else MilvusClient(uri=address)
    except Exception as e:  # pymilvus raises its own exception types for refused connections
        raise MilvusSetupError(f"cannot connect to Milvus at {uri}: {str(e).splitlines()[0][:200]}") from None
    _CLIENTS[uri] = client
    return client

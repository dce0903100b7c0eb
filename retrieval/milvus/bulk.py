"""A Milvus server's bulk import instead of inserts (`build --backend milvus --uri http://... --bulk-insert URL`).

The collection's rows (their vectors streamed from --ray's shards or the store, rows.py) are written by pymilvus'
bulk writer as Parquet files into the object store the server imports from (its MinIO or S3 bucket:
`--bulk-insert http(s)://HOST:PORT/BUCKET[/PREFIX]`, keys from $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY, never
saved), then one import job of the server's REST API (`bulk_import`) loads them, waited for. Milvus Lite has no bulk
import. What was tested without a server (docs/milvus.md): the files the writer writes hold exactly the rows.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import TOKEN_ENV, MilvusSetupError, MilvusTarget

KEY_ENV, SECRET_ENV = "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"
POLL_SECONDS = 2.0


@dataclass(frozen=True)
class ObjectStore:
    """Where the bulk writer puts its files: an S3 / MinIO endpoint, bucket and folder prefix."""

    endpoint: str  # host:port
    secure: bool
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> ObjectStore:
        """`http(s)://HOST:PORT/BUCKET[/PREFIX]`; anything else is a one-line error."""
        m = re.fullmatch(r"(https?)://([^/\s]+)/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(\S*))?", url)
        if m is None:
            raise MilvusSetupError(f"--bulk-insert {url!r}: give the server's object store as "
                                   "http(s)://HOST:PORT/BUCKET[/PREFIX] (its MinIO or S3 bucket)")
        return cls(m[2], m[1] == "https", m[3], (m[4] or "").strip("/"))


def bulk_writer():
    """pymilvus' bulk writer module; missing (its extra not installed): a one-line MilvusSetupError."""
    try:
        import pymilvus.bulk_writer as module
    except ImportError:
        raise MilvusSetupError("--bulk-insert needs pymilvus' bulk writer: pip install 'pymilvus[bulk-writer]' "
                               "(in this project's milvus extras)") from None
    return module


def write_rows(writer, batches: Iterable[list[dict]]) -> list[list[str]]:
    """Append every entity of `batches` to a bulk writer, commit; the files it wrote, one list per import batch."""
    logging.getLogger("pymilvus.bulk_writer").setLevel(logging.WARNING)  # not a line per file it flushes
    for batch in batches:
        for entity in batch:
            writer.append_row(entity)
    writer.commit()
    return [list(files) for files in writer.batch_files]


def local_files(schema, batches: Iterable[list[dict]], folder: str | Path) -> list[list[str]]:
    """The rows as the bulk writer's Parquet files in a local `folder` (what a server import reads, written here)."""
    bw = bulk_writer()
    return write_rows(bw.LocalBulkWriter(schema=schema, local_path=str(folder), file_type=bw.BulkFileType.PARQUET),
                      batches)


def bulk_publish(target: MilvusTarget, name: str, schema, batches: Iterable[list[dict]]) -> None:
    """Write the rows into the server's object store and import them into collection `name`, waiting for the job."""
    bw = bulk_writer()
    store = ObjectStore.parse(target.bulk)
    key, secret = os.environ.get(KEY_ENV), os.environ.get(SECRET_ENV)
    if not key or not secret:
        raise MilvusSetupError(f"--bulk-insert needs the object store's keys in ${KEY_ENV} and ${SECRET_ENV}")
    param = bw.RemoteBulkWriter.S3ConnectParam(endpoint=store.endpoint, access_key=key, secret_key=secret,
                                               bucket_name=store.bucket, secure=store.secure)
    token = target.token if target.token is not None else os.environ.get(TOKEN_ENV, "")
    try:
        writer = bw.RemoteBulkWriter(schema=schema, remote_path=f"{store.prefix}/{name}".strip("/"),
                                     connect_param=param, file_type=bw.BulkFileType.PARQUET)
        files = write_rows(writer, batches)
        job = _data(bw.bulk_import(url=target.uri, collection_name=name, files=files, api_key=token),
                    "starting")["jobId"]
        while True:
            state = _data(bw.get_import_progress(url=target.uri, job_id=job, api_key=token), "following")
            if state.get("state") == "Completed":
                return
            if state.get("state") == "Failed":
                raise MilvusSetupError(f"Milvus bulk import {job} into {name} failed: {state.get('reason', '')[:300]}")
            time.sleep(POLL_SECONDS)
    except MilvusSetupError:
        raise
    except Exception as e:  # noqa: BLE001 - the object store's and the REST client's own errors, as one line
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise MilvusSetupError(f"bulk import into {name} via {target.bulk}: {reason}") from None


def _data(response, doing: str) -> dict:
    """The `data` of a Milvus REST answer; a refused request as a one-line error."""
    body = response.json()
    if body.get("code") != 0:
        raise MilvusSetupError(f"Milvus refused {doing} the bulk import: {str(body.get('message', body))[:300]}")
    return body.get("data") or {}

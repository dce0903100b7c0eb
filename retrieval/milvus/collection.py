"""One index generation in one Milvus collection: its schema, how rows are written, how it is searched.

Rows: one per dense store row (passages, then titles), or one per statute without a dense leg; each
carries `doc` (its statute's row) and the statute's filter fields, so a Milvus filter expression
sees every row of a statute. The BM25 fields sit on each statute's lead row (its first row); other
rows carry a placeholder sparse vector (Milvus refuses empty ones) whose only term no query has.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..corpus import META_FIELDS
from ..dense.stores.faiss import StoreParams
from ..index.format import IndexFileError
from . import MilvusSetupError, MilvusTarget, connect, is_lite

if TYPE_CHECKING:
    from .rows import VectorBlocks

PLACEHOLDER = {4_294_967_294: 1e-30}  # the sparse vector of rows without BM25 weights: no query has term 2^32 - 2
VARCHAR_BYTES = 65_535  # a VARCHAR's limit on a Milvus server
MAX_LIMIT = 16_384  # Milvus's largest top-k
INSERT_BATCH = 1_000
SCALAR_BYTES = 1_024
VECTOR, BM25, TEXT, TEXT_BM25 = "vector", "bm25", "text", "text_bm25"


@dataclass
class Columns:
    """What the legs give a collection: per row its statute, and the optional vector and BM25 columns."""

    docs: np.ndarray  # statute row of each row
    vectors: VectorBlocks | None = None  # the dense leg's float32 unit vectors, block by block (rows.py)
    kind: str = "flat"  # dense index kind: flat (exact) or hnsw
    hnsw: tuple[int, int] = (StoreParams.hnsw_m, StoreParams.ef_construction)  # as the FAISS store's
    sparse: list[dict[int, float]] | None = None  # per statute: the project's BM25 weights (bm25 client)
    texts: list[str] | None = None  # per statute: the text Milvus analyses (bm25 server)
    analyzer: dict | None = None  # Milvus analyzer params of the text field
    k1_b: tuple[float, float] = (1.5, 0.75)


class MilvusCollection:
    """A handle on one collection: search a field, read rows back, drop it."""

    def __init__(self, uri: str, name: str):
        self.uri, self.name = uri, name
        self.client = connect(uri, create=False)
        with milvus_errors(f"opening collection {name}"):
            if not self.client.has_collection(name):
                raise IndexFileError(f"Milvus at {uri} has no collection {name!r} (dropped, or another server?); "
                                     "rebuild the index")
            self.client.load_collection(name)  # a collection is searchable only once loaded (in this process, on Lite)

    def pointer(self) -> dict:
        """What the index folder records: where the collection is (no token)."""
        return {"uri": self.uri, "collection": self.name}

    def search(self, field: str, data: list, limit: int, expr: str | None = None, params: dict | None = None
               ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per query: (rows, statute rows, scores) best first; `expr` a Milvus filter. BM25 scores are made
        positive (Milvus Lite reports them negated)."""
        if not data:
            return []
        limit = max(1, min(limit, MAX_LIMIT))
        with milvus_errors(f"searching {self.name}"):
            found = self.client.search(self.name, data=data, anns_field=field, limit=limit, filter=expr or "",
                                       output_fields=["doc"], search_params=params or {})
        out = []
        for hits in found:
            rows = np.fromiter((h["row"] for h in hits), dtype=np.int64, count=len(hits))
            docs = np.fromiter((h["entity"]["doc"] for h in hits), dtype=np.int64, count=len(hits))
            scores = np.fromiter((h["distance"] for h in hits), dtype=np.float32, count=len(hits))
            out.append((rows, docs, np.abs(scores) if field == TEXT_BM25 else scores))
        return out

    def read(self, rows: np.ndarray, field: str) -> list:
        """`field` of each of `rows`, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        got: dict[int, object] = {}
        for start in range(0, len(rows), MAX_LIMIT // 2):
            part = rows[start:start + MAX_LIMIT // 2]
            with milvus_errors(f"reading {self.name}"):
                found = self.client.query(self.name, filter=f"row in {part.tolist()}", output_fields=[field],
                                          limit=len(part))
            got.update((int(r["row"]), r[field]) for r in found)
        missing = [int(r) for r in rows if int(r) not in got]
        if missing:
            raise KeyError(f"rows not in Milvus collection {self.name}: {missing[:5]}")
        return [got[int(r)] for r in rows]

    def read_where(self, expr: str, field: str, key: str) -> list[tuple]:
        """(`key`, `field`) of every row matching `expr`."""
        with milvus_errors(f"reading {self.name}"):
            return [(r[key], r[field]) for r in self.client.query(self.name, filter=expr, output_fields=[key, field])]

    def drop(self) -> None:
        """Remove the collection (a replaced generation's, or a benchmark's)."""
        if self.client.has_collection(self.name):
            self.client.drop_collection(self.name)


@contextmanager
def milvus_errors(doing: str) -> Iterator[None]:
    """Milvus's own exceptions as a one-line IndexFileError naming what was being done."""
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except MilvusException as e:
        raise IndexFileError(f"Milvus failed {doing}: {str(getattr(e, 'message', e)).splitlines()[0][:300]}") from None


def publish(target: MilvusTarget, name: str, columns: Columns, records: Sequence[dict],
            progress: bool = False) -> MilvusCollection:
    """Create collection `name` for `columns` (statute fields from `records`), write every row (inserts, or the
    server's bulk import with `target.bulk`: bulk.py), index and load."""
    client = connect(target.uri, target.token)
    if client.has_collection(name):
        raise MilvusSetupError(f"Milvus collection {name!r} already exists at {target.uri}")
    # Strong consistency: a search right after this build sees every row (a server's default, Bounded, may not)
    client.create_collection(name, schema=schema(columns), index_params=_indexes(client, columns, target.uri),
                             consistency_level="Strong")
    try:
        if target.bulk:
            from .bulk import bulk_publish

            bulk_publish(target, name, schema(columns), entities(columns, records))
        else:
            _insert(client, name, entities(columns, records), len(columns.docs), progress)
        client.flush(name)  # data reaches a segment (and BM25 statistics) only on flush
        client.load_collection(name)
        _check_index_params(client, name, columns)
    except BaseException:
        client.drop_collection(name)  # a failed publish leaves nothing behind
        raise
    return MilvusCollection(target.uri, name)


def lead_rows(docs: np.ndarray, n_docs: int) -> np.ndarray:
    """Each statute's first row (where its BM25 fields live)."""
    present, first = np.unique(docs, return_index=True)
    if len(present) < n_docs:
        missing = np.setdiff1d(np.arange(n_docs), present)
        raise ValueError(f"statute rows without a collection row: {missing[:5].tolist()}")
    return first


def schema(columns: Columns):
    """The collection's schema for `columns` (the bulk writer writes its files to it too)."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    out = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    out.add_field("row", DataType.INT64, is_primary=True)
    out.add_field("doc", DataType.INT64)
    for name in META_FIELDS:
        out.add_field(name, DataType.VARCHAR, max_length=SCALAR_BYTES)
    out.add_field("meta", DataType.JSON)
    if columns.vectors is not None:
        out.add_field(VECTOR, DataType.FLOAT_VECTOR, dim=columns.vectors.dim)
    if columns.sparse is not None:
        out.add_field(BM25, DataType.SPARSE_FLOAT_VECTOR)
    if columns.texts is not None:
        out.add_field(TEXT, DataType.VARCHAR, max_length=VARCHAR_BYTES, enable_analyzer=True,
                         analyzer_params=columns.analyzer)
        out.add_field(TEXT_BM25, DataType.SPARSE_FLOAT_VECTOR)
        out.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=[TEXT],
                                     output_field_names=[TEXT_BM25]))
    return out


def index_params(values: dict, uri: str) -> dict:
    """Index parameters in the form the engine reads: a server reads them as given; Milvus Lite reads only a
    nested "params" map and silently drops the rest (bm25_k1 / bm25_b, M / efConstruction)."""
    return {"params": values} if is_lite(uri) else values


def _indexes(client, columns: Columns, uri: str):
    params = client.prepare_index_params()
    if columns.vectors is not None:
        if columns.kind == "hnsw":
            m, ef = columns.hnsw
            params.add_index(VECTOR, index_type="HNSW", metric_type="IP",
                             params=index_params({"M": m, "efConstruction": ef}, uri))
        else:
            params.add_index(VECTOR, index_type="FLAT", metric_type="IP")
    if columns.sparse is not None:
        params.add_index(BM25, index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    if columns.texts is not None:
        k1, b = columns.k1_b
        params.add_index(TEXT_BM25, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                         params=index_params({"bm25_k1": k1, "bm25_b": b}, uri))
    return params


def _check_index_params(client, name: str, columns: Columns) -> None:
    """Refuse a collection whose engine dropped the BM25 k1/b we asked for (they would silently differ)."""
    if columns.texts is None:
        return
    got = client.describe_index(name, TEXT_BM25)
    have = {**got, **(got.get("params") or {})}
    want = dict(zip(("bm25_k1", "bm25_b"), columns.k1_b))
    if any(k not in have or abs(float(have[k]) - v) > 1e-9 for k, v in want.items()):
        raise MilvusSetupError(f"Milvus ignored the BM25 parameters {want} (index says {got}); "
                               "its index-parameter form differs from this client's")


def entities(columns: Columns, records: Sequence[dict]) -> Iterator[list[dict]]:
    """The collection's rows as Milvus entities, at most INSERT_BATCH a list, one vector block in memory at a time
    (rows.py); the BM25 fields on each statute's lead row."""
    docs = np.asarray(columns.docs, dtype=np.int64)
    lead = np.zeros(len(docs), dtype=bool)
    lead[lead_rows(docs, len(records))] = True
    scalars = [_scalars(r) for r in records]
    blocks = columns.vectors if columns.vectors is not None else (
        (np.arange(start, min(start + INSERT_BATCH, len(docs))), None) for start in range(0, len(docs), INSERT_BATCH))
    for rows, vectors in blocks:
        for start in range(0, len(rows), INSERT_BATCH):
            batch = []
            for j in range(start, min(start + INSERT_BATCH, len(rows))):
                row = int(rows[j])
                d = int(docs[row])
                item = {"row": row, "doc": d, **scalars[d]}
                if vectors is not None:
                    item[VECTOR] = vectors[j]
                if columns.sparse is not None:
                    item[BM25] = columns.sparse[d] if lead[row] and columns.sparse[d] else PLACEHOLDER
                if columns.texts is not None:
                    item[TEXT] = columns.texts[d] if lead[row] else ""
                batch.append(item)
            yield batch


def _insert(client, name: str, batches: Iterator[list[dict]], total: int, progress: bool) -> None:
    bar = None
    if progress and total >= 2 * INSERT_BATCH:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="Milvus rows", unit="row")
    for batch in batches:
        client.insert(name, batch)
        if bar:
            bar.update(len(batch))
    if bar:
        bar.close()


def _scalars(record: dict) -> dict:
    """A statute's filter fields as Milvus columns: text fields ('' when absent) and `meta` as JSON."""
    out = {}
    for name in META_FIELDS:
        value = "" if record.get(name) is None else str(record[name])
        if len(value.encode("utf-8")) > SCALAR_BYTES:
            raise ValueError(f"document {record.get('id')!r}: field {name!r} is longer than {SCALAR_BYTES} bytes")
        out[name] = value
    out["meta"] = json.loads(json.dumps(record.get("meta") or {}))
    return out


def fit_varchar(text: str) -> tuple[str, bool]:
    """`text` cut at a character boundary to a server VARCHAR's 65,535 UTF-8 bytes; and whether it was cut."""
    raw = text.encode("utf-8")
    if len(raw) <= VARCHAR_BYTES:
        return text, False
    return raw[:VARCHAR_BYTES].decode("utf-8", errors="ignore"), True

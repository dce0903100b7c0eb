"""Publishing a Milvus collection from --ray's shards: the vectors streamed one shard at a time (Milvus Lite), equal to
an in-memory publish's; the bulk writer's files written from shards hold exactly their rows; --bulk-insert's bad
settings are one-line errors. No Milvus server is reached here: the server's import job itself is not run."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="the Milvus backend's client (extra 'milvus') is not installed")
pytest.importorskip("milvus_lite", reason="Milvus Lite (extra 'milvus-lite', CPU installs) is not installed")

from retrieval.cli import main  # noqa: E402
from retrieval.corpus import Document  # noqa: E402
from retrieval.dense import ray_encode  # noqa: E402
from retrieval.dense.chunking import ChunkSettings  # noqa: E402
from retrieval.dense.embedcache import EmbeddingCache  # noqa: E402
from retrieval.dense.encoders import Encoder, EncoderConfig, make_encoder  # noqa: E402
from retrieval.dense.shards import Shards  # noqa: E402
from retrieval.dense.stores.faiss import FaissStore  # noqa: E402
from retrieval.milvus import MilvusSetupError, MilvusTarget, bulk  # noqa: E402
from retrieval.milvus.backend import MilvusBackend  # noqa: E402
from retrieval.milvus.bulk import bulk_publish, local_files  # noqa: E402
from retrieval.milvus.collection import BM25, PLACEHOLDER, VECTOR, Columns, entities, schema  # noqa: E402
from retrieval.milvus.rows import BLOCK_ROWS, VectorBlocks  # noqa: E402
from retrieval.retriever import HybridRetriever  # noqa: E402

WORDS = ["theft", "murder", "cheating", "trespass", "dowry", "forgery", "bribery", "defamation", "property", "night"]
QUERIES = ["theft of property at night", "murder with intent", "cheating and forgery", "dowry death", "bribery"]
CHUNKING = ChunkSettings(documents=True, window=12, overlap=2, title_weight=0.3)  # passages and title rows


def _docs(n: int = 30) -> list[Document]:
    return [Document(f"S{i}", f"Offence {i} of {WORDS[(i * 3) % 10]}" if i % 4 else "",
                     " ".join(f"whoever commits {WORDS[(i + j) % 10]} of {WORDS[(i * j) % 10]} under rule {i}.{j} "
                              "is punished" for j in range(1 + i % 4)), act="IPC" if i % 2 else "EA") for i in range(n)]


def _unrouted(encoder: Encoder) -> Encoder:
    """The same loaded model without a routing left by an earlier test."""
    encoder.__dict__.pop("encode_documents", None)
    encoder.shards = None
    return encoder


class _CountingStore:
    """A store that records which rows were read from it."""

    def __init__(self, vectors: np.ndarray):
        self.store, self.read = FaissStore.build(vectors, "flat"), []
        self.dim = self.store.dim

    def __len__(self) -> int:
        return len(self.store)

    def get(self, rows: np.ndarray) -> np.ndarray:
        self.read.append(np.asarray(rows).copy())
        return self.store.get(rows)


def test_a_milvus_build_with_ray_publishes_from_the_shards_and_ranks_as_the_in_memory_publish(
        small_batches, local_ray, tmp_path):
    docs = _docs()
    plain = HybridRetriever.build(docs, encoder=_unrouted(small_batches), chunking=CHUNKING, progress=False,
                                  backend=MilvusBackend(MilvusTarget(str(tmp_path / "a.db"), "plain")))
    routed = make_encoder(EncoderConfig(device="cpu", batch_size=4), route=lambda e: ray_encode.attach(e, None, tmp_path / "ix.shards"))
    sharded = HybridRetriever.build(docs, encoder=routed, chunking=CHUNKING, progress=False,
                                    backend=MilvusBackend(MilvusTarget(str(tmp_path / "b.db"), "sharded")))
    rows = len(plain.leg["dense"].engine)
    assert len(list(Shards(tmp_path / "ix.shards", routed.shards.cache).blocks())) > 1
    assert sharded.info["build"]["milvus_rows_from_shards"] == rows  # every row's vector came from a shard file
    assert "milvus_rows_from_shards" not in plain.info["build"]
    every = np.arange(rows)
    assert np.allclose(sharded.leg["dense"].engine.get(every), plain.leg["dense"].engine.get(every), atol=1e-6)
    for mode in ("dense", "hybrid"):
        for q in QUERIES:
            assert ([h.id for h in sharded.search(q, k=10, mode=mode)]
                    == [h.id for h in plain.search(q, k=10, mode=mode)]), (mode, q)


def test_an_update_with_ray_publishes_the_new_texts_from_their_shards(small_batches, local_ray, tmp_path, monkeypatch):
    docs = _docs()
    milvus = MilvusBackend(MilvusTarget(str(tmp_path / "u.db"), "u"))
    HybridRetriever.build(docs[:20], encoder=_unrouted(small_batches), chunking=CHUNKING, progress=False,
                          backend=milvus).save(tmp_path / "ix")
    loaded = HybridRetriever.load(tmp_path / "ix")
    before = len(loaded.leg["dense"].engine)
    ray_encode.attach(loaded.leg["dense"].encoder, None, tmp_path / "ix.shards")
    from_shards, real = [], VectorBlocks.__iter__

    def counted(self):
        yield from real(self)
        from_shards.append(self.from_shards)

    monkeypatch.setattr(VectorBlocks, "__iter__", counted)
    loaded.add(docs[20:])
    assert from_shards == [len(loaded.leg["dense"].engine) - before]  # the new rows' vectors came from the shards
    plain = HybridRetriever.build(docs, encoder=_unrouted(small_batches), chunking=CHUNKING, progress=False,
                                  backend=MilvusBackend(MilvusTarget(str(tmp_path / "p.db"), "p")))
    for q in QUERIES:
        assert [h.id for h in loaded.search(q, k=10)] == [h.id for h in plain.search(q, k=10)], q


def test_vector_blocks_take_each_row_once_from_its_shard_then_the_rest_from_the_store(tmp_path):
    rng = np.random.default_rng(0)
    stored = rng.standard_normal((2 * BLOCK_ROWS + 10, 8)).astype(np.float32)
    texts = [f"text {i % (BLOCK_ROWS + 7)}" for i in range(len(stored))]  # repeated texts: one shard key, two rows
    cache = EmbeddingCache("0" * 64, "", 128)
    shards = Shards(tmp_path, cache)
    sharded = list(dict.fromkeys(texts))[:900]
    shard_vectors = {t: rng.standard_normal(8).astype(np.float32) for t in sharded}
    for part in (sharded[:400], sharded[400:]):
        shards.write([cache.key(t) for t in part], np.stack([shard_vectors[t] for t in part]))
    store = _CountingStore(stored)
    blocks = VectorBlocks(store, shards, [cache.key(t) for t in texts])
    seen = np.zeros(len(stored), dtype=int)
    for rows, vectors in blocks:
        assert len(rows) <= max(BLOCK_ROWS, 2 * 500)  # one shard (its texts' rows) or one store block at a time
        seen[rows] += 1
        for row, vector in zip(rows, vectors):
            want = shard_vectors[texts[row]] if texts[row] in shard_vectors else stored[row]
            assert np.array_equal(vector, want)
    assert (seen == 1).all()
    from_shards = sum(t in shard_vectors for t in texts)
    assert blocks.from_shards == from_shards
    assert sum(len(r) for r in store.read) == len(stored) - from_shards  # the store is read only for the rest


@pytest.mark.parametrize("bm25", ["client", "server"])
def test_the_bulk_writer_files_written_from_shards_hold_exactly_their_rows(bm25, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(1)
    docs = np.array([0, 0, 1, 2, 2, 2, 3, 4])
    texts = [f"passage {i}" for i in range(len(docs))]
    cache = EmbeddingCache("1" * 64, "", 128)
    shards = Shards(tmp_path / "shards", cache)
    vectors = rng.standard_normal((len(docs), 6)).astype(np.float32)
    shards.write([cache.key(t) for t in texts[:5]], vectors[:5])
    shards.write([cache.key(t) for t in texts[5:]], vectors[5:])
    store = FaissStore.build(np.zeros_like(vectors), "flat")  # the shards, not the store, must give the vectors
    columns = Columns(docs=docs, vectors=VectorBlocks(store, shards, [cache.key(t) for t in texts]))
    if bm25 == "client":
        columns.sparse = [{3: 0.5}, {}, {7: 1.25}, {1: 0.1, 2: 0.2}, {9: 2.0}]
    else:
        columns.texts, columns.analyzer = [f"statute {d}" for d in range(5)], {"tokenizer": "standard"}
    records = [{"id": f"S{d}", "act": "IPC"} for d in range(5)]
    files = local_files(schema(columns), entities(columns, records), tmp_path / "bulk")
    got = [r for batch in files for f in batch for r in pq.read_table(f).to_pylist()]
    assert sorted(r["row"] for r in got) == list(range(len(docs)))
    for r in got:
        assert r["doc"] == docs[r["row"]] and r["act"] == "IPC"
        assert np.array_equal(np.asarray(r[VECTOR], dtype=np.float32), vectors[r["row"]])
        lead = r["row"] == int(np.flatnonzero(docs == r["doc"])[0])
        if bm25 == "client":
            want = columns.sparse[r["doc"]] if lead and columns.sparse[r["doc"]] else PLACEHOLDER
            assert {int(k): v for k, v in json.loads(r[BM25]).items()} == pytest.approx(want)
        else:
            assert r["text"] == (columns.texts[r["doc"]] if lead else "") and "text_bm25" not in r


def test_bulk_insert_settings_that_cannot_work_are_one_line_errors(monkeypatch, tmp_path, capsys):
    with pytest.raises(MilvusSetupError, match="Milvus Lite, which has no bulk import"):
        MilvusTarget(str(tmp_path / "m.db"), "t", bulk="http://127.0.0.1:9000/a-bucket")
    with pytest.raises(MilvusSetupError, match="HOST:PORT/BUCKET"):
        MilvusTarget("http://127.0.0.1:19530", "t", bulk="s3 bucket")
    target = MilvusTarget("http://127.0.0.1:19530", "t", bulk="http://127.0.0.1:9000/a-bucket/imports")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    with pytest.raises(MilvusSetupError, match="AWS_ACCESS_KEY_ID"):
        bulk_publish(target, "t_1", None, [])
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "S1.txt").write_text("Title: Theft\nWhoever commits theft shall be punished.", encoding="utf-8")
    for extra in ([], ["--backend", "milvus", "--uri", str(tmp_path / "m.db")]):
        assert main(["build", str(corpus), "--out", str(tmp_path / "ix"), *extra,
                     "--bulk-insert", "http://127.0.0.1:9000/a-bucket"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("--bulk-insert go with --backend milvus" in err if not extra
                                          else "no bulk import" in err)


class _Answer:
    def __init__(self, body: dict):
        self.body = body

    def json(self) -> dict:
        return self.body


@pytest.mark.parametrize("outcome", ["Completed", "Failed"])
def test_bulk_publish_imports_the_files_it_wrote_and_waits_for_the_job(outcome, monkeypatch, tmp_path):
    """The server side is stood in for (no Milvus server here): the writer writes locally, the REST calls answer."""
    from pymilvus.bulk_writer import BulkFileType, LocalBulkWriter

    calls = {"files": None, "polls": 0}

    class Remote(LocalBulkWriter):
        S3ConnectParam = staticmethod(lambda **kw: kw)

        def __init__(self, schema, remote_path, connect_param, file_type):
            calls["param"], calls["path"] = connect_param, remote_path
            (tmp_path / remote_path).parent.mkdir(parents=True, exist_ok=True)
            super().__init__(schema=schema, local_path=str(tmp_path / remote_path), file_type=file_type)

    def bulk_import(url, collection_name, files, api_key):
        calls.update(files=files, url=url, collection=collection_name, token=api_key)
        return _Answer({"code": 0, "data": {"jobId": "job-1"}})

    def get_import_progress(url, job_id, api_key):
        calls["polls"] += 1
        state = "Importing" if calls["polls"] < 2 else outcome
        return _Answer({"code": 0, "data": {"state": state, "reason": "bad file" if state == "Failed" else ""}})

    fake = type("BulkWriter", (), {"RemoteBulkWriter": Remote, "BulkFileType": BulkFileType,
                                   "bulk_import": staticmethod(bulk_import),
                                   "get_import_progress": staticmethod(get_import_progress)})
    monkeypatch.setattr(bulk, "bulk_writer", lambda: fake)
    monkeypatch.setattr(bulk, "POLL_SECONDS", 0)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    store = FaissStore.build(np.eye(4, dtype=np.float32), "flat")
    columns = Columns(docs=np.arange(4), vectors=VectorBlocks(store), sparse=[{1: 1.0}] * 4)
    target = MilvusTarget("http://127.0.0.1:19530", "t", token="root:Milvus",
                          bulk="https://minio.local:9000/milvus-bucket/imports")
    run = lambda: bulk_publish(target, "t_1", schema(columns), entities(columns, [{"id": f"S{i}"} for i in range(4)]))  # noqa: E731
    if outcome == "Failed":
        with pytest.raises(MilvusSetupError, match="job-1 into t_1 failed: bad file"):
            run()
    else:
        run()
    assert calls["param"] == {"endpoint": "minio.local:9000", "access_key": "key", "secret_key": "secret",
                              "bucket_name": "milvus-bucket", "secure": True}
    assert calls["path"] == "imports/t_1" and calls["collection"] == "t_1" and calls["token"] == "root:Milvus"
    written = sorted(str(p) for p in (tmp_path / "imports" / "t_1").rglob("*.parquet"))
    assert sorted(f for batch in calls["files"] for f in batch) == written and written
    assert calls["polls"] == 2

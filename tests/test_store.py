import json

import pytest

from retrieval.index.format import (
    MMAP_MIN_BYTES,
    IndexFileError,
    IndexTargetError,
    data_dir,
    prefers_mmap,
    read_manifest,
    write_index,
)
from retrieval.retriever import HybridRetriever


def current(path):
    """The folder of an index's current generation."""
    return data_dir(path, read_manifest(path, verify=False))


def test_manifest_lists_checksums_and_no_pickles(tiny_index):
    m = read_manifest(tiny_index)
    assert m["documents"] == 5 and m["legs"] == ["dense", "bm25"]
    assert set(m["files"]) >= {"documents.jsonl", "dense/index.faiss", "bm25/vocab.index.json"}
    assert all(len(f["sha256"]) == 64 for f in m["files"].values())
    assert m["dense"]["weights_sha256"] and m["dense"]["normalized"] is True
    assert m["bm25"]["engine"] == "bm25s" and m["bm25"]["params"]["method"] == "lucene"
    assert not [p for p in tiny_index.rglob("*") if p.suffix in (".pkl", ".pickle")]


@pytest.mark.parametrize("victim", ["documents.jsonl", "dense/index.faiss", "bm25/data.csc.index.npy"])
def test_damaged_file_is_named(tmp_path, tiny_docs, victim):
    path = tmp_path / "ix"
    HybridRetriever.build(tiny_docs, legs=["bm25"] if victim.startswith("bm25") else ["dense", "bm25"],
                          progress=False).save(path)
    f = current(path) / victim
    with open(f, "r+b") as fh:
        fh.truncate(max(1, f.stat().st_size // 2))
    with pytest.raises(IndexFileError, match=victim.split("/")[-1]):
        HybridRetriever.load(path)


def test_flipped_byte_is_caught_by_sha256(tmp_path, tiny_docs):
    path = tmp_path / "ix"
    HybridRetriever.build(tiny_docs, legs=["bm25"], progress=False).save(path)
    f = current(path) / "documents.jsonl"
    data = bytearray(f.read_bytes())
    data[5] ^= 1
    f.write_bytes(bytes(data))
    with pytest.raises(IndexFileError, match="documents.jsonl: damaged .sha256"):
        read_manifest(path)


def test_failed_build_keeps_previous_index(tmp_path, tiny_docs):
    path = tmp_path / "ix"
    HybridRetriever.build(tiny_docs, legs=["bm25"], progress=False).save(path)
    before = (path / "manifest.json").read_text()

    def crash(tmp):
        (tmp / "half.bin").write_bytes(b"x" * 10)
        raise KeyboardInterrupt  # a build killed halfway

    with pytest.raises(KeyboardInterrupt):
        write_index(path, crash)
    assert (path / "manifest.json").read_text() == before
    assert HybridRetriever.load(path).search("theft", k=1, mode="bm25")[0].id == "S3"
    assert [p.name for p in tmp_path.iterdir()] == ["ix"]  # no temporary folder left behind


def test_rebuild_replaces_and_refuses_foreign_folder(tmp_path, tiny_docs):
    path = tmp_path / "ix"
    HybridRetriever.build(tiny_docs, legs=["bm25"], progress=False).save(path)
    HybridRetriever.build(tiny_docs[:2], legs=["bm25"], progress=False).save(path)
    assert read_manifest(path)["documents"] == 2
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(IndexTargetError, match="not an index folder"):
        HybridRetriever.build(tiny_docs, legs=["bm25"], progress=False).save(other)
    assert (other / "notes.txt").read_text() == "keep me"


def test_missing_manifest_and_old_format(tmp_path, tiny_docs):
    with pytest.raises(IndexFileError, match="no index folder"):
        read_manifest(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexFileError, match="manifest.json: missing"):
        read_manifest(tmp_path / "empty")
    path = tmp_path / "ix"
    HybridRetriever.build(tiny_docs, legs=["bm25"], progress=False).save(path)
    m = json.loads((path / "manifest.json").read_text())
    m["format_version"] = 99
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexFileError, match="index format 99"):
        read_manifest(path)


def test_mmap_and_verify_follow_index_size(tmp_path, tiny_docs, monkeypatch):
    HybridRetriever.build(tiny_docs, legs=["bm25"], progress=False).save(tmp_path / "ix")
    manifest = read_manifest(tmp_path / "ix")
    assert not prefers_mmap(manifest)
    monkeypatch.setattr("retrieval.index.format.MMAP_MIN_BYTES", 1)
    assert prefers_mmap(manifest) and MMAP_MIN_BYTES > 1
    f = current(tmp_path / "ix") / "documents.jsonl"
    data = bytearray(f.read_bytes())
    data[data.index(b"burns")] ^= 1
    f.write_bytes(bytes(data))
    assert HybridRetriever.load(tmp_path / "ix").search("theft", k=1)  # mapped: sizes checked, not sha256
    with pytest.raises(IndexFileError, match="sha256"):
        HybridRetriever.load(tmp_path / "ix", verify=True)


def test_format_1_index_stops_with_how_to_rebuild_and_can_be_replaced(tmp_path, tiny_docs):
    old = tmp_path / "old"
    old.mkdir()
    (old / "documents.jsonl").write_text("{}\n")
    (old / "manifest.json").write_text(json.dumps({"format_version": 1, "legs": ["bm25"], "documents": 1,
                                                   "files": {"documents.jsonl": {"bytes": 3, "sha256": "x"}}}))
    with pytest.raises(IndexFileError, match="index format 1, this version reads 2; rebuild the index: retrieval build"):
        HybridRetriever.load(old)
    HybridRetriever.build(tiny_docs, legs=["bm25"], progress=False).save(old)  # ours: replaced
    assert read_manifest(old)["format_version"] == 2 and not (old / "documents.jsonl").exists()

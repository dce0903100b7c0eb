"""The embedding cache on disk (tune / bench --cache DIR): a second run encodes nothing and gets the same vectors."""

import numpy as np

from retrieval.dense.embedcache import EmbeddingCache, attach
from retrieval.dense.encoders import Encoder, EncoderConfig


def _counting(encoder) -> list[int]:
    calls: list[int] = []
    plain = encoder.encode_documents

    def encode(texts, progress=True):
        calls.append(len(texts))
        return plain(texts, progress=progress)

    encoder.encode_documents = encode
    return calls


def test_second_run_encodes_nothing(tmp_path):
    texts = ["Whoever commits theft shall be punished.", "Dowry death.", "Whoever commits theft shall be punished."]
    first = Encoder(EncoderConfig(device="cpu"))
    calls = _counting(first)
    attach(first, tmp_path)
    a = first.encode_documents(texts, progress=False)
    assert calls == [2]  # the repeated text once
    second = Encoder(EncoderConfig(device="cpu"))
    calls = _counting(second)
    attach(second, tmp_path)
    b = second.encode_documents(texts + ["Cheating."], progress=False)
    assert calls == [1] and np.array_equal(a, b[:3])


def test_keys_depend_on_model_prompt_and_length():
    base = EmbeddingCache("w1", "", 256)
    assert base.key("x") == EmbeddingCache("w1", "", 256).key("x")
    assert len({base.key("x"), EmbeddingCache("w2", "", 256).key("x"), EmbeddingCache("w1", "doc: ", 256).key("x"),
                EmbeddingCache("w1", "", 512).key("x"), base.key("y")}) == 5


def test_tune_with_cache_encodes_nothing_the_second_time(tmp_path, monkeypatch):
    from test_bench import write_dataset

    from retrieval.cli import main

    data = write_dataset(tmp_path / "tiny")
    encoded: list[int] = []
    plain = Encoder.encode_documents
    monkeypatch.setattr(Encoder, "encode_documents",
                        lambda self, texts, progress=True: encoded.append(len(texts)) or plain(self, texts, progress))
    args = ["tune", "--dataset", str(data), "--folds", "3", "--no-chunking", "--cache", str(tmp_path / "cache")]
    assert main([*args, "--out", str(tmp_path / "t1")]) == 0
    assert sum(encoded) > 0 and list((tmp_path / "cache").glob("*.vectors.npy"))
    encoded.clear()
    assert main([*args, "--out", str(tmp_path / "t2")]) == 0
    assert sum(encoded) == 0
    assert (tmp_path / "t1" / "fusion.json").read_text() == (tmp_path / "t2" / "fusion.json").read_text()


def test_build_with_cache_encodes_only_new_texts_and_seeds_from_an_index(tmp_path, monkeypatch, tiny_docs):
    """`build --cache DIR` twice encodes nothing the second time; a cache seeded from an index's stored vectors
    (DenseLeg.stored_cache, as `perf updates` seeds one) spares a build every text that index holds."""
    import json

    from retrieval.cli import main
    from retrieval.retriever import HybridRetriever

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n" for d in tiny_docs))
    encoded: list[int] = []
    plain = Encoder.encode_documents
    monkeypatch.setattr(Encoder, "encode_documents",
                        lambda self, texts, progress=True: encoded.append(len(texts)) or plain(self, texts, progress))
    args = ["build", str(corpus), "--cache", str(tmp_path / "cache")]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert sum(encoded) == len(tiny_docs)
    encoded.clear()
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert sum(encoded) == 0
    a, b = HybridRetriever.load(tmp_path / "a"), HybridRetriever.load(tmp_path / "b")
    assert np.array_equal(a.leg["dense"].store.get(np.arange(len(tiny_docs))),
                          b.leg["dense"].store.get(np.arange(len(tiny_docs))))

    a.leg["dense"].stored_cache(a.documents()).save(tmp_path / "seeded")
    changed = [*tiny_docs[1:], tiny_docs[0].__class__("new", "New", "A text no index has seen.")]
    corpus.write_text("".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n" for d in changed))
    encoded.clear()
    assert main(["build", str(corpus), "--cache", str(tmp_path / "seeded"), "--out", str(tmp_path / "c")]) == 0
    assert sum(encoded) == 1


def test_bad_cache_folders_are_named_before_encoding(tmp_path, monkeypatch):
    """A file given as the cache, a folder under a file, a damaged cache file: one-line errors naming the path,
    before any text is encoded."""
    import pytest

    encoder = Encoder(EncoderConfig(device="cpu"))
    calls = _counting(encoder)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="afile: the embedding cache must be a folder"):
        attach(encoder, tmp_path / "afile")
    with pytest.raises(ValueError, match="cannot create the embedding cache folder"):
        attach(encoder, tmp_path / "afile" / "sub")
    attach(encoder, tmp_path / "cache")  # a working cache first
    encoder.encode_documents(["Dowry death."], progress=False)
    damaged = next((tmp_path / "cache").glob("*.vectors.npy"))
    damaged.write_text("garbage")
    with pytest.raises(ValueError, match=f"{damaged.name}: not a readable embedding cache file"):
        attach(Encoder(EncoderConfig(device="cpu")), tmp_path / "cache")
    assert calls == [1]

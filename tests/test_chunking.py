import numpy as np
import pytest

from retrieval.dense.chunking import ChunkSettings, aggregate, split, window_size


def test_split_by_token_windows_with_overlap(encoder):
    tok = encoder.model.tokenizer
    text = " ".join(f"word{i}" for i in range(100))
    short = "a short statute"
    chunks, owner = split(tok, [short, text], window=40, overlap=10)
    assert chunks[0] == short and owner.tolist()[0] == 0
    assert set(owner.tolist()[1:]) == {1} and len(chunks) > 2
    assert chunks[1].startswith("word0") and chunks[-1].endswith("word99")
    for c in chunks[1:]:
        assert len(tok(c, add_special_tokens=False)["input_ids"]) <= 40
    # consecutive windows share text (overlap)
    assert chunks[1].split()[-1] in chunks[2]


def test_aggregations_hand_computed():
    # 2 queries: q0 has chunks rows 0,1; q1 has row 2. 2 docs: d0 chunks cols 0,1,2; d1 col 3.
    sim = np.array([[0.1, 0.5, 0.3, 0.2],
                    [0.4, 0.0, 0.2, 0.9],
                    [0.3, 0.3, 0.6, 0.1]])
    q_owner, d_owner = np.array([0, 0, 1]), np.array([0, 0, 0, 1])
    out = aggregate(sim, q_owner, d_owner, 2, ChunkSettings(doc_agg="max", query_agg="max"))
    assert out.tolist() == [[0.5, 0.9], [0.6, 0.1]]
    out = aggregate(sim, q_owner, d_owner, 2, ChunkSettings(doc_agg="mean", query_agg="mean"))
    assert out == pytest.approx(np.array([[(0.3 + 0.2) / 2, (0.2 + 0.9) / 2], [0.4, 0.1]]))
    out = aggregate(sim, q_owner, d_owner, 2, ChunkSettings(doc_agg="topn", top_n=2, query_agg="max"))
    assert out == pytest.approx(np.array([[0.4, 0.9], [0.45, 0.1]]))


def test_settings_validation_and_window():
    assert window_size(ChunkSettings(), 256) == 254
    assert window_size(ChunkSettings(window=100), 256) == 100
    assert ChunkSettings.from_dict(ChunkSettings(documents=True).to_dict()) == ChunkSettings(documents=True)
    assert not ChunkSettings().active and ChunkSettings(queries=True).active
    with pytest.raises(ValueError, match="larger than the overlap"):
        ChunkSettings(window=10, overlap=10)
    with pytest.raises(ValueError, match="unknown chunk aggregation"):
        ChunkSettings(doc_agg="median")


def test_chunked_index_build_save_load_search(tmp_path, tiny_docs, encoder):
    import json

    from retrieval.cli import main
    from retrieval.retriever import HybridRetriever, read_settings

    chunking = ChunkSettings(documents=True, queries=True, window=12, overlap=4, doc_agg="mean")
    r = HybridRetriever.build(tiny_docs, encoder=encoder, chunking=chunking, progress=False)
    assert r.info["build"]["document_chunks"] > len(tiny_docs)
    r.save(tmp_path / "ix")
    loaded = HybridRetriever.load(tmp_path / "ix")
    assert loaded.leg["dense"].chunking == chunking and loaded.leg["dense"].passage_docs is not None
    q = "a woman died of burns seven years after her marriage because of dowry cruelty"
    assert loaded.search(q, k=1, mode="dense")[0].id == "S1"
    assert loaded.leg["dense"].exact_scores([q]).shape == (1, len(tiny_docs))
    settings = tmp_path / "fusion.json"
    settings.write_text(json.dumps({"fusion": {"method": "rsf", "weights": {"dense": 1, "bm25": 0.5}},
                                    "chunking": {"documents": False}}))
    read = read_settings(settings)
    assert read.fusion.method == "rsf" and not read.chunking.documents and read.bm25.to_dict() == {}
    with pytest.raises(ValueError, match="document chunking"):
        HybridRetriever.load(tmp_path / "ix", chunking=read.chunking)
    assert main(["build", str(tmp_path / "c.jsonl"), "--out", str(tmp_path / "x"), "--chunk", "both"]) == 2  # no such file

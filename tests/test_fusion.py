import numpy as np
import pytest

from retrieval import fusion
from retrieval.index.format import rank_ids
from retrieval.ranking import RowOrder

IDS = ["a", "b", "c", "d", "x", "y"]  # document rows 0..5
ORDER = RowOrder(rank_ids(IDS))
A, B, C, D, X, Y = range(6)
DENSE = [(A, 0.9), (B, 0.8), (C, 0.1)]
BM25 = [(C, 12.0), (A, 4.0), (D, 2.0)]


def named(ranking):
    """A row ranking with its document ids attached."""
    return [(IDS[row], score) for row, score in ranking]


def test_rrf_hand_computed():
    out = dict(named(fusion.rrf([DENSE, BM25], ORDER, k=60)))
    assert out["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert out["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert out["b"] == pytest.approx(1 / 62)  # missing from BM25: nothing from that leg
    assert out["d"] == pytest.approx(1 / 63)
    assert [d for d, _ in named(fusion.rrf([DENSE, BM25], ORDER, k=60))] == ["a", "c", "b", "d"]


def test_rrf_weights_and_ties_by_descending_id():
    out = named(fusion.rrf([DENSE, BM25], ORDER, weights=[0.0, 1.0], k=0))
    assert out[0] == ("c", 1.0)
    tied = named(fusion.rrf([[(X, 1.0)], [(Y, 1.0)]], ORDER, k=60))
    assert [d for d, _ in tied] == ["y", "x"]  # equal scores: descending id, as trec_eval


def test_rsf_and_dbsf_and_convex():
    rsf = dict(named(fusion.rsf([DENSE, BM25], ORDER)))
    assert rsf["a"] == pytest.approx(1.0 + 0.2)  # (0.9-0.1)/0.8 and (4-2)/10
    assert rsf["b"] == pytest.approx(0.875)
    assert rsf["d"] == pytest.approx(0.0)
    one = dict(named(fusion.rsf([[(X, 3.0), (Y, 3.0)]], ORDER)))
    assert one == {"x": 0.5, "y": 0.5}
    dbsf = dict(named(fusion.dbsf([[(X, 1.0), (Y, 0.0)]], ORDER)))
    assert dbsf["x"] == pytest.approx((1 - (0.5 - 1.5)) / 3.0) and dbsf["y"] == pytest.approx(1 / 3)
    cvx = dict(named(fusion.convex([DENSE, BM25], ORDER, weights=[3, 1])))
    assert cvx["a"] == pytest.approx(0.75 * 1.0 + 0.25 * 4 / 12)
    assert cvx["d"] == pytest.approx(0.25 * 2 / 12)


def test_fuse_dispatch_and_errors():
    assert named(fusion.fuse("rrf", [DENSE], ORDER, k=1))[0] == ("a", 0.5)
    with pytest.raises(ValueError, match="unknown fusion method"):
        fusion.fuse("max", [DENSE], ORDER)
    with pytest.raises(ValueError, match="2 weights for 1"):
        fusion.rrf([DENSE], ORDER, weights=[1, 1])


def id_fusion(method, lists, weights, k=60):
    """The fusion of the project before rankings were rows: on (doc id, score) lists, sorted by (score, id) descending."""
    fused: dict[str, float] = {}
    for ranking, w in zip(lists, weights):
        if method == "rrf":
            parts = [w / (k + rank) for rank in range(1, len(ranking) + 1)]
        else:
            s = np.array([x for _, x in ranking], dtype=float)
            parts = list(w * (0.5 if s.max() == s.min() else (s - s.min()) / (s.max() - s.min())))
        for (doc, _), part in zip(ranking, parts):
            fused[doc] = fused.get(doc, 0.0) + float(part)
    return sorted(fused.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)


def test_fusing_rows_with_the_shared_order_equals_the_old_fusion_on_ids_ties_included():
    ids = ["S9", "S2", "S1", "T", "S10", "S20"]  # row order is not id order ("S10" < "S9" as text)
    order = RowOrder(rank_ids(ids))
    dense = [(0, 0.9), (1, 0.8), (2, 0.8), (3, 0.5)]
    bm25 = [(4, 3.0), (5, 2.0), (3, 1.0)]  # rows 0 and 4, 1 and 5 tie under RRF; 0 and 4 under RSF
    for method, weights in [("rrf", [1.0, 1.0]), ("rrf", [1.0, 0.5]), ("rsf", [1.0, 1.0]), ("rsf", [2.0, 1.0])]:
        rows = fusion.fuse(method, [dense, bm25], order, weights, k=60)
        by_id = id_fusion(method, [[(ids[r], s) for r, s in dense], [(ids[r], s) for r, s in bm25]], weights)
        assert [(ids[r], s) for r, s in rows] == by_id, method  # same scores, bit for bit, in the same order
    rows = fusion.rrf([dense, bm25], order)
    assert rows[1:3] == [(0, 1 / 61), (4, 1 / 61)]  # the tie: "S9" above "S10", though row 4 > row 0


def test_the_fused_top_is_the_head_of_the_whole_fused_ranking_with_the_highest_ids_of_the_ties_at_the_cut():
    rng = np.random.default_rng(0)
    ids = [f"S{i}" for i in rng.permutation(200)]  # row order is not id order
    order = RowOrder(rank_ids(ids))
    lists = [[(int(r), float(s)) for r, s in zip(rng.permutation(200)[:80], np.sort(rng.integers(0, 5, 80))[::-1])]
             for _ in range(2)]  # few distinct scores: many ties
    for method in fusion.METHODS:
        whole = fusion.fuse(method, lists, order, [1.0, 0.5])
        for top in (1, 10, 37, 500):
            assert fusion.fuse(method, lists, order, [1.0, 0.5], top=top) == whole[:top], (method, top)
    tied = fusion.rrf([[(0, 1.0)], [(1, 1.0)]], order, top=1)  # rows 0 and 1 tie: the higher id stays
    assert ids[tied[0][0]] == max(ids[0], ids[1])

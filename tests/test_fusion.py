import pytest

from retrieval import fusion

DENSE = [("a", 0.9), ("b", 0.8), ("c", 0.1)]
BM25 = [("c", 12.0), ("a", 4.0), ("d", 2.0)]


def test_rrf_hand_computed():
    out = dict(fusion.rrf([DENSE, BM25], k=60))
    assert out["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert out["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert out["b"] == pytest.approx(1 / 62)  # missing from BM25: nothing from that leg
    assert out["d"] == pytest.approx(1 / 63)
    assert [d for d, _ in fusion.rrf([DENSE, BM25], k=60)] == ["a", "c", "b", "d"]


def test_rrf_weights_and_ties_by_descending_id():
    out = fusion.rrf([DENSE, BM25], weights=[0.0, 1.0], k=0)
    assert out[0] == ("c", 1.0)
    tied = fusion.rrf([[("x", 1.0)], [("y", 1.0)]], k=60)
    assert [d for d, _ in tied] == ["y", "x"]  # equal scores: descending id, as trec_eval


def test_rsf_and_dbsf_and_convex():
    rsf = dict(fusion.rsf([DENSE, BM25]))
    assert rsf["a"] == pytest.approx(1.0 + 0.2)  # (0.9-0.1)/0.8 and (4-2)/10
    assert rsf["b"] == pytest.approx(0.875)
    assert rsf["d"] == pytest.approx(0.0)
    one = dict(fusion.rsf([[("x", 3.0), ("y", 3.0)]]))
    assert one == {"x": 0.5, "y": 0.5}
    dbsf = dict(fusion.dbsf([[("x", 1.0), ("y", 0.0)]]))
    assert dbsf["x"] == pytest.approx((1 - (0.5 - 1.5)) / 3.0) and dbsf["y"] == pytest.approx(1 / 3)
    cvx = dict(fusion.convex([DENSE, BM25], weights=[3, 1]))
    assert cvx["a"] == pytest.approx(0.75 * 1.0 + 0.25 * 4 / 12)
    assert cvx["d"] == pytest.approx(0.25 * 2 / 12)


def test_fuse_dispatch_and_errors():
    assert fusion.fuse("rrf", [DENSE], k=1)[0] == ("a", 0.5)
    with pytest.raises(ValueError, match="unknown fusion method"):
        fusion.fuse("max", [DENSE])
    with pytest.raises(ValueError, match="2 weights for 1"):
        fusion.rrf([DENSE], weights=[1, 1])

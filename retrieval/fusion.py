"""Rank and score fusion as small pure functions (in the spirit of ranx).

Each leg gives a Ranking (ranking.py): (document row, score) pairs, best first. Each function
returns the fused Ranking in the index's RowOrder: by fused score, ties by descending document
id, the order that trec_eval (and so MTEB's evaluator) uses for equal scores. A document missing
from a leg's list gets nothing from that leg. Ids are attached later, at the edge (Hits, MTEB).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .ranking import Ranking, RowOrder


def rrf(rankings: Sequence[Ranking], order: RowOrder, weights: Sequence[float] | None = None, k: int = 60,
        top: int | None = None) -> Ranking:
    """Reciprocal rank fusion: score(d) = sum_i w_i / (k + rank_i(d)), ranks starting at 1."""
    parts = [(_columns(ranking)[0], w / (k + np.arange(1, len(ranking) + 1)))
             for ranking, w in zip(rankings, _weights(weights, rankings), strict=True) if ranking]
    return _summed(parts, order, top)


def rsf(rankings: Sequence[Ranking], order: RowOrder, weights: Sequence[float] | None = None,
        top: int | None = None) -> Ranking:
    """Relative score fusion: weighted sum of min-max normalised scores (0.5 when all equal)."""
    return _score_fusion(rankings, order, weights, _minmax, top)


def dbsf(rankings: Sequence[Ranking], order: RowOrder, weights: Sequence[float] | None = None,
         top: int | None = None) -> Ranking:
    """Distribution-based score fusion: scores scaled from [mean - 3 sd, mean + 3 sd] to [0, 1]."""
    return _score_fusion(rankings, order, weights, _three_sigma, top)


def convex(rankings: Sequence[Ranking], order: RowOrder, weights: Sequence[float] | None = None,
           top: int | None = None) -> Ranking:
    """Convex combination of max-normalised scores: weights rescaled to sum to 1, s / max(s)."""
    w = np.asarray(_weights(weights, rankings), dtype=float)
    if w.sum() <= 0:
        raise ValueError("convex fusion needs weights with a positive sum")
    return _score_fusion(rankings, order, list(w / w.sum()), _by_max, top)


METHODS: dict[str, Callable[..., Ranking]] = {
    "rrf": rrf, "rsf": rsf, "dbsf": dbsf, "convex": convex,
}


def fuse(method: str, rankings: Sequence[Ranking], order: RowOrder, weights: Sequence[float] | None = None,
         k: int = 60, top: int | None = None) -> Ranking:
    """Dispatch by method name; `k` only matters for RRF; `top`: only the first `top` of the fused ranking."""
    if method not in METHODS:
        raise ValueError(f"unknown fusion method {method!r} (choose from {', '.join(METHODS)})")
    if method == "rrf":
        return rrf(rankings, order, weights, k, top)
    return METHODS[method](rankings, order, weights, top)


def _weights(weights: Sequence[float] | None, rankings: Sequence[Ranking]) -> Sequence[float]:
    if weights is None:
        return [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    return weights


def _score_fusion(rankings: Sequence[Ranking], order: RowOrder, weights: Sequence[float] | None,
                  normalise: Callable[[np.ndarray], np.ndarray], top: int | None) -> Ranking:
    parts = [(rows, w * normalise(scores)) for (rows, scores), w in
             zip(map(_columns, rankings), _weights(weights, rankings), strict=True) if len(rows)]
    return _summed(parts, order, top)


def _minmax(s: np.ndarray) -> np.ndarray:
    lo, hi = s.min(), s.max()
    return np.full_like(s, 0.5) if hi == lo else (s - lo) / (hi - lo)


def _three_sigma(s: np.ndarray) -> np.ndarray:
    mu, sd = s.mean(), s.std()
    if sd < 1e-9:
        return np.full_like(s, 0.5)
    return np.clip((s - (mu - 3 * sd)) / (6 * sd), 0.0, 1.0)


def _by_max(s: np.ndarray) -> np.ndarray:
    top = s.max()
    return s / top if top > 0 else np.zeros_like(s)


def _columns(ranking: Ranking) -> tuple[np.ndarray, np.ndarray]:
    """A ranking's rows and scores as arrays (rows are exact in float64 up to 2**53)."""
    pairs = np.array(ranking, dtype=float).reshape(-1, 2)
    return pairs[:, 0].astype(np.int64), pairs[:, 1]


def _summed(parts: Sequence[tuple[np.ndarray, np.ndarray]], order: RowOrder, top: int | None) -> Ranking:
    """Each row's contributions summed leg by leg (bincount adds in leg order, as a running sum from 0 would, so
    the scores are those of a Python loop bit for bit), in `order`, cut at `top`."""
    if not parts:
        return []
    rows, inverse = np.unique(np.concatenate([r for r, _ in parts]), return_inverse=True)
    scores = np.bincount(inverse, weights=np.concatenate([c for _, c in parts]), minlength=len(rows))
    return order.order(rows, scores) if top is None else order.top(scores, top, rows)

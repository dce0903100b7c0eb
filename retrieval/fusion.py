"""Rank and score fusion as small pure functions (in the spirit of ranx).

Each leg gives a Ranking: (doc_id, score) pairs, best first. Each function returns the
fused Ranking sorted by fused score, ties broken by descending doc id, the order that
trec_eval (and so MTEB's evaluator) uses for equal scores. A document missing from a
leg's list gets nothing from that leg.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Ranking = Sequence[tuple[str, float]]


def rrf(rankings: Sequence[Ranking], weights: Sequence[float] | None = None, k: int = 60) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: score(d) = sum_i w_i / (k + rank_i(d)), ranks starting at 1."""
    fused: dict[str, float] = {}
    for ranking, w in zip(rankings, _weights(weights, rankings), strict=True):
        for rank, (doc, _) in enumerate(ranking, start=1):
            fused[doc] = fused.get(doc, 0.0) + w / (k + rank)
    return _sorted(fused)


def rsf(rankings: Sequence[Ranking], weights: Sequence[float] | None = None) -> list[tuple[str, float]]:
    """Relative score fusion: weighted sum of min-max normalised scores (0.5 when all equal)."""
    return _score_fusion(rankings, weights, _minmax)


def dbsf(rankings: Sequence[Ranking], weights: Sequence[float] | None = None) -> list[tuple[str, float]]:
    """Distribution-based score fusion: scores scaled from [mean - 3 sd, mean + 3 sd] to [0, 1]."""
    return _score_fusion(rankings, weights, _three_sigma)


def convex(rankings: Sequence[Ranking], weights: Sequence[float] | None = None) -> list[tuple[str, float]]:
    """Convex combination of max-normalised scores: weights rescaled to sum to 1, s / max(s)."""
    w = np.asarray(_weights(weights, rankings), dtype=float)
    if w.sum() <= 0:
        raise ValueError("convex fusion needs weights with a positive sum")
    return _score_fusion(rankings, list(w / w.sum()), _by_max)


METHODS: dict[str, Callable[..., list[tuple[str, float]]]] = {
    "rrf": rrf, "rsf": rsf, "dbsf": dbsf, "convex": convex,
}


def fuse(method: str, rankings: Sequence[Ranking], weights: Sequence[float] | None = None,
         k: int = 60) -> list[tuple[str, float]]:
    """Dispatch by method name; `k` only matters for RRF."""
    if method not in METHODS:
        raise ValueError(f"unknown fusion method {method!r} (choose from {', '.join(METHODS)})")
    if method == "rrf":
        return rrf(rankings, weights, k)
    return METHODS[method](rankings, weights)


def _weights(weights: Sequence[float] | None, rankings: Sequence[Ranking]) -> Sequence[float]:
    if weights is None:
        return [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    return weights


def _score_fusion(rankings: Sequence[Ranking], weights: Sequence[float] | None,
                  normalise: Callable[[np.ndarray], np.ndarray]) -> list[tuple[str, float]]:
    fused: dict[str, float] = {}
    for ranking, w in zip(rankings, _weights(weights, rankings), strict=True):
        if not ranking:
            continue
        docs = [d for d, _ in ranking]
        norm = normalise(np.array([s for _, s in ranking], dtype=float))
        for doc, s in zip(docs, norm, strict=True):
            fused[doc] = fused.get(doc, 0.0) + w * float(s)
    return _sorted(fused)


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


def _sorted(fused: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(fused.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)

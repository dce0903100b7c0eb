"""The one ranking type from leg to Hit, and the one order every ranking follows.

A Ranking is (document row, score) pairs, best first: each leg returns one per query, fusion
fuses them into one, and the retriever turns the fused one into Hits, where the document ids
are attached. Every ranking is ordered by RowOrder: descending score, ties by descending
document id, the order trec_eval (and so MTEB's evaluator) uses for equal scores.
"""

from __future__ import annotations

import numpy as np

Ranking = list[tuple[int, float]]  # (document row, score), best first


class RowOrder:
    """Ranking order shared by every leg and fusion: descending score, ties by descending document id (trec_eval's)."""

    def __init__(self, id_ranks: np.ndarray):
        self.id_ranks = id_ranks  # each row's place in sorted id order

    def order(self, rows: np.ndarray, scores: np.ndarray) -> Ranking:
        """`rows` sorted by descending score, ties by descending id."""
        order = np.lexsort((-self.id_ranks[rows], -scores))
        return [(int(rows[i]), float(scores[i])) for i in order]

    def top(self, scores: np.ndarray, depth: int, rows: np.ndarray | None = None, positive: bool = False) -> Ranking:
        """Top-`depth` of `rows` (default: every row) by `scores` (aligned with rows); of the ties at the cut,
        those with the highest ids. `positive`: only scores above 0 (BM25: a document sharing no query term is not
        listed), picked from about `depth` candidates instead of the whole corpus. The one top-k of the package."""
        if depth <= 0:
            return []
        if positive:
            picked = _positive_candidates(scores, depth)
            rows, scores = (picked if rows is None else rows[picked]), scores[picked]
        rows = np.arange(len(scores)) if rows is None else rows
        if depth >= len(rows):
            return self.order(rows, scores)
        # the depth-th highest score; numpy partitions the negated scores at the front fast, but takes
        # ~20x longer to partition at the back when most scores tie
        kth = -np.partition(-scores, depth - 1)[depth - 1]
        above, tied = np.flatnonzero(scores > kth), np.flatnonzero(scores == kth)
        need = depth - len(above)
        if len(tied) > need:
            tied = tied[np.argpartition(-self.id_ranks[rows[tied]], need - 1)[:need]]
        keep = np.concatenate([above, tied])
        return self.order(rows[keep], scores[keep])


_GROUPS = 8  # slabs of the score vector whose element-wise maximum bounds the depth-th best score


def _positive_candidates(scores: np.ndarray, depth: int) -> np.ndarray:
    """Positive-score rows that can be among the `depth` best: those at or above a bound on the depth-th score.

    The bound is the depth-th highest of the element-wise maxima of 8 slabs of the scores: `depth`
    maxima reach it, each a different row, so at least `depth` scores do, and the depth-th best score
    is at least the bound. Cheap (a few vectorised passes), and it leaves about `depth` rows.
    """
    full = len(scores) - len(scores) % _GROUPS
    maxima = scores[:full].reshape(_GROUPS, -1).max(axis=0)
    if full < len(scores):
        maxima = np.append(maxima, scores[full:].max())
    bound = -np.partition(-maxima, depth - 1)[depth - 1] if len(maxima) > depth else 0
    return np.flatnonzero(scores >= bound) if bound > 0 else np.flatnonzero(scores > 0)

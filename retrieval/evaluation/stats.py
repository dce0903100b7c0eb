"""Paired significance for per-query scores: bootstrap interval and randomisation test.

With 50 queries a difference of a few nDCG points can be noise; these say how much.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def paired_difference(a: Mapping[str, float], b: Mapping[str, float], *, samples: int = 10000,
                      seed: int = 0) -> dict:
    """Mean of a - b over shared queries, a 95% paired-bootstrap interval and a two-sided p-value."""
    qids = sorted(set(a) & set(b))
    if not qids:
        raise ValueError("no queries in common")
    d = np.array([a[q] - b[q] for q in qids], dtype=float)
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, len(d), size=(samples, len(d)))].mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"mean": float(d.mean()), "ci95": [float(lo), float(hi)],
            "p_value": randomisation_p_value(d, samples=samples, seed=seed), "queries": len(d)}


def randomisation_p_value(d: np.ndarray, *, samples: int = 10000, seed: int = 0) -> float:
    """Two-sided paired randomisation (sign-flip) test of mean(d) = 0, with the +1 correction."""
    d = np.asarray(d, dtype=float)
    rng = np.random.default_rng(seed + 1)
    signs = rng.choice((-1.0, 1.0), size=(samples, len(d)))
    flipped = np.abs((signs * d).mean(axis=1))
    return float((1 + np.sum(flipped >= abs(d.mean()) - 1e-12)) / (samples + 1))

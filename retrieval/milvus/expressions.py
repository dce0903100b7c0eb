"""Milvus boolean expressions for filters and allowed rows.

A filter that Milvus can evaluate itself arrives as an expression over the collection's statute
fields (`filters.Selection.milvus`); any other set of allowed rows becomes a compact expression
over row numbers (ranges where they are contiguous, else an `in` list).
"""

from __future__ import annotations

import numpy as np

RANGES_MAX = 16  # up to this many contiguous runs are written as ranges, more as an `in` list


def rows_expression(allowed: np.ndarray | None, field: str) -> str | None:
    """The expression of `allowed`: its own Milvus filter when it has one, else its rows over `field`."""
    if allowed is None:
        return None
    own = getattr(allowed, "milvus", None)
    if own:
        return own
    rows = np.unique(np.asarray(allowed, dtype=np.int64))
    if not len(rows):
        return f"{field} < 0"
    breaks = np.flatnonzero(np.diff(rows) != 1)
    starts, ends = rows[np.r_[0, breaks + 1]], rows[np.r_[breaks, len(rows) - 1]]
    if len(starts) <= RANGES_MAX:
        return " or ".join(f"({field} >= {a} and {field} <= {b})" if a != b else f"{field} == {a}"
                           for a, b in zip(starts, ends))
    return f"{field} in {rows.tolist()}"

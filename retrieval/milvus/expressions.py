"""Milvus boolean expressions for filters and allowed rows: how the Milvus engines compile a filters.Selection.

A filter that Milvus can evaluate itself becomes an expression over the collection's statute fields
(every row of a statute carries them); any other set of allowed rows becomes a compact expression
over row numbers (ranges where they are contiguous, else an `in` list).
"""

from __future__ import annotations

import numpy as np

from ..corpus import META_FIELDS
from ..filters import Filter, Selection, number_of

RANGES_MAX = 16  # up to this many contiguous runs are written as ranges, more as an `in` list


def rows_expression(allowed: Selection | None, field: str) -> str | None:
    """The expression of `allowed`: its filter's when Milvus can evaluate it, else its rows over `field`."""
    if allowed is None:
        return None
    own = filter_expression(allowed.filter) if isinstance(allowed, Selection) else None
    if own:
        return own if allowed.below is None else f"({own}) and row < {allowed.below}"
    rows = np.unique(np.asarray(allowed, dtype=np.int64))
    if not len(rows):
        return f"{field} < 0"
    breaks = np.flatnonzero(np.diff(rows) != 1)
    starts, ends = rows[np.r_[0, breaks + 1]], rows[np.r_[breaks, len(rows) - 1]]
    if len(starts) <= RANGES_MAX:
        return " or ".join(f"({field} >= {a} and {field} <= {b})" if a != b else f"{field} == {a}"
                           for a, b in zip(starts, ends))
    return f"{field} in {rows.tolist()}"


def filter_expression(where: Filter | None) -> str | None:
    """The filter as a Milvus boolean expression over the Milvus backend's statute fields (an absent field is
    ''); None when no filter is given or Milvus could judge part of it differently (then rows are sent)."""
    if where is None:
        return None
    parts = [] if where.tree is None else [_node(where.tree)]
    if None in parts or any(number_of(v) is not None for v in (where.act, where.jurisdiction) if v):
        return None
    parts += [f"{name} == {_quote(value)}" for name, value in (("act", where.act), ("jurisdiction", where.jurisdiction))
              if value]
    if where.as_of:
        day = _quote(where.as_of)
        parts.append(f'(valid_from == "" or valid_from <= {day}) and (valid_to == "" or valid_to > {day})')
    return " and ".join(f"({p})" for p in parts) or None


def _node(node: tuple) -> str | None:
    """The node as a Milvus expression over the backend's text columns (absent = ''), or None where Milvus
    could disagree with filters' own evaluation: other fields, numbers (compared as numbers there), empty values."""
    kind = node[0]
    if kind in ("or", "and"):
        parts = [_node(n) for n in node[1]]
        return None if None in parts else f" {kind} ".join(f"({p})" for p in parts)
    if kind == "not":
        inner = _node(node[1])
        return None if inner is None else f"not ({inner})"
    name, values = node[1], node[2] if kind == "in" else [node[3]]
    if name not in META_FIELDS or any(v == "" or number_of(v) is not None for v in values):
        return None
    if kind == "in":
        return f"{name} in [{', '.join(map(_quote, values))}]"
    op = "==" if node[2] == "=" else node[2]
    return f"{name} {op} {_quote(values[0])}" if op in ("==", "!=") else f'{name} != "" and {name} {op} {_quote(values[0])}'


def _quote(value: str) -> str:
    """A Milvus string literal."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'

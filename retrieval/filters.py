"""Metadata filters: a small expression language over the documents' fields, compiled to allowed rows.

Grammar (keywords case-insensitive; a parse error names the character position):

    expr       := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "not" unary | "(" expr ")" | comparison
    comparison := FIELD OP VALUE | FIELD "in" "(" VALUE ("," VALUE)* ")"
    OP         := "=" | "!=" | "<" | "<=" | ">" | ">="
    VALUE      := 'quoted' | "quoted" | a bare word (no spaces, quotes, brackets, commas or operators)

FIELD is id, title, act, jurisdiction, section, valid_from, valid_to, or a key of `meta` (as `meta.KEY` or
`KEY`). Values compare as numbers when both sides are numbers, else as text (so ISO dates order by date).
A document without the field fails every comparison except `!=`. `as_of=D` keeps documents in force on D:
valid_from <= D (or none) and D < valid_to (or none); `valid_to` is the first day no longer in force.

Limits (a request cannot stall the server): an expression is at most MAX_CHARS characters and nests parentheses
and `not` at most MAX_DEPTH deep; it is read in one pass, and an `or` of equalities on one field is one set look-up
per document (1,000 such terms are about 14,000 characters). `allowed_rows` stops at a deadline if given.

Checked against the index (`vet`): a field that is neither one of the named fields nor a `meta` key of some
document is an error naming the fields the index has; an `=` / `in` value (or --act, --jurisdiction) that no
document has is a warning naming the nearest values it does have.
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .corpus import META_FIELDS, CorpusError, check_date

Predicate = Callable[[dict], bool]
FACETS = ("act", "jurisdiction")  # the fields a search page offers as searchable menus
MAX_CHARS = 16 * 1024  # characters in one filter expression
MAX_DEPTH = 64  # parentheses and `not` nested in one another
NAMED = ("id", "title", *META_FIELDS)  # fields the grammar names: never unknown, whether documents have them or not
NEAREST = 3  # near values a warning names
CLOSE_MATCH_LIMIT = 5000  # fields with more distinct values get case-insensitive suggestions only (difflib is slow)
_TOKEN = re.compile(r"\s*(?:(?P<op><=|>=|!=|=|<|>)|(?P<punct>[(),])|'(?P<sq>[^']*)'|\"(?P<dq>[^\"]*)\"|"
                    r"(?P<word>[^\s(),=<>!'\"]+)|(?P<end>\Z)|(?P<bad>.))", re.S)
_COMPARE = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


class FilterError(ValueError):
    """A filter expression that does not parse, or a bad filter value; the message names the position."""


class FilterTimeout(TimeoutError):
    """A filter's evaluation passed its deadline (allowed_rows)."""


@dataclass(frozen=True)
class _Token:
    kind: str  # "op", "punct", "value" (quoted), "word"
    text: str
    pos: int  # 1-based character position in the expression


def parse(expr: str) -> Predicate:
    """A predicate over a document's fields (dict) from a filter expression (grammar in the module docstring)."""
    return _predicate(_tree(expr))


def _tree(expr: str) -> tuple:
    """The expression's syntax tree: ("or"|"and", [nodes]), ("not", node), ("cmp", field, op, value),
    ("in", field, [values])."""
    if len(expr) > MAX_CHARS:
        raise FilterError(f"filter is {len(expr):,} characters; the limit is {MAX_CHARS:,}")
    parser = _Parser(expr, _tokens(expr))
    tree = parser.expr()
    if parser.peek() is not None:
        parser.fail("expected 'and', 'or' or the end")
    return tree


def _predicate(node: tuple) -> Predicate:
    kind = node[0]
    if kind == "or":
        equal: dict[str, list[str]] = {}  # field -> values it may equal: one set look-up, however many terms
        rest = []
        for n in node[1]:
            if n[0] == "in" or (n[0] == "cmp" and n[2] == "="):
                equal.setdefault(n[1], []).extend(n[2] if n[0] == "in" else [n[3]])
            else:
                rest.append(n)
        parts = [_member(name, values) for name, values in equal.items()] + [_predicate(n) for n in rest]
        return parts[0] if len(parts) == 1 else lambda r: any(p(r) for p in parts)
    if kind == "and":
        parts = [_predicate(n) for n in node[1]]
        return lambda r: all(p(r) for p in parts)
    if kind == "not":
        inner = _predicate(node[1])
        return lambda r: not inner(r)
    name = node[1]
    if kind == "in":
        return _member(name, node[2])
    op, value = node[2], node[3]
    if op == "!=":
        return lambda r: (v := _field(r, name)) is None or _compare(v, "!=", value)
    return lambda r: (v := _field(r, name)) is not None and _compare(v, op, value)


def _member(name: str, values: Sequence[str]) -> Predicate:
    """`name` equals one of `values` as `_compare` judges "=" (numbers as numbers, else text), by set look-ups."""
    numbers = {n for v in values if (n := number_of(v)) is not None}
    texts, words = set(values), {v for v in values if number_of(v) is None}

    def test(record: dict) -> bool:
        have = _field(record, name)
        if have is None:
            return False
        a, text = number_of(have), _text(have)
        return (a in numbers or text in words) if a is not None else text in texts
    return test


@dataclass(frozen=True)
class Filter:
    """A parsed filter: the expression's tree and the act / jurisdiction / in-force date asked, for an engine
    that evaluates filters itself (the Milvus backend compiles it to an expression: milvus/expressions.py)."""

    tree: tuple | None = None
    act: str | None = None
    jurisdiction: str | None = None
    as_of: str | None = None


@dataclass(frozen=True)
class Selection:
    """Allowed rows (sorted) and the filter they came from: each engine compiles what it can use (FAISS and bm25s
    the rows, Milvus the filter), so the filter never rides on an array numpy may copy. `below`: the rows end
    there (a dense store's statute rows, not its title rows); `warnings`: the filter's notes for the user (`vet`)."""

    rows: np.ndarray
    filter: Filter | None = None
    below: int | None = None
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", np.asarray(self.rows, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[int]:
        return iter(self.rows.tolist())

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.rows if dtype is None else self.rows.astype(dtype)

    def over(self, rows: np.ndarray, below: int | None = None) -> Selection:
        """The same filter over other rows (a dense store's passage rows of the allowed statutes)."""
        return Selection(rows, self.filter, below, self.warnings)


def selection(allowed: Selection | np.ndarray | Sequence[int] | None) -> Selection | None:
    """`allowed` as a Selection (plain rows carry no filter)."""
    return allowed if allowed is None or isinstance(allowed, Selection) else Selection(np.asarray(allowed))


class FieldTable:
    """The documents' fields that filters read (all but the text) as columns, one list per field, repeated values
    shared: filtering and facets never hold the corpus text, nor a dict per document."""

    def __init__(self, records: Iterable[dict]):
        self._columns: dict[str, list] = {}
        shared: dict = {}  # one object per distinct value of the repeated fields (acts, dates, ...)
        n = 0
        for n, record in enumerate(records, start=1):
            for name, value in record.items():
                if name == "text":
                    continue
                column = self._columns.setdefault(name, [])
                column.extend([None] * (n - 1 - len(column)))
                column.append(value if name in ("id", "title") or not isinstance(value, str)
                              else shared.setdefault(value, value))
        for column in self._columns.values():
            column.extend([None] * (n - len(column)))
        self._n = n
        self._values: dict[str, set[str]] | None = None

    def __len__(self) -> int:
        return self._n

    @property
    def records(self) -> Iterator[dict]:
        """Each document's fields as a dict (made as it is read: none are kept)."""
        columns = list(self._columns.items())
        for i in range(self._n):
            yield {name: column[i] for name, column in columns if column[i] is not None}

    def facets(self, fields: Sequence[str] = FACETS) -> dict[str, list[str]]:
        """Each field's distinct values, sorted: the choices a search page offers."""
        return {name: sorted(self.values().get(name, ())) for name in fields}

    def values(self) -> dict[str, set[str]]:
        """Each field some document has (metadata keys both as KEY and meta.KEY) -> its distinct values as text."""
        if self._values is None:
            seen = {name: {_text(v) for v in column if v is not None}
                    for name, column in self._columns.items() if name != "meta"}
            for meta in self._columns.get("meta", ()):
                for key, v in (meta or {}).items():
                    for name in (f"meta.{key}", *(() if key in self._columns else (key,))):
                        seen.setdefault(name, set()).add(_text(v))
            self._values = seen
        return self._values


def check_syntax(expr: str | None, as_of: str | None) -> None:
    """Refuse a filter expression that does not parse or an --as-of that is not a date (before any index loads)."""
    if expr:
        _tree(expr)
    if as_of:
        in_force(as_of)


def vet(expr: str | None, values: Mapping[str, Collection[str]], **equals: str | None) -> list[str]:
    """Check a filter against the index's fields and values (`FieldTable.values`): FilterError for a field the
    index does not have, naming those it has; a warning for each value compared with `=` or `in`, or given in
    `equals` (act=..., jurisdiction=...), that no document has, naming the nearest values it has."""
    asked = [(name, value) for name, value in equals.items() if value]
    if expr:
        tree = _tree(expr)
        known = set(NAMED) | set(values)
        unknown = [name for name in dict.fromkeys(_names(tree)) if name not in known]
        if unknown:
            raise FilterError(f"filter {expr!r}: no field {unknown[0]!r}{_suggest(unknown[0], known)}; this index's "
                              f"fields: {', '.join(_listed(values))}")
        asked += _equalities(tree)
    return [w for name, value in dict.fromkeys(asked) if (w := _missing_value(name, value, values.get(name, ())))]


def _names(node: tuple) -> Iterator[str]:
    if node[0] in ("or", "and"):
        for n in node[1]:
            yield from _names(n)
    elif node[0] == "not":
        yield from _names(node[1])
    else:
        yield node[1]


def _equalities(node: tuple) -> list[tuple[str, str]]:
    """(field, value) of every `=` and `in` comparison in the tree."""
    if node[0] in ("or", "and"):
        return [pair for n in node[1] for pair in _equalities(n)]
    if node[0] == "not":
        return _equalities(node[1])
    if node[0] == "in":
        return [(node[1], v) for v in node[2]]
    return [(node[1], node[3])] if node[2] == "=" else []


def _missing_value(name: str, value: str, have: Collection[str]) -> str | None:
    """A warning when no document's `name` equals `value` (as a filter compares), else None."""
    if value in have or (number_of(value) is not None and any(_compare(v, "=", value) for v in have)):
        return None
    if not have:
        return f"no document has a {name} (a filter on {name} = {value!r} matches nothing)"
    near = [v for v in have if v.lower() == value.lower()]
    if not near and len(have) <= CLOSE_MATCH_LIMIT:
        near = difflib.get_close_matches(value, list(have), n=NEAREST, cutoff=0.6)
    return (f"no document has {name} {value!r}; " +
            (f"nearest: {', '.join(sorted(near)[:NEAREST])}" if near else f"some it has: {', '.join(sorted(have)[:NEAREST])}"))


def _suggest(name: str, known: Collection[str]) -> str:
    near = [k for k in known if k.lower() == name.lower()] or difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _listed(values: Mapping[str, Collection[str]]) -> list[str]:
    """The index's field names: the named ones it has in their order, then its metadata keys."""
    named = [n for n in NAMED if n in values or n in ("id", "title")]
    return named + sorted(n for n in values if n not in NAMED and not n.startswith("meta."))


def _text(value) -> str:
    """A field value as filters compare text (booleans as true/false)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def allowed_rows(records: Iterable[dict], expr: str | None = None, *, act: str | None = None,
                 jurisdiction: str | None = None, as_of: str | None = None,
                 deadline: float | None = None) -> Selection:
    """Sorted rows of `records` (each a document's fields) passing every filter given; past `deadline` (a
    time.monotonic() value) FilterTimeout, so a server's request timeout also stops the evaluation."""
    tree = _tree(expr) if expr else None
    tests = [_predicate(tree)] if tree else []
    tests += [_equals(name, value) for name, value in (("act", act), ("jurisdiction", jurisdiction)) if value]
    if as_of:
        tests.append(in_force(as_of))
    rows = []
    for i, record in enumerate(records):
        if deadline is not None and not i % 64 and time.monotonic() > deadline:
            raise FilterTimeout(f"filter evaluation passed its time limit after {i:,} documents")
        if all(t(record) for t in tests):
            rows.append(i)
    return Selection(rows, Filter(tree, act, jurisdiction, as_of) if tree or act or jurisdiction or as_of else None)


def in_force(day: str) -> Predicate:
    """Documents in force on `day` (ISO): valid_from <= day < valid_to, an absent bound being open."""
    try:
        check_date(day, "as_of")
    except CorpusError as e:
        raise FilterError(str(e)) from None
    return lambda r: (r.get("valid_from") or day) <= day and (not r.get("valid_to") or day < r["valid_to"])


def _equals(name: str, value: str) -> Predicate:
    return lambda r: _field(r, name) is not None and _compare(_field(r, name), "=", value)


def _field(record: dict, name: str):
    """A field of a document, from its top level or its `meta` (as `meta.KEY` or `KEY`)."""
    meta = record.get("meta") or {}
    if name.startswith("meta."):
        return meta.get(name[5:])
    return record[name] if name in record else meta.get(name)


def number_of(value) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond float's range
        return None


def _compare(have, op: str, want: str) -> bool:
    a, b = number_of(have), number_of(want)
    if a is None or b is None:
        a, b = _text(have), want
    return _COMPARE[op](a, b)


def _text(value) -> str:
    """A field's value as text compares it (booleans as JSON writes them)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _tokens(expr: str) -> list[_Token]:
    """The expression's tokens, in one pass of the scanner (linear in its length)."""
    out, at = [], 0
    while True:
        m = _TOKEN.match(expr, at)
        kind = m.lastgroup
        if kind == "end":
            return out
        if kind == "bad":
            pos = m.start(kind) + 1
            raise FilterError(f"filter {_shown(expr)}: unexpected character {expr[pos - 1]!r} at position {pos}")
        start = m.start(kind) + (0 if kind in ("op", "punct", "word") else -1)
        out.append(_Token("value" if kind in ("sq", "dq") else kind, m.group(kind), start + 1))
        at = m.end()


def _shown(expr: str) -> str:
    """The expression as an error message quotes it: a long one cut to its start."""
    return repr(expr) if len(expr) <= 80 else f"{expr[:60]!r}... ({len(expr):,} characters)"


class _Parser:
    """Recursive descent over the tokens, building predicates."""

    def __init__(self, expr: str, tokens: list[_Token]):
        self.text, self.tokens, self.i, self.depth = expr, tokens, 0, 0

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def fail(self, what: str) -> None:
        token = self.peek()
        where = f"position {token.pos} ({token.text!r})" if token else f"the end (position {len(self.text) + 1})"
        raise FilterError(f"filter {_shown(self.text)}: {what} at {where}")

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text.lower() == word:
            self.i += 1
            return True
        return False

    def punct(self, char: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "punct" and token.text == char:
            self.i += 1
            return True
        return False

    def expr(self) -> tuple:
        parts = [self.and_expr()]
        while self.keyword("or"):
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else ("or", parts)

    def and_expr(self) -> tuple:
        parts = [self.unary()]
        while self.keyword("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else ("and", parts)

    def unary(self) -> tuple:
        token = self.peek()
        if not (self.keyword("not") or self.punct("(")):
            return self.comparison()
        if self.depth == MAX_DEPTH:
            self.i -= 1
            self.fail(f"parentheses and 'not' nest more than {MAX_DEPTH} deep")
        self.depth += 1
        if token.kind == "word":
            inner = ("not", self.unary())
        else:
            inner = self.expr()
            if not self.punct(")"):
                self.fail("expected ')'")
        self.depth -= 1
        return inner

    def comparison(self) -> tuple:
        token = self.peek()
        if token is None or token.kind != "word" or token.text.lower() in ("and", "or", "not", "in"):
            self.fail("expected a field name")
        name = token.text
        self.i += 1
        if self.keyword("in"):
            return ("in", name, self.value_list())
        op = self.peek()
        if op is None or op.kind != "op":
            self.fail("expected an operator (=, !=, <, <=, >, >=, in)")
        self.i += 1
        return ("cmp", name, op.text, self.value())

    def value(self) -> str:
        token = self.peek()
        if token is None or token.kind not in ("value", "word"):
            self.fail("expected a value")
        self.i += 1
        return token.text

    def value_list(self) -> list[str]:
        if not self.punct("("):
            self.fail("expected '(' after 'in'")
        values = [self.value()]
        while self.punct(","):
            values.append(self.value())
        if not self.punct(")"):
            self.fail("expected ',' or ')'")
        return values

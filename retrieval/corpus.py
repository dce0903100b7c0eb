"""Statute corpora: the Document record and readers for AILA folders, JSONL and CSV.

Every reader validates as it goes and raises CorpusError with a one-line message that
names the file (and line), so a bad corpus never reaches the index writer.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from pathlib import Path

REQUIRED_FIELDS = ("id", "title", "text")
META_FIELDS = ("act", "jurisdiction", "section", "valid_from", "valid_to")  # optional, beside `meta`
DATE_FIELDS = ("valid_from", "valid_to")
_AILA_ID = re.compile(r"^S(\d+)$")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
CSV_FIELD_BYTES = 64 << 20  # the largest CSV field read (csv's own default, 128 KiB, is shorter than some statutes)
_ZH_ARTICLE = re.compile(r"^(.+?)第[零一二三四五六七八九十百千万〇0-9]+条(?:之[零一二三四五六七八九十]+)?$")


class CorpusError(ValueError):
    """A corpus input problem; the message names the file and, where known, the line."""


@dataclass(frozen=True)
class Document:
    """One statute: a unique id, a display title and the text that is indexed; optionally the act it belongs
    to, its jurisdiction and section, the dates it is in force (ISO, `valid_to` exclusive) and other scalars."""

    id: str
    title: str
    text: str
    act: str | None = None
    jurisdiction: str | None = None
    section: str | None = None
    valid_from: str | None = None
    valid_to: str | None = None
    meta: dict = field(default_factory=dict)

    def metadata(self) -> dict:
        """The metadata fields that are set (what filters see and documents.jsonl stores beside id/title/text)."""
        out = {f: getattr(self, f) for f in META_FIELDS if getattr(self, f) is not None}
        if self.meta:
            out["meta"] = dict(self.meta)
        return out

    @classmethod
    def from_row(cls, id: str, title: str | None, text: str) -> Document:
        """A document from a data-set row; an empty title falls back to an AILA `Title:` heading."""
        return cls(id, title or aila_title(text), text)

    def indexed_text(self) -> str:
        """Title and text as one string, the title left out when the text already holds it."""
        if not self.title or self.title in self.text:
            return self.text
        return f"{self.title} {self.text}"


def read_corpus(path: str | Path) -> list[Document]:
    """Read a corpus from an AILA release folder, a folder of S*.txt, a .jsonl or a .csv file."""
    return list(iter_corpus(path))


def iter_corpus(path: str | Path) -> Iterator[Document]:
    """The documents of `read_corpus`, read and checked one at a time (a large corpus need not be held)."""
    p = Path(path)
    if not p.exists():
        raise CorpusError(f"{p}: no such file or folder")
    if p.is_dir():
        statutes = p / "Object_statutes"
        docs: Iterable[Document] = read_aila_statutes(statutes if statutes.is_dir() else p)
    elif p.suffix.lower() == ".jsonl":
        docs = read_jsonl(p)
    elif p.suffix.lower() == ".csv":
        docs = read_csv(p)
    else:
        raise CorpusError(f"{p}: unknown corpus format (want a folder, .jsonl or .csv)")
    yield from checked(docs, str(p), locate=None if p.is_dir() else partial(_line_of, p))


def read_aila_statutes(folder: Path) -> list[Document]:
    """Read AILA 2019 `S<n>.txt` files (lines `Title: ...` / `Desc: ...`), ordered by number."""
    files = [f for f in folder.glob("S*.txt") if _AILA_ID.match(f.stem)]
    if not files:
        raise CorpusError(f"{folder}: no statute files S<n>.txt in this folder")
    docs = []
    for f in sorted(files, key=lambda f: int(f.stem[1:])):
        text = _decode(_read_bytes(f), f, line=None).strip()
        if not text:
            raise CorpusError(f"{f}: empty statute text")
        docs.append(Document(f.stem, aila_title(text), text, jurisdiction="IN"))
    return docs


def aila_title(text: str) -> str:
    """The heading of an AILA statute text (its first line `Title: ...`), else ''."""
    first = text.split("\n", 1)[0]
    return first[len("Title:"):].strip() if first.startswith("Title:") else ""


def read_jsonl(path: Path) -> Iterator[Document]:
    """Yield Documents from JSON lines with string fields id, title and text."""
    for lineno, row in iter_jsonl(path):
        yield _document(row, path, lineno)


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSON Lines file, read and checked line by line."""
    for lineno, raw in enumerate(_read_lines(path), start=1):
        line = _decode(raw, path, lineno).strip()
        if not line:
            continue
        try:
            row = json.loads(line, parse_int=_parse_int)
        except json.JSONDecodeError as e:
            raise CorpusError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
        except RecursionError:
            raise CorpusError(f"{path}:{lineno}: invalid JSON (nested too deeply)") from None
        except ValueError as e:  # e.g. an integer of more digits than Python converts
            raise CorpusError(f"{path}:{lineno}: invalid JSON ({str(e).splitlines()[0][:120]})") from None
        if not isinstance(row, dict):
            raise CorpusError(f"{path}:{lineno}: expected a JSON object")
        yield lineno, row


class _LongNumber(str):
    """A JSON integer of more digits than Python converts (kept as its text so the error can name its field)."""


def _parse_int(text: str) -> int | str:
    return _LongNumber(text) if len(text.lstrip("-")) > 4000 else int(text)


def read_csv(path: Path) -> Iterator[Document]:
    """Yield Documents from a CSV file whose header has id, title and text columns."""
    text = _decode(_read_bytes(path), path, line=None)
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_BYTES))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = _csv_rows(reader, path)
    header = next(rows) or []
    missing = [f for f in REQUIRED_FIELDS if f not in header]
    if missing:
        raise CorpusError(f"{path}:1: missing column(s) {', '.join(missing)}")
    known = (*REQUIRED_FIELDS, *META_FIELDS)
    for row in rows:
        row["meta"] = {k: v for k, v in row.items() if k and k not in known and v not in (None, "")}
        yield _document(row, path, reader.line_num)


def _csv_rows(reader: csv.DictReader, path: Path) -> Iterator:
    """The header (None for an empty file), then each row; csv's errors (a field over the size limit, a stray
    quote) as a CorpusError naming the line."""
    try:
        yield reader.fieldnames
        yield from reader
    except csv.Error as e:
        raise CorpusError(f"{path}:{reader.line_num}: bad CSV ({e})") from None


def validate(docs: Iterable[Document], source: str) -> list[Document]:
    """Reject an empty corpus and duplicate ids; return the documents as a list."""
    return list(checked(docs, source))


def checked(docs: Iterable[Document], source: str,
            locate: Callable[[int], int] | None = None) -> Iterator[Document]:
    """The documents as they come, stopping at a duplicate id (named by the line `locate` gives for a document's
    number, else by its number); an empty corpus raises at its end."""
    seen: dict[str, int] = {}
    for i, d in enumerate(docs, start=1):
        if d.id in seen:
            if locate is None:
                raise CorpusError(f"{source}: duplicate id {d.id!r} (document {i}, first as document {seen[d.id]})")
            raise CorpusError(f"{source}:{locate(i)}: duplicate id {d.id!r} (first on line {locate(seen[d.id])})")
        seen[d.id] = i
        yield d
    if not seen:
        raise CorpusError(f"{source}: empty corpus (no documents)")


def _line_of(path: Path, number: int) -> int:
    """The line of a JSONL or CSV file where its `number`-th document (from 1) starts; read again up to it, which
    only a duplicate id needs, so that the readers stay plain Document streams."""
    if path.suffix.lower() == ".jsonl":
        return next(itertools.islice((lineno for lineno, _ in iter_jsonl(path)), number - 1, None))
    reader = csv.reader(io.StringIO(_decode(_read_bytes(path), path, line=None), newline=""))
    start, rows = 1, -1  # the header row is not a document
    for row in reader:
        rows += bool(row)  # blank lines are no rows (as csv.DictReader reads them)
        if row and rows == number:
            return start
        start = reader.line_num + 1
    raise AssertionError("unreachable: the document was read before")


class Fingerprint:
    """sha256 over ids, titles, texts and metadata when set (each followed by a NUL byte), fed one document at a
    time; a corpus without metadata keeps the fingerprint it had before metadata existed."""

    def __init__(self):
        self._h = hashlib.sha256()

    def add(self, d: Document, meta: dict | None = None) -> None:
        """Feed one document; `meta`: its metadata() when the caller has it already."""
        meta = d.metadata() if meta is None else meta
        extra = json.dumps(meta, sort_keys=True) + "\x00" if meta else ""
        self._h.update(f"{d.id}\x00{d.title}\x00{d.text}\x00{extra}".encode("utf-8"))

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def fingerprint(docs: Iterable[Document]) -> str:
    """The corpus's Fingerprint: equal fingerprints mean the same corpus."""
    f = Fingerprint()
    for d in docs:
        f.add(d)
    return f.hexdigest()


def _document(row: dict, path: Path, lineno: int) -> Document:
    """A Document from one JSONL/CSV row, its required fields checked (errors name file, line and field)."""
    _check_values(row, f"{path}:{lineno}")
    for name in REQUIRED_FIELDS:
        value = row.get(name)
        if name == "title" and value is None:
            value = row[name] = ""
        if not isinstance(value, str):
            problem = "missing" if value is None else f"not a string ({type(value).__name__})"
            raise CorpusError(f"{path}:{lineno}: field {name!r} {problem}")
    if not row["id"].strip():
        raise CorpusError(f"{path}:{lineno}: empty id")
    if not row["text"].strip():
        raise CorpusError(f"{path}:{lineno}: empty text for id {row['id']!r}")
    title = row["title"].strip()
    return Document(row["id"].strip(), title, row["text"].strip(), **_metadata(row, title, f"{path}:{lineno}"))


def _metadata(row: dict, title: str, where: str) -> dict:
    """The record's metadata fields, checked: scalars only, ISO dates; a Chinese article title gives `act`."""
    out: dict = {}
    for name in META_FIELDS:
        value = row.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise CorpusError(f"{where}: field {name!r} not a string ({type(value).__name__})")
        out[name] = check_date(str(value).strip(), f"{where}: field {name!r}") if name in DATE_FIELDS else str(value).strip()
    if out.get("valid_from") and out.get("valid_to") and out["valid_to"] <= out["valid_from"]:
        raise CorpusError(f"{where}: field 'valid_to' {out['valid_to']} is not after valid_from {out['valid_from']}")
    extra = row.get("meta") or {}
    if not isinstance(extra, dict):
        raise CorpusError(f"{where}: field 'meta' not an object ({type(extra).__name__})")
    for key, value in extra.items():
        if value is not None and not isinstance(value, str | int | float | bool):
            raise CorpusError(f"{where}: field 'meta.{key}' not a scalar ({type(value).__name__})")
    if extra:
        out["meta"] = dict(extra)
    if "act" not in out and (m := _ZH_ARTICLE.match(title)):
        out["act"] = m.group(1)  # STARD: 中华人民共和国民法典第四百六十五条 -> 中华人民共和国民法典
    return out


def _check_values(row: dict, where: str) -> None:
    """Refuse what would fail later, far from its line: a lone surrogate (UTF-16 half, e.g. JSON "\\ud800"),
    which no UTF-8 writer or tokenizer takes, and an integer too long to convert."""
    extra = row.get("meta")
    values = [(name, row.get(name)) for name in (*REQUIRED_FIELDS, *META_FIELDS)]
    if isinstance(extra, dict):
        values += [(f"meta.{key}", value) for key, value in extra.items()]
        values += [("meta", key) for key in extra]
    for name, value in values:
        if isinstance(value, _LongNumber):
            raise CorpusError(f"{where}: field {name!r} is a number of {len(value)} digits")
        if isinstance(value, str) and (m := _SURROGATE.search(value)):
            raise CorpusError(f"{where}: field {name!r} holds a lone surrogate {m.group()!r} (not a character)")


def check_date(value: str, what: str) -> str:
    """An ISO date (YYYY-MM-DD) as given, or a CorpusError naming `what` (week and ordinal forms, which
    date.fromisoformat takes, are refused: dates are compared as text)."""
    try:
        date.fromisoformat(value)
    except ValueError:
        raise CorpusError(f"{what} is not an ISO date YYYY-MM-DD ({value!r})") from None
    if not _ISO_DATE.fullmatch(value):
        raise CorpusError(f"{what} is not an ISO date YYYY-MM-DD ({value!r})")
    return value


def _read_lines(path: Path) -> Iterator[bytes]:
    """The lines of a file as bytes, split where bytes.splitlines splits (\\n, \\r\\n, \\r), read as they come."""
    try:
        with open(path, "rb") as f:
            for line in f:
                yield from line.splitlines()
    except OSError as e:
        raise CorpusError(f"{path}: cannot read ({e.strerror})") from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise CorpusError(f"{path}: cannot read ({e.strerror})") from None


def _decode(data: bytes, path: Path, line: int | None) -> str:
    """UTF-8 (BOM allowed at the start of a file) or a CorpusError naming file and line."""
    try:
        return data.decode("utf-8-sig" if line in (None, 1) else "utf-8")
    except UnicodeDecodeError as e:
        lineno = line if line is not None else data.count(b"\n", 0, e.start) + 1
        raise CorpusError(
            f"{path}:{lineno}: not valid UTF-8 (byte 0x{data[e.start]:02x})"
        ) from None

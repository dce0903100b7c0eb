"""The on-disk index folder: manifest with checksums, atomic writes, verified loads.

A build writes into a hidden temporary sibling folder and renames it into place only when
every file and the manifest are complete, so an interrupted or failed build leaves any
previous index at the same path untouched. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from .corpus import Document, Fingerprint

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MMAP_MIN_BYTES = 256 << 20  # indexes this large are memory-mapped, not read (docs/performance.md)


class IndexFileError(RuntimeError):
    """A missing, damaged or incompatible index; the message names the file and the cause."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def write_index(path: str | Path, fill: Callable[[Path], dict]) -> dict:
    """Let `fill(tmp_folder)` write files and return the manifest body; then checksum and swap in."""
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        manifest = dict(fill(tmp))
        manifest["format_version"] = FORMAT_VERSION
        manifest["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        manifest["files"] = {
            str(f.relative_to(tmp)): {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
            for f in sorted(tmp.rglob("*")) if f.is_file()
        }
        with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def read_manifest(path: str | Path, verify: bool = True) -> dict:
    """The manifest of an index folder, after checking every listed file's size (and sha256 when `verify`)."""
    folder = Path(path)
    mpath = folder / MANIFEST
    if not folder.is_dir():
        raise IndexFileError(f"{folder}: no index folder here")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexFileError(f"{mpath}: missing (not an index folder, or an unfinished build)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexFileError(f"{mpath}: damaged manifest ({e})") from None
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise IndexFileError(f"{mpath}: index format {version}, this version reads {FORMAT_VERSION}; rebuild the index")
    for name, meta in manifest.get("files", {}).items():
        f = folder / name
        if not f.is_file():
            raise IndexFileError(f"{f}: missing from the index folder")
        size = f.stat().st_size
        if size != meta["bytes"]:
            raise IndexFileError(f"{f}: damaged ({size} bytes, manifest says {meta['bytes']})")
    if verify:
        verify_checksums(folder, manifest)
    return manifest


def verify_checksums(folder: Path, manifest: dict) -> None:
    """Check every listed file's sha256 against the manifest (reads every byte)."""
    for name, meta in manifest.get("files", {}).items():
        f = folder / name
        if sha256_file(f) != meta["sha256"]:
            raise IndexFileError(f"{f}: damaged (sha256 differs from the manifest)")


def index_bytes(manifest: dict) -> int:
    """Total size of the index's files."""
    return sum(meta["bytes"] for meta in manifest.get("files", {}).values())


def prefers_mmap(manifest: dict) -> bool:
    """Map an index's arrays rather than read them when its files total MMAP_MIN_BYTES or more."""
    return index_bytes(manifest) >= MMAP_MIN_BYTES


def _swap_in(tmp: Path, target: Path) -> None:
    """Replace `target` by `tmp`; the old folder is moved aside first and removed last."""
    if not target.exists():
        os.rename(tmp, target)
        return
    if not (target / MANIFEST).is_file() and any(target.iterdir()):
        raise IndexFileError(f"{target}: exists and is not an index folder; not replacing it")
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.rename(target, old / "index")
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old / "index", target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def rank_ids(ids: list[str]) -> np.ndarray:
    """Position of each id in sorted id order (how ties are broken)."""
    order = np.argsort(np.asarray(ids, dtype=object), kind="stable")
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order))
    return ranks


class DocumentTable:
    """The index's documents: ids in memory, texts read from `documents.jsonl` on demand by offset.

    Also a sequence of Documents read back from disk, so a build can stream a corpus written here
    first (`write` while reading it) instead of holding every text.
    """

    FILE, OFFSETS, IDS = "documents.jsonl", "documents.offsets.npy", "documents.ids.json"
    ID_RANKS = "documents.idranks.npy"  # sorted-id position of each document, so loads need not sort

    def __init__(self, folder: Path, ids: list[str], offsets, id_ranks: np.ndarray | None = None,
                 fingerprint: str | None = None):
        self.ids = ids
        self.id_ranks = id_ranks
        self.fingerprint = fingerprint  # of the documents written; None for a table loaded from an index
        self._path = folder / self.FILE
        self._offsets = offsets
        self._cache: dict[int, dict] = {}

    @classmethod
    def write(cls, folder: Path, documents: Iterable[Document]) -> DocumentTable:
        """documents.jsonl (id, title, text) written as the documents come, the byte offset of each line,
        the id list and id ranks; returns the table (with the documents' fingerprint)."""
        encode = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(..., ensure_ascii=False)
        ids, sizes, fingerprint = [], [], Fingerprint()
        with open(folder / cls.FILE, "wb") as f:
            for d in documents:
                line = (encode({"id": d.id, "title": d.title, "text": d.text}) + "\n").encode("utf-8")
                f.write(line)
                sizes.append(len(line))
                ids.append(d.id)
                fingerprint.add(d)
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        np.save(folder / cls.OFFSETS, offsets, allow_pickle=False)
        with open(folder / cls.IDS, "w", encoding="utf-8") as f:
            json.dump(ids, f, ensure_ascii=False)
        ranks = rank_ids(ids)
        np.save(folder / cls.ID_RANKS, ranks, allow_pickle=False)
        return cls(folder, ids, offsets, ranks, fingerprint.hexdigest())

    def copy_into(self, folder: Path) -> None:
        """The table's files into another folder: hard links where the file system allows, else copies."""
        for name in (self.FILE, self.OFFSETS, self.IDS, self.ID_RANKS):
            source = self._path.parent / name
            try:
                os.link(source, folder / name)
            except OSError:
                shutil.copyfile(source, folder / name)

    def __iter__(self) -> Iterator[Document]:
        """The documents in order, read from the file a line at a time (none kept)."""
        with open(self._path, "rb") as f:
            for line in f:
                d = json.loads(line)
                yield Document(d["id"], d["title"], d["text"])

    def __getitem__(self, i: int | slice) -> Document | list[Document]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return Document(**self.get(i))

    @classmethod
    def load(cls, folder: Path, mmap: bool = False) -> DocumentTable:
        """Read the id list, offsets and id ranks (absent in older indexes); texts stay on disk until asked for."""
        with open(folder / cls.IDS, encoding="utf-8") as f:
            ids = json.load(f)
        mode = "r" if mmap else None
        offsets = np.load(folder / cls.OFFSETS, allow_pickle=False, mmap_mode=mode)
        ranks_file = folder / cls.ID_RANKS
        ranks = np.load(ranks_file, allow_pickle=False, mmap_mode=mode) if ranks_file.is_file() else None
        return cls(folder, ids, offsets, ranks)

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, i: int) -> dict:
        """Document `i` as {"id", "title", "text"}."""
        if i not in self._cache:
            start, end = int(self._offsets[i]), int(self._offsets[i + 1])
            with open(self._path, "rb") as f:
                f.seek(start)
                self._cache[i] = json.loads(f.read(end - start))
        return self._cache[i]

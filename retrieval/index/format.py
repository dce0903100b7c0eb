"""The on-disk index folder: manifest with checksums, generations swapped atomically, verified loads.

An index folder holds `manifest.json` and one generation folder (`gen-000001/`, ...) with the
data files. A build writes the next generation into a temporary folder marked as partial,
renames it into place, then replaces `manifest.json` in one rename: a reader always sees a
complete index, an interrupted or failed build leaves the previous one intact, and builds
into one folder take a lock (`.NAME.lock` beside it). Only a folder whose manifest carries
this project's format marker is ever replaced. Nothing is pickled; a new index's permissions follow the umask,
an update keeps those of the index it replaces.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

from ..corpus import Document, Fingerprint
from ..tempfiles import remove_abandoned, temp_path

log = logging.getLogger(__name__)

FORMAT = "statute-retrieval-index"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
PARTIAL = ".partial"  # marker file in a folder that a build is still writing
CHECKSUM = "manifest_sha256"  # the manifest's own checksum (manifests written before it have none)
MMAP_MIN_BYTES = 256 << 20  # indexes this large are memory-mapped, not read (docs/performance.md)
RECORD_CACHE = 4096  # documents a DocumentTable keeps after reading them (hits shown, reranked)
_GEN = re.compile(r"gen-(\d{6,})")  # always fullmatch: "gen-000001\n" is not a generation


class IndexFileError(RuntimeError):
    """A missing, damaged or incompatible index; the message names the file and the cause."""


class NotFoundError(LookupError):
    """An index folder, or a document id in it, that is not there (exit code 3, README "Exit codes")."""


class IndexNotFoundError(NotFoundError, IndexFileError):
    """No index at the path given: no folder, or no manifest in it."""


class IndexTargetError(ValueError):
    """An output path that must not be written (not an index folder, a file, inside the corpus, not writable)."""


class IndexWriteError(IndexFileError):
    """Writing an index failed midway (disk full, I/O error); the previous index is unchanged."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def is_index_manifest(manifest: object) -> bool:
    """True for a manifest this project wrote (format marker, or the marker-less format 1)."""
    if not isinstance(manifest, dict):
        return False
    if manifest.get("format") == FORMAT:
        return True
    return manifest.get("format_version") == 1 and isinstance(manifest.get("files"), dict) and "legs" in manifest


def write_index(path: str | Path, fill: Callable[[Path], dict], *, wait: bool = True) -> dict:
    """Let `fill(folder)` write the data files and return the manifest body; then checksum and switch to them.

    The new data becomes the index's next generation; the manifest switch is one rename.
    `wait` False: stop at once, instead of waiting, when another build holds the folder's lock.
    """
    target = _target(path)
    state = check_target(target)
    with _write_errors(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        with nullcontext() if target in _HELD else _build_lock(target, wait):
            _remove_debris(target)
            state = check_target(target)  # another build may have finished while we waited
            if state == "index":
                return _next_generation(target, fill)
            tmp = _partial_dir(temp_path(target.parent, target.name))
            try:
                manifest = _fill_generation(tmp, "gen-000001", fill)
                _write_manifest(tmp, manifest)
                os.remove(tmp / PARTIAL)
                if state == "old-index":
                    _replace_folder(tmp, target)
                else:  # absent, or an empty folder (rename replaces an empty directory)
                    os.rename(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            return manifest


def _target(path: str | Path) -> Path:
    """The absolute index path; a symbolic link to a folder stands for that folder (a build renames a new
    index into place, which would replace the link), a link to nothing is refused."""
    target = Path(path).absolute()
    if target.is_symlink():
        if not target.is_dir():
            raise IndexTargetError(f"{target}: a symbolic link to no folder; not following it, choose another --out")
        return target.resolve()
    return target


@contextmanager
def _write_errors(target: Path) -> Iterator[None]:
    """The OS's errors while an index is written, as one line: a folder that cannot be written is the user's
    (IndexTargetError, exit 2), a full disk or an I/O error the system's (IndexWriteError)."""
    try:
        yield
    except OSError as e:
        where = e.filename or target
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise IndexTargetError(f"{where}: cannot write the index here ({e.strerror}); nothing changed") from None
        raise IndexWriteError(f"{where}: writing the index failed ({e.strerror or e}); the previous index, if any, "
                              "is unchanged") from None


def check_target(target: Path, corpus: str | Path | None = None) -> str:
    """What an output path holds: 'absent', 'empty', 'index' (this format) or 'old-index' (format 1).

    Anything else, or a path equal to or inside `corpus`, raises IndexTargetError: it must not be replaced.
    """
    target = Path(target).absolute()
    if corpus is not None:
        source = Path(corpus).resolve()
        if target.resolve() == source or source in target.resolve().parents:
            raise IndexTargetError(f"{target}: is the corpus path or inside it ({source}); choose another --out")
    if not target.exists():
        return "absent"
    if not target.is_dir():
        raise IndexTargetError(f"{target}: exists and is not a folder; choose another --out")
    manifest = _read_json(target / MANIFEST)
    if is_index_manifest(manifest):
        return "index" if manifest.get("format") == FORMAT else "old-index"
    if not any(target.iterdir()):
        return "empty"
    raise IndexTargetError(f"{target}: exists and is not an index folder (no statute-retrieval manifest); "
                           "not replacing it, choose another --out")


@contextmanager
def index_lock(path: str | Path, wait: bool = True) -> Iterator[None]:
    """Hold the index's build lock (see _build_lock) for a whole read-modify-write, e.g. an update; a
    `write_index` inside it, in this process, runs under this hold instead of taking the lock again."""
    target = _target(path)
    if target in _HELD:
        yield
        return
    if not target.is_dir():  # an update or delete of a mistyped path creates nothing
        raise IndexFileError(f"{target}: no index folder here")
    with _write_errors(target), _build_lock(target, wait):
        _HELD.add(target)
        try:
            yield
        finally:
            _HELD.discard(target)


_HELD: set[Path] = set()  # index folders whose lock this process holds


@contextmanager
def _build_lock(target: Path, wait: bool) -> Iterator[None]:
    """An exclusive lock on `.NAME.lock` beside the index folder for the length of one build; the file is
    removed when the build ends (a waiter that then holds a removed file's lock takes the new file's)."""
    lock_path = target.parent / f".{target.name}.lock"
    while True:
        try:
            fd = os.open(lock_path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o666)
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
            raise IndexTargetError(f"{lock_path}: a symbolic link where the build lock goes; not following it "
                                   "(remove it if you did not put it there)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                os.close(fd)
                raise IndexTargetError(f"{target}: another build or update is writing this index; try again "
                                       "when it has finished") from None
            log.warning("%s: another build or update is writing this index; waiting for it", target)
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(lock_path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder removed the file as we waited: lock the new one
    try:
        yield
    finally:
        os.unlink(lock_path)
        os.close(fd)


def _remove_debris(target: Path) -> None:
    """Remove what killed builds and updates of this index left (under its lock, so no writer of it runs): the
    temporaries beside it and inside it (tempfiles.py names them)."""
    gone = remove_abandoned(target.parent, target.name)
    if target.is_dir() and not target.is_symlink():
        gone += remove_abandoned(target)
    for path in gone:
        log.info("removed %s, left by an interrupted build or update", path)


def _partial_dir(path: Path) -> Path:
    """A new folder (mode from the umask) marked as being written."""
    path.mkdir()
    (path / PARTIAL).touch()
    return path


def _fill_generation(root: Path, generation: str, fill: Callable[[Path], dict]) -> dict:
    """Create `root/generation`, let `fill` write into it, and return the complete manifest."""
    data = root / generation
    data.mkdir()
    manifest = dict(fill(data))
    manifest.update(format=FORMAT, format_version=FORMAT_VERSION, generation=generation,
                    created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    manifest["files"] = {str(f.relative_to(data)): {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
                         for f in sorted(data.rglob("*")) if f.is_file()}
    manifest[CHECKSUM] = manifest_checksum(manifest)
    return manifest


def manifest_checksum(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON (sorted keys, no spaces) without its own checksum field: an
    edited manifest (fusion weights, file table) is refused at load instead of changing rankings silently."""
    rest = {k: v for k, v in manifest.items() if k != CHECKSUM}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                          .encode("utf-8")).hexdigest()


def _next_generation(target: Path, fill: Callable[[Path], dict]) -> dict:
    """Write the next generation inside an existing index, switch the manifest to it, drop older ones."""
    current = _read_json(target / MANIFEST).get("generation", "gen-000000")
    number = max([int(m.group(1)) for p in target.iterdir() if (m := _GEN.fullmatch(p.name))] + [0]) + 1
    generation = f"gen-{number:06d}"
    modes = _modes(target, current)
    tmp = _partial_dir(temp_path(target))
    try:
        manifest = _fill_generation(tmp, generation, fill)
        if modes:
            _apply_modes(tmp / generation, *modes)
        os.rename(tmp / generation, target / generation)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_manifest(target, manifest, modes[1] if modes else None)
    except BaseException:
        shutil.rmtree(target / generation, ignore_errors=True)
        raise
    for p in target.iterdir():  # readers of an older generation retry with the new manifest (open_index)
        if _GEN.fullmatch(p.name) and p.name != generation:
            shutil.rmtree(p, ignore_errors=True)
    log.debug("%s: switched from %s to %s", target, current, generation)
    return manifest


def _modes(target: Path, generation: str) -> tuple[int, int] | None:
    """The permission bits of the index's current generation folder and manifest (None when either is gone):
    an update keeps them (a folder the owner restricted stays restricted)."""
    try:
        return (stat.S_IMODE((target / generation).stat().st_mode), stat.S_IMODE((target / MANIFEST).stat().st_mode))
    except OSError:
        return None


def _apply_modes(root: Path, folder_mode: int, file_mode: int) -> None:
    """`folder_mode` on `root` and every folder in it, `file_mode` on every file."""
    for p in [root, *root.rglob("*")]:
        os.chmod(p, folder_mode if p.is_dir() else file_mode)


def _write_manifest(folder: Path, manifest: dict, mode: int | None = None) -> None:
    """`manifest.json` written beside (with permission bits `mode`, else the umask's), synced, and renamed into
    place (readers see old or new, never half)."""
    tmp = temp_path(folder, MANIFEST)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            json.dump(manifest, f, indent=2, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / MANIFEST)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _replace_folder(new: Path, target: Path) -> None:
    """Swap a format-1 index folder for a new one: the old one is moved aside first and removed last."""
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:12]}"  # not a temporary: the index until the swap
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _read_json(path: Path) -> dict:
    """A JSON object from `path`, or {} when it is missing or not a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_manifest(path: str | Path, verify: bool = True) -> dict:
    """The manifest of an index folder, after checking it lists every file with its size (and sha256 when `verify`)."""
    folder = Path(path)
    mpath = folder / MANIFEST
    if not folder.is_dir():
        raise IndexNotFoundError(f"{folder}: no index folder here")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexNotFoundError(f"{mpath}: missing (not an index folder, or an unfinished build)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexFileError(f"{mpath}: damaged manifest ({e})") from None
    if not is_index_manifest(manifest):
        raise IndexFileError(f"{mpath}: not a statute-retrieval index manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise IndexFileError(f"{mpath}: index format {version}, this version reads {FORMAT_VERSION}; rebuild the "
                             f"index: retrieval build CORPUS --out {folder}")
    _check_manifest_fields(mpath, manifest)
    data = data_dir(folder, manifest)
    for name, meta in manifest["files"].items():
        f = data / name
        if not f.is_file():
            raise IndexFileError(f"{f}: missing from the index folder")
        size = f.stat().st_size
        if size != meta["bytes"]:
            raise IndexFileError(f"{f}: damaged ({size} bytes, manifest says {meta['bytes']})")
    if verify:
        verify_checksums(folder, manifest)
    return manifest


def _check_manifest_fields(mpath: Path, manifest: dict) -> None:
    """Refuse a manifest whose file table, generation or document count is missing or malformed."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise IndexFileError(f"{mpath}: no file table ('files'); the index cannot be checked, rebuild it")
    for name, meta in files.items():
        if not _inside(name):
            raise IndexFileError(f"{mpath}: file table entry {name!r} is not a path inside the index")
        if not (isinstance(meta, dict) and isinstance(meta.get("bytes"), int) and isinstance(meta.get("sha256"), str)):
            raise IndexFileError(f"{mpath}: file table entry {name!r} lacks bytes/sha256")
    if not _GEN.fullmatch(str(manifest.get("generation", ""))):
        raise IndexFileError(f"{mpath}: field 'generation' missing or malformed")
    count = manifest.get("documents")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise IndexFileError(f"{mpath}: field 'documents' missing or not a positive count")
    if CHECKSUM in manifest and manifest[CHECKSUM] != manifest_checksum(manifest):
        raise IndexFileError(f"{mpath}: edited or damaged (its {CHECKSUM} does not match its content); rebuild the "
                             "index, or give changed fusion settings with --fusion-config instead of editing it")


def _inside(name: str) -> bool:
    """A file table name that stays inside the generation folder: relative, no '..', '.' or empty part."""
    return "\\" not in name and "\x00" not in name and all(p not in ("", ".", "..") for p in name.split("/"))


def current_generation(folder: str | Path) -> str | None:
    """The generation the manifest names now (None when it cannot be read): loads retry when it changes."""
    return _read_json(Path(folder) / MANIFEST).get("generation")


def data_dir(folder: str | Path, manifest: dict) -> Path:
    """The folder of the index's current generation (where the manifest's files are)."""
    return Path(folder) / manifest["generation"]


def check_count(what: str, found: int, manifest: dict) -> None:
    """An index part must hold as many documents as the manifest says."""
    if found != manifest["documents"]:
        raise IndexFileError(f"{what}: holds {found} documents, the manifest says {manifest['documents']}")


def verify_checksums(folder: Path, manifest: dict) -> None:
    """Check every listed file's sha256 against the manifest (reads every byte)."""
    data = data_dir(folder, manifest)
    for name, meta in manifest["files"].items():
        f = data / name
        if sha256_file(f) != meta["sha256"]:
            raise IndexFileError(f"{f}: damaged (sha256 differs from the manifest)")


def index_bytes(manifest: dict) -> int:
    """Total size of the index's files."""
    return sum(meta["bytes"] for meta in manifest.get("files", {}).values())


def prefers_mmap(manifest: dict) -> bool:
    """Map an index's arrays rather than read them when its files total MMAP_MIN_BYTES or more."""
    return index_bytes(manifest) >= MMAP_MIN_BYTES


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
        # opened once: texts stay readable after a newer build removes this generation's folder
        self._file = open(self._path, "rb")  # noqa: SIM115 - lives as long as the table
        self._offsets = offsets
        self._cache: OrderedDict[int, dict] = OrderedDict()  # the RECORD_CACHE records read last

    @classmethod
    def write(cls, folder: Path, documents: Iterable[Document]) -> DocumentTable:
        """documents.jsonl (id, title, text and the metadata that is set) written as the documents come, the byte
        offset of each line, the id list and id ranks; returns the table (with the documents' fingerprint)."""
        writer = TableWriter(folder)
        for d in documents:
            writer.add(d)
        return writer.finish()

    def __iter__(self) -> Iterator[Document]:
        """The documents in order, read from the file a line at a time (none kept)."""
        for d in self.records():
            yield Document(d["id"], d["title"], d["text"])

    def records(self) -> Iterator[dict]:
        """Each document's stored fields (id, title, text and metadata) in order, a line at a time (none kept)."""
        with open(self._path, "rb") as f:
            for line in f:
                yield json.loads(line)

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
        """Document `i` as {"id", "title", "text"} and its metadata; the last RECORD_CACHE read are kept."""
        cache = self._cache
        if i in cache:
            cache.move_to_end(i)
            return cache[i]
        start, end = int(self._offsets[i]), int(self._offsets[i + 1])
        record = cache[i] = json.loads(os.pread(self._file.fileno(), end - start, start))
        if len(cache) > RECORD_CACHE:
            cache.popitem(last=False)
        return record


class TableWriter:
    """A DocumentTable written one document at a time (`add`), completed by `finish`: only ids are held."""

    def __init__(self, folder: Path):
        self._folder = folder
        self._file = open(folder / DocumentTable.FILE, "wb")  # noqa: SIM115 - closed by finish
        self._encode = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(..., ensure_ascii=False)
        self._ids: list[str] = []
        self._sizes: list[int] = []
        self._fingerprint = Fingerprint()

    def add(self, d: Document) -> None:
        """Append one document's line to documents.jsonl."""
        meta = d.metadata()
        line = (self._encode({"id": d.id, "title": d.title, "text": d.text, **meta}) + "\n").encode("utf-8")
        self._file.write(line)
        self._sizes.append(len(line))
        self._ids.append(d.id)
        self._fingerprint.add(d, meta)

    def finish(self) -> DocumentTable:
        """Close documents.jsonl; write the offsets, the id list and the id ranks; the table (with its fingerprint)."""
        self._file.close()
        folder, ids = self._folder, self._ids
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(self._sizes, out=offsets[1:])
        np.save(folder / DocumentTable.OFFSETS, offsets, allow_pickle=False)
        with open(folder / DocumentTable.IDS, "w", encoding="utf-8") as f:
            json.dump(ids, f, ensure_ascii=False)
        ranks = rank_ids(ids)
        np.save(folder / DocumentTable.ID_RANKS, ranks, allow_pickle=False)
        return DocumentTable(folder, ids, offsets, ranks, self._fingerprint.hexdigest())


class DocumentStream:
    """Documents from a one-pass source (a corpus reader), written into the index's document table as the first
    pass over them goes by; later passes read them back from the table. A build through it holds no text beyond
    what the pass in progress keeps (the BM25 leg: one chunk). A pass must end before the next one starts."""

    def __init__(self, folder: Path, documents: Iterable[Document]):
        self._writer = TableWriter(folder)
        self._source: Iterator[Document] | None = iter(documents)
        self._table: DocumentTable | None = None

    def __iter__(self) -> Iterator[Document]:
        return self._pass()  # a generator: which kind of pass is decided when it starts, not when it is made

    def _pass(self) -> Iterator[Document]:
        if self._table is not None:
            yield from self._table
            return
        if self._source is None:
            raise RuntimeError("the documents are read again before their first pass has ended")
        source, self._source = self._source, None
        for d in source:
            self._writer.add(d)
            yield d
        self._table = self._writer.finish()

    def table(self) -> DocumentTable:
        """The written table (the source read to its end first, when no pass has been made)."""
        if self._table is None:
            for _ in self:
                pass
        return self._table

"""A retriever's index folder: its legs and manifest written into a new generation, and loaded back.

The folder's layout, generations, locks and checks are store.py's; this module decides what a
retriever puts there (the document table, one sub-folder and config per leg, the manifest body,
a Milvus-backed index's collections) and how the legs come back from it.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..corpus import Document
from ..dense.gpu import check_device
from ..legs import BuildOptions, LoadOptions, RowOrder, leg_type
from ..settings import FusionConfig, SettingsError
from .backends import of_manifest
from .format import (
    DocumentStream,
    DocumentTable,
    IndexFileError,
    check_count,
    current_generation,
    data_dir,
    prefers_mmap,
    read_manifest,
    verify_checksums,
    write_index,
)

LEG_CONFIG = "config.json"  # each leg's own settings, in its folder
_LOAD_ATTEMPTS = 5


def save(retriever, path: str | Path) -> dict:
    """Write a freshly built retriever's index folder; returns the manifest.

    A backend's resources (a Milvus collection) this save replaces stay until the next save (a server still on
    them can reload first); those that save replaced go once the index has switched."""

    def fill(folder: Path) -> dict:
        if isinstance(retriever._docs, DocumentTable):
            raise ValueError("save a retriever right after build; a loaded index is already on disk")
        DocumentTable.write(folder, retriever._docs)
        return save_legs(retriever, folder, Path(path).name, replaced)

    before = _previous_manifest(path)
    old, held = of_manifest(before), retriever.backend.held(retriever.leg)
    replaced = old.pointed(before) - held
    manifest = write_index(path, fill)
    old.drop(old.replaced(before) - held)
    return manifest


def save_legs(retriever, folder: Path, index_name: str, replaced: set[tuple[str, str]] = frozenset()) -> dict:
    """Each leg's files in its own sub-folder of the generation `folder`; returns the manifest body (with its
    backend's `backend` entry, naming the resources this save `replaced`)."""
    manifest = {"name": index_name, "documents": len(retriever), "legs": list(retriever.legs),
                "corpus_fingerprint": retriever.info.get("corpus_fingerprint"), "fusion": retriever.fusion.to_dict(),
                "build": retriever.info.get("build", {}), "versions": library_versions()}
    # the named reranker (rerank.index_settings), languages (languages.plan), an untuned index's fusion prior (defaults)
    for key in ("rerank", "languages", "default_fusion"):
        if retriever.info.get(key):
            manifest[key] = retriever.info[key]
    for name, leg in retriever.leg.items():
        (folder / name).mkdir()
        config = {"type": name, **leg.save(folder / name)}
        (folder / name / LEG_CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
        manifest[name] = config
    backend = retriever.backend.entry(manifest, replaced)
    if backend:
        manifest["backend"] = backend
    return manifest


def build_into(cls, path: str | Path, documents: Iterable[Document], names: Sequence[str],
               fusion_config: FusionConfig, extra: dict, opts: BuildOptions) -> dict:
    """Build and save in one go: the document table is written into the new generation while the legs read the
    documents as they stream by (store.DocumentStream), so a BM25-only build holds each text at most once, a
    chunk at a time; `extra`: the manifest's rerank and languages entries. Returns the manifest."""

    def fill(folder: Path) -> dict:
        docs = DocumentStream(folder, documents)
        order = RowOrder(np.zeros(0, dtype=np.int64))  # the ids are known once the documents have passed
        built = {name: leg_type(name).build(docs, opts, order) for name in names}
        table = docs.table()
        order.id_ranks = table.id_ranks
        info = {"documents": len(table), "corpus_fingerprint": table.fingerprint, "build": opts.timings, **extra}
        return save_legs(cls(table, built, fusion_config=fusion_config, info=info), folder, Path(path).name)

    return write_index(path, fill)


def load(cls, path: str | Path, mmap: bool | None, verify: bool | None, fusion_config: FusionConfig | None,
         options: dict[str, Any]):
    """The retriever of an index folder, after checking its files; a build may switch generations meanwhile:
    then retry."""
    folder = Path(path)
    if options.get("device"):
        check_device(options["device"])  # a CUDA device that cannot be honoured is the user's error, not the index's
    for attempt in range(_LOAD_ATTEMPTS):
        generation = current_generation(folder)
        try:
            manifest = read_manifest(folder, verify=False)
            return _open(cls, folder, manifest, mmap, verify, fusion_config, options)
        except (IndexFileError, OSError) as e:
            if attempt + 1 < _LOAD_ATTEMPTS and current_generation(folder) != generation:
                continue
            if isinstance(e, IndexFileError):
                raise
            raise IndexFileError(f"{folder}: cannot load index ({type(e).__name__}: {e})") from None
    raise AssertionError("unreachable")


def _open(cls, folder: Path, manifest: dict, mmap: bool | None, verify: bool | None,
          fusion_config: FusionConfig | None, options: dict):
    """The retriever of the manifest's generation."""
    data = data_dir(folder, manifest)
    mmap = prefers_mmap(manifest) if mmap is None else mmap
    if (not mmap) if verify is None else verify:
        verify_checksums(folder, manifest)
    opts = LoadOptions(mmap=mmap, backend=of_manifest(manifest), **options)
    try:
        docs = DocumentTable.load(data, mmap=mmap)
        check_count(str(data / DocumentTable.IDS), len(docs), manifest)
        order = RowOrder(docs.id_ranks)
        legs = {}
        for name in manifest["legs"]:
            config = json.loads((data / name / LEG_CONFIG).read_text(encoding="utf-8"))
            legs[name] = leg_type(config.get("type", name)).load(data / name, config, opts, order)
            check_count(str(data / name), len(legs[name]), manifest)
    except (IndexFileError, SettingsError):
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError, IndexError) as e:
        # a damaged file the sizes do not reveal (a memory-mapped load skips the sha256s) fails in its reader
        raise IndexFileError(f"{folder}: cannot load index ({type(e).__name__}: {e})") from None
    fusion_config = fusion_config or FusionConfig.from_dict(manifest.get("fusion", {}))
    return cls(docs, legs, fusion_config=fusion_config, info=manifest, backend=opts.backend)


def _previous_manifest(path: str | Path) -> dict | None:
    """The manifest an index folder holds now (None: none, or not readable), to find what a save replaces."""
    try:
        return read_manifest(path, verify=False)
    except (IndexFileError, OSError, ValueError):
        return None


def library_versions() -> dict:
    """Versions of Python, this package and the libraries that shape results."""
    import importlib.metadata as md

    out = {"python": platform.python_version(), "retrieval": __version__}
    for pkg in ("numpy", "faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cuvs", "bm25s", "rank-bm25",
                "sentence-transformers", "transformers", "torch", "jieba"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out



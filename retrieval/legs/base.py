"""The Leg protocol: one ranking of the corpus per query, from one kind of evidence.

A leg is built from documents, ranks a batch of queries to a depth (optionally inside a set of
allowed documents), and saves/loads its own sub-folder, whose settings and checksums the index
manifest gathers. The retriever composes legs by name; it never looks inside one. A leg type is
registered under a name (`register_leg`), which the manifest records so `load` finds it again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ..ranking import Ranking, RowOrder


@runtime_checkable
class Leg(Protocol):
    """One retrieval leg over the documents of an index (rows 0..n-1 in corpus order)."""

    name: ClassVar[str]  # its registered type name, e.g. "dense", "bm25"

    def __len__(self) -> int:
        """Number of documents the leg covers."""
        ...

    def rank(self, queries: Sequence[str], depth: int, allowed: np.ndarray | None = None,
             **inputs: Any) -> list[Ranking]:
        """Per query, up to `depth` (row, score) pairs best first, ties by descending document id; only rows in
        `allowed` (sorted) when given. `inputs` are leg-specific extras (e.g. the dense leg's query vectors)."""
        ...

    def matched_terms(self, query: str, row: int) -> tuple[str, ...]:
        """Query words the document matches (legs without words return ())."""
        ...

    def save(self, folder: Path) -> dict:
        """Write the leg's files into `folder` (its own sub-folder); returns its config for the manifest."""
        ...

    def rebuilt(self, before: Sequence, after: Sequence, order: RowOrder, plan: Any, progress: bool = False) -> Leg:
        """The leg over the documents `after` from its state over `before` (update, delete); `plan` (an
        updates.Plan) counts the texts encoded."""
        ...

    def to_encode(self, before: Sequence, after: Sequence) -> int:
        """Texts `rebuilt` would send to an encoder (a dry run's count)."""
        ...

    @property
    def engine(self) -> Any:
        """The engine the leg searches (a VectorStore, a lexical engine), which a backend may replace; or None."""
        ...

    def with_engine(self, engine: Any) -> Leg:
        """The same leg searching `engine` (a backend's published copy of its own)."""
        ...

    def prefetch(self, rows: Sequence[int]) -> None:
        """Look up in one batch what the hits about to be shown need (a remote engine's postings)."""
        ...


class LegBase:
    """Defaults of the Leg protocol for a leg that holds no engine: no words, rebuilt by building afresh."""

    name: ClassVar[str]

    def matched_terms(self, query: str, row: int) -> tuple[str, ...]:
        return ()

    def rebuilt(self, before: Sequence, after: Sequence, order: RowOrder, plan: Any, progress: bool = False) -> Leg:
        """Built afresh over `after` with default options (a leg keeping nothing worth reusing)."""
        return type(self).build(after, BuildOptions(progress=progress), order)

    def to_encode(self, before: Sequence, after: Sequence) -> int:
        return 0

    @property
    def engine(self) -> Any:
        return None

    def with_engine(self, engine: Any) -> Leg:
        raise ValueError(f"the {self.name} leg has no engine another backend could hold")

    def prefetch(self, rows: Sequence[int]) -> None:
        """Nothing to fetch."""


@dataclass
class BuildOptions:
    """Everything `build` may pass to a leg; each leg reads the fields it needs and ignores the rest."""

    encoder: Any = None  # Encoder or EncoderConfig (dense)
    vectors: np.ndarray | None = None  # document vectors encoded elsewhere (dense)
    dense_kind: str = "auto"
    dense_backend: str = "auto"
    chunking: Any = None  # ChunkSettings (dense)
    encode_titles: bool | None = None
    language: str = "auto"  # BM25 analysis
    analysis: Any = None  # AnalyzerSettings
    user_words: Sequence[str] = ()
    bm25_backend: str = "bm25s"
    bm25: Any = None  # Bm25Params
    bm25_workers: int | None = None  # BM25 analysis processes (None: the cores available)
    backend: Any = None  # an index.backends.Backend the built legs are published into (None: local files)
    cache: Any = None  # folder of an embedding cache (embedcache.attach): texts found there are not encoded
    progress: bool = True
    timings: dict[str, float] = field(default_factory=dict)  # legs add their build figures here


@dataclass
class LoadOptions:
    """What `load` may pass to a leg: memory-mapping, the query-time model and device, the dense backend."""

    mmap: bool = False
    model: str | None = None
    device: str | None = None
    dense_backend: str = "auto"
    load_encoder: bool = True
    encoder: Callable[[], Any] | None = None  # makes the dense leg's encoder (update: its IndexSpec's make_encoder)
    chunking: Any = None  # query-side chunk settings overriding the index's (ChunkSettings)
    bm25: Any = None  # query-side BM25 settings overriding the index's (Bm25Params: query window)
    backend: Any = None  # the index.backends.Backend whose engines a saved leg's config may point at


LegType = Any  # a class with build(documents, options, order) and load(folder, config, options, order)
_REGISTRY: dict[str, LegType] = {}
_DEFAULT: list[str] = []  # the legs `build` makes unless told otherwise, in registration order


def register_leg(name: str, *, default: bool = False) -> Callable[[LegType], LegType]:
    """Class decorator: make a leg type buildable and loadable by `name` (`default`: built unless told otherwise)."""

    def add(cls: LegType) -> LegType:
        cls.name = name
        _REGISTRY[name] = cls
        if default and name not in _DEFAULT:
            _DEFAULT.append(name)
        return cls

    return add


def leg_type(name: str) -> LegType:
    """The registered leg type called `name`."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown leg {name!r} (choose from {', '.join(leg_names())})")
    return _REGISTRY[name]


def leg_names() -> tuple[str, ...]:
    """Names of the registered leg types."""
    return tuple(_REGISTRY)


def default_legs() -> tuple[str, ...]:
    """The legs a build makes unless told otherwise."""
    return tuple(_DEFAULT)

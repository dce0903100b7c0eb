"""Retrieval settings: fusion, dense long-text handling, BM25 parameters and the query prompt.

One typed Settings is what `tune` writes (fusion.json) and what build, query and bench accept
(--fusion-config); `read_settings` and `write_settings` are its one reader and writer.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import fusion
from .dense.chunking import ChunkSettings

MAX_DEPTH = 1000  # each leg's list length when no depth is set


class SettingsError(ValueError):
    """Settings that do not fit an index (e.g. document chunking other than the build's)."""


@dataclass(frozen=True)
class FusionConfig:
    """How legs are fused: method (rrf, rsf, dbsf, convex), RRF k, per-leg weights and depth."""

    method: str = "rrf"
    k: int = 60
    weights: dict[str, float] = field(default_factory=lambda: {"dense": 1.0, "bm25": 1.0})
    depth: int | None = None  # per-leg list length; None: the whole corpus, at most MAX_DEPTH

    def __post_init__(self):
        if self.method not in fusion.METHODS:
            raise ValueError(f"unknown fusion method {self.method!r} (choose from {', '.join(fusion.METHODS)})")
        if self.k < 0:
            raise ValueError(f"RRF k must be >= 0, got {self.k}")
        bad = [leg for leg, w in self.weights.items() if not isinstance(w, (int, float)) or w < 0]
        if bad:
            raise ValueError(f"fusion weights must be numbers >= 0 (legs {', '.join(bad)})")
        if self.depth is not None and self.depth < 1:
            raise ValueError(f"fusion depth must be >= 1, got {self.depth}")

    def to_dict(self) -> dict:
        """Plain JSON-ready settings."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FusionConfig:
        """Settings from a dict, ignoring keys that are not fusion settings (e.g. a tune report's)."""
        keys = {"method", "k", "weights", "depth"}
        return cls(**{k: v for k, v in d.items() if k in keys})


@dataclass(frozen=True)
class Bm25Params:
    """BM25 k1 and b (None: MTEB's baseline 1.5 and 0.75) and the query window (0: the whole query)."""

    k1: float | None = None
    b: float | None = None
    query_window: int = 0

    def __post_init__(self):
        if self.k1 is not None and self.k1 < 0 or self.b is not None and not 0 <= self.b <= 1:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1 {self.k1}, b {self.b}")
        if self.query_window < 0:
            raise ValueError(f"BM25 query window must be >= 0, got {self.query_window}")

    def engine_params(self) -> dict[str, float]:
        """The k1/b given (for the BM25 engine)."""
        return {k: v for k, v in (("k1", self.k1), ("b", self.b)) if v is not None}

    def to_dict(self) -> dict:
        """Only what differs from the defaults ({} = MTEB's baseline, whole queries)."""
        return {**self.engine_params(), **({"query_window": self.query_window} if self.query_window else {})}

    @classmethod
    def from_dict(cls, d: dict | None) -> Bm25Params:
        """From JSON ({} or None: the defaults)."""
        d = d or {}
        unknown = set(d) - {"k1", "b", "query_window"}
        if unknown:
            raise ValueError(f"unknown BM25 settings: {', '.join(sorted(unknown))}")
        return cls(k1=_num(d.get("k1")), b=_num(d.get("b")), query_window=int(d.get("query_window", 0)))


def _num(v) -> float | None:
    return None if v is None else float(v)


@dataclass(frozen=True)
class Settings:
    """What `tune` chooses and build/query/bench accept: fusion, dense long-text, BM25 and the query prompt."""

    fusion: FusionConfig = field(default_factory=FusionConfig)
    chunking: ChunkSettings = field(default_factory=ChunkSettings)
    bm25: Bm25Params = field(default_factory=Bm25Params)
    query_prompt: str | None = None  # None: the model's (or the index's) own

    def to_dict(self) -> dict:
        """The JSON form of a settings file."""
        out = {"fusion": self.fusion.to_dict(), "chunking": self.chunking.to_dict(), "bm25": self.bm25.to_dict()}
        if self.query_prompt is not None:
            out["query_prompt"] = self.query_prompt
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Settings:
        """Settings from JSON; a bare fusion object is accepted too."""
        prompt = data.get("query_prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise ValueError("query_prompt must be text")
        return cls(FusionConfig.from_dict(data.get("fusion", data)), ChunkSettings.from_dict(data.get("chunking")),
                   Bm25Params.from_dict(data.get("bm25")), prompt)


def read_settings(path: str | Path) -> Settings:
    """Settings from a JSON file as `tune` writes it (fusion.json)."""
    try:
        return Settings.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, TypeError, AttributeError, ValueError) as e:
        raise ValueError(f"{path}: cannot read settings ({e})") from None


def write_settings(path: str | Path, settings: Settings, **extra) -> None:
    """Write `settings` (and `extra` provenance fields, which readers ignore) as JSON."""
    Path(path).write_text(json.dumps({**settings.to_dict(), **extra}, indent=2, ensure_ascii=False), encoding="utf-8")

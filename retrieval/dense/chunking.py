"""Long texts for the dense leg: token windows with overlap, chunk-to-statute aggregation, titles.

A model reads max_seq_length tokens (256 for all-MiniLM-L6-v2) and silently drops the rest;
AILA queries are ~700 tokens and statutes up to ~6,000. Chunking encodes every window and
aggregates chunk similarities: over a statute's chunks (max, mean, mean of the top n), then
over a query's chunks (max, mean). A statute's title (its heading) can be encoded on its own
and mixed in with a weight: a short heading says what a long statute is about.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

DOC_AGGREGATIONS = ("max", "mean", "topn")
QUERY_AGGREGATIONS = ("max", "mean")


@dataclass(frozen=True)
class ChunkSettings:
    """Which texts are chunked, window and overlap in tokens, and how chunk scores are aggregated."""

    documents: bool = False
    queries: bool = False
    window: int | None = None  # tokens per window; None: what the model reads, less special tokens
    overlap: int = 32
    doc_agg: str = "max"
    top_n: int = 3
    query_agg: str = "max"
    title_weight: float = 0.0  # dense score = (1 - w) * text score + w * title score (documents with a title)

    def __post_init__(self):
        if self.doc_agg not in DOC_AGGREGATIONS:
            raise ValueError(f"unknown chunk aggregation {self.doc_agg!r} (choose from {', '.join(DOC_AGGREGATIONS)})")
        if self.query_agg not in QUERY_AGGREGATIONS:
            raise ValueError(f"unknown query aggregation {self.query_agg!r} (choose from {', '.join(QUERY_AGGREGATIONS)})")
        if self.window is not None and self.window <= self.overlap:
            raise ValueError(f"chunk window ({self.window}) must be larger than the overlap ({self.overlap})")
        if self.overlap < 0 or self.top_n < 1:
            raise ValueError("chunk overlap must be >= 0 and top_n >= 1")
        if not 0.0 <= self.title_weight <= 1.0:
            raise ValueError(f"title weight must be in [0, 1], got {self.title_weight}")

    @property
    def active(self) -> bool:
        """Whether the dense leg does more than one vector per text (chunks or a title vector)."""
        return self.documents or self.queries or self.title_weight > 0

    def to_dict(self) -> dict:
        """Plain JSON-ready settings."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> ChunkSettings:
        """Settings from JSON (None or {} -> no chunking)."""
        return cls(**(d or {}))


def window_size(settings: ChunkSettings, max_seq_length: int, reserved: int = 2) -> int:
    """Tokens per window: the configured size, else what the model reads less `reserved` tokens."""
    return settings.window or max(8, max_seq_length - reserved)


def split(tokenizer, texts: Sequence[str], window: int, overlap: int) -> tuple[list[str], np.ndarray]:
    """Cut each text into token windows (by the tokenizer's character offsets); (chunks, owner index)."""
    chunks: list[str] = []
    owner: list[int] = []
    step = max(1, window - overlap)
    encoded = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, truncation=False)
    for i, (text, offsets) in enumerate(zip(texts, encoded["offset_mapping"])):
        if len(offsets) <= window:
            chunks.append(text)
            owner.append(i)
            continue
        for start in range(0, len(offsets), step):
            piece = offsets[start:start + window]
            chunks.append(text[piece[0][0]:piece[-1][1]])
            owner.append(i)
            if start + window >= len(offsets):
                break
    return chunks, np.asarray(owner, dtype=np.int64)


def aggregate(sim: np.ndarray, query_owner: np.ndarray, doc_owner: np.ndarray, n_docs: int,
              settings: ChunkSettings) -> np.ndarray:
    """(query chunks x doc chunks) similarities -> (queries x documents) scores.

    Owners must be sorted (chunks of one text are contiguous), as `split` returns them.
    """
    per_doc = _doc_side(sim, doc_owner, n_docs, settings)
    starts = np.flatnonzero(np.r_[True, query_owner[1:] != query_owner[:-1]])
    if settings.query_agg == "max":
        return np.maximum.reduceat(per_doc, starts, axis=0)
    counts = np.diff(np.r_[starts, len(query_owner)])[:, None]
    return np.add.reduceat(per_doc, starts, axis=0) / counts


def _doc_side(sim: np.ndarray, doc_owner: np.ndarray, n_docs: int, settings: ChunkSettings) -> np.ndarray:
    starts = np.flatnonzero(np.r_[True, doc_owner[1:] != doc_owner[:-1]])
    if len(starts) != n_docs:
        raise ValueError(f"chunk owners cover {len(starts)} documents, expected {n_docs}")
    if settings.doc_agg == "max":
        return np.maximum.reduceat(sim, starts, axis=1)
    counts = np.diff(np.r_[starts, len(doc_owner)])
    if settings.doc_agg == "mean":
        return np.add.reduceat(sim, starts, axis=1) / counts
    # mean of the top n chunks: pad each document's chunks to a common width with -inf, sort.
    width = int(counts.max())
    col = np.arange(len(doc_owner)) - np.repeat(starts, counts)
    padded = np.full((sim.shape[0], n_docs, width), -np.inf, dtype=sim.dtype)
    padded[:, doc_owner, col] = sim
    top = -np.sort(-padded, axis=2)[:, :, :settings.top_n]
    n = np.minimum(counts, settings.top_n)
    top = np.where(np.isfinite(top), top, 0.0)
    return top.sum(axis=2) / n

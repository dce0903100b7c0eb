"""BM25 weights from postings, computed with NumPy straight into bm25s's arrays and model.

The result is the index `bm25s.BM25(method="lucene").index(...)` builds from the same tokens:
the same vocabulary (tokens by first occurrence, the empty token last), the same idf and
term-frequency formulas evaluated in the same floating-point order, the same CSC layout.
So bm25s saves, loads, memory-maps and queries it as its own.
"""

from __future__ import annotations

import math

import numpy as np

from .postings import Postings, release_memory

METHODS = ("lucene",)  # MTEB's baseline; bm25s's other variants are not built here
# the dtype bm25s's term-frequency part comes out in: float32 tf plus a float64 scalar is float64 under
# NumPy 2's promotion rules, float32 under NumPy 1's value-based casting
_TF_DTYPE = (np.float64(1.0) + np.zeros(1, dtype=np.float32)).dtype


def bm25s_model(postings: Postings, *, k1: float, b: float, method: str = "lucene"):
    """A bm25s.BM25 with the scores of `postings` (which this consumes, chunk by chunk, to save memory)."""
    import bm25s

    if method not in METHODS:
        raise ValueError(f"BM25 method {method!r} is not supported (choose from {', '.join(METHODS)})")
    n = postings.documents
    data, indices, indptr = score_arrays(postings, k1=k1, b=b)
    model = bm25s.BM25(k1=k1, b=b, method=method)
    vocabulary = postings.vocabulary
    vocabulary.setdefault("", len(vocabulary))  # bm25s adds the empty token last (scores nothing)
    model.scores = {"data": data, "indices": indices, "indptr": indptr, "num_docs": n}
    model.vocab_dict = vocabulary
    model.unique_token_ids_set = set(vocabulary.values())
    model.nonoccurrence_array = None  # lucene has none (bm25s's BM25L and BM25+ do)
    return model


def score_arrays(postings: Postings, *, k1: float, b: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bm25s's CSC arrays (data float32, indices int32, indptr int64): token columns, documents ascending."""
    n = postings.documents
    lengths = np.concatenate(postings.lengths or [np.zeros(0, np.int32)]).astype(np.int64)
    df = postings.document_frequencies()
    indptr = np.zeros(len(df) + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    data = np.empty(indptr[-1], dtype=np.float32)
    indices = np.empty(indptr[-1], dtype=np.int32)
    if not len(data):
        return data, indices, indptr
    # bm25s: k1 * ((1 - b) + b * l_d / l_avg) per document, l_avg the mean of an int64 array
    norm = (k1 * ((1 - b) + b * lengths / lengths.mean())).astype(_TF_DTYPE)
    idf = _lucene_idf(df, n)
    heads = indptr[:-1].copy()
    offset = 0
    for size in map(len, postings.lengths):
        tokens, counts, doc, tf = postings.chunks.pop(0)  # each chunk freed once placed
        rows = doc.astype(np.int32) + np.int32(offset)
        tf = tf.astype(_TF_DTYPE)
        pos = _positions(tokens, counts, heads)
        data[pos] = np.repeat(idf[tokens], counts).astype(_TF_DTYPE) * (tf / (norm[rows] + tf))
        indices[pos] = rows
        offset += size
        del tokens, counts, doc, tf, rows, pos
        release_memory()
    return data, indices, indptr


def _positions(tokens: np.ndarray, counts: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """Where each of a chunk's postings goes: its token column's next free places, in order.

    The postings come in groups, `counts[i]` of token `tokens[i]`; `heads` (each column's next free place)
    advances past them.
    """
    starts = np.cumsum(counts, dtype=np.int64) - counts
    pos = np.repeat(heads[tokens] - starts, counts) + np.arange(int(counts.sum()))
    heads[tokens] += counts
    return pos


def _lucene_idf(df: np.ndarray, n: int) -> np.ndarray:
    """bm25s's Lucene idf, log(1 + (N - df + 0.5) / (df + 0.5)), by math.log as bm25s does; float32."""
    values, where = np.unique(df, return_inverse=True)
    idf = np.array([math.log(1 + (n - d + 0.5) / (d + 0.5)) for d in values.tolist()], dtype=np.float32)
    return idf[where.reshape(-1)]

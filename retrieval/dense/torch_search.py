"""Exact inner-product top-k with torch (on CUDA when there is one): the same ranking as faiss's IndexFlatIP.

Queries are scored in chunks, so memory holds chunk x N scores rather than all queries x N. The vectors
may be kept in float16 on the device (half the memory); the top candidates of each query are then
re-scored in float32 against the float32 vectors, which stay in host memory.
"""

from __future__ import annotations

import numpy as np

STORE_DTYPES = ("float32", "float16")
SCORE_BYTES = 256 << 20  # at most this many bytes of scores per chunk of queries
RESCORE_FACTOR, RESCORE_EXTRA = 2, 32  # float16 store: re-score the top (2 x depth + 32) in float32


class TorchExactSearch:
    """Top-k by inner product over `vectors` (n x d float32) on `device`, stored there in `store_dtype`."""

    def __init__(self, vectors: np.ndarray, device: str = "cpu", store_dtype: str = "float32",
                 score_bytes: int = SCORE_BYTES):
        import torch

        if store_dtype not in STORE_DTYPES:
            raise ValueError(f"unknown store dtype {store_dtype!r} (choose from {', '.join(STORE_DTYPES)})")
        self.device, self.store_dtype = device, store_dtype
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # float32, host: for re-scoring
        self.matrix = torch.from_numpy(self.vectors).to(device=device, dtype=getattr(torch, store_dtype))
        self.score_bytes = score_bytes

    def __call__(self, queries: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each queries x depth, best first."""
        depth = min(depth, len(self.vectors))
        n, d = self.vectors.shape
        per_query = 4 * max(n, d * self._wide(depth) if self.store_dtype == "float16" else 0, 1)
        chunk = max(1, self.score_bytes // per_query)  # scores, and the gathered candidates when re-scoring
        parts = [self._chunk(queries[i:i + chunk], depth) for i in range(0, len(queries), chunk)]
        if not parts:
            return np.zeros((0, depth), np.float32), np.zeros((0, depth), np.int64)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _chunk(self, queries: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).to(self.device)
            if self.store_dtype == "float32":
                scores, rows = torch.topk(q @ self.matrix.T, depth, dim=1)
                return scores.cpu().numpy(), rows.cpu().numpy()
            sims = q.to(self.matrix.dtype) @ self.matrix.T
            candidates = torch.topk(sims, self._wide(depth), dim=1).indices.cpu().numpy()
        return _rescore(queries, self.vectors, candidates, depth)

    def _wide(self, depth: int) -> int:
        """Candidates re-scored per query with a float16 store."""
        return min(len(self.vectors), RESCORE_FACTOR * depth + RESCORE_EXTRA)


def _rescore(queries: np.ndarray, vectors: np.ndarray, candidates: np.ndarray,
             depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact float32 scores of each query's candidate rows; the best `depth`, best first (ties: lower row)."""
    exact = np.einsum("qd,qcd->qc", queries.astype(np.float32), vectors[candidates])
    order = np.lexsort((candidates, -exact))[:, :depth]
    return np.take_along_axis(exact, order, 1), np.take_along_axis(candidates, order, 1)

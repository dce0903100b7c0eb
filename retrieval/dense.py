"""The dense leg's index: unit vectors searched by inner product (= cosine similarity).

Backends, chosen once at load: FAISS on the GPU when faiss sees one, exact top-k with torch
on CUDA when faiss has no GPU build, else FAISS on the CPU. All return the same ranking.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

KINDS = ("flat", "hnsw")
BACKENDS = ("auto", "faiss", "faiss-gpu", "torch")
INDEX_FILE = "index.faiss"
OWNER_FILE = "chunk_owner.npy"
TITLES_FILE = "title_vectors.npy"


class DenseIndex:
    """FAISS inner-product index over float32 unit vectors, with a GPU path when one exists."""

    def __init__(self, index, kind: str = "flat", backend: str = "auto", owner: np.ndarray | None = None,
                 titles: np.ndarray | None = None):
        self.index = index
        self.kind = kind
        self.owner = owner  # document of each vector when documents are chunked (sorted), else None
        self.titles = titles  # one title vector per document (zero rows: no title), or None
        self._matrix: np.ndarray | None = None
        self.backend = resolve_backend(backend, kind)
        self._searcher = _make_searcher(index, self.backend)

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "flat", *, hnsw_m: int = 32,
              ef_construction: int = 200, ef_search: int = 128, backend: str = "auto",
              owner: np.ndarray | None = None, titles: np.ndarray | None = None) -> DenseIndex:
        """Index `vectors` (n x d); 'flat' is exact, 'hnsw' approximate; `owner`: chunk -> document."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        d = vectors.shape[1]
        if kind == "flat":
            index = faiss.IndexFlatIP(d)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
            index.hnsw.efSearch = ef_search
        else:
            raise ValueError(f"unknown dense index kind {kind!r} (choose from {', '.join(KINDS)})")
        index.add(vectors)
        return cls(index, kind, backend, owner, titles)

    @classmethod
    def load(cls, folder: Path, kind: str = "flat", *, mmap: bool = False, backend: str = "auto") -> DenseIndex:
        """Read `index.faiss`; `mmap` maps it instead of reading it into memory."""
        import faiss

        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        owner, titles = (np.load(f, allow_pickle=False) if f.exists() else None
                         for f in (folder / OWNER_FILE, folder / TITLES_FILE))
        return cls(faiss.read_index(str(folder / INDEX_FILE), flags), kind, backend, owner, titles)

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self.index.d

    def __len__(self) -> int:
        return self.index.ntotal

    def search(self, queries: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-`depth` (scores, row indices) per query, best first."""
        depth = min(depth, len(self))
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        return self._searcher(queries, depth)

    def all_scores(self, queries: np.ndarray) -> np.ndarray:
        """Exact inner product of each query with every indexed vector (for chunk aggregation)."""
        if self._matrix is None:
            self._matrix = self.index.reconstruct_n(0, self.index.ntotal)
        return np.ascontiguousarray(queries, dtype=np.float32) @ self._matrix.T

    def save(self, folder: Path) -> None:
        """FAISS's own file format (no pickle), plus chunk owners and title vectors as .npy when present."""
        import faiss

        faiss.write_index(self.index, str(folder / INDEX_FILE))
        if self.owner is not None:
            np.save(folder / OWNER_FILE, self.owner, allow_pickle=False)
        if self.titles is not None:
            np.save(folder / TITLES_FILE, self.titles, allow_pickle=False)


def faiss_gpu_count() -> int:
    """GPUs that faiss can use; 0 for CPU builds (checked before any GPU call)."""
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def resolve_backend(backend: str, kind: str = "flat") -> str:
    """'auto' -> faiss-gpu when faiss sees a GPU, torch when only torch has CUDA, else faiss."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown dense backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if backend != "auto":
        return backend
    if faiss_gpu_count() > 0:
        return "faiss-gpu"
    if kind == "flat":
        import torch

        if torch.cuda.is_available():
            return "torch"
    return "faiss"


def _make_searcher(index, backend: str):
    if backend == "faiss":
        return index.search
    if backend == "faiss-gpu":
        import faiss

        if faiss_gpu_count() == 0:
            raise RuntimeError("dense backend faiss-gpu asked for, but faiss sees no GPU")
        gpu_index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
        return gpu_index.search
    return _torch_searcher(index)


def _torch_searcher(index):
    """Exact inner-product top-k with torch, on CUDA when present (same ranking as IndexFlatIP)."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    matrix = torch.from_numpy(index.reconstruct_n(0, index.ntotal)).to(device)

    def search(queries: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            sims = torch.from_numpy(queries).to(device) @ matrix.T
            scores, idx = torch.topk(sims, depth, dim=1)
        return scores.cpu().numpy(), idx.cpu().numpy()

    return search

"""The dense leg's index: unit vectors searched by inner product (= cosine similarity).

Kinds: exact ("flat"), HNSW graph or IVF lists (approximate); "auto" picks by corpus size
(`default_kind`, from docs/performance.md). Backends, chosen at load: FAISS on the GPU for flat
and IVF indexes when faiss sees one (faiss has no GPU HNSW), exact top-k with torch on CUDA when
faiss has no GPU build, else FAISS on the CPU. The searcher (and any copy to the GPU) is made at
the first search, after a test search in a child process for faiss-gpu (retrieval.gpu). The exact
backends return the same ranking.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import gpu
from .torch_search import TorchExactSearch

KINDS = ("flat", "hnsw", "ivf")
# Exact search reads every vector for every query: up to 50,000 384-d float32 vectors (73 MiB) it
# stays within a few ms a query on one core; above, HNSW is faster (docs/performance.md).
EXACT_MAX_BYTES = 50_000 * 384 * 4
HNSW_M, EF_CONSTRUCTION, EF_SEARCH = 32, 200, 128  # graph degree, build and query breadth
NPROBE = 16  # IVF lists searched per query
IVF_TRAIN_PER_LIST = 50  # training vectors per IVF list (k-means sample)
BACKENDS = ("auto", "faiss", "faiss-gpu", "torch", "torch-fp16")  # torch-fp16: float16 copy, float32 re-score
GPU_KINDS = ("flat", "ivf")  # the kinds faiss can search on a GPU
INDEX_FILE = "index.faiss"
OWNER_FILE = "chunk_owner.npy"
TITLES_FILE = "title_vectors.npy"


class DenseIndex:
    """FAISS inner-product index over float32 unit vectors, with a GPU path when one exists."""

    def __init__(self, index, kind: str = "flat", backend: str = "auto", owner: np.ndarray | None = None,
                 titles: np.ndarray | None = None, device: str | None = None):
        self.index = index
        self.kind = kind
        self.owner = owner  # document of each vector when documents are chunked (sorted), else None
        self.titles = titles  # one title vector per document (zero rows: no title), or None
        self._matrix: np.ndarray | None = None
        self.device = device  # 'cpu', 'cuda', 'cuda:1'; None: CUDA when there is one
        self.backend = resolve_backend(backend, kind, device)
        self._searcher = None  # made at the first search (a build never copies to the GPU)
        self._gpu_index = None

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "auto", *, hnsw_m: int = HNSW_M,
              ef_construction: int = EF_CONSTRUCTION, ef_search: int = EF_SEARCH, nlist: int | None = None,
              nprobe: int = NPROBE, backend: str = "auto", owner: np.ndarray | None = None,
              titles: np.ndarray | None = None, device: str | None = None) -> DenseIndex:
        """Index `vectors` (n x d): 'flat' exact, 'hnsw' or 'ivf' approximate, 'auto' by size; `owner`: chunk -> document."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, d = vectors.shape
        kind = default_kind(n, d) if kind == "auto" else kind
        if kind == "flat":
            index = faiss.IndexFlatIP(d)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
            index.hnsw.efSearch = ef_search
        elif kind == "ivf":
            nlist = nlist or ivf_nlist(n)
            index = faiss.index_factory(d, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
            index.train(_sample(vectors, nlist * IVF_TRAIN_PER_LIST))
            index.nprobe = nprobe
        else:
            raise ValueError(f"unknown dense index kind {kind!r} (choose from auto, {', '.join(KINDS)})")
        index.add(vectors)
        return cls(index, kind, backend, owner, titles, device)

    @classmethod
    def load(cls, folder: Path, kind: str = "flat", *, mmap: bool = False, backend: str = "auto",
             device: str | None = None) -> DenseIndex:
        """Read `index.faiss`; `mmap` maps its vectors (read-only) instead of reading them."""
        import faiss

        flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
        owner, titles = (np.load(f, allow_pickle=False) if f.exists() else None
                         for f in (folder / OWNER_FILE, folder / TITLES_FILE))
        return cls(faiss.read_index(str(folder / INDEX_FILE), flags), kind, backend, owner, titles, device)

    def set_search_params(self, *, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Query-time breadth: efSearch of an HNSW index, nprobe of an IVF index (also of its GPU copy)."""
        if ef_search is not None:
            if self.kind != "hnsw":
                raise ValueError(f"ef_search is for HNSW indexes, this one is {self.kind}")
            self.index.hnsw.efSearch = ef_search
        if nprobe is not None:
            if self.kind != "ivf":
                raise ValueError(f"nprobe is for IVF indexes, this one is {self.kind}")
            self.index.nprobe = nprobe
            if self._gpu_index is not None:
                self._gpu_index.nprobe = nprobe

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
        if self._searcher is None:
            self._searcher = self._make_searcher()
        return self._searcher(queries, depth)

    def _make_searcher(self):
        """The search function of the backend; faiss-gpu only after a test search on that GPU ran (else a
        warning, and torch on CUDA or faiss on the CPU)."""
        ordinal = gpu.device_index(self.device) if gpu.is_cuda(self.device) else 0
        if self.backend == "faiss-gpu":
            if gpu.faiss_gpu_usable(ordinal):
                import faiss

                resources = faiss.StandardGpuResources()
                self._gpu_index = faiss.index_cpu_to_gpu(resources, ordinal, self.index)
                self._gpu_index.referenced_objects = [resources]  # kept alive with the index
                return self._gpu_index.search
            self.backend = "torch" if _torch_cuda() else "faiss"
        if self.backend.startswith("torch"):
            device = self.device or ("cuda" if _torch_cuda() else "cpu")
            return TorchExactSearch(self.index.reconstruct_n(0, self.index.ntotal), device,
                                    "float16" if self.backend == "torch-fp16" else "float32")
        return _cpu_searcher(self.index)

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


def default_kind(n: int, dim: int = 384) -> str:
    """The index kind for `n` vectors of `dim` float32s: exact up to EXACT_MAX_BYTES of vectors, HNSW above."""
    return "flat" if n * dim * 4 <= EXACT_MAX_BYTES else "hnsw"


def ivf_nlist(n: int) -> int:
    """IVF list count for `n` vectors: about 4 * sqrt(n), and at least 39 vectors a list (k-means needs them)."""
    return max(1, min(round(4 * math.sqrt(n)), n // 39))


def _sample(vectors: np.ndarray, size: int) -> np.ndarray:
    """At most `size` rows, drawn without replacement with a fixed seed (IVF training)."""
    if len(vectors) <= size:
        return vectors
    rows = np.sort(np.random.default_rng(0).choice(len(vectors), size, replace=False))
    return vectors[rows]


def resolve_backend(backend: str, kind: str = "flat", device: str | None = None) -> str:
    """'auto' -> faiss-gpu for flat and IVF indexes when faiss sees a GPU, torch for flat ones when only torch
    has CUDA, else faiss; a `device` that is not CUDA keeps search on the CPU. No GPU call is made."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown dense backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if backend == "faiss-gpu":
        if kind not in GPU_KINDS:
            raise ValueError(f"dense backend faiss-gpu searches flat and IVF indexes, this one is {kind} "
                             "(use --dense-backend faiss, or torch for exact search)")
        if gpu.faiss_gpu_count() == 0:
            raise ValueError("dense backend faiss-gpu asked for, but faiss sees no GPU (a CPU build of faiss, "
                             "or no CUDA device); docs/gpu.md lists the wheels")
    if backend != "auto":
        return backend
    if device and not gpu.is_cuda(device):
        return "faiss"
    if kind in GPU_KINDS and gpu.faiss_gpu_count() > 0:
        return "faiss-gpu"
    return "torch" if kind == "flat" and _torch_cuda() else "faiss"


def _torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _cpu_searcher(index):
    """FAISS on the CPU, one OpenMP thread for a single query: exact search splits one query's scan
    across threads, which waits on descheduled threads whenever the CPU is busy (docs/performance.md)."""
    import faiss

    def search(queries: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        if len(queries) > 1:
            return index.search(queries, depth)
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return index.search(queries, depth)
        finally:
            faiss.omp_set_num_threads(threads)

    return search

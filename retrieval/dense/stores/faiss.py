"""FAISS as the embedded vector store: unit vectors searched by inner product (= cosine similarity).

Kinds (KINDS): exact ("flat"), HNSW graph or IVF lists (approximate); "auto" picks by size
(`default_kind`, from docs/performance.md). Backends (BACKENDS), chosen at the first search:
FAISS on the CPU, FAISS on a GPU (flat and IVF only: FAISS has no GPU HNSW; copied to the GPU
lazily), or exact top-k with torch on CUDA. The exact backends return the same ranking. Each
kind and backend is a small named implementation picked from its table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from .. import gpu
from ..torch_search import TorchExactSearch

# Exact search reads every vector for every query: up to 50,000 384-d float32 vectors (73 MiB) it
# stays within a few ms a query on one core; above, HNSW is faster (docs/performance.md).
EXACT_MAX_BYTES = 50_000 * 384 * 4
IVF_TRAIN_PER_LIST = 50  # training vectors per IVF list (k-means sample)
INDEX_FILE, IDS_FILE, DELETED_FILE = "index.faiss", "ids.npy", "deleted.npy"
GPU_KINDS = ("flat", "ivf")  # the kinds faiss can search on a GPU (it has no GPU HNSW)
FEW_QUERIES = 8  # searched on one thread (a query and its windows)


@dataclass(frozen=True)
class StoreParams:
    """Build and query breadth: HNSW degree / efConstruction / efSearch, IVF lists / nprobe."""

    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    nlist: int | None = None  # None: about 4 * sqrt(n)
    nprobe: int = 16


@dataclass(frozen=True)
class Kind:
    """One FAISS index kind: how to make it and the search parameters it takes."""

    name: str
    exact: bool
    make: Callable[[int, np.ndarray, StoreParams], object]
    search_params: Callable[[StoreParams, object], object]  # (params, selector or None) -> faiss params


def _make_flat(dim: int, sample: np.ndarray, p: StoreParams):
    import faiss

    return faiss.IndexFlatIP(dim)


def _make_hnsw(dim: int, sample: np.ndarray, p: StoreParams):
    import faiss

    index = faiss.IndexHNSWFlat(dim, p.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = p.ef_construction
    return index


def _make_ivf(dim: int, sample: np.ndarray, p: StoreParams):
    import faiss

    nlist = p.nlist or ivf_nlist(len(sample))
    index = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    index.train(_sample(sample, nlist * IVF_TRAIN_PER_LIST))
    index.nprobe = p.nprobe
    return index


def _params(cls_name: str, **fields):
    def make(p: StoreParams, selector):
        import faiss

        values = {k: getattr(p, v) for k, v in fields.items()}
        return getattr(faiss, cls_name)(sel=selector, **values) if selector is not None else \
            getattr(faiss, cls_name)(**values)

    return make


KINDS: dict[str, Kind] = {
    "flat": Kind("flat", True, _make_flat, _params("SearchParameters")),
    "hnsw": Kind("hnsw", False, _make_hnsw, _params("SearchParametersHNSW", efSearch="ef_search")),
    "ivf": Kind("ivf", False, _make_ivf, _params("SearchParametersIVF", nprobe="nprobe")),
}


class FaissStore:
    """A FAISS index over float32 unit vectors, with int64 ids, searched on the chosen backend."""

    def __init__(self, index, kind: str, ids: np.ndarray, backend: str = "auto", params: StoreParams = StoreParams(),
                 device: str | None = None):
        self.index, self.kind, self.params = index, kind, params
        self.device = device  # 'cpu', 'cuda', 'cuda:1'; None: CUDA when there is one
        if backend != "auto":  # an explicit backend is checked now; 'auto' at the first search (it imports torch)
            backend = resolve_backend(backend, kind, device)
        self._ids = np.asarray(ids, dtype=np.int64)
        self._order = None  # argsort of ids, for id -> position look-ups
        self._backend, self._searcher = backend, None  # made at the first search: loading touches no GPU
        self._gpu_index = None  # the GPU copy that faiss-gpu searches

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "auto", *, ids: np.ndarray | None = None,
              backend: str = "auto", params: StoreParams = StoreParams(), device: str | None = None) -> FaissStore:
        """A store of `vectors` (n x d) under `ids` (default 0..n-1); kind 'auto' picks by size."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, d = vectors.shape
        kind = default_kind(n, d) if kind == "auto" else kind
        if kind not in KINDS:
            raise ValueError(f"unknown dense index kind {kind!r} (choose from auto, {', '.join(KINDS)})")
        store = cls(KINDS[kind].make(d, vectors, params), kind, np.zeros(0, np.int64), backend=backend, params=params,
                    device=device)
        store.add(np.arange(n, dtype=np.int64) if ids is None else ids, vectors)
        return store

    @classmethod
    def load(cls, folder: Path, config: dict, *, mmap: bool = False, backend: str = "auto",
             device: str | None = None) -> FaissStore:
        """Read the store's files; `mmap` maps the vectors (read-only) instead of reading them. A store saved with
        removal marks (deleted.npy, written before updates rebuilt stores) comes back as the unmarked vectors."""
        import faiss

        flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
        index = faiss.read_index(str(folder / INDEX_FILE), flags)
        ids = np.load(folder / IDS_FILE, allow_pickle=False)
        params = StoreParams(**config.get("params", {}))
        store = cls(index, config["kind"], ids, backend=backend, params=params, device=device)
        marks = np.load(folder / DELETED_FILE, allow_pickle=False) if (folder / DELETED_FILE).is_file() else None
        if marks is None or not marks.any():
            return store
        kept = ids[~marks]
        return cls.build(store.get(kept), store.kind, ids=kept, backend=backend, params=params, device=device)

    def save(self, folder: Path) -> dict:
        """FAISS's own file format (no pickle), the ids as .npy; returns kind and params."""
        import faiss

        faiss.write_index(self.index, str(folder / INDEX_FILE))
        np.save(folder / IDS_FILE, self._ids, allow_pickle=False)
        return {"store": "faiss", "kind": self.kind, "params": asdict(self.params)}

    def rebuilt(self, vectors: np.ndarray) -> FaissStore:
        """A store of this kind, search settings and device over `vectors` (an update's)."""
        return FaissStore.build(vectors, self.kind, params=self.params, device=self.device)

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self.index.d

    @property
    def exact(self) -> bool:
        """Flat indexes are exact; HNSW and IVF approximate."""
        return KINDS[self.kind].exact

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def backend(self) -> str:
        """The backend searches run on ('auto' resolved: this may import torch to look for CUDA)."""
        if self._backend == "auto":
            self._backend = resolve_backend("auto", self.kind, self.device)
        return self._backend

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Append `vectors` under new `ids`."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) != len(vectors) or len(np.unique(ids)) != len(ids) or np.isin(ids, self._ids).any():
            raise ValueError("add needs one new, distinct id per vector")
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self._ids = np.concatenate([self._ids, ids])
        self._order, self._searcher, self._gpu_index = None, None, None

    def set_search_params(self, *, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Query-time breadth: efSearch of an HNSW index, nprobe of an IVF index (on whatever backend searches)."""
        if ef_search is not None and self.kind != "hnsw":
            raise ValueError(f"ef_search is for HNSW indexes, this one is {self.kind}")
        if nprobe is not None and self.kind != "ivf":
            raise ValueError(f"nprobe is for IVF indexes, this one is {self.kind}")
        self.params = replace(self.params, ef_search=ef_search or self.params.ef_search,
                              nprobe=nprobe or self.params.nprobe)
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = self.params.ef_search
        if self.kind == "ivf":
            self.index.nprobe = self.params.nprobe
            if self._gpu_index is not None:  # the copy actually searched
                self._gpu_index.nprobe = self.params.nprobe

    def search(self, vectors: np.ndarray, k: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query, best first, -1 ids padding; only `allowed` ids when given."""
        mask = None
        if allowed is not None:
            mask = np.zeros(len(self._ids), dtype=bool)
            pos = self._positions(np.asarray(allowed, dtype=np.int64))
            mask[pos[pos >= 0]] = True
        k = max(1, min(k, int(mask.sum()) if mask is not None else len(self._ids)))
        if self._searcher is None:
            self._searcher = BACKENDS[self.backend](self)
        scores, pos = self._searcher(np.ascontiguousarray(vectors, dtype=np.float32), k, mask)
        return scores, np.where(pos >= 0, self._ids[np.maximum(pos, 0)], -1)

    def get(self, ids: np.ndarray) -> np.ndarray:
        """Stored vectors of `ids`, in that order."""
        pos = self._positions(np.asarray(ids, dtype=np.int64))
        if (pos < 0).any():
            raise KeyError(f"ids not in the store: {np.asarray(ids)[pos < 0][:5].tolist()}")
        if self.kind == "ivf" and not self.index.direct_map.type:
            self.index.make_direct_map()
        return self.index.reconstruct_batch(pos)

    def matrix(self) -> np.ndarray:
        """Every stored vector, in storage order (exact backends)."""
        return self.index.reconstruct_n(0, self.index.ntotal)

    def _positions(self, ids: np.ndarray) -> np.ndarray:
        """Storage position of each id (-1 when unknown)."""
        if self._order is None:
            self._order = np.argsort(self._ids, kind="stable")
        sorted_ids = self._ids[self._order]
        if not len(sorted_ids):
            return np.full(len(ids), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
        return np.where(sorted_ids[at] == ids, self._order[at], -1)


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
    if backend not in BACKEND_CHOICES:
        raise ValueError(f"unknown dense backend {backend!r} (choose from {', '.join(BACKEND_CHOICES)})")
    if backend == "faiss-gpu":
        if kind not in GPU_KINDS:
            raise ValueError(f"dense backend faiss-gpu searches flat and IVF indexes, this one is {kind} "
                             "(use --dense-backend faiss, or torch for exact search)")
        if gpu.faiss_gpu_count() == 0:
            raise ValueError("dense backend faiss-gpu asked for, but faiss sees no GPU (a CPU build of faiss, "
                             "or no CUDA device); docs/gpu.md lists the wheels")
    if backend.startswith("torch") and kind != "flat":
        raise ValueError(f"the {backend} backend searches exactly: flat indexes only, this one is {kind}")
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


Searcher = Callable[[np.ndarray, int, "np.ndarray | None"], tuple[np.ndarray, np.ndarray]]


def _cpu_searcher(store: FaissStore) -> Searcher:
    """FAISS on the CPU, with the store's search parameters and a bitmap selector for masks; one OpenMP thread
    for a few queries (one query's windows): exact search splits one query's scan across threads, which waits
    on descheduled threads whenever the CPU is busy (docs/performance.md)."""
    import faiss

    kind = KINDS[store.kind]

    def search(queries: np.ndarray, k: int, mask: np.ndarray | None):
        bits = None if mask is None else np.packbits(mask, bitorder="little")
        selector = None if bits is None else faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
        params = kind.search_params(store.params, selector)
        threads = faiss.omp_get_max_threads()
        if len(queries) <= FEW_QUERIES:
            faiss.omp_set_num_threads(1)
        try:
            return store.index.search(queries, k, params=params)
        finally:
            faiss.omp_set_num_threads(threads)

    return search


def _gpu_searcher(store: FaissStore) -> Searcher:
    """FAISS on the store's GPU (flat and IVF), copied at the first search and only after a test search on that
    GPU ran in a child process (else a warning, and torch on CUDA or faiss on the CPU). A mask is applied by
    searching deeper and filtering, as GPU indexes take no selector."""
    import faiss

    ordinal = gpu.device_index(store.device) if gpu.is_cuda(store.device) else 0
    if not gpu.faiss_gpu_usable(ordinal):
        store._backend = "torch" if store.kind == "flat" and _torch_cuda() else "faiss"
        return BACKENDS[store._backend](store)
    resources = faiss.StandardGpuResources()
    store._gpu_index = faiss.index_cpu_to_gpu(resources, ordinal, store.index)
    store._gpu_index.referenced_objects = [resources]  # kept alive with the index
    if store.kind == "ivf":
        store._gpu_index.nprobe = store.params.nprobe
    return _filtered(store._gpu_index.search)


def _torch_searcher(store: FaissStore, store_dtype: str = "float32") -> Searcher:
    """Exact inner-product top-k with torch (same ranking as IndexFlatIP), on the store's device or CUDA when
    present, in query chunks; float16 keeps half the memory and re-scores the top in float32."""
    if store.kind != "flat":
        raise ValueError(f"the torch backend searches exactly: flat indexes only, this one is {store.kind}")
    device = store.device or ("cuda" if _torch_cuda() else "cpu")
    return _filtered(TorchExactSearch(store.matrix(), device, store_dtype))


def _filtered(search: Callable) -> Searcher:
    """A mask applied after the search, searching twice as deep until k allowed rows (or all rows) are found."""

    def run(queries: np.ndarray, k: int, mask: np.ndarray | None):
        if mask is None:
            return search(queries, k)
        depth = k
        while True:
            depth = min(2 * depth, len(mask))
            scores, pos = search(queries, depth)
            ok = (pos >= 0) & mask[np.maximum(pos, 0)]
            if depth == len(mask) or (ok.sum(axis=1) >= k).all():
                break
        order = np.argsort(~ok, axis=1, kind="stable")[:, :k]  # allowed rows first, in score order
        scores, pos, ok = (np.take_along_axis(a, order, axis=1) for a in (scores, pos, ok))
        return np.where(ok, scores, -np.inf), np.where(ok, pos, -1)

    return run


BACKENDS: dict[str, Callable[[FaissStore], Searcher]] = {
    "faiss": _cpu_searcher, "faiss-gpu": _gpu_searcher, "torch": _torch_searcher,
    "torch-fp16": partial(_torch_searcher, store_dtype="float16"),  # float16 copy, float32 re-score
}
BACKEND_CHOICES = ("auto", *BACKENDS)

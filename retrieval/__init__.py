"""Hybrid legal statute retrieval: dense (sentence-transformers + FAISS) and BM25, fused by RRF."""

__version__ = "0.2.0"

from .corpus import CorpusError, Document, read_corpus  # noqa: E402
from .retriever import FusionConfig, Hit, HybridRetriever  # noqa: E402

__all__ = ["CorpusError", "Document", "FusionConfig", "Hit", "HybridRetriever", "read_corpus", "__version__"]

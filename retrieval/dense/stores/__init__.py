"""Vector stores: where the dense leg's passage vectors live and are searched (see base.VectorStore)."""

from .base import VectorStore

__all__ = ["VectorStore"]

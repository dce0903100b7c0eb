"""MTEB's own implementations that our runs are checked and timed against: exact dense search of a
SentenceTransformer, the mteb/baseline-bm25s model and mteb.HybridSearch (RRF, k 60).

Kept apart from the benchmark so that a script timing plain MTEB imports nothing else of ours.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def mteb_reference_models(load_model: Callable[[], Any], name: str) -> dict[str, tuple[str, Callable[[], Any]]]:
    """MTEB's own dense exact search, BM25 baseline and HybridSearch (RRF, k 60), each as
    (description, factory); `load_model` gives the SentenceTransformer for the dense side."""
    import mteb
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper

    def bm25():
        return mteb.get_model_meta("mteb/baseline-bm25s").load_model()

    def dense():
        wrapper = SentenceTransformerEncoderWrapper(load_model())
        wrapper.mteb_model_meta = mteb.models.model_meta.ModelMeta.create_empty(
            overwrites={"name": f"parity/{name[-60:]}", "revision": "local"})
        return wrapper

    return {
        "bm25": ("mteb/baseline-bm25s", bm25),
        "dense": ("MTEB exact search of the same SentenceTransformer", dense),
        "hybrid": ("mteb.HybridSearch([bm25, dense], fusion_strategy='rrf', rrf_k=60)",
                   lambda: mteb.HybridSearch([bm25(), dense()], fusion_strategy="rrf", rrf_k=60)),
    }

"""MTEB's own implementations that our runs are checked and timed against: exact dense search of a
SentenceTransformer, the mteb/baseline-bm25s model and mteb.HybridSearch (RRF, k 60), and MTEB's cross-encoders
for the rerank stage (its Qwen3-Reranker model, or its CrossEncoderWrapper).

Kept apart from the benchmark so that a script timing plain MTEB imports nothing else of ours.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..rerank import Reranker


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


def mteb_reranker(reranker: Reranker) -> tuple[str, Callable[[], Any]]:
    """MTEB's own cross-encoder for the same folder, dtype, device and max length as `reranker`, as (description,
    factory): MTEB's Qwen3-Reranker model (Qwen's reference code) for a causal-LM judge, with our instruction
    (MTEB reads one only from a data set's instruction column, which the data sets here lack); else MTEB's
    CrossEncoderWrapper over a sentence-transformers CrossEncoder."""
    import mteb
    import torch

    meta = {"name": f"parity-rerank/{reranker.model_name[-60:]}", "revision": "local", "model_type": ["cross-encoder"]}
    dtype = getattr(torch, reranker.dtype)
    if reranker.is_judge:
        from mteb.models.model_implementations.qwen3_reranker import Qwen3RerankerWrapper

        def judge():
            model = Qwen3RerankerWrapper(reranker.model_path, device=reranker.device, max_length=reranker.max_length,
                                         dtype=dtype)
            model.format_instruction = lambda _, query, doc: Qwen3RerankerWrapper.format_instruction(
                reranker.instruction, query, doc)
            model.mteb_model_meta = mteb.models.model_meta.ModelMeta.create_empty(overwrites=meta)
            return model

        return "MTEB's Qwen3RerankerWrapper (Qwen's reference code), same instruction and max length", judge

    def classifier():
        from mteb.models.sentence_transformer_wrapper import CrossEncoderWrapper
        from sentence_transformers import CrossEncoder

        wrapper = CrossEncoderWrapper(CrossEncoder(reranker.model_path, device=reranker.device,
                                                   max_length=reranker.max_length, model_kwargs={"dtype": dtype}))
        wrapper.mteb_model_meta = mteb.models.model_meta.ModelMeta.create_empty(overwrites=meta)
        return wrapper

    return "MTEB's CrossEncoderWrapper over a sentence-transformers CrossEncoder of the same folder", classifier

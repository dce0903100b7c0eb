"""MTEB's own implementations that our runs are checked and timed against: exact dense search of a
SentenceTransformer (for a Qwen3-Embedding folder, MTEB's own Qwen3 implementation loaded from that
folder), the mteb/baseline-bm25s model and mteb.HybridSearch (RRF, k 60), and MTEB's cross-encoders
for the rerank stage (its Qwen3-Reranker model, or its CrossEncoderWrapper).

Stock MTEB's BM25 lists documents that share no term with the query (score 0) after the matching
ones, and RRF rewards those places. This project leaves them out (a document with no lexical
evidence is not in the BM25 list), so parity wraps MTEB's BM25 in `MatchingOnly`, which drops
score-0 entries from its output and changes nothing else; `stock=True` gives MTEB unchanged.

Kept apart from the benchmark so that a script timing plain MTEB imports nothing else of ours.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..rerank import Reranker

QWEN3_MTEB_NAME = "Qwen/Qwen3-Embedding-0.6B"  # the registered model whose implementation a Qwen3 folder is checked with

class MatchingOnly:
    """An MTEB search model whose results keep only documents scoring above 0 (used on MTEB's BM25)."""

    def __init__(self, model: Any):
        self.model = model

    @property
    def mteb_model_meta(self) -> Any:
        """The wrapped model's metadata."""
        return self.model.mteb_model_meta

    def index(self, *args: Any, **kwargs: Any) -> None:
        """Index as the wrapped model does."""
        self.model.index(*args, **kwargs)

    def search(self, *args: Any, **kwargs: Any) -> dict[str, dict[str, float]]:
        """The wrapped model's results without score-0 (no matching term) documents."""
        return {q: {d: s for d, s in docs.items() if s > 0} for q, docs in self.model.search(*args, **kwargs).items()}


def mteb_qwen3_model(folder: str, *, device: str, dtype: str, max_seq_length: int, attn: str | None = None):
    """MTEB's own Qwen3-Embedding model (its registered ModelMeta and loader: instruction template and task
    prompt, no instruction on documents, the folder's pooling) loaded from the local `folder`, not the Hub, in
    `dtype` on `device` and reading `max_seq_length` tokens, as our encoder runs it."""
    import mteb
    import torch

    meta = mteb.get_model_meta(QWEN3_MTEB_NAME)
    loader = meta.loader
    local = meta.model_copy(update={"loader": lambda _name, revision=None, **kw: loader(folder, revision=None, **kw)})
    model_kwargs = {"dtype": getattr(torch, dtype), **({"attn_implementation": attn} if attn else {})}
    return local.load_model(device=device, model_kwargs=model_kwargs, max_seq_length=max_seq_length)


def mteb_reference_models(load_model: Callable[[], Any], name: str, dense: tuple[str, Callable[[], Any]] | None = None,
                          *, stock: bool = False) -> dict[str, tuple[str, Callable[[], Any]]]:
    """MTEB's own dense exact search, BM25 baseline and HybridSearch (RRF, k 60), each as
    (description, factory); `load_model` gives the SentenceTransformer for the dense side, unless `dense`
    (description, factory) gives another MTEB model for it (MTEB's Qwen3 implementation). BM25 lists only
    matching documents unless `stock` (see the module's docstring)."""
    import mteb
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper

    def bm25():
        model = mteb.get_model_meta("mteb/baseline-bm25s").load_model()
        return model if stock else MatchingOnly(model)

    def wrapped():
        wrapper = SentenceTransformerEncoderWrapper(load_model())
        wrapper.mteb_model_meta = mteb.models.model_meta.ModelMeta.create_empty(
            overwrites={"name": f"parity/{name[-60:]}", "revision": "local"})
        return wrapper

    what, make_dense = dense or ("MTEB exact search of the same SentenceTransformer", wrapped)
    bm25_name = "mteb/baseline-bm25s" + ("" if stock else " without score-0 documents")
    return {
        "bm25": (bm25_name, bm25),
        "dense": (what, make_dense),
        "hybrid": (f"mteb.HybridSearch([{bm25_name}, dense], fusion_strategy='rrf', rrf_k=60)",
                   lambda: mteb.HybridSearch([bm25(), make_dense()], fusion_strategy="rrf", rrf_k=60)),
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

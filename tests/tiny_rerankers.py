"""Build, with no network, random rerankers shaped like the real ones (for the tests, the acceptance check and
the GPU check): a Qwen3-Reranker-like causal LM and a BERT sequence classifier.

The Qwen3 reranker folder mirrors Qwen/Qwen3-Reranker-0.6B as published: a Qwen3ForCausalLM (tied embeddings),
a byte-level BPE tokenizer that appends no token and holds "yes" and "no" as tokens, and a plain ChatML chat
template for system/user/assistant turns, which (like Qwen's) cannot carry a query/document pair, so the
reranker must bring the judge prompt itself. No sentence-transformers files. Seeded: same arguments, same files.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from qwen3_tiny import EOS, PAD, STATUTE_TEXT, TINY_SHAPE, _patch_json, train_tokenizer

from retrieval.rerank import JUDGE_PREFIX, JUDGE_SUFFIX

# ChatML, the turn format of Qwen's chat templates (system, user and assistant turns only).
CHATML_TEMPLATE = ("{%- for message in messages %}{%- if message.role in ['system', 'user', 'assistant'] %}"
                   "{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
                   "{%- endif %}{%- endfor %}"
                   "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}")
# Texts that make "yes" and "no" whole tokens and the judge prompt a few tokens, as in Qwen's vocabulary.
JUDGE_TEXTS = [JUDGE_PREFIX + JUDGE_SUFFIX] * 20 + ["yes\nno\n" * 40]
TINY_RERANKER_POSITIONS = 512  # the tiny model's max_position_embeddings: long pairs get cut


def build_qwen3_reranker_folder(folder: str | Path, *, shape: dict | None = None, texts: Iterable[str] = STATUTE_TEXT,
                                tokenizer_vocab: int = 640, seed: int = 0, device: str = "cpu") -> Path:
    """Write a random Qwen3 causal-LM reranker (bf16 safetensors, a Qwen-like tokenizer trained on `texts` and the
    judge prompt, a ChatML chat template)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(list(texts) + JUDGE_TEXTS, tokenizer_vocab, append_eos=False)
    for word in ("yes", "no"):
        if tokenizer.convert_tokens_to_ids(word) in (None, tokenizer.unk_token_id):
            raise RuntimeError(f"the tiny tokenizer did not learn the token {word!r}")
    tokenizer.pad_token = PAD
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.save_pretrained(folder)
    shape = {**TINY_SHAPE, "max_position_embeddings": TINY_RERANKER_POSITIONS, **(shape or {})}
    shape.setdefault("vocab_size", len(tokenizer))
    config = Qwen3Config(**shape, tie_word_embeddings=True, bos_token_id=None,
                         eos_token_id=tokenizer.convert_tokens_to_ids(EOS), pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen3ForCausalLM(config)
    model.to(torch.bfloat16).save_pretrained(folder, safe_serialization=True)
    return folder


def build_cross_encoder_folder(folder: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random BERT sequence classifier (one label) with the bundled MiniLM's WordPiece tokenizer."""
    from transformers import BertConfig

    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=1)
    return _save_classifier(folder, config, seed=seed)


def build_minilm_cross_encoder_folder(folder: str | Path, *, seed: int = 0) -> Path:
    """Write a 6-layer cross-encoder of MiniLM-L6's size: the bundled all-MiniLM-L6-v2 encoder weights with a
    fresh, random classification head. Its scores mean nothing; it is for timing only."""
    return _save_classifier(folder, None, seed=seed)


def _save_classifier(folder: str | Path, config, *, seed: int) -> Path:
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from retrieval.dense.encoders import resolve_model

    minilm = resolve_model(None)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if config is None:
        model = BertForSequenceClassification.from_pretrained(minilm, num_labels=1)
    else:
        model = BertForSequenceClassification(config)
    model.save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(minilm).save_pretrained(folder)
    _patch_json(folder / "config.json", architectures=["BertForSequenceClassification"])
    return folder


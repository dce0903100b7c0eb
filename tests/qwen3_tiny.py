"""Build, with no network, a randomly initialised Qwen3 embedding model as a sentence-transformers folder.

The folder mirrors Qwen3-Embedding-0.6B's files: a Qwen3 config, a byte-level BPE tokenizer
with Qwen's special tokens whose post-processor appends `<|endoftext|>`, bf16 safetensors,
modules.json (Transformer -> Pooling -> Normalize), last-token pooling, a `query` prompt with
no default prompt, and no sentence_bert_config.json. Seeded: the same arguments give the same
files. Used by the tests (tiny shape) and by scripts/gpu_check.py (tiny or 0.6B shape).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

PAD, EOS, IM_START = "<|endoftext|>", "<|im_end|>", "<|im_start|>"
# Qwen2/Qwen3's pre-tokenizer pattern (split before byte-level BPE).
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")
REAL_QUERY_PROMPT = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"
TINY_SHAPE = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": 128, "head_dim": 16}
# Qwen3-Embedding-0.6B's config.json (vocab_size is the model's, larger than its tokenizer's).
QWEN3_06B_SHAPE = {"hidden_size": 1024, "num_hidden_layers": 28, "num_attention_heads": 16,
                   "num_key_value_heads": 8, "intermediate_size": 3072, "head_dim": 128, "vocab_size": 151669,
                   "max_position_embeddings": 32768, "rope_theta": 1000000}
STATUTE_TEXT = [
    "Whoever causes the death of a woman within seven years of her marriage by burns or bodily injury "
    "shall be punished for dowry death with imprisonment which shall not be less than seven years.",
    "Culpable homicide is murder if the act by which the death is caused is done with the intention of "
    "causing death, or of causing such bodily injury as the offender knows to be likely to cause death.",
    "Whoever, intending to take dishonestly any movable property out of the possession of any person "
    "without that person's consent, moves that property in order to such taking, is said to commit theft.",
    "Whoever enters into or upon property in the possession of another with intent to commit an offence "
    "or to intimidate, insult or annoy any person in possession of such property commits criminal trespass.",
    "Whoever, by deceiving any person, fraudulently or dishonestly induces the person so deceived to "
    "deliver any property to any person, is said to cheat.",
    "Whoever, being the husband or the relative of the husband of a woman, subjects such woman to cruelty "
    "shall be punished with imprisonment for a term which may extend to three years and shall also be liable to fine.",
    "The appellant was convicted under Section 302 of the Indian Penal Code and sentenced to imprisonment "
    "for life; the High Court dismissed the appeal and the accused approached this Court.",
    "Nothing is an offence which is done by a person who, at the time of doing it, by reason of "
    "unsoundness of mind, is incapable of knowing the nature of the act.",
    "When a criminal act is done by several persons in furtherance of the common intention of all, each of "
    "such persons is liable for that act in the same manner as if it were done by him alone.",
    "Every person has a right of private defence of his body and of the body of any other person against "
    "any offence affecting the human body, subject to the restrictions contained in section 99.",
    "第二百三十二条 故意杀人的，处死刑、无期徒刑或者十年以上有期徒刑；情节较轻的，处三年以上十年以下有期徒刑。",
    "第二百六十四条 盗窃公私财物，数额较大的，或者多次盗窃、入户盗窃、携带凶器盗窃、扒窃的，处三年以下有期徒刑。",
]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 640, append_eos: bool = True):
    """A byte-level BPE tokenizer (Qwen's split pattern, NFC, special tokens); `append_eos`: `<|endoftext|>`
    appended to every text, as Qwen3-Embedding's tokenizer does (Qwen3-Reranker's appends nothing)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, IM_START, EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer)
    if append_eos:
        pad_id = tok.token_to_id(PAD)
        tok.post_processor = processors.TemplateProcessing(
            single=f"$A:0 {PAD}:0", pair=f"$A:0 {PAD}:0 $B:1 {PAD}:1", special_tokens=[(PAD, pad_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD, model_max_length=32768)


def build_qwen3_folder(folder: str | Path, *, shape: dict | None = None, texts: Iterable[str] = STATUTE_TEXT,
                       tokenizer_vocab: int = 640, seed: int = 0, device: str = "cpu") -> Path:
    """Write a random Qwen3 embedding model (bf16 safetensors) with a trained tokenizer into `folder`."""
    import torch
    from transformers import Qwen3Config, Qwen3Model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(texts, tokenizer_vocab)
    tokenizer.save_pretrained(folder)
    shape = {**TINY_SHAPE, **(shape or {})}
    shape.setdefault("vocab_size", len(tokenizer))
    config = Qwen3Config(**shape, tie_word_embeddings=True, bos_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen3Model(config)
    model.to(torch.bfloat16).save_pretrained(folder, safe_serialization=True)
    _patch_json(folder / "config.json", architectures=["Qwen3ForCausalLM"])
    _write_sentence_transformers_files(folder, shape["hidden_size"])
    return folder


def _write_sentence_transformers_files(folder: Path, dim: int) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    pooling = {"word_embedding_dimension": dim, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": False,
               "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False,
               "pooling_mode_weightedmean_tokens": False, "pooling_mode_lasttoken": True, "include_prompt": True}
    st_config = {"prompts": {"query": REAL_QUERY_PROMPT, "document": ""}, "default_prompt_name": None,
                 "similarity_fn_name": "cosine"}
    (folder / "1_Pooling").mkdir(exist_ok=True)
    _write_json(folder / "modules.json", modules)
    _write_json(folder / "1_Pooling" / "config.json", pooling)
    _write_json(folder / "config_sentence_transformers.json", st_config)


def _patch_json(path: Path, **values) -> None:
    _write_json(path, {**json.loads(path.read_text(encoding="utf-8")), **values})


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

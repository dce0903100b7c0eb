"""Second stage: a cross-encoder reads query and statute together and reorders the top of the fused list.

A reranker is loaded through sentence-transformers' CrossEncoder from a local folder or Hub id:
- a Qwen3-Reranker as published (a Qwen3ForCausalLM): the pair goes through Qwen's judge prompt with an
  instruction, and the score is P("yes") = sigmoid(logit("yes") - logit("no")) at the last position, the
  score of Qwen's reference code and of MTEB's Qwen3-Reranker model;
- any sequence-classification cross-encoder with one label: the score is the sigmoid of its logit.

Truncation (the stated rule): a pair longer than `max_length` tokens is cut from its end. For a Qwen3 judge
the prompt keeps its fixed head and tail and the content `<Instruct>: i <Query>: q <Document>: d` loses its
last tokens, so the statute's end goes first and the query is cut only once the statute is gone (Qwen's
reference code and MTEB do the same); a sequence classifier cuts the longer of query and statute a token at a
time ('longest_first'). `max_length` defaults to the model's own limit, at most 8192 (Qwen's reference value).

Reranking never drops a document: the first `depth` of the first-stage list are reordered by rerank score
(ties by descending id, trec_eval's order); the rest keeps its order below them. In a search it is a stage
(HitStage: RerankStage), which the retriever gives the fused hits and takes them back reordered from.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np

from .dense.encoders import QWEN3_INSTRUCTIONS, load_model, plan_batches, resolve_model, weights_sha256

if TYPE_CHECKING:
    from .hits import Hit

log = logging.getLogger(__name__)

MAX_LENGTH = 8192  # Qwen's reference code and MTEB's Qwen3-Reranker wrapper
DEFAULT_DEPTH = 50
JUDGE_SYSTEM = ('Judge whether the Document meets the requirements based on the Query and the Instruct provided. '
                'Note that the answer can only be "yes" or "no".')
JUDGE_PREFIX = f"<|im_start|>system\n{JUDGE_SYSTEM}<|im_end|>\n<|im_start|>user\n"
JUDGE_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
RERANK_INSTRUCTIONS = {
    "legal": QWEN3_INSTRUCTIONS["legal"],
    "qwen": "Given a web search query, retrieve relevant passages that answer the query",  # Qwen's example default
}


def _content(role: str) -> str:
    return f'messages | selectattr("role", "eq", "{role}") | map(attribute="content") | first'


# Qwen's judge prompt as a chat template over sentence-transformers' pair messages: the instruction is the
# system message (CrossEncoder.predict's `prompt`), the pair the `query` and `document` messages. The suffix
# is a string expression because Jinja drops a template's trailing newline.
JUDGE_TEMPLATE = (
    "{%- set instruction = " + _content("system") + f' | default("{RERANK_INSTRUCTIONS["qwen"]}") -%}}'
    + JUDGE_PREFIX + "<Instruct>: {{ instruction }}\n<Query>: {{ " + _content("query") + " }}\n<Document>: {{ "
    + _content("document") + " }}{{ " + json.dumps(JUDGE_SUFFIX) + " }}"
)


def judge_text(instruction: str, query: str, document: str) -> str:
    """The judge prompt one pair becomes, as Qwen's reference code writes it (what JUDGE_TEMPLATE renders)."""
    return f"{JUDGE_PREFIX}<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}{JUDGE_SUFFIX}"


@dataclass(frozen=True)
class RerankConfig:
    """How to load and run a reranker; `Reranker.info()` records what each field resolves to."""

    model: str
    device: str | None = None  # None: cuda when available, else cpu
    dtype: str = "auto"  # auto: bf16 on a CUDA device that supports it, fp32 otherwise
    attn: str | None = None  # "sdpa" or "flash_attention_2"; None: transformers' default
    max_length: int | None = None  # tokens per pair; None: the model's limit, at most MAX_LENGTH
    batch_size: int = 16  # pairs per batch when there is no token budget
    max_tokens_per_batch: int | None = None  # None: CUDA_TOKEN_BUDGET on CUDA, off on CPU; 0: off
    instruction: str | None = None  # Qwen3 judges: a preset name (legal, qwen) or any text; None: legal


def resolve_instruction(instruction: str | None) -> str:
    """A judge instruction: a preset's text, the text as given, or (None) the legal preset."""
    if instruction is not None and not instruction.strip():
        raise ValueError("the rerank instruction is empty")
    return RERANK_INSTRUCTIONS.get(instruction or "legal", instruction)


class Reranker:
    """A loaded cross-encoder that scores (query, statute) pairs; higher is more relevant."""

    def __init__(self, config: RerankConfig):
        from sentence_transformers import CrossEncoder

        if not config.model:
            raise ValueError("a reranker needs a model (a local folder or Hub id)")
        if config.batch_size < 1:
            raise ValueError(f"rerank batch size must be >= 1, got {config.batch_size}")
        self.config = config
        self.model_name, self.model_path = config.model, resolve_model(config.model)
        self.model, self.device, self.dtype, self.token_budget = load_model(
            CrossEncoder, self.model_path, config, config.model, "reranker")
        self.is_judge = self.model[0].transformer_task == "text-generation"
        if self.model.num_labels != 1:
            raise ValueError(f"{config.model}: a reranker must give one score per pair; this model has "
                             f"{self.model.num_labels} labels")
        self.instruction = resolve_instruction(config.instruction) if self.is_judge else None
        if self.is_judge:
            self.model.tokenizer.chat_template = JUDGE_TEMPLATE
        elif config.instruction is not None:
            raise ValueError("a rerank instruction applies to Qwen3-Reranker-style (causal LM) models only")
        self.max_length = self._max_length(config.max_length)
        self.model.max_seq_length = self.max_length

    def _max_length(self, asked: int | None) -> int:
        """Tokens per pair: as asked, else the smaller of the tokenizer's and the model's limits, at most 8192."""
        if asked is not None:
            if asked < 8:
                raise ValueError(f"rerank max length must be >= 8 tokens, got {asked}")
            return asked
        limits = [MAX_LENGTH, self.model.tokenizer.model_max_length,
                  getattr(self.model.model.config, "max_position_embeddings", None)]
        return int(min(x for x in limits if x))

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """The rerank score of each document for one query."""
        return self.score_pairs([query] * len(documents), documents)

    def score_pairs(self, queries: Sequence[str], documents: Sequence[str]) -> np.ndarray:
        """The rerank score of each (query, document) pair, in input order, scored in planned batches."""
        pairs = list(zip(queries, documents, strict=True))
        out = np.zeros(len(pairs), dtype=np.float32)
        for batch in self.plan(pairs):
            out[batch] = self.model.predict([pairs[i] for i in batch], prompt=self.instruction,
                                            batch_size=len(batch), show_progress_bar=False, convert_to_numpy=True)
        return out

    def plan(self, pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
        """Pair indices in batches, longest first: under the token budget on CUDA, else batch_size pairs."""
        if not self.token_budget:
            return plan_batches([len(q) + len(d) for q, d in pairs], None, self.config.batch_size)
        lengths = np.minimum(self.token_lengths(pairs), self.max_length)
        return plan_batches(lengths.tolist(), self.token_budget, self.config.batch_size)

    def token_lengths(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Tokens of each pair before truncation: its query and document plus the prompt's own tokens."""
        tok = self.model.tokenizer
        if self.is_judge:
            empty = len(tok(judge_text(self.instruction, "", ""), add_special_tokens=False)["input_ids"])
        else:
            empty = len(tok("", "")["input_ids"])
        texts = [t for pair in pairs for t in pair]
        ids = tok(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        return empty + np.fromiter(map(len, ids), dtype=np.int64, count=len(texts)).reshape(-1, 2).sum(axis=1)

    @property
    def attn(self) -> str | None:
        """The attention implementation the model runs with."""
        return getattr(self.model.model.config, "_attn_implementation", None) or self.config.attn

    def info(self) -> dict:
        """What the manifest and reports record about this reranker."""
        return {
            "model": self.model_name, "model_path": self.model_path,
            "weights_sha256": weights_sha256(self.model_path),
            "kind": "qwen3-judge (causal LM, yes/no logits)" if self.is_judge else "sequence-classification",
            "instruction": self.instruction,
            "prompt": judge_text(self.instruction, "{query}", "{document}") if self.is_judge else None,
            "score": ("P(yes) = sigmoid(logit yes - logit no) at the last position" if self.is_judge
                      else "sigmoid of the classifier's logit"),
            "dtype": self.dtype, "attn": self.attn, "device": self.device, "max_length": self.max_length,
            "truncation": ("the judge prompt's content from its end (statute first, then query)" if self.is_judge
                           else "longest_first (the longer of query and statute, a token at a time)"),
            "batch_size": self.config.batch_size, "max_tokens_per_batch": self.token_budget,
        }


@dataclass(frozen=True)
class Reranked:
    """A document's place after reranking: its first-stage rank and score, and its rerank score (None below
    the rerank depth)."""

    id: str
    first_rank: int
    first_score: float
    rerank_score: float | None


def rerank_order(ranked: Sequence[tuple[str, float]], scores: Sequence[float]) -> list[Reranked]:
    """The first-stage list (id, score) with its first len(scores) documents reordered by `scores` (descending,
    ties by descending id), the rest below in its first-stage order. Nothing is dropped."""
    if len(scores) > len(ranked):
        raise ValueError(f"{len(scores)} rerank scores for {len(ranked)} documents")
    head = [Reranked(i, r, float(s), float(x)) for r, ((i, s), x) in enumerate(zip(ranked, scores), start=1)]
    head.sort(key=lambda d: d.id, reverse=True)
    head.sort(key=lambda d: -d.rerank_score)  # stable: equal scores stay in descending id order
    tail = [Reranked(i, r, float(s), None) for r, (i, s) in enumerate(ranked[len(scores):], start=len(scores) + 1)]
    return head + tail


def rerank_lists(reranker: Reranker, queries: Sequence[str], lists: Sequence[Sequence[tuple[str, float]]],
                 depth: int, text_of: Callable[[str], str]) -> list[list[Reranked]]:
    """Each query's first-stage list with its top `depth` reordered; all pairs scored in one planned run."""
    if depth < 1:
        raise ValueError(f"rerank depth must be >= 1, got {depth}")
    heads = [list(ranked[:depth]) for ranked in lists]
    scores = reranker.score_pairs([q for q, head in zip(queries, heads) for _ in head],
                                  [text_of(doc_id) for head in heads for doc_id, _ in head])
    out, start = [], 0
    for ranked, head in zip(lists, heads):
        out.append(rerank_order(ranked, scores[start:start + len(head)]))
        start += len(head)
    return out


class HitStage(Protocol):
    """A stage after fusion (a reranker): given each query's top `depth` fused hits (at least k), their texts by id,
    it returns each query's hits reordered; the retriever keeps the first k."""

    @property
    def depth(self) -> int:
        """How many fused hits of each query the stage reads."""
        ...

    def apply(self, queries: Sequence[str], hits: Sequence[Sequence[Hit]],
              text_of: Callable[[str], str]) -> list[list[Hit]]:
        """Each query's hits, reordered."""
        ...


class RerankStage(NamedTuple):
    """The rerank stage of a search: `reranker` reorders the top `depth` fused hits of each query."""

    reranker: Reranker
    depth: int = DEFAULT_DEPTH

    def apply(self, queries: Sequence[str], hits: Sequence[Sequence[Hit]],
              text_of: Callable[[str], str]) -> list[list[Hit]]:
        """Each query's fused hits with the top `depth` reordered; a hit keeps its first-stage rank and score in
        `first_stage`, gets `rerank_score` (None below the depth), and `rank`/`score` become the final ones."""
        from .hits import LegHit

        lists = [[(h.id, h.score) for h in q_hits] for q_hits in hits]
        out = []
        for q_hits, order in zip(hits, rerank_lists(self.reranker, queries, lists, self.depth, text_of)):
            by_id = {h.id: h for h in q_hits}
            out.append([replace(by_id[d.id], rank=rank, first_stage=LegHit(d.first_rank, d.first_score),
                                rerank_score=d.rerank_score,
                                score=d.first_score if d.rerank_score is None else d.rerank_score)
                        for rank, d in enumerate(order, start=1)])
        return out


def ordered_scores(order: Sequence[Reranked]) -> dict[str, float]:
    """{id: score} whose descending order is `order`, for an evaluator that sorts by score (MTEB): the rerank
    scores as they are, and below the depth scores under the lowest of them, one apart, in first-stage order."""
    head = [d.rerank_score for d in order if d.rerank_score is not None]
    floor = min(head, default=0.0)
    out, below = {}, 0
    for d in order:
        if d.rerank_score is None:
            below += 1
        out[d.id] = d.rerank_score if d.rerank_score is not None else floor - below
    return out


def index_settings(reranker: Reranker, depth: int = DEFAULT_DEPTH) -> dict:
    """What an index's manifest records about the reranker it names: its info and the rerank depth."""
    if depth < 1:
        raise ValueError(f"rerank depth must be >= 1, got {depth}")
    return {**reranker.info(), "depth": depth}


def from_index(settings: dict, device: str | None = None) -> RerankStage:
    """The rerank stage an index names (its manifest's `rerank` settings: the reranker and its depth); the
    weights must be the ones the index recorded."""
    config = RerankConfig(model=settings.get("model_path") or settings["model"], device=device,
                          dtype=settings.get("dtype", "auto"),
                          max_length=settings.get("max_length"), batch_size=settings.get("batch_size", 16),
                          instruction=settings.get("instruction"))
    reranker = Reranker(config)
    recorded, now = settings.get("weights_sha256"), weights_sha256(reranker.model_path)
    if recorded and now and recorded != now:
        raise ValueError(f"reranker mismatch: the index names {settings['model']} with weights sha256 "
                         f"{recorded[:12]}, but {reranker.model_path} has {now[:12]}; pass --rerank MODEL")
    return RerankStage(reranker, int(settings.get("depth", DEFAULT_DEPTH)))

"""IndexSpec: how an index is built, one description shared by build, update, bench, tune, the MTEB adapter, finetune.

A spec names the model (EncoderConfig), the legs and their options, the fusion, the dense leg's chunking, the BM25
analysis and parameters, the backend and the embedding cache. It is read from the command line (`from_args`), from
a settings file as `tune` writes it (`with_settings(read_settings(path))`), from an index's manifest (`of_index`:
what `update` encodes with) or made in Python, and it gives the retriever its build arguments (`build_kwargs`: the
legs' BuildOptions fields) and the encoder (`make_encoder`, routed by distributed_cli.Spread.spec), so every command
builds the same index from the same spec. To add a build option: a field here, its flag in `from_args` (and the
parser in cli.py), where it goes in `build_kwargs` (a BuildOptions field in legs/base.py, read by the leg that uses
it) and, when the leg records it in the manifest, where `of_index` reads it back.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from .dense.chunking import ChunkSettings
from .dense.encoders import Encoder, EncoderConfig, make_encoder
from .index.format import read_manifest
from .legs import BuildOptions
from .legs import dense as dense_leg
from .lexical.analysis import AnalyzerSettings, resolve_settings
from .retriever import LEGS
from .settings import Bm25Params, FusionConfig, Settings

AnalysisValue = str | float | bool | None  # a BM25 analysis option's value (AnalyzerSettings' fields)


@dataclass(frozen=True)
class IndexSpec:
    """What decides an index's contents: model, legs, fusion, chunking, BM25 analysis and k1/b, backend, cache."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    legs: tuple[str, ...] = LEGS
    fusion: FusionConfig = field(default_factory=FusionConfig)
    chunking: ChunkSettings = field(default_factory=ChunkSettings)
    bm25: Bm25Params = field(default_factory=Bm25Params)
    language: str = "auto"  # BM25 analysis language (auto: identified in the corpus)
    analysis: dict[str, AnalysisValue] = field(default_factory=dict)  # options over the language's defaults
    user_words: tuple[str, ...] = ()  # extra words for jieba's dictionary
    bm25_backend: str = "bm25s"
    bm25_workers: int | None = None  # BM25 analysis processes (None: the cores available)
    dense_kind: str = "auto"  # flat, hnsw, ivf or auto
    dense_backend: str = "auto"  # dense search (retrieval.dense.stores.faiss.BACKENDS)
    encode_titles: bool | None = None  # None: when the chunk settings weigh titles
    backend: str = "embedded"  # or "milvus" (the target itself is given to build_kwargs)
    cache: str | None = None  # folder of the embedding cache (embedcache.attach)
    # who encodes the documents (distributed_cli.Spread.route, --devices/--ray): not a setting, the vectors are the same
    route: Callable[[Encoder], None] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_args(cls, args: argparse.Namespace, settings: Settings | None = None) -> IndexSpec:
        """The spec of a command line (build, bench, tune, finetune), with a settings file's (with_settings) when
        `settings` is given."""
        spec = cls(encoder=encoder_config(args), legs=legs_arg(args), language=args.language,
                   analysis=analysis_overrides(args), user_words=user_words(args), bm25_backend=args.bm25_backend,
                   bm25_workers=getattr(args, "workers", None), dense_kind=getattr(args, "dense_index", "auto"),
                   dense_backend=args.dense_backend, backend=getattr(args, "backend", "embedded"), cache=args.cache)
        return spec if settings is None else spec.with_settings(settings)

    @classmethod
    def of_index(cls, index: str | Path | Mapping) -> IndexSpec:
        """The spec an index (its folder or manifest) was built with, as the manifest records it: the model as this
        machine loads it to encode (legs.dense.encoder_config: device, attention and token batching are the
        machine's own), the legs, fusion, chunking, BM25 analysis (resolved), k1/b and engine, store kind, backend.
        Not recorded: the embedding cache and the BM25 user words (kept in the index's BM25 folder)."""
        manifest = index if isinstance(index, Mapping) else read_manifest(index, verify=False)
        spec = cls(legs=tuple(manifest["legs"]), fusion=FusionConfig.from_dict(manifest.get("fusion", {})),
                   backend="milvus" if manifest.get("backend") else "embedded")
        if dense := manifest.get("dense"):
            chunking = ChunkSettings.from_dict(dense.get("chunking"))
            titles = dense.get("title_vectors", chunking.title_weight > 0)
            spec = replace(spec, encoder=dense_leg.encoder_config(dense, None, None), chunking=chunking,
                           dense_kind=dense["store"]["kind"],
                           encode_titles=None if titles == (chunking.title_weight > 0) else titles)
        if bm25 := manifest.get("bm25"):
            analysis = AnalyzerSettings.from_dict(bm25["analysis"]).to_dict()
            del analysis["user_dict"]  # the index's own file, not a setting
            spec = replace(spec, language=analysis.pop("language"), analysis=analysis, bm25_backend=bm25["engine"],
                           bm25=Bm25Params(k1=bm25["params"].get("k1"), b=bm25["params"].get("b"),
                                           query_window=bm25.get("query_window", 0)))
        return spec

    def with_settings(self, settings: Settings) -> IndexSpec:
        """This spec with a settings file's fusion, chunking and BM25 parameters, and its query prompt (from
        `tune --prompts`) unless the spec's encoder names a prompt or instruction of its own."""
        own = self.encoder.query_prompt is not None or self.encoder.query_instruction is not None
        encoder = self.encoder if own or settings.query_prompt is None else replace(
            self.encoder, query_prompt=settings.query_prompt)
        return replace(self, encoder=encoder, fusion=settings.fusion, chunking=settings.chunking, bm25=settings.bm25)

    def with_model(self, model: str) -> IndexSpec:
        """This spec with another model (a fine-tuned copy of the base, say), every other encoder option kept."""
        return replace(self, encoder=replace(self.encoder, model=model))

    def settings(self) -> Settings:
        """The query-time part (fusion, chunking, BM25 parameters, query prompt), as a settings file holds it."""
        return Settings(self.fusion, self.chunking, self.bm25, self.encoder.query_prompt)

    @property
    def dense(self) -> bool:
        """Whether the spec has a dense leg (and so needs an encoder)."""
        return "dense" in self.legs

    def make_encoder(self, memo: bool = False) -> Encoder | None:
        """The spec's encoder, routed and with its embedding cache (None without a dense leg); `memo`: see
        encoders.make_encoder."""
        return make_encoder(self.encoder, self.cache, memo, self.route) if self.dense else None

    def analysis_for(self, texts: Sequence[str]) -> AnalyzerSettings | None:
        """The BM25 analysis: the language's defaults (auto: identified in `texts`) with the spec's options; None
        without a BM25 leg."""
        return resolve_settings(self.language, texts, **self.analysis) if "bm25" in self.legs else None

    def build_kwargs(self, **runtime: object) -> dict[str, object]:
        """HybridRetriever.build's arguments: the legs, the fusion and the BuildOptions fields of this spec;
        `runtime` adds what is not a setting (an encoder object, resolved `analysis`, a Milvus target, progress)."""
        options = BuildOptions(encoder=self.encoder if self.dense else None, chunking=self.chunking,
                               encode_titles=self.encode_titles, language=self.language,
                               user_words=self.user_words, bm25_backend=self.bm25_backend, bm25=self.bm25,
                               bm25_workers=self.bm25_workers, dense_kind=self.dense_kind,
                               dense_backend=self.dense_backend, cache=self.cache)
        built = {f.name: getattr(options, f.name) for f in fields(options) if f.name != "timings"}
        unknown = set(runtime) - set(built)
        if unknown:
            raise TypeError(f"not build options: {', '.join(sorted(unknown))}")
        return {"legs": self.legs, "fusion_config": self.fusion, **built, **runtime}


def encoder_config(args: argparse.Namespace) -> EncoderConfig:
    """The encoder options of a command line; a device that cannot be honoured stops here, before any reading or
    loading."""
    from .dense.gpu import check_device

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.device:
        check_device(args.device)
    return EncoderConfig(model=args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                         query_prompt=args.query_prompt, query_instruction=args.query_instruction,
                         max_seq_length=args.max_seq_length, attn=args.attn,
                         max_tokens_per_batch=args.max_tokens_per_batch)


def analysis_overrides(args: argparse.Namespace) -> dict[str, AnalysisValue]:
    """The BM25 analysis options given on the command line (each overrides the language's default)."""
    options = {"zh_mode": args.zh_mode, "title": args.title, "title_weight": args.title_weight,
               "article_numbers": args.article_numbers, "law_names": args.law_names}
    overrides: dict[str, AnalysisValue] = {k: v for k, v in options.items() if v is not None}
    if args.stopwords:
        overrides["stopwords"] = None if args.stopwords == "none" else args.stopwords
    return overrides


def user_words(args: argparse.Namespace) -> tuple[str, ...]:
    """The words of --user-dict (jieba's extra dictionary), if given."""
    from .lexical.chinese import read_user_dict

    return tuple(read_user_dict(args.user_dict)) if args.user_dict else ()


def legs_arg(args: argparse.Namespace) -> tuple[str, ...]:
    """--legs as a tuple ('dense,bm25' -> ('dense', 'bm25')); not given: the default legs."""
    return tuple(leg.strip() for leg in args.legs.split(",") if leg.strip()) if args.legs else LEGS

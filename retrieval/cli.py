"""Command line: build, query (one-shot or interactive), bench, tune, finetune, serve (web app), perf. Parsing and printing only.

`update` and `delete`, and query's filter options, are in live_cli.py.

Exit codes (README "Exit codes"): 0 success, 1 a damaged or mismatched index or a runtime failure, 2 bad
input (arguments, corpus, settings files, models), 3 not found (an index folder, a document id), each with a
one-line message on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__, distributed_cli, live_cli
from .cli_help import command
from .corpus import CorpusError
from .dense.chunking import DOC_AGGREGATIONS
from .dense.stores.faiss import BACKEND_CHOICES, KINDS
from .index.format import IndexFileError, NotFoundError
from .lexical.engines import ENGINES
from .milvus import BM25_MODES, TOKEN_ENV, MilvusTarget, collection_base, connect
from .milvus.backend import MilvusBackend
from .perf.cli import perf_parser
from .terminal import printable, shorten

if TYPE_CHECKING:
    from .spec import IndexSpec

HISTORY_LINES = 1000  # queries the interactive prompt's history file keeps


def main(argv: list[str] | None = None) -> int:
    """Entry point of `retrieval` and `python -m retrieval`."""
    parser = _parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return args.func(args)
    except (CorpusError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except NotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except IndexFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _parser() -> argparse.ArgumentParser:
    """The command line: one sub-parser per command."""
    p = argparse.ArgumentParser(prog="retrieval", description=__doc__.splitlines()[0],
                                epilog="`retrieval COMMAND --help` shows a command's options and examples.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    _build_parser(sub)
    _query_parser(sub)
    _bench_parser(sub)
    _tune_parser(sub)
    _finetune_parser(sub)
    _serve_parser(sub)
    perf_parser(sub)
    live_cli.update_parsers(sub)
    return p


def _build_parser(sub) -> None:
    """Options of the `build` command."""
    b = command(sub, "build", "build an index folder from a corpus", """
retrieval build "$AILA2019_DIR"/Object_statutes --out index/aila
retrieval build docs/examples/statutes-v1.jsonl --out index/amend --legs bm25""")
    b.add_argument("corpus", help="AILA release folder, folder of S*.txt, .jsonl or .csv (id, title, text)")
    b.add_argument("--out", required=True, help="index folder to write (replaced atomically if it exists)")
    b.add_argument("--legs", help="legs to build, comma-separated: dense,bm25 (default; bm25 alone when the model "
                                  "reads none of the corpus's main language), dense, bm25, or any registered leg")
    b.add_argument("--language", choices=("auto", "en", "zh"), default="auto", help="BM25 analysis language")
    _model_languages_arg(b)
    _analysis_args(b)
    _bm25_backend_arg(b)
    b.add_argument("--workers", type=int, help="BM25 analysis processes (default: the cores available)")
    _cache_arg(b)
    b.add_argument("--dense-index", choices=("auto", *KINDS), default="auto",
                   help="exact (flat), HNSW or IVF; auto (default): flat for small corpora, HNSW for large")
    b.add_argument("--fusion-config", help="JSON settings from `tune` (fusion, chunking) stored with the index")
    b.add_argument("--chunk", choices=("none", "documents", "queries", "both"),
                   help="encode long texts as token windows for the dense leg (default: none, or the settings file's)")
    b.add_argument("--chunk-agg", choices=DOC_AGGREGATIONS, help="chunk-to-statute aggregation")
    _encoder_args(b)
    distributed_cli.add_args(b)
    _dense_backend_arg(b)
    _rerank_args(b, "name this reranker in the index: queries rerank with it unless --rerank none")
    _backend_args(b)
    b.set_defaults(func=cmd_build)


def _query_parser(sub) -> None:
    """Options of the `query` command."""
    q = command(sub, "query", "query an index; with no text, an interactive prompt", """
retrieval query index/aila "The accused set his wife on fire over dowry demands"
retrieval query index/amend "dowry death" --as-of 2025-01-01 --filter "act in (IPC, BNS)" -k 5 --json""")
    q.add_argument("index", help="index folder")
    q.add_argument("text", nargs="?", help="query text (omit for the interactive prompt)")
    q.add_argument("--mode", help="hybrid (all legs fused) or one leg's name (dense, bm25); default: the index's "
                                   "(hybrid, or bm25 where the model cannot read the corpus's language)")
    q.add_argument("-k", type=int, default=10, help="number of hits (default 10)")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.add_argument("--fusion-config", help="JSON fusion settings overriding the index's")
    _fusion_in_arg(q)
    q.add_argument("--model", help="query-time model; must be the index's model")
    q.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    _dense_backend_arg(q)
    q.add_argument("--mmap", action=argparse.BooleanOptionalAction,
                   help="memory-map index arrays instead of reading them (default: for indexes of 256 MiB or more)")
    q.add_argument("--verify", action=argparse.BooleanOptionalAction,
                   help="check every file's sha256 on load (default: unless memory-mapped; sizes are always checked)")
    _rerank_args(q, "rerank the top of the fused list with this cross-encoder (default: the index's reranker, "
                    "if it names one; none: no reranking)")
    live_cli.filter_args(q)
    q.add_argument("--no-history", action="store_true",
                   help=f"interactive prompt: keep no history file (default: the last {HISTORY_LINES} queries in "
                        "$XDG_CACHE_HOME/retrieval/query_history, else ~/.cache/retrieval/query_history)")
    q.set_defaults(func=cmd_query)


def _bench_parser(sub) -> None:
    """Options of the `bench` command."""
    be = command(sub, "bench", "dense vs BM25 vs hybrid (equal RRF) vs default (an untuned index's answers) through MTEB "
                               "(AILAStatutes or a data-set folder)", """
retrieval bench --aila-dir "$AILA2019_DIR" --out results/aila
retrieval bench --dataset DIR --fusion-config results/tune/fusion.json --parity --out results/bench
retrieval bench --aila-dir "$AILA2019_DIR" --model models/minilm-headings --out results/ft   # + base_dense, paired""")
    be.add_argument("--out", required=True, help="folder for report.json, report.md, ndcg10.png, MTEB JSONs")
    _data_args(be)
    _analysis_args(be)
    be.add_argument("--fusion-config", help="settings file from `tune`: adds a 'tuned' run")
    _model_languages_arg(be)
    be.add_argument("--parity", action="store_true", help="also run MTEB's own dense, BM25 and HybridSearch")
    be.add_argument("--trec-runs", action="store_true", help="also write each run as a TREC run file")
    _encoder_args(be)
    distributed_cli.add_args(be)
    _dense_backend_arg(be)
    _rerank_args(be, "add runs dense+rerank, hybrid+rerank (and tuned+rerank) reranked by this cross-encoder")
    _backend_args(be)
    _fusion_in_arg(be, "server: add a run fused by Milvus and compare it with the project's fusion")
    be.set_defaults(func=cmd_bench)


def _tune_parser(sub) -> None:
    """Options of the `tune` command."""
    t = command(sub, "tune", "choose fusion and chunking settings by cross-validation over queries", """
retrieval tune --aila-dir "$AILA2019_DIR" --out results/tune-aila
retrieval tune --dataset DIR --folds 3 --out results/tune   # DIR: corpus.jsonl, queries.jsonl, qrels.tsv""")
    t.add_argument("--out", required=True, help="folder for tune.json, tune.md and fusion.json (the settings)")
    _data_args(t)
    _analysis_args(t)
    t.add_argument("--folds", type=int, default=5, help="cross-validation folds over the queries")
    t.add_argument("--seed", type=int, default=0, help="seed of the random split of queries into folds")
    t.add_argument("--no-chunking", action="store_true", help="leave long-text chunking out of the search")
    t.add_argument("--prompts", help="Qwen3 instruction presets to compare, e.g. mteb,legal,none")
    t.add_argument("--depth", type=int, help="each leg's candidate list length (default: whole corpus, at most 1000)")
    _encoder_args(t)
    distributed_cli.add_args(t)
    _dense_backend_arg(t)
    t.set_defaults(func=cmd_tune)


def _serve_parser(sub) -> None:
    """Options of the `serve` command."""
    s = command(sub, "serve", "serve the search page and REST API over index folders", """
retrieval serve index/aila                       # http://127.0.0.1:8000/
retrieval serve index/aila index/amend --port 8080 --watch""")
    s.add_argument("index", nargs="+", help="index folder(s); each is named by its folder name")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    s.add_argument("--port", type=int, default=8000, help="port")
    s.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    _dense_backend_arg(s)
    _rerank_args(s, "rerank every index's results with this cross-encoder (default: each index's own reranker, "
                    "if it names one; none: no reranking); a request can turn it off with rerank=false")
    s.add_argument("--batch-wait-ms", type=float, default=3.0,
                   help="gather concurrent searches on an index for at most this long into one batch")
    s.add_argument("--max-batch", type=int, default=32, help="searches per batch at most (1: one at a time)")
    s.add_argument("--max-queue", type=int, default=256,
                   help="searches an index holds (per worker) before answering 503 with Retry-After")
    s.add_argument("--timeout-s", type=float, default=60.0, help="answer 504 after this many seconds")
    s.add_argument("--watch", type=float, metavar="SECONDS", nargs="?", const=2.0,
                   help="poll each index folder for a new generation every SECONDS (default 2) and reload it")
    s.set_defaults(func=cmd_serve)


def _data_args(p: argparse.ArgumentParser) -> None:
    """The evaluation data and legs of `bench` and `tune`."""
    p.add_argument("--aila-dir", help="AILA 2019 release folder (default: $AILA2019_DIR; else download via MTEB)")
    p.add_argument("--dataset", help="folder with corpus.jsonl, queries.jsonl, qrels.tsv (instead of AILAStatutes)")
    p.add_argument("--legs", default="dense,bm25", help="legs: dense,bm25 (default), dense or bm25")
    p.add_argument("--language", choices=("auto", "en", "zh"), default="auto", help="BM25 analysis language")
    _bm25_backend_arg(p)
    _cache_arg(p)


def _bm25_backend_arg(p: argparse.ArgumentParser) -> None:
    """--bm25-backend of `build`, `bench` and `tune`."""
    p.add_argument("--bm25-backend", choices=ENGINES, default="bm25s",
                   help="BM25 engine: bm25s (fast, sparse matrices) or rank-bm25 (the reference implementation)")


def _model_languages_arg(p: argparse.ArgumentParser) -> None:
    """--model-languages of `build` and `bench`: the languages a model without a card reads."""
    p.add_argument("--model-languages", metavar="CODES",
                   help="languages the model reads, e.g. en,de or multilingual (default: its card's language: field; "
                        "the bundled MiniLM: en; Qwen3-Embedding: multilingual)")


def _cache_arg(p: argparse.ArgumentParser) -> None:
    """--cache DIR of `build`, `bench` and `tune`."""
    p.add_argument("--cache", metavar="DIR", help="keep document vectors in DIR: a second run on the same data and "
                                                   "model encodes nothing")


def _backend_args(p: argparse.ArgumentParser) -> None:
    """--backend and the Milvus settings (docs/milvus.md), the same on build and bench."""
    g = p.add_argument_group("index backend")
    g.add_argument("--backend", choices=("embedded", "milvus"), default="embedded",
                   help="embedded (default: FAISS + bm25s files in the index folder) or milvus (a Milvus collection)")
    g.add_argument("--uri", help="milvus: a local path ending in .db (Milvus Lite) or http(s)://host:19530 (a server)")
    g.add_argument("--token", help=f"milvus: a server's token (default: ${TOKEN_ENV}); never written to the index")
    g.add_argument("--collection", help="milvus: the collection's base name (default: the index folder's name)")
    g.add_argument("--bm25", choices=BM25_MODES, default="client",
                   help="milvus: client (default: this project's BM25 weights as sparse vectors, rankings equal the "
                        "embedded ones) or server (Milvus's BM25 function and analyzer)")
    g.add_argument("--bulk-insert", metavar="URL", help="milvus server: bulk-import the rows from its object store "
                   "http(s)://HOST:PORT/BUCKET[/PREFIX] (keys: $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY)")


def _fusion_in_arg(p: argparse.ArgumentParser, server: str = "server: Milvus fuses in one hybrid_search") -> None:
    p.add_argument("--fusion", choices=("project", "server"), default="project",
                   help=f"where a Milvus-backed index fuses: project (default: this project's RRF and settings) or {server}")


def _milvus_target(args: argparse.Namespace, name: str):
    """The Milvus backend of --backend milvus (None: embedded); the Milvus flags alone are an error."""
    if args.backend != "milvus":
        if args.uri or args.collection or args.token or args.bm25 != "client" or args.bulk_insert:
            raise ValueError("--uri, --token, --collection, --bm25 and --bulk-insert go with --backend milvus")
        return None
    if not args.uri:
        raise ValueError("--backend milvus needs --uri (a .db path for Milvus Lite, or http://host:19530)")
    target = MilvusTarget(args.uri, args.collection or collection_base(name), args.bm25, args.token, args.bulk_insert)
    connect(target.uri, target.token)  # an unreachable server or a missing extra stops before any encoding
    return MilvusBackend(target)


def _analysis_args(p: argparse.ArgumentParser) -> None:
    from .lexical.analysis import TITLE_MODES, ZH_MODES

    g = p.add_argument_group("BM25 analysis (defaults: the language's, see docs/stard.md for Chinese)")
    g.add_argument("--zh-mode", choices=ZH_MODES,
                   help="Chinese: jieba accurate or search mode, characters, or ngram (characters + bigrams)")
    g.add_argument("--stopwords", choices=("bm25s", "legal", "none"), help="stopword list (legal: Chinese only)")
    g.add_argument("--title", choices=TITLE_MODES, help="title joined to the text, its own field, or not indexed")
    g.add_argument("--title-weight", type=float, help="weight of the title field's scores (--title field)")
    g.add_argument("--article-numbers", action=argparse.BooleanOptionalAction,
                   help="Chinese: 第四百六十五条 and 第465条 become one token 第465条")
    g.add_argument("--law-names", action=argparse.BooleanOptionalAction,
                   help="Chinese, jieba modes: add the law names in the titles to jieba's dictionary")
    g.add_argument("--user-dict", help="Chinese, jieba modes: a file of extra words (legal terms), one per line")


def _language_plan(args: argparse.Namespace, legs: tuple[str, ...], texts: list[str]):
    """(legs to build, the manifest's languages entry): the corpus's and the model's languages, and the default
    mode they give (languages.plan); says the plan's note on one line."""
    from .dense.encoders import DEFAULT_MODEL
    from .languages import identify, model_languages, plan

    if "dense" not in legs:
        return legs, None
    corpus, model = identify(texts), model_languages(args.model, args.model_languages)
    chosen = plan(corpus, model, legs, args.legs is not None, args.model or DEFAULT_MODEL)
    if chosen.note:
        print(chosen.note, file=sys.stderr)
    return chosen.legs, {"corpus": corpus, "model": model, "default_mode": chosen.default_mode, "note": chosen.note}


def _dense_backend_arg(p: argparse.ArgumentParser) -> None:
    """--dense-backend, the same on every command that searches."""
    p.add_argument("--dense-backend", choices=BACKEND_CHOICES, default="auto",
                   help="dense search: auto (faiss-gpu for flat and IVF indexes when faiss sees a GPU and a test search "
                        "there runs, torch on CUDA, else faiss); torch-fp16 keeps a float16 copy and re-scores in "
                        "float32. At build it is only checked against the index kind")


def _encoder_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="sentence-transformers folder or Hub id (default: bundled all-MiniLM-L6-v2)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                   help="auto: bf16 at compute capability >= 8.0, fp16 on older GPUs, fp32 on CPU")
    p.add_argument("--batch-size", type=int, default=32, help="texts per encoder batch when there is no token budget")
    p.add_argument("--max-tokens-per-batch", type=int,
                   help="token budget per batch (size x longest text); default 16384 on CUDA, off on CPU; 0: off")
    p.add_argument("--max-seq-length", type=int, help="tokens read per text (default: the model's)")
    p.add_argument("--attn", choices=("sdpa", "flash_attention_2"),
                   help="attention implementation (default: transformers' choice, sdpa)")
    prompt = p.add_mutually_exclusive_group()
    prompt.add_argument("--query-instruction", metavar="mteb|legal|none|TEXT",
                        help="instruction for queries in Qwen3's template 'Instruct: ...\\nQuery:' "
                             "(default for Qwen3 models: mteb)")
    prompt.add_argument("--query-prompt", metavar="TEXT", help="raw text put directly before each query")


def _rerank_args(p: argparse.ArgumentParser, what: str) -> None:
    from .rerank import DEFAULT_DEPTH

    g = p.add_argument_group("reranking (see docs/rerank.md)")
    g.add_argument("--rerank", metavar="MODEL", help=f"cross-encoder folder or Hub id: {what}")
    g.add_argument("--rerank-depth", type=int, default=DEFAULT_DEPTH,
                   help=f"how many of the first-stage list the reranker reorders (default {DEFAULT_DEPTH})")
    g.add_argument("--rerank-instruction", metavar="legal|qwen|TEXT",
                   help="instruction in a Qwen3-Reranker's judge prompt (default: legal)")
    g.add_argument("--rerank-max-length", type=int, help="tokens per pair (default: the model's, at most 8192)")
    g.add_argument("--rerank-batch-size", type=int, default=16, help="pairs per batch when there is no token budget")


def _reranker(args: argparse.Namespace, index_settings: dict | None = None):
    """The rerank stage (reranker, depth) of --rerank, else of an index's named reranker; None for --rerank none or
    neither."""
    from .rerank import Reranker, RerankStage, from_index

    config = _rerank_config(args)
    if config is not None:
        return RerankStage(Reranker(config), args.rerank_depth)
    if args.rerank is None and index_settings:
        return from_index(index_settings, args.device)
    return None


def _rerank_config(args: argparse.Namespace):
    """The reranker settings of --rerank (None when not given, or 'none'); device, dtype and attention are the
    command's own."""
    from .rerank import RerankConfig

    if args.rerank_depth < 1:
        raise ValueError(f"--rerank-depth must be >= 1, got {args.rerank_depth}")
    if args.rerank in (None, "none"):
        return None
    return RerankConfig(model=args.rerank, device=args.device, dtype=getattr(args, "dtype", "auto"),
                        attn=getattr(args, "attn", None), max_length=args.rerank_max_length,
                        batch_size=args.rerank_batch_size, instruction=args.rerank_instruction)


def cmd_build(args: argparse.Namespace) -> int:
    """Read and validate the corpus, build the legs, write the index atomically.

    Without the dense leg the corpus streams: read in chunks, analysed for BM25 and written into the new index
    generation as it goes (HybridRetriever.build_into), so no text is held twice; the dense leg reads it whole.
    """
    from .corpus import iter_corpus
    from .defaults import fusion_prior
    from .index.format import check_target
    from .languages import parse_languages, sample_texts
    from .retriever import HybridRetriever
    from .spec import IndexSpec

    t0 = time.perf_counter()
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.model_languages is not None:
        parse_languages(args.model_languages)  # a value that is no language code stops before any reading
    check_target(Path(args.out), corpus=args.corpus)  # before any work: never a user's folder, never the corpus
    prior = None if args.fusion_config else fusion_prior(args.model)  # an untuned index: the model family's prior
    spec = IndexSpec.from_args(args, _settings(args, prior))
    sample = sample_texts(d.indexed_text() for d in iter_corpus(args.corpus))
    legs, languages = _language_plan(args, spec.legs, sample)
    spec = dataclasses.replace(spec, legs=legs)
    rerank = _reranker(args)
    options = spec.build_kwargs(analysis=spec.analysis_for(sample), backend=_milvus_target(args, Path(args.out).name))
    if rerank:
        from .rerank import index_settings

        rerank = index_settings(*rerank)
    if "dense" in legs or options["backend"] is not None:  # Milvus publishes from the documents in memory
        fused = prior is not None and len(legs) > 1
        manifest = _build_in_memory(args, spec, options, {"rerank": rerank, "languages": languages,
                                                          "default_fusion": prior.to_dict() if fused else None})
    else:
        print(f"reading {args.corpus} as the BM25 leg indexes it", file=sys.stderr)
        manifest = HybridRetriever.build_into(args.out, iter_corpus(args.corpus), rerank=rerank, languages=languages,
                                              **options)
    took = time.perf_counter() - t0
    parts = ", ".join(f"{k.removesuffix('_seconds')} {v:.1f}s" for k, v in manifest["build"].items()
                      if k.endswith("_seconds"))
    cut = manifest["build"].get("truncated_documents")
    fusion = f", fusion {prior.describe()}" if manifest.get("default_fusion") else ""
    print(f"indexed {manifest['documents']} documents ({', '.join(manifest['legs'])}) in {took:.1f}s"
          f" ({parts}){fusion} -> {args.out}", file=sys.stderr)
    if cut:
        print(f"note: {cut} documents are longer than the model's {manifest['dense']['max_seq_length']} "
              f"tokens and were cut for the dense leg", file=sys.stderr)
    return 0


def _build_in_memory(args: argparse.Namespace, spec: IndexSpec, options: dict, info: dict) -> dict:
    """The corpus read whole, the legs built from it (`options`: spec.build_kwargs; the encoder made by
    spec.make_encoder, routed as --devices / --ray ask), the index saved with the manifest entries in `info`
    (rerank, languages, default_fusion; None ones left out); returns its manifest."""
    from .corpus import read_corpus
    from .retriever import HybridRetriever

    spread = distributed_cli.Spread(args, args.out)  # a device that cannot be honoured stops the build first
    docs = read_corpus(args.corpus)
    print(f"read {len(docs)} documents from {args.corpus}", file=sys.stderr)
    t = time.perf_counter()
    encoder = spread.spec(spec).make_encoder()  # the one door, as update, bench and tune (None: no dense leg)
    loaded = time.perf_counter() - t
    retriever = HybridRetriever.build(docs, **{**options, "encoder": encoder})
    if encoder is not None:
        retriever.info["build"]["model_load_seconds"] = loaded  # the leg was given the encoder loaded
    retriever.info.update({k: v for k, v in info.items() if v})
    manifest = retriever.save(args.out)
    spread.finish()
    if "dense" in retriever.leg and retriever.leg["dense"].encoder is not None:
        print(f"encoder: {retriever.leg['dense'].encoder.describe()}", file=sys.stderr)
    return manifest


def _settings(args: argparse.Namespace, prior):
    """Fusion and chunk settings of `build`: from --fusion-config (else the model family's prior), then --chunk
    flags on top."""
    from dataclasses import replace

    from .settings import Settings, read_settings

    settings = read_settings(args.fusion_config) if args.fusion_config else Settings(fusion=prior.fusion)
    if args.chunk is not None:
        chunking = replace(settings.chunking, documents=args.chunk in ("documents", "both"),
                           queries=args.chunk in ("queries", "both"))
        settings = replace(settings, chunking=chunking)
    if args.chunk_agg:
        settings = replace(settings, chunking=replace(settings.chunking, doc_agg=args.chunk_agg))
    return settings


def cmd_query(args: argparse.Namespace) -> int:
    """One query (printed or as JSON), or an interactive prompt when no text is given."""
    from .filters import check_syntax
    from .languages import default_mode, not_default_note
    from .retriever import HybridRetriever, check_k, check_query, read_settings

    check_k(args.k)
    if args.text is not None:
        check_query(args.text)
    check_syntax(args.filter, args.as_of)  # before the index and its model load
    settings = read_settings(args.fusion_config) if args.fusion_config else None
    retriever = HybridRetriever.load(args.index, model=args.model, device=args.device, mmap=args.mmap,
                                     dense_backend=args.dense_backend,
                                     fusion_config=settings.fusion if settings else None,
                                     chunking=settings.chunking if settings else None,
                                     bm25=settings.bm25 if settings else None, verify=args.verify)
    if args.mode is None:
        args.mode = default_mode(retriever.info)
    elif note := not_default_note(retriever.info, args.mode):
        print(note, file=sys.stderr)
    try:
        legs = retriever.legs_for(args.mode)
    except ValueError as e:
        raise ValueError(f"{args.index}: {e}") from None
    if "dense" in legs and retriever.leg["dense"].encoder is not None:
        dense = retriever.leg["dense"]
        print(f"encoder: {dense.encoder.describe()}; dense search: {dense.store.backend}", file=sys.stderr)
    args.reranker = _reranker(args, retriever.info.get("rerank"))
    args.allowed = live_cli.allowed(retriever, args)
    if args.text is not None:
        _answer(retriever, args.text, args)
        return 0
    _interactive(retriever, args)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmark and write its report folder; prints the score table."""
    from .evaluation.bench import BenchConfig, run_bench
    from .evaluation.report import write_report
    from .retriever import read_settings
    from .spec import IndexSpec

    spread = distributed_cli.Spread(args, args.out)  # --ray's shards: OUT.shards beside the report folder
    cfg = BenchConfig(data=_bench_data(args), spec=spread.spec(IndexSpec.from_args(args)),
                      tuned=read_settings(args.fusion_config) if args.fusion_config else None,
                      tuned_protocol=_tuned_protocol(args.fusion_config), parity=args.parity,
                      rerank=_rerank_config(args), rerank_depth=args.rerank_depth,
                      model_languages=args.model_languages, milvus=_milvus_target(args, "bench"),
                      server_fusion=args.fusion == "server")
    report, results, mteb_json = run_bench(cfg)
    spread.finish()
    report["command"] = " ".join(["python -m retrieval", *sys.argv[1:]])
    write_report(Path(args.out), report, results, mteb_json, trec_runs=args.trec_runs)
    print(f"{report['task']}: {report['queries']} queries, {report['documents']} documents, model {report['model']}")
    if report.get("finetuned", {}).get("queries_trained_on_left_out"):
        ft = report["finetuned"]
        print(f"left out {ft['queries_trained_on_left_out']} queries the model trained on ({ft['finetune']})")
    width = max(8, *map(len, report["runs"]))
    print(f"{'run':<{width}} {'nDCG@10':>8} {'MAP@10':>8} {'R@10':>8} {'P@10':>8} {'MRR@10':>8} {'seconds':>8}")
    for run, s in report["runs"].items():
        print(f"{run:<{width}} {s['ndcg_at_10']:>8.5f} {s['map_at_10']:>8.5f} {s['recall_at_10']:>8.5f} "
              f"{s['precision_at_10']:>8.5f} {s['mrr_at_10']:>8.5f} {s['seconds']:>8.2f}")
    for name, c in report["comparison"].items():
        print(f"{name}: {c['mean']:+.5f} (95% CI {c['ci95'][0]:+.5f} .. {c['ci95'][1]:+.5f}, p = {c['p_value']:.3f})")
    if "parity" in report:
        par = report["parity"]
        print("parity with MTEB: " + ", ".join(f"{k} {v['abs_diff']:.1e}" for k, v in par.items() if isinstance(v, dict))
              + (" (all within tolerance)" if par["all_ok"] else " (NOT within tolerance)"))
    print(f"total {report['phases']['total_seconds']:.1f}s; report: {Path(args.out) / 'report.md'}")
    return 0 if report.get("parity", {}).get("all_ok", True) else 1


def cmd_tune(args: argparse.Namespace) -> int:
    """Cross-validated choice of fusion and chunking settings; writes tune.json, tune.md, fusion.json."""
    from .evaluation.report import tune_markdown
    from .evaluation.tune import prompt_presets, run_tune
    from .settings import write_settings

    if args.folds < 2:
        raise ValueError(f"--folds must be >= 2, got {args.folds}")
    spread = distributed_cli.Spread(args, args.out)
    data = _bench_data(args)
    if args.folds > len(data.queries):
        raise ValueError(f"--folds {args.folds} is more than the {len(data.queries)} queries")
    cfg = _tune_config(args, data, chunking=not args.no_chunking, depth=args.depth,
                       prompts=prompt_presets(args.prompts.split(",")) if args.prompts else None)
    report, chosen, provenance = run_tune(dataclasses.replace(cfg, spec=spread.spec(cfg.spec)))
    spread.finish()
    report["command"] = " ".join(["python -m retrieval", *sys.argv[1:]])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tune.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    write_settings(out / "fusion.json", chosen, **provenance)
    (out / "tune.md").write_text(tune_markdown(report), encoding="utf-8")
    oof = report["out_of_fold"]["ndcg_at_10"]
    print(f"{report['task']}: out-of-fold nDCG@10 {oof:.4f} ({args.folds}-fold CV over {report['queries']} queries)")
    if "track_split" in report:
        print(f"track split (tune Q1-Q10, test Q11-Q50): {report['track_split']['ndcg_at_10']:.4f}")
    print("untuned: " + ", ".join(f"{k} {v:.4f}" for k, v in report["baselines_all_queries"].items()))
    print("each leg tuned alone, out-of-fold: "
          + ", ".join(f"{k} {v:.4f}" for k, v in report["single_legs_out_of_fold"].items()))
    print(f"chosen on all queries: {report['chosen']['label']} -> {out / 'fusion.json'}")
    return 0


def _tune_config(args: argparse.Namespace, data, **grid):
    """The tune grid's data, encoder, folds and BM25 options from the command line (tune and finetune)."""
    from .evaluation.tune import TuneConfig
    from .spec import IndexSpec

    return TuneConfig(data=data, spec=IndexSpec.from_args(args), folds=args.folds, seed=args.seed, **grid)


# --- finetune (docs/finetune.md) ---------------------------------------------------------------------------

def _finetune_parser(sub) -> None:
    """Options of the `finetune` command."""
    from .finetune.options import LOSSES, TrainConfig

    d = TrainConfig()
    f = command(sub, "finetune", "fine-tune the dense encoder on judged queries, scored out of fold", """
retrieval finetune --aila-dir "$AILA2019_DIR" --folds 5 --out models/minilm-aila
retrieval finetune --corpus "$AILA2019_DIR"/Object_statutes --out models/minilm-headings   # no labels
retrieval build "$AILA2019_DIR"/Object_statutes --model models/minilm-aila --out index/aila-ft""")
    f.add_argument("--out", required=True, help="new folder for the fine-tuned sentence-transformers model")
    _data_args(f)
    _analysis_args(f)
    f.add_argument("--folds", type=int, default=0, help="k-fold out-of-fold scoring first (0: only train the model)")
    f.add_argument("--seed", type=int, default=0, help="fold assignment (as tune's) and training seed")
    f.add_argument("--train-queries", metavar="FILE", help="training query ids, one a line, or a BEIR qrels split "
                                                           "(default: every judged query)")
    f.add_argument("--max-queries", type=int, help="only the first N training queries")
    f.add_argument("--corpus-pairs", action="store_true",
                   help="also train on label-free pairs (title -> text, heading -> body)")
    f.add_argument("--corpus", metavar="PATH", help="train on this corpus alone (any format build reads): label-free "
                                                    "pairs only, no queries, no --folds")
    f.add_argument("--epochs", type=float, default=d.epochs, help="passes over the training pairs")
    f.add_argument("--learning-rate", type=float, default=d.learning_rate, help="AdamW's peak learning rate")
    f.add_argument("--train-batch-size", type=int, default=d.batch_size, help="pairs per training batch")
    f.add_argument("--loss", choices=LOSSES, default=d.loss, help="mnrl, or cached (large batches in little memory)")
    f.add_argument("--hard-negatives", type=int, default=d.hard_negatives, help="mined per pair (0: in-batch only)")
    f.add_argument("--validation", type=float, default=d.validation,
                   help="share of the training queries held out for early stopping (0: none)")
    f.add_argument("--lora", action="store_true", help="train LoRA adapters (peft), merged into the saved model")
    f.add_argument("--resume", action="store_true", help="go on from the work folder an interrupted run left")
    _encoder_args(f)
    _dense_backend_arg(f)
    f.set_defaults(func=cmd_finetune)


def cmd_finetune(args: argparse.Namespace) -> int:
    """Cross-validated fine-tune of the dense leg, then the final model; writes --out with finetune.json."""
    from .finetune import FinetuneConfig, run_finetune
    from .finetune.pairs import read_query_ids

    if args.folds == 1 or args.folds < 0:
        raise ValueError(f"--folds must be 0 or >= 2, got {args.folds}")
    if args.corpus:
        return _finetune_corpus_only(args)
    data = _bench_data(args)
    qids = read_query_ids(args.train_queries, data) if args.train_queries else [q for q in data.queries
                                                                                  if data.qrels.get(q)]
    if args.max_queries is not None:
        if args.max_queries < 1:
            raise ValueError(f"--max-queries must be >= 1, got {args.max_queries}")
        qids = qids[:args.max_queries]
    if args.folds > len(qids):
        raise ValueError(f"--folds {args.folds} is more than the {len(qids)} training queries")
    cfg = FinetuneConfig(_tune_config(args, data), _train_config(args), tuple(qids) if args.train_queries
                         or args.max_queries else None, corpus_pairs=args.corpus_pairs, resume=args.resume)
    report = run_finetune(cfg, args.out)
    oof = report.get("out_of_fold")
    if oof:
        print(f"{report['task']}: out-of-fold nDCG@10 ({args.folds} folds): " + ", ".join(
            f"{k} {v:.4f}" for k, v in oof.items() if isinstance(v, float)))
    print(f"model -> {args.out} ({report['seconds']['total']:.0f}s)")
    return 0


def _train_config(args: argparse.Namespace):
    """The training run's hyperparameters from the command line."""
    from .finetune import TrainConfig

    return TrainConfig(epochs=args.epochs, learning_rate=args.learning_rate, batch_size=args.train_batch_size,
                       loss=args.loss, hard_negatives=args.hard_negatives, validation=args.validation,
                       lora=args.lora, seed=args.seed)


def _finetune_corpus_only(args: argparse.Namespace) -> int:
    """`finetune --corpus PATH`: label-free pairs of a corpus alone; no query is trained on, so `bench` may score
    the model on every query."""
    from .finetune import FinetuneConfig, run_finetune
    from .finetune.pairs import corpus_only

    if args.folds or args.train_queries or args.max_queries is not None or args.aila_dir or args.dataset:
        raise ValueError("--corpus trains on the corpus alone: it takes no --folds, --train-queries, "
                         "--max-queries, --aila-dir or --dataset")
    data = corpus_only(args.corpus)
    report = run_finetune(FinetuneConfig(_tune_config(args, data), _train_config(args), corpus_pairs=True,
                                         resume=args.resume), args.out)
    print(f"model -> {args.out}: {report['final']['pairs']} label-free pairs of {len(data.corpus)} documents, "
          f"no queries ({report['seconds']['total']:.0f}s)")
    return 0

# --- end finetune ---------------------------------------------------------------------------------------------


def _tuned_protocol(path: str | None) -> str | None:
    """How a settings file was made, as `tune` records it in the file."""
    if not path:
        return None
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if "tuned_on" not in data:
        return f"from {path}"
    return (f"chosen by `tune` on {data['tuned_on']}; its out-of-fold nDCG@10 there was "
            f"{data.get('out_of_fold_ndcg_at_10', float('nan')):.4f}")


def _bench_data(args: argparse.Namespace):
    from .evaluation.datasets import load_aila, load_aila_from_hub, load_dataset_folder

    if args.dataset:
        return load_dataset_folder(args.dataset)
    aila = args.aila_dir or os.environ.get("AILA2019_DIR")
    return load_aila(aila) if aila else load_aila_from_hub()


def cmd_serve(args: argparse.Namespace) -> int:
    """Load the index folders and serve the web app and API until interrupted."""
    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port must be 1..65535, got {args.port}")
    try:
        from .web import serve
    except ImportError as e:  # a missing extra is the install's input, as Milvus's (README "Exit codes")
        raise ValueError(f"the web app needs the web extra (pip install 'statute-retrieval[web]'): {e}") from None
    from .web.batching import BatchConfig

    if args.timeout_s <= 0 or (args.watch is not None and args.watch <= 0):
        raise ValueError("--timeout-s and --watch must be > 0 seconds")
    batch = BatchConfig(args.batch_wait_ms, args.max_batch, args.max_queue)
    serve(args.index, host=args.host, port=args.port, device=args.device, dense_backend=args.dense_backend,
          rerank=_reranker(args), rerank_off=args.rerank == "none", batch=batch, timeout_s=args.timeout_s,
          watch_s=args.watch)
    return 0


def _answer(retriever, text: str, args: argparse.Namespace) -> None:
    from .hits import today
    from .retriever import results_json

    t = time.perf_counter()
    hits = retriever.search(text, k=args.k, mode=args.mode, rerank=args.reranker, allowed=args.allowed,
                            fuse_in=args.fusion)
    rerank, depth = args.reranker or (None, 0)
    took = time.perf_counter() - t
    warnings = getattr(args.allowed, "warnings", ())
    if args.json:
        out = results_json(text, args.mode, retriever.legs, hits, took, as_of=args.as_of, warnings=warnings)
        if rerank is not None:
            out["rerank"] = {"model": rerank.model_name, "depth": depth}
        print(json.dumps(out, ensure_ascii=False))
        return
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    legs_used = retriever.legs_for(args.mode)
    day = args.as_of or today()
    for h in hits:
        legs = "  ".join(f"{leg} #{p.rank} {p.score:.4g}" if (p := h.leg(leg)) else f"{leg} -" for leg in legs_used)
        print(f"{h.rank:>3}. {printable(h.id):<10} {printable(shorten(h.title, 70))}")
        if h.statute:
            print(f"     {printable(statute_line(h, day))}")
        fused = f"fused {(h.first_stage.score if h.first_stage else h.score):.4g}   " if len(legs_used) > 1 else ""
        print(f"     {fused}{legs}")
        if h.first_stage:
            shown = "- (below the rerank depth)" if h.rerank_score is None else f"{h.rerank_score:.6g}"
            print(f"     rerank {shown}   first stage #{h.first_stage.rank}")
        if h.matched_terms:
            print(f"     matched: {', '.join(h.matched_terms[:15])}")
    mode = args.mode
    if mode == "hybrid" and len(retriever.legs) == 1:
        mode = f"hybrid = {retriever.legs[0]} only, the index's one leg"
    if rerank is not None:
        mode += f", top {depth} reranked by {rerank.model_name}"
    print(f"({len(hits)} hits, {mode}, {took * 1000:.0f} ms)")


def statute_line(hit, day: str) -> str:
    """A hit's act, section, jurisdiction and dates in force, and 'not in force since D' when not on `day`."""
    s = hit.statute
    where = " ".join(filter(None, (s.get("act"), f"s. {s['section']}" if s.get("section") else None)))
    parts = [", ".join(filter(None, (where, s.get("jurisdiction"))))]
    parts.append(" ".join(f"{word} {s[name]}" for word, name in (("from", "valid_from"), ("until", "valid_to"))
                          if s.get(name)))
    parts.append(hit.force_note(day) or ("in force" if hit.in_force(day) else ""))
    return " · ".join(p for p in parts if p)


def _history_file() -> Path:
    """Where the interactive prompt keeps its history (case facts typed there): the user's cache folder."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "retrieval" / "query_history"


def _interactive(retriever, args: argparse.Namespace) -> None:
    """A prompt with line editing and history (readline, the last HISTORY_LINES queries unless --no-history);
    ':mode dense' switches mode, ':q' quits."""
    import readline

    history = None if args.no_history else _history_file()
    readline.set_history_length(HISTORY_LINES)
    try:
        if history is not None:
            history.parent.mkdir(parents=True, exist_ok=True)
            readline.read_history_file(history)
    except OSError:
        pass
    print(f"{args.index}: {len(retriever)} documents, legs {', '.join(retriever.legs)}, mode {args.mode}. "
          f"Type a query; {_repl_help(retriever)}", file=sys.stderr)
    try:
        while True:
            try:
                line = input(f"[{args.mode}]> ").strip()
            except EOFError:
                print()
                break
            if not line:
                continue
            if line in (":q", ":quit", ":exit"):
                break
            try:
                _command_or_query(retriever, line, args)
            except ValueError as e:
                print(f"error: {e}", file=sys.stderr)
    finally:
        try:
            if history is not None:
                readline.write_history_file(history)
                history.chmod(0o600)  # it holds the facts of cases
        except OSError:
            pass


def _repl_help(retriever) -> str:
    """The prompt's commands, with the modes this index has."""
    return (f"':mode {'|'.join(retriever.modes())}', ':k N' (hits, N >= 1); ':mode' or ':k' alone shows the current "
            "value; ':help', ':q' to quit.")


def _command_or_query(retriever, line: str, args: argparse.Namespace) -> None:
    """One line of the interactive prompt: a ':' command, or a query (ValueError with the message when bad)."""
    from .retriever import check_k

    if not line.startswith(":"):
        _answer(retriever, line, args)
        return
    name, _, value = line.partition(" ")
    value = value.strip()
    if name == ":help":
        print(_repl_help(retriever), file=sys.stderr)
    elif name in (":mode", ":k") and not value:
        print(f"{name[1:]} {args.mode if name == ':mode' else args.k}", file=sys.stderr)
    elif name == ":mode":
        retriever.legs_for(value)
        args.mode = value
    elif name == ":k":
        try:
            check_k(int(value))
        except ValueError:
            raise ValueError(f":k needs a whole number >= 1, got {value!r}") from None
        args.k = int(value)
    else:
        raise ValueError(f"unknown command {line!r}; {_repl_help(retriever)}")

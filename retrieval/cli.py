"""Command line: build, query (one-shot or interactive), perf. Parsing and printing only.

Exit codes: 0 success, 1 a damaged or mismatched index or a runtime failure, 2 bad input
(corpus, arguments, settings files), each with a one-line message on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .corpus import CorpusError
from .store import IndexFileError


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
    except IndexFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="retrieval", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="build an index folder from a corpus")
    b.add_argument("corpus", help="AILA release folder, folder of S*.txt, .jsonl or .csv (id, title, text)")
    b.add_argument("--out", required=True, help="index folder to write (replaced atomically if it exists)")
    b.add_argument("--legs", default="dense,bm25", help="legs to build: dense,bm25 (default), dense or bm25")
    b.add_argument("--language", choices=("auto", "en", "zh"), default="auto", help="BM25 analysis language")
    b.add_argument("--bm25-backend", choices=("bm25s", "rank-bm25"), default="bm25s")
    b.add_argument("--dense-index", choices=("auto", "flat", "hnsw", "ivf"), default="auto",
                   help="exact (flat), HNSW or IVF; auto (default): flat for small corpora, HNSW for large")
    b.add_argument("--fusion-config", help="JSON fusion settings (as written by `tune`) stored as the index default")
    _encoder_args(b)
    b.set_defaults(func=cmd_build)

    q = sub.add_parser("query", help="query an index; with no text, an interactive prompt")
    q.add_argument("index", help="index folder")
    q.add_argument("text", nargs="?", help="query text (omit for the interactive prompt)")
    q.add_argument("--mode", choices=("hybrid", "dense", "bm25"), default="hybrid")
    q.add_argument("-k", type=int, default=10, help="number of hits (default 10)")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.add_argument("--fusion-config", help="JSON fusion settings overriding the index's")
    q.add_argument("--model", help="query-time model; must be the index's model")
    q.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    q.add_argument("--mmap", action=argparse.BooleanOptionalAction,
                   help="memory-map index arrays instead of reading them (default: for indexes of 256 MiB or more)")
    q.add_argument("--verify", action=argparse.BooleanOptionalAction,
                   help="check every file's sha256 on load (default: unless memory-mapped; sizes are always checked)")
    q.set_defaults(func=cmd_query)

    f = sub.add_parser("perf", help="measure build, query, load and memory costs against corpus size")
    f.add_argument("--sizes", help="comma-separated corpus sizes (default 1000,10000,100000,1000000)")
    f.add_argument("--repeats", type=int, help="runs per figure, the median reported (default 3)")
    f.add_argument("--queries", type=int, help="queries per latency run (default 200)")
    f.add_argument("--out-dir", default="docs", help="folder for performance.md, performance.json and plots")
    f.add_argument("--aila-dir", default=os.environ.get("AILA2019_DIR"),
                   help="AILA 2019 release folder for the end-to-end MiniLM figures (default: $AILA2019_DIR)")
    f.add_argument("--quick", action="store_true", help="tiny sizes and one repeat (a smoke test)")
    f.set_defaults(func=cmd_perf)
    return p


def _encoder_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="sentence-transformers folder or Hub id (default: bundled all-MiniLM-L6-v2)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                   help="auto: bf16 on a CUDA device that supports it, fp32 on CPU")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--query-prompt", help="text put directly before each query (default: the model's own)")
    p.add_argument("--max-seq-length", type=int, help="tokens read per text (default: the model's)")


def _encoder_config(args: argparse.Namespace):
    from .encoders import EncoderConfig

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    return EncoderConfig(model=args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                         query_prompt=args.query_prompt, max_seq_length=args.max_seq_length)


def cmd_build(args: argparse.Namespace) -> int:
    """Read and validate the corpus, build the legs, write the index atomically."""
    from .corpus import read_corpus
    from .retriever import FusionConfig, HybridRetriever

    t0 = time.perf_counter()
    docs = read_corpus(args.corpus)
    legs = [leg.strip() for leg in args.legs.split(",") if leg.strip()]
    fusion = FusionConfig.from_file(args.fusion_config) if args.fusion_config else FusionConfig()
    encoder = _encoder_config(args) if "dense" in legs else None
    print(f"read {len(docs)} documents from {args.corpus}", file=sys.stderr)
    retriever = HybridRetriever.build(docs, encoder=encoder, legs=legs, language=args.language,
                                      bm25_backend=args.bm25_backend, dense_kind=args.dense_index,
                                      fusion_config=fusion)
    manifest = retriever.save(args.out)
    took = time.perf_counter() - t0
    parts = ", ".join(f"{k.removesuffix('_seconds')} {v:.1f}s" for k, v in manifest["build"].items()
                      if k.endswith("_seconds"))
    cut = manifest["build"].get("truncated_documents")
    print(f"indexed {manifest['documents']} documents ({', '.join(manifest['legs'])}) in {took:.1f}s"
          f" ({parts}) -> {args.out}", file=sys.stderr)
    if cut:
        print(f"note: {cut} documents are longer than the model's {manifest['dense']['max_seq_length']} "
              f"tokens and were cut for the dense leg", file=sys.stderr)
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """One query (printed or as JSON), or an interactive prompt when no text is given."""
    from .retriever import FusionConfig, HybridRetriever

    if args.k < 1:
        raise ValueError(f"-k must be >= 1, got {args.k}")
    fusion = FusionConfig.from_file(args.fusion_config) if args.fusion_config else None
    retriever = HybridRetriever.load(args.index, model=args.model, device=args.device, mmap=args.mmap,
                                     verify=args.verify, fusion_config=fusion)
    if args.mode != "hybrid" and args.mode not in retriever.legs:
        raise ValueError(f"{args.index} has no {args.mode} leg (it has: {', '.join(retriever.legs)})")
    if args.text is not None:
        _answer(retriever, args.text, args)
        return 0
    _interactive(retriever, args)
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    """Run the speed and scale benchmark; write performance.md, performance.json and plots."""
    from .perf import PerfConfig, run_perf

    base = PerfConfig.quick_config() if args.quick else PerfConfig()
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else base.sizes
    config = PerfConfig(sizes=sizes, repeats=args.repeats or base.repeats, queries=args.queries or base.queries,
                        aila_dir=Path(args.aila_dir) if args.aila_dir else None, quick=args.quick)
    written = run_perf(config, Path(args.out_dir))
    print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0


def _answer(retriever, text: str, args: argparse.Namespace) -> None:
    if not text.strip():
        raise ValueError("empty query")
    t = time.perf_counter()
    hits = retriever.search(text, k=args.k, mode=args.mode)
    took = time.perf_counter() - t
    if args.json:
        print(json.dumps({"query": text, "mode": args.mode, "hits": [h.to_dict() for h in hits],
                          "seconds": round(took, 6)}, ensure_ascii=False))
        return
    for h in hits:
        legs = "  ".join(f"{leg} #{p.rank} {p.score:.4g}" if p else f"{leg} -"
                         for leg, p in (("dense", h.dense), ("bm25", h.bm25)) if leg in retriever.legs)
        print(f"{h.rank:>3}. {h.id:<10} {h.title[:70]}")
        print(f"     fused {h.score:.4g}   {legs}")
        if h.matched_terms:
            print(f"     matched: {', '.join(h.matched_terms[:15])}")
    print(f"({len(hits)} hits, {args.mode}, {took * 1000:.0f} ms)")


def _interactive(retriever, args: argparse.Namespace) -> None:
    """A prompt with line editing and history (readline); ':mode dense' switches mode, ':q' quits."""
    import readline

    history = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "retrieval" / "query_history"
    try:
        history.parent.mkdir(parents=True, exist_ok=True)
        readline.read_history_file(history)
    except OSError:
        pass
    print(f"{args.index}: {len(retriever)} documents, legs {', '.join(retriever.legs)}. "
          "Type a query; ':mode hybrid|dense|bm25', ':k N', ':q' to quit.", file=sys.stderr)
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
                if line.startswith(":mode "):
                    mode = line.split(maxsplit=1)[1]
                    retriever._legs_for(mode)
                    args.mode = mode
                elif line.startswith(":k "):
                    args.k = max(1, int(line.split(maxsplit=1)[1]))
                else:
                    _answer(retriever, line, args)
            except ValueError as e:
                print(f"error: {e}", file=sys.stderr)
    finally:
        try:
            readline.write_history_file(history)
        except OSError:
            pass

"""performance.md and its log-log plots from the benchmark's result dict (see performance.json)."""

from __future__ import annotations

import json
from pathlib import Path

from . import passages
from .measure import WARMUP

FULL_SIZE = 1_000_000
SHARED_CPU_SHARE = 0.05  # other processes above this share of CPU time: the report warns that timings are noisy
TARGETS = (  # goals for the full run on 2 cores, worded so that only a full run's rows name the million
    "hybrid query, AILA index, MiniLM loaded: p50 < 30 ms",
    "BM25 query at a million passages: p50 < 50 ms",
    "HNSW at a million 384-d vectors: recall@10 >= 0.95 with p50 < 5 ms",
    "index load at a million passages with mmap: < 2 s",
)
PLOTS = {
    "build": "Build time vs corpus size",
    "query": "Query latency (p50) vs corpus size",
    "load": "Index load and check time vs corpus size",
    "memory": "Memory and disk vs corpus size",
}


def write(result: dict, out_dir: Path) -> list[Path]:
    """Write performance.md and the PNG plots into `out_dir`; returns their paths."""
    pngs = [_plot(kind, result, out_dir / f"performance-{kind}.png") for kind in PLOTS]
    md = out_dir / "performance.md"
    md.write_text(markdown(result), encoding="utf-8")
    chunked = out_dir / "performance-passages.json"
    if chunked.is_file():  # the chunked passage benchmark's figures (perf passages) stay in the report
        passages.embed(md, json.loads(chunked.read_text(encoding="utf-8")))
    return [md, *pngs]


def markdown(result: dict) -> str:
    """The whole report as Markdown."""
    sections = [_header(result), _machine(result), _method(result), _targets(result), _bm25(result),
                _bm25_build(result),
                _dense(result), _sweeps(result), _fusion(result), _index(result), _scale(result),
                _process(result), _aila(result), _rules(result), _plots(), _reproduce(result)]
    return "\n\n".join(s for s in sections if s).rstrip() + "\n"


# ---- sections ------------------------------------------------------------------------------

def _header(r: dict) -> str:
    sizes = [s["n"] for s in r["sizes"]]
    lines = ["# Performance: how each cost grows with the corpus", ""]
    if max(sizes) < FULL_SIZE or r["config"]["quick"]:
        lines += [f"> **Preliminary run.** Sizes {', '.join(_n(n) for n in sizes)} only, "
                  f"{r['config']['repeats']} run(s) per figure. The full run (default sizes, see *Reproduce*) "
                  "replaces this file; do not quote these figures.", ""]
    share = r["machine"].get("other_processes_cpu_share")
    if share is not None and share > SHARED_CPU_SHARE:
        lines += [f"> **Shared CPU.** Other processes used {share:.0%} of the machine's CPU time while this ran, "
                  "so timings are higher and noisier than on a quiet machine.", ""]
    lines.append(f"Measured {r['started']} in {r['wall_seconds'] / 60:.1f} min. Every figure is also in "
                 "[performance.json](performance.json).")
    return "\n".join(lines)


def _machine(r: dict) -> str:
    m, v = r["machine"], r["versions"]
    libs = ", ".join(f"{k} {v[k]}" for k in ("python", "numpy", "faiss-cpu", "faiss-gpu-cu12", "bm25s", "rank-bm25",
                                              "torch", "sentence-transformers", "transformers", "matplotlib")
                     if k in v)
    rows = [("CPU", m["cpu"]), ("cores", f"{m['logical_cores']} logical, {m['usable_cores']} usable by this process"),
            ("memory", f"{m['memory_gib']} GiB"), ("OS", m["os"]),
            ("load average (1, 5, 15 min)", f"start {_load(m['load_average'])}; end {_load(m['load_average_end'])}"),
            ("CPU used by other processes during the run", _share(m.get("other_processes_cpu_share"))),
            ("threads", f"torch {m['torch_threads']}, faiss (OpenMP) {m['faiss_threads']}"), ("libraries", libs)]
    return "## Machine\n\n" + _table(["", ""], [list(row) for row in rows])


def _method(r: dict) -> str:
    c = r["config"]
    words = r["sizes"][-1]["words_mean"]
    return f"""## Method

- **Corpus (synthetic text)**: statute-like passages generated deterministically (seed {c['seed']}) from a
  fixed vocabulary of 50,000 words (common English and legal words first, then made-up words), drawn with
  Zipf-Mandelbrot frequencies; 50 to 300 words a passage (mean {words:.0f}); ids in shuffled order.
  Smaller corpora are prefixes of larger ones.
- **Queries (BM25 and synthetic figures)**: {c['queries']} keyword queries of 8 to 24 words from the same
  vocabulary and frequencies.
- **Vectors (all FAISS figures and the synthetic hybrid figures)**: *not model embeddings*. {c['dim']}-d unit
  vectors around 1,000 topic centres plus noise with a decaying variance spectrum, queries drawn the same way.
  Recall and the efSearch / nprobe that reach {r['rules']['recall_target']} depend on this distribution; on real
  embeddings check them again.
- **Model figures**: only the *End to end on AILA 2019* section runs a model (the bundled all-MiniLM-L6-v2).
- **Statistics**: latencies are per single query, one query at a time, after {WARMUP} warm-up queries: p50 and p95
  over the queries of one pass, then the median over passes. Build, save and load times are the median over
  runs; a build, save or load that took over {c['build_budget_s']:.0f} s is run once. Each table says how many
  runs it took (`runs`).
- **Memory**: *peak RSS growth* is the process's peak resident memory during the build minus its resident
  memory before (Linux VmHWM, reset before each run); *held* is the resident memory still held after it
  (roughly the index in memory). Both are lower bounds where the build reuses memory that earlier steps
  freed (Python keeps freed small-object memory for reuse; rank-bm25 after bm25s shows it). *On disk* is
  the size of the saved files; *Memory of the whole run* gives the process's overall peak.
- **Loads** read files that were just written (warm page cache); a cold cache adds disk read time."""


def _targets(r: dict) -> str:
    last = r["sizes"][-1]
    at = f"n = {_n(last['n'])}"
    full = last["n"] >= FULL_SIZE
    hybrid = r.get("aila", {}).get("search", {}).get("hybrid")
    hnsw, bm25, load = last["dense"]["kinds"]["hnsw"], last["bm25s"]["query"], last["index"]["load"]["mmap"]
    rows = [
        [TARGETS[0], f"{_ms(hybrid['p50_ms'])} ms" if hybrid else "not run", "AILA 2019",
         _verdict(hybrid is not None and hybrid["p50_ms"] < 30, hybrid is not None)],
        [TARGETS[1], f"{_ms(bm25['p50_ms'])} ms", at, _verdict(bm25["p50_ms"] < 50, full)],
        [TARGETS[2], f"recall {hnsw['recall_at_10']:.3f} at efSearch {hnsw['ef_search']}, p50 {_ms(hnsw['p50_ms'])} ms",
         at, _verdict(hnsw["recall_at_10"] >= 0.95 and hnsw["p50_ms"] < 5, full)],
        [TARGETS[3], f"{_s(load['seconds'])} s", at, _verdict(load["seconds"] < 2, full)],
    ]
    return ("## Targets\n\nOn the largest size measured here; a target set at a larger size is only met or missed "
            "by a run at that size.\n\n" + _table(["target", "measured", "where", "verdict"], rows))


def _bm25(r: dict) -> str:
    rows = []
    for s in r["sizes"]:
        for key, name in (("bm25s", "bm25s"), ("rank_bm25", "rank-bm25")):
            e = s[key]
            if e.get("skipped"):
                rows.append([_n(s["n"]), name, f"skipped: estimated {e['estimated_seconds'] / 60:.0f} min "
                             f"(scaled from n = {_n(e['from_n'])}), over the budget", "", "", "", "", ""])
                continue
            b, q = e["build"], e["query"]
            disk = _mb(s["index"]["parts_mb"].get("lexical")) if key == "bm25s" else "–"
            rows.append([_n(s["n"]), name, _s(b["seconds"]), f"{_mb(b['peak_rss_mb'])} / {_mb(b['held_rss_mb'])}",
                         disk, _ms(q["p50_ms"]), _ms(q["p95_ms"]), f"{b['runs']} / {q['runs']}"])
    return ("## BM25\n\nBuild = analysis (tokenise, stopwords, stem) + indexing, through `HybridRetriever.build(legs="
            "[\"bm25\"])`. Query = analysis + scores of every passage + the leg's top-k ranking "
            f"(depth {r['sizes'][-1]['bm25s']['depth']}: the whole corpus, at most 1000), through "
            "`HybridRetriever.leg_rankings`. rank-bm25 is skipped at a size where its build and queries are "
            f"estimated to take over {r['config']['rank_bm25_budget_s'] / 60:.0f} min.\n\n"
            + _table(["passages", "engine", "build s", "memory MB: peak growth / held", "on disk MB", "query p50 ms",
                      "p95 ms", "runs (build / query)"], rows))


def _bm25_build(r: dict) -> str:
    b = r.get("bm25_build")
    if not b or not b["sizes"]:
        return ""
    rows = []
    for s in b["sizes"]:
        ours, raw, q = s["project"], s["raw_bm25s"], s["query"]
        rows.append([_n(s["n"]), f"{_s(ours['seconds'])} / {_s(raw['seconds'])}",
                     f"{ours['seconds'] / raw['seconds']:.2f}",
                     f"{_mb(ours['peak_rss_mb'])} ({_mb(ours['tree_peak_rss_mb'])}) / {_mb(raw['peak_rss_mb'])}",
                     f"{ours['peak_rss_mb'] / raw['peak_rss_mb']:.2f}",
                     f"{_ms(q['project_leg_rankings']['p50_ms'])} / {_ms(q['project_top_positive']['p50_ms'])} / "
                     f"{_ms(q['raw_bm25s_retrieve']['p50_ms'])}", f"{s['max_score_diff']:.1e}",
                     f"{ours['runs']} / {raw['runs']}"])
    last = b["sizes"][-1]
    goal = ""
    if last["n"] >= FULL_SIZE:
        ok = last["project"]["seconds"] <= 60 and last["project"]["peak_rss_mb"] <= 2.5 * 1024
        goal = (f"\n\nGoal at a million passages: build <= 60 s and <= 2.5 GB peak: "
                f"{'met' if ok else 'missed'} ({_s(last['project']['seconds'])} s, "
                f"{_mb(last['project']['peak_rss_mb'])} MB).")
    share = b.get("other_processes_cpu_share")
    shared = f"; other processes used {share:.0%} of the CPU meanwhile" if share is not None else ""
    if share is not None and share > SHARED_CPU_SHARE:
        shared += " (a shared CPU: the times are longer, and noisier, than on a quiet machine)"
    return ("## BM25 build beside raw bm25s (whole processes)\n\n"
            "Each build is a process of its own, from start to exit, on the same synthetic JSONL corpus: the "
            "project's `python -m retrieval build corpus.jsonl --legs bm25 --language en` (streaming analysis in "
            f"{b['workers']} worker processes, the document table, the manifest and its checksums included) and "
            "raw bm25s as MTEB's BM25 baseline tokenizes (`bm25s.tokenize` with English stopwords and the "
            "Snowball stemmer, `BM25(method=\"lucene\").index`, `save`). Time: wall clock; memory: the peak RSS "
            "(VmHWM) of the largest process, in brackets the peak of the sum over the process and its workers, "
            "both polled every 50 ms. The best of up to "
            f"{r['config']['repeats']} runs each (one where a run takes over "
            f"{r['config']['build_budget_s']:.0f} s). Query p50 on the saved indexes, depth min(1000, n): the "
            "project's `leg_rankings` / analysis + scores + `RowOrder.top(positive=True)` (positive scores only, "
            "partial sort) / bm25s `retrieve`. Score difference: the largest |difference| between the two "
            f"indexes' scores over the {r['config']['queries']} queries. Measured {b['started']}, load average "
            f"{_load(b['load_average'])} at the start{shared}.\n\n"
            + _table(["passages", "build s: project / raw", "time ratio", "peak MB: project (with workers) / raw",
                      "memory ratio", "query p50 ms: leg_rankings / top_positive / raw", "score diff",
                      "runs"], rows) + goal)


def _dense(r: dict) -> str:
    rows = [[_n(s["n"]), _kind(kind, s["dense"]["default_kind"]), _params(kind, e), _s(e["build"]["seconds"]),
             _mb(e["build"]["peak_rss_mb"]), _mb(e["file_mb"]), f"{e['recall_at_10']:.3f}",
             _recall(e.get("recall_at_depth")), _ms(e["p50_ms"]), _ms(e["p95_ms"]),
             f"{e['build']['runs']} / {e['runs']}"]
            for s in r["sizes"] for kind, e in s["dense"]["kinds"].items()]
    threads = "; ".join(f"{_ms(a['p50_ms'])} / {_ms(a['p95_ms'])} ms at n = {_n(s['n'])}"
                        for s in r["sizes"] for a in [s["dense"]["kinds"]["flat"]["all_threads"]])
    return ("## Dense: FAISS exact vs HNSW vs IVF (synthetic vectors)\n\nSingle-query search for the top 10. "
            "HNSW and IVF at the smallest efSearch / nprobe of the sweep that reaches recall@10 >= "
            f"{r['rules']['recall_target']} against exact search (the largest tried when none does). "
            "*recall@depth*: the same for the leg's full list (top 1000) that fusion reads, at the default "
            "efSearch / nprobe (see *Defaults*), as the retriever searches. "
            "Marked with * : the kind `--dense-index auto` picks at that size.\n\n"
            + _table(["passages", "index", "parameters", "build s", "peak RSS growth MB", "on disk MB", "recall@10",
                      "recall@depth", "p50 ms", "p95 ms", "runs (build / query)"], rows)
            + "\n\nExact search with FAISS's default of every OpenMP thread on the one query (`FaissStore.search` "
            f"uses one thread for a single query): p50 / p95 {threads}.")


def _sweeps(r: dict) -> str:
    last = r["sizes"][-1]
    parts = [f"### Search breadth vs recall at n = {_n(last['n'])}"]
    for kind, param in (("hnsw", "ef_search"), ("ivf", "nprobe")):
        e = last["dense"]["kinds"][kind]
        rows = [[str(p[param]), f"{p['recall_at_10']:.3f}", _ms(p["p50_ms"]), _ms(p["p95_ms"])] for p in e["sweep"]]
        parts.append(f"{kind.upper()} ({_params(kind, e, swept=False)}):\n\n"
                     + _table([param, "recall@10", "p50 ms", "p95 ms"], rows))
    return "\n\n".join(parts)


def _fusion(r: dict) -> str:
    f = r["fusion"]
    return (f"## Fusion\n\nRRF (`fusion.rrf`) over {f['lists']} lists of {f['length']} documents sharing "
            f"{f['overlap']}: p50 {_ms(f['p50_ms'])} ms, p95 {_ms(f['p95_ms'])} ms per query "
            f"({f['calls']} calls, {f['runs']} runs). It does not depend on the corpus size.")


def _index(r: dict) -> str:
    rows = []
    for s in r["sizes"]:
        x = s["index"]
        parts, load = x["parts_mb"], x["load"]
        rows.append([_n(s["n"]), x["dense_kind"], f"{_mb(x['files_mb'])} ({_mb(parts.get('documents'))} / "
                     f"{_mb(parts.get('dense'))} / {_mb(parts.get('lexical'))})", _s(x["save"]["seconds"]),
                     _s(x["sha256_check"]["seconds"]), _s(x["size_check"]["seconds"]),
                     *(_s(load[label]["seconds"]) for label in ("read", "mmap", "read+sha256", "default")),
                     f"{_ms(load['read']['first_query_ms'])} / {_ms(load['mmap']['first_query_ms'])}"])
    return ("## Index folder: save, check, load\n\nA BM25 + dense index (the dense leg from the synthetic vectors, "
            "kind as `auto` picks) through `HybridRetriever.save` / `HybridRetriever.load`. *sha256 check*: "
            "hashing every file as the manifest lists it; *size check*: reading the manifest and comparing file "
            "sizes (always done). Loads: *read* reads the arrays, *mmap* maps them, both with the size check "
            "only; *read + sha256* adds the hash check; *default* is what `load()` does with no arguments "
            "(see *Defaults*). *first query*: the first hybrid search right after a load, in ms.\n\n"
            + _table(["passages", "dense", "on disk MB (documents / dense / lexical)", "save s", "sha256 check s",
                      "size check s", "load read s", "load mmap s", "load read + sha256 s", "load default s",
                      "first query ms (read / mmap)"], rows))


def _scale(r: dict) -> str:
    rows = [[_n(s["n"]), s["index"]["dense_kind"],
             *(f"{_ms(q[m]['p50_ms'])} / {_ms(q[m]['p95_ms'])}" for m in ("hybrid", "dense", "bm25"))]
            for s in r["sizes"] for q in [s["index"]["query"]]]
    return ("## Search latency at scale, without a model (synthetic)\n\n`HybridRetriever.search(query, k=10, "
            "query_vector=...)` on the loaded index (default load), the query vector given, so no encoder "
            "runs: per-leg rankings (depth: the whole corpus, at most 1000), RRF, and the 10 hits with titles "
            "and matched words. Add the encoder's time (see the AILA section) for a model-backed query.\n\n"
            + _table(["passages", "dense", "hybrid p50 / p95 ms", "dense p50 / p95 ms", "bm25 p50 / p95 ms"], rows))


def _process(r: dict) -> str:
    peaks = "; ".join(f"{_mb(s['process_peak_rss_mb'])} MB after n = {_n(s['n'])}" for s in r["sizes"]
                      if s.get("process_peak_rss_mb"))
    return ("## Memory of the whole run\n\nPeak resident memory of the benchmark process (corpus, vectors, every "
            f"index and load held at once), up to and including each size: {peaks}.") if peaks else ""


def _aila(r: dict) -> str:
    a = r.get("aila", {})
    if "skipped" in a:
        return f"## End to end on AILA 2019 with MiniLM\n\nSkipped: {a['skipped']}."
    rows = [[mode, _ms(e["p50_ms"]), _ms(e["p95_ms"]), _ms(e["mean_ms"])] for mode, e in a["search"].items()]
    enc = a["encode"]
    subset = " (quick run: a subset)" if r["config"]["quick"] else ""
    return (f"## End to end on AILA 2019 with MiniLM\n\nIndex of {a['statutes']} statutes{subset} "
            f"(dense `{a['dense_kind']}` + BM25) built with {a['model']} ({a['device']}, {a['dtype']}), saved and "
            f"loaded with the model. Queries: the {a['distinct_queries']} AILA queries (text after the first `||`, "
            f"{a['query_words_mean']:.0f} words on average, cut to the model's {a['max_seq_length']} tokens), "
            f"cycled to {a['queries']}. `HybridRetriever.search(query, k=10, mode)`, model loaded:\n\n"
            + _table(["mode", "p50 ms", "p95 ms", "mean ms"], rows)
            + f"\n\nEncoding one query alone (`encode_queries`, measured before the searches): p50 "
            f"{_ms(enc['p50_ms'])} ms, p95 {_ms(enc['p95_ms'])} ms. Build {_s(a['build_seconds'])} s, load "
            f"{_s(a['load_seconds'])} s (model included).")


def _rules(r: dict) -> str:
    rules, last = r["rules"], r["sizes"][-1]
    flat, hnsw = last["dense"]["kinds"]["flat"], last["dense"]["kinds"]["hnsw"]
    at_default = next(p for p in hnsw["sweep"] if p["ef_search"] == rules["hnsw"]["ef_search"])
    load = last["index"]["load"]
    exact_mib = rules["exact_max_bytes"] / (1 << 20)
    return f"""## Defaults that follow from these figures

At n = {_n(last['n'])} here: exact search {_ms(flat['p50_ms'])} ms a query (one thread; every thread:
{_ms(flat['all_threads']['p50_ms'])} ms), HNSW at the default efSearch {_ms(at_default['p50_ms'])} ms with recall@10
{at_default['recall_at_10']:.3f}; loading the {_mb(last['index']['files_mb'])} MB index takes
{_s(load['read']['seconds'])} s read, {_s(load['read+sha256']['seconds'])} s read with sha256 checks,
{_s(load['mmap']['seconds'])} s mapped.

- **Dense index kind** (`dense.default_kind`, used by `build --dense-index auto`, the default): exact
  (`flat`) while the vectors take at most {exact_mib:.0f} MiB ({_n(rules['exact_max_bytes'] // (384 * 4))} of 384
  dimensions), HNSW above. Exact search reads every vector for every query, so its latency grows with
  the vectors' bytes; HNSW's grows slowly but costs a long build, more memory and approximate results.
  Override with `--dense-index flat|hnsw|ivf`.
- **HNSW parameters**: M {rules['hnsw']['m']}, efConstruction {rules['hnsw']['ef_construction']}, efSearch
  {rules['hnsw']['ef_search']}: a margin over the efSearch that the sweep needed for recall@10 >=
  {rules['recall_target']} on these synthetic vectors (real embeddings may need more). IVF (opt-in): nlist
  {rules['ivf']['nlist']}, nprobe {rules['ivf']['nprobe']}.
- **mmap and checks on load** (`store.prefers_mmap`, used by `load()` and `query` unless `--mmap` /
  `--no-mmap`): an index whose files total {rules['mmap_min_bytes'] >> 20} MiB or more is memory-mapped, a
  smaller one is read. A read index has every file's sha256 checked; a mapped one only its sizes, since
  hashing reads every byte, which mapping exists to avoid (`--verify` forces the sha256 check).
- **FAISS threads**: `FaissStore.search` gives a single query one OpenMP thread; FAISS's exact search
  otherwise splits one query across all threads, which stalls whenever another process wants the CPU."""


def _plots() -> str:
    return "## Plots\n\n" + "\n\n".join(f"![{title}](performance-{kind}.png)" for kind, title in PLOTS.items())


def _reproduce(r: dict) -> str:
    c = r["config"]
    sizes = ",".join(str(s["n"]) for s in r["sizes"])
    quick = " --quick" if c["quick"] else ""
    return ("## Reproduce\n\nThis run:\n\n```bash\nHF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false "
            "AILA2019_DIR=/path/to/aila2019 \\\n"
            f"  python -m retrieval perf --sizes {sizes} --repeats {c['repeats']} --queries {c['queries']}{quick} "
            "--out-dir docs\n```\n\nThe full run is the same with the default sizes (no `--sizes`). "
            "`scripts/perf.py` takes the same arguments. The synthetic data are the same on every machine "
            "(fixed seed); the timings are this machine's.")


# ---- plots ---------------------------------------------------------------------------------

def _series(kind: str, r: dict) -> dict[str, list[tuple[int, float]]]:
    """Named (n, value) series for one plot."""
    series: dict[str, list[tuple[int, float]]] = {}

    def add(name: str, n: int, value: float | None) -> None:
        if value is not None and value > 0:
            series.setdefault(name, []).append((n, value))

    for s in r["sizes"]:
        n, d, x = s["n"], s["dense"]["kinds"], s["index"]
        engines = [(name, s[key]) for name, key in (("bm25s", "bm25s"), ("rank-bm25", "rank_bm25"))
                   if not s[key].get("skipped")]
        if kind == "build":
            for name, e in engines:
                add(f"BM25 {name}", n, e["build"]["seconds"])
            for k, e in d.items():
                add(f"FAISS {k}", n, e["build"]["seconds"])
            add("index save", n, x["save"]["seconds"])
        elif kind == "query":
            for name, e in engines:
                add(f"BM25 {name} leg", n, e["query"]["p50_ms"])
            for k, e in d.items():
                add(f"FAISS {k} (top 10{'' if k == 'flat' else ', recall@10 >= 0.95'})", n, e["p50_ms"])
            add("hybrid search, no model", n, x["query"]["hybrid"]["p50_ms"])
        elif kind == "load":
            for label, e in x["load"].items():
                add(f"load {label}", n, e["seconds"])
            add("sha256 check", n, x["sha256_check"]["seconds"])
        else:
            add("BM25 bm25s build peak RSS growth", n, s["bm25s"]["build"]["peak_rss_mb"])
            for k, e in d.items():
                add(f"FAISS {k} build peak RSS growth", n, e["build"]["peak_rss_mb"])
            add("index on disk", n, x["files_mb"])
    return series


def _plot(kind: str, r: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, points in _series(kind, r).items():
        ns, values = zip(*points)
        ax.plot(ns, values, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("passages")
    ax.set_ylabel({"build": "seconds", "query": "ms per query (p50)", "load": "seconds", "memory": "MB"}[kind])
    ax.set_title(PLOTS[kind])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---- formatting ----------------------------------------------------------------------------

TEXT_COLUMNS = {"", "target", "measured", "where", "verdict", "engine", "index", "parameters", "dense", "mode"}


def _table(columns: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; text columns left-aligned, figures right-aligned."""
    align = ["---" if c in TEXT_COLUMNS else "---:" for c in columns]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in [columns, align, *rows])


def _n(n: int) -> str:
    return f"{n:,}"


def _ms(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


_s = _ms


def _mb(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.2g}" if x < 10 else f"{x:.0f}"


def _recall(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _share(x: float | None) -> str:
    return "not recorded by this run" if x is None else f"{x:.1%} of all cores' time"


def _load(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def _kind(kind: str, default: str) -> str:
    return f"{kind} *" if kind == default else kind


def _params(kind: str, e: dict, swept: bool = True) -> str:
    if kind == "hnsw":
        return f"M {e['m']}, efC {e['ef_construction']}" + (f", efSearch {e['ef_search']}" if swept else "")
    if kind == "ivf":
        return f"nlist {e['nlist']}" + (f", nprobe {e['nprobe']}" if swept else "")
    return "exact"


def _verdict(ok: bool | None, measured_at_target: bool) -> str:
    if not measured_at_target:
        return "not measured at the target size"
    return "met" if ok else "missed"

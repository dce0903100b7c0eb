"""Compare BM25 analysis variants on STARD: all 1,235 training queries over the full corpus.

    PYTHONPATH=. python scripts/stard_analysis.py --stard DIR [--json out.json] [--markdown out.md]

Each variant is scored with pytrec_eval (the library MTEB uses): nDCG@10, Recall@100, and
MRR@10 (recip_rank of runs cut to 10). Picking the best variant on the same queries is
tuning on test, so the best variant is also scored by 5-fold cross-validation over queries
(chosen by nDCG@10 on four folds, scored on the fifth, fixed seed): that is the number to quote.
Segmentation is the slow part, so each segmentation is done once and its variants
(stopwords, title mode, k1/b) are derived from it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from retrieval.corpus import Document
from retrieval.evaluation.datasets import RetrievalData, load_dataset_folder
from retrieval.lexical.analysis import Analyzer, AnalyzerSettings
from retrieval.lexical.engines import build_lexical

DEPTH = 100
STOPWORDS = (None, "bm25s", "legal")
TITLES = (("join", 1.0), ("none", 1.0), ("field", 0.3), ("field", 1.0))
K1_B = ((0.9, 0.4), (1.2, 0.75), (1.5, 0.9))
MODES = ("char", "ngram", "accurate", "search")


@dataclass(frozen=True)
class Variant:
    """One BM25 configuration: analysis settings plus BM25's k1 and b."""

    settings: AnalyzerSettings
    k1: float = 1.5
    b: float = 0.75

    def label(self) -> str:
        """A short readable name for tables."""
        s = self.settings
        title = f"field×{s.title_weight:g}" if s.title == "field" else s.title
        parts = [s.zh_mode, f"stop={s.stopwords or 'none'}", f"title={title}",
                 f"art={'on' if s.article_numbers else 'off'}"]
        if s.uses_jieba:
            parts.append(f"laws={'on' if s.law_names else 'off'}")
        return " ".join(parts) + f" k1={self.k1:g} b={self.b:g}"


# The Chinese analysis before this comparison: jieba accurate mode, bm25s's stopwords, title joined.
BEFORE = Variant(AnalyzerSettings(language="zh", zh_mode="accurate", stopwords="bm25s", title="join"))


def documents(data: RetrievalData) -> list[Document]:
    """The corpus as Documents, in file order."""
    return [Document(doc_id, d["title"], d["text"]) for doc_id, d in data.corpus.items()]


def per_query_metrics(run: dict[str, dict[str, float]], qrels: dict) -> dict[str, np.ndarray]:
    """nDCG@10, Recall@100 and MRR@10 per query (query order of `run`), by pytrec_eval."""
    import pytrec_eval

    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10", "recall_100"}).evaluate(run)
    # trec_eval's order: score descending, ties by document id descending
    top10 = {q: dict(sorted(d.items(), key=lambda x: (x[1], x[0]), reverse=True)[:10]) for q, d in run.items()}
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    return {"ndcg_at_10": np.array([full[q]["ndcg_cut_10"] for q in run]),
            "recall_at_100": np.array([full[q]["recall_100"] for q in run]),
            "mrr_at_10": np.array([mrr[q]["recip_rank"] for q in run])}


class Segmented:
    """One segmentation of the corpus titles, texts and queries, before stopwords."""

    def __init__(self, settings: AnalyzerSettings, docs: Sequence[Document], queries: Sequence[str]):
        t = time.perf_counter()
        analyzer = Analyzer.for_documents(replace(settings, stopwords=None), docs)
        self.texts = [analyzer.segment(d.text) for d in docs]
        self.titles = [analyzer.segment(d.title) for d in docs]
        self.queries = [analyzer.segment(q) for q in queries]
        self.seconds = time.perf_counter() - t

    def tokens(self, settings: AnalyzerSettings) -> tuple[list[list[str]], list[list[str]] | None, list[list[str]]]:
        """(document tokens, title tokens or None, query tokens) under the variant's stopwords and title mode.

        "join" concatenates title and text tokens: the same as analysing Document.indexed_text(),
        which joins them with a space, when no text repeats its title (true of STARD).
        """
        keep = Analyzer(settings).keeps

        def toks(pairs_list):
            return [[t for w, t in pairs if keep(w)] for pairs in pairs_list]

        texts, titles = toks(self.texts), toks(self.titles)
        if settings.title == "join":
            texts = [a + b for a, b in zip(titles, texts)]
        return texts, (titles if settings.title == "field" else None), toks(self.queries)


def evaluate(variant: Variant, seg: Segmented, data: RetrievalData) -> dict:
    """Index the corpus under `variant`, run every query, and score the run."""
    t = time.perf_counter()
    texts, titles, queries = seg.tokens(variant.settings)
    index = build_lexical(texts, k1=variant.k1, b=variant.b, title_tokens=titles,
                          title_weight=variant.settings.title_weight)
    ids = list(data.corpus)
    run = {}
    for qid, q in zip(data.queries, queries):
        scores = index.scores(q)
        top = np.argpartition(-scores, DEPTH)[:DEPTH]
        run[qid] = {ids[i]: float(scores[i]) for i in top}
    metrics = per_query_metrics(run, data.qrels)
    return {"variant": variant, "per_query": metrics, "seconds": time.perf_counter() - t,
            **{k: float(v.mean()) for k, v in metrics.items()}}


def grid(mode: str) -> Iterator[Variant]:
    """The main grid for one segmentation mode: stopword lists x title modes (article numbers on)."""
    for stop in STOPWORDS:
        for title, weight in TITLES:
            yield Variant(AnalyzerSettings.for_language("zh", zh_mode=mode, stopwords=stop, title=title,
                                                        title_weight=weight, article_numbers=True))


def ablations(best: Variant) -> Iterator[Variant]:
    """Around a mode's best variant: other k1/b, article numbers off, law names on (jieba)."""
    s = best.settings
    for k1, b in K1_B:
        yield replace(best, k1=k1, b=b)
    yield replace(best, settings=replace(s, article_numbers=False))
    if s.uses_jieba:
        yield replace(best, settings=replace(s, law_names=True))


def seg_key(variant: Variant) -> tuple[bool, bool]:
    """What decides a variant's segmentation within a mode: article numbers, law names."""
    return variant.settings.article_numbers, variant.settings.law_names


def cross_validate(results: Sequence[dict], folds: int = 5, seed: int = 0) -> dict:
    """Choose the variant with the best nDCG@10 on k-1 folds of queries, score it on the held-out fold."""
    n = len(results[0]["per_query"]["ndcg_at_10"])
    fold_of = np.random.default_rng(seed).permutation(n) % folds
    held: dict[str, np.ndarray] = {m: np.zeros(n) for m in results[0]["per_query"]}
    chosen = []
    for k in range(folds):
        train, test = fold_of != k, fold_of == k
        best = max(results, key=lambda r: r["per_query"]["ndcg_at_10"][train].mean())
        chosen.append({"fold": k, "variant": best["variant"].label(),
                       "train_ndcg_at_10": float(best["per_query"]["ndcg_at_10"][train].mean()),
                       "test_ndcg_at_10": float(best["per_query"]["ndcg_at_10"][test].mean())})
        for m in held:
            held[m][test] = best["per_query"][m][test]
    return {"folds": folds, "seed": seed, "chosen": chosen, **{m: float(v.mean()) for m, v in held.items()}}


def markdown(results: Sequence[dict], cv: dict, seg_seconds: dict[str, float]) -> str:
    """The comparison table, best first, and the cross-validation summary."""
    rows = ["| # | variant | nDCG@10 | Recall@100 | MRR@10 |", "| --- | --- | --- | --- | --- |"]
    for i, r in enumerate(sorted(results, key=lambda r: -r["ndcg_at_10"]), start=1):
        label = r["variant"].label() + (" (the analysis before)" if r["variant"] == BEFORE else "")
        rows.append(f"| {i} | {label} | {r['ndcg_at_10']:.4f} | {r['recall_at_100']:.4f} "
                    f"| {r['mrr_at_10']:.4f} |")
    rows += ["", f"5-fold cross-validation over queries (seed {cv['seed']}): nDCG@10 {cv['ndcg_at_10']:.4f}, "
             f"Recall@100 {cv['recall_at_100']:.4f}, MRR@10 {cv['mrr_at_10']:.4f}", "",
             "| fold | chosen on the other folds | nDCG@10 there | nDCG@10 held out |", "| --- | --- | --- | --- |"]
    rows += [f"| {c['fold']} | {c['variant']} | {c['train_ndcg_at_10']:.4f} | {c['test_ndcg_at_10']:.4f} |"
             for c in cv["chosen"]]
    rows += ["", "Segmentation time (corpus texts + titles + queries, one process): "
             + ", ".join(f"{k} {v:.0f}s" for k, v in seg_seconds.items())]
    return "\n".join(rows) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stard", required=True, type=Path, help="STARD folder: corpus.jsonl, queries.jsonl, qrels.tsv")
    p.add_argument("--modes", default=",".join(MODES), help=f"segmentation modes to compare (default {','.join(MODES)})")
    p.add_argument("--json", type=Path, help="write every variant's scores here")
    p.add_argument("--markdown", type=Path, help="write the tables here")
    args = p.parse_args()
    data = load_dataset_folder(args.stard)
    data = replace(data, queries={q: text for q, text in data.queries.items() if data.qrels.get(q)})
    docs = documents(data)
    print(f"{len(docs)} documents, {len(data.queries)} queries", file=sys.stderr)
    results, seg_seconds = [], {}
    for mode in args.modes.split(","):
        segs = {}

        def run(variant: Variant) -> dict:
            s, key = variant.settings, seg_key(variant)
            if key not in segs:
                segs.clear()
                segs[key] = Segmented(s, docs, list(data.queries.values()))
                seg_seconds[f"{mode}{' art' if s.article_numbers else ''}{' laws' if s.law_names else ''}"] = \
                    segs[key].seconds
            r = evaluate(variant, segs[key], data)
            print(f"{r['ndcg_at_10']:.4f} {r['recall_at_100']:.4f} {r['mrr_at_10']:.4f}  {variant.label()}"
                  f"  ({r['seconds']:.0f}s)", file=sys.stderr, flush=True)
            return r

        mode_results = [run(v) for v in grid(mode)]
        best = max(mode_results, key=lambda r: r["ndcg_at_10"])["variant"]
        extra = [*ablations(best), *([BEFORE] if mode == BEFORE.settings.zh_mode else [])]
        extra.sort(key=lambda v: (seg_key(v) != seg_key(best), seg_key(v)))  # segment each way once
        mode_results += [run(v) for v in extra]
        results += mode_results
    cv = cross_validate(results)
    table = markdown(results, cv, seg_seconds)
    print(table)
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps({
            "queries": len(data.queries), "documents": len(docs), "cross_validation": cv,
            "segmentation_seconds": seg_seconds,
            "variants": [{"label": r["variant"].label(), "analysis": r["variant"].settings.to_dict(),
                          "k1": r["variant"].k1, "b": r["variant"].b,
                          **{m: r[m] for m in ("ndcg_at_10", "recall_at_100", "mrr_at_10", "seconds")}}
                         for r in results]}, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

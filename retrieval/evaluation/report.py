"""Benchmark outputs: report.json, report.md, ndcg10.png, MTEB result JSONs, TREC run files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

CUTOFFS = (1, 3, 5, 10, 20)
METRICS = (("ndcg", "nDCG"), ("map", "MAP"), ("recall", "Recall"), ("precision", "Precision"), ("mrr", "MRR"))
# Figures reported elsewhere, shown beside ours and labelled as such; never measured here.
EXTERNAL = {
    "AILAStatutes": [
        ("user's run: Qwen3-Embedding-0.6B dense, MTEB 1.38.33, RTX 5090, batch 8",
         {"ndcg_at_10": 0.74483, "ndcg_at_1": 0.82, "recall_at_10": 0.807, "mrr_at_10": 0.895}),
        ("Qwen's MTEB submission, Qwen3-Embedding-0.6B", {"ndcg_at_10": 0.790}),
        ("MTEB leaderboard, BM25 (bm25s)", {"ndcg_at_10": 0.216}),
    ],
}


def write_report(out: Path, report: dict[str, Any], results: dict, mteb_json: dict, *,
                 trec_runs: bool = False) -> list[Path]:
    """Write every output into `out`; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [_write_json(out / "report.json", report)]
    for run, data in mteb_json.items():
        written.append(_write_json(out / "mteb" / f"{_file_stem(run)}.json", data))
    (out / "report.md").write_text(markdown(report), encoding="utf-8")
    written.append(out / "report.md")
    written.append(plot_ndcg10(report, out / "ndcg10.png"))
    if trec_runs:
        for run, res in results.items():
            written.append(write_trec(out / "runs" / f"{run}.trec", res, tag=report["run_names"][run]))
    return written


def _file_stem(name: str) -> str:
    """A run name as a file name: letters, digits, '.', '-' and '_' only ('tuned with k=60' -> 'tuned_with_k-60')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("=", "-")).strip("_")


def markdown(report: dict[str, Any]) -> str:
    """The human report: setup, metric table, external figures, differences, parity, timings."""
    enc = report.get("encoder") or {}
    lines = [
        f"# {report['task']}: dense vs BM25 vs hybrid",
        "",
        f"- model: `{report['model']}` (weights sha256 `{(enc.get('weights_sha256') or '')[:16]}`), "
        f"dtype {enc.get('dtype')}, device {report['device']}, batch size {enc.get('batch_size')}",
        f"- query prompt: `{json.dumps(report['query_prompt'])}`; documents: no prompt",
        f"- BM25: {report['bm25']['engine']}, analysis `{json.dumps(report['bm25']['analysis'])}`",
        f"- MTEB {report['mteb_version']}; {report['queries']} queries, {report['documents']} documents",
        f"- protocol: {report['protocol']}",
        f"- texts longer than the model reads (cut): {json.dumps(report.get('truncated', {}))}",
        *_rerank_lines(report.get("rerank")),
        *_finetuned_lines(report.get("finetuned")),
        "",
        "## Scores (MTEB)",
        "",
        "| run | metric | " + " | ".join(f"@{k}" for k in CUTOFFS) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in CUTOFFS) + " |",
    ]
    for run, scores in report["runs"].items():
        for key, label in METRICS:
            cells = " | ".join(f"{scores[f'{key}_at_{k}']:.5f}" for k in CUTOFFS)
            lines.append(f"| {run} | {label} | {cells} |")
    external = EXTERNAL.get(report["task"])
    if external:
        lines += ["", "External figures (not measured by this benchmark; for orientation only):", "",
                  "| source (external) | nDCG@10 | nDCG@1 | Recall@10 | MRR@10 |", "| --- | ---: | ---: | ---: | ---: |"]
        for source, s in external:
            cells = " | ".join(f"{s[k]:.5g}" if k in s else "" for k in ("ndcg_at_10", "ndcg_at_1", "recall_at_10", "mrr_at_10"))
            lines.append(f"| {source} | {cells} |")
    if report["comparison"]:
        lines += ["", "## Differences in nDCG@10 (paired over queries)", "",
                  "| comparison | mean | 95% bootstrap interval | randomisation p |", "| --- | ---: | --- | ---: |"]
        for name, c in report["comparison"].items():
            lines.append(f"| {name.replace('_minus_', ' − ')} | {c['mean']:+.5f} | "
                         f"[{c['ci95'][0]:+.5f}, {c['ci95'][1]:+.5f}] | {c['p_value']:.4f} |")
        lines += ["", "An interval that contains 0 (or p ≥ 0.05) means the difference may be noise."]
    if "tuned" in report["runs"]:
        lines += ["", f"The `tuned` run's settings: {report['runs']['tuned']['protocol']}. Scored here on the same "
                      "queries, it is an in-sample figure; quote the out-of-fold score of `tune`."]
    if report.get("ablation"):
        lines += ["", "## Ablation of the tuned settings (MTEB nDCG@10, same queries)", "",
                  "| variant | nDCG@10 | minus tuned |", "| --- | ---: | ---: |",
                  f"| tuned | {report['runs']['tuned']['ndcg_at_10']:.5f} | |"]
        for name, a in report["ablation"].items():
            lines.append(f"| {name} | {a['ndcg_at_10']:.5f} | {a['ndcg_at_10'] - report['runs']['tuned']['ndcg_at_10']:+.5f} |")
    lines += _checks_against_mteb(report)
    lines += ["", "## Time per phase (seconds)", "", "| phase | seconds |", "| --- | ---: |"]
    lines += [f"| {k.removesuffix('_seconds')} | {v:.2f} |" for k, v in report["phases"].items()]
    lines += [f"| run {run} (mteb.evaluate) | {s['seconds']:.2f} |" for run, s in report["runs"].items()]
    lines += ["", "![nDCG@10 per run](ndcg10.png)", ""]
    return "\n".join(lines)


def _checks_against_mteb(report: dict[str, Any]) -> list[str]:
    """The parity table (our runs vs MTEB's implementations) and stock MTEB's figures beside ours."""
    lines: list[str] = []
    if "parity" in report:
        par = report["parity"]
        lines += ["", f"## Parity with MTEB's own implementations (tolerance {par['tolerance']:g})", "",
                  "| run | ours | MTEB | abs diff | ok | MTEB model |", "| --- | ---: | ---: | ---: | --- | --- |"]
        for run, p in par.items():
            if isinstance(p, dict):
                lines.append(f"| {run} | {p['ours']:.5f} | {p['mteb']:.5f} | {p['abs_diff']:.1e} | "
                             f"{'yes' if p['ok'] else 'NO'} | {p['mteb_model']} |")
    if "stock_mteb" in report:
        stock = report["stock_mteb"]
        lines += ["", "## Stock MTEB (BM25 lists score-0 documents too)", "", stock["rule"] + ".", "",
                  "| run | this project | stock MTEB | difference |", "| --- | ---: | ---: | ---: |"]
        for run, p in stock.items():
            if isinstance(p, dict):
                ours = report["runs"][run]["ndcg_at_10"]
                lines.append(f"| {run} | {ours:.5f} | {p['ndcg_at_10']:.5f} | {ours - p['ndcg_at_10']:+.5f} |")
    return lines


def _rerank_lines(rerank: dict | None) -> list[str]:
    """The setup line of the '+rerank' runs: reranker, weights, kind, instruction, depth, precision, length."""
    if not rerank:
        return []
    weights = (rerank["weights_sha256"] or "")[:16]
    return [f"- reranker (runs `+rerank`): `{rerank['model']}` (weights sha256 `{weights}`), {rerank['kind']}"
            f", instruction `{json.dumps(rerank['instruction'])}`, top {rerank['depth']} reordered, "
            f"dtype {rerank['dtype']}, max length {rerank['max_length']} tokens, score {rerank['score']}"]


def _finetuned_lines(finetuned: dict | None) -> list[str]:
    """The setup lines of a fine-tuned model: its base model (run `base_dense`) and the queries left out."""
    if not finetuned:
        return []
    match = "" if finetuned["base_weights_match"] else " (NOT the weights it was fine-tuned from)"
    lines = [f"- fine-tuned from `{finetuned['base_model']}`{match} (`{finetuned['finetune']}`); run `base_dense`: "
             "the base model's dense leg on the same queries"]
    if finetuned["queries_trained_on_left_out"]:
        lines.append(f"- {finetuned['queries_trained_on_left_out']} queries the model trained on are left out; "
                     f"every figure is over the {finetuned['queries_scored']} it never saw")
    return lines


def plot_ndcg10(report: dict[str, Any], path: Path) -> Path:
    """Bars of mean nDCG@10 per run, with each query's score as a point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    per_query = report["per_query"]
    runs = list(report["runs"])
    fig, ax = plt.subplots(figsize=(1.6 * len(runs) + 2.5, 4.2), dpi=120)
    rng = np.random.default_rng(0)
    for i, run in enumerate(runs):
        mean = report["runs"][run]["ndcg_at_10"]
        ax.bar(i, mean, width=0.6, color="#fdae6b" if run.startswith("hybrid") else "#9ecae1", edgecolor="#333",
               hatch="//" if run.endswith("+rerank") else None)  # a reranked run: its first stage's colour, hatched
        values = np.array(list(per_query[run].values()))
        ax.scatter(i + rng.uniform(-0.2, 0.2, len(values)), values, s=9, color="#333", alpha=0.5, zorder=3)
        ax.text(i + 0.32, mean, f"{mean:.3f}", va="center", fontsize=10, fontweight="bold")
    ax.set_xticks(range(len(runs)), runs)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("nDCG@10 (bar: mean, dots: queries)")
    ax.set_title(f"{report['task']} · {Path(str(report['model'])).name} · {report['queries']} queries", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_trec(path: Path, results: dict[str, dict[str, float]], tag: str) -> Path:
    """A TREC run file (`qid Q0 docid rank score tag`) for trec_eval or ranx."""
    path.parent.mkdir(parents=True, exist_ok=True)
    safe_tag = tag.replace(" ", "_")
    with open(path, "w", encoding="utf-8") as f:
        for qid, docs in results.items():
            ranked = sorted(docs.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
            for rank, (doc, score) in enumerate(ranked, start=1):
                f.write(f"{qid} Q0 {doc} {rank} {score:.6f} {safe_tag}\n")
    return path


def _write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    return path


def tune_markdown(report: dict[str, Any], top: int = 15) -> str:
    """The human tune report: protocol, out-of-fold score, folds, track split, best and baseline settings."""
    oof = report["out_of_fold"]
    lines = [
        f"# Tuning on {report['task']} ({report['queries']} queries, {report['documents']} documents)",
        "",
        f"- model: `{report['model']}`; texts longer than the model reads: {json.dumps(report.get('truncated', {}))}",
        f"- BM25 analysis: `{json.dumps(report.get('bm25_analysis'), ensure_ascii=False)}`",
        f"- protocol: {report['protocol']}",
        "",
        f"**Out-of-fold nDCG@10: {oof['ndcg_at_10']:.4f}** (quote this one; with a plain argmax selection: "
        f"{oof['ndcg_at_10_plain_argmax']:.4f}).",
        "",
        "Each leg tuned alone, out-of-fold: " + ", ".join(
            f"{k} {v:.4f}" for k, v in report.get("single_legs_out_of_fold", {}).items())
        + (f"; the tuned hybrid minus the better one: {oof['minus_best_single_leg']:+.4f}." if "minus_best_single_leg" in oof else "."),
        "",
        "| fold | chosen on the other folds | train nDCG@10 | held-out nDCG@10 | held-out queries |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {f['fold']} | {f['chosen']} | {f['train_ndcg_at_10']:.4f} | {f['test_ndcg_at_10']:.4f} | {f['test_queries']} |"
              for f in oof["folds"]]
    if "track_split" in report:
        t = report["track_split"]
        lines += ["", f"AILA 2019 track protocol (tune on {t['train']}, test on {t['test']}): "
                      f"**{t['ndcg_at_10']:.4f}** with {t['chosen']} (train {t['train_ndcg_at_10']:.4f})."]
    base = report.get("baselines_all_queries", {})
    lines += ["", "Untuned single legs over all queries: " + ", ".join(f"{k} {v:.4f}" for k, v in base.items()) + "."]
    if "prompts" in report:
        p = report["prompts"]
        lines += ["", f"Prompt presets, best mean nDCG@10 each (all queries): "
                      f"{json.dumps(p['best_ndcg_at_10_per_prompt_all_queries'])}; chosen per fold: {p['chosen_per_fold']}."]
    c = report["chosen"]
    lines += ["", f"Settings chosen on all queries (written to fusion.json): {c['label']} "
                  f"(in-sample {c['ndcg_at_10_all_queries_in_sample']:.4f}; its honest estimate is the out-of-fold score).",
              "", f"## Top {top} of {len(report['grid'])} settings (mean nDCG@10 over all queries; every one is in tune.json)", "",
              "| id | setting | nDCG@10 |", "| ---: | --- | ---: |"]
    for g in sorted(report["grid"], key=lambda g: -g["ndcg_at_10"])[:top]:
        lines.append(f"| {g['id']} | {g['label']} | {g['ndcg_at_10']:.4f} |")
    lines += ["", "## Ablation: best setting per fusion method and chunking (all queries, in-sample)", "",
              "| fusion | chunking | best nDCG@10 | setting |", "| --- | --- | ---: | --- |"]
    best: dict[tuple[str, str], dict] = {}
    for g in report["grid"]:
        w = g["fusion"]["weights"]
        method = "bm25 only" if w["dense"] == 0 else "dense only" if w["bm25"] == 0 else g["fusion"]["method"]
        ch = g["chunking"]
        chunk = "none" if not (ch["documents"] or ch["queries"]) else \
            "+".join(x for x, on in (("documents", ch["documents"]), ("queries", ch["queries"])) if on)
        key = (method, chunk)
        if key not in best or g["ndcg_at_10"] > best[key]["ndcg_at_10"]:
            best[key] = g
    for (method, chunk), g in sorted(best.items()):
        lines.append(f"| {method} | {chunk} | {g['ndcg_at_10']:.4f} | {g['label']} |")
    lines += ["", f"Time: {report['seconds']:.0f} s.", ""]
    return "\n".join(lines)

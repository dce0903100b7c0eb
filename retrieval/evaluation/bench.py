"""Dense vs BM25 vs hybrid (equal RRF), default (what an untuned index answers) and tuned, scored by `mteb.evaluate`.

Every run goes through MTEB's own evaluation, so its numbers are MTEB's. The runs share
one SharedLegs, so each text is encoded once. `parity` also runs MTEB's own dense search,
BM25 baseline and HybridSearch on the same model and data and records the differences; with a
reranker, also MTEB's two-stage path: a first stage's saved predictions turned into top-ranked
candidates (convert_to_reranking) and reranked by MTEB's cross-encoder search.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..corpus import Document
from ..defaults import fusion_prior
from ..dense.chunking import ChunkSettings
from ..dense.encoders import Encoder
from ..rerank import DEFAULT_DEPTH, RerankConfig, Reranker, index_settings
from ..retriever import LEGS
from ..settings import Bm25Params, FusionConfig, Settings
from ..spec import IndexSpec
from .datasets import RetrievalData, mteb_task
from .finetuned import Lineage, held_out, read_lineage
from .mteb_reference import QWEN3_MTEB_NAME, mteb_qwen3_model, mteb_reference_models, mteb_reranker
from .scoring import metric_scores, ndcg_at_10
from .search_model import SERVER_FUSION, RetrieverSearch, SharedLegs
from .stats import paired_difference

PARITY_TOLERANCE = 1e-4
RERANKED_RUNS = ("dense", "hybrid", "tuned")  # the first stages a reranker runs over
BASE_RUN = "base_dense"  # a fine-tuned model's base model, dense leg alone (finetune.json names it)


@dataclass
class BenchConfig:
    """What one benchmark run evaluates and how."""

    data: RetrievalData
    spec: IndexSpec = field(default_factory=IndexSpec)  # model, legs, BM25 analysis, dense search, cache
    tuned: Settings | None = None  # settings from `tune` (--fusion-config)
    tuned_protocol: str | None = None  # how those settings were chosen (from the settings file)
    parity: bool = False
    rerank: RerankConfig | None = None  # adds '<run>+rerank' runs for dense, hybrid and tuned
    rerank_depth: int = DEFAULT_DEPTH
    model_languages: str | None = None  # --model-languages: what the model reads, for the 'default' run
    milvus: Any = None  # a milvus.MilvusTarget: the legs search a Milvus collection (dropped at the end)
    server_fusion: bool = False  # with milvus: add a run fused by Milvus (SERVER_FUSION) and compare it


def run_bench(cfg: BenchConfig) -> tuple[dict[str, Any], dict, dict]:
    """Evaluate every run through MTEB: (report, {run: {qid: {doc: score}}}, {run: MTEB result JSON})."""
    import mteb

    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    lineage = read_lineage(cfg.spec.encoder.model) if cfg.spec.dense else None
    dropped = 0
    if lineage:  # a fine-tuned model: never scored on the queries it trained on
        data, dropped = held_out(cfg.data, lineage)
        cfg = replace(cfg, data=data)
        if dropped:
            _say(f"{dropped} queries left out: the model trained on them ({lineage.path}); scoring the other "
                 f"{len(data.queries)}")
    spec, encoder = cfg.spec, None
    if spec.dense:
        _say(f"loading model {spec.encoder.model or 'all-MiniLM-L6-v2 (bundled)'}")
        encoder = spec.make_encoder()
        phases["model_load_seconds"] = time.perf_counter() - t0
        _say(f"encoder: {encoder.describe()}")
    shared = SharedLegs(encoder, spec, milvus=cfg.milvus)
    label = encoder.model_name if encoder else "bm25"
    reranker = _load_reranker(cfg, phases)
    # MTEB's two-stage parity path reads the first stages' predictions from here
    predictions = tempfile.TemporaryDirectory(prefix="bench-predictions-") if cfg.parity and reranker else None
    runs, results, names, mteb_json = {}, {}, {}, {}

    def evaluate(run: str, mode: str, settings: Settings, rerank: tuple[Reranker, int] | None = None,
                 legs: SharedLegs = shared, name: str = label) -> dict:
        model = RetrieverSearch(legs, mode, settings, name, rerank)
        _say(f"run {run}: {model.name}")
        folder = Path(predictions.name) / run if predictions and run in RERANKED_RUNS else None
        t = time.perf_counter()
        task_result = mteb.evaluate(model, mteb_task(cfg.data), cache=None, show_progress_bar=False,
                                    prediction_folder=folder).task_results[0]
        results[run], names[run], mteb_json[run] = model.results, model.name, task_result.to_dict()
        return {**metric_scores(task_result.scores["test"][0]), "seconds": time.perf_counter() - t}

    if lineage:
        runs[BASE_RUN] = _base_run(cfg, lineage, evaluate, phases)
    specs = _run_specs(cfg)
    for run, mode, settings in specs:
        runs[run] = evaluate(run, mode, settings)
        if run == "default":  # what build stores for this model nobody tuned, and why
            runs[run]["default_fusion"] = {**fusion_prior(cfg.spec.encoder.model).to_dict(), "mode": mode}
        if run == "tuned":
            runs[run]["settings"] = settings.to_dict()
            runs[run]["protocol"] = cfg.tuned_protocol or "settings from --fusion-config"
    for run, mode, settings in (spec for spec in specs if reranker and spec[0] in RERANKED_RUNS):
        reranked = evaluate(f"{run}+rerank", mode, settings, (reranker, cfg.rerank_depth))
        runs[f"{run}+rerank"] = {**reranked, "rerank_depth": cfg.rerank_depth, "first_stage": run}
    ablation = {name: {"ndcg_at_10": evaluate(name, mode, settings)["ndcg_at_10"], "settings": settings.to_dict(),
                       "mode": mode} for name, mode, settings in _ablation_specs(cfg)}
    shared.close()
    phases.update(shared.seconds)
    phases["runs_seconds"] = sum(r["seconds"] for r in runs.values())
    report = _report(cfg, encoder, shared, reranker, runs, results, names, ablation)
    if lineage:
        report["finetuned"] = {"finetune": str(lineage.path), "base_model": lineage.base_model,
                               "base_weights_sha256": lineage.base_weights_sha256,
                               "base_weights_match": runs[BASE_RUN]["weights_sha256"] == lineage.base_weights_sha256,
                               "queries_trained_on_left_out": dropped, "queries_scored": len(cfg.data.queries)}
    if cfg.parity:
        t = time.perf_counter()
        report["parity"] = _all_parity(cfg, encoder, reranker, runs, predictions)
        report["stock_mteb"] = _stock_mteb(cfg, encoder, runs)
        phases["parity_seconds"] = time.perf_counter() - t
    phases["total_seconds"] = time.perf_counter() - t0
    report["phases"] = phases
    return report, results, mteb_json


def _base_run(cfg: BenchConfig, lineage: Lineage, evaluate, phases: dict[str, float]) -> dict:
    """The fine-tuned model's base model, dense leg alone, on the same queries (its own legs, closed after)."""
    t = time.perf_counter()
    _say(f"loading the base model {lineage.base_model} (from {lineage.path})")
    base_spec = cfg.spec.with_model(lineage.base_model)
    encoder = base_spec.make_encoder()
    legs = SharedLegs(encoder, base_spec, milvus=cfg.milvus)
    run = {**evaluate(BASE_RUN, "dense", Settings(), legs=legs, name=encoder.model_name),
           "model": lineage.base_model, "weights_sha256": encoder.info()["weights_sha256"]}
    legs.close()
    phases["base_model_seconds"] = time.perf_counter() - t
    return run


def _report(cfg: BenchConfig, encoder: Encoder | None, shared: SharedLegs, reranker: Reranker | None, runs: dict,
            results: dict, names: dict, ablation: dict) -> dict[str, Any]:
    """The report of the runs: setup, scores, per-query nDCG@10, paired comparisons, reranker, ablation."""
    per_query = {run: ndcg_at_10(results[run], cfg.data.qrels) for run in runs}
    report = {
        **_setup(cfg, encoder, shared),
        "run_names": names,
        "runs": runs,
        "per_query": per_query,  # {run: {query_id: nDCG@10}}
        "comparison": _comparisons(per_query),
    }
    if reranker:
        report["rerank"] = index_settings(reranker, cfg.rerank_depth)
    if ablation:
        report["ablation"] = ablation
    if SERVER_FUSION in runs:
        report["server_fusion"] = fusion_agreement(results["hybrid"], results[SERVER_FUSION], per_query["hybrid"],
                                                   per_query[SERVER_FUSION])
    return report


def _setup(cfg: BenchConfig, encoder: Encoder | None, shared: SharedLegs) -> dict[str, Any]:
    """What the report says about the data, model, analysis and protocol."""
    import mteb

    return {
        "mteb_version": mteb.__version__,
        "task": cfg.data.name,
        "language": cfg.data.language,
        "queries": len(cfg.data.queries),
        "documents": len(cfg.data.corpus),
        "protocol": "every query of the test split, scored by mteb.evaluate (no tuning on these queries "
                    "except in a 'tuned' run, whose settings come from --fusion-config)",
        "model": encoder.model_name if encoder else None,
        "query_prompt": encoder.query_prompt if encoder else None,
        "device": encoder.device if encoder else "cpu",
        "encoder": encoder.info() if encoder else None,
        "legs": list(cfg.spec.legs),
        "bm25": {"engine": cfg.spec.bm25_backend, "analysis": shared.analysis()},
        "truncated": dict(shared.truncated),
    }


def _run_specs(cfg: BenchConfig) -> list[tuple[str, str, Settings]]:
    """(run, mode, settings): each leg alone, equal-weight RRF of them all, and the tuned settings (which `tune`
    makes for the dense and BM25 legs)."""
    legs = cfg.spec.legs
    specs = [(leg, leg, Settings()) for leg in legs]
    if len(legs) > 1:
        specs.append(("hybrid", "hybrid", Settings()))
        if set(legs) == set(LEGS):
            specs.append(("default", default_mode(cfg), Settings(fusion=fusion_prior(cfg.spec.encoder.model).fusion)))
        if cfg.milvus is not None and cfg.server_fusion:
            specs.append((SERVER_FUSION, SERVER_FUSION, Settings()))
        if cfg.tuned is not None and set(legs) == set(LEGS):
            specs.append(("tuned", "hybrid", cfg.tuned))
    return specs


def default_mode(cfg: BenchConfig) -> str:
    """The mode `query` without --mode gives on an index `build` made of this data with no options: 'bm25' where the
    model reads none of the corpus's main language, else 'hybrid' (languages.plan, as cli.cmd_build applies it)."""
    from ..languages import identify, model_languages, plan, sample_texts

    texts = sample_texts(Document.from_row(d, v.get("title"), v["text"]).indexed_text()
                         for d, v in cfg.data.corpus.items())
    model = cfg.spec.encoder.model
    chosen = plan(identify(texts), model_languages(model, cfg.model_languages), LEGS, False,
                  model or "all-MiniLM-L6-v2")
    if chosen.note:
        _say(chosen.note)
    return chosen.default_mode


def fusion_agreement(project: dict, server: dict, ndcg_project: dict, ndcg_server: dict) -> dict[str, Any]:
    """How often the project's and Milvus's fused top-10s agree (same order; same set), their mean overlap,
    and the nDCG@10 difference (server minus project)."""
    def top10(run: dict, q: str) -> list[str]:
        return [d for d, _ in sorted(run.get(q, {}).items(), key=lambda x: -x[1])[:10]]

    queries = sorted(project)
    pairs = [(top10(project, q), top10(server, q)) for q in queries]
    n = max(1, len(pairs))
    return {"queries": len(pairs), "same_top10_order": sum(a == b for a, b in pairs) / n,
            "same_top10_set": sum(set(a) == set(b) for a, b in pairs) / n,
            "mean_overlap_at_10": sum(len(set(a) & set(b)) / 10 for a, b in pairs) / n,
            "ndcg_at_10_difference": sum(ndcg_server[q] - ndcg_project[q] for q in queries) / n}


def _ablation_specs(cfg: BenchConfig) -> list[tuple[str, str, Settings]]:
    """The tuned settings with one part switched back to its default at a time, and each tuned leg alone."""
    t = cfg.tuned
    if t is None or set(cfg.spec.legs) != set(LEGS):
        return []
    return [
        ("tuned without chunking or titles", "hybrid", replace(t, chunking=ChunkSettings())),
        ("tuned with equal-weight RRF k=60", "hybrid", replace(t, fusion=FusionConfig())),
        ("tuned with default BM25 (k1 1.5, b 0.75, whole query)", "hybrid", replace(t, bm25=Bm25Params())),
        ("tuned dense leg alone", "dense", t),
        ("tuned BM25 leg alone", "bm25", t),
    ]


def _comparisons(per_query: dict[str, dict[str, float]]) -> dict[str, dict]:
    """Paired differences of nDCG@10 against dense (and BM25) for the fused runs, against a fine-tuned model's
    base dense leg, and of each reranked run against its first stage."""
    out = {}
    if BASE_RUN in per_query:  # a fine-tuned model: its runs against its base model's dense leg
        for run in ("dense", "hybrid", "tuned"):
            if run in per_query:
                out[f"{run}_minus_{BASE_RUN}"] = paired_difference(per_query[run], per_query[BASE_RUN])
    for run in ("hybrid", "tuned"):
        for base in ("dense", "bm25"):
            if run in per_query and base in per_query:
                out[f"{run}_minus_{base}"] = paired_difference(per_query[run], per_query[base])
    if "default" in per_query:  # against the better leg on these queries
        better = max(("dense", "bm25"), key=lambda leg: sum(per_query[leg].values()))
        out[f"default_minus_{better}"] = paired_difference(per_query["default"], per_query[better])
    for run in RERANKED_RUNS:
        if f"{run}+rerank" in per_query:
            out[f"{run}+rerank_minus_{run}"] = paired_difference(per_query[f"{run}+rerank"], per_query[run])
    return out


def _parity(cfg: BenchConfig, encoder: Encoder | None, runs: dict) -> dict[str, Any]:
    """Our dense, BM25 and RRF against MTEB's own implementations on the same model and data (its BM25
    under this project's rule: documents with score 0 left out, see mteb_reference)."""
    name = encoder.model_name if encoder else "bm25"
    models = mteb_reference_models(lambda: encoder.model, name, _mteb_qwen3(encoder))
    theirs = {run: made for run, made in models.items() if run in runs}
    out = {}
    for run, (what, make) in theirs.items():
        _say(f"parity {run}: {what}")
        t = time.perf_counter()
        score = _mteb_ndcg(make(), cfg)
        diff = abs(runs[run]["ndcg_at_10"] - score)
        out[run] = {"ours": runs[run]["ndcg_at_10"], "mteb": score, "abs_diff": diff,
                    "ok": diff <= PARITY_TOLERANCE, "mteb_model": what, "mteb_seconds": time.perf_counter() - t}
    return out


def _all_parity(cfg: BenchConfig, encoder: Encoder | None, reranker: Reranker | None, runs: dict,
                predictions: tempfile.TemporaryDirectory | None) -> dict[str, Any]:
    """Every parity check (first stages, and reranked runs through MTEB's two-stage path), with the tolerance."""
    parity = _parity(cfg, encoder, runs)
    if predictions:
        with predictions:
            parity.update(_rerank_parity(cfg, reranker, runs, Path(predictions.name)))
    return {**parity, "tolerance": PARITY_TOLERANCE, "all_ok": all(v["ok"] for v in parity.values())}


def _load_reranker(cfg: BenchConfig, phases: dict[str, float]) -> Reranker | None:
    """The reranker of the '+rerank' runs (its load time in `phases`), or None without one."""
    if cfg.rerank is None:
        return None
    if cfg.rerank_depth < 1:
        raise ValueError(f"rerank depth must be >= 1, got {cfg.rerank_depth}")
    _say(f"loading reranker {cfg.rerank.model}")
    t = time.perf_counter()
    reranker = Reranker(cfg.rerank)
    phases["rerank_model_load_seconds"] = time.perf_counter() - t
    return reranker


def _rerank_parity(cfg: BenchConfig, reranker: Reranker, runs: dict, predictions: Path) -> dict[str, Any]:
    """Each '+rerank' run against MTEB's two-stage path: the first stage's predictions (saved by MTEB during
    that run) converted to its top `depth` candidates per query, then reranked by MTEB's cross-encoder search."""
    import mteb

    what, make = mteb_reranker(reranker)
    out = {}
    for run in (r for r in runs if r.endswith("+rerank")):
        first = runs[run]["first_stage"]
        _say(f"parity {run}: {what} over the top {cfg.rerank_depth} of MTEB's saved {first} predictions")
        t = time.perf_counter()
        task = mteb_task(cfg.data).convert_to_reranking(predictions / first, top_k=cfg.rerank_depth)
        score = mteb.evaluate(make(), task, cache=None, show_progress_bar=False).task_results[0].scores["test"][0]
        diff = abs(runs[run]["ndcg_at_10"] - score["ndcg_at_10"])
        out[run] = {"ours": runs[run]["ndcg_at_10"], "mteb": score["ndcg_at_10"], "abs_diff": diff,
                    "ok": diff <= PARITY_TOLERANCE, "mteb_model": what, "mteb_seconds": time.perf_counter() - t}
    return out


def _stock_mteb(cfg: BenchConfig, encoder: Encoder | None, runs: dict) -> dict[str, Any]:
    """nDCG@10 of MTEB's BM25 and HybridSearch unchanged: their BM25 lists score-0 documents too."""
    name = encoder.model_name if encoder else "bm25"
    stock = mteb_reference_models(lambda: encoder.model, name, stock=True)
    out: dict[str, Any] = {"rule": "stock MTEB: BM25 lists every document, those sharing no term with the query "
                                   "(score 0) after the matching ones; this project's runs leave them out"}
    for run in ("bm25", "hybrid"):
        if run in runs and set(cfg.spec.legs) <= {"dense", "bm25"}:  # MTEB's references are of these two legs
            _say(f"stock MTEB {run}: {stock[run][0]}")
            out[run] = {"ndcg_at_10": _mteb_ndcg(stock[run][1](), cfg), "mteb_model": stock[run][0]}
    return out


def _mteb_ndcg(model: Any, cfg: BenchConfig) -> float:
    """nDCG@10 of an MTEB search model on the bench's data, by mteb.evaluate."""
    import mteb

    return mteb.evaluate(model, mteb_task(cfg.data), cache=None, show_progress_bar=False
                         ).task_results[0].scores["test"][0]["ndcg_at_10"]
def _mteb_qwen3(encoder: Encoder | None) -> tuple[str, Any] | None:
    """For a local Qwen3-Embedding folder: MTEB's own Qwen3 implementation loaded from it, as the dense reference."""
    if encoder is None or not encoder.is_qwen3 or not Path(encoder.model_path).is_dir():
        return None
    what = f"MTEB's {QWEN3_MTEB_NAME} implementation loaded from {encoder.model_path}"
    return what, lambda: mteb_qwen3_model(encoder.model_path, device=encoder.device, dtype=encoder.dtype,
                                          max_seq_length=encoder.max_seq_length, attn=encoder.config.attn)


def _say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)

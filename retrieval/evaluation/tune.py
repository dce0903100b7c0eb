"""Choose fusion and long-text settings without test leakage: k-fold cross-validation over queries.

Every leg variant is computed once (texts encoded once, BM25 scored once); every setting in
the grid is then scored per query with MTEB's nDCG@10 (pytrec_eval, through evaluation/scoring.py as
bench's per-query scores are). For each fold the
setting with the best mean over the *training* queries is chosen and scored on the held-out
queries only, so no query's labels choose the setting that scores it. The out-of-fold mean
over all queries is the number to quote. Single legs are in the grid, and a fused setting is
chosen over the best of them only when an inner cross-validation on the training queries alone
says choosing fused beats choosing a single leg (choose_row), so fusion is chosen only where it
helps on queries that did not choose it, within the training queries.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..corpus import Document
from ..dense.chunking import ChunkSettings
from ..dense.encoders import QWEN3_INSTRUCTIONS, Encoder, qwen3_prompt
from ..retriever import HybridRetriever
from ..settings import Bm25Params, FusionConfig, Settings
from ..spec import IndexSpec
from .datasets import RetrievalData
from .scoring import ndcg_at_10_scorer

AILA_TRACK_TRAIN = {f"AILA_Q{i}" for i in range(1, 11)}


@dataclass
class TuneConfig:
    """The search space and protocol of `tune`."""

    data: RetrievalData
    spec: IndexSpec = field(default_factory=IndexSpec)  # model, legs, BM25 analysis, dense search, cache
    folds: int = 5
    seed: int = 0
    methods: tuple[str, ...] = ("rrf", "rsf", "dbsf", "convex")
    rrf_ks: tuple[int, ...] = (10, 30, 60)
    dense_weights: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    chunking: bool = True
    windows: tuple[int | None, ...] = (None,)
    overlap: int = 32
    title_weights: tuple[float, ...] = (0.0, 0.5)
    bm25_params: tuple[dict, ...] = ({}, {"k1": 3.0, "b": 1.0})
    bm25_query_windows: tuple[int, ...] = (0, 20, 40)
    prompts: tuple[str, ...] | None = None  # Qwen3 instruction presets to compare; None: the model's prompt only
    selection: str = "smooth"  # "smooth": best after averaging weight neighbours; "best": plain argmax
    depth: int | None = None  # each leg's list length; None: the whole corpus, at most 1000


@dataclass(frozen=True)
class Candidate:
    """One setting of the grid: dense variant (prompt, chunking), BM25 parameters and fusion."""

    prompt: str | None
    chunking: ChunkSettings
    fusion: FusionConfig
    bm25: tuple[tuple[str, float], ...] = ()

    def label(self) -> str:
        """Short human description."""
        w = self.fusion.weights
        if w.get("bm25", 1) == 0:
            fuse = "dense only"
        elif w.get("dense", 1) == 0:
            fuse = "bm25 only"
        else:
            fuse = f"{self.fusion.method}" + (f" k={self.fusion.k}" if self.fusion.method == "rrf" else "")
            fuse += f" w_dense={w['dense']:g} w_bm25={w['bm25']:g}"
        c = self.chunking
        parts = [fuse]
        if w.get("dense", 1) != 0:
            parts.append("no chunking" if not (c.documents or c.queries) else (
                f"chunks[{'docs ' + c.doc_agg if c.documents else ''}{' + ' if c.documents and c.queries else ''}"
                f"{'queries ' + c.query_agg if c.queries else ''}, window {c.window or 'model'}]"))
            if c.title_weight:
                parts.append(f"title weight {c.title_weight:g}")
            if self.prompt is not None:
                parts.append(f"prompt {_preset_name(self.prompt)}")
        if w.get("bm25", 1) != 0:
            parts.append("BM25 " + (" ".join(f"{k}={v:g}" for k, v in self.bm25) or "k1=1.5 b=0.75"))
        return "; ".join(parts)

    def settings(self) -> Settings:
        """As build/query/bench take them."""
        return Settings(self.fusion, self.chunking, Bm25Params.from_dict(dict(self.bm25)), self.prompt)

    def to_dict(self) -> dict:
        """JSON form (as the settings file holds it)."""
        d: dict[str, Any] = self.settings().to_dict()
        return d


@dataclass
class Grid:
    """Every setting's nDCG@10 per query (candidates x queries), with what was built to score them."""

    qids: list[str]
    candidates: list[Candidate]
    matrix: np.ndarray
    smoothed: np.ndarray  # the rows a choice is made on (matrix itself for plain argmax)
    encoder: Encoder | None
    base: HybridRetriever
    analysis: Any
    texts: list[str]
    documents: int

    def choose(self, train: Sequence[str], folds: int = 5, seed: int = 0) -> tuple[int, dict[str, Any]]:
        """The setting chosen on the `train` queries only (choose_row's rule), with why it was chosen."""
        cols = [self.qids.index(q) for q in train]
        return choose_row(self.matrix, self.smoothed, cols, single_leg_rows(self.candidates), folds, seed)


def single_leg_rows(candidates: Sequence[Candidate]) -> list[int]:
    """The grid rows of one leg alone (dense only or BM25 only)."""
    return [i for i, c in enumerate(candidates) if 0 in c.fusion.weights.values()]


def choose_row(matrix: np.ndarray, select: np.ndarray, train: Sequence[int], single: Sequence[int] | None = None,
               folds: int = 5, seed: int = 0) -> tuple[int, dict[str, Any]]:
    """The row with the best mean of `select` over the `train` columns (first in grid order on ties).

    With `single` (the single-leg rows) and a fused best row, an inner cross-validation on the `train`
    columns alone decides between it and the best single leg: both choices (best of every row, best of
    the single-leg rows) are made on each inner fold's other columns and scored by `matrix` on that
    fold; the fused row is taken only when its inner out-of-fold mean is higher. A fused cell that leads
    only by luck of the max over thousands of settings loses there. Returns (row, the rule and margins).
    """
    train = np.asarray(train, dtype=int)
    best = _best_row(select, train)
    if single is None or best in single:
        return best, {"rule": "best training mean"}
    single = np.asarray(single, dtype=int)
    leg = int(single[_best_row(select[single], train)])
    diff = select[best, train] - select[leg, train]
    why: dict[str, Any] = {"best_fused": best, "best_single_leg": leg, "train_margin": float(diff.mean()),
                           "train_margin_se": _se(diff)}
    if len(train) < 2:
        return best, {"rule": "best training mean (too few queries for an inner check)", **why}
    inner = fold_split(len(train), min(folds, len(train)), seed)
    gain = _inner_oof(matrix, select, train, inner, None) - _inner_oof(matrix, select, train, inner, single)
    fused = bool(gain.mean() > 0)
    why = {"rule": "fused: higher inner cross-validated mean than the best single leg" if fused else
           "single leg: the fused choice does not beat it in inner cross-validation",
           **why, "inner_gain": float(gain.mean()), "inner_gain_se": _se(gain)}
    return (best if fused else leg), why


def _best_row(select: np.ndarray, cols: np.ndarray) -> int:
    return int(np.argmax(select[:, cols].mean(axis=1)))  # first best in grid order on ties


def _inner_oof(matrix: np.ndarray, select: np.ndarray, train: np.ndarray, inner: list[np.ndarray],
               rows: np.ndarray | None) -> np.ndarray:
    """Per train column: `matrix` at the row chosen (among `rows`, default all) on the other inner folds."""
    out = np.zeros(len(train))
    rows = np.arange(len(matrix)) if rows is None else rows
    for test in inner:
        if len(test):
            row = rows[_best_row(select[rows], np.delete(train, test))]
            out[test] = matrix[row, train[test]]
    return out


def _se(diff: np.ndarray) -> float:
    """Standard error of a mean of paired differences."""
    return float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("inf")


def score_grid(cfg: TuneConfig) -> Grid:
    """Build every leg variant once (from cfg.spec) and score each setting of the grid per query."""
    data = cfg.data
    qids = list(data.queries)
    texts = [data.queries[q] for q in qids]
    docs = [Document.from_row(d, v.get("title"), v["text"]) for d, v in data.corpus.items()]
    spec = replace(cfg.spec, encode_titles=cfg.spec.dense)
    encoder = spec.make_encoder(memo=True)
    _say(f"{data.name}: {len(qids)} queries, {len(docs)} documents; building legs")
    analysis = spec.analysis_for([d.indexed_text() for d in docs])
    base = HybridRetriever.build(docs, **spec.build_kwargs(encoder=encoder, analysis=analysis))
    depth = min(cfg.depth, len(docs)) if cfg.depth else base.depth()
    bm25 = _bm25_variants(cfg, base, docs, texts, depth) if analysis else {}
    dense_variants = _dense_variants(cfg, base, encoder, docs, texts, depth) if encoder else {}
    _say(f"{len(dense_variants)} dense x {len(bm25)} BM25 variants; scoring the grid")
    candidates, scores = _score_grid(cfg, base, qids, bm25, dense_variants)
    matrix = np.array(scores)  # candidates x queries
    smoothed = smooth_over_weights(candidates, matrix) if cfg.selection == "smooth" else matrix
    return Grid(qids, candidates, matrix, smoothed, encoder, base, analysis, texts, len(docs))


def run_tune(cfg: TuneConfig) -> tuple[dict[str, Any], Settings, dict[str, Any]]:
    """Score the grid per query, cross-validate, and return (report, the settings chosen on all queries, their
    provenance: what they were tuned on, their out-of-fold nDCG@10 and the model), as write_settings takes them."""
    t0 = time.perf_counter()
    data = cfg.data
    grid = score_grid(cfg)
    qids, candidates, matrix, smoothed = grid.qids, grid.candidates, grid.matrix, grid.smoothed
    encoder, base, analysis, texts = grid.encoder, grid.base, grid.analysis, grid.texts
    single = single_leg_rows(candidates)
    oof = cross_validate(matrix, qids, cfg.folds, cfg.seed, select=smoothed, single=single)
    plain = cross_validate(matrix, qids, cfg.folds, cfg.seed, single=single) if cfg.selection == "smooth" else oof
    best_all, why = choose_row(matrix, smoothed, range(len(qids)), single, cfg.folds, cfg.seed)
    report: dict[str, Any] = {
        "task": data.name,
        "model": encoder.model_name if encoder else None,
        "encoder": encoder.info() if encoder else None,
        "bm25_analysis": analysis.to_dict() if analysis else None,
        "queries": len(qids),
        "documents": grid.documents,
        "protocol": _protocol(cfg),
        "selection": cfg.selection,
        "out_of_fold": _out_of_fold(oof, plain, qids, candidates),
        "baselines_all_queries": _baselines(candidates, matrix),
        "chosen": {"id": best_all, "label": candidates[best_all].label(), **candidates[best_all].to_dict(),
                   "ndcg_at_10_all_queries_in_sample": float(matrix[best_all].mean()),
                   "selection": selection_labels(why, candidates)},
        "grid_note": "ndcg_at_10 of a fixed setting is its mean over all queries; no choice is involved, so it is "
                     "the same held-out or not. Only the chosen setting's score needs cross-validation.",
        "grid": [{"id": i, "label": c.label(), **c.to_dict(), "ndcg_at_10": float(matrix[i].mean())}
                 for i, c in enumerate(candidates)],
    }
    report["single_legs_out_of_fold"] = _single_legs(candidates, matrix, smoothed, qids, cfg)
    best_leg = max(report["single_legs_out_of_fold"].values(), default=None)
    if best_leg is not None:
        report["out_of_fold"]["minus_best_single_leg"] = report["out_of_fold"]["ndcg_at_10"] - best_leg
    track = _track_split(matrix, qids, candidates, single)
    if track:
        report["track_split"] = track
    if cfg.prompts:
        report["prompts"] = _prompt_summary(candidates, matrix, oof)
    report["truncated"] = _truncation(encoder, base, texts)
    report["seconds"] = time.perf_counter() - t0
    provenance = {"tuned_on": f"{data.name}, all {len(qids)} queries",
                  "out_of_fold_ndcg_at_10": report["out_of_fold"]["ndcg_at_10"], "model": report["model"]}
    return report, candidates[best_all].settings(), provenance


def _out_of_fold(oof: dict, plain: dict, qids: list[str], candidates: list[Candidate]) -> dict[str, Any]:
    """The cross-validated figures: mean held-out nDCG@10 (smoothed and plain selection), folds, per query."""
    return {
        "ndcg_at_10": float(np.mean([oof["per_query"][q] for q in qids])),
        "ndcg_at_10_plain_argmax": float(np.mean([plain["per_query"][q] for q in qids])),
        "folds": [{**f, "chosen": candidates[f["chosen"]].label(), "chosen_id": f["chosen"],
                   "selection": selection_labels(f["selection"], candidates)} for f in oof["folds"]],
        "per_query": oof["per_query"],
    }


def _protocol(cfg: TuneConfig) -> str:
    """How the out-of-fold figure was made, in words."""
    smoothing = (" after averaging each setting with its neighbours in dense weight (±0.1, same method and legs)"
                 if cfg.selection == "smooth" else "")
    return (f"{cfg.folds}-fold cross-validation over queries (seed {cfg.seed}): each fold's setting is the best mean "
            f"nDCG@10 on the other folds' queries{smoothing}, a fused one only when an inner cross-validation on "
            "those queries alone scores choosing it above choosing the best single leg (else that leg), scored on the fold's queries only; "
            "out_of_fold.ndcg_at_10 is the mean over all queries of those held-out scores")


def cross_validate(matrix: np.ndarray, qids: Sequence[str], folds: int, seed: int,
                   select: np.ndarray | None = None, single: Sequence[int] | None = None) -> dict[str, Any]:
    """Per fold: the row choose_row takes on `select` (default `matrix`) over training columns (with its inner
    check when `single` names the single-leg rows), scored by `matrix` on the held-out columns."""
    select = matrix if select is None else select
    per_query: dict[str, float] = {}
    out = []
    for f, test in enumerate(fold_split(len(qids), folds, seed)):
        train = np.setdiff1d(np.arange(len(qids)), test)
        chosen, why = choose_row(matrix, select, train, single, folds, seed)
        per_query.update({qids[j]: float(matrix[chosen, j]) for j in test})
        out.append({"fold": f, "chosen": chosen, "train_ndcg_at_10": float(matrix[chosen, train].mean()),
                    "test_ndcg_at_10": float(matrix[chosen, test].mean()), "test_queries": len(test),
                    "selection": why})
    return {"per_query": per_query, "folds": out}


def fold_split(n: int, folds: int, seed: int) -> list[np.ndarray]:
    """The held-out query positions of each fold: a seeded permutation of 0..n-1 cut into `folds` parts."""
    return np.array_split(np.random.default_rng(seed).permutation(n), folds)


def smooth_over_weights(candidates: list[Candidate], matrix: np.ndarray, width: float = 0.1) -> np.ndarray:
    """Each row averaged with the rows that differ only in dense weight by at most `width`.

    With ~40 training queries the single best cell of a grid is partly luck; a setting whose
    neighbours also score well is the steadier choice.
    """
    groups: dict[tuple, list[tuple[float, int]]] = {}
    for i, c in enumerate(candidates):
        f = c.fusion
        key = (c.prompt, c.chunking, c.bm25, f.method, f.k, f.depth, 0 in f.weights.values())
        groups.setdefault(key, []).append((f.weights.get("dense", 1.0), i))
    out = np.empty_like(matrix)
    for members in groups.values():
        for w, i in members:
            near = [j for w2, j in members if abs(w2 - w) <= width + 1e-9]
            out[i] = matrix[near].mean(axis=0)
    return out


def _dense_variants(cfg: TuneConfig, base: HybridRetriever, encoder: Encoder, docs: list[Document],
                    texts: list[str], depth: int) -> dict[tuple[str | None, ChunkSettings], list]:
    """Dense rankings per (prompt, chunking) variant; each text is encoded once (encoder cache)."""
    prompts: Sequence[str | None] = cfg.prompts or [None]
    chunkings = _chunk_variants(cfg, titled=any(d.title for d in docs))
    doc_side: dict[tuple, HybridRetriever] = {}
    out = {}
    for prompt in prompts:  # None: the encoder's own
        for c in chunkings:
            if c.documents:
                key = (c.window, c.overlap)
                if key not in doc_side:
                    chunking = ChunkSettings(documents=True, window=c.window, overlap=c.overlap)
                    spec = replace(cfg.spec, legs=("dense",), chunking=chunking, encode_titles=True)
                    doc_side[key] = HybridRetriever.build(docs, **spec.build_kwargs(encoder=encoder, progress=False))
                r = doc_side[key]
            else:
                r = base
            leg = r.leg["dense"]
            if c.active:  # exact scores over every passage, re-aggregated per setting (the grid's fast path)
                out[(prompt, c)] = [leg.order.top(s, depth) for s in leg.exact_scores(texts, c, prompt)]
            else:
                out[(prompt, c)] = r.leg_rankings(texts, ["dense"], depth, inputs={"dense": {"prompt": prompt}})["dense"]
    return out


def _chunk_variants(cfg: TuneConfig, titled: bool) -> list[ChunkSettings]:
    """Without chunking, then documents and/or queries in windows (max or mean over a statute's chunks,
    max over a query's), each with every title weight (only 0 when no document has a title)."""
    shapes = [ChunkSettings()]
    if cfg.chunking:
        for window in cfg.windows:
            for documents, queries in ((True, True), (True, False), (False, True)):
                for doc_agg in (("max", "mean") if documents and queries else ("mean",) if documents else ("max",)):
                    shapes.append(ChunkSettings(documents=documents, queries=queries, window=window,
                                                overlap=cfg.overlap, doc_agg=doc_agg))
    weights = cfg.title_weights if titled else (0.0,)
    return [ChunkSettings(**{**c.to_dict(), "title_weight": t}) for c in shapes for t in weights]


def _bm25_variants(cfg: TuneConfig, base: HybridRetriever, docs: list[Document], texts: list[str],
                   depth: int) -> dict[tuple, list]:
    """BM25 rankings per (k1, b, query window) setting; the base retriever's BM25 serves the default k1, b."""
    out = {}
    for params in cfg.bm25_params:
        analyzer = base.leg["bm25"].analyzer
        spec = replace(cfg.spec, legs=("bm25",), bm25=Bm25Params.from_dict(params))
        r = base if not params else HybridRetriever.build(docs, **spec.build_kwargs(
            analysis=analyzer.settings, user_words=analyzer.user_words, progress=False))
        for window in cfg.bm25_query_windows:
            key = tuple(sorted({**params, **({"query_window": window} if window else {})}.items()))
            out[key] = r.leg_rankings(texts, ["bm25"], depth, inputs={"bm25": {"query_window": window}})["bm25"]
    return out


def _fusions(cfg: TuneConfig) -> list[FusionConfig]:
    """Every fusion method x dense weight (bm25 = 1 - dense) x k for RRF."""
    out = []
    for method in cfg.methods:
        for w in cfg.dense_weights:
            weights = {"dense": w, "bm25": round(1 - w, 6)}
            if method == "rrf":
                out += [FusionConfig("rrf", k, weights, cfg.depth) for k in cfg.rrf_ks]
            else:
                out.append(FusionConfig(method, 60, weights, cfg.depth))
    return out


def _score_grid(cfg: TuneConfig, base: HybridRetriever, qids: list[str], bm25: dict[tuple, list], dense_variants):
    """nDCG@10 per query of every candidate, fused exactly as HybridRetriever.fuse does at query time."""
    scorer = ndcg_at_10_scorer({q: cfg.data.qrels.get(q, {}) for q in qids})  # bench's scorer (MTEB's measure)

    def score(rankings_per_query: list[dict], fusion: FusionConfig) -> list[float]:
        res = scorer({q: dict(base.with_ids(base.fuse(r, "hybrid", fusion, top=10))) for q, r in zip(qids, rankings_per_query)})
        return [res.get(q, 0.0) for q in qids]

    candidates: list[Candidate] = []
    scores: list[list[float]] = []

    def add(candidate: Candidate, legs: list[dict]) -> None:
        candidates.append(candidate)
        scores.append(score(legs, candidate.fusion))

    # Single legs first, so that ties go to the simpler setting.
    dense_only, fusions = FusionConfig(weights={"dense": 1.0, "bm25": 0.0}, depth=cfg.depth), _fusions(cfg)
    for params, ranks in bm25.items():
        add(Candidate(None, ChunkSettings(), FusionConfig(weights={"dense": 0.0, "bm25": 1.0}, depth=cfg.depth), params),
            [{"bm25": r} for r in ranks])
    for (prompt, chunking), dense in dense_variants.items():
        add(Candidate(prompt, chunking, dense_only), [{"dense": d} for d in dense])
        for params, ranks in bm25.items():
            for fusion in fusions:
                add(Candidate(prompt, chunking, fusion, params), [{"dense": d, "bm25": b} for d, b in zip(dense, ranks)])
    return candidates, scores


def selection_labels(why: dict[str, Any], candidates: Sequence[Candidate]) -> dict[str, Any]:
    """choose_row's account with the settings it compared named by label."""
    return {k: candidates[v].label() if k in ("best_fused", "best_single_leg") else v for k, v in why.items()}


def _baselines(candidates: list[Candidate], matrix: np.ndarray) -> dict[str, float]:
    """Mean nDCG@10 over all queries of the untuned settings, for reference."""
    out = {}
    for i, c in enumerate(candidates):
        if c.chunking.active or c.prompt is not None or c.bm25:
            continue
        w = c.fusion.weights
        if w.get("dense", 1) == 0:
            out["bm25"] = float(matrix[i].mean())
        elif w.get("bm25", 1) == 0:
            out["dense"] = float(matrix[i].mean())
    return out


def _single_legs(candidates: list[Candidate], matrix: np.ndarray, select: np.ndarray, qids: list[str],
                 cfg: TuneConfig) -> dict[str, float]:
    """Out-of-fold nDCG@10 of tuning one leg alone (its variants only), the bar fusion must clear."""
    out = {}
    for leg, other in (("dense", "bm25"), ("bm25", "dense")):
        rows = [i for i, c in enumerate(candidates) if c.fusion.weights.get(other, 1.0) == 0]
        if rows:
            res = cross_validate(matrix[rows], qids, cfg.folds, cfg.seed, select=select[rows])
            out[leg] = float(np.mean([res["per_query"][q] for q in qids]))
    return out


def _track_split(matrix: np.ndarray, qids: list[str], candidates: list[Candidate],
                 single: Sequence[int]) -> dict | None:
    """AILA 2019's own protocol: tune on AILA_Q1-Q10 (choose_row's rule), test on AILA_Q11-Q50."""
    train = [j for j, q in enumerate(qids) if q in AILA_TRACK_TRAIN]
    test = [j for j, q in enumerate(qids) if q not in AILA_TRACK_TRAIN]
    if len(train) != len(AILA_TRACK_TRAIN) or not test:
        return None
    chosen, why = choose_row(matrix, matrix, train, single)
    return {"train": "AILA_Q1-Q10", "test": "AILA_Q11-Q50", "chosen_id": chosen, "chosen": candidates[chosen].label(),
            "selection": selection_labels(why, candidates),
            "train_ndcg_at_10": float(matrix[chosen, train].mean()), "ndcg_at_10": float(matrix[chosen, test].mean())}


def _prompt_summary(candidates: list[Candidate], matrix: np.ndarray, oof: dict) -> dict:
    """Best mean nDCG@10 per prompt preset, and which preset the folds chose."""
    best: dict[str, float] = {}
    for i, c in enumerate(candidates):
        if c.prompt is not None:
            name = _preset_name(c.prompt)
            best[name] = max(best.get(name, 0.0), float(matrix[i].mean()))
    chosen = [_preset_name(candidates[f["chosen"]].prompt or "") for f in oof["folds"]]
    return {"best_ndcg_at_10_per_prompt_all_queries": best, "chosen_per_fold": chosen}


def _truncation(encoder: Encoder | None, base: HybridRetriever, texts: list[str]) -> dict[str, int]:
    """Documents (as the base build counted them) and queries longer than the model reads."""
    if encoder is None:
        return {}
    return {"documents": base.info["build"]["truncated_documents"],
            "queries": encoder.count_truncated(texts, encoder.query_prompt),
            "max_seq_length": encoder.max_seq_length}


def prompt_presets(names: Sequence[str]) -> tuple[str, ...]:
    """Qwen3 instruction presets ('mteb', 'legal', 'none') as full query prompts."""
    out = []
    for n in names:
        if n == "none":
            out.append("")
        elif n in QWEN3_INSTRUCTIONS:
            out.append(qwen3_prompt(QWEN3_INSTRUCTIONS[n]))
        else:
            raise ValueError(f"unknown prompt preset {n!r} (choose from mteb, legal, none)")
    return tuple(out)


def _preset_name(prompt: str) -> str:
    for name, instruction in QWEN3_INSTRUCTIONS.items():
        if prompt == qwen3_prompt(instruction):
            return name
    return "none" if not prompt else re.sub(r"\s+", " ", prompt)[:40]


def _say(msg: str) -> None:
    print(f"[tune] {msg}", file=sys.stderr, flush=True)

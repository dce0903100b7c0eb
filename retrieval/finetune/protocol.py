"""`finetune`: k-fold out-of-fold scoring of fine-tuned dense legs, then the final model on every training query.

Fold k's model trains on the other folds' queries only (less a validation share, for early stopping), and
fold k's queries are scored with it by the tune grid (retrieval/evaluation/tune.py: nDCG@10 by
evaluation/scoring.py, bench's scorer, which gives mteb.evaluate's figures; tests/test_finetune.py checks them). The nested hybrid takes, per fold, the grid setting tune's rule (choose_row) picks on
that fold's training queries, so neither the weights nor the fusion ever saw the scored fold. The folds are
tune's (fold_split, same seed), so the base model's nested hybrid is `tune`'s out-of-fold figure.

Output folders follow `build`: the model is written in a hidden work folder beside --out
(`.<name>.finetune`, kept after an interruption for --resume) and renamed into place when complete; an
existing folder is never replaced.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..corpus import CorpusError
from ..dense.chunking import ChunkSettings
from ..dense.encoders import DEFAULT_MODEL, Encoder, EncoderConfig, make_encoder, weights_sha256
from ..evaluation.datasets import data_fingerprint, subset
from ..evaluation.finetuned import RESULT
from ..evaluation.tune import Grid, TuneConfig, fold_split, score_grid, selection_labels
from .options import TrainConfig
from .pairs import Pairs, check_queries, corpus_pairs, merge, query_pairs, with_hard_negatives
from .train import train_fitting


@dataclass(frozen=True)
class FinetuneConfig:
    """What to fine-tune on what: the tune settings (data, base encoder, folds, seed, grid) and the training run."""

    tune: TuneConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    train_queries: tuple[str, ...] | None = None  # None: every judged query
    corpus_pairs: bool = False  # add label-free (title -> text) pairs
    resume: bool = False


def run_finetune(cfg: FinetuneConfig, out: str | Path) -> dict[str, Any]:
    """Cross-validate (tune.folds >= 2), train the final model, write it with finetune.json to `out`."""
    t0 = time.perf_counter()
    out = Path(out).absolute()
    _check_out(out)
    data = cfg.tune.data
    qids = list(cfg.train_queries) if cfg.train_queries else [q for q in data.queries if data.qrels.get(q)]
    check_queries(data, qids, "training queries")
    cv_data = subset(data, qids)
    work = _work_folder(out, cfg, qids)
    base = _load(cfg.tune.spec.encoder)
    report: dict[str, Any] = {
        "task": data.name,
        "base_model": {"model": base.info()["model"], "weights_sha256": base.info()["weights_sha256"]},
        "query_prompt": base.query_prompt,
        "data": {"fingerprint": data_fingerprint(data), "documents": len(data.corpus), "queries": len(qids),
                 "corpus_pairs": cfg.corpus_pairs},
        "hyperparameters": {**cfg.train.to_dict(), "folds": cfg.tune.folds, "fold_seed": cfg.tune.seed,
                            "max_seq_length": base.max_seq_length, "device": base.device},
        "versions": _versions(),
    }
    seconds: dict[str, float] = {}
    if cfg.tune.folds >= 2:
        t = time.perf_counter()
        report.update(_cross_validate(cfg, cv_data, qids, base, work))
        seconds["cross_validation"] = time.perf_counter() - t
    t = time.perf_counter()
    final = work / "final"
    report["final"] = _fit(cfg, cv_data, qids, base, final, "final model")
    seconds["final_model"] = time.perf_counter() - t
    report["final"]["weights_sha256"] = weights_sha256(str(final / "model"))
    seconds["total"] = time.perf_counter() - t0
    report["seconds"] = seconds
    (final / "model" / RESULT).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    final.joinpath("model").rename(out)
    shutil.rmtree(work, ignore_errors=True)
    return report


def _cross_validate(cfg: FinetuneConfig, data, qids: list[str], base: Encoder, work: Path) -> dict[str, Any]:
    """Per fold: train on the other folds, score the fold (dense alone and the nested hybrid); base alongside."""
    tune = replace(cfg.tune, data=data)
    _say("scoring the base model's grid")
    t = time.perf_counter()
    base_grid = score_grid(tune)
    base_seconds = time.perf_counter() - t
    folds = [[qids[i] for i in test] for test in fold_split(len(qids), cfg.tune.folds, cfg.tune.seed)]
    per_query: dict[str, dict[str, float]] = {q: {} for q in qids}
    fold_reports = []
    for k, test in enumerate(folds):
        train_q = [q for q in qids if q not in test]
        result_file = work / f"fold-{k}" / "result.json"
        if cfg.resume and result_file.is_file():
            result = json.loads(result_file.read_text(encoding="utf-8"))
            _say(f"fold {k + 1}/{len(folds)}: done in an earlier run")
        else:
            result = _fit(cfg, data, train_q, base, work / f"fold-{k}", f"fold {k + 1}/{len(folds)}")
            t = time.perf_counter()
            grid = score_grid(replace(tune, spec=tune.spec.with_model(str(work / f"fold-{k}" / "model"))))
            result["scoring_seconds"] = time.perf_counter() - t
            result["test_queries"] = test
            result["scores"] = _fold_scores(base_grid, grid, train_q, test, cfg.tune.folds, cfg.tune.seed)
            result_file.write_text(json.dumps(result, indent=2), encoding="utf-8")
            shutil.rmtree(work / f"fold-{k}" / "model", ignore_errors=True)
        for name, scores in result["scores"]["per_query"].items():
            for q, s in scores.items():
                per_query[q][name] = s
        fold_reports.append({"fold": k, **{key: v for key, v in result.items() if key != "scores"},
                             **{key: v for key, v in result["scores"].items() if key != "per_query"}})
        _say(f"fold {k + 1}: " + ", ".join(f"{n} {np.mean(list(s.values())):.4f}"
                                          for n, s in result["scores"]["per_query"].items()))
    names = list(per_query[qids[0]])
    oof = {n: float(np.mean([per_query[q][n] for q in qids])) for n in names}
    return {"protocol": _protocol(cfg), "out_of_fold": {**oof, "per_query": per_query}, "folds": fold_reports,
            "base_scoring_seconds": base_seconds}


def _fold_scores(base: Grid, grid: Grid, train_q: list[str], test: list[str], folds: int, seed: int
                 ) -> dict[str, Any]:
    """The held-out queries' nDCG@10: fixed dense and BM25 settings, and each model's nested hybrid."""
    (base_row, base_why), (row, why) = base.choose(train_q, folds, seed), grid.choose(train_q, folds, seed)
    rows = {"base_dense": (base, _dense_row(base, ChunkSettings(queries=True))),
            "finetuned_dense": (grid, _dense_row(grid, ChunkSettings(queries=True))),
            "base_dense_no_chunking": (base, _dense_row(base, ChunkSettings())),
            "finetuned_dense_no_chunking": (grid, _dense_row(grid, ChunkSettings())),
            "bm25": (base, _bm25_row(base)),
            "base_hybrid_nested": (base, base_row),
            "hybrid_nested": (grid, row)}
    per_query = {name: {q: float(g.matrix[r, g.qids.index(q)]) for q in test} for name, (g, r) in rows.items()}
    return {"per_query": per_query, "chosen": grid.candidates[row].label(),
            "selection": selection_labels(why, grid.candidates),
            "base_chosen": base.candidates[base_row].label(),
            "base_selection": selection_labels(base_why, base.candidates)}


def _dense_row(grid: Grid, chunking: ChunkSettings) -> int:
    """The grid row of the dense leg alone with these chunk settings (windows and overlap as tune's)."""
    for i, c in enumerate(grid.candidates):
        if (c.fusion.weights.get("bm25") == 0 and c.prompt is None and c.chunking.title_weight == 0
                and (c.chunking.documents, c.chunking.queries) == (chunking.documents, chunking.queries)):
            return i
    raise ValueError("the tune grid has no dense-only row with these chunk settings")


def _bm25_row(grid: Grid) -> int:
    """The grid row of BM25 alone with the default k1, b and no query windows."""
    return next(i for i, c in enumerate(grid.candidates) if c.fusion.weights.get("dense") == 0 and not c.bm25)


def _fit(cfg: FinetuneConfig, data, qids: list[str], base: Encoder, work: Path, what: str) -> dict[str, Any]:
    """Train a fresh copy of the base model on `qids` (a seeded validation share held out); save it in work/model."""
    t = time.perf_counter()
    order = [qids[i] for i in np.random.default_rng(cfg.train.seed).permutation(len(qids))]
    n_val = int(round(cfg.train.validation * len(qids)))
    val_q, train_q = sorted(order[:n_val]), sorted(order[n_val:])
    rows = _rows(cfg, data, train_q, base, label_free=True)
    val_rows = _rows(cfg, data, val_q, base, label_free=False) if val_q else None
    _say(f"{what}: {len(rows)} training pairs from {len(train_q)} queries, {len(val_q)} validation queries")
    work.mkdir(parents=True, exist_ok=True)
    model, log = train_fitting(lambda: _load(replace(cfg.tune.spec.encoder, dtype="float32")).model, rows, val_rows,
                               work / "checkpoints", cfg.train, base.query_prompt, resume=cfg.resume)
    if base.query_prompt and not base.is_qwen3:
        model.prompts["query"] = base.query_prompt
    model.save(str(work / "model"))
    shutil.rmtree(work / "checkpoints", ignore_errors=True)
    return {"trained_queries": train_q, "validation_queries": val_q, "pairs": len(rows),
            "validation_pairs": len(val_rows) if val_rows else 0, **log, "seconds": time.perf_counter() - t}


def _rows(cfg: FinetuneConfig, data, qids: list[str], base: Encoder, label_free: bool) -> Pairs:
    """The rows for these queries (plus label-free pairs when asked), with mined hard negatives."""
    rows = query_pairs(base, data, qids)
    if label_free and cfg.corpus_pairs:
        rows = merge(rows, corpus_pairs(data))
    return with_hard_negatives(rows, base, data, cfg.train.hard_negatives, cfg.train.seed)


def _load(config: EncoderConfig) -> Encoder:
    """The encoder; a model that cannot be found or loaded is one line of bad input."""
    try:
        return make_encoder(config)
    except (OSError, ValueError) as e:
        name = config.model or DEFAULT_MODEL
        raise CorpusError(f"base model {name!r}: cannot be loaded ({str(e).splitlines()[0][:200]})") from None


def _check_out(out: Path) -> None:
    """An absent or empty folder only: a fine-tune never replaces anything."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CorpusError(f"{out}: exists and is not empty; not replacing it, choose another --out")


def _work_folder(out: Path, cfg: FinetuneConfig, qids: list[str]) -> Path:
    """The hidden work folder beside `out`; one left by an interrupted run is reused with --resume only, and
    only for the same data and settings."""
    work = out.parent / f".{out.name}.finetune"
    stamp = json.dumps({"data": data_fingerprint(cfg.tune.data), "queries": qids, "train": cfg.train.to_dict(),
                        "folds": cfg.tune.folds, "seed": cfg.tune.seed, "encoder": repr(cfg.tune.spec.encoder),
                        "corpus_pairs": cfg.corpus_pairs}, sort_keys=True)
    if work.exists():
        if not cfg.resume:
            raise CorpusError(f"{work}: an interrupted fine-tune left this folder; add --resume to go on, "
                              "or delete it")
        if (work / "settings.json").is_file() and (work / "settings.json").read_text(encoding="utf-8") != stamp:
            raise CorpusError(f"{work}: was made with other data or settings; --resume needs the same ones")
    work.mkdir(parents=True, exist_ok=True)
    (work / "settings.json").write_text(stamp, encoding="utf-8")
    return work


def _protocol(cfg: FinetuneConfig) -> str:
    """How the out-of-fold figures were made, in words."""
    return (f"{cfg.tune.folds}-fold cross-validation over the training queries (tune's folds, seed {cfg.tune.seed}): "
            "fold k's model is fine-tuned on the other folds' queries only (a validation share of them held out "
            "for early stopping) and scores fold k's queries; the nested hybrid is the tune-grid setting with the "
            "best mean nDCG@10 on the other folds' queries (a fused one only when an inner cross-validation on those "
            "queries alone scores choosing it above choosing the best single leg), built on fold k's model; base_* and bm25 are the "
            "untrained model and BM25 on the same folds. out_of_fold: mean over all queries of held-out nDCG@10 "
            "(pytrec_eval, as mteb.evaluate)")


def _versions() -> dict[str, str]:
    """Library versions that shape the training."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "sentence-transformers", "peft", "accelerate", "datasets", "mteb"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _say(msg: str) -> None:
    print(f"[finetune] {msg}", file=sys.stderr, flush=True)

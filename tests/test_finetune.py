"""`retrieval finetune`: leak-free folds, hard negatives never relevant, LoRA merged, lineage, bad input, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval.cli import main
from retrieval.dense.encoders import EncoderConfig
from retrieval.evaluation.datasets import RetrievalData
from retrieval.evaluation.tune import TuneConfig
from retrieval.finetune import FinetuneConfig, TrainConfig, run_finetune
from retrieval.spec import IndexSpec

STATUTES = {
    "S1": "Whoever causes the death of a woman within seven years of her marriage by burns commits dowry death.",
    "S2": "Culpable homicide is murder if the act is done with the intention of causing death.",
    "S3": "Whoever intending to take dishonestly any movable property out of possession commits theft.",
    "S4": "Whoever enters into property in the possession of another with intent to commit an offence trespasses.",
    "S5": "Whoever by deceiving any person fraudulently induces delivery of property is said to cheat.",
    "S6": "The husband or relative of the husband who subjects a woman to cruelty shall be punished.",
}
QUERIES = {
    "Q1": "The wife died of burns two years after the marriage after dowry demands.",
    "Q2": "He stabbed the victim intending to kill him.",
    "Q3": "The accused took the bicycle from the house without consent.",
    "Q4": "They entered the neighbour's land to threaten him.",
    "Q5": "He sold a fake gold chain and took the money by deceit.",
    "Q6": "Her in-laws harassed and beat her for more dowry until she died of burns.",
}
QRELS = {"Q1": {"S1": 1, "S6": 1}, "Q2": {"S2": 1}, "Q3": {"S3": 1}, "Q4": {"S4": 1}, "Q5": {"S5": 1},
         "Q6": {"S1": 1, "S6": 1}}
SMALL_GRID = dict(methods=("rrf",), rrf_ks=(60,), dense_weights=(0.5,), title_weights=(0.0,), bm25_params=({},),
                  bm25_query_windows=(0,))


def small_data() -> RetrievalData:
    return RetrievalData("tiny", "eng-Latn", {d: {"title": "", "text": t} for d, t in STATUTES.items()},
                         dict(QUERIES), {q: dict(r) for q, r in QRELS.items()})


def config(model: Path, folds: int, **train) -> FinetuneConfig:
    spec = IndexSpec(encoder=EncoderConfig(model=str(model), device="cpu"))
    tune = TuneConfig(data=small_data(), spec=spec, folds=folds, **SMALL_GRID)
    return FinetuneConfig(tune, TrainConfig(**{"batch_size": 2, "validation": 0.25, **train}))


def write_beir(folder: Path, qrels: str | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"id": d, "text": t}) + "\n" for d, t in STATUTES.items()))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"id": q, "text": t}) + "\n" for q, t in QUERIES.items()))
    rows = [f"{q}\t{d}\t{s}" for q, r in QRELS.items() if q != "Q5" for d, s in r.items()]
    (folder / "qrels.tsv").write_text(qrels or "query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    return folder


def test_each_fold_model_trains_only_on_queries_outside_its_fold(qwen3_dir, tmp_path):
    from retrieval.dense.encoders import weights_sha256

    out = tmp_path / "ft"
    report = run_finetune(config(qwen3_dir, folds=2), out)
    folds = report["folds"]
    assert len(folds) == 2
    for f in folds:
        seen = set(f["trained_queries"]) | set(f["validation_queries"])
        assert seen and not seen & set(f["test_queries"])
        assert seen | set(f["test_queries"]) == set(QUERIES)
    assert sorted(q for f in folds for q in f["test_queries"]) == sorted(QUERIES)
    assert all(f["selection"]["rule"] and f["base_selection"]["rule"] for f in folds)  # why each nested choice
    oof = report["out_of_fold"]
    assert {"base_dense", "finetuned_dense", "hybrid_nested", "base_hybrid_nested", "bm25"} <= set(oof)
    assert set(oof["per_query"]) == set(QUERIES)
    saved = json.loads((out / "finetune.json").read_text())
    assert saved["final"]["trained_queries"] and (out / "modules.json").is_file() and (out / "README.md").is_file()
    assert saved["base_model"]["weights_sha256"] == weights_sha256(str(qwen3_dir))
    assert saved["final"]["weights_sha256"] not in (None, weights_sha256(str(qwen3_dir)))
    assert saved["query_prompt"].startswith("Instruct: ")
    assert not list(tmp_path.glob(".ft.finetune*"))  # the work folder is gone


def test_hard_negatives_are_never_judged_relevant_to_their_query(qwen3_encoder):
    from retrieval.finetune.pairs import query_pairs, with_hard_negatives

    data = small_data()
    pairs = with_hard_negatives(query_pairs(qwen3_encoder, data, list(QUERIES)), qwen3_encoder, data, n=3, seed=0)
    assert len(pairs) > 0 and all(len(n) == 3 for n in pairs.negatives)
    for q, negatives in zip(pairs.query_ids, pairs.negatives):
        relevant = {STATUTES[d] for d in QRELS[q]}
        assert not relevant & set(negatives)


def test_lora_fine_tune_saves_a_merged_model_that_build_loads_with_its_lineage(qwen3_dir, tmp_path):
    from retrieval.dense.encoders import weights_sha256

    out = tmp_path / "lora"
    run_finetune(config(qwen3_dir, folds=0, lora=True, lora_rank=4), out)
    assert not list(out.rglob("adapter_config.json"))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": d, "text": t}) + "\n" for d, t in STATUTES.items()))
    assert main(["build", str(corpus), "--out", str(tmp_path / "ix"), "--model", str(out), "--device", "cpu"]) == 0
    dense = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    text = json.dumps(dense)
    assert weights_sha256(str(qwen3_dir)) in text  # the lineage: base model's hash
    assert weights_sha256(str(out)) in text and weights_sha256(str(out)) != weights_sha256(str(qwen3_dir))


def test_an_interrupted_fine_tune_leaves_no_model_and_resume_goes_on(qwen3_dir, tmp_path, monkeypatch):
    import retrieval.finetune.protocol as protocol

    out, real, calls = tmp_path / "ft", protocol.score_grid, []

    def interrupted(cfg):
        calls.append(cfg.spec.encoder.model)
        if len(calls) == 3:  # base grid, fold 0's grid, then fold 1's
            raise KeyboardInterrupt
        return real(cfg)

    monkeypatch.setattr(protocol, "score_grid", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_finetune(config(qwen3_dir, folds=2), out)
    assert not out.exists() and (tmp_path / ".ft.finetune" / "fold-0" / "result.json").is_file()
    with pytest.raises(ValueError, match="--resume"):
        run_finetune(config(qwen3_dir, folds=2), out)
    monkeypatch.setattr(protocol, "score_grid", real)
    from dataclasses import replace

    report = run_finetune(replace(config(qwen3_dir, folds=2), resume=True), out)
    assert len(report["folds"]) == 2 and (out / "finetune.json").is_file()


@pytest.mark.parametrize("case, message", [
    ("no-qrels", "has no relevance judgments"),
    ("unknown-id", "unknown corpus id"),
    ("one-batch", "fewer than one batch"),
    ("no-model", "cannot be loaded"),
    ("out-exists", "not replacing it"),
])
def test_bad_fine_tune_input_is_one_line_and_exit_2(case, message, qwen3_dir, tmp_path, capsys):
    qrels = "query-id\tcorpus-id\tscore\nQ1\tS99\t1\n" if case == "unknown-id" else None
    data = write_beir(tmp_path / "data", qrels)
    args = ["finetune", "--dataset", str(data), "--out", str(tmp_path / "ft"), "--model", str(qwen3_dir),
            "--device", "cpu", "--train-batch-size", "2", "--validation", "0"]
    if case == "no-qrels":
        (tmp_path / "train.txt").write_text("Q1\nQ5\n")
        args += ["--train-queries", str(tmp_path / "train.txt")]
    elif case == "one-batch":
        args += ["--max-queries", "1", "--train-batch-size", "64"]
    elif case == "no-model":
        args[args.index("--model") + 1] = str(tmp_path / "missing-model")
    elif case == "out-exists":
        (tmp_path / "ft").mkdir()
        (tmp_path / "ft" / "mine.txt").write_text("keep")
    assert main(args) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err
    if case == "out-exists":
        assert (tmp_path / "ft" / "mine.txt").read_text() == "keep"


def test_cuda_out_of_memory_in_training_halves_the_batch_and_goes_on(qwen3_dir, tmp_path, monkeypatch):
    import torch
    from sentence_transformers import SentenceTransformerTrainer

    real, batches = SentenceTransformerTrainer.train, []

    def tight_memory(self, *args, **kwargs):
        batches.append(self.args.per_device_train_batch_size)
        if self.args.per_device_train_batch_size > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SentenceTransformerTrainer, "train", tight_memory)
    report = run_finetune(config(qwen3_dir, folds=0, batch_size=4), tmp_path / "ft")
    assert batches == [4, 2] and report["final"]["batch_size"] == 2 and report["final"]["steps"] > 0
    assert json.loads((tmp_path / "ft" / "finetune.json").read_text())["final"]["batch_size"] == 2


def test_fold_scores_come_from_bench_scorer_and_equal_mteb_evaluate(qwen3_dir, monkeypatch):
    import retrieval.evaluation.tune as tune
    from retrieval.dense.chunking import ChunkSettings
    from retrieval.evaluation import scoring
    from retrieval.evaluation.bench import BenchConfig, run_bench
    from retrieval.finetune.protocol import _dense_row

    scorers = []

    def counted(qrels):
        scorers.append(qrels)
        return scoring.ndcg_at_10_scorer(qrels)

    monkeypatch.setattr(tune, "ndcg_at_10_scorer", counted)
    spec = IndexSpec(encoder=EncoderConfig(model=str(qwen3_dir), device="cpu"))
    grid = tune.score_grid(TuneConfig(data=small_data(), spec=spec, folds=2, **SMALL_GRID))
    assert scorers  # the grid (and so every fold of finetune) is scored by evaluation/scoring.py, as bench is
    report, _, _ = run_bench(BenchConfig(data=small_data(), spec=spec))
    dense = grid.matrix[_dense_row(grid, ChunkSettings())]
    assert dense.mean() == pytest.approx(report["runs"]["dense"]["ndcg_at_10"], abs=1e-4)  # MTEB's own figure
    assert dense.tolist() == pytest.approx([report["per_query"]["dense"][q] for q in grid.qids], abs=1e-4)

"""The rerank stage, tested with tiny random rerankers built offline (scripts/make_tiny_models.py): Qwen's judge
prompt, scores from the yes/no logits, reordering of the top N only, the CLI, the web API, and parity of the bench's
reranked runs with MTEB's own two-stage path."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from tiny_rerankers import build_cross_encoder_folder, build_qwen3_reranker_folder

from retrieval.cli import main
from retrieval.rerank import (
    JUDGE_PREFIX,
    JUDGE_SUFFIX,
    RERANK_INSTRUCTIONS,
    RerankConfig,
    Reranked,
    Reranker,
    RerankStage,
    judge_text,
    ordered_scores,
    rerank_order,
)
from retrieval.retriever import HybridRetriever
from retrieval.web import create_app
from retrieval.web.server import index_rerankers

QUERY = "The husband and his mother burnt the young wife for not bringing more dowry"
DOCS = ["Whoever causes the death of a woman within seven years of her marriage shall be punished for dowry death.",
        "Whoever intending to take dishonestly any movable property commits theft.",
        "Culpable homicide is murder if the act is done with the intention of causing death. " * 60]  # cut at 512


@pytest.fixture(scope="module")
def qwen3_reranker_dir(tmp_path_factory) -> Path:
    return build_qwen3_reranker_folder(tmp_path_factory.mktemp("models") / "qwen3-reranker")


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory) -> Path:
    return build_cross_encoder_folder(tmp_path_factory.mktemp("models") / "cross-encoder")


@pytest.fixture(scope="module")
def judge(qwen3_reranker_dir, test_device) -> Reranker:
    return Reranker(RerankConfig(model=str(qwen3_reranker_dir), device=test_device, dtype="float32"))


@pytest.fixture(scope="module")
def mteb_judge(judge):
    from mteb.models.model_implementations.qwen3_reranker import Qwen3RerankerWrapper

    return Qwen3RerankerWrapper(judge.model_path, device=judge.device, max_length=judge.max_length,
                                dtype=torch.float32)


def test_judge_prompt_is_qwens_template(judge, mteb_judge):
    assert judge.is_judge and judge.instruction == RERANK_INSTRUCTIONS["legal"] and judge.max_length == 512
    messages = [{"role": "system", "content": judge.instruction}, {"role": "query", "content": QUERY},
                {"role": "document", "content": DOCS[0]}]
    rendered = judge.model.tokenizer.apply_chat_template(messages, tokenize=False)
    assert rendered == judge_text(judge.instruction, QUERY, DOCS[0])
    reference = mteb_judge.prefix + mteb_judge.format_instruction(judge.instruction, QUERY, DOCS[0]) + mteb_judge.suffix
    assert rendered == reference and rendered.startswith(JUDGE_PREFIX) and rendered.endswith(JUDGE_SUFFIX)
    # token for token what Qwen's reference code feeds the model, the 512-token cut included (statute end first)
    pairs = [(QUERY, d) for d in DOCS]
    ours = judge.model.preprocess(pairs, prompt=judge.instruction)
    theirs = mteb_judge.process_inputs([mteb_judge.format_instruction(judge.instruction, q, d) for q, d in pairs])
    assert torch.equal(ours["attention_mask"], theirs["attention_mask"])
    real = ours["attention_mask"] == 1
    assert torch.equal(ours["input_ids"][real], theirs["input_ids"][real])
    assert int(ours["attention_mask"][2].sum()) == 512
    tail = judge.model.tokenizer(JUDGE_SUFFIX, add_special_tokens=False)["input_ids"]
    assert ours["input_ids"][2, -len(tail):].tolist() == tail


def test_scores_are_p_yes_from_the_yes_no_logits(judge, mteb_judge):
    tok = judge.model.tokenizer
    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
    features = tok([judge_text(judge.instruction, QUERY, d) for d in DOCS[:2]], add_special_tokens=False,
                   padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = judge.model.model(**features.to(judge.device)).logits[:, -1].float()
    expected = torch.sigmoid(logits[:, yes] - logits[:, no]).cpu().numpy()
    scores = judge.score(QUERY, DOCS[:2])
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    inputs = mteb_judge.process_inputs([mteb_judge.format_instruction(judge.instruction, QUERY, d) for d in DOCS])
    np.testing.assert_allclose(judge.score(QUERY, DOCS), mteb_judge.compute_logits(inputs), atol=1e-6)
    assert judge.info()["weights_sha256"] and "yes" in judge.info()["score"]


def test_sequence_classifier_scores_are_the_sigmoid_of_its_logit(cross_encoder_dir, test_device):
    reranker = Reranker(RerankConfig(model=str(cross_encoder_dir), device=test_device))
    assert not reranker.is_judge and reranker.instruction is None and reranker.max_length == 512
    tok = reranker.model.tokenizer
    features = tok([QUERY] * 2, DOCS[:2], padding=True, truncation=True, return_tensors="pt").to(reranker.device)
    with torch.no_grad():
        expected = torch.sigmoid(reranker.model.model(**features).logits[:, 0]).cpu().numpy()
    np.testing.assert_allclose(reranker.score(QUERY, DOCS[:2]), expected, atol=1e-6)
    with pytest.raises(ValueError, match="instruction"):
        Reranker(RerankConfig(model=str(cross_encoder_dir), instruction="legal"))


def test_rerank_order_reorders_only_the_top_n():
    ranked = [("a", 0.9), ("b", 0.8), ("c", 0.7), ("d", 0.6), ("e", 0.5)]
    order = rerank_order(ranked, [0.1, 0.5, 0.5])
    assert [d.id for d in order] == ["c", "b", "a", "d", "e"]  # the tie (b, c) by descending id; d, e kept
    assert order[0] == Reranked("c", 3, 0.7, 0.5) and order[3] == Reranked("d", 4, 0.6, None)
    scores = ordered_scores(order)
    assert sorted(scores, key=lambda i: (scores[i], i), reverse=True) == [d.id for d in order]
    with pytest.raises(ValueError):
        rerank_order(ranked[:1], [0.1, 0.2])


class Reverse:
    """A stand-in reranker that scores a query's candidates in reverse of the order it is given them."""

    model_name = "reverse"

    def score_pairs(self, queries, documents):
        return -np.arange(len(documents), dtype=np.float32)[::-1]


def test_search_reranks_the_top_depth_and_keeps_the_rest(tiny_index):
    retriever = HybridRetriever.load(tiny_index)
    plain = retriever.search("dowry death of a woman", k=5)
    hits = retriever.search("dowry death of a woman", k=5, rerank=RerankStage(Reverse(), 3))
    assert [h.id for h in hits] == [h.id for h in plain[:3]][::-1] + [h.id for h in plain[3:]]
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert [h.first_stage.rank for h in hits] == [3, 2, 1, 4, 5]
    assert hits[0].first_stage.score == plain[2].score and hits[0].legs == plain[2].legs
    assert hits[3].rerank_score is None and hits[3].score == plain[3].score
    d = hits[0].to_dict()
    assert d["first_stage"]["rank"] == 3 and d["rerank_score"] == hits[0].score
    assert "first_stage" not in plain[0].to_dict()
    assert len(retriever.search("dowry", k=2, rerank=RerankStage(Reverse(), 4))) == 2


class Recorder:
    """A custom stage after fusion (no reranker model): records what it is given and puts the last hit first."""

    depth = 4

    def __init__(self):
        self.calls = []

    def apply(self, queries, hits, text_of):
        self.calls.append((list(queries), [[h.id for h in q_hits] for q_hits in hits], text_of(hits[0][0].id)))
        return [[replace(h, rank=i) for i, h in enumerate([q_hits[-1], *q_hits[:-1]], start=1)] for q_hits in hits]


def test_a_custom_stage_passed_to_the_retriever_is_called_on_the_fused_hits(tiny_index):
    retriever = HybridRetriever.load(tiny_index)
    plain = retriever.search("dowry death of a woman", k=4)
    stage = Recorder()
    hits = retriever.search("dowry death of a woman", k=2, rerank=stage)
    assert stage.calls[0][:2] == (["dowry death of a woman"], [[h.id for h in plain]])  # its depth, not k
    assert stage.calls[0][2] == retriever.indexed_text(plain[0].id)  # the text a reranker reads
    assert [h.id for h in hits] == [plain[3].id, plain[0].id]  # its order, cut to k


def test_cli_query_build_and_web_rerank(tiny_docs, tiny_index, cross_encoder_dir, tmp_path, capsys):
    assert main(["query", str(tiny_index), "dowry death", "--rerank", str(cross_encoder_dir), "--rerank-depth", "3",
                 "-k", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rerank"]["depth"] == 3 and len(out["hits"]) == 5
    assert [h["rerank_score"] is None for h in out["hits"]] == [False] * 3 + [True] * 2
    assert sorted(h["first_stage"]["rank"] for h in out["hits"]) == [1, 2, 3, 4, 5]
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n" for d in tiny_docs))
    ix = tmp_path / "ix"
    assert main(["build", str(corpus), "--out", str(ix), "--rerank", str(cross_encoder_dir),
                 "--rerank-depth", "2"]) == 0
    manifest = json.loads((ix / "manifest.json").read_text())
    assert manifest["rerank"]["depth"] == 2 and manifest["rerank"]["weights_sha256"]
    assert {"model", "instruction", "dtype"} <= set(manifest["rerank"])
    capsys.readouterr()
    assert main(["query", str(ix), "theft", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rerank"]["depth"] == 2  # the index's reranker by default
    assert main(["query", str(ix), "theft", "--json", "--rerank", "none"]) == 0
    assert "rerank" not in json.loads(capsys.readouterr().out)
    assert main(["query", str(ix), "theft", "-k", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("first stage #") == 3 and "top 2 reranked by" in printed
    assert main(["query", str(ix), "theft", "--rerank", str(tmp_path / "missing")]) == 2
    assert "cannot load the reranker" in capsys.readouterr().err
    named = index_rerankers({"ix": HybridRetriever.load(ix), "plain": HybridRetriever.load(tiny_index)}, None)
    assert set(named) == {"ix"} and named["ix"][1] == 2  # serve: each index's own reranker
    reranker = Reranker(RerankConfig(model=str(cross_encoder_dir)))
    client = TestClient(create_app({"tiny": HybridRetriever.load(tiny_index)}, {"tiny": (reranker, 3)}))
    on = client.get("/api/search", params={"q": "dowry death", "k": 4}).json()
    off = client.get("/api/search", params={"q": "dowry death", "k": 4, "rerank": "false"}).json()
    assert on["rerank"]["depth"] == 3 and "first_stage" in on["hits"][0]
    assert "rerank" not in off and "first_stage" not in off["hits"][0]
    assert client.get("/api/health").json()["indexes"][0]["rerank"]["depth"] == 3


@pytest.mark.parametrize("which", ["qwen3", "cross-encoder"])
def test_bench_rerank_runs_match_mteb_two_stage(which, qwen3_reranker_dir, cross_encoder_dir, tmp_path):
    from test_bench import write_dataset

    model = qwen3_reranker_dir if which == "qwen3" else cross_encoder_dir
    tuned = tmp_path / "fusion.json"
    tuned.write_text(json.dumps({"fusion": {"method": "rrf", "k": 10, "weights": {"dense": 1.0, "bm25": 2.0}}}))
    out = tmp_path / "b"
    assert main(["bench", "--dataset", str(write_dataset(tmp_path / "data")), "--out", str(out), "--parity",
                 "--rerank", str(model), "--rerank-depth", "3", "--fusion-config", str(tuned)]) == 0
    r = json.loads((out / "report.json").read_text())
    assert {"dense+rerank", "hybrid+rerank", "tuned+rerank"} <= set(r["runs"])
    for run in ("dense+rerank", "hybrid+rerank", "tuned+rerank"):
        assert r["runs"][run]["rerank_depth"] == 3 and r["runs"][run]["seconds"] > 0
        assert r["parity"][run]["abs_diff"] <= 1e-4 and "MTEB" in r["parity"][run]["mteb_model"]
    assert r["parity"]["all_ok"] and r["rerank"]["depth"] == 3 and r["rerank"]["weights_sha256"]
    assert "hybrid+rerank_minus_hybrid" in r["comparison"]
    md = (out / "report.md").read_text()
    assert "| hybrid+rerank | nDCG |" in md and "reranker (runs `+rerank`)" in md
    assert (out / "mteb" / "hybrid_rerank.json").is_file()


def test_make_tiny_models_writes_the_three_folders_offline(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, str(root / "scripts" / "make_tiny_models.py"), str(tmp_path)],
                         capture_output=True, text=True, check=False, env={"HF_HUB_OFFLINE": "1", "PATH": ""})
    assert run.returncode == 0, run.stderr[-500:]
    for name in ("qwen3-embedding", "qwen3-reranker", "cross-encoder"):
        assert (tmp_path / name / "config.json").is_file()
    assert json.loads((tmp_path / "qwen3-reranker" / "config.json").read_text())["architectures"] == ["Qwen3ForCausalLM"]
    assert not (tmp_path / "minilm-cross-encoder").exists()

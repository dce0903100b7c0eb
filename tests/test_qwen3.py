"""Qwen3-Embedding support, tested with a tiny random Qwen3 built offline (tests/qwen3_tiny.py).

Runs on RETRIEVAL_TEST_DEVICE (default cpu; scripts/gpu_check.sh runs these on cuda).
"""

import importlib.util
import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from qwen3_tiny import EOS, PAD, STATUTE_TEXT, build_qwen3_folder

from retrieval.cli import main
from retrieval.dense.encoders import (
    QWEN3_INSTRUCTIONS,
    Encoder,
    EncoderConfig,
    plan_batches,
    qwen3_prompt,
    resolve_query_prompt,
    weights_sha256,
)
from retrieval.dense.gpu import auto_dtype
from retrieval.retriever import HybridRetriever

QUERY = "The accused set his wife on fire over dowry demands"
SHORT = ["dowry death", "theft", "cheating by deception"]


def _cuda(device: str) -> bool:
    return device.startswith("cuda")


def test_qwen3_fixture_mirrors_real_files_and_is_deterministic(qwen3_dir, tmp_path):
    from safetensors import safe_open
    from transformers import AutoTokenizer

    names = {p.name for p in qwen3_dir.iterdir()}
    assert {"config.json", "model.safetensors", "modules.json", "tokenizer.json", "tokenizer_config.json",
            "config_sentence_transformers.json", "1_Pooling"} <= names
    assert "sentence_bert_config.json" not in names
    config = json.loads((qwen3_dir / "config.json").read_text())
    assert config["model_type"] == "qwen3" and config["hidden_size"] == 64 and config["num_key_value_heads"] == 2
    with safe_open(qwen3_dir / "model.safetensors", "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
    pooling = json.loads((qwen3_dir / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_lasttoken"] and pooling["include_prompt"]
    st = json.loads((qwen3_dir / "config_sentence_transformers.json").read_text())
    assert "query" in st["prompts"] and st["default_prompt_name"] is None
    tok = AutoTokenizer.from_pretrained(qwen3_dir)
    assert tok.pad_token == PAD and tok.eos_token == EOS and len(tok) == config["vocab_size"]
    assert tok.convert_ids_to_tokens(tok("dowry death")["input_ids"])[-1] == PAD
    again = build_qwen3_folder(tmp_path / "again")
    assert weights_sha256(str(again)) == weights_sha256(str(qwen3_dir))
    assert (again / "tokenizer.json").read_bytes() == (qwen3_dir / "tokenizer.json").read_bytes()


def test_qwen3_prompt_on_queries_not_documents(qwen3_encoder):
    enc = qwen3_encoder
    mteb = qwen3_prompt(QWEN3_INSTRUCTIONS["mteb"])
    assert enc.is_qwen3 and enc.query_prompt == mteb and enc.document_prompt == ""
    with_prompt = enc.model.encode([QUERY], prompt=mteb, convert_to_numpy=True)
    without = enc.model.encode([QUERY], prompt="", convert_to_numpy=True)
    assert not np.allclose(with_prompt, without, atol=1e-4)
    assert np.allclose(enc.encode_queries([QUERY]), with_prompt, atol=1e-5)
    assert np.allclose(enc.encode_documents([QUERY], progress=False), without, atol=1e-5)
    # The query follows "Query:" directly: the model sees exactly prompt + text.
    ids = enc.model[0].preprocess([QUERY], prompt=mteb)["input_ids"][0].tolist()
    assert ids == enc.model.tokenizer(mteb + QUERY)["input_ids"]


def test_qwen3_query_instruction_presets():
    kw = {"is_qwen3": True, "model_prompt": "model's own: "}
    assert resolve_query_prompt(None, None, **kw) == "Instruct: Retrieve text based on user query.\nQuery:"
    assert resolve_query_prompt("legal", None, **kw) == \
        "Instruct: Given a legal scenario, retrieve the most relevant statutes\nQuery:"
    assert resolve_query_prompt("none", None, **kw) == ""
    assert resolve_query_prompt("Find the statute", None, **kw) == "Instruct: Find the statute\nQuery:"
    assert resolve_query_prompt(None, "raw: ", **kw) == "raw: "
    assert resolve_query_prompt(None, None, is_qwen3=False, model_prompt="query: ") == "query: "
    with pytest.raises(ValueError, match="not both"):
        resolve_query_prompt("legal", "raw: ", **kw)


def test_qwen3_left_padding_batch_invariance(qwen3_encoder):
    enc = qwen3_encoder
    assert enc.model.tokenizer.padding_side == "left"
    mask = enc.model[0].preprocess(["theft", STATUTE_TEXT[0]])["attention_mask"]
    assert mask[:, -1].all() and not mask[0, 0]  # real last tokens at the end, padding in front
    texts = [STATUTE_TEXT[1], SHORT[0], STATUTE_TEXT[2], SHORT[1]]
    assert len(enc.plan(texts)) == 1  # one padded batch
    batch = enc.encode_documents(texts, progress=False)
    alone = np.vstack([enc.encode_documents([t], progress=False) for t in texts])
    assert np.allclose(batch, alone, atol=1e-5)
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-6)
    assert batch.dtype == np.float32


def test_qwen3_dtypes(qwen3_dir, qwen3_encoder, test_device):
    def param_dtype(enc):
        return next(enc.model.parameters()).dtype

    auto = Encoder(EncoderConfig(model=str(qwen3_dir), device=test_device))
    assert auto.dtype == auto_dtype(test_device)
    assert _cuda(test_device) or auto.dtype == "float32"
    assert param_dtype(auto) == getattr(torch, auto.dtype)
    assert param_dtype(qwen3_encoder) == torch.float32  # from a bf16 checkpoint
    bf16 = Encoder(EncoderConfig(model=str(qwen3_dir), device=test_device, dtype="bfloat16"))
    assert param_dtype(bf16) == torch.bfloat16
    vectors = bf16.encode_queries(SHORT)
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    cosine = (vectors * qwen3_encoder.encode_queries(SHORT)).sum(axis=1)
    assert (cosine > 0.99).all()


def test_qwen3_token_budget_plan():
    lengths = [5, 100, 3, 50, 50, 7]
    assert plan_batches(lengths, 200) == [[1, 3], [4, 5, 0, 2]]
    assert plan_batches(lengths, 60) == [[1], [3], [4], [5, 0, 2]]  # too long for the budget: alone
    assert plan_batches(lengths, None, batch_size=4) == [[1, 3, 4, 5], [0, 2]]
    assert plan_batches([], 10) == []
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 300, 500).tolist()
    batches = plan_batches(lengths, 1024)
    assert sorted(i for b in batches for i in b) == list(range(500))
    assert all(len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 1024 for b in batches)
    assert all(lengths[b[0]] == max(lengths[i] for i in b) for b in batches)
    with pytest.raises(ValueError):
        plan_batches(lengths, 0)


def test_qwen3_token_budget_keeps_order_and_vectors(qwen3_dir, qwen3_encoder, test_device):
    budget = Encoder(EncoderConfig(model=str(qwen3_dir), device=test_device, dtype="float32",
                                   max_tokens_per_batch=256))
    texts = [*STATUTE_TEXT, *SHORT]
    lengths = budget.token_lengths(texts)
    plan = budget.plan(texts)
    assert len(plan) > 2 and all(len(b) == 1 or len(b) * max(lengths[b]) <= 256 for b in plan)
    assert np.allclose(budget.encode_documents(texts, progress=False),
                       qwen3_encoder.encode_documents(texts, progress=False), atol=1e-5)
    assert budget.info()["max_tokens_per_batch"] == 256


def test_qwen3_cuda_oom_halves_the_batch(qwen3_encoder, monkeypatch, caplog):
    enc = qwen3_encoder
    monkeypatch.setattr(enc, "token_budget", None)  # batch_size batches on every device (token budget: test_gpu.py)
    texts = [*STATUTE_TEXT[:6], *SHORT[:2]]
    want = enc.encode_documents(texts, progress=False)
    real, sizes = enc._encode_batch, []

    def flaky(rows, *args):
        sizes.append(len(rows))
        if len(rows) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(rows, *args)

    monkeypatch.setattr(enc, "_encode_batch", flaky)
    with caplog.at_level(logging.WARNING, logger="retrieval.dense.encoders"):
        got = enc.encode_documents(texts, progress=False)
    assert sizes == [8, 4, 2, 2, 2, 2]  # after each failure the texts left are planned again, half as big
    assert np.allclose(got, want, atol=1e-5)
    assert "halving" in caplog.text
    monkeypatch.setattr(enc, "_encode_batch", lambda *a: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError()))
    with pytest.raises(torch.cuda.OutOfMemoryError):
        enc.encode_documents(["one text alone"], progress=False)


def test_qwen3_truncation_counted(qwen3_dir, test_device):
    enc = Encoder(EncoderConfig(model=str(qwen3_dir), device=test_device, dtype="float32", max_seq_length=16))
    texts = [*STATUTE_TEXT[:3], *SHORT]
    assert enc.max_seq_length == 16
    assert enc.count_truncated(texts) == 3
    assert enc.count_truncated(texts, prompt=enc.query_prompt) == len(texts)  # the prompt alone is > 16 tokens
    mask = enc.model[0].preprocess([STATUTE_TEXT[0]])["attention_mask"]
    assert mask.shape[1] == 16


def test_qwen3_cli_build_query_manifest(qwen3_dir, tiny_docs, test_device, tmp_path, capsys):
    corpus, ix = tmp_path / "c.jsonl", tmp_path / "ix"
    corpus.write_text("".join(json.dumps(d.__dict__) + "\n" for d in tiny_docs))
    assert main(["build", str(corpus), "--out", str(ix), "--model", str(qwen3_dir), "--device", test_device,
                 "--query-instruction", "legal", "--attn", "sdpa", "--max-seq-length", "32"]) == 0
    assert "longer than the model's 32 tokens" in capsys.readouterr().err
    dense = json.loads((ix / "manifest.json").read_text())["dense"]
    assert dense["query_prompt"] == qwen3_prompt(QWEN3_INSTRUCTIONS["legal"]) and dense["document_prompt"] == ""
    assert dense["dtype"] == auto_dtype(test_device)
    assert dense["attn"] == "sdpa" and dense["max_seq_length"] == 32 and dense["dim"] == 64
    assert dense["weights_sha256"] == weights_sha256(str(qwen3_dir))
    loaded = HybridRetriever.load(ix, device=test_device)
    enc = loaded.leg["dense"].encoder
    assert enc.query_prompt == dense["query_prompt"] and enc.max_seq_length == 32
    rankings = []
    for backend in ("faiss", "torch"):
        assert main(["query", str(ix), "burns within seven years of marriage", "--json", "-k", "5",
                     "--device", test_device, "--dense-backend", backend]) == 0
        hits = json.loads(capsys.readouterr().out)["hits"]
        assert len(hits) == 5
        rankings.append([(h["id"], h["dense"]["rank"], h["bm25"]["rank"]) for h in hits])
    assert rankings[0] == rankings[1]


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is not None, reason="flash_attn is installed")
def test_qwen3_flash_attention_without_package_is_a_clear_error(qwen3_dir, tiny_docs, tmp_path, capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps(d.__dict__) + "\n" for d in tiny_docs))
    assert main(["build", str(corpus), "--out", str(tmp_path / "ix"), "--model", str(qwen3_dir),
                 "--legs", "dense", "--attn", "flash_attention_2"]) == 2
    assert "flash_attn package" in capsys.readouterr().err
    assert not (tmp_path / "ix").exists()


def test_qwen3_gpu_check_cpu_dry_run(tmp_path):
    out = tmp_path / "gpu_check.json"
    run = subprocess.run(["bash", "scripts/gpu_check.sh", "--cpu", "--no-tests", "--out", str(out),
                          "--model", str(tmp_path / "no-such-model")],
                         env={**os.environ, "PYTHON": sys.executable},
                         capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 1, run.stdout[-1500:] + run.stderr[-1500:]  # the --model step fails: no such folder
    summary = json.loads(out.read_text())
    assert json.loads(run.stdout) == summary  # the summary is printed although a step failed
    steps = summary["steps"]
    assert not summary["ok"] and "error" in steps["model_card"] and steps["tests"] == {"skipped": "--no-tests"}
    assert steps["search"]["ok"] and "exact" in steps["search"]["reference"]
    assert steps["search"]["backends"]["faiss HNSW (cpu, 2000 vectors)"]["backend"] == "faiss"
    shape = steps["qwen3_shape"]
    assert shape["ok"] and shape["token_budget"]["tokens_per_second"] > 0 and shape["min_cosine_bf16_vs_fp32"] > 0.99
    assert "hash_cached_seconds" in shape and steps["matmul"]["tflops"] > 0


def test_qwen3_bench_end_to_end_records_prompt_dtype_hash(qwen3_dir, tmp_path, test_device):
    pytest.importorskip("mteb", reason="bench runs through MTEB (missing on the GPU machine)")
    from test_bench import write_dataset

    out = tmp_path / "b"
    assert main(["bench", "--model", str(qwen3_dir), "--dataset", str(write_dataset(tmp_path / "tiny")),
                 "--out", str(out), "--device", test_device]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["query_prompt"] == qwen3_prompt(QWEN3_INSTRUCTIONS["mteb"])
    assert report["encoder"]["dtype"] == auto_dtype(test_device)
    assert len(report["encoder"]["weights_sha256"]) == 64
    assert set(report["runs"]) == {"dense", "bm25", "hybrid", "default"}
    prior = report["runs"]["default"]["default_fusion"]  # the Qwen3 family's prior: dense leads
    assert prior["family"] == "qwen3-embedding" and prior["fusion"]["weights"] == {"dense": 1.0, "bm25": 0.2}


def test_qwen3_mteb_own_implementation_gives_our_prompt_and_vectors(qwen3_dir, qwen3_encoder):
    mteb = pytest.importorskip("mteb", reason="missing on the GPU machine")
    from mteb.types import PromptType

    from retrieval.evaluation.mteb_reference import mteb_qwen3_model

    enc = qwen3_encoder
    theirs = mteb_qwen3_model(str(qwen3_dir), device=enc.device, dtype="float32", max_seq_length=enc.max_seq_length)
    assert theirs.mteb_model_meta.name == "Qwen/Qwen3-Embedding-0.6B"
    aila = mteb.get_task("AILAStatutes").metadata
    prompt = theirs.get_task_instruction(aila, PromptType.query)
    assert prompt == enc.query_prompt == qwen3_prompt(QWEN3_INSTRUCTIONS["mteb"])
    assert not theirs.get_task_instruction(aila, PromptType.document) and enc.document_prompt == ""
    for mine, (texts, their_prompt) in ((enc.encode_queries(SHORT + [QUERY]), (SHORT + [QUERY], prompt)),
                                        (enc.encode_documents(STATUTE_TEXT, progress=False), (STATUTE_TEXT, ""))):
        vectors = theirs.model.encode(texts, prompt=their_prompt, convert_to_numpy=True)
        cosine = (mine * vectors).sum(axis=1) / np.linalg.norm(vectors, axis=1)
        assert (cosine > 1 - 1e-5).all()


@pytest.mark.parametrize("data", ["tiny", "aila"])
def test_qwen3_bench_parity_with_mteb_own_qwen3(qwen3_dir, tmp_path, data, request):
    pytest.importorskip("mteb", reason="bench runs through MTEB (missing on the GPU machine)")
    from test_bench import write_dataset

    where = (["--aila-dir", str(request.getfixturevalue("aila_dir"))] if data == "aila"
             else ["--dataset", str(write_dataset(tmp_path / "tiny"))])
    out = tmp_path / "b"
    assert main(["bench", "--model", str(qwen3_dir), *where, "--legs", "dense", "--parity", "--device", "cpu",
                 "--max-seq-length", "256", "--out", str(out)]) == 0
    parity = json.loads((out / "report.json").read_text())["parity"]
    assert parity["dense"]["abs_diff"] <= 1e-4 and parity["all_ok"]
    assert parity["dense"]["mteb_model"].startswith("MTEB's Qwen/Qwen3-Embedding-0.6B implementation loaded from")

"""The GPU paths, run on a CPU with GPU detection patched: dense backends (faiss-gpu for flat and IVF only,
copied at the first search, after a test search in a child process), device checks, precision and attention
choices by compute capability, out-of-memory handling, tokenizing once, and the weights hash cache."""

import json
import logging
import sys

import faiss
import numpy as np
import pytest
import torch
from qwen3_tiny import STATUTE_TEXT

from retrieval.cli import main
from retrieval.dense import encoders, gpu
from retrieval.dense.encoders import Encoder, EncoderConfig, query_dtype, weights_sha256
from retrieval.dense.stores import faiss as dense
from retrieval.dense.stores.faiss import FaissStore
from retrieval.dense.tokens import plan_batches
from retrieval.dense.torch_search import TorchExactSearch


def _unit(rng, n, d=16):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def fake_faiss_gpu(monkeypatch):
    """faiss reports one GPU, the test search passes, and 'copying to the GPU' clones the CPU index (recorded)."""
    copies = []

    def to_gpu(resources, device, index):
        copies.append(device)
        return faiss.clone_index(index)

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 2, raising=False)
    monkeypatch.setattr(faiss, "StandardGpuResources", object, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", to_gpu, raising=False)
    monkeypatch.setattr(gpu, "faiss_gpu_problem", lambda device=0: None)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    return copies


def test_gpu_hnsw_stays_on_cpu_when_faiss_reports_a_gpu(fake_faiss_gpu):
    rng = np.random.default_rng(0)
    vecs = _unit(rng, 500)
    index = FaissStore.build(vecs, "hnsw")
    assert index.backend == "faiss"
    index.set_search_params(ef_search=64)
    assert index.index.hnsw.efSearch == 64  # the index actually searched
    _, rows = index.search(vecs[:3], 5)
    assert rows[:, 0].tolist() == [0, 1, 2] and fake_faiss_gpu == []
    with pytest.raises(ValueError, match="flat and IVF"):
        FaissStore.build(vecs, "hnsw", backend="faiss-gpu")


def test_gpu_faiss_copy_is_lazy_on_the_asked_device_with_search_params(fake_faiss_gpu):
    rng = np.random.default_rng(1)
    vecs = _unit(rng, 2000)
    index = FaissStore.build(vecs, "ivf", device="cuda:1")
    assert index.backend == "faiss-gpu" and fake_faiss_gpu == []  # nothing copied at build
    index.set_search_params(nprobe=index.index.nlist)
    _, rows = index.search(vecs[:4], 3)
    assert fake_faiss_gpu == [1] and rows[:, 0].tolist() == [0, 1, 2, 3]
    index.set_search_params(nprobe=2)
    assert index._gpu_index.nprobe == 2 and index.index.nprobe == 2
    index.search(vecs[:1], 3)
    assert fake_faiss_gpu == [1]  # copied once


def test_gpu_probe_failure_warns_and_falls_back(monkeypatch, caplog):
    gpu.faiss_gpu_problem.cache_clear()
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1, raising=False)  # the child process's faiss sees none
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    vecs = _unit(np.random.default_rng(2), 300)
    index = FaissStore.build(vecs, "flat", device="cuda")
    assert index.backend == "faiss-gpu"
    with caplog.at_level(logging.WARNING, logger="retrieval.dense.gpu"):
        scores, rows = index.search(vecs[:5], 4)
    gpu.faiss_gpu_problem.cache_clear()
    assert index.backend == "faiss" and "not using faiss-gpu on cuda:0" in caplog.text
    assert rows[:, 0].tolist() == list(range(5)) and np.allclose(scores[:, 0], 1.0, atol=1e-5)


def test_cuda_torch_backend_chunks_and_fp16_rescoring_match_faiss():
    rng = np.random.default_rng(3)
    vecs = _unit(rng, 3000, 32)
    queries = vecs[:40] + 0.2 * rng.standard_normal((40, 32)).astype(np.float32)
    want_s, want_i = FaissStore.build(vecs, backend="faiss").search(queries, 25)
    for store in ("float32", "float16"):
        search = TorchExactSearch(vecs, "cpu", store, score_bytes=4 * 3000 * 7)  # 7 queries a chunk
        scores, rows = search(queries, 25)
        assert (rows == want_i).all() and np.allclose(scores, want_s, atol=1e-5)
    assert FaissStore.build(vecs, backend="torch-fp16").search(queries, 25)[1].tolist() == want_i.tolist()


def test_cuda_device_that_cannot_be_honoured_is_an_error(tiny_docs, tmp_path, monkeypatch, capsys):
    from retrieval.retriever import HybridRetriever

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    corpus, index = tmp_path / "c.jsonl", tmp_path / "bm25"
    corpus.write_text("".join(json.dumps(d.__dict__) + "\n" for d in tiny_docs))
    HybridRetriever.build(tiny_docs, legs=["bm25"], progress=False).save(index)
    for argv in (["query", str(index), "theft", "--device", "cuda"],
                 ["build", str(corpus), "--out", str(tmp_path / "ix"), "--device", "cuda:1"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "sees no CUDA device" in err[0]
    assert not (tmp_path / "ix").exists()


def test_cuda_auto_dtype_and_flash_attention_by_compute_capability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (7, 5))
    assert encoders.pick_dtype("auto", "cuda") == "float16"  # T4: bf16 only emulated
    assert encoders.pick_dtype("auto", "cpu") == "float32"
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())  # flash_attn "installed"
    assert "8.0" in gpu.flash_attention_problem("cuda", "float16")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (9, 0))
    assert encoders.pick_dtype("auto", "cuda:1") == "bfloat16"
    assert gpu.flash_attention_problem("cuda:1", "bfloat16") is None
    assert "bfloat16 or float16" in gpu.flash_attention_problem("cuda", "float32")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert query_dtype("bfloat16", "cpu") == "float32"  # an index built on a GPU, queried on a CPU
    assert query_dtype("bfloat16", "cuda") == "bfloat16" and query_dtype("float16", "cuda:0") == "float16"
    with pytest.raises(ValueError, match="cuda:0..cuda:0"):
        encoders.pick_device("cuda:1")


def test_gpu_built_index_is_queried_in_fp32_on_a_cpu(qwen3_dir, tiny_docs, tmp_path, capsys):
    from retrieval.retriever import HybridRetriever

    ix = tmp_path / "ix"
    HybridRetriever.build(tiny_docs, encoder=EncoderConfig(model=str(qwen3_dir), device="cpu", dtype="bfloat16"),
                          progress=False).save(ix)
    assert json.loads((ix / "manifest.json").read_text())["dense"]["dtype"] == "bfloat16"
    assert HybridRetriever.load(ix, device="cpu").leg["dense"].encoder.dtype == "float32"
    assert main(["query", str(ix), "theft", "--device", "cpu", "--json"]) == 0
    assert "on cpu, float32" in capsys.readouterr().err


@pytest.mark.parametrize("error", [torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)"),
                                   RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate")])
def test_cuda_oom_halves_the_token_budget_and_replans(qwen3_dir, monkeypatch, caplog, error):
    enc = Encoder(EncoderConfig(model=str(qwen3_dir), device="cpu", dtype="float32", max_tokens_per_batch=400))
    texts = [*STATUTE_TEXT, "dowry death", "theft"]
    want = enc.encode_documents(texts, progress=False)
    lengths = enc.tokenize(texts).cut_lengths
    real, tried, freed = enc._encode_batch, [], []

    def flaky(rows, *args):
        cost = len(rows) * int(lengths[rows].max())
        tried.append((cost, cost > 150 and len(rows) > 1))
        if tried[-1][1]:
            raise error
        return real(rows, *args)

    monkeypatch.setattr(enc, "_encode_batch", flaky)
    monkeypatch.setattr(gpu, "free_cuda_memory", lambda: freed.append(sys.exc_info()[0]))
    with caplog.at_level(logging.WARNING, logger="retrieval.dense.encoders"):
        got = enc.encode_documents(texts, progress=False)
    assert np.allclose(got, want, atol=1e-5)
    failures = [i for i, (_, failed) in enumerate(tried) if failed]
    assert failures and len(freed) == len(failures) and set(freed) == {None}  # freed outside the except block
    assert all(tried[i + 1][0] <= tried[i][0] // 2 for i in failures)  # the next batch fits half the failed one
    assert "halving to" in caplog.text and "tokens per batch" in caplog.text
    monkeypatch.setattr(enc, "_encode_batch", lambda *a: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):  # not an out-of-memory error: raised at once
        enc.encode_documents(["a", "b"], progress=False)


def test_gpu_oom_markers():
    assert gpu.is_oom(torch.cuda.OutOfMemoryError("x"))
    assert gpu.is_oom(RuntimeError("FlashAttention forward: CUDA out of memory. Tried to allocate 2 GiB"))
    assert not gpu.is_oom(RuntimeError("expected scalar type Float")) and not gpu.is_oom(ValueError("out of memory"))


def test_qwen3_tokenized_once_for_plan_encode_and_truncation(qwen3_dir, monkeypatch):
    enc = Encoder(EncoderConfig(model=str(qwen3_dir), device="cpu", dtype="float32", max_seq_length=24))
    enc.encode_documents(["warm up", "the first batch is checked against ST's own input"], progress=False)
    assert enc._own_inputs
    calls = []
    real = encoders.tokenize
    monkeypatch.setattr(encoders, "tokenize", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(enc.model, "encode", lambda *a, **k: pytest.fail("sentence-transformers tokenized again"))
    monkeypatch.setattr(enc.model, "preprocess", lambda *a, **k: pytest.fail("sentence-transformers tokenized again"))
    texts = [*STATUTE_TEXT[:5], "theft"]
    vectors = enc.encode_documents(texts, progress=False)
    assert enc.count_truncated(texts) == 5 and len(enc.plan(texts)) == 1 and calls == [1]
    monkeypatch.undo()
    st = enc.model.encode(texts, prompt="", convert_to_numpy=True)
    assert np.allclose(vectors, st / np.linalg.norm(st, axis=1, keepdims=True), atol=1e-5)


def test_gpu_flash_attention_budget_counts_the_sum_of_lengths():
    lengths = [100, 30, 30, 30, 60]
    assert plan_batches(lengths, 200) == [[0, 4], [1, 2, 3]]  # size x longest (padding counted)
    assert plan_batches(lengths, 200, packed=True) == [[0, 4, 1], [2, 3]]  # packed: sum of lengths


def test_gpu_weights_hash_cached_by_size_and_mtime(qwen3_dir, tmp_path, monkeypatch):
    import os
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(qwen3_dir, folder)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    weights_sha256.cache_clear()
    real = weights_sha256(str(folder))
    cache = tmp_path / "cache" / "retrieval" / encoders.HASH_CACHE
    entries = json.loads(cache.read_text())
    assert entries[str(folder.resolve())]["sha256"] == real
    entries[str(folder.resolve())]["sha256"] = "c" * 64  # a cached value is believed while size and mtime hold
    cache.write_text(json.dumps(entries))
    weights_sha256.cache_clear()
    assert weights_sha256(str(folder)) == "c" * 64
    st = (folder / "model.safetensors").stat()
    os.utime(folder / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    weights_sha256.cache_clear()
    assert weights_sha256(str(folder)) == real
    weights_sha256.cache_clear()


def test_gpu_dense_backend_option_on_every_command(capsys):
    for command in ("build", "query", "serve", "bench", "tune"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert "--dense-backend" in out and all(b in out for b in dense.BACKENDS)


def test_gpu_reported_hnsw_build_then_query_on_cpu(qwen3_dir, tiny_docs, tmp_path, monkeypatch, capsys):
    corpus, ix = tmp_path / "c.jsonl", tmp_path / "ix"
    corpus.write_text("".join(json.dumps(d.__dict__) + "\n" for d in tiny_docs))
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", lambda *a: pytest.fail("HNSW copied to a GPU"), raising=False)
    assert main(["build", str(corpus), "--out", str(ix), "--dense-index", "hnsw", "--model", str(qwen3_dir),
                 "--device", "cpu"]) == 0
    assert main(["query", str(ix), "dowry death", "--json", "--mode", "dense", "-k", "5", "--device", "cpu"]) == 0
    out = capsys.readouterr()
    assert len(json.loads(out.out)["hits"]) == 5 and "dense search: faiss" in out.err
    assert json.loads((ix / "manifest.json").read_text())["dense"]["index"] == "hnsw"

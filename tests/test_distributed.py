"""Distributed encoding: a process per device (--devices) and Ray Data actors (--ray) give one process's vectors;
Ray's shards let a killed encoding resume; unusable devices, a missing Ray and a model missing on a node are
one-line errors."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from retrieval.cli import main
from retrieval.dense import ray_encode
from retrieval.dense.devices import attach, parse_devices
from retrieval.dense.encoders import Encoder, EncoderConfig, resolve_model
from retrieval.dense.shards import Shards, plan_blocks


@pytest.fixture(scope="module")
def texts(tiny_docs) -> list[str]:
    """Texts of many lengths (so batches and blocks differ), a repeat among them."""
    words = " ".join(d.text for d in tiny_docs).split()
    return [" ".join(words[i:i + 3 + 7 * (i % 9)]) for i in range(30)] + [tiny_docs[0].text]


def _fresh(encoder: Encoder) -> Encoder:
    """The same loaded model with its own (unrouted) document encoding, so each test routes it anew."""
    encoder.__dict__.pop("encode_documents", None)
    return encoder


def test_blocks_are_whole_batches_of_the_one_process_plan(small_batches, texts):
    plan = small_batches.plan(texts)
    blocks = plan_blocks(small_batches, texts, "", workers=2)
    assert len(blocks) > 2
    assert np.concatenate(blocks).tolist() == [i for batch in plan for i in batch]
    ends = set(np.cumsum([len(b) for b in plan]).tolist())
    assert set(np.cumsum([len(b) for b in blocks]).tolist()) <= ends  # each block ends where a batch ends


def test_two_cpu_processes_give_the_vectors_of_one_process_in_input_order(small_batches, texts):
    one = _fresh(small_batches).encode_documents(texts, progress=False)
    pool = attach(small_batches, ["cpu", "cpu"])
    try:
        two = small_batches.encode_documents(texts, progress=False)
    finally:
        pool.finish()
        _fresh(small_batches)
    assert two.shape == one.shape
    assert np.abs(two - one).max() < 1e-6


def test_ray_with_two_cpu_workers_gives_the_vectors_of_one_process(local_ray, small_batches, texts, tmp_path):
    one = _fresh(small_batches).encode_documents(texts, progress=False)
    routed = ray_encode.attach(small_batches, None, tmp_path / "shards")
    try:
        vectors = small_batches.encode_documents(texts, progress=False)
    finally:
        _fresh(small_batches)
    assert np.abs(vectors - one).max() < 1e-6
    assert routed.encoded == len(set(texts))  # the repeated text is encoded once
    assert len(list((tmp_path / "shards").glob("*.npz"))) > 2  # one shard per block


def test_a_ray_encoding_killed_after_two_shards_resumes_encoding_only_the_rest(local_ray, small_batches, texts,
                                                                              tmp_path, monkeypatch):
    one = _fresh(small_batches).encode_documents(texts, progress=False)
    write, written = Shards.write, []

    def write_then_die(self, keys, vectors):
        if len(written) == 2:
            raise KeyboardInterrupt  # as a kill after two finished blocks
        write(self, keys, vectors)
        written.append(len(keys))

    monkeypatch.setattr(Shards, "write", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        ray_encode.RayEncoder(small_batches, None, tmp_path / "shards").encode(texts)
    monkeypatch.setattr(Shards, "write", write)
    again = ray_encode.RayEncoder(small_batches, None, tmp_path / "shards")
    vectors = again.encode(texts)
    assert again.encoded == len(set(texts)) - sum(written) > 0
    assert np.abs(vectors - one).max() < 1e-6
    again.finish()
    assert not (tmp_path / "shards").exists()  # the shards go once the index that used them is saved


def test_a_ray_actor_that_dies_on_its_first_block_is_restarted_and_its_block_retried(local_ray, small_batches, texts,
                                                                                     tmp_path, monkeypatch):
    one = _fresh(small_batches).encode_documents(texts, progress=False)
    died = tmp_path / "died"

    class DiesOnItsFirstBlock(ray_encode._Actor):  # defined here: Ray ships it to the workers by value
        def __call__(self, batch: dict) -> dict:
            if not died.exists():
                died.touch()
                os._exit(1)  # the worker process is gone, as when a node is lost or the process killed
            return super().__call__(batch)

    monkeypatch.setattr(ray_encode, "_Actor", DiesOnItsFirstBlock)
    routed = ray_encode.RayEncoder(small_batches, None, tmp_path / "shards")
    vectors = routed.encode(texts)
    assert died.exists()  # an actor did die mid-encoding
    assert np.abs(vectors - one).max() < 1e-6
    assert routed.encoded == len(set(texts))


def test_a_ray_worker_that_cannot_load_the_model_names_the_node_and_the_path(local_ray, tmp_path, texts):
    folder = tmp_path / "model"
    shutil.copytree(resolve_model(None), folder)
    encoder = Encoder(EncoderConfig(model=str(folder), device="cpu"))
    shutil.rmtree(folder)  # as a folder missing on the worker's node
    with pytest.raises(ValueError) as e:
        ray_encode.RayEncoder(encoder, None, tmp_path / "shards").encode(texts)
    message = str(e.value)
    assert "Ray worker on node " in message and str(folder) in message and "\n" not in message
    assert not (tmp_path / "shards").exists()  # nothing written


def test_build_with_ray_and_update_with_two_devices_rank_as_plain_ones(local_ray, tmp_path, tiny_docs, capsys):
    from retrieval.retriever import HybridRetriever

    corpus = tmp_path / "v1.jsonl"
    corpus.write_text("".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n"
                              for d in tiny_docs[:4]), encoding="utf-8")
    assert main(["build", str(corpus), "--out", str(tmp_path / "plain"), "--legs", "dense"]) == 0
    assert main(["build", str(corpus), "--out", str(tmp_path / "ray"), "--legs", "dense", "--ray"]) == 0
    assert not (tmp_path / "ray.shards").exists()
    corpus.write_text(corpus.read_text(encoding="utf-8") + json.dumps({"id": "S5", "text": tiny_docs[4].text}) + "\n",
                      encoding="utf-8")
    for ix, more in (("plain", []), ("ray", ["--devices", "cpu,cpu"])):
        assert main(["update", str(tmp_path / ix), str(corpus), *more]) == 0
        assert "encoded 1 texts" in capsys.readouterr().err
    plain, spread = (HybridRetriever.load(tmp_path / ix) for ix in ("plain", "ray"))
    for query in ("dowry death of a woman", "taking property dishonestly", "deceiving a person"):
        assert [h.id for h in plain.search(query, k=5, mode="dense")] == [h.id for h in spread.search(query, k=5,
                                                                                                    mode="dense")]


def test_ray_not_installed_says_how_to_install_it(tmp_path, tiny_docs, monkeypatch, capsys):
    import importlib.util

    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find(name, *a))
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"id": "S1", "text": tiny_docs[0].text}) + "\n", encoding="utf-8")
    assert main(["build", str(corpus), "--out", str(tmp_path / "ix"), "--ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install '.[ray]'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "ix").exists()


@pytest.mark.parametrize("value", ["gpu0", "cuda:x", " , "])
def test_devices_that_are_no_devices_are_one_line_errors(value):
    with pytest.raises(ValueError, match="--device"):
        parse_devices(value)


def test_devices_lists_cpu_workers_as_given():
    assert parse_devices("cpu, cpu") == ["cpu", "cpu"]


def _count_routed(monkeypatch) -> list[int]:
    """The number of texts each call sends to the --devices pool (the workers run in their own processes)."""
    from retrieval.dense.devices import DevicePool

    sent: list[int] = []
    encode = DevicePool.encode
    monkeypatch.setattr(DevicePool, "encode",
                        lambda self, texts, progress=True: sent.append(len(texts)) or encode(self, texts, progress))
    return sent


def test_bench_and_tune_on_two_cpu_processes_give_the_figures_of_a_plain_run(tmp_path, monkeypatch):
    from test_bench import write_dataset

    data = write_dataset(tmp_path / "tiny")
    sent = _count_routed(monkeypatch)
    for way, more in (("plain", []), ("two", ["--devices", "cpu,cpu"])):
        assert main(["bench", "--dataset", str(data), "--out", str(tmp_path / f"bench-{way}"), *more]) == 0
        assert main(["tune", "--dataset", str(data), "--out", str(tmp_path / f"tune-{way}"), "--folds", "3",
                     "--no-chunking", *more]) == 0
        assert (sum(sent) > 0) == bool(more)
    plain, two = (json.loads((tmp_path / f"bench-{w}" / "report.json").read_text()) for w in ("plain", "two"))
    assert plain["runs"].keys() == two["runs"].keys()
    for run, scores in plain["runs"].items():
        for metric, value in scores.items():
            if isinstance(value, float) and metric != "seconds":
                assert abs(two["runs"][run][metric] - value) <= 1e-6, (run, metric)
    assert plain["runs"]["dense"]["ndcg_at_10"] > 0
    plain, two = (json.loads((tmp_path / f"tune-{w}" / "tune.json").read_text()) for w in ("plain", "two"))
    assert abs(plain["out_of_fold"]["ndcg_at_10"] - two["out_of_fold"]["ndcg_at_10"]) <= 1e-6
    assert plain["chosen"]["label"] == two["chosen"]["label"]
    assert (tmp_path / "tune-plain" / "fusion.json").read_text() == (tmp_path / "tune-two" / "fusion.json").read_text()


def test_build_and_bench_with_cache_on_two_cpu_processes_fill_and_then_use_the_embedding_cache(tmp_path, monkeypatch,
                                                                                               tiny_docs):
    from test_bench import write_dataset

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n" for d in tiny_docs))
    data = write_dataset(tmp_path / "tiny")
    sent = _count_routed(monkeypatch)
    for command in (["build", str(corpus), "--legs", "dense"], ["bench", "--dataset", str(data)]):
        args = [*command, "--cache", str(tmp_path / command[0]), "--devices", "cpu,cpu"]
        assert main([*args, "--out", str(tmp_path / f"{command[0]}-1")]) == 0
        assert sum(sent) > 0 and list((tmp_path / command[0]).glob("*.vectors.npy"))
        sent.clear()
        assert main([*args, "--out", str(tmp_path / f"{command[0]}-2")]) == 0
        assert sum(sent) == 0  # every document vector came from the cache, none from the workers

"""An untuned index's fusion follows a declared prior on the stronger leg: Qwen3-Embedding dense-led, MiniLM BM25-led."""

from __future__ import annotations

import json

from retrieval.cli import main
from retrieval.defaults import DEFAULT_FUSION, MINILM, QWEN3, UNKNOWN, fusion_prior

DENSE_LED = {"dense": 1.0, "bm25": 0.2}


def test_the_tiny_qwen3_model_is_the_qwen3_family_by_its_config_and_gets_the_dense_led_preset(qwen3_dir, tmp_path):
    neutral = tmp_path / "model"  # a name that says nothing: the family is read from config.json
    neutral.symlink_to(qwen3_dir, target_is_directory=True)
    for model in (str(qwen3_dir), str(neutral), "Qwen/Qwen3-Embedding-0.6B"):
        prior = fusion_prior(model)
        assert prior.family == QWEN3 and prior.fusion.method == "rsf" and prior.fusion.weights == DENSE_LED
        assert "not measured here" in prior.reason and "tune replaces it" in prior.reason


def test_minilm_and_a_model_without_a_prior_get_the_measured_bm25_led_preset(tmp_path):
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert fusion_prior(None).family == fusion_prior("all-MiniLM-L6-v2").family == MINILM
    assert fusion_prior(str(other)).family == UNKNOWN
    for model in (None, str(other)):
        assert fusion_prior(model).fusion == DEFAULT_FUSION and DEFAULT_FUSION.weights == {"dense": 0.2, "bm25": 1.0}


def test_a_qwen3_build_stores_the_dense_led_fusion_with_its_reason_and_says_it(qwen3_dir, tiny_docs, tmp_path,
                                                                               capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps(d.__dict__) + "\n" for d in tiny_docs))
    assert main(["build", str(corpus), "--out", str(tmp_path / "ix"), "--model", str(qwen3_dir),
                 "--device", "cpu"]) == 0
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("indexed"))
    assert "fusion rsf dense 1.0 / bm25 0.2 (qwen3-embedding: dense leads, a prior" in line
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["fusion"]["method"] == "rsf" and manifest["fusion"]["weights"] == DENSE_LED
    assert manifest["default_fusion"]["family"] == QWEN3 and "0.790" in manifest["default_fusion"]["reason"]
    tuned = tmp_path / "fusion.json"
    tuned.write_text(json.dumps({"fusion": {"method": "rrf", "k": 10, "weights": {"dense": 1.0, "bm25": 2.0}}}))
    assert main(["build", str(corpus), "--out", str(tmp_path / "tuned"), "--model", str(qwen3_dir),
                 "--device", "cpu", "--fusion-config", str(tuned)]) == 0
    assert "fusion rsf" not in capsys.readouterr().err
    manifest = json.loads((tmp_path / "tuned" / "manifest.json").read_text())
    assert "default_fusion" not in manifest and manifest["fusion"]["weights"] == {"dense": 1.0, "bm25": 2.0}


def test_a_minilm_build_records_the_measured_preset_as_its_default_fusion(tiny_docs, tmp_path, capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps(d.__dict__) + "\n" for d in tiny_docs))
    assert main(["build", str(corpus), "--out", str(tmp_path / "ix"), "--device", "cpu"]) == 0
    assert "fusion rsf dense 0.2 / bm25 1.0 (all-minilm-l6-v2: bm25 leads, measured)" in capsys.readouterr().err
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["default_fusion"]["family"] == MINILM and manifest["fusion"]["weights"] == DEFAULT_FUSION.weights

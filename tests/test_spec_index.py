"""The spec an index records: read back from its manifest (IndexSpec.of_index), it equals the spec that built it,
and `update` makes its encoder from it (spec.make_encoder, routed as --devices asks)."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from retrieval.cli import main
from retrieval.corpus import Document
from retrieval.dense.chunking import ChunkSettings
from retrieval.dense.encoders import DEFAULT_MODEL, EncoderConfig
from retrieval.distributed_cli import Spread
from retrieval.lexical.analysis import AnalyzerSettings
from retrieval.retriever import HybridRetriever
from retrieval.settings import Bm25Params, FusionConfig
from retrieval.spec import IndexSpec

ANALYSIS = {k: v for k, v in AnalyzerSettings(stopwords=None, title="field", title_weight=0.5).to_dict().items()
            if k not in ("language", "user_dict")}  # every option, as an index records them resolved
SPEC = IndexSpec(encoder=EncoderConfig(model=DEFAULT_MODEL, dtype="float32", batch_size=16, query_prompt="",
                                       max_seq_length=128),
                 fusion=FusionConfig(method="rrf", k=30, weights={"dense": 0.7, "bm25": 1.3}, depth=50),
                 chunking=ChunkSettings(documents=True, window=32, overlap=8, title_weight=0.2),
                 bm25=Bm25Params(k1=1.2, b=0.6, query_window=16), language="en", analysis=ANALYSIS, dense_kind="flat")


def test_the_spec_read_back_from_a_built_index_equals_the_spec_that_built_it(tiny_docs, tmp_path):
    texts = [d.indexed_text() for d in tiny_docs]
    built = HybridRetriever.build(tiny_docs, **SPEC.build_kwargs(analysis=SPEC.analysis_for(texts), progress=False))
    built.save(tmp_path / "ix")
    back = IndexSpec.of_index(tmp_path / "ix")
    settings = [f.name for f in fields(IndexSpec) if f.compare]
    assert {name: getattr(back, name) for name in settings} == {name: getattr(SPEC, name) for name in settings}
    assert back == SPEC


def test_the_spec_of_a_bm25_only_index_names_its_one_leg_and_no_model(tiny_docs, tmp_path):
    HybridRetriever.build(tiny_docs, legs=["bm25"], bm25=Bm25Params(k1=0.9, b=0.4), progress=False).save(tmp_path / "ix")
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text(encoding="utf-8"))
    spec = IndexSpec.of_index(manifest)
    assert spec.legs == ("bm25",) and not spec.dense and spec.make_encoder() is None
    assert spec.bm25 == Bm25Params(k1=0.9, b=0.4) and spec.language == "en"


@pytest.fixture
def made(monkeypatch) -> tuple[list, list]:
    """Each spec.make_encoder call's (routed?, model, encoder), and the encoders routed (no device processes)."""
    calls, routed = [], []
    make = IndexSpec.make_encoder

    def recorded(spec, memo=False):
        calls.append((spec.route is not None, spec.encoder.model, make(spec, memo)))
        return calls[-1][2]

    monkeypatch.setattr(IndexSpec, "make_encoder", recorded)
    monkeypatch.setattr(Spread, "route", lambda self, encoder: routed.append(encoder))
    return calls, routed


def _write(corpus, docs) -> None:
    corpus.write_text("".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n" for d in docs),
                      encoding="utf-8")


def test_build_with_two_devices_makes_its_encoder_through_the_routed_spec(tiny_docs, tmp_path, made):
    _write(tmp_path / "c.jsonl", tiny_docs)
    assert main(["build", str(tmp_path / "c.jsonl"), "--out", str(tmp_path / "ix"), "--devices", "cpu,cpu"]) == 0
    calls, routed = made
    assert [(r, model) for r, model, _ in calls] == [(True, None)] and routed == [calls[0][2]]
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["build"]["model_load_seconds"] > 0.01  # the model's load, though the leg was given it loaded


def test_update_with_two_devices_makes_its_encoder_through_the_routed_spec(tiny_docs, tmp_path, made, capsys):
    corpus = tmp_path / "c.jsonl"
    _write(corpus, tiny_docs[:4])
    assert main(["build", str(corpus), "--out", str(tmp_path / "ix"), "--legs", "dense", "--device", "cpu"]) == 0
    _write(corpus, [*tiny_docs[:4], Document("S9", "", "Whoever voluntarily causes hurt shall be punished.")])
    calls, routed = made
    calls.clear()
    capsys.readouterr()
    assert main(["update", str(tmp_path / "ix"), str(corpus), "--devices", "cpu,cpu"]) == 0
    assert "encoded 1 texts" in capsys.readouterr().err
    assert [(r, model) for r, model, _ in calls] == [(True, DEFAULT_MODEL)] and routed == [calls[0][2]]


def test_an_encoder_handed_to_a_loaded_index_is_checked_against_the_build(tiny_index, qwen3_encoder):
    from retrieval.index.format import IndexFileError

    leg = HybridRetriever.load(tiny_index, encoder=lambda: qwen3_encoder).leg["dense"]
    with pytest.raises(IndexFileError, match="model mismatch"):
        leg.encoder  # noqa: B018 - made (and checked) on first use

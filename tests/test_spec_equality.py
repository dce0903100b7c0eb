"""One IndexSpec, three commands: build, bench and tune index with the same encoder, chunking, BM25 analysis and
fusion (each leg's own record of what it was built with is compared)."""

from __future__ import annotations

import json

from test_bench import write_dataset

from retrieval.cli import main
from retrieval.legs.dense import DenseLeg
from retrieval.legs.lexical import Bm25Leg

SPEC_FLAGS = ["--language", "en", "--stopwords", "none", "--title", "none"]
SETTINGS = {"fusion": {"method": "rrf", "k": 30, "weights": {"dense": 0.7, "bm25": 1.3}},
            "bm25": {"k1": 1.2, "b": 0.6}}


def _recording(monkeypatch) -> dict[str, list]:
    """Each leg build's settings as the built leg holds them, by leg name, in build order."""
    seen: dict[str, list] = {"dense": [], "bm25": []}

    def wrap(cls, record):
        build = cls.build.__func__

        def recorded(kind, documents, options, order):
            leg = build(kind, documents, options, order)
            seen[cls.name].append(record(leg))
            return leg

        monkeypatch.setattr(cls, "build", classmethod(recorded))

    wrap(DenseLeg, lambda leg: (leg.model_info["model"], leg.model_info.get("query_prompt"), leg.chunking.to_dict()))
    wrap(Bm25Leg, lambda leg: (leg.analyzer.settings.to_dict(), {k: leg.index.params[k] for k in ("k1", "b")}))
    return seen


def test_build_bench_and_tune_given_one_spec_index_with_the_same_settings(tmp_path, monkeypatch):
    data = write_dataset(tmp_path / "tiny")
    settings = tmp_path / "fusion.json"
    settings.write_text(json.dumps(SETTINGS))
    seen = _recording(monkeypatch)
    assert main(["build", str(data / "corpus.jsonl"), "--out", str(tmp_path / "ix"), *SPEC_FLAGS,
                 "--fusion-config", str(settings)]) == 0
    built = {name: list(records) for name, records in seen.items()}
    assert main(["bench", "--dataset", str(data), "--out", str(tmp_path / "b"), *SPEC_FLAGS,
                 "--fusion-config", str(settings)]) == 0
    benched = {name: records[len(built[name]):] for name, records in seen.items()}
    assert main(["tune", "--dataset", str(data), "--out", str(tmp_path / "t"), "--folds", "3", *SPEC_FLAGS]) == 0
    tuned = {name: records[len(built[name]) + len(benched[name]):] for name, records in seen.items()}

    (dense,), (bm25,) = built["dense"], built["bm25"]
    assert bm25[1] == {"k1": 1.2, "b": 0.6} and bm25[0]["stopwords"] is None and bm25[0]["title"] == "none"
    for run in (benched, tuned):  # one encoder and one BM25 analysis in every index each command builds
        assert run["dense"] and {(model, prompt) for model, prompt, _ in run["dense"]} == {dense[:2]}
        assert run["bm25"] and {json.dumps(analysis, sort_keys=True) for analysis, _ in run["bm25"]} == {
            json.dumps(bm25[0], sort_keys=True)}
    assert dense in benched["dense"] and bm25 in benched["bm25"]  # bench's tuned run: the same chunking and k1/b
    assert dense[2] in [chunking for _, _, chunking in tuned["dense"]]  # tune's grid holds the spec's chunking
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    fusion = {**SETTINGS["fusion"], "depth": None}
    assert manifest["fusion"] == fusion == report["runs"]["tuned"]["settings"]["fusion"]

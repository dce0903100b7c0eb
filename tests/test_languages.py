"""The corpus's and the model's languages, and the default mode they give (issue 30)."""

from __future__ import annotations

import json

import pytest

from retrieval.cli import main
from retrieval.languages import identify, model_languages, parse_languages, plan, sample_texts

ZH = ["依法成立的合同，受法律保护。当事人应当按照约定全面履行自己的义务。",
      "故意杀人的，处死刑、无期徒刑或者十年以上有期徒刑；情节较轻的，处三年以上十年以下有期徒刑。",
      "诈骗公私财物，数额较大的，处三年以下有期徒刑、拘役或者管制，并处或者单处罚金。",
      "有经营能力的公民，依照本法规定经工商行政管理部门登记，从事工商业经营的，为个体工商户。"]
EN = ["Whoever commits theft shall be punished with imprisonment for a term which may extend to three years.",
      "Whoever causes death by doing an act with the intention of causing death commits culpable homicide."]
DE = ["Der Vermieter hat dem Mieter die Mietsache in einem zum vertragsgemäßen Gebrauch geeigneten Zustand zu überlassen."]
MINILM = {"languages": ["en"], "source": "card"}


def test_identification_names_the_main_language_and_says_when_a_sample_is_too_short_or_mixed():
    assert identify(ZH * 5)["main"] == "zh" and identify(EN * 5)["main"] == "en" and identify(DE)["main"] == "de"
    short = identify(["第一条", "s. 2", "Art. 3"])
    assert short["main"] is None and short["unidentified"] == "too short or unclear"
    mixed = identify(ZH[:2] + EN + DE * 2)
    assert mixed["main"] is None and mixed["unidentified"] == "mixed" and mixed["shares"]["zh"] == pytest.approx(1 / 3, abs=1e-3)
    assert sample_texts(map(str, range(1000)), 10) == sample_texts(map(str, range(1000)), 10)  # fixed seed
    assert len(set(sample_texts(map(str, range(1000)), 10))) == 10


def test_model_languages_come_from_the_card_the_qwen3_family_or_the_user(tmp_path):
    assert model_languages(None) ["languages"] == ["en"]  # the bundled MiniLM's card
    (tmp_path / "qwen").mkdir()
    (tmp_path / "qwen" / "config.json").write_text(json.dumps({"model_type": "qwen3"}))
    assert model_languages(str(tmp_path / "qwen"))["languages"] == ["multilingual"]
    (tmp_path / "bare").mkdir()
    bare = model_languages(str(tmp_path / "bare"))
    assert bare["languages"] == [] and "--model-languages" in bare["source"]
    (tmp_path / "card").mkdir()
    (tmp_path / "card" / "README.md").write_text("---\nlanguage:\n- de\n- fr\n---\n# a model\n")
    assert model_languages(str(tmp_path / "card"))["languages"] == ["de", "fr"]
    assert model_languages(str(tmp_path / "bare"), "en,DE")["languages"] == ["en", "de"]
    with pytest.raises(ValueError, match="'english' is not a language code"):
        parse_languages("english")


def test_a_model_that_cannot_read_the_corpus_gives_bm25_and_a_mixed_corpus_keeps_hybrid():
    zh = identify(ZH * 5)
    alone = plan(zh, MINILM, ("dense", "bm25"), False, "m")
    assert alone.legs == ("bm25",) and alone.default_mode == "bm25" and "\n" not in alone.note
    assert "zh" in alone.note and "reads en" in alone.note and "--legs dense,bm25" in alone.note
    asked = plan(zh, MINILM, ("dense", "bm25"), True, "m")
    assert asked.legs == ("dense", "bm25") and asked.default_mode == "bm25" and "--mode hybrid" in asked.note
    mixed = plan(identify(ZH * 3 + EN), MINILM, ("dense", "bm25"), False, "m")
    assert mixed.default_mode == "hybrid" and mixed.legs == ("dense", "bm25") and "14% of the sample" in mixed.note
    assert plan(identify(EN * 3), MINILM, ("dense", "bm25"), False, "m") == plan(identify(EN), MINILM, ("dense", "bm25"),
                                                                                  False, "m")
    assert plan(identify(EN), MINILM, ("dense", "bm25"), False, "m").note is None
    unknown = plan(zh, {"languages": [], "source": "no card; use --model-languages"}, ("dense", "bm25"), False, "m")
    assert unknown.default_mode == "hybrid" and "--model-languages" in unknown.note
    short = plan(identify(["第一条", "s. 2"]), MINILM, ("dense", "bm25"), False, "m")
    assert short.default_mode == "hybrid" and "too short" in short.note


def test_build_of_chinese_statutes_with_the_english_model_names_the_mismatch_and_queries_bm25(tmp_path, capsys):
    corpus = tmp_path / "zh.jsonl"
    corpus.write_text("".join(json.dumps({"id": str(i), "title": "", "text": t}) + "\n" for i, t in enumerate(ZH)),
                      encoding="utf-8")
    assert main(["build", str(corpus), "--out", str(tmp_path / "ix")]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "language:" in line]
    assert len(lines) == 1 and "zh" in lines[0] and "en" in lines[0]
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["legs"] == ["bm25"] and manifest["languages"]["default_mode"] == "bm25"
    assert manifest["languages"]["corpus"]["main"] == "zh" and manifest["languages"]["model"]["languages"] == ["en"]
    assert main(["query", str(tmp_path / "ix"), "个体工商户", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "bm25"


def test_explicit_legs_build_both_but_hybrid_says_why_it_is_not_the_default(tmp_path, capsys):
    corpus = tmp_path / "zh.jsonl"
    corpus.write_text("".join(json.dumps({"id": str(i), "title": "", "text": t}) + "\n" for i, t in enumerate(ZH)),
                      encoding="utf-8")
    assert main(["build", str(corpus), "--out", str(tmp_path / "ix"), "--legs", "dense,bm25", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["query", str(tmp_path / "ix"), "个体工商户", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "bm25"
    assert main(["query", str(tmp_path / "ix"), "个体工商户", "--json", "--mode", "hybrid"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["mode"] == "hybrid"
    assert len([line for line in err.splitlines() if "not this index's default" in line]) == 1


def test_an_english_build_stores_the_default_fusion_and_a_bad_language_code_exits_2(tmp_path, capsys):
    corpus = tmp_path / "en.jsonl"
    corpus.write_text("".join(json.dumps({"id": str(i), "title": "", "text": t}) + "\n" for i, t in enumerate(EN)))
    assert main(["build", str(corpus), "--out", str(tmp_path / "bad"), "--model-languages", "english"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'english' is not a language code" in err and not (tmp_path / "bad").exists()
    assert main(["build", str(corpus), "--out", str(tmp_path / "ix"), "--device", "cpu"]) == 0
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["fusion"]["method"] == "rsf" and manifest["fusion"]["weights"] == {"dense": 0.2, "bm25": 1.0}
    assert manifest["languages"]["default_mode"] == "hybrid" and manifest["legs"] == ["dense", "bm25"]


def test_health_and_a_search_without_mode_give_the_index_default_mode(tmp_path, capsys):
    from fastapi.testclient import TestClient

    from retrieval.retriever import HybridRetriever
    from retrieval.web.app import create_app

    corpus = tmp_path / "zh.jsonl"
    corpus.write_text("".join(json.dumps({"id": str(i), "title": "", "text": t}) + "\n" for i, t in enumerate(ZH)),
                      encoding="utf-8")
    assert main(["build", str(corpus), "--out", str(tmp_path / "ix"), "--legs", "dense,bm25", "--device", "cpu"]) == 0
    client = TestClient(create_app({"zh": HybridRetriever.load(tmp_path / "ix", device="cpu")}))
    index = client.get("/api/health").json()["indexes"][0]
    assert index["default_mode"] == "bm25" and index["modes"] == ["hybrid", "dense", "bm25"]
    assert index["languages"]["corpus"]["main"] == "zh" and index["languages"]["model"]["languages"] == ["en"]
    assert client.get("/api/search", params={"q": "个体工商户"}).json()["mode"] == "bm25"
    assert client.post("/api/search", json={"q": "个体工商户"}).json()["mode"] == "bm25"
    assert client.get("/api/search", params={"q": "个体工商户", "mode": "hybrid"}).json()["mode"] == "hybrid"

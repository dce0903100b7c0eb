"""Chinese statutes: segmentation modes, article numbers, law names, user words, title modes, CLI, STARD."""

import json

import pytest

from retrieval.cli import main
from retrieval.corpus import Document
from retrieval.lexical import chinese
from retrieval.lexical.analysis import USER_DICT, Analyzer, AnalyzerSettings
from retrieval.retriever import HybridRetriever

ZH = [
    Document("2", "中华人民共和国民法典第四百六十五条",
             "依法成立的合同，受法律保护。依法成立的合同，仅对当事人具有法律约束力，但是法律另有规定的除外。"),
    Document("3", "中华人民共和国民法典第四百六十六条",
             "当事人对合同条款的理解有争议的，应当依据本法第一百四十二条第一款的规定，确定争议条款的含义。"),
    Document("lrb-1", "劳动合同法第十条", "建立劳动关系，应当订立书面劳动合同。"),
    Document("lrb-2", "劳动合同法第八十二条",
             "用人单位自用工之日起超过一个月不满一年未与劳动者订立书面劳动合同的，应当向劳动者每月支付二倍的工资。"),
    Document("lrb-3", "促进个体工商户发展条例第二条",
             "有经营能力的公民在中华人民共和国境内从事工商业经营，依法登记为个体工商户的，适用本条例。"),
    Document("lrb-4", "道路交通安全法第二十二条",
             "机动车驾驶人应当遵守道路交通安全法律、法规的规定，按照操作规范安全驾驶、文明驾驶。"),
    Document("lrb-5", "数据安全法第三条", "本法所称数据（data），是指任何以电子或者其他方式对信息的记录 (records)。"),
]


def zh(**overrides) -> AnalyzerSettings:
    return AnalyzerSettings.for_language("zh", **overrides)


def test_segmentation_modes():
    text = "中华人民共和国民法典保护合同"
    accurate = Analyzer(zh(zh_mode="accurate"))(text)
    search = Analyzer(zh(zh_mode="search"))(text)
    assert "中华人民共和国" in accurate and "合同" in accurate and "中华" not in accurate
    assert {"中华", "共和国", "中华人民共和国", "合同"} <= set(search)
    assert Analyzer(zh(zh_mode="char", stopwords=None))("保护合同") == ["保", "护", "合", "同"]
    assert Analyzer(zh(zh_mode="ngram", stopwords=None))("保护合同") == ["保", "护", "合", "同", "保护", "护合", "合同"]
    assert "同" not in Analyzer(zh(zh_mode="ngram"))("保护合同")  # a stopword (the default list) goes, its bigrams stay


@pytest.mark.parametrize("numeral, value", [("465", 465), ("四百六十五", 465), ("一千二百六十", 1260), ("十", 10),
                                            ("十二", 12), ("一百零五", 105), ("两万零三", 20003), ("１２", 12)])
def test_cn_number(numeral, value):
    assert chinese.cn_number(numeral) == value


@pytest.mark.parametrize("mode", ["accurate", "search", "char", "ngram"])
def test_article_numbers_one_token_both_ways(mode):
    a = Analyzer(zh(zh_mode=mode, article_numbers=True))
    assert a("民法典第465条") == a("民法典第四百六十五条") == a("民法典 第 465 条") == a("民法典465条")
    assert "第465条" in a("民法典第四百六十五条")
    assert "第133条之1" in a("刑法第一百三十三条之一")
    plain = Analyzer(zh(zh_mode=mode, article_numbers=False))
    assert plain("民法典第465条") != plain("民法典第四百六十五条")


def test_law_names_from_titles():
    assert chinese.law_name("中华人民共和国民法典第四百六十五条") == "中华人民共和国民法典"
    assert chinese.law_name("刑法第一百三十三条之一") == "刑法"
    assert chinese.law_name("一个没有条号的标题") is None
    titles = [d.title for d in ZH] + ["最高人民法院关于审理民间借贷案件适用法律若干问题的规定第一条"]
    assert chinese.law_names(titles) == ["促进个体工商户发展条例", "劳动合同法", "数据安全法", "民法典", "道路交通安全法"]


def test_user_dictionary_effect_and_isolation(tmp_path):
    plain = Analyzer(zh(zh_mode="accurate"))
    assert "劳动合同法" not in plain("劳动合同法规定")
    words = tmp_path / "dict.txt"
    words.write_text("# legal terms\n劳动合同法 100 nz\n\n", encoding="utf-8")
    assert chinese.read_user_dict(words) == ["劳动合同法"]
    assert "劳动合同法" in Analyzer(zh(zh_mode="accurate"), chinese.read_user_dict(words))("劳动合同法规定")
    assert "劳动合同法" not in plain("劳动合同法规定")  # one analyzer's words do not leak into another
    from_titles = Analyzer.for_documents(zh(zh_mode="search", law_names=True), ZH)
    assert "劳动合同法" in from_titles("劳动合同法规定") and from_titles.settings.user_dict == USER_DICT
    with pytest.raises(ValueError, match="jieba mode"):
        Analyzer(zh(zh_mode="ngram"), ["劳动合同法"])


def test_jieba_cache_in_user_cache_folder(tmp_path):
    import os
    import subprocess
    import sys

    code = "from retrieval.lexical.analysis import *; Analyzer(AnalyzerSettings.for_language('zh', zh_mode='accurate'))('合同')"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    assert (tmp_path / "retrieval" / "jieba.cache").stat().st_size > 1_000_000


def test_mixed_chinese_english():
    tokens = Analyzer(zh(zh_mode="accurate", stopwords="legal"))("The WTO规则适用于Apps running在中国")
    assert {"wto", "app", "run", "规则"} <= set(tokens) and "the" not in tokens
    assert "wto" in Analyzer(zh())("ＷＴＯ规则")  # full-width letters are folded (NFKC)


def test_legal_stopwords_keep_legal_words():
    legal, generic = chinese.stopwords("legal", "zh"), chinese.stopwords("bm25s", "zh")
    assert {"个人", "行为", "严重", "共同", "他人"} <= generic - legal
    assert {"请问", "怎么办", "吗", "的"} <= legal


def _bm25(docs, **settings) -> HybridRetriever:
    return HybridRetriever.build(docs, legs=["bm25"], analysis=zh(**settings), progress=False)


def test_title_join_field_none():
    tokens = Analyzer(zh(zh_mode="accurate"))("促进发展")  # words only in the title of lrb-3
    row = [d.id for d in ZH].index("lrb-3")
    scores = {title: _bm25(ZH, zh_mode="accurate", title=title, title_weight=2.0).leg["bm25"].index.scores(tokens)[row]
              for title in ("join", "field", "none")}
    assert scores["join"] > 0 and scores["field"] > 0 and scores["none"] == 0
    one = _bm25(ZH, zh_mode="accurate", title="field", title_weight=1.0).leg["bm25"].index.scores(tokens)[row]
    assert scores["field"] == pytest.approx(2 * one)


def test_settings_and_user_dict_round_trip(tmp_path):
    settings = zh(zh_mode="accurate", law_names=True, title="field", title_weight=0.5)
    built = HybridRetriever.build(ZH, legs=["bm25"], analysis=settings, user_words=["工商业经营"], progress=False)
    manifest = built.save(tmp_path / "ix")
    saved = manifest["bm25"]["analysis"]
    assert saved["user_dict"] == USER_DICT and saved["title"] == "field" and "user_words" not in saved
    assert f"bm25/{USER_DICT}" in manifest["files"] and "bm25/title/params.index.json" in manifest["files"]
    assert "劳动合同法" not in (tmp_path / "ix" / "manifest.json").read_text(encoding="utf-8")
    loaded = HybridRetriever.load(tmp_path / "ix")
    loaded_analyzer, built_analyzer = loaded.leg["bm25"].analyzer, built.leg["bm25"].analyzer
    assert loaded_analyzer.settings == built_analyzer.settings
    assert loaded_analyzer.user_words == built_analyzer.user_words
    assert "工商业经营" in loaded_analyzer.user_words and "劳动合同法" in loaded_analyzer.user_words
    q = "劳动合同法规定用人单位不签书面合同要付两倍工资吗"
    assert [(h.id, h.score) for h in loaded.search(q, k=3)] == [(h.id, h.score) for h in built.search(q, k=3)]


def test_cli_bm25_only_zh_index(tmp_path, capsys):
    corpus = tmp_path / "zh.jsonl"
    corpus.write_text("".join(json.dumps(d.__dict__, ensure_ascii=False) + "\n" for d in ZH), encoding="utf-8")
    ix = str(tmp_path / "ix")
    assert main(["build", str(corpus), "--legs", "bm25", "--language", "zh", "--out", ix]) == 0
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["legs"] == ["bm25"] and manifest["bm25"]["analysis"] == zh().to_dict()
    capsys.readouterr()
    for text, mode in (("民法典第465条", "hybrid"), ("民法典第四百六十五条规定了什么", "bm25")):
        assert main(["query", ix, text, "--json", "--mode", mode]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["legs"] == ["bm25"] and out["hits"][0]["id"] == "2"
        assert "dense" not in out["hits"][0] and out["hits"][0]["bm25"]["rank"] == 1  # the index's legs only
    assert main(["query", ix, "谁可以成为个体工商户？"]) == 0
    assert "hybrid = bm25 only" in capsys.readouterr().out
    assert main(["query", ix, "合同", "--mode", "dense"]) == 2
    err = capsys.readouterr().err
    assert "no dense leg" in err and "bm25" in err
    assert main(["build", str(corpus), "--legs", "bm25", "--language", "zh", "--out", ix,
                 "--user-dict", str(corpus)]) == 2
    assert "jieba mode" in capsys.readouterr().err


def test_stard_subset(stard_dir):
    from retrieval.evaluation.datasets import load_dataset_folder
    from scripts.stard_analysis import documents, per_query_metrics

    data = load_dataset_folder(stard_dir)
    docs = documents(data)
    assert len(docs) == 58626 and len(data.queries) == 1235 and data.language == "zho-Hans"
    assert all(chinese.law_name(d.title) for d in docs)
    queries = dict(list(data.queries.items())[:100])
    relevant = {d for q in queries for d in data.qrels[q]}
    r = _bm25([d for i, d in enumerate(docs) if d.id in relevant or i % 200 == 0])
    run = {q: {h.id: h.score for h in r.search(text, k=100, mode="bm25")} for q, text in queries.items()}
    ndcg = per_query_metrics(run, {q: data.qrels[q] for q in queries})["ndcg_at_10"].mean()
    assert ndcg > 0.5, ndcg

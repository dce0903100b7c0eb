import bm25s
import pytest
import Stemmer

from retrieval.languages import analysis_language
from retrieval.lexical.analysis import Analyzer, AnalyzerSettings

TEXT = "The accused poured kerosene on his wife; the wives' relatives were running to the police station."


def test_english_tokens_equal_mteb_bm25s_baseline():
    """MTEB's BM25 baseline tokenises with bm25s (en stopwords, English Snowball stemmer)."""
    expected = bm25s.tokenize([TEXT], stopwords="en", stemmer=Stemmer.Stemmer("english"),
                              return_ids=False, show_progress=False)[0]
    assert Analyzer(AnalyzerSettings.for_language("en"))(TEXT) == expected
    assert "the" not in expected and "kerosen" in expected


def test_terms_keep_surface_words():
    terms = Analyzer(AnalyzerSettings.for_language("en")).terms("Running policemen")
    assert terms == [("running", "run"), ("policemen", "policemen")]


def test_chinese_is_segmented_not_one_token():
    tokens = Analyzer(AnalyzerSettings.for_language("zh", zh_mode="accurate"))("谁可以成为个体工商户？")
    assert "个体工商户" in tokens or "工商户" in tokens
    assert "？" not in tokens and len(tokens) >= 2
    chars = Analyzer(AnalyzerSettings(language="zh", stemmer=None, zh_mode="char", stopwords=None))("个体户")
    assert chars == ["个", "体", "户"]


def test_settings_round_trip_and_detection():
    s = AnalyzerSettings(language="zh", stemmer=None, zh_mode="search", law_names=True, title="field",
                         title_weight=0.5, user_dict="user_dict.txt")
    assert AnalyzerSettings.from_dict(s.to_dict()) == s
    first_format = {"language": "en", "stopwords": True, "stemmer": "english", "zh_mode": "accurate", "user_words": []}
    assert AnalyzerSettings.from_dict(first_format) == AnalyzerSettings.for_language("en")
    with pytest.raises(ValueError, match="rebuild the index"):
        AnalyzerSettings.from_dict({**first_format, "user_words": ["个体工商户"]})
    assert analysis_language(["中华人民共和国民法典第四百六十五条 依法成立的合同，受法律保护。"]) == "zh"
    assert analysis_language(["Whoever commits theft shall be punished with imprisonment"]) == "en"

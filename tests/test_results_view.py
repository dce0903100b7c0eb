"""What a lawyer reads: filters that match nothing say why, hits say whether a statute is in force, the prompt
offers what the index has, Chinese matches are explained in whole words, filters hold no corpus text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval import cli, filters, terminal
from retrieval.cli import _command_or_query, main
from retrieval.corpus import Document, read_corpus
from retrieval.index import format as store
from retrieval.retriever import HybridRetriever

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def laws(tmp_path_factory) -> Path:
    """The README's amendments example after the update (IPC repealed on 2024-07-01, BNS from then), BM25 only."""
    path = tmp_path_factory.mktemp("laws") / "ix"
    HybridRetriever.build(read_corpus(ROOT / "docs" / "examples" / "statutes-v2.jsonl"), legs=["bm25"],
                          progress=False).save(path)
    return path


def _query(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["query", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


# item 2: filters that match nothing say why
@pytest.mark.parametrize("expr, words", [
    ("foo = 1", "no field 'foo'; this index's fields: id, title, act, jurisdiction, section, valid_from, valid_to"),
    ("Act = IPC", "no field 'Act' (did you mean 'act'?)"),
])
def test_an_unknown_filter_field_exits_2_naming_the_index_fields(laws, capsys, expr, words):
    code, out, err = _query(capsys, laws, "dowry death", "--filter", expr)
    assert (code, out) == (2, "") and words in err and len(err.strip().splitlines()) == 1


def test_a_filter_value_no_document_has_warns_with_the_nearest(laws, capsys):
    code, out, err = _query(capsys, laws, "dowry death", "--act", "ipc")
    assert code == 0 and "warning: no document has act 'ipc'; nearest: IPC" in err and "(0 hits" in out
    code, out, _ = _query(capsys, laws, "dowry death", "--filter", "section in (304b, 80)", "--json")
    body = json.loads(out)
    assert body["warnings"] == ["no document has section '304b'; nearest: 304B"] and [h["id"] for h in body["hits"]] == ["BNS-80"]
    assert "warnings" not in json.loads(_query(capsys, laws, "dowry death", "--act", "IPC", "--json")[1])


def test_meta_keys_are_fields_and_numbers_match_as_numbers():
    table = filters.FieldTable([{"id": "a", "title": "", "text": "long text", "section": "302", "meta": {"court": "HC"}},
                                {"id": "b", "title": "", "text": "more", "meta": {"court": "SC"}}])
    assert all("text" not in r for r in table.records)
    values = table.values()
    assert filters.vet("court = HC and meta.court != SC and section = 302.0", values) == []
    assert filters.vet("court = hc", values) == ["no document has court 'hc'; nearest: HC"]
    with pytest.raises(filters.FilterError, match="no field 'courts'"):
        filters.vet("courts = HC", values)


@pytest.mark.parametrize("option, words", [
    (["--filter", "act = IPC and ("], "expected a field name at the end"),
    (["--as-of", "2024-13-01"], "not an ISO date"),
])
def test_filter_and_as_of_syntax_are_checked_before_the_index_loads(tmp_path, capsys, option, words):
    code, _, err = _query(capsys, tmp_path / "no-such-index", "theft", *option)
    assert code == 2 and words in err and "no index folder" not in err


# item 3: hits show whether a statute is in force
def test_query_json_hits_carry_act_dates_and_in_force(laws, capsys):
    hits = {h["id"]: h for h in json.loads(_query(capsys, laws, "dowry death", "--json")[1])["hits"]}
    ipc, bns = hits["IPC-304B"], hits["BNS-80"]
    assert {k: ipc[k] for k in ("act", "jurisdiction", "section", "valid_from", "valid_to", "in_force")} == {
        "act": "IPC", "jurisdiction": "IN", "section": "304B", "valid_from": "1986-11-19", "valid_to": "2024-07-01",
        "in_force": False}
    assert bns["in_force"] is True and "valid_to" not in bns
    then = json.loads(_query(capsys, laws, "dowry death", "--json", "--as-of", "2020-01-01")[1])["hits"]
    assert [(h["id"], h["in_force"]) for h in then] == [("IPC-304B", True), ("IPC-302", True)]


def test_query_text_shows_act_section_and_not_in_force_since(laws, capsys):
    lines = _query(capsys, laws, "dowry death", "-k", "2")[1].splitlines()
    under = {line.split()[1]: lines[i + 1].strip() for i, line in enumerate(lines) if line[3:4] == "."}
    assert under == {"BNS-80": "BNS s. 80, IN · from 2024-07-01 · in force",
                     "IPC-304B": "IPC s. 304B, IN · from 1986-11-19 until 2024-07-01 · not in force since 2024-07-01"}


# item 6: the prompt and the output
def test_the_prompt_offers_only_the_modes_the_index_has(laws, tiny_index):
    assert ":mode hybrid|bm25'" in cli._repl_help(HybridRetriever.load(laws))
    assert ":mode hybrid|dense|bm25'" in cli._repl_help(HybridRetriever.load(tiny_index, load_encoder=False))


def test_mode_or_k_alone_shows_the_current_value_and_bad_k_has_one_wording(laws, capsys):
    import argparse

    r, args = HybridRetriever.load(laws), argparse.Namespace(mode="bm25", k=3, json=False)
    _command_or_query(r, ":mode", args)
    _command_or_query(r, ":k", args)
    assert capsys.readouterr().err.splitlines() == ["mode bm25", "k 3"]
    messages = []
    for bad in ("0", "abc", "-2"):
        with pytest.raises(ValueError) as e:
            _command_or_query(r, f":k {bad}", args)
        messages.append(str(e.value).replace(repr(bad), "V"))
    assert messages == [":k needs a whole number >= 1, got V"] * 3 and args.k == 3


def test_one_leg_hits_are_labelled_by_their_leg_not_fused(laws, capsys):
    for mode in ("bm25", "hybrid"):
        out = _query(capsys, laws, "dowry death", "--mode", mode, "-k", "2")[1]
        assert "fused" not in out and "     bm25 #1 " in out


def test_titles_are_cut_at_a_word_boundary_with_an_ellipsis():
    title = "Punishment for abetment of an offence where the person abetted does the act with a different intention"
    assert terminal.shorten(title, 70) == "Punishment for abetment of an offence where the person abetted does…"
    assert terminal.shorten("中华人民共和国" * 20, 10) == "中华人民共和国中华…" and terminal.shorten("Theft", 70) == "Theft"


@pytest.mark.parametrize("no_history", [False, True])
def test_history_is_bounded_private_and_off_with_no_history(laws, tmp_path, monkeypatch, capsys, no_history):
    import readline

    lines = iter(["the accused took the jewellery of his neighbour", ":q"])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["query", str(laws), *(["--no-history"] if no_history else [])]) == 0
    history = tmp_path / "retrieval" / "query_history"
    assert readline.get_history_length() == 1000
    if no_history:
        assert not history.exists()
    else:
        assert history.stat().st_mode & 0o777 == 0o600


# item 8: Chinese explanations in whole words
def test_chinese_ngram_matches_are_explained_in_whole_words():
    docs = [Document("1", "刑法第二百六十四条", "盗窃公私财物，数额较大的，处三年以下有期徒刑。"),
            Document("2", "个人信息保护法第二条", "自然人的个人信息受法律保护，作为个体工商户的经营者同样适用。")]
    r = HybridRetriever.build(docs, legs=["bm25"], language="zh", progress=False)
    assert r.leg["bm25"].analyzer.settings.zh_mode == "ngram"  # ranking keeps its n-grams
    hits = {h.id: h.matched_terms for h in r.search("他作为个人偷了别人的财物", k=2)}
    assert "个人" in hits["2"] and "为个" not in hits["2"] and all(len(w) >= 2 for w in hits["2"])
    assert hits["1"] == ("财物",)
    assert all(w in docs[int(i) - 1].text for i, terms in hits.items() for w in terms)


# item 9: filters hold no corpus text
def test_a_filtered_query_keeps_no_document_text_in_memory(laws, monkeypatch):
    monkeypatch.setattr(store, "RECORD_CACHE", 2, raising=False)
    r = HybridRetriever.load(laws)
    assert len(r.search("theft murder death", k=3, allowed=r.where(act="IPC"))) == 3
    assert len(r._docs._cache) <= 2  # every record was read to filter; only the last few are kept

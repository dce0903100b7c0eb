"""Corpus metadata: act, jurisdiction, section, dates in force and other scalars, validated and stored."""

import json

import pytest

from retrieval.cli import main
from retrieval.corpus import CorpusError, Document, fingerprint, read_corpus
from retrieval.index.format import DocumentTable

BAD = {
    "date.jsonl": (b'{"id":"a","title":"t","text":"x","valid_from":"2019-13-01"}\n',
                   "date.jsonl:1: field 'valid_from' is not an ISO date"),
    "short.jsonl": (b'{"id":"a","title":"t","text":"x"}\n{"id":"b","title":"t","text":"y","valid_to":"2019-6-1"}\n',
                    "short.jsonl:2: field 'valid_to' is not an ISO date"),
    "list.jsonl": (b'{"id":"a","title":"t","text":"x","act":["IPC"]}\n', "list.jsonl:1: field 'act' not a string (list)"),
    "meta.jsonl": (b'{"id":"a","title":"t","text":"x","meta":{"k":{"a":1}}}\n', "meta.jsonl:1: field 'meta.k' not a scalar"),
    "order.jsonl": (b'{"id":"a","title":"t","text":"x","valid_from":"2020-01-01","valid_to":"2019-01-01"}\n',
                    "order.jsonl:1: field 'valid_to' 2019-01-01 is not after"),
    "date.csv": (b"id,title,text,valid_from\na,t,x,yesterday\n", "date.csv:2: field 'valid_from' is not an ISO date"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_metadata_names_file_line_and_field(tmp_path, name, capsys):
    data, expected = BAD[name]
    (tmp_path / name).write_bytes(data)
    with pytest.raises(CorpusError) as e:
        read_corpus(tmp_path / name)
    assert expected in str(e.value) and "\n" not in str(e.value)
    assert main(["build", str(tmp_path / name), "--out", str(tmp_path / "ix"), "--legs", "bm25"]) == 2
    assert not (tmp_path / "ix").exists()


def test_metadata_read_from_jsonl_and_csv(tmp_path):
    (tmp_path / "c.jsonl").write_text(json.dumps({"id": "a", "title": "t", "text": "x", "act": "IPC", "jurisdiction": "IN",
                                                  "section": 302, "valid_from": "1860-10-06", "meta": {"year": 1860}})
                                      + "\n", encoding="utf-8")
    d = read_corpus(tmp_path / "c.jsonl")[0]
    assert (d.act, d.jurisdiction, d.section, d.valid_from, d.valid_to) == ("IPC", "IN", "302", "1860-10-06", None)
    assert d.meta == {"year": 1860}
    (tmp_path / "c.csv").write_text("id,title,text,act,valid_to,chapter\na,t,x,CrPC,2024-07-01,XII\n", encoding="utf-8")
    d = read_corpus(tmp_path / "c.csv")[0]
    assert (d.act, d.valid_to, d.meta) == ("CrPC", "2024-07-01", {"chapter": "XII"})


def test_stard_titles_give_the_act_and_aila_the_jurisdiction(tmp_path, aila_dir):
    (tmp_path / "s.jsonl").write_text(json.dumps({"id": "2", "title": "中华人民共和国民法典第四百六十五条", "text": "依法成立的合同"},
                                                 ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_corpus(tmp_path / "s.jsonl")[0].act == "中华人民共和国民法典"
    assert {d.jurisdiction for d in read_corpus(aila_dir / "Object_statutes")} == {"IN"}


def test_fingerprint_counts_metadata_and_the_table_stores_it(tmp_path):
    plain, dated = Document("a", "t", "x"), Document("a", "t", "x", act="IPC", valid_to="2020-01-01")
    assert fingerprint([plain]) != fingerprint([dated])
    assert fingerprint([plain]) == fingerprint([Document("a", "t", "x")])
    DocumentTable.write(tmp_path, [plain, dated])
    table = DocumentTable.load(tmp_path)
    assert table.get(0) == {"id": "a", "title": "t", "text": "x"}
    assert Document(**table.get(1)) == dated

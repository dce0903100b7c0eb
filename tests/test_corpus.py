import pytest

from retrieval.cli import main
from retrieval.corpus import CorpusError, Document, fingerprint, read_corpus

BAD = {
    "dup.jsonl": (b'{"id":"a","title":"t","text":"x y"}\n{"id":"a","title":"t","text":"z"}\n', "dup.jsonl:2: duplicate id 'a' (first on line 1)"),
    "dup.csv": (b'id,title,text\na,t,"x\ny"\n\na,t,z\n', "dup.csv:5: duplicate id 'a' (first on line 2)"),
    "empty.jsonl": (b"", "empty corpus"),
    "emptytext.jsonl": (b'{"id":"a","title":"t","text":"  "}\n', "emptytext.jsonl:1: empty text"),
    "broken.jsonl": (b'{"id":"a","title":"t","text":"ok"}\n{not json\n', "broken.jsonl:2: invalid JSON"),
    "bytes.jsonl": (b'{"id":"a","title":"t","text":"ok"}\n\xff\xfe bad\n', "bytes.jsonl:2: not valid UTF-8"),
    "notext.jsonl": (b'{"id":"a","title":"t"}\n', "notext.jsonl:1: field 'text' missing"),
    "numid.jsonl": (b'{"id":3,"title":"t","text":"x"}\n', "numid.jsonl:1: field 'id' not a string"),
    "nocol.csv": (b"id,text\na,hello\n", "nocol.csv:1: missing column(s) title"),
    "bad.csv": (b"id,title,text\na,t,ok\nb,t,\n", "bad.csv:3: empty text"),
    "badbytes.csv": (b"id,title,text\na,t,ok\nb,t,\xff\n", "badbytes.csv:3: not valid UTF-8"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_names_file_and_line(tmp_path, name):
    data, expected = BAD[name]
    (tmp_path / name).write_bytes(data)
    with pytest.raises(CorpusError) as e:
        read_corpus(tmp_path / name)
    assert expected in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["dup.jsonl", "empty.jsonl", "bytes.jsonl", "nocol.csv"])
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, name):
    (tmp_path / name).write_bytes(BAD[name][0])
    out = tmp_path / "out"
    assert main(["build", str(tmp_path / name), "--out", str(out), "--legs", "bm25"]) == 2
    assert not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and name in err[0]


def test_unreadable_and_unknown_paths(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        read_corpus(tmp_path / "missing.jsonl")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(CorpusError, match="unknown corpus format"):
        read_corpus(tmp_path / "x.txt")
    with pytest.raises(CorpusError, match="no statute files"):
        read_corpus(tmp_path)


def test_jsonl_csv_and_aila_folder(tmp_path):
    (tmp_path / "c.jsonl").write_text('{"id":"a","title":"T","text":"alpha"}\n\n{"id":"b","text":"beta"}\n')
    assert read_corpus(tmp_path / "c.jsonl") == [Document("a", "T", "alpha"), Document("b", "", "beta")]
    (tmp_path / "c.csv").write_text('id,title,text\na,T,"multi\nline"\n', encoding="utf-8")
    assert read_corpus(tmp_path / "c.csv") == [Document("a", "T", "multi\nline")]
    folder = tmp_path / "Object_statutes"
    folder.mkdir()
    for n in (10, 2):
        (folder / f"S{n}.txt").write_text(f"Title: Law {n}\nDesc: text {n}\n")
    docs = read_corpus(tmp_path)  # the release root works as well as Object_statutes/
    assert [d.id for d in docs] == ["S2", "S10"]
    assert docs[0] == Document("S2", "Law 2", "Title: Law 2\nDesc: text 2", jurisdiction="IN")


def test_indexed_text_and_fingerprint():
    assert Document("a", "Theft", "Title: Theft\nDesc: x").indexed_text() == "Title: Theft\nDesc: x"
    assert Document("a", "Theft", "x").indexed_text() == "Theft x"
    a = [Document("a", "", "x")]
    assert fingerprint(a) == fingerprint(list(a)) != fingerprint([Document("a", "", "y")])


def test_aila_statutes(aila_dir):
    docs = read_corpus(aila_dir / "Object_statutes")
    assert len(docs) == 197
    assert {"S32", "S58", "S162"}.isdisjoint(d.id for d in docs)
    assert all(d.text.startswith("Title:") and d.title for d in docs)

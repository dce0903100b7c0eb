"""Hostile corpus lines (issue 28, item 7): each is one line naming file, line and field, exit 2, before any model."""

import csv

import pytest

from retrieval.cli import main
from retrieval.corpus import CorpusError, read_corpus

NESTED = '{"id":"a","title":"t","text":"x","meta":' + "[" * 100_000 + "]" * 100_000 + "}\n"
HOSTILE = {
    "nested.jsonl": (NESTED, "nested.jsonl:1: invalid JSON (nested too deeply)"),
    "surrogate.jsonl": ('{"id":"a","title":"t","text":"ok"}\n{"id":"b","title":"t","text":"x\\ud800"}\n',
                        "surrogate.jsonl:2: field 'text' holds a lone surrogate"),
    "surrogate_meta.jsonl": ('{"id":"a","title":"t","text":"x","meta":{"k\\udc00":1}}\n',
                             "surrogate_meta.jsonl:1: field 'meta' holds a lone surrogate"),
    "digits.jsonl": ('{"id":"a","title":"t","text":"x","section":' + "1" * 5001 + "}\n",
                     "digits.jsonl:1: field 'section' is a number of 5001 digits"),
    "week.jsonl": ('{"id":"a","title":"t","text":"x","valid_from":"2024-W01-1"}\n',
                   "week.jsonl:1: field 'valid_from' is not an ISO date"),
    "ordinal.csv": ("id,title,text,valid_to\na,t,x,2024-001\n", "ordinal.csv:2: field 'valid_to' is not an ISO date"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_corpus_line_is_one_error_naming_file_line_and_field(tmp_path, name):
    text, expected = HOSTILE[name]
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(CorpusError) as e:
        read_corpus(tmp_path / name)
    assert expected in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["nested.jsonl", "surrogate.jsonl"])
def test_build_and_update_stop_with_exit_2_before_the_model_loads(tmp_path, capsys, monkeypatch, name):
    import retrieval.dense.encoders as encoders

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the corpus was checked")

    monkeypatch.setattr(encoders.Encoder, "__init__", no_model)
    (tmp_path / name).write_text(HOSTILE[name][0], encoding="utf-8")
    out = tmp_path / "out"
    assert main(["build", str(tmp_path / name), "--out", str(out)]) == 2
    assert not out.exists()
    good = tmp_path / "good.jsonl"
    good.write_text('{"id":"a","title":"t","text":"theft of property"}\n', encoding="utf-8")
    assert main(["build", str(good), "--out", str(out), "--legs", "bm25"]) == 0
    capsys.readouterr()
    assert main(["update", str(out), str(tmp_path / name)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and name in err[0] and "Traceback" not in err[0]


def test_a_csv_field_longer_than_128_kib_is_read(tmp_path):
    path = tmp_path / "long.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "title", "text"])
        w.writerow(["a", "t", "theft " * 40_000])
    assert len(read_corpus(path)[0].text) > 128 << 10

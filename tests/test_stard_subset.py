"""scripts/stard_subset.py: the STARD subset behind docs/finetune.md's STARD figures."""

from __future__ import annotations

import json

from project_scripts import load_script

stard_subset = load_script("stard_subset")


def write_stard(folder):
    folder.mkdir()
    docs = [{"id": f"d{i}", "text": f"第{i}条"} for i in range(10)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), "utf-8")
    queries = [{"id": f"q{i}", "text": f"问题{i}"} for i in range(4)]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queries), "utf-8")
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td3\t1\nq2\td5\t1\nq3\td7\t1\n")
    return folder


def test_the_subset_keeps_the_first_judged_queries_their_articles_and_seeded_others(tmp_path):
    src = write_stard(tmp_path / "stard")
    assert stard_subset.main([str(src), str(tmp_path / "a"), "--queries", "2", "--others", "3"]) == 0
    assert stard_subset.main([str(src), str(tmp_path / "b"), "--queries", "2", "--others", "3"]) == 0
    queries = [json.loads(line)["id"] for line in (tmp_path / "a" / "queries.jsonl").open()]
    docs = [json.loads(line)["id"] for line in (tmp_path / "a" / "corpus.jsonl").open()]
    assert queries == ["q1", "q2"] and {"d3", "d5"} <= set(docs) and len(docs) == 5
    assert docs == sorted(docs, key=lambda d: int(d[1:]))  # corpus order
    assert (tmp_path / "a" / "qrels.tsv").read_text() == "query-id\tcorpus-id\tscore\nq1\td3\t1\nq2\td5\t1\n"
    for name in stard_subset.FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_the_subset_refuses_an_existing_folder_and_a_missing_file_in_one_line(tmp_path, capsys):
    src = write_stard(tmp_path / "stard")
    (tmp_path / "out").mkdir()
    assert stard_subset.main([str(src), str(tmp_path / "out")]) == 2
    (src / "qrels.tsv").unlink()
    assert stard_subset.main([str(src), str(tmp_path / "new")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "exists" in err[0] and "qrels.tsv" in err[1] and not (tmp_path / "new").exists()

"""Milvus Lite shared by processes (issue 28, item 6): while one process has a `.db` open (as `serve` does), `query`,
`update` and a second build reach the same engine through it; the serving process reloads the update. A folder that
is not a Lite database is refused, and a query after the `.db` moved creates nothing at the old path."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pymilvus", reason="the Milvus backend's client (extra 'milvus') is not installed")
pytest.importorskip("milvus_lite", reason="Milvus Lite (extra 'milvus-lite', CPU installs) is not installed")

from retrieval.cli import main  # noqa: E402

ROOT = Path(__file__).parent.parent
TEXTS = [("Whoever dishonestly takes movable property commits theft.", "IPC"),
         ("Whoever commits theft shall be punished.", "IPC"),
         ("The State shall not deny equality before the law.", "CONST")]
# A process that holds the index open (as `serve` does) and reloads it when told (as `serve --watch` does).
HOLDER = ("import sys\nfrom retrieval.retriever import HybridRetriever\n"
          "r = HybridRetriever.load(sys.argv[1]); print(len(r), flush=True)\n"
          "sys.stdin.readline()\n"
          "r = HybridRetriever.load(sys.argv[1]); print(len(r), r.search('electricity', k=1)[0].id, flush=True)\n"
          "sys.stdin.readline()\n")


def _corpus(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps({"id": f"c{i}", "title": f"T{i}", "text": t, "act": a}) + "\n"
                            for i, (t, a) in enumerate(rows)), encoding="utf-8")
    return path


def _build(corpus: Path, ix: Path, db: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "retrieval", "build", str(corpus), "--out", str(ix), "--backend",
                           "milvus", "--uri", str(db), "--legs", "bm25"], cwd=ROOT, capture_output=True, text=True)


def test_query_update_and_a_second_build_work_while_another_process_holds_the_db(tmp_path, capsys):
    ix, db = tmp_path / "ix", tmp_path / "m.db"
    assert _build(_corpus(tmp_path / "c.jsonl", TEXTS), ix, db).returncode == 0
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(ix)], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert holder.stdout.readline().split() == ["3"]
        r = subprocess.run([sys.executable, "-m", "retrieval", "query", str(ix), "theft", "--json"], cwd=ROOT,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-300:]
        assert {h["id"] for h in json.loads(r.stdout)["hits"]} == {"c0", "c1"}
        more = _corpus(tmp_path / "c2.jsonl", [*TEXTS, ("Whoever abstracts energy commits theft of electricity.", "EA")])
        r = subprocess.run([sys.executable, "-m", "retrieval", "update", str(ix), str(more)], cwd=ROOT,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-300:]
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().split() == ["4", "c3"]  # the holder reloads the updated index
        second = _build(tmp_path / "c.jsonl", tmp_path / "ix2", db)
        assert second.returncode == 0, second.stderr[-300:]
    finally:
        holder.kill()
        holder.wait()
    assert main(["query", str(tmp_path / "ix2"), "theft", "--json"]) == 0  # once the holder is gone: opened here
    assert {h["id"] for h in json.loads(capsys.readouterr().out)["hits"]} == {"c0", "c1"}


def test_a_folder_that_is_no_lite_database_is_refused(tmp_path, capsys):
    (tmp_path / "x.db").mkdir()
    (tmp_path / "x.db" / "notes.txt").write_text("mine")
    corpus = _corpus(tmp_path / "c.jsonl", TEXTS)
    assert main(["build", str(corpus), "--out", str(tmp_path / "ix"), "--backend", "milvus", "--uri",
                 str(tmp_path / "x.db"), "--legs", "bm25"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a Milvus Lite database folder" in err[0]
    assert sorted(p.name for p in (tmp_path / "x.db").iterdir()) == ["notes.txt"]


def test_a_query_after_the_db_moved_creates_nothing_at_the_old_path(tmp_path, capsys):
    ix, db = tmp_path / "ix", tmp_path / "m.db"
    assert _build(_corpus(tmp_path / "c.jsonl", TEXTS), ix, db).returncode == 0
    db.rename(tmp_path / "moved.db")
    assert main(["query", str(ix), "theft"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Milvus Lite database is gone" in err[0]
    assert not db.exists()

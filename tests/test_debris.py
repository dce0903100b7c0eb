"""Temporaries a killed or failed build leaves (issue 28, item 5): each kill point leaves debris under one naming
scheme, and the next build or update of that index removes it (a running writer's temporaries stay)."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retrieval.cli import main
from retrieval.retriever import HybridRetriever
from retrieval.tempfiles import abandoned, temp_path

ROOT = Path(__file__).parent.parent
DOCS = [{"id": f"S{i}", "title": f"Section {i}", "text": f"theft of property number {i}"} for i in range(6)]

# Each patch makes the child process die (os._exit, as kill -9: no clean-up runs) at one exact system call.
AT_FIRST_RENAME = ("real = os.rename\n"  # a new index: the partial marker removed, the folder not yet renamed
                   "def rename(src, dst, **k):\n    if Path(dst).name == 'ix': os._exit(9)\n    return real(src, dst, **k)\n"
                   "os.rename = rename\n")
AT_MANIFEST = ("real = os.replace\n"  # the manifest written beside, not yet renamed into place
               "def replace(src, dst, **k):\n    if Path(dst).name == 'manifest.json': os._exit(9)\n"
               "    return real(src, dst, **k)\nos.replace = replace\n")
AFTER_GENERATION = ("real = os.rmdir\n"  # the generation renamed into place, its emptied scratch folder not removed
                    "def rmdir(path, **k):\n    if str(path).startswith('.tmp-') or '/.tmp-' in str(path): os._exit(9)\n"
                    "    return real(path, **k)\nos.rmdir = rmdir\n")


def _corpus(tmp_path: Path, tag: str = "") -> Path:
    path = tmp_path / f"corpus{tag}.jsonl"
    path.write_text("".join(json.dumps({**d, "text": d["text"] + tag}) + "\n" for d in DOCS), encoding="utf-8")
    return path


def _killed(patch: str, *argv: str) -> None:
    """Run `retrieval ARGV` in a child process with `patch` applied; it must die at the patched step."""
    code = f"import os, sys\nfrom pathlib import Path\n{patch}from retrieval.cli import main\nmain(sys.argv[1:])\n"
    r = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 9, r.stderr[-500:]


def _temporaries(tmp_path: Path) -> list[str]:
    ix = tmp_path / "ix"
    inside = [f"ix/{p.name}" for p in ix.iterdir() if ".tmp-" in p.name] if ix.is_dir() else []
    return sorted([p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] + inside)


@pytest.mark.parametrize("existing, patch", [
    (False, AT_FIRST_RENAME), (False, AT_MANIFEST), (True, AT_MANIFEST), (True, AFTER_GENERATION),
], ids=["new-before-rename", "new-before-manifest", "update-before-manifest", "update-after-generation"])
def test_debris_of_a_kill_at_each_step_is_removed_by_the_next_build(tmp_path, existing, patch):
    ix = tmp_path / "ix"
    if existing:
        assert main(["build", str(_corpus(tmp_path)), "--out", str(ix), "--legs", "bm25"]) == 0
        _killed(patch, "update", str(ix), str(_corpus(tmp_path, " changed")))
        assert HybridRetriever.load(ix, verify=True).info["generation"] == "gen-000001"
    else:
        _killed(patch, "build", str(_corpus(tmp_path)), "--out", str(ix), "--legs", "bm25")
    assert _temporaries(tmp_path), "the kill left nothing to clean (the patch missed its step)"
    assert main(["build", str(_corpus(tmp_path, " again")), "--out", str(ix), "--legs", "bm25"]) == 0
    assert _temporaries(tmp_path) == []
    assert HybridRetriever.load(ix, verify=True).document("S1")["text"].endswith(" again")


def test_a_disk_full_at_the_manifest_write_leaves_no_temporary(tmp_path, monkeypatch, capsys):
    ix = tmp_path / "ix"
    assert main(["build", str(_corpus(tmp_path)), "--out", str(ix), "--legs", "bm25"]) == 0

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    assert main(["update", str(ix), str(_corpus(tmp_path, " changed"))]) != 0
    assert _temporaries(tmp_path) == [] and sorted(p.name for p in ix.iterdir()) == ["gen-000001", "manifest.json"]


def test_a_running_writers_temporary_is_kept_and_a_gone_ones_removed(tmp_path):
    mine = temp_path(tmp_path, "ix")
    gone = tmp_path / ".ix.tmp-999999999-00ff"
    assert not abandoned(mine, "ix") and abandoned(gone, "ix") and not abandoned(gone, "other")
    assert not abandoned(tmp_path / "ix.tmp-1-ab") and not abandoned(tmp_path / ".ix.tmpx")

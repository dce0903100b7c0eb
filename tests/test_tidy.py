"""The repository holds no run output, and README's figures name commands that run."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from project_scripts import load_script

ROOT = Path(__file__).resolve().parent.parent


def test_no_log_files_are_tracked_and_the_load_test_logs_into_results():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "*.log"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert tracked.stdout.split() == []
    assert load_script("load_test").SERVER_LOG.startswith("results/")


def test_the_query_latency_row_of_the_readme_names_a_script_that_measures_every_mode(tmp_path, capsys):
    row = next(line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
               if line.startswith("| query latency"))
    assert "scripts/query_latency.py" in row
    aila = tmp_path / "aila"
    (aila / "Object_statutes").mkdir(parents=True)
    for i, (title, text) in enumerate([("Theft", "taking movable property dishonestly"),
                                       ("Dowry death", "death of a woman by burns within seven years of marriage"),
                                       ("Murder", "culpable homicide with intention of causing death")], start=1):
        (aila / "Object_statutes" / f"S{i}.txt").write_text(f"Title: {title}\nDesc: {text}", encoding="utf-8")
    (aila / "Query_doc.txt").write_text("AILA_Q1||he took my bicycle\nAILA_Q2||wife burned for dowry\n",
                                        encoding="utf-8")
    assert load_script("query_latency").main(["--aila-dir", str(aila), "--queries", "2", "--repeats", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["search"]) == {"hybrid", "dense", "bm25"} and result["statutes"] == 3
    assert all(v["p50_ms"] > 0 for v in result["search"].values()) and result["encode"]["p50_ms"] > 0
    assert result["machine"]["cpu"]

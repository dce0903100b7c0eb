"""The README's amendment workflow, run line by line from the README itself."""

import re
import shlex
from pathlib import Path

from retrieval.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"### Statutes change.*?```bash\n(.*?)```", text, re.S).group(1)
    return [shlex.split(line)[3:] for line in block.strip().splitlines()]


def test_readme_amendment_workflow(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    runs = []
    for args in _readme_commands():
        args = [str(tmp_path / "amend") if a == "index/amend" else a for a in args]
        assert main(args) == 0, args
        runs.append(capsys.readouterr())
    assert [line for line in runs[1].out.splitlines() if line.startswith("+")] == ["+ BNS-103", "+ BNS-80", "+ BNS-303"]
    assert "added 3, changed 4, removed 0, unchanged 0; encoded 4 texts" in runs[2].err
    assert "1. IPC-304B" in runs[3].out and "BNS" not in runs[3].out
    assert "1. BNS-80" in runs[4].out and "IPC" not in runs[4].out
    assert "removed 1" in runs[6].err
    assert len(_readme_commands()) == 7

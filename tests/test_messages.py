"""What a user reads when something is off: one line, the exit code of README's table, the plan of a dry run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_bench import write_dataset

from retrieval.cli import main

ROOT = Path(__file__).resolve().parent.parent
V1, V2 = ROOT / "docs/examples/statutes-v1.jsonl", ROOT / "docs/examples/statutes-v2.jsonl"


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("command", ["build", "bench", "tune", "query"])
def test_a_model_path_that_is_not_there_is_one_line_and_exit_2_like_a_reranker_path(command, tmp_path, capsys):
    missing = str(tmp_path / "no-such-model")
    if command == "query":
        assert main(["build", str(V1), "--out", str(tmp_path / "ix"), "--legs", "bm25,dense"]) == 0
        capsys.readouterr()
        argv = ["query", str(tmp_path / "ix"), "dowry", "--model", missing]
    elif command == "build":
        argv = ["build", str(V1), "--out", str(tmp_path / "ix"), "--model", missing]
    else:
        data = write_dataset(tmp_path / "d")
        argv = [command, "--dataset", str(data), "--out", str(tmp_path / "o"), "--model", missing]
        argv += ["--folds", "3"] if command == "tune" else []
    assert main(argv) == 2
    assert _one_error_line(capsys) == f"error: {missing}: cannot load the model (Path {missing} not found)"
    assert not (tmp_path / "ix").exists() or command == "query"


def test_a_dry_run_says_how_many_texts_it_would_encode_and_which_records_changed_only_metadata(tmp_path, capsys):
    ix = str(tmp_path / "ix")
    assert main(["build", str(V1), "--out", ix]) == 0
    capsys.readouterr()
    assert main(["update", ix, str(V2), "--dry-run", "--json"]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[:7] == ["+ BNS-103", "+ BNS-80", "+ BNS-303", "~ IPC-302: valid_to (metadata only)",
                         "~ IPC-304B: valid_to (metadata only)", "~ IPC-378: valid_to (metadata only)",
                         "~ IPC-124A: text, valid_to"]
    plan = json.loads(lines[7])
    assert plan["to_encode"] == 4 and plan["encoded"] == 0 and plan["changes"]["IPC-124A"] == ["text", "valid_to"]
    assert "would encode 4 texts" in out.err and "encoded 0" not in out.err
    assert main(["update", ix, str(V2)]) == 0
    assert "encoded 4 texts" in capsys.readouterr().err  # the count the dry run gave


def readme_exit_codes() -> dict[str, int]:
    """README's exit-code table: meaning -> code."""
    text = (ROOT / "README.md").read_text(encoding="utf-8").split("#### Exit codes", 1)[1]
    return {m.group(2): int(m.group(1)) for m in re.finditer(r"^\| (\d+) \| ([^|]+?) \|", text, re.M)}


def test_the_cli_exits_with_the_codes_of_the_readme_table(tmp_path, capsys):
    codes = readme_exit_codes()
    assert {codes["bad input"], codes["broken index, or a failure while running"], codes["not found"]} == {2, 1, 3}
    ix = tmp_path / "ix"
    assert main(["build", str(V1), "--out", str(ix), "--legs", "bm25"]) == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "title": "t"}\n', encoding="utf-8")
    assert main(["build", str(bad), "--out", str(tmp_path / "ix2")]) == codes["bad input"]
    assert main(["query", str(ix), "theft", "-k", "0"]) == codes["bad input"]
    assert main(["query", str(tmp_path / "nowhere"), "theft"]) == codes["not found"]
    assert main(["query", str(ROOT / "docs"), "theft"]) == codes["not found"]  # a folder with no index in it
    assert main(["delete", str(ix), "NO-SUCH-ID"]) == codes["not found"]
    assert main(["serve", str(tmp_path / "nowhere")]) == codes["not found"]
    manifest = next(ix.glob("**/manifest.json"))
    manifest.write_text("{", encoding="utf-8")
    assert main(["query", str(ix), "theft"]) == codes["broken index, or a failure while running"]
    assert all(line.startswith("error: ") for line in capsys.readouterr().err.splitlines() if "error" in line)


def _commands() -> dict:
    """Every sub-parser of `retrieval`, by command name."""
    import argparse

    from retrieval.cli import _parser

    def subcommands(parser, prefix: str) -> dict:
        sub = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        found = {f"{prefix}{name}": p for a in sub for name, p in a.choices.items()}
        return {**found, **{k: v for name, p in found.items() for k, v in subcommands(p, name + " ").items()}}

    return subcommands(_parser(), "")


def test_every_command_has_examples_and_every_option_has_help_that_states_its_default():
    commands = _commands()
    assert {"build", "query", "update", "delete", "bench", "tune", "serve", "perf", "perf passages"} <= set(commands)
    for name, parser in commands.items():
        text = parser.format_help()
        assert f"examples:\n  retrieval {name} " in text, name
        for action in parser._actions:
            if action.dest == "help":
                continue
            assert action.help, f"{name} {action.option_strings or action.dest}: no help"
            if action.option_strings and action.default not in (None, False):
                assert "default" in parser._get_formatter()._get_help_string(action).lower(), (name, action.dest)
        assert ".py" not in text, f"{name} --help points into the source"


def test_query_help_holds_the_filter_grammar_and_perf_help_its_default_folder(capsys):
    help_of = {name: " ".join(p.format_help().split()) for name, p in _commands().items()}
    assert 'comparison := FIELD OP VALUE | FIELD "in"' in help_of["query"]
    assert "(default: results/perf," in help_of["perf"]
    assert "--batch-size BATCH_SIZE texts per encoder batch when there is no token budget (default: 32)" in help_of["build"]
    assert "--language {auto,en,zh} BM25 analysis language (default: " in help_of["tune"]


def test_retrieval_version_prints_the_package_version(capsys):
    from retrieval import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"retrieval {__version__}"

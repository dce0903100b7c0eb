"""`--help` of the commands: examples below the options, and each option's default stated."""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written; an option with a default that its help does not state gets `(default: X)`."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if default in (None, False, argparse.SUPPRESS) or "default" in text.lower() or not action.option_strings:
            return text
        return f"{text} (default: {default})"


def command(sub, name: str, summary: str, examples: str) -> argparse.ArgumentParser:
    """The sub-parser of one command: `summary` (its line in `retrieval --help`), then its options, then
    `examples` (shell lines, as a user types them)."""
    return sub.add_parser(name, help=summary, description=summary, formatter_class=HelpFormatter,
                          epilog="examples:\n" + "\n".join(f"  {line}" for line in examples.strip().splitlines()))

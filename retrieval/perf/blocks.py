"""Headline blocks inside performance.md, each between its own markers, so a rerun of one benchmark replaces
its block and keeps the others' figures."""

from __future__ import annotations

from pathlib import Path


def embed_block(performance_md: Path, begin: str, end: str, body: str) -> None:
    """Put `body` between the `begin` and `end` markers of performance.md (replacing an earlier block, else
    appended at the end; the file is created when missing)."""
    block = f"{begin}\n{body.strip()}\n{end}"
    text = performance_md.read_text(encoding="utf-8") if performance_md.is_file() else ""
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    performance_md.write_text(text, encoding="utf-8")

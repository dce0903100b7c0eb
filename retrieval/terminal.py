"""Corpus strings as a terminal may show them: control characters escaped, long titles cut at a word."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """A corpus string as the terminal may print it: control characters (ESC, CR, LF, bidi overrides) escaped,
    so a title cannot colour the screen or forge output lines (--json escapes them already)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def shorten(text: str, width: int) -> str:
    """`text` in at most `width` characters: cut at a word boundary (within the last half) with an ellipsis."""
    if len(text) <= width:
        return text
    cut = text[:width - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > width // 2 else cut).rstrip(" ,;:.-") + "…"

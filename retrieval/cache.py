"""The user's cache folder for this package ($XDG_CACHE_HOME/retrieval, default ~/.cache/retrieval) and
small JSON files in it. A cache is only ever a shortcut: unreadable or unwritable means recomputing."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/retrieval (default ~/.cache/retrieval); not created here."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "retrieval"


def read_json(name: str) -> dict:
    """The JSON object in the cache file `name`; {} when missing or unreadable."""
    try:
        data = json.loads((cache_dir() / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(name: str, data: dict) -> None:
    """Replace the cache file `name` atomically (a temporary file renamed); silently skipped when not writable."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=folder, prefix=f".{name}.", delete=False, encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        os.replace(f.name, folder / name)
    except OSError:
        pass

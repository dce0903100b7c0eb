"""The user's cache folder for this package ($XDG_CACHE_HOME/retrieval, default ~/.cache/retrieval) and
small JSON files in it. A cache is only ever a shortcut: unreadable or unwritable means recomputing."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..tempfiles import remove_abandoned, temp_path


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
        remove_abandoned(folder, name)
        tmp = temp_path(folder, name)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, folder / name)
    except OSError:
        pass

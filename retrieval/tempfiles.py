"""One naming scheme for every temporary file and folder this project writes, and the removal of those a killed
writer left.

A temporary that becomes NAME is `.NAME.tmp-PID-HEX` beside it (PID: the writing process, HEX: random), or
`.tmp-PID-HEX` for a folder's unnamed scratch space; the rename that finishes it is the writer's last step.
The next writer of NAME removes the temporaries whose process no longer runs (a kill -9, a full disk) and
leaves a running writer's alone; a name without a PID (written before this scheme) counts as abandoned.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path

_TEMP = re.compile(r"(?:\.(?P<name>.+))?\.tmp-(?:(?P<pid>\d+)-)?[0-9a-f]+")


def temp_path(folder: Path, name: str = "") -> Path:
    """A fresh temporary's path in `folder` for NAME (or for unnamed scratch space), naming this process."""
    return Path(folder) / f"{'.' + name if name else ''}.tmp-{os.getpid()}-{secrets.token_hex(6)}"


def abandoned(path: Path, name: str | None = None) -> bool:
    """Whether `path` is a temporary (of NAME, or of any name when None) whose writer no longer runs."""
    m = _TEMP.fullmatch(path.name)
    if m is None or (name is not None and (m.group("name") or "") != name):
        return False
    return m.group("pid") is None or not _running(int(m.group("pid")))


def remove_abandoned(folder: Path, name: str | None = None) -> list[Path]:
    """Remove the abandoned temporaries (files or folders) of NAME in `folder`; returns what went."""
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return []
    gone = []
    for path in entries:
        if abandoned(path, name):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            gone.append(path)
    return gone


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True

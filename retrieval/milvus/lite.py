"""A Milvus Lite database (a local `.db` folder) shared by the processes of one machine.

Milvus Lite lets one process open a `.db` folder (a lock inside it); that process runs the engine on a loopback
gRPC port. The first process to open it here also writes where (`.NAME.db.server`, beside it: its pid and URI),
so another process (an `update` while `serve` runs, a `query`, a second build) reaches the same engine through
that port instead of failing. It depends on the opener: when the opener exits, the others' next call fails.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
from pathlib import Path

from ..index.format import IndexFileError
from ..tempfiles import temp_path
from . import MilvusSetupError

_LOCK = "LOCK"  # the file Milvus Lite keeps in every database folder


def open_lite(path: str | Path, create: bool) -> str:
    """The URI a client of the Lite database at `path` connects to: an engine this process starts, or the one
    another process runs. `create` False (a load): a missing database is an error and nothing is created."""
    path = Path(path)
    _check_folder(path, create)
    from milvus_lite.server_manager import server_manager_instance

    logging.getLogger("milvus_lite").setLevel(logging.CRITICAL)  # a refused lock is reported below, in one line
    path.parent.mkdir(parents=True, exist_ok=True)
    uri = server_manager_instance.start_and_get_uri(str(path))
    if uri is not None:
        _announce(path, uri)
        return uri
    owner = _owner(path)
    if owner is None:
        raise MilvusSetupError(f"{path}: this Milvus Lite database is open in another process that does not say "
                               "where (Milvus Lite allows one opener); stop it, or use a Milvus server")
    return owner


def _check_folder(path: Path, create: bool) -> None:
    """Refuse a path that is not a Milvus Lite folder, and a missing one unless it may be created."""
    if not path.exists():
        if not create:
            raise IndexFileError(f"{path}: the Milvus Lite database is gone (moved or deleted); put it back, "
                                 "or rebuild the index")
        return
    if not path.is_dir() or (any(path.iterdir()) and not (path / _LOCK).is_file()):
        raise MilvusSetupError(f"{path}: not a Milvus Lite database folder; choose another --uri")


def _server_file(path: Path) -> Path:
    return path.parent / f".{path.name}.server"


def _announce(path: Path, uri: str) -> None:
    """Record this process as the database's opener (replacing a gone opener's record); removed at exit."""
    record = _server_file(path)
    tmp = temp_path(path.parent, record.name)
    try:
        tmp.write_text(json.dumps({"pid": os.getpid(), "uri": uri}), encoding="utf-8")
        os.replace(tmp, record)
    except OSError:
        tmp.unlink(missing_ok=True)
        return  # others cannot share this database, as before
    atexit.register(_withdraw, record, os.getpid())


def _withdraw(record: Path, pid: int) -> None:
    try:
        if json.loads(record.read_text(encoding="utf-8")).get("pid") == pid:
            record.unlink()
    except (OSError, ValueError):
        pass


def _owner(path: Path) -> str | None:
    """The loopback URI of the process that has the database open, when it recorded one and still runs."""
    try:
        data = json.loads(_server_file(path).read_text(encoding="utf-8"))
        pid, uri = int(data["pid"]), str(data["uri"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return uri if uri.startswith("http://127.0.0.1:") and pid != os.getpid() else None

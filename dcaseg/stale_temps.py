"""Temporary files of the atomic writers, and the removal of those a dead process left behind.

A writer names its temporary sibling ``.<name>.tmp-<pid>-<random>...``. A process killed while
writing (``kill -9``, power loss) leaves that file; the next write into the same folder removes it
when its writer is no longer running on this machine and it has not changed for ten minutes
(the grace covers a writer on another machine sharing the folder), or, whatever the process id,
when it has not changed for a day (process ids are reused). Where a process cannot be probed
without harm (Windows), only the one-day rule applies.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

DEAD_WRITER_GRACE_S = 600.0
ABANDONED_AFTER_S = 86400.0
_TEMP_NAME = re.compile(r"^\..+\.tmp-(\d+)-[A-Za-z0-9_]+")
_swept: set[str] = set()


def temp_prefix(name: str) -> str:
    """The start of a temporary sibling's name for the file ``name`` written by this process."""
    return f".{name}.tmp-{os.getpid()}-"


def writer_pid(name: str) -> int | None:
    """The process id in a temporary file's name, or None if ``name`` is not one of ours."""
    match = _TEMP_NAME.match(name)
    return int(match.group(1)) if match else None


def sweep_once(folder: Path) -> None:
    """Remove the stale temporary files in ``folder``, the first time this process writes there."""
    key = os.path.abspath(folder)
    if key in _swept:
        return
    _swept.add(key)
    remove_stale_temps(folder)


def remove_stale_temps(folder: Path, now: float | None = None) -> list[Path]:
    """Remove the temporary files (or staging folders) in ``folder`` whose writer is gone; return them."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        pid = writer_pid(entry.name)
        if pid is None or pid == os.getpid():
            continue
        try:
            idle = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if idle < ABANDONED_AFTER_S and not (idle >= DEAD_WRITER_GRACE_S and not _running(pid)):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


def _running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (True where that cannot be asked safely)."""
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by another user
        return True
    return True

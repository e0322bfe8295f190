"""One training per run folder: an exclusive lock on ``RUN/run.lock`` held while a process trains there.

The lock is the operating system's (``fcntl.flock`` on Linux and macOS, ``msvcrt.locking`` on
Windows), so it ends with the process that holds it, however that process ends: a killed run can
be resumed at once. The file itself stays; it names the holder (pid, host, start time) so that a
refused second process can say who has the run. Processes started while the lock is held (the
torchrun workers of ``--gpus N``) inherit ``HELD_ENV`` naming the folder and take no lock of their own.
"""
from __future__ import annotations

import datetime
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InputError

LOCK_FILE = "run.lock"
HELD_ENV = "DCASEG_RUN_LOCK_HELD"
_WINDOWS_LOCK_OFFSET = 1 << 30  # Windows locks bytes; lock one far past the holder's note so others can read it


class RunBusyError(InputError):
    """The run folder is in use by another live training process."""


@contextmanager
def run_lock(folder: Path, create: bool = True) -> Iterator[None]:
    """Hold ``folder``'s lock for the block; ``RunBusyError`` if another process holds it.

    ``create`` makes a missing folder (a new run); otherwise a missing folder is an ``InputError``.
    """
    key = str(Path(folder).resolve())
    if os.environ.get(HELD_ENV) == key:  # a worker of the process that holds it
        yield
        return
    descriptor = _acquire(Path(folder), create)
    previous = os.environ.get(HELD_ENV)
    os.environ[HELD_ENV] = key
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(HELD_ENV, None)
        else:
            os.environ[HELD_ENV] = previous
        try:
            _unlock(descriptor)
        finally:
            os.close(descriptor)


def _acquire(folder: Path, create: bool) -> int:
    """The open, locked lock file of ``folder``, with this process named in it."""
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        raise InputError(f"{folder}: no such run folder")
    path = folder / LOCK_FILE
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
    try:
        if not _try_lock(descriptor):
            raise RunBusyError(f"{folder}: another training is running in this run folder ({holder(path)}); "
                               "wait for it to finish or stop it first")
        _write_holder(descriptor)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def holder(path: Path) -> str:
    """Who holds the lock file at ``path``, as written by its holder ("pid 12, host h, since ...")."""
    try:
        note = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {int(note['pid'])} on {note['host']}, since {note['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its name yet"


def _write_holder(descriptor: int) -> None:
    note = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    os.ftruncate(descriptor, 0)
    os.lseek(descriptor, 0, os.SEEK_SET)
    os.write(descriptor, json.dumps(note).encode("utf-8"))


if sys.platform == "win32":
    import msvcrt

    def _try_lock(descriptor: int) -> bool:
        os.lseek(descriptor, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(descriptor: int) -> None:
        os.lseek(descriptor, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(descriptor, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(descriptor: int) -> bool:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(descriptor: int) -> None:
        fcntl.flock(descriptor, fcntl.LOCK_UN)

"""Atomic file writes: a temporary sibling, flushed to disk, then renamed over the target.

A reader sees the old file or the new one, never half of one; a failed write (full disk, killed
process, error while serialising) leaves the old file as it was and no temporary file behind.
An operating-system failure (full disk, no permission), also one a serialiser wraps in its own
exception (``torch.save`` raises a ``RuntimeError`` over the ``OSError``), is an ``InputError``
naming the file. Temporary files that a killed process left in the folder are removed on its
first write there (see ``stale_temps``).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import InputError
from .stale_temps import sweep_once, temp_prefix

_DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
_UMASK = os.umask(0)
os.umask(_UMASK)


def _mode_for(path: Path) -> int:
    """The replaced file's permissions, or a new file's (mkstemp's own 0600 would hide it from others)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_write(path: str | Path, binary: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it replaces ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_once(path.parent)
        handle, temp_name = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise _cannot_write(path, error) from None
    try:
        with (os.fdopen(handle, "wb") if binary else os.fdopen(handle, "w", encoding="utf-8", newline="")) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_name, _mode_for(path))
        os.replace(temp_name, path)
        fsync_folder(path.parent)
    except BaseException as error:
        Path(temp_name).unlink(missing_ok=True)
        cause = os_error_in(error) if isinstance(error, Exception) else None
        if cause is not None:
            raise _cannot_write(path, cause) from None
        raise


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A staging folder beside ``path`` with normal permissions; on a clean exit it replaces ``path``.

    An existing folder at ``path`` is removed only after the new one took its place.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_once(path.parent)
        staging = Path(tempfile.mkdtemp(prefix=temp_prefix(path.name), dir=path.parent))
        os.chmod(staging, 0o777 & ~_UMASK)  # mkdtemp's 0700 would hide a shared model from other users
    except OSError as error:
        raise _cannot_write(path, error) from None
    try:
        yield staging
        _swap_folder(staging, path)
        fsync_folder(path.parent)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        cause = os_error_in(error) if isinstance(error, Exception) else None
        if cause is not None:
            raise _cannot_write(path, cause) from None
        raise


def write_bytes_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file and flush it to disk (inside an ``atomic_folder``)."""
    with open(path, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    os.chmod(path, 0o666 & ~_UMASK)


def _swap_folder(staging: Path, target: Path) -> None:
    if not target.exists():
        os.replace(staging, target)
        return
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path) as stream:
        stream.write(text)
    return Path(path)


def write_json_atomic(path: str | Path, data: Any, indent: int = 2) -> Path:
    """Write ``data`` as JSON (with a final newline) to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(data, indent=indent) + "\n")


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the system allows syncing a folder)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def os_error_in(error: BaseException) -> OSError | None:
    """``error`` itself if it is an ``OSError``, else the first one it was raised from or during."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def cannot_write_reason(error: OSError) -> str:
    """The words for a failed write: "disk full" for a full disk or quota, else the system's reason."""
    if error.errno in _DISK_FULL:
        return "disk full"
    return error.strerror or str(error)


def _cannot_write(path: Path, error: OSError) -> InputError:
    return InputError(f"cannot write {path}: {cannot_write_reason(error)}")

"""Asking a running trainer to stop: a signal (SIGTERM, SIGINT) or a stop file in its run folder.

The stop file works on every platform: on Windows a process cannot be sent a signal that it can
catch, so the Slicer module's Stop writes the file there and everywhere else. The trainer polls
for it at each iteration boundary, writes a checkpoint and ends. Torch-free, so the Slicer module
can request a stop without importing the trainer.
"""
from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic

STOP_FILE = "stop-requested"


def stop_file(run_dir: str | Path) -> Path:
    """The file whose existence asks the trainer of ``run_dir`` to checkpoint and stop."""
    return Path(run_dir) / STOP_FILE


def request_stop(run_dir: str | Path) -> Path:
    """Ask the trainer of ``run_dir`` to checkpoint and stop at its next iteration boundary."""
    return write_text_atomic(stop_file(run_dir), "stop\n")


class StopRequest:
    """Set by SIGTERM/SIGINT or by the run folder's stop file; read ``requested`` once per iteration.

    A stop file left by an earlier run is removed on entry, and the one that stopped this run on exit.
    ``signalled`` tells a signal (exit code 130, as a shell expects) from a requested stop (exit 0).
    """

    def __init__(self, run_dir: str | Path | None = None) -> None:
        self.signalled = False
        self.file = stop_file(run_dir) if run_dir is not None else None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signalled or (self.file is not None and self.file.exists())

    def __enter__(self) -> StopRequest:
        self._remove_file()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signalled = True

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._remove_file()

    def _remove_file(self) -> None:
        if self.file is not None:
            self.file.unlink(missing_ok=True)

"""Run one engine command (``PythonSlicer -m dcaseg ...``) in the background and watch its events.

Generic: a command list goes in; JSON-line events from its stdout go to a callback; when it ends
the caller gets one ``ProcessResult``. Nothing here touches Qt or MRML: reader threads only fill
a queue, and ``poll()`` (called from the GUI's timer, or from ``wait()``) delivers events and the
result on the caller's thread. Cancel kills the whole process tree. A temporary folder handed to
the process is removed once the process has ended and the result was delivered.
"""
from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcaseg.events import parse_event_line

Event = dict[str, Any]
STDERR_LINES_KEPT = 50
KILL_GRACE_S = 3.0
# Windows process creation flags (the values of subprocess's constants, which exist only on Windows).
CREATE_NEW_PROCESS_GROUP = 0x00000200
CREATE_NO_WINDOW = 0x08000000


@dataclass
class ProcessResult:
    """How a run ended: ``status`` is ``done``, ``failed`` or ``cancelled``."""

    status: str
    returncode: int | None
    outputs: dict[str, str] = field(default_factory=dict)
    error: str = ""
    warnings: list[str] = field(default_factory=list)


class EngineProcess:
    """One background engine run; call ``start()``, then ``poll()`` until ``finished``."""

    def __init__(self, command: Sequence[str], on_event: Callable[[Event], None] | None = None,
                 on_finish: Callable[[ProcessResult], None] | None = None,
                 on_log: Callable[[str], None] | None = None,
                 env: dict[str, str] | None = None, temp_dir: Path | None = None) -> None:
        self.command = [str(part) for part in command]
        self.on_event = on_event
        self.on_finish = on_finish
        self.on_log = on_log
        self.env = env
        self.temp_dir = temp_dir
        self.result: ProcessResult | None = None
        self._process: subprocess.Popen | None = None
        self._queue: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_LINES_KEPT)
        self._error_event = ""
        self._warnings: list[str] = []
        self._outputs: dict[str, str] = {}
        self._cancelled = False
        self._open_streams = 0

    # ------------------------------------------------------------------ life cycle

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self.result is None

    @property
    def finished(self) -> bool:
        return self.result is not None

    def start(self) -> None:
        """Launch the command in its own process group (session) with piped, line-buffered output."""
        if self._process is not None:
            raise RuntimeError("this engine process was already started")
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            self._process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                             errors="replace", bufsize=1, env=env,
                                             **process_options())
        except OSError as error:
            self._finish(ProcessResult("failed", None, error=f"could not start {self.command[0]}: {error}"))
            return
        for name, stream in (("stdout", self._process.stdout), ("stderr", self._process.stderr)):
            self._open_streams += 1
            threading.Thread(target=self._read, args=(name, stream), daemon=True).start()

    def cancel(self) -> None:
        """Kill the process and every process it started; the result becomes ``cancelled``."""
        if self._process is None or not self.running:
            return
        self._cancelled = True
        kill_process_tree(self._process)

    def poll(self) -> bool:
        """Deliver queued events; once the process has ended, deliver the result. True while running."""
        if self._process is None or self.result is not None:
            return False
        while True:
            try:
                name, line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._open_streams -= 1
            elif name == "stdout":
                self._handle_stdout(line)
            else:
                self._handle_stderr(line)
        if self._open_streams == 0 and self._process.poll() is not None:
            self._finish(self._make_result(self._process.returncode))
            return False
        return True

    def wait(self, timeout: float | None = None, interval: float = 0.05) -> ProcessResult | None:
        """Poll until the run ends (for scripts and tests); None if ``timeout`` passes first."""
        return self.result if poll_until_done(self.poll, timeout, interval) else None

    # ------------------------------------------------------------------ internals

    def _read(self, name: str, stream) -> None:
        for line in stream:
            self._queue.put((name, line.rstrip("\r\n")))
        self._queue.put((name, None))

    def _handle_stdout(self, line: str) -> None:
        event = parse_event_line(line)
        if event is None:
            if line.strip() and self.on_log:
                self.on_log(line)
            return
        kind = event.get("event")
        if kind == "error":
            self._error_event = one_line(str(event.get("message", "")))
        elif kind == "warning":
            self._warnings.append(one_line(str(event.get("message", ""))))
        elif kind == "done":
            outputs = event.get("outputs") or {}
            self._outputs = {str(k): str(v) for k, v in outputs.items()} if isinstance(outputs, dict) else {}
        if self.on_event:
            self.on_event(event)

    def _handle_stderr(self, line: str) -> None:
        if line.strip():
            self._stderr_tail.append(line)
            if self.on_log:
                self.on_log(line)

    def _make_result(self, returncode: int) -> ProcessResult:
        if self._cancelled:
            return ProcessResult("cancelled", returncode, warnings=self._warnings)
        if returncode == 0 and not self._error_event:
            return ProcessResult("done", returncode, outputs=self._outputs, warnings=self._warnings)
        return ProcessResult("failed", returncode, error=self._error_message(returncode), warnings=self._warnings)

    def _error_message(self, returncode: int) -> str:
        if self._error_event:
            return self._error_event
        if self._stderr_tail:
            return one_line(self._stderr_tail[-1])
        return f"the engine stopped with exit code {returncode} and gave no reason"

    def _finish(self, result: ProcessResult) -> None:
        self.result = result
        try:
            if self.on_finish:
                self.on_finish(result)
        finally:
            if self.temp_dir is not None:
                shutil.rmtree(self.temp_dir, ignore_errors=True)


def process_options(os_name: str = os.name) -> dict[str, Any]:
    """``Popen`` options for an engine process started from Slicer's GUI.

    On Windows: no console window (a visible one would kill the run when closed; Slicer's
    ``launchConsoleProcess`` hides it too) and a process group of its own. Elsewhere: a session of
    its own, so Cancel can end the whole process tree.
    """
    if os_name == "nt":
        return {"creationflags": CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW}
    return {"start_new_session": True}


def poll_until_done(poll: Callable[[], bool], timeout: float | None, interval: float) -> bool:
    """Call ``poll`` (True while running) every ``interval`` s; False if ``timeout`` passes first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while poll():
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def one_line(text: str, limit: int = 500) -> str:
    """Collapse a message to one readable line."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def kill_process_tree(process: subprocess.Popen) -> None:
    """Terminate ``process`` and all its descendants, then kill whatever is left after a grace period."""
    descendants = _descendants(process.pid)
    if os.name == "nt":
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True, check=False,
                       **process_options())
    else:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            process.terminate()
    try:
        process.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        if os.name != "nt":
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        process.kill()
        process.wait()
    for child in descendants:  # children that left the process group (psutil only)
        try:
            child.kill()
        except Exception:  # noqa: BLE001 - already gone or not ours: nothing more to do
            pass


def _descendants(pid: int) -> list:
    """All child processes of ``pid`` when psutil is available (it is optional)."""
    try:
        import psutil
    except ImportError:
        return []
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def python_for_engine() -> str:
    """``PythonSlicer`` inside Slicer (a plain Python with Slicer's packages), else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


def engine_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment in which ``python -m dcaseg`` imports the same engine this process uses.

    Inside Slicer the engine ships next to the modules, a folder ``PythonSlicer`` does not search.
    """
    import dcaseg

    env = dict(os.environ if base is None else base)
    engine_root = str(Path(dcaseg.__file__).resolve().parents[1])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([engine_root, *[p for p in paths if p != engine_root]])
    return env

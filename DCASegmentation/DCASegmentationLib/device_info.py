"""What hardware the engine can use, asked of the engine itself (``dcaseg devices --json``).

Asking a subprocess keeps torch (and any CUDA driver trouble) out of Slicer's own process.
"""
from __future__ import annotations

import json
import subprocess
import threading
from dataclasses import dataclass, field

from .engine_process import engine_environment, one_line, process_options, python_for_engine
from .parameters import DEVICE_AUTO

QUERY_TIMEOUT_S = 120


@dataclass
class DeviceInfo:
    """torch version, CUDA state and the usable devices (``name`` for the engine, ``label`` for people)."""

    torch: str = ""
    cuda_build: str | None = None
    cuda_available: bool = False
    devices: list[dict] = field(default_factory=list)
    problem: str = ""

    def choices(self) -> list[tuple[str, str]]:
        """``(engine name, label)`` pairs for the device combo box, "auto" first."""
        best = next((d["label"] for d in self.devices if d["name"] != "cpu"), "CPU")
        return [(DEVICE_AUTO, f"Automatic ({best})"), *((d["name"], d["label"]) for d in self.devices)]

    def summary(self) -> str:
        """One line for the GUI."""
        if self.problem:
            return self.problem
        gpus = [d["label"] for d in self.devices if d["name"].startswith("cuda")]
        cuda = f"CUDA {self.cuda_build}: " + (", ".join(gpus) if gpus else "no usable GPU") \
            if self.cuda_build else "CPU-only build"
        return f"torch {self.torch}, {cuda}"


class DeviceQuery:
    """``query_devices`` on a background thread, so the GUI stays live while torch imports."""

    def __init__(self, python: str | None = None) -> None:
        self.python = python
        self.info: DeviceInfo | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def done(self) -> bool:
        return self.info is not None

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        self.info = query_devices(self.python)


def query_devices(python: str | None = None) -> DeviceInfo:
    """Run ``dcaseg devices --json``; a failure becomes ``DeviceInfo.problem`` (one line)."""
    command = [python or python_for_engine(), "-m", "dcaseg", "devices", "--json"]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S,
                                   env=engine_environment(), check=False,
                                   **process_options())
    except (OSError, subprocess.TimeoutExpired) as error:
        return DeviceInfo(problem=f"could not ask the engine for devices: {one_line(str(error))}")
    if completed.returncode != 0:
        lines = [line for line in completed.stderr.splitlines() if line.strip()]
        reason = one_line(lines[-1]) if lines else f"exit code {completed.returncode}"
        return DeviceInfo(problem=f"could not ask the engine for devices: {reason}")
    try:
        data = json.loads(completed.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return DeviceInfo(problem="the engine's device list was not readable")
    return DeviceInfo(torch=str(data.get("torch", "")), cuda_build=data.get("cuda_build"),
                      cuda_available=bool(data.get("cuda_available")), devices=list(data.get("devices", [])))

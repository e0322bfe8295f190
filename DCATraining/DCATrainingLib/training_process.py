"""Start, stop, resume and retrain: ``dcaseg train`` as a background subprocess.

The process runs through DCASegmentation's engine-process runner (events from its stdout, one
readable error). Stop asks the trainer through its stop file to checkpoint and end, so a stopped
run can be resumed; the process tree is killed only if it does not end in time. A
``TrainingMonitor`` follows the run folder's ``events.jsonl``.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from dcaseg.errors import InputError
from dcaseg.training.run_folder import RunFolder
from dcaseg.training.split_file import read_split, write_split
from dcaseg.training.stop_request import request_stop
from DCASegmentationLib.engine_process import (
    EngineProcess,
    ProcessResult,
    engine_environment,
    poll_until_done,
    python_for_engine,
)

from .training_monitor import TrainingMonitor

PRESETS = ("cpu-demo", "paper", "tiny")
STOP_GRACE_S = 120.0


@dataclass(frozen=True)
class TrainingRequest:
    """What to train: dataset folder, run folder and the user's choices.

    ``unlabeled_weight`` is λ, the weight of the pseudo-label loss (0 trains on the labels only);
    None keeps the preset's.
    """

    data: Path
    run: Path
    preset: str = "cpu-demo"
    iterations: int | None = None
    unlabeled_weight: float | None = None
    device: str | None = None
    init_from: Path | None = None
    regroup: bool = False
    extra_args: tuple[str, ...] = ()

    def command(self, resume: bool = False) -> list[str]:
        """The engine command line for a fresh start, or to ``resume`` the run at its last checkpoint."""
        engine = [python_for_engine(), "-m", "dcaseg", "train"]
        device = ["--device", self.device] if self.device else []
        if resume:
            return engine + ["--resume", str(self.run), *device, "--progress", "jsonl"]
        if self.preset not in PRESETS:
            raise InputError(f"unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}")
        command = engine + [str(self.data), "--run", str(self.run), "--preset", self.preset, *device,
                            "--progress", "jsonl"]
        if self.iterations:
            command += ["--iterations", str(int(self.iterations))]
        if self.unlabeled_weight is not None:
            command += ["--unlabeled-weight", f"{float(self.unlabeled_weight):g}"]
        if self.init_from:
            command += ["--init-from", str(self.init_from)]
        if self.regroup:
            command.append("--regroup")
        return command + list(self.extra_args)


def prepare_retrain(previous: TrainingRequest, model: str | Path, run: str | Path | None = None) -> TrainingRequest:
    """Fine-tune from ``model`` into a new run folder (default: a free ``<run>-retrain-N`` beside it).

    The new folder starts with the previous run's ``split.json``, so the same cases validate;
    the previous run and its model stay untouched.
    """
    target = Path(run) if run else next_free_run(previous.run)
    if target.exists() and any(target.iterdir()):
        raise InputError(f"{target}: the retrain run folder must be new or empty")
    target.mkdir(parents=True, exist_ok=True)
    write_split(target, read_split(previous.run))
    return replace(previous, run=target, init_from=Path(model), regroup=False)


def next_free_run(run: Path) -> Path:
    """``<run>-retrain-1``, ``-2``, ... : the first that does not exist yet."""
    base = run.name.split("-retrain-")[0]
    n = 1
    while (run.parent / f"{base}-retrain-{n}").exists():
        n += 1
    return run.parent / f"{base}-retrain-{n}"


class TrainingProcess:
    """One training subprocess plus the live monitor of its run folder.

    Stop writes the run folder's stop file, which the trainer polls at every iteration: it writes a
    checkpoint and ends with exit code 0, on Windows as elsewhere. If it has not ended after
    ``stop_grace_s`` the whole process tree is killed, leaving the last periodic checkpoint. Either
    way the run can be resumed.
    """

    def __init__(self, scene, request: TrainingRequest, resume: bool = False,
                 on_finish: Callable[[ProcessResult], None] | None = None,
                 on_log: Callable[[str], None] | None = None, stop_grace_s: float = STOP_GRACE_S) -> None:
        self.request = request
        self.resume = resume
        self.on_finish = on_finish
        self.stop_grace_s = stop_grace_s
        self.monitor = TrainingMonitor(scene, request.run)
        self.engine = EngineProcess(request.command(resume), on_finish=self._finished, on_log=on_log,
                                    env=engine_environment())
        self._stop_requested_at: float | None = None

    def start(self) -> None:
        """Launch the trainer in the background."""
        if self.resume and not RunFolder(self.request.run).checkpoint.is_file():
            raise InputError(f"{self.request.run}: no checkpoint to resume from")
        self.request.run.mkdir(parents=True, exist_ok=True)
        self.engine.start()

    def stop(self) -> None:
        """Ask the trainer to checkpoint and end (its stop file, on every platform); ``poll`` kills the
        tree if it has not ended within ``stop_grace_s``."""
        if not self.engine.running or self._stop_requested_at is not None:
            return
        self._stop_requested_at = time.monotonic()
        try:
            request_stop(self.request.run)
        except InputError:
            self.engine.cancel()

    def poll(self) -> bool:
        """Deliver the process's state and the run's new events; True while it runs."""
        running = self.engine.poll()
        if running and self._stop_requested_at is not None \
                and time.monotonic() - self._stop_requested_at > self.stop_grace_s:
            self.engine.cancel()
            running = self.engine.poll()
        self.monitor.poll()
        return running

    def wait(self, timeout: float | None = None, interval: float = 0.1) -> ProcessResult | None:
        """Poll until the trainer ends (scripts and tests); None when ``timeout`` passes first."""
        return self.result if poll_until_done(self.poll, timeout, interval) else None

    @property
    def state(self) -> str:
        """``idle``, ``running``, ``stopping``, ``stopped``, ``done`` or ``failed``."""
        result = self.engine.result
        if result is None:
            if not self.engine.running:
                return "idle"
            return "stopping" if self._stop_requested_at is not None else "running"
        if self._stop_requested_at is not None and (result.status != "done" or self.monitor.stopped_at is not None):
            return "stopped"
        return "done" if result.status == "done" else "failed"

    @property
    def error(self) -> str:
        """The engine's one-line reason when the run failed, else an empty string."""
        return self.engine.result.error if self.state == "failed" and self.engine.result else ""

    @property
    def running(self) -> bool:
        return self.engine.running

    @property
    def result(self) -> ProcessResult | None:
        return self.engine.result

    @property
    def model_path(self) -> Path | None:
        """The best model package the run exported (``RUN/model``), once it exists."""
        outputs = self.result.outputs if self.result else {}
        path = Path(outputs["model"]) if outputs.get("model") not in (None, "", "None") else \
            RunFolder(self.request.run).model
        return path if (path / "model.json").is_file() else None

    def _finished(self, result: ProcessResult) -> None:
        self.monitor.poll()
        if self.on_finish:
            self.on_finish(result)

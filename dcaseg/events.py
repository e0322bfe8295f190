"""Progress/event protocol: long work reports JSON-line events; sinks turn them into views.

Events are dicts with an ``event`` key naming one of the kinds in ``EVENT_FIELDS``, which declares
the fields each kind must carry (others may follow); ``Reporter.emit`` refuses anything else, so
producers and consumers (the Slicer modules, the terminal bar, a run's ``events.jsonl``) share one
definition. One protocol, many views: JSON lines for programs (Slicer), a progress bar for
people, a file for training runs.
"""
from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

Event = dict[str, Any]
Sink = Callable[[Event], None]

# Every event kind and the fields it must carry.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "stage": ("stage",),                        # a step of the work begins (reading, windows, train, ...)
    "progress": ("stage", "done", "total"),     # ``done`` of ``total`` units of a stage
    "warning": ("message",),                    # something the user should know; the work goes on
    "error": ("message",),                      # the work failed; one readable line
    "case": ("case", "index", "total", "status"),  # one case of a folder started / done / skipped / failed
    "done": (),                                 # the work finished; ``outputs`` names what it wrote
    "metrics": ("iteration",),                  # training losses, learning rate and λ of an iteration
    "validation": ("iteration", "dice"),        # validation Dice per class at an iteration
    "model": ("iteration",),                    # a better model package was exported
    "checkpoint": ("iteration", "path"),        # the run can be resumed from here
    "stopped": ("iteration",),                  # training stopped on request, after a checkpoint
    "resumed": ("iteration",),                  # training continues from a checkpoint
}


def check_event(event: Event) -> Event:
    """``event`` itself if its kind is declared and it carries the kind's fields, else ``ValueError``."""
    kind = event.get("event")
    if kind not in EVENT_FIELDS:
        raise ValueError(f"undeclared event kind {kind!r}")
    missing = [name for name in EVENT_FIELDS[kind] if name not in event]
    if missing:
        raise ValueError(f"event {kind!r} lacks {', '.join(missing)}")
    return event


def jsonl_sink(stream: TextIO = sys.stdout) -> Sink:
    """Write each event as one JSON line and flush (for programs reading a pipe)."""
    def write(event: Event) -> None:
        stream.write(json.dumps(event, default=str) + "\n")
        stream.flush()
    return write


def file_sink(path: str | Path) -> Sink:
    """Append each event as one JSON line to ``path`` (``events.jsonl`` of a run)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)

    def append(event: Event) -> None:
        with target.open("a", encoding="utf-8") as f:
            f.write(json.dumps(event, default=str) + "\n")
    return append


def progress_bar_sink(stream: TextIO = sys.stderr, width: int = 30,
                      clock: Callable[[], float] = time.monotonic) -> Sink:
    """Draw progress events as a one-line bar with rate and time left; warnings and errors on their own lines."""
    started: dict[str, tuple[float, int]] = {}  # stage -> (time, done) of its first progress event

    def draw(event: Event) -> None:
        kind = event.get("event")
        if kind == "progress" and event.get("total"):
            stage, done, total = str(event.get("stage", "")), int(event["done"]), int(event["total"])
            if stage not in started or done < started[stage][1]:
                started[stage] = (clock(), done)
            filled = int(width * done / total)
            stream.write(f"\r{stage[:12]:<12} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
                         f"{_rate_and_time_left(started[stage], clock(), done, total)}")
            if done >= total:
                stream.write("\n")
        elif kind == "stage":
            stream.write(f"{event.get('stage')}...\n")
        elif kind in ("warning", "error"):
            stream.write(f"{kind}: {event.get('message')}\n")
        elif kind == "metrics":
            fields = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                               for k, v in event.items() if k not in ("event", "time"))
            stream.write(f"{fields}\n")
        elif kind == "validation":
            dice = event.get("dice", {})
            mean = sum(dice.values()) / len(dice) if dice else float("nan")
            stream.write(f"validation at {event.get('iteration')}: mean Dice {mean:.4f}\n")
        stream.flush()
    return draw


def _rate_and_time_left(start: tuple[float, int], now: float, done: int, total: int) -> str:
    """`` 3.2/s, 0:41 left`` once some units are done, else nothing."""
    elapsed, units = now - start[0], done - start[1]
    if elapsed <= 0 or units <= 0:
        return ""
    rate = units / elapsed
    left = int(round((total - done) / rate))
    shown = f"{rate:.2f}/s" if rate >= 0.1 else f"{1 / rate:.1f} s each"
    return f" {shown}, {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d} left" if left >= 3600 else \
        f" {shown}, {left // 60}:{left % 60:02d} left"


def python_warnings_sink(event: Event) -> None:
    """Pass warning events on as Python warnings (the sink of a reporter nobody gave)."""
    if event.get("event") == "warning":
        warnings.warn(str(event.get("message")), RuntimeWarning, stacklevel=3)


class Reporter:
    """Fan events out to sinks. ``Reporter()`` with no sink is silent."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = list(sinks)

    def emit(self, event: str, **fields: Any) -> None:
        record = check_event({"event": event, **fields, "time": round(time.time(), 3)})
        for sink in self.sinks:
            sink(record)

    def progress(self, stage: str, done: int, total: int) -> None:
        self.emit("progress", stage=stage, done=done, total=total)

    def stage(self, stage: str) -> None:
        self.emit("stage", stage=stage)

    def warning(self, message: str) -> None:
        self.emit("warning", message=message)

    def error(self, message: str) -> None:
        self.emit("error", message=message)


def reporter_for(mode: str) -> Reporter:
    """``bar`` (people, stderr), ``jsonl`` (programs, stdout) or ``none``."""
    if mode == "jsonl":
        return Reporter(jsonl_sink(sys.stdout))
    if mode == "bar":
        return Reporter(progress_bar_sink(sys.stderr))
    if mode == "none":
        return Reporter()
    raise ValueError(f"unknown progress mode {mode!r}; use bar, jsonl or none")


def parse_event_line(line: str) -> Event | None:
    """Parse one line of an event stream; None for a line that is not an event (e.g. a log line)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and "event" in event else None

"""Progress/event protocol: long work reports JSON-line events; sinks turn them into views.

Events are dicts with an ``event`` key: ``progress`` (stage, done, total), ``stage`` (stage),
``metrics`` (iteration, loss, lr, lambda, ...), ``validation`` (iteration, dice), ``warning``
(message), ``done`` (outputs), ``error`` (message). One protocol, many views: JSON lines for
programs (Slicer), a progress bar for people, a file for training runs.
"""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

Event = dict[str, Any]
Sink = Callable[[Event], None]


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


def progress_bar_sink(stream: TextIO = sys.stderr, width: int = 30) -> Sink:
    """Draw progress events as a one-line bar; print warnings and errors on their own lines."""
    def draw(event: Event) -> None:
        kind = event.get("event")
        if kind == "progress" and event.get("total"):
            done, total = int(event["done"]), int(event["total"])
            filled = int(width * done / total)
            stream.write(f"\r{event.get('stage', '')[:12]:<12} [{'#' * filled}{'.' * (width - filled)}] "
                         f"{done}/{total}")
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


class Reporter:
    """Fan events out to sinks. ``Reporter()`` with no sink is silent."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = list(sinks)

    def emit(self, event: str, **fields: Any) -> None:
        record: Event = {"event": event, **fields, "time": round(time.time(), 3)}
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

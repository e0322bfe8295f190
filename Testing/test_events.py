"""The event protocol: declared kinds and fields, one definition for producers and consumers."""
from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import pytest

from dcaseg.events import EVENT_FIELDS, Reporter, check_event, progress_bar_sink, python_warnings_sink

TORCH_FREE = True
ROOT = Path(__file__).resolve().parents[1]


def test_an_undeclared_kind_or_a_missing_field_is_refused_at_the_producer():
    seen = []
    reporter = Reporter(seen.append)
    reporter.progress("windows", 3, 10)
    assert seen[-1]["event"] == "progress" and seen[-1]["done"] == 3
    with pytest.raises(ValueError, match="undeclared event kind 'progres'"):
        reporter.emit("progres", stage="windows", done=1, total=2)
    with pytest.raises(ValueError, match="lacks total"):
        reporter.emit("progress", stage="windows", done=1)
    assert len(seen) == 1


def test_every_kind_the_engine_emits_and_the_modules_read_is_declared():
    emitted = set()
    for path in (ROOT / "dcaseg").rglob("*.py"):
        emitted |= set(re.findall(r'\.emit\(\s*"([a-z_]+)"', path.read_text(encoding="utf-8")))
    read = set()
    for folder in ("DCASegmentation", "DCATraining"):
        for path in (ROOT / folder).rglob("*.py"):
            read |= set(re.findall(r'kind (?:==|in) \(?"([a-z_]+)"', path.read_text(encoding="utf-8")))
    assert emitted and read
    assert (emitted | read) - set(EVENT_FIELDS) == set()


def test_the_bar_shows_rate_and_time_left():
    stream, now = io.StringIO(), [100.0]
    draw = progress_bar_sink(stream, width=10, clock=lambda: now[0])
    for done, t in ((0, 100.0), (10, 105.0), (20, 110.0)):
        now[0] = t
        draw(check_event({"event": "progress", "stage": "windows", "done": done, "total": 50}))
    last = stream.getvalue().split("\r")[-1]
    assert "20/50" in last and "2.00/s" in last and "0:15 left" in last


def test_a_reporter_nobody_gave_still_shows_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Reporter(python_warnings_sink).warning("12 voxels were NaN")
    assert [str(w.message) for w in caught] == ["12 voxels were NaN"]

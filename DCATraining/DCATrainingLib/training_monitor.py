"""Live view of a training run: ``events.jsonl`` -> table nodes, loss and Dice charts, progress.

Loss chart: supervised loss, unsupervised loss and the weight λ over iterations. Dice chart: the
validation Dice of every organ and their mean. After a resume the trainer repeats iterations past
its last checkpoint; the curves then restart from that iteration instead of doubling back.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from dcaseg.anatomy import organ_color
from dcaseg.events import Event
from dcaseg.training.run_folder import RunFolder

from .event_file import EventFileReader
from .plot_nodes import fill_table, new_chart, new_series, new_table

LOSS_SERIES = (("supervised", "loss_sup", (0.12, 0.47, 0.71)),
               ("unsupervised", "loss_unsup", (1.0, 0.5, 0.05)),
               ("λ", "lambda", (0.4, 0.4, 0.4)))
METRIC_COLUMNS = ("iteration", "loss", "loss_sup", "loss_unsup", "lambda", "lr")
MEAN_COLOR = (0.0, 0.0, 0.0)


class TrainingMonitor:
    """Reads a run folder's events and keeps MRML plot nodes and a progress state up to date."""

    def __init__(self, scene, run_dir: str | Path, name: str | None = None) -> None:
        self.scene = scene
        self.run_dir = Path(run_dir)
        self.reader = EventFileReader(RunFolder(self.run_dir).events)
        label = name or f"DCA training {self.run_dir.name}"
        self.label = label
        self.metrics: list[dict[str, float]] = []
        self.validations: list[dict[str, Any]] = []
        self.organs: list[str] = []
        self.progress = 0.0
        self.iteration = 0
        self.finished = False
        self.outputs: dict[str, Any] = {}
        self.error: str | None = None
        self.stage = ""
        self.last_checkpoint: int | None = None
        self.resumed_at: int | None = None
        self.stopped_at: int | None = None
        self.total_iterations = _configured_iterations(self.run_dir)
        self.metrics_table = new_table(scene, f"{label} metrics")
        self.dice_table = new_table(scene, f"{label} validation Dice")
        fill_table(self.metrics_table, {column: [] for column in METRIC_COLUMNS})
        fill_table(self.dice_table, {"iteration": [], "mean": []})
        self.loss_chart = new_chart(scene, f"{label} losses", "Training losses and λ", "iteration", "value",
                                    [new_series(scene, f"{label} {title}", self.metrics_table, "iteration", column,
                                                color) for title, column, color in LOSS_SERIES])
        self.dice_chart = new_chart(scene, f"{label} Dice", "Validation Dice", "iteration", "Dice",
                                    [new_series(scene, f"{label} mean Dice", self.dice_table, "iteration", "mean",
                                                MEAN_COLOR)])

    def poll(self) -> list[Event]:
        """Read what the trainer appended, update nodes and state; returns the new events."""
        events = self.reader.read_new()
        if self.reader.restarted:
            self.metrics.clear()
            self.validations.clear()
            self.finished, self.error, self.outputs = False, None, {}
        for event in events:
            self._apply(event)
        if any(e.get("event") == "metrics" for e in events) or self.reader.restarted:
            fill_table(self.metrics_table, {c: [row.get(c, math.nan) for row in self.metrics]
                                            for c in METRIC_COLUMNS})
        if any(e.get("event") == "validation" for e in events) or self.reader.restarted:
            self._update_dice()
        return events

    def _apply(self, event: Event) -> None:
        kind = event.get("event")
        if kind == "metrics":
            row = {c: float(event[c]) for c in METRIC_COLUMNS if isinstance(event.get(c), (int, float))}
            if "iteration" in row:
                _drop_from(self.metrics, row["iteration"])
                self.metrics.append(row)
                self.iteration = int(row["iteration"])
                if self.total_iterations:
                    self.progress = min(1.0, self.iteration / self.total_iterations)
        elif kind == "validation":
            dice = {str(k): float(v) for k, v in (event.get("dice") or {}).items()}
            _drop_from(self.validations, float(event.get("iteration", 0)))
            mean = event.get("mean_dice", sum(dice.values()) / len(dice) if dice else math.nan)
            self.validations.append({"iteration": float(event.get("iteration", 0)), "mean": float(mean), **dice})
            self.organs += [organ for organ in dice if organ not in self.organs]
        elif kind == "progress" and event.get("total") and event.get("stage") == "train":
            self.iteration, self.total_iterations = int(event.get("done", 0)), int(event["total"])
            self.progress = min(1.0, self.iteration / self.total_iterations)
        elif kind == "stage":
            self.stage = str(event.get("stage", ""))
        elif kind == "checkpoint":
            self.last_checkpoint = int(event.get("iteration", 0))
        elif kind == "stopped":
            self.stopped_at = int(event.get("iteration", 0))
        elif kind == "resumed":
            self.resumed_at = int(event.get("iteration", 0))
            self.finished, self.error, self.stopped_at = False, None, None
        elif kind == "done":
            self.finished, self.progress = True, 1.0
            self.outputs = dict(event.get("outputs") or {})
        elif kind == "error":
            self.error = str(event.get("message", "training failed"))

    def _update_dice(self) -> None:
        columns = {"iteration": [row["iteration"] for row in self.validations],
                   "mean": [row["mean"] for row in self.validations]}
        for organ in self.organs:
            columns[organ] = [row.get(organ, math.nan) for row in self.validations]
        fill_table(self.dice_table, columns)
        shown = {self.dice_chart.GetNthPlotSeriesNode(i).GetYColumnName()
                 for i in range(self.dice_chart.GetNumberOfPlotSeriesNodes())}
        for value, organ in enumerate(self.organs, start=1):
            if organ not in shown:
                color = tuple(c / 255 for c in organ_color(organ, value))
                series = new_series(self.scene, f"{self.label} Dice {organ}", self.dice_table, "iteration", organ,
                                    color)
                self.dice_chart.AddAndObservePlotSeriesNodeID(series.GetID())

    def nodes(self) -> list:
        """Every node this monitor created (to show, save or remove)."""
        series = [chart.GetNthPlotSeriesNode(i) for chart in (self.loss_chart, self.dice_chart)
                  for i in range(chart.GetNumberOfPlotSeriesNodes())]
        return [self.metrics_table, self.dice_table, self.loss_chart, self.dice_chart, *series]

    def remove_nodes(self) -> None:
        """Take this monitor's nodes out of the scene."""
        for node in self.nodes():
            self.scene.RemoveNode(node)


def _drop_from(rows: list[dict[str, Any]], iteration: float) -> None:
    """Remove rows at or after ``iteration`` (a resumed run repeats them)."""
    while rows and rows[-1]["iteration"] >= iteration:
        rows.pop()


def _configured_iterations(run_dir: Path) -> int:
    """Planned iterations from the run's ``config.json`` (``train.iterations``; 0 when not known yet)."""
    try:
        config = json.loads(RunFolder(run_dir).config.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return 0
    train = config.get("train") if isinstance(config, dict) else None
    value = train.get("iterations") if isinstance(train, dict) else None
    return int(value) if isinstance(value, (int, float)) else 0

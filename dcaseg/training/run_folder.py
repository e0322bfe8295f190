"""The run folder: config.json, split.json, grouping.json, events.jsonl, run.lock, checkpoints/, model/, cache/.

``split.json`` is made once and then only grows: cases that gain a label later (a correction
saved from Slicer) join ``labeled``; ``validation`` never changes. Only rank 0 writes here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..events import Sink

SPLIT_KEYS = ("labeled", "unlabeled", "validation")


@dataclass(frozen=True)
class RunFolder:
    """Paths inside a training run folder."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def split(self) -> Path:
        return self.path / "split.json"

    @property
    def grouping(self) -> Path:
        return self.path / "grouping.json"

    @property
    def events(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.pt"

    @property
    def model(self) -> Path:
        return self.path / "model"

    @property
    def cache(self) -> Path:
        return self.path / "cache"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not readable JSON ({error.__class__.__name__}: {error})") from None


def check_outside_dataset(run: Path, data: Path) -> None:
    """Refuse a run folder inside the dataset folder: training never writes there."""
    if Path(run).resolve().is_relative_to(Path(data).resolve()):
        raise InputError(f"{run}: the run folder must not be inside the dataset folder {data} "
                         "(training never writes there)")


def resolve_split(labeled: list[str], unlabeled: list[str], previous: dict | None,
                  validation_cases: int | None, seed: int) -> tuple[dict[str, list[str]], list[str]]:
    """Fix which cases train (labeled / unlabeled) and which validate; returns (split, notes).

    ``labeled``/``unlabeled``: the dataset's cases now. ``previous``: a run's or the dataset's
    split.json (its ``validation`` is kept; its ``test`` cases are never used), or None to draw a
    new split (``validation_cases`` labeled cases, default a fifth, at least one if two exist).
    """
    has_label = set(labeled)
    everything = has_label | set(unlabeled)
    notes: list[str] = []
    if previous is None:
        order = [labeled[i] for i in np.random.default_rng(seed).permutation(len(labeled))]
        k = validation_cases if validation_cases is not None else max(1, round(len(labeled) / 5))
        k = min(max(k, 0), len(labeled) - 1)
        validation = sorted(order[:k])
        held = set()
    else:
        for key in SPLIT_KEYS:
            if not isinstance(previous.get(key, []), list):
                raise InputError(f"split.json: '{key}' must be a list of case ids")
        validation = [c for c in previous.get("validation", []) if c in has_label]
        for case in previous.get("validation", []):
            if case not in has_label:
                notes.append(f"validation case {case} has no label in the dataset any more; it is skipped")
        held = set(previous.get("test", []))
        for case in previous.get("labeled", []):
            if case not in everything:
                notes.append(f"case {case} of split.json is not in the dataset; it is skipped")
            elif case not in has_label:
                notes.append(f"case {case} is listed as labeled but has no label file; it trains unlabeled")
    fixed = set(validation) | held
    split = {"labeled": sorted(c for c in labeled if c not in fixed),
             "unlabeled": sorted(c for c in unlabeled if c not in fixed),
             "validation": sorted(validation)}
    if previous is not None:
        joined = sorted(set(split["labeled"]) - set(previous.get("labeled", [])))
        if joined:
            notes.append(f"newly labeled cases join training: {', '.join(joined)}")
    if not split["labeled"]:
        raise InputError("no labeled case is left for training after the validation cases; "
                         "add labels or lower --validation-cases")
    return split, notes


def tensorboard_sink(folder: Path) -> Sink | None:
    """Scalars of metrics/validation events as TensorBoard logs, or None if TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    writer = SummaryWriter(str(folder))

    def write(event: dict) -> None:
        step = event.get("iteration")
        if event.get("event") == "metrics":
            for key in ("loss", "loss_sup", "loss_unsup", "lr", "lambda"):
                writer.add_scalar(f"train/{key}", event[key], step)
        elif event.get("event") == "validation":
            writer.add_scalar("validation/mean_dice", event["mean_dice"], step)
            for organ, value in event["dice"].items():
                writer.add_scalar(f"validation/{organ}", value, step)
        writer.flush()
    return write

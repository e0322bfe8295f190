"""The demo: synthetic abdomen → train (cpu-demo) → segment held-out cases → evaluate → report.

Output folder (``demo_out/``): ``report.md`` (Dice table per organ), ``metrics.json``
(``mean_dice``, ``group_dice``, ``dice``), ``grouping.png``, ``training.png``,
``overlays/*.png`` (segmentation and the three attention maps), ``model/`` (the trained model
package), ``segmentations/`` and the intermediate ``data/``, ``test/``, ``run/`` folders.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .data.imageio import read_image, write_image_atomic
from .data.phantom import make_phantom
from .errors import InputError
from .events import Reporter, parse_event_line
from .grouping import count_voxels
from .inference import Predictor
from .labelsplit import GROUP_NAMES
from .metrics import evaluate_pair
from .package import load_package
from .report import dice_table, grouping_chart, overlay_slices, pick_slices, training_curves
from .training.config import preset
from .training.trainer import Trainer, TrainRequest

MARKER = "demo.json"


@dataclass
class DemoSettings:
    """Sizes of the demo: phantom cases for training (``labeled`` of them annotated) and held-out tests."""

    out: Path
    cases: int = 12
    labeled: int = 4
    test_cases: int = 3
    seed: int = 0
    preset: str = "cpu-demo"
    iterations: int | None = None
    device: str = "cpu"
    overlay_cases: int = 1


def _fresh_output(out: Path) -> None:
    """Make ``out`` empty; only a previous demo's folder (it has demo.json) is ever removed."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise InputError(f"{out}: exists and is not an earlier demo folder; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(json.dumps({"engine_version": __version__, "status": "running"}))


def run_demo(settings: DemoSettings, reporter: Reporter | None = None) -> dict[str, Any]:
    """Run the whole demo; returns the figures written to ``metrics.json``."""
    reporter = reporter or Reporter()
    out = Path(settings.out)
    started = time.perf_counter()
    _fresh_output(out)
    reporter.stage("synthetic abdomen")
    make_phantom(out / "data", settings.cases, settings.labeled, settings.seed)
    test_ids = make_phantom(out / "test", settings.test_cases, settings.test_cases, settings.seed + 1000)
    phantom_s = time.perf_counter() - started

    reporter.stage("training")
    tick = time.perf_counter()
    config = preset(settings.preset).with_overrides(iterations=settings.iterations, seed=settings.seed)
    result = Trainer(TrainRequest(run=out / "run", config=config, data=out / "data", device=settings.device),
                     reporter).train()
    train_s = time.perf_counter() - tick
    if result.model is None:
        raise InputError(f"training stopped at iteration {result.iteration} before a model was exported")
    shutil.copytree(result.model, out / "model", dirs_exist_ok=True)
    package = load_package(out / "model")
    meta = package.meta

    reporter.stage("segmenting held-out cases")
    tick = time.perf_counter()
    predictor = Predictor(package, device=settings.device, overlap=0.25)
    names = meta.class_names
    per_organ: dict[str, list[float]] = {}
    predictions = {}
    for done, case_id in enumerate(test_ids, start=1):
        image = read_image(out / "test" / "images" / f"{case_id}.nii.gz")
        reference = read_image(out / "test" / "labels" / f"{case_id}.nii.gz")
        prediction = predictor.predict(image, attention=done <= settings.overlay_cases)
        write_image_atomic(prediction.labels, out / "segmentations" / f"{case_id}.nii.gz")
        reference.CopyInformation(prediction.labels)
        for organ, score in evaluate_pair(prediction.labels, reference, names).items():
            if score.dice is not None:
                per_organ.setdefault(organ, []).append(score.dice)
        if done <= settings.overlay_cases:
            predictions[case_id] = (image, reference, prediction)
        reporter.progress("segment", done, len(test_ids))
    segment_s = time.perf_counter() - tick

    reporter.stage("report")
    dice = {names[v]: round(float(np.mean(per_organ[names[v]])), 4) for v in sorted(names) if names[v] in per_organ}
    group_dice = {g: _mean([dice.get(names[v]) for v in meta.groups[g]]) for g in GROUP_NAMES}
    mean_dice = _mean(list(dice.values()))
    events = [e for e in (parse_event_line(line) for line in
                          (out / "run" / "events.jsonl").read_text(encoding="utf-8").splitlines()) if e]
    rates = [e["iterations_per_s"] for e in events if e.get("event") == "metrics" and e.get("iterations_per_s")]
    metrics = {"mean_dice": mean_dice, "group_dice": group_dice, "dice": dice,
               "groups": {g: [names[v] for v in meta.groups[g]] for g in GROUP_NAMES},
               "test_cases": test_ids, "training": {"preset": settings.preset, "iterations": result.iteration,
                                                    "best_validation_mean_dice": result.best_mean_dice,
                                                    "median_iterations_per_s": _median(rates)},
               "seconds": {"phantom": round(phantom_s, 1), "training": round(train_s, 1),
                           "segmenting": round(segment_s, 1)}}
    _write_report(out, meta, metrics, events, predictions)
    metrics["seconds"]["total"] = round(time.perf_counter() - started, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (out / MARKER).write_text(json.dumps({"engine_version": __version__, "status": "done"}))
    reporter.emit("done", outputs={"report": str(out / "report.md"), "metrics": str(out / "metrics.json"),
                                   "model": str(out / "model")}, mean_dice=mean_dice, group_dice=group_dice)
    return metrics


def _write_report(out: Path, meta, metrics: dict[str, Any], events: list[dict], predictions: dict) -> None:
    shares_counts = count_voxels(sorted((out / "data" / "labels").glob("*.nii.gz")))
    foreground = sum(n for v, n in shares_counts.items() if v in meta.class_names)
    shares = {v: shares_counts.get(v, 0) / foreground for v in meta.class_names if shares_counts.get(v, 0)}
    grouping_chart(meta, shares, out / "grouping.png")
    training_curves(events, out / "training.png")
    overlays = []
    tail_values = list(meta.groups["tail"])
    (out / "overlays").mkdir(exist_ok=True)
    for case_id, (image, reference, prediction) in predictions.items():
        slices = pick_slices(reference, tail_values, 3)
        path = overlay_slices(image, reference, prediction.labels, prediction.attention, meta, slices,
                              out / "overlays" / f"{case_id}.png")
        overlays.append(path.relative_to(out))
    group_of = {meta.class_names[v]: g for g in GROUP_NAMES for v in meta.groups[g]}
    lines = [f"# DCA demo (dcaseg {__version__})", "",
             f"Synthetic abdomen: {len(metrics['test_cases'])} held-out cases, model trained with preset "
             f"`{metrics['training']['preset']}` for {metrics['training']['iterations']} iterations "
             f"({metrics['seconds']['training']} s).", "",
             "## Dice per organ on the held-out cases", "",
             dice_table(metrics["dice"], group_of, metrics["group_dice"], metrics["mean_dice"]),
             "## Grouping (Divide)", "", "![grouping](grouping.png)", "",
             "## Training", "", "![training](training.png)", "",
             "## Segmentation and attention maps", ""]
    lines += [f"![{p.stem}]({p.as_posix()})" for p in overlays]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return round(float(np.mean(kept)), 4) if kept else None


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 4) if values else None

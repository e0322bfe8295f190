"""The demo: synthetic abdomen → train (cpu-demo) → segment held-out cases → evaluate → report.

Output folder (``demo_out/``): ``report.md`` (Dice table per organ), ``metrics.json``
(``mean_dice``, ``group_dice``, ``dice``), ``grouping.png``, ``training.png``,
``overlays/*.png`` (segmentation and the three attention maps), ``model/`` (the trained model
package), ``segmentations/`` and the intermediate ``data/``, ``test/``, ``run/`` folders.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .atomic import write_json_atomic, write_text_atomic
from .data.imageio import read_image, write_image_atomic
from .data.phantom import make_phantom
from .errors import InputError
from .events import Reporter, parse_event_line
from .grouping import GROUP_NAMES, count_voxels
from .inference import PredictorOptions
from .inference.devices import resolve_device, usable_cores
from .metrics import OrganScore
from .package import ModelMeta, load_package
from .report import dice_table, grouping_chart, overlay_slices, pick_slices, training_curves
from .scoring import dice_by_organ, heads_of, mean_of, score_case, scoring_predictor
from .training.config import preset
from .training.distributed import torchrun_command
from .training.trainer import Trainer, TrainRequest, TrainResult

MARKER = "demo.json"


@dataclass
class DemoSettings:
    """Sizes of the demo: phantom cases for training (``labeled`` of them annotated) and held-out tests.

    ``processes``: training processes (DistributedDataParallel); None means two on a CPU with at
    least two cores (a small network gets no faster with a second thread, but a second process
    doubles the patches per second), else one.
    """

    out: Path
    cases: int = 16
    labeled: int = 8
    test_cases: int = 3
    seed: int = 0
    preset: str = "cpu-demo"
    iterations: int | None = None
    device: str = "cpu"
    overlay_cases: int = 1
    processes: int | None = None


def _fresh_output(out: Path) -> None:
    """Make ``out`` empty; only a previous demo's folder (it has demo.json) is ever removed."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise InputError(f"{out}: exists and is not an earlier demo folder; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / MARKER, {"engine_version": __version__, "status": "running"})


def default_processes(device: str) -> int:
    """Two training processes on a CPU with at least two usable cores, else one."""
    if device != "cpu":
        return 1
    return 2 if usable_cores() >= 2 else 1


def _train_in_processes(data: Path, run: Path, settings: DemoSettings, processes: int,
                        reporter: Reporter) -> TrainResult:
    """Train through torchrun (``dcaseg train`` workers) and relay rank 0's events to ``reporter``."""
    argv = [str(data), "--run-dir", str(run), "--preset", settings.preset, "--seed", str(settings.seed),
            "--device", settings.device, "--progress", "jsonl"]
    if settings.iterations is not None:
        argv += ["--iterations", str(settings.iterations)]
    command, env = torchrun_command(argv, processes)
    finished: dict[str, Any] | None = None
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True, encoding="utf-8") as process:
        assert process.stdout is not None
        for line in process.stdout:
            event = parse_event_line(line)
            if event is None:
                continue
            name = event.pop("event")
            event.pop("time", None)
            if name == "done":
                finished = event
            else:
                reporter.emit(name, **event)
    if process.returncode != 0 or finished is None:
        raise InputError(f"training in {processes} processes failed (exit code {process.returncode}); "
                         f"see {run / 'events.jsonl'}")
    model = finished.get("outputs", {}).get("model")
    return TrainResult(Path(model) if model else None, int(finished["iteration"]), False,
                       finished.get("best_mean_dice"))


def run_demo(settings: DemoSettings, reporter: Reporter | None = None) -> dict[str, Any]:
    """Run the whole demo; returns the figures written to ``metrics.json``."""
    reporter = reporter or Reporter()
    settings = replace(settings, device=str(resolve_device(settings.device)))
    out = Path(settings.out)
    started = time.perf_counter()
    _fresh_output(out)
    reporter.stage("synthetic abdomen")
    make_phantom(out / "data", settings.cases, settings.labeled, settings.seed)
    test_ids = make_phantom(out / "test", settings.test_cases, settings.test_cases, settings.seed + 1000)
    phantom_s = time.perf_counter() - started

    reporter.stage("training")
    tick = time.perf_counter()
    processes = settings.processes or default_processes(settings.device)
    if processes > 1:
        result = _train_in_processes(out / "data", out / "run", settings, processes, reporter)
    else:
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
    # Both heads are scored; the model's output (what `dcaseg segment` writes) is the one its
    # package names, chosen on the validation cases.
    predictor = scoring_predictor(package.build_network(settings.device), meta,
                                  PredictorOptions(device=settings.device, overlap=0.25))
    scores: dict[str, list[dict[str, OrganScore]]] = {head: [] for head in heads_of(meta)}
    predictions = {}
    for done, case_id in enumerate(test_ids, start=1):
        image = read_image(out / "test" / "images" / f"{case_id}.nii.gz")
        reference = read_image(out / "test" / "labels" / f"{case_id}.nii.gz")
        scored = score_case(predictor, image, reference, attention=done <= settings.overlay_cases)
        labels = scored.labels(meta.output)
        write_image_atomic(labels, out / "segmentations" / f"{case_id}.nii.gz")
        for head, organs in scored.scores.items():
            scores[head].append(organs)
        if done <= settings.overlay_cases:
            predictions[case_id] = (image, reference, labels, scored.prediction.attention)
        reporter.progress("segment", done, len(test_ids))
    segment_s = time.perf_counter() - tick

    reporter.stage("report")
    summary = {head: _summarise(cases, meta) for head, cases in scores.items()}
    dice, group_dice, mean_dice = (summary[meta.output][k] for k in ("dice", "group_dice", "mean_dice"))
    events = [e for e in (parse_event_line(line) for line in
                          (out / "run" / "events.jsonl").read_text(encoding="utf-8").splitlines()) if e]
    rates = [e["iterations_per_s"] for e in events if e.get("event") == "metrics" and e.get("iterations_per_s")]
    metrics = {"mean_dice": mean_dice, "group_dice": group_dice, "dice": dice,
               "output": meta.output, **summary,
               "groups": {g: [meta.class_names[v] for v in meta.groups[g]] for g in GROUP_NAMES},
               "test_cases": test_ids, "training": {"preset": settings.preset, "iterations": result.iteration,
                                                    "best_validation_mean_dice": result.best_mean_dice,
                                                    "median_iterations_per_s": _median(rates)},
               "seconds": {"phantom": round(phantom_s, 1), "training": round(train_s, 1),
                           "segmenting": round(segment_s, 1)}}
    _write_report(out, meta, metrics, events, predictions)
    metrics["seconds"]["total"] = round(time.perf_counter() - started, 1)
    write_json_atomic(out / "metrics.json", metrics)
    write_json_atomic(out / MARKER, {"engine_version": __version__, "status": "done"})
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
    for case_id, (image, reference, labels, attention) in predictions.items():
        slices = pick_slices(reference, tail_values, 3)
        path = overlay_slices(image, reference, labels, attention, meta, slices,
                              out / "overlays" / f"{case_id}.png")
        overlays.append(path.relative_to(out))
    group_of = {meta.class_names[v]: g for g in GROUP_NAMES for v in meta.groups[g]}
    lines = [f"# DCA demo (dcaseg {__version__})", "",
             f"Synthetic abdomen: {len(metrics['test_cases'])} held-out cases, model trained with preset "
             f"`{metrics['training']['preset']}` for {metrics['training']['iterations']} iterations "
             f"({metrics['seconds']['training']} s).", "",
             "## Dice per organ on the held-out cases", "",
             f"The model's output (what `dcaseg segment` writes) is **{metrics['output'].replace('_', ' ')}**: "
             "the head that scored the higher mean Dice on the validation cases. *aggregator* is the "
             "aggregation decoder (the paper's output); *experts fused* is the experts' logit "
             "concatenation, the pseudo-label the aggregator learns from. In a short run the experts "
             "find the small organs before the aggregator does.", "",
             dice_table({head.replace("_", " "): metrics[head] for head in heads_of(meta)}, group_of),
             "## Grouping (Divide)", "", "![grouping](grouping.png)", "",
             "## Training", "", "![training](training.png)", "",
             "## Segmentation and attention maps", ""]
    lines += [f"![{p.stem}]({p.as_posix()})" for p in overlays]
    write_text_atomic(out / "report.md", "\n".join(lines) + "\n")


def _summarise(cases: list[dict[str, OrganScore]], meta: ModelMeta) -> dict[str, Any]:
    """Mean Dice per organ over the cases, per group and overall."""
    names = meta.class_names
    scored = dice_by_organ(cases)
    dice = {names[v]: scored[names[v]] for v in sorted(names) if names[v] in scored}
    group_dice = {g: mean_of([dice.get(names[v]) for v in meta.groups[g]]) for g in GROUP_NAMES}
    return {"mean_dice": mean_of(dice.values()), "group_dice": group_dice, "dice": dice}


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 4) if values else None

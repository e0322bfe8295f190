"""Run the ablation: one phantom dataset, every variant x seed trained and scored on held-out cases.

Layout of the output folder: ``data/`` (training phantom: labeled + unlabeled), ``data-full/``
(the same cases, all labeled; written only for the fully supervised variant), ``test/``
(held-out labeled phantom cases, another phantom seed), ``cache/`` and ``cache-full/`` (shared
preprocessing of each training folder),
``runs/<variant>/seed<k>/`` (each run folder with its model), ``results.json`` (every finished
run, rewritten after each one, so an interrupted ablation keeps what it finished and a rerun
of the same command continues where it stopped; a call with other ``--variants`` or
``--seeds`` adds its runs to the same report), ``ablation.json`` / ``ablation.md`` /
``ablation.png`` (the report).
"""
from __future__ import annotations

import datetime
import multiprocessing
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..atomic import write_json_atomic, write_text_atomic
from ..data.imageio import read_image
from ..data.phantom import FAMILIES, make_phantom
from ..data.phantom_anatomy import CLASS_NAMES
from ..errors import InputError
from ..events import Reporter
from ..grouping import GROUP_NAMES, count_voxels, log_gap_grouping
from ..inference import PredictorOptions
from ..inference.devices import resolve_device
from ..package import ModelPackage, load_package
from ..scoring import heads_of, score_case, scoring_predictor
from ..training.config import TrainConfig
from ..training.run_folder import RunFolder, read_json
from ..training.trainer import Trainer, TrainRequest
from . import report
from .variants import (
    DEFAULT_N_FILTERS,
    DEFAULT_PATCH,
    GRID_SPACING,
    PAPER_VARIANTS,
    VARIANTS,
    base_config,
    variant_config,
    variant_key,
)

# The phantom's field of view (288 x 288 x 200 mm, as drawn) on the ablation's 4 mm grid.
PHANTOM_SIZE = (72, 72, 50)
TEST_SEED_OFFSET = 1000
SELECTION = ("variants", "seeds")  # settings that only choose which runs to do
SCORE_OVERLAP = 0.25  # sliding-window overlap when scoring the test cases


@dataclass(frozen=True)
class AblationSettings:
    """What decides an ablation's numbers (stored in ``settings.json``; a rerun must match it)."""

    budget: float = 1.0
    seeds: int = 3
    variants: tuple[str, ...] = PAPER_VARIANTS
    labeled: int = 4
    unlabeled: int = 12
    test: int = 4
    data_seed: int = 0
    n_filters: int = DEFAULT_N_FILTERS
    patch_size: tuple[int, int, int] = DEFAULT_PATCH
    sampling: str = "balanced"
    family: str = "standard"

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise InputError(f"--family must be one of {list(FAMILIES)}, got {self.family!r}")
        if self.seeds < 1:
            raise InputError(f"--seeds must be at least 1, got {self.seeds}")
        if self.labeled < 1 or self.unlabeled < 1 or self.test < 1:
            raise InputError("the ablation needs at least one labeled, one unlabeled and one test case")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["variants"], data["patch_size"] = list(self.variants), list(self.patch_size)
        return data


@dataclass(frozen=True)
class AblationLayout:
    """Paths inside the ablation's output folder."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def data_full(self) -> Path:
        return self.root / "data-full"

    @property
    def test(self) -> Path:
        return self.root / "test"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def cache_full(self) -> Path:
        return self.root / "cache-full"

    @property
    def settings(self) -> Path:
        return self.root / "settings.json"

    @property
    def results(self) -> Path:
        return self.root / "results.json"

    @property
    def report_json(self) -> Path:
        return self.root / "ablation.json"

    @property
    def report_md(self) -> Path:
        return self.root / "ablation.md"

    @property
    def figure(self) -> Path:
        return self.root / "ablation.png"

    def run(self, folder: str, seed: int) -> Path:
        return self.root / "runs" / folder / f"seed{seed}"


def machine_description(device: torch.device) -> str:
    """CPU model and core count (and the GPU when one is used)."""
    model = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
        model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                      if line.startswith("Model name")), model)
    except (OSError, subprocess.SubprocessError):
        pass
    text = f"{model}, {os.cpu_count()} cores"
    if device.type == "cuda":
        text += f", {torch.cuda.get_device_name(device)}"
    return text


def run_ablation(out: Path, settings: AblationSettings, command: str, device: str = "auto",
                 log: Callable[[str], None] = print, workers: int = 1) -> dict[str, Any]:
    """Train and score every selected variant for every seed; returns the report (also written to ``out``).

    ``workers`` > 1 trains that many runs side by side (see ``_run_in_parallel``); on a GPU they share it.
    """
    layout = AblationLayout(Path(out))
    _check_settings(layout, settings)
    target = resolve_device(device)
    training_cases = settings.labeled + settings.unlabeled
    _ensure_phantom(layout.data, training_cases, settings.labeled, settings.data_seed, settings.family)
    if any(VARIANTS[name].all_labeled for name in settings.variants):
        _ensure_phantom(layout.data_full, training_cases, training_cases, settings.data_seed, settings.family)
    _ensure_phantom(layout.test, settings.test, settings.test, settings.data_seed + TEST_SEED_OFFSET, settings.family)
    organ_of = dict(CLASS_NAMES)
    groupings = _groupings(layout.data, sorted(organ_of))
    report_groups = {g: [organ_of[v] for v in groupings["top2"][g]] for g in GROUP_NAMES}
    base = base_config(settings.budget, settings.n_filters, settings.patch_size, settings.sampling)
    keys = {name: variant_key(base, name, groupings) for name in VARIANTS}
    folders: dict[str, str] = {}
    for name in settings.variants:
        folders.setdefault(keys[name], name)
    records = _read_records(layout.results)
    selected = [(f"{key}#{seed}", name, key, seed) for seed in range(settings.seeds) for key, name in folders.items()]
    header = {"date": datetime.date.today().isoformat(), "machine": machine_description(target),
              "engine_version": __version__, "command": command, "device": str(target),
              "settings": {**settings.to_dict(), "iterations": base.iterations, "labeled_batch": base.labeled_batch,
                           "unlabeled_batch": base.unlabeled_batch, "spacing_mm": list(GRID_SPACING),
                           "base_config": base.to_dict()},
              "groupings": groupings, "run_keys": keys,
              # this call's runs and those finished before (a folder may hold other variants' runs)
              "planned_runs": len({record_id for record_id, *_ in selected} | set(records))}
    started, planned = time.perf_counter(), len(selected)
    todo = [run for run in selected if run[0] not in records]

    def finished(record_id: str, record: dict[str, Any]) -> None:
        record = records[record_id] = {**record, "machine": header["machine"], "date": header["date"]}
        write_json_atomic(layout.results, {"runs": records})
        wall = (time.perf_counter() - started) / 60.0
        summary = report.summarise_run(record["scores"]["aggregator"], list(organ_of.values()), report_groups)
        done = sum(r["key"] in folders and r["seed"] < settings.seeds for r in records.values())
        log(f"[{done}/{planned}] {record['variant']} seed {record['seed']}: train {record['train_seconds']:.0f} s, "
            f"score {record['eval_seconds']:.0f} s; mean Dice {summary['mean_dice']:.1f}, "
            f"tail {summary['tail'] or 0.0:.1f} ({wall:.1f} min since this call started)")
        _write_report(layout, header, records, keys, list(organ_of.values()), report_groups, wall, figure=False)

    jobs = [(record_id, (layout, name, key, seed, variant_config(base, name, seed), target))
            for record_id, name, key, seed in todo]
    if workers > 1 and len(jobs) > 1 and hasattr(os, "sched_setaffinity"):
        _run_in_parallel(jobs, workers, finished)
    else:
        for record_id, arguments in jobs:
            finished(record_id, _train_and_score(*arguments))
    wall = (time.perf_counter() - started) / 60.0
    return _write_report(layout, header, records, keys, list(organ_of.values()), report_groups, wall, figure=True)


def _run_in_parallel(jobs: list[tuple[str, tuple[Any, ...]]], workers: int,
                     finished: Callable[[str, dict[str, Any]], None]) -> None:
    """Train ``jobs`` in ``workers`` processes, each pinned to its own share of the CPU cores.

    A small CPU network does not get faster with more threads (benchmarks/RESULTS.md, "Hardware
    notes"), so separate runs side by side finish the ablation ``workers`` times sooner; on a GPU,
    one small run leaves most of it idle, and runs side by side share it. Results arrive in the parent,
    which alone writes the report.
    Linux only (the pinning needs ``os.sched_setaffinity``); elsewhere runs go one by one.
    """
    cores = sorted(os.sched_getaffinity(0))
    workers = min(workers, len(cores), len(jobs))
    shares = multiprocessing.get_context("spawn").Queue()
    for index in range(workers):
        shares.put(cores[index::workers])
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_pin_to_cores, initargs=(shares,)) as pool:
        pending = {pool.submit(_train_and_score, *arguments): record_id for record_id, arguments in jobs}
        for future in as_completed(pending):
            finished(pending[future], future.result())


def _pin_to_cores(shares: Any) -> None:
    """Worker initialiser: run on the next free share of cores, with one thread per core of it."""
    share = shares.get()
    os.sched_setaffinity(0, share)
    torch.set_num_threads(len(share))


def _train_and_score(layout: AblationLayout, name: str, key: str, seed: int, config: TrainConfig,
                     device: torch.device) -> dict[str, Any]:
    run_dir = layout.run(name, seed)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an interrupted run of this ablation: start it again from scratch
    start = time.perf_counter()
    full = VARIANTS[name].all_labeled
    request = TrainRequest(run=run_dir, config=config, data=layout.data_full if full else layout.data,
                           device=device.type, cache_dir=layout.cache_full if full else layout.cache)
    result = Trainer(request, Reporter()).train()
    if result.model is None or result.stopped:
        raise InputError(f"run {name} seed {seed} stopped at iteration {result.iteration} without a model")
    trained = time.perf_counter()
    scores = score_cases(load_package(result.model), layout.test, device)
    RunFolder(run_dir).checkpoint.unlink(missing_ok=True)  # the model package is kept; checkpoints are large
    return {"variant": name, "key": key, "seed": seed, "iterations": result.iteration,
            "train_seconds": round(trained - start, 2), "eval_seconds": round(time.perf_counter() - trained, 2),
            "model": str(result.model), "scores": scores}


def score_cases(package: ModelPackage, folder: Path, device: torch.device) -> dict[str, dict[str, Any]]:
    """Score every case of ``folder`` (``images/`` + ``labels/``, NIfTI) with each head of the model
    (``dcaseg.scoring``): head → case → organ → scores."""
    predictor = scoring_predictor(package.build_network(device), package.meta,
                                  PredictorOptions(overlap=SCORE_OVERLAP))
    scores: dict[str, dict[str, Any]] = {head: {} for head in heads_of(package.meta)}
    for image_path in sorted((folder / "images").glob("*.nii.gz")):
        case_id = image_path.name.removesuffix(".nii.gz")
        scored = score_case(predictor, read_image(image_path), read_image(folder / "labels" / image_path.name))
        for head, organs in scored.scores.items():
            scores[head][case_id] = {organ: score.to_dict() for organ, score in organs.items()}
    return scores


def _read_records(results: Path) -> dict[str, Any]:
    """The finished runs of ``results.json``; records written before the experts' head had its one
    name (``experts_fused``) store it as ``fused`` and are read under the new name."""
    records: dict[str, Any] = read_json(results)["runs"] if results.is_file() else {}
    for record in records.values():
        if "fused" in record["scores"]:
            record["scores"]["experts_fused"] = record["scores"].pop("fused")
    return records


def _write_report(layout: AblationLayout, header: dict[str, Any], records: dict[str, Any], keys: dict[str, str],
                  organs: list[str], groups: dict[str, list[str]], wall_minutes: float, figure: bool) -> dict[str, Any]:
    run_minutes = sum(r["train_seconds"] + r["eval_seconds"] for r in records.values()) / 60.0
    times = {"wall_minutes": round(wall_minutes, 2), "run_minutes": round(run_minutes, 2)}
    result = report.build_report({**header, **times, "finished_runs": len(records)}, records, keys, organs, groups)
    write_json_atomic(layout.report_json, result)
    write_text_atomic(layout.report_md, report.markdown(result))
    if figure and result["rows"]:
        report.figure(result, layout.figure)
    return result


def _check_settings(layout: AblationLayout, settings: AblationSettings) -> None:
    """Start a new ablation folder, or continue one made with the same settings.

    Only the selection of variants and the number of seeds may change between calls: runs are
    stored per configuration and seed, so a later call adds runs and reuses the finished ones.
    """
    wanted = {k: v for k, v in settings.to_dict().items() if k not in SELECTION}
    if layout.settings.is_file():
        stored = {k: v for k, v in {"sampling": "balanced", "family": "standard", **read_json(layout.settings)}.items()
                  if k not in SELECTION}
        if stored != wanted:
            changed = sorted(k for k in wanted if stored.get(k) != wanted[k])
            raise InputError(f"{layout.root} holds an ablation with other settings ({', '.join(changed)}); "
                             "rerun with the same settings to continue it, or choose a new folder")
        return
    if layout.root.exists() and any(layout.root.iterdir()):
        raise InputError(f"{layout.root}: not empty and not an ablation folder; choose a new folder")
    write_json_atomic(layout.settings, wanted)


def _ensure_phantom(folder: Path, cases: int, labeled: int, seed: int, family: str) -> None:
    """Write the phantom into ``folder`` once (through a temporary sibling, so it is whole or absent)."""
    if (folder / "labels.json").is_file():
        return
    staging = folder.with_name(f".{folder.name}.tmp")
    if staging.exists():
        shutil.rmtree(staging)
    make_phantom(staging, cases, labeled, seed, PHANTOM_SIZE, GRID_SPACING, family)
    staging.replace(folder)


def _groupings(data: Path, classes: Sequence[int]) -> dict[str, dict[str, list[int]]]:
    """Head/medium/tail of every grouping rule on the labeled training cases."""
    counts = count_voxels(sorted((data / "labels").glob("*.nii.gz")))
    return {rule: log_gap_grouping(counts, classes, rule).as_dict() for rule in ("top2", "uniform", "threshold")}

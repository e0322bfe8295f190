"""What a run trains on: the dataset's cases and split, classes, grouping, preprocessing, network.

Everything decided here is stored in the run folder on the first run (``split.json``,
``grouping.json``, ``config.json``) and read back on resume or retrain, so the same cases
validate and the same experts own the same classes.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..anatomy import organ_color, organ_snomed
from ..atomic import write_json_atomic
from ..data.cache import PreprocessSettings, median_spacing
from ..data.dataset import Case, require_trainable, scan_dataset
from ..data.preprocess import default_intensity
from ..events import Reporter
from ..grouping import GROUP_NAMES, count_voxels, log_gap_grouping
from ..nets import SINGLE_DECODER, ArchitectureConfig
from ..package import ClassInfo, ModelPackage, Preprocessing, expert_classes_from_groups, load_package
from .config import TrainConfig
from .run_folder import RunFolder, read_json, resolve_split
from .split_file import read_split_file


@dataclass
class TrainingPlan:
    """The resolved inputs of a run."""

    data: Path
    cases: dict[str, Case]
    split: dict[str, list[str]]
    classes: list[ClassInfo]
    groups: dict[str, list[int]]
    preprocessing: Preprocessing
    architecture: ArchitectureConfig
    initial: ModelPackage | None = None

    @property
    def label_values(self) -> tuple[int, ...]:
        return (0, *(c.value for c in self.classes))

    @property
    def class_names(self) -> dict[int, str]:
        return {c.value: c.name for c in self.classes}

    def cache_settings(self) -> PreprocessSettings:
        p = self.preprocessing
        x, y, z = p.target_spacing
        return PreprocessSettings((x, y, z), p.intensity, self.label_values, p.body_crop, p.modality)

    def files(self, key: str) -> list[Path]:
        """Image and label files of the cases in split ``key``."""
        return [f for c in self.split[key] for f in (self.cases[c].image, self.cases[c].label) if f]


def make_plan(data: Path, run: RunFolder, config: TrainConfig, *, init_from: Path | None = None,
              regroup: bool = False, write: bool = True, reporter: Reporter | None = None,
              target_spacing: tuple[float, ...] | None = None) -> TrainingPlan:
    """Scan ``data``, fix the split, classes and groups (reusing the run's), and build the network config.

    ``write`` False (ranks other than 0) reads what rank 0 wrote instead of writing.
    ``target_spacing`` (a resumed run's) overrides the preset's choice.
    """
    reporter = reporter or Reporter()
    scan = scan_dataset(data, inspect=True)
    require_trainable(scan)
    cases = {c.case_id: c for c in scan.cases}
    labeled = sorted(c.case_id for c in scan.cases if c.label is not None)
    unlabeled = sorted(c.case_id for c in scan.cases if c.label is None)
    previous = _previous_split(run, data)
    split, notes = resolve_split(labeled, unlabeled, previous, config.validation_cases, config.seed)
    for note in notes:
        reporter.warning(note)
    initial = load_package(init_from) if init_from else None
    classes = initial.meta.classes if initial else _dataset_classes(scan.classes, [cases[c].label for c in labeled])
    groups = _groups(run, classes, [cases[c].label for c in split["labeled"]], config, initial, regroup, reporter)
    if target_spacing is not None:
        config = config.with_overrides(target_spacing=tuple(target_spacing))
    preprocessing = _preprocessing(config, [cases[c].image for c in split["labeled"]], initial)
    architecture = _architecture(config, classes, groups, initial)
    if write:
        write_json_atomic(run.split, split)
        write_json_atomic(run.grouping, {"groups": groups, "classes": [c.to_dict() for c in classes],
                                         "rule": config.grouping_rule})
    return TrainingPlan(Path(data), cases, split, classes, groups, preprocessing, architecture, initial)


def _previous_split(run: RunFolder, data: Path) -> dict | None:
    for path in (run.split, Path(data) / "split.json"):
        if path.is_file():
            return read_split_file(path)
    return None


def _dataset_classes(names: dict[int, str], label_files: list[Path | None]) -> list[ClassInfo]:
    """Classes from labels.json/dataset.json names, or from the label values found when unnamed."""
    values = {int(v): str(n) for v, n in names.items() if int(v) > 0}
    if not values:
        counts = count_voxels(f for f in label_files if f)
        values = {v: f"label_{v}" for v in sorted(counts) if v > 0}
    return [ClassInfo(v, n, organ_color(n, v), organ_snomed(n)) for v, n in sorted(values.items())]


def _groups(run: RunFolder, classes: list[ClassInfo], label_files: list[Path | None], config: TrainConfig,
            initial: ModelPackage | None, regroup: bool, reporter: Reporter) -> dict[str, list[int]]:
    values = sorted(c.value for c in classes)
    if not regroup:
        if initial is not None:
            return {g: list(initial.meta.groups[g]) for g in GROUP_NAMES}
        if run.grouping.is_file():
            stored = read_json(run.grouping).get("groups", {})
            if sorted(v for g in GROUP_NAMES for v in stored.get(g, [])) == values:
                return {g: [int(v) for v in stored[g]] for g in GROUP_NAMES}
            reporter.warning("the run's grouping does not cover the current classes; regrouping")
    grouping = log_gap_grouping(count_voxels(f for f in label_files if f), values, config.grouping_rule)
    for warning in grouping.warnings():
        reporter.warning(warning)
    return grouping.as_dict()


def _preprocessing(config: TrainConfig, labeled_images: list[Path], initial: ModelPackage | None) -> Preprocessing:
    if initial is not None:
        p = initial.meta.preprocessing
        return Preprocessing(p.target_spacing, config.patch_size, p.modality, p.intensity, p.body_crop)
    x, y, z = config.target_spacing or median_spacing(labeled_images, config.min_spacing)
    return Preprocessing((x, y, z), config.patch_size, config.modality, default_intensity(config.modality),
                         config.body_crop)


def _architecture(config: TrainConfig, classes: list[ClassInfo], groups: dict[str, list[int]],
                  initial: ModelPackage | None) -> ArchitectureConfig:
    if initial is not None:  # the starting model's network; the run's config decides the fusion rule
        return replace(initial.meta.architecture, fusion=config.fusion)
    num_classes = len(classes) + 1
    if config.mode == "vnet":
        return ArchitectureConfig(num_classes, {}, config.n_filters, experts=SINGLE_DECODER, dfam=False,
                                  norm=config.norm)
    if config.label_split:
        expert_classes: dict[str, Any] = expert_classes_from_groups(groups, classes)
    else:
        expert_classes = {g: list(range(1, num_classes)) for g in GROUP_NAMES}
    return ArchitectureConfig(num_classes, expert_classes, config.n_filters, experts=config.experts, dfam=config.dfam,
                              norm=config.norm, fusion=config.fusion)

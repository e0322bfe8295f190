"""Write a prepared benchmark into the plain dataset layout, atomically as a whole folder.

Layout (see ``docs/reproduce.md``)::

    OUT/images/<case>.nii.gz          labeled + unlabeled + validation cases (the training pool)
    OUT/labels/<case>.nii.gz          labels of the labeled and validation cases only
    OUT/labels_heldout/<case>.nii.gz  labels of the unlabeled cases (never read by training)
    OUT/test/images/, OUT/test/labels/  the test cases, outside the training pool
    OUT/labels.json                   {"1": "spleen", ...}
    OUT/split.json                    {"labeled": [...], "unlabeled": [...], "validation": [...],
                                       "test": [...], "source": ..., ...}

Everything is written into a hidden staging folder beside OUT and renamed into place at the end,
so an interrupted run leaves no half-written dataset. An existing non-empty OUT is replaced only
with ``overwrite`` and is then kept as ``OUT.previous-<time>``.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..data.imageio import image_extension, read_header
from ..errors import InputError
from ..events import Reporter

SPLIT_KEYS = ("labeled", "unlabeled", "validation", "test")


@dataclass(frozen=True)
class RawCase:
    """The official files of one case; ``label`` is None when the download has none."""

    image: Path
    label: Path | None


def write_dataset(out: Path, cases: Mapping[str, RawCase], split: Mapping, organs: Sequence[str], *,
                  overwrite: bool = False, reporter: Reporter | None = None) -> None:
    """Copy ``cases`` into ``out`` as ``split`` places them; write ``labels.json`` and ``split.json``."""
    reporter = reporter or Reporter()
    out = Path(out)
    _check_target(out, overwrite)
    placements = _placements(cases, split)
    reporter.stage("checking files")
    for case_id, (case, _, _) in placements.items():
        _check_case(case_id, case)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        files = [(source, staging / folder / f"{case_id}{image_extension(source)}")
                 for case_id, (case, image_folder, label_folder) in placements.items()
                 for source, folder in ((case.image, image_folder), (case.label, label_folder))
                 if source is not None and folder is not None]
        for done, (source, target) in enumerate(files, start=1):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            reporter.progress("copying", done, len(files))
        _write_json(staging / "labels.json", {str(value): name for value, name in enumerate(organs, 1)})
        _write_json(staging / "split.json", dict(split))
        _move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _check_target(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{out} is not empty; pass --overwrite to replace it "
                         "(the old folder is kept as <OUT>.previous-<time>)")


def _placements(cases: Mapping[str, RawCase], split: Mapping) -> dict[str, tuple[RawCase, str, str | None]]:
    """case id -> (files, image folder, label folder or None) as the split places it."""
    folders = {"labeled": ("images", "labels"), "validation": ("images", "labels"),
               "unlabeled": ("images", "labels_heldout"), "test": ("test/images", "test/labels")}
    placements = {}
    for key in SPLIT_KEYS:
        for case_id in split[key]:
            if case_id in placements:
                raise InputError(f"case {case_id} appears twice in the split")
            if case_id not in cases:
                raise InputError(f"case {case_id} of the {key} set is missing from the download")
            case = cases[case_id]
            if case.label is None and key != "unlabeled":
                raise InputError(f"case {case_id} of the {key} set has no label file in the download")
            image_folder, label_folder = folders[key]
            placements[case_id] = (case, image_folder, label_folder if case.label else None)
    return placements


def _check_case(case_id: str, case: RawCase) -> None:
    image = read_header(case.image)
    if case.label is None:
        return
    label = read_header(case.label)
    if label.size != image.size:
        raise InputError(f"{case.label}: size {label.size} differs from its image {case.image} "
                         f"({image.size}) for case {case_id}")


def _write_json(path: Path, data: Mapping) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def _move_into_place(staging: Path, out: Path) -> None:
    staging.chmod(0o755)  # mkdtemp makes it private
    if out.is_dir() and any(out.iterdir()):
        out.rename(_unused_name(out.with_name(f"{out.name}.previous-{time.strftime('%Y%m%d-%H%M%S')}")))
    elif out.is_dir():
        out.rmdir()
    staging.rename(out)


def _unused_name(path: Path) -> Path:
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}-{number}")
    return candidate

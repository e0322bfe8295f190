"""Dataset folders: find cases (nnU-Net v2 raw or plain layout), read class names, check every case.

nnU-Net v2: ``imagesTr/<case>_0000<ending>``, ``labelsTr/<case><ending>``, ``dataset.json``
(``"labels"`` in nnU-Net v2 or MSD / v1 form, ``"file_ending"``), optional ``imagesTs/``
(unlabeled). Plain: ``images/<case>.<nii.gz|nii|nrrd|mha|mhd>`` (or a DICOM series folder),
``labels/<case>.<ext>``, optional ``labels.json`` (``{"1": "spleen", ...}``). Class names are read
by ``class_names``. A case without a label is unlabeled. One broken case (or two classes with one
name) never stops a scan: it becomes a ``Problem``.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from .class_names import duplicate_names, load_json, read_class_names
from .imageio import image_extension, read_image, strip_image_extension

NNUNET, PLAIN = "nnunet", "plain"
RELATIVE_TOLERANCE = 1e-4
DATA_COMPANIONS = (".raw", ".zraw", ".img")   # voxel files beside .mhd headers
SHOWN_PROBLEMS = 5   # problems named in the error that refuses training
CHANNEL_NAME = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass
class Case:
    """One image and, if annotated, its label map."""

    case_id: str
    image: Path
    label: Path | None = None

    @property
    def labeled(self) -> bool:
        return self.label is not None


@dataclass
class Problem:
    """Something wrong with one file of the dataset."""

    path: Path
    message: str
    case_id: str | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class CaseInfo:
    """What inspection found in a case: grid (x, y, z) and the label values present."""

    case_id: str
    labeled: bool
    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    organs: list[int] | None


@dataclass
class DatasetScan:
    """The cases of a dataset folder, its classes and every problem found."""

    root: Path
    layout: str
    cases: list[Case]
    classes: dict[int, str]
    problems: list[Problem] = field(default_factory=list)
    infos: dict[str, CaseInfo] = field(default_factory=dict)

    def _usable(self) -> list[Case]:
        broken = {p.case_id for p in self.problems}
        return [case for case in self.cases if case.case_id not in broken]

    @property
    def labeled_cases(self) -> list[Case]:
        """Labeled cases without problems."""
        return [case for case in self._usable() if case.labeled]

    @property
    def unlabeled_cases(self) -> list[Case]:
        """Unlabeled cases without problems."""
        return [case for case in self._usable() if not case.labeled]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (paths as strings, class keys as strings)."""
        usable = {case.case_id for case in self._usable()}
        cases = []
        for case in self.cases:
            info = self.infos.get(case.case_id)
            cases.append({"case_id": case.case_id, "image": str(case.image),
                          "label": str(case.label) if case.label else None, "labeled": case.labeled,
                          "usable": case.case_id in usable,
                          "size": list(info.size) if info else None,
                          "spacing": list(info.spacing) if info else None,
                          "organs": info.organs if info else None})
        return {"root": str(self.root), "layout": self.layout,
                "classes": {str(v): n for v, n in self.classes.items()}, "cases": cases,
                "problems": [{"path": str(p.path), "message": p.message, "case_id": p.case_id}
                             for p in self.problems]}


def scan_dataset(root: str | Path, inspect: bool = True) -> DatasetScan:
    """List the cases of ``root``; with ``inspect``, read each case (one volume at a time) and check it.

    Raises ``InputError`` only when the folder itself is unusable.
    """
    root = Path(root)
    layout = detect_layout(root)
    problems: list[Problem] = []
    cases = _list_nnunet(root, problems) if layout == NNUNET else _list_plain(root, problems)
    if not cases:
        raise InputError(f"{root}: no images found in this dataset folder")
    named = _classes_from_json(root, layout)
    duplicate = duplicate_names(named) if named else None
    if duplicate:
        problems.append(Problem(_class_file(root, layout), duplicate))
    scan = DatasetScan(root, layout, cases, named or {}, problems)
    if inspect:
        found: set[int] = set()
        for case in cases:
            info = _inspect_case(case, named, problems)
            if info is not None:
                scan.infos[case.case_id] = info
                found.update(info.organs or ())
        if named is None:
            scan.classes = {v: f"class_{v}" for v in sorted(found)}
    elif named is None:
        scan.classes = load_class_names(root)
    return scan


def require_trainable(scan: DatasetScan) -> None:
    """Raise ``InputError`` unless the scan has no problems and at least one usable labeled case.

    The one-line error names every problem (the first ``SHOWN_PROBLEMS`` and the count of the rest).
    """
    if scan.problems:
        count = len(scan.problems)
        shown = "; ".join(str(p) for p in scan.problems[:SHOWN_PROBLEMS])
        rest = f"; and {count - SHOWN_PROBLEMS} more" if count > SHOWN_PROBLEMS else ""
        raise InputError(f"{count} problem{'s' if count > 1 else ''} in {scan.root} "
                         f"(`dcaseg dataset {scan.root}` lists them): {shown}{rest}")
    if not scan.labeled_cases:
        raise InputError(f"no labeled cases in {scan.root}")


def load_class_names(root: str | Path) -> dict[int, str]:
    """Foreground label value -> name from labels.json or dataset.json; else ``class_<v>`` for the
    values found in the label files (read one at a time; unreadable ones are skipped)."""
    root = Path(root)
    layout = detect_layout(root)
    named = _classes_from_json(root, layout)
    if named is not None:
        return named
    problems: list[Problem] = []
    cases = _list_nnunet(root, problems) if layout == NNUNET else _list_plain(root, problems)
    values: set[int] = set()
    for case in cases:
        if case.label is not None:
            try:
                label = read_image(case.label)
            except InputError:
                continue
            values.update(int(v) for v in np.unique(sitk.GetArrayViewFromImage(label)) if v > 0)
    return {v: f"class_{v}" for v in sorted(values)}


def detect_layout(root: Path) -> str:
    """``nnunet`` or ``plain``; ``InputError`` if ``root`` is missing or neither."""
    if not root.exists():
        raise InputError(f"{root}: no such folder")
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    if (root / "imagesTr").is_dir() or (root / "dataset.json").is_file():
        return NNUNET
    if (root / "images").is_dir():
        return PLAIN
    raise InputError(f"{root}: not a dataset folder (expected images/ and labels/, "
                     "or nnU-Net's imagesTr/, labelsTr/ and dataset.json)")


def case_files(root: Path, layout: str, case_id: str, extension: str | None = None) -> tuple[Path, Path]:
    """Where a case's image and label belong in a dataset folder of ``layout`` (image, label).

    The extension defaults to the layout's: ``dataset.json``'s ``file_ending`` for nnU-Net, else ``.nii.gz``.
    """
    if layout == NNUNET:
        ending = extension or _nnunet_ending(root)
        return root / "imagesTr" / f"{case_id}_0000{ending}", root / "labelsTr" / f"{case_id}{ending}"
    ending = extension or ".nii.gz"
    return root / "images" / f"{case_id}{ending}", root / "labels" / f"{case_id}{ending}"


def _nnunet_ending(root: Path) -> str:
    data = load_json(root / "dataset.json") if (root / "dataset.json").is_file() else {}
    return str(data.get("file_ending", ".nii.gz")) if isinstance(data, dict) else ".nii.gz"


def _class_file(root: Path, layout: str) -> Path:
    return root / ("dataset.json" if layout == NNUNET else "labels.json")


def _classes_from_json(root: Path, layout: str) -> dict[int, str] | None:
    """Classes from the layout's JSON file (two classes may share a name here), or None if there is none."""
    path = _class_file(root, layout)
    return read_class_names(path, allow_duplicate_names=True) if path.is_file() else None


def _list_nnunet(root: Path, problems: list[Problem]) -> list[Case]:
    ending = _nnunet_ending(root)
    cases: dict[str, Case] = {}
    for folder in ("imagesTr", "imagesTs"):
        for path in _files(root / folder):
            match = CHANNEL_NAME.match(path.name[: -len(ending)]) if path.name.endswith(ending) else None
            if match is None:
                problems.append(Problem(path, f"not named <case>_0000{ending}"))
            elif match["channel"] != "0000":
                problems.append(Problem(path, "extra input channel (only single-channel CT is supported)",
                                        match["case"]))
            elif match["case"] in cases:
                problems.append(Problem(path, f"duplicate case id {match['case']!r}", match["case"]))
            else:
                cases[match["case"]] = Case(match["case"], path)
    _attach_labels(cases, root / "labelsTr", lambda p: _nnunet_label_id(p, ending, problems), problems)
    return [cases[key] for key in sorted(cases)]


def _nnunet_label_id(path: Path, ending: str, problems: list[Problem]) -> str | None:
    if path.name.endswith(ending) and len(path.name) > len(ending):
        return path.name[: -len(ending)]
    problems.append(Problem(path, f"not named <case>{ending}"))
    return None


def _list_plain(root: Path, problems: list[Problem]) -> list[Case]:
    cases: dict[str, Case] = {}
    folder = root / "images"
    for path in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
        case_id = path.name if path.is_dir() else _plain_case_id(path, problems)
        if case_id is None:
            continue
        if case_id in cases:
            problems.append(Problem(path, f"duplicate case id {case_id!r}", case_id))
        else:
            cases[case_id] = Case(case_id, path)
    _attach_labels(cases, root / "labels", lambda p: _plain_case_id(p, problems), problems)
    return [cases[key] for key in sorted(cases)]


def _plain_case_id(path: Path, problems: list[Problem]) -> str | None:
    if path.suffix.lower() in DATA_COMPANIONS:
        return None
    if image_extension(path) is None:
        problems.append(Problem(path, "not a recognised image file (.nii.gz, .nii, .nrrd, .mha, .mhd)"))
        return None
    return strip_image_extension(path)


def _attach_labels(cases: dict[str, Case], folder: Path, case_of: Callable[[Path], str | None],
                   problems: list[Problem]) -> None:
    """Give each case its label file; ``case_of`` names a file's case (or records why not)."""
    for path in _files(folder):
        case_id = case_of(path)
        if case_id is None:
            continue
        case = cases.get(case_id)
        if case is None:
            problems.append(Problem(path, f"label without an image (no case {case_id!r})"))
        elif case.label is not None:
            problems.append(Problem(path, f"second label for case {case_id!r}", case_id))
        else:
            case.label = path


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _inspect_case(case: Case, classes: dict[int, str] | None, problems: list[Problem]) -> CaseInfo | None:
    """Read the case's image, then its label (one volume in memory at a time); record problems."""
    try:
        image = read_image(case.image)
    except InputError as error:
        problems.append(_problem(case.image, error, case.case_id))
        return None
    geometry = (image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection())
    del image
    organs = None
    if case.label is not None:
        organs = _inspect_label(case, case.label, geometry, classes, problems)
        if organs is None:
            return None
    return CaseInfo(case.case_id, case.labeled, tuple(geometry[0]), tuple(geometry[1]), organs)


def _inspect_label(case: Case, path: Path, geometry: tuple, classes: dict[int, str] | None,
                   problems: list[Problem]) -> list[int] | None:
    """Label values present in ``path`` (background excluded), or None after recording a problem."""
    try:
        label = read_image(path)
    except InputError as error:
        problems.append(_problem(path, error, case.case_id))
        return None
    mismatch = geometry_mismatch(geometry, (label.GetSize(), label.GetSpacing(), label.GetOrigin(),
                                             label.GetDirection()))
    if mismatch:
        problems.append(Problem(path, f"label geometry differs from its image: {mismatch}", case.case_id))
        return None
    voxels = sitk.GetArrayViewFromImage(label)
    values = np.flatnonzero(np.bincount(voxels.ravel())) if voxels.dtype in (np.uint8, np.uint16) \
        else np.unique(voxels)
    del voxels, label
    if values.dtype.kind == "f" and not np.all(np.isfinite(values) & (values == np.round(values))):
        problems.append(Problem(path, "label has non-integer values", case.case_id))
        return None
    ints = [int(v) for v in values]
    bad = [v for v in ints if v < 0 or (classes is not None and v > 0 and v not in classes)]
    if bad:
        shown = ", ".join(map(str, bad[:8])) + (" ..." if len(bad) > 8 else "")
        problems.append(Problem(path, f"label values not in the class list: {shown}", case.case_id))
        return None
    return [v for v in ints if v > 0]


def geometry_mismatch(image: tuple, label: tuple) -> str | None:
    """The first difference between two grids (size, spacing, origin, direction), described; None if the same."""
    names = ("size", "spacing", "origin", "direction")
    for name, a, b in zip(names, image, label):
        if name == "size":
            same = tuple(a) == tuple(b)
        elif name == "direction":
            same = np.allclose(a, b, rtol=0.0, atol=RELATIVE_TOLERANCE)
        else:
            same = all(abs(x - y) <= RELATIVE_TOLERANCE * max(1.0, abs(x), abs(y)) for x, y in zip(a, b))
        if not same:
            return f"{name} {_fmt(b)} vs image {_fmt(a)}"
    return None


def _fmt(values: tuple) -> str:
    return "(" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) + ")"


def _problem(path: Path, error: InputError, case_id: str) -> Problem:
    message = str(error)
    prefix = f"{path}: "
    return Problem(path, message[len(prefix):] if message.startswith(prefix) else message, case_id)

"""``dcaseg prepare amos``: the AMOS22 download (``imagesTr``, ``labelsTr``, ``imagesVa``,
``labelsVa``, ``dataset.json``) as the AMOS 5 % semi-supervised benchmark: 10 labeled, 24
validation, the other training cases unlabeled, the 120 AMOS22 validation cases as test."""
from __future__ import annotations

from pathlib import Path

from ..data.class_names import read_class_names
from ..data.imageio import case_id_from_file, image_extension
from ..errors import InputError
from ..events import Reporter
from .layout import RawCase, write_dataset
from .splits import AMOS_5P_LABELED, AMOS_5P_PROVENANCE, AMOS_5P_SOURCE, AMOS_5P_VALIDATION, AMOS_ORGANS

_FOLDERS = ("imagesTr", "labelsTr", "imagesVa", "labelsVa")


def amos_raw_cases(raw_dir: Path) -> tuple[dict[str, RawCase], dict[str, RawCase]]:
    """(training cases, validation-release cases) of an AMOS22 download, keyed by case id."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise InputError(f"{raw_dir}: no such folder")
    missing = [name for name in _FOLDERS if not (raw_dir / name).is_dir()]
    if missing:
        raise InputError(f"{raw_dir}: not an AMOS22 download, missing folder(s) {', '.join(missing)}")
    _check_dataset_json(raw_dir / "dataset.json")
    training = _cases(raw_dir / "imagesTr", raw_dir / "labelsTr")
    required = [case for case in AMOS_5P_LABELED + AMOS_5P_VALIDATION if case not in training]
    if required:
        raise InputError(f"{raw_dir / 'imagesTr'}: {len(required)} labeled/validation case(s) of the "
                         f"AMOS 5 % split are missing: {', '.join(required[:6])}")
    return training, _cases(raw_dir / "imagesVa", raw_dir / "labelsVa")


def amos_split(training_ids: list[str], test_ids: list[str]) -> dict:
    """split.json content of the AMOS 5 % split for the cases found in the download."""
    held_out = set(AMOS_5P_LABELED) | set(AMOS_5P_VALIDATION)
    return {
        "labeled": list(AMOS_5P_LABELED),
        "unlabeled": sorted(case for case in training_ids if case not in held_out),
        "validation": list(AMOS_5P_VALIDATION),
        "test": sorted(test_ids),
        "source": AMOS_5P_SOURCE,
        "provenance": AMOS_5P_PROVENANCE,
    }


def prepare_amos(raw_dir: Path, out: Path, *, overwrite: bool = False,
                 reporter: Reporter | None = None) -> dict:
    """Convert the AMOS22 download in ``raw_dir`` into the dataset folder ``out``; returns the split."""
    training, test = amos_raw_cases(Path(raw_dir))
    split = amos_split(list(training), list(test))
    write_dataset(Path(out), {**training, **test}, split, AMOS_ORGANS, overwrite=overwrite,
                  reporter=reporter)
    return split


def _cases(images: Path, labels: Path) -> dict[str, RawCase]:
    label_files = {case_id_from_file(path): path for path in labels.iterdir()
                   if image_extension(path) and not path.name.startswith(".")}
    cases = {}
    for path in sorted(images.iterdir()):
        if image_extension(path) is None or path.name.startswith("."):
            continue
        case_id = case_id_from_file(path)
        if case_id in cases:
            raise InputError(f"{images}: two images for case {case_id}")
        cases[case_id] = RawCase(path, label_files.get(case_id))
    if not cases:
        raise InputError(f"{images}: no images")
    return cases


def _check_dataset_json(path: Path) -> None:
    """Refuse a dataset.json that describes another label set than AMOS22's 15 organs."""
    if not path.is_file():
        return
    foreground = read_class_names(path)
    if len(foreground) != len(AMOS_ORGANS):
        raise InputError(f"{path}: lists {len(foreground)} foreground labels; AMOS22 has {len(AMOS_ORGANS)}")

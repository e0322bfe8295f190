"""``dcaseg prepare synapse``: the BTCV "Multi-Atlas Labeling Beyond the Cranial Vault" download
(``RawData/Training/img/img0001.nii.gz``, ``RawData/Training/label/label0001.nii.gz``) as the
Synapse 20 % semi-supervised benchmark (4 labeled / 16 unlabeled / 4 validation / 6 test)."""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..events import Reporter
from .layout import RawCase, write_dataset
from .splits import SYNAPSE_20P, SYNAPSE_DEFAULT_TEST_SET, SYNAPSE_ORGANS, SYNAPSE_SCANS, synapse_case_id

_TRAINING_FOLDERS = (Path("RawData", "Training"), Path("Training"), Path("."))


def find_synapse_training(raw_dir: Path) -> tuple[Path, Path]:
    """The ``img`` and ``label`` folders of the BTCV training scans under ``raw_dir``."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise InputError(f"{raw_dir}: no such folder")
    for folder in _TRAINING_FOLDERS:
        images, labels = raw_dir / folder / "img", raw_dir / folder / "label"
        if images.is_dir() and labels.is_dir():
            return images, labels
    raise InputError(f"{raw_dir}: no BTCV training folders (expected RawData/Training/img and "
                     "RawData/Training/label, or img/ and label/ directly inside it)")


def synapse_raw_cases(raw_dir: Path) -> dict[str, RawCase]:
    """The 30 labeled BTCV training scans, keyed by our case id; refuses if any file is missing."""
    images, labels = find_synapse_training(raw_dir)
    cases, missing = {}, []
    for scan in SYNAPSE_SCANS:
        image, label = images / f"img{scan:04d}.nii.gz", labels / f"label{scan:04d}.nii.gz"
        missing += [path.name for path in (image, label) if not path.is_file()]
        cases[synapse_case_id(scan)] = RawCase(image, label)
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise InputError(f"{images.parent}: {len(missing)} of the 60 BTCV training files are missing: "
                         f"{shown}")
    return cases


def synapse_split(test_set: str = SYNAPSE_DEFAULT_TEST_SET) -> dict:
    """split.json content of the Synapse 20 % split whose test set is ``dhc`` or ``ga``."""
    if test_set not in SYNAPSE_20P:
        raise InputError(f"unknown Synapse test set {test_set!r}; use one of {', '.join(SYNAPSE_20P)}")
    chosen = SYNAPSE_20P[test_set]
    held_out = set(chosen.labeled) | set(chosen.validation) | set(chosen.test)
    return {
        "labeled": list(chosen.labeled),
        "unlabeled": [synapse_case_id(s) for s in SYNAPSE_SCANS if synapse_case_id(s) not in held_out],
        "validation": list(chosen.validation),
        "test": list(chosen.test),
        "source": chosen.source,
        "provenance": chosen.provenance,
        "test_set": test_set,
        "test_sets": {name: list(split.test) for name, split in SYNAPSE_20P.items()},
    }


def prepare_synapse(raw_dir: Path, out: Path, test_set: str = SYNAPSE_DEFAULT_TEST_SET, *,
                    overwrite: bool = False, reporter: Reporter | None = None) -> dict:
    """Convert the BTCV download in ``raw_dir`` into the dataset folder ``out``; returns the split."""
    split = synapse_split(test_set)
    write_dataset(Path(out), synapse_raw_cases(Path(raw_dir)), split, SYNAPSE_ORGANS,
                  overwrite=overwrite, reporter=reporter)
    return split

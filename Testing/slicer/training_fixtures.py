"""Real dataset folders for the DCATraining tests: synthetic abdomen + the real CT fixture."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from dcaseg.data.phantom import make_phantom

REALCT = Path(__file__).resolve().parents[1] / "Data" / "realct"
REAL_CASES = {"tsA": "tsA_ct_sm_noncontrast", "tsB": "tsB_ct_full_noncontrast"}


def real_class_names() -> dict[int, str]:
    """The fixture's 14 abdominal classes (the phantom uses the same values 1-13)."""
    return {int(k): v for k, v in json.loads((REALCT / "labelmap_abd14.json").read_text(encoding="utf-8")).items()}


def mixed_dataset(root: Path, phantom_cases: int = 3, phantom_labeled: int = 2,
                  real_labeled: tuple[str, ...] = ("tsA",), real_unlabeled: tuple[str, ...] = ("tsB",)) -> Path:
    """A plain-layout folder: small phantom cases plus real CT cases, one labels.json for all."""
    make_phantom(root, phantom_cases, phantom_labeled, seed=3, size=(48, 48, 32))
    for case in real_labeled + real_unlabeled:
        shutil.copyfile(REALCT / f"{REAL_CASES[case]}_image.nii.gz", root / "images" / f"{case}.nii.gz")
        if case in real_labeled:
            shutil.copyfile(REALCT / f"{REAL_CASES[case]}_label.nii.gz", root / "labels" / f"{case}.nii.gz")
    (root / "labels.json").write_text(json.dumps({str(k): v for k, v in real_class_names().items()}))
    return root

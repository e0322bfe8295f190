"""Real-CT check: train with the real CT fixture as the only labeled case, then segment it.

The unlabeled cases are synthetic phantoms on another grid (other size, spacing and origin), so
the pipeline must resample real intensities and real geometry next to synthetic ones. A smoke
test of the whole path (``dcaseg train`` in a subprocess → model package → predictor), not a score.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from dcaseg.data.imageio import read_image, write_image_atomic
from dcaseg.data.phantom import phantom_case
from dcaseg.inference import Predictor, PredictorOptions
from dcaseg.package import load_package

REALCT = Path(__file__).parent / "Data" / "realct"
IMAGE = REALCT / "tsA_ct_sm_noncontrast_image.nii.gz"
LABEL = REALCT / "tsA_ct_sm_noncontrast_label.nii.gz"
NAMES = {int(k): v for k, v in json.loads((REALCT / "labelmap_abd14.json").read_text(encoding="utf-8")).items()}


def make_dataset(root: Path) -> Path:
    """tsA (image + label) plus two unlabeled phantom CTs at 4.5 x 4.5 x 5 mm, plain layout."""
    data = root / "data"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    shutil.copyfile(IMAGE, data / "images" / "tsA.nii.gz")
    shutil.copyfile(LABEL, data / "labels" / "tsA.nii.gz")
    shutil.copyfile(REALCT / "labelmap_abd14.json", data / "labels.json")
    for index in range(2):
        image, _ = phantom_case(7, index, size=(64, 64, 40), spacing=(4.5, 4.5, 5.0))
        write_image_atomic(image, data / "images" / f"synthetic_{index}.nii.gz")
    return data


def test_train_on_real_ct_plus_synthetic_unlabeled_then_segment_it(tmp_path: Path) -> None:
    data = make_dataset(tmp_path)
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "dcaseg", "train", str(data), "--run", str(run),
                           "--preset", "tiny", "--iterations", "4", "--device", "cpu", "--progress", "jsonl"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events[-1]["event"] == "done" and events[-1]["iteration"] == 4
    warnings = " ".join(e["message"] for e in events if e["event"] == "warning")
    assert "esophagus" in warnings or "label 5" in warnings  # absent from tsA: put in tail with a warning

    split = json.loads((run / "split.json").read_text(encoding="utf-8"))
    assert split["labeled"] == ["tsA"] and sorted(split["unlabeled"]) == ["synthetic_0", "synthetic_1"]
    package = load_package(run / "model")
    assert {c.value: c.name for c in package.meta.classes} == NAMES
    assert sorted(v for g in package.meta.groups.values() for v in g) == sorted(NAMES)
    assert 5 in package.meta.groups["tail"]

    image = read_image(IMAGE)
    labels = Predictor(run / "model", PredictorOptions(device="cpu")).predict(IMAGE).labels
    assert labels.GetSize() == image.GetSize()
    assert np.allclose(labels.GetSpacing(), image.GetSpacing())
    assert np.allclose(labels.GetOrigin(), image.GetOrigin())
    assert np.allclose(labels.GetDirection(), image.GetDirection())
    values = set(np.unique(sitk.GetArrayViewFromImage(labels)).tolist())
    assert values <= {0, *NAMES}

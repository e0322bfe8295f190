"""Next case to annotate: uncertainty scores and ``dcaseg rank`` put a noise-replaced volume first."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dcaseg.active_learning import CaseScore, prediction_scores, rank
from dcaseg.data.phantom import make_phantom
from dcaseg.errors import InputError
from dcaseg.inference.predictor import Prediction

REALCT = Path(__file__).parent / "Data" / "realct"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Plain layout: a labeled and a clean unlabeled phantom, the real CT (unlabeled) and a noise-replaced CT."""
    root = tmp_path_factory.mktemp("rank") / "data"
    make_phantom(root, cases=2, labeled=1, seed=11, size=(48, 48, 32))
    shutil.copyfile(REALCT / "tsA_ct_sm_noncontrast_image.nii.gz", root / "images" / "realct.nii.gz")
    source = sitk.ReadImage(str(root / "images" / "phantom_001.nii.gz"))
    voxels = sitk.GetArrayFromImage(source).astype(np.float32)
    noise = np.random.default_rng(0).normal(voxels.mean(), voxels.std(), voxels.shape)
    corrupted = sitk.GetImageFromArray(noise.astype(np.int16))
    corrupted.CopyInformation(source)
    sitk.WriteImage(corrupted, str(root / "images" / "corrupted.nii.gz"))
    return root


def test_scores_of_a_known_prediction():
    aggregator = np.zeros((2, 2, 4), np.uint8)
    experts = np.zeros_like(aggregator)
    aggregator[0, 0, :3] = [1, 1, 2]   # 4 foreground voxels in the union, 2 disagree
    experts[0, 0, :4] = [1, 2, 0, 2]
    probabilities = np.zeros((2, 2, 4, 3), np.float32)
    probabilities[..., 0] = 1.0          # certain everywhere ...
    probabilities[1, 1, 3] = [1 / 3, 1 / 3, 1 / 3]  # ... except one maximally unsure voxel of 16
    prediction = Prediction(labels=sitk.GetImageFromArray(aggregator),
                            probabilities=sitk.GetImageFromArray(probabilities, isVector=True),
                            fused_labels=sitk.GetImageFromArray(experts))
    disagreement, entropy, foreground = prediction_scores(prediction)
    assert foreground == 4
    assert disagreement == pytest.approx(3 / 4)  # voxels 1 (1 vs 2), 2 (2 vs 0) and 3 (0 vs 2) differ
    assert entropy == pytest.approx(1 / 16)
    with pytest.raises(InputError, match="fused labels"):
        prediction_scores(Prediction(labels=prediction.labels))


def test_noise_replaced_volume_ranks_first_by_either_score(tiny_model, dataset, tmp_path):
    """``dcaseg rank`` as DCATraining runs it: a dataset folder in, JSON-line events and a ranking file out."""
    out = tmp_path / "ranking.json"
    command = [sys.executable, "-m", "dcaseg", "rank", str(dataset), "-m", str(tiny_model), "--device", "cpu",
               "--overlap", "0", "--out", str(out), "--progress", "jsonl"]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    events = [json.loads(line) for line in completed.stdout.splitlines()]
    assert [e["done"] for e in events if e["event"] == "progress"] == [1, 2, 3]
    assert events[-1]["event"] == "done" and events[-1]["outputs"] == {"ranking": str(out)}
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["score"] == "disagreement"
    cases = [c["case_id"] for c in document["cases"]]
    assert sorted(cases) == ["corrupted", "phantom_001", "realct"]  # the labeled case is not ranked
    scores = [CaseScore(**{**c, "image": Path(c["image"])}) for c in document["cases"]]
    assert [s.case_id for s in rank(scores, "disagreement")] == cases
    for by in ("disagreement", "entropy"):
        ranking = rank(scores, by)
        assert ranking[0].case_id == "corrupted", [(s.case_id, getattr(s, by)) for s in ranking]
        assert all(0.0 <= getattr(s, by) <= 1.0 and not math.isnan(getattr(s, by)) for s in scores)
    with pytest.raises(InputError, match="unknown ranking score"):
        rank(scores, "loss")

    missing = subprocess.run([sys.executable, "-m", "dcaseg", "rank", str(tmp_path / "nothing"), "-m",
                              str(tiny_model)], capture_output=True, text=True, check=False)
    assert missing.returncode == 2
    expected = f"dcaseg rank: error: {tmp_path / 'nothing'}: no such file or folder"
    assert missing.stderr.strip().splitlines() == [expected]

"""Dice, ASD and HD95 in millimetres against analytic values and a brute-force reference."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.distance import cdist

from dcaseg.errors import InputError
from dcaseg.metrics import (
    ABSENT_IN_BOTH,
    MISSING_IN_PREDICTION,
    MISSING_IN_REFERENCE,
    OK,
    dice_per_organ,
    evaluate_arrays,
    evaluate_pair,
    mean_dice,
    score_masks,
)

REALCT = Path(__file__).parent / "Data" / "realct"


def brute_force_distances(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Pooled border-to-border distances (mm) by checking every pair of border voxels."""
    def border(mask: np.ndarray) -> np.ndarray:
        padded = np.pad(mask, 1, constant_values=False)
        inner = padded[1:-1, 1:-1, 1:-1]
        all_neighbours_in = (padded[:-2, 1:-1, 1:-1] & padded[2:, 1:-1, 1:-1]
                             & padded[1:-1, :-2, 1:-1] & padded[1:-1, 2:, 1:-1]
                             & padded[1:-1, 1:-1, :-2] & padded[1:-1, 1:-1, 2:])
        return np.argwhere(inner & ~all_neighbours_in) * np.asarray(spacing)

    pa, pb = border(a), border(b)
    pairwise = cdist(pa, pb)
    return np.concatenate([pairwise.min(axis=1), pairwise.min(axis=0)])


def image(array: np.ndarray, spacing_xyz: tuple[float, float, float]) -> sitk.Image:
    result = sitk.GetImageFromArray(array.astype(np.uint8))
    result.SetSpacing(spacing_xyz)
    return result


def test_dice_of_offset_cubes_is_analytic():
    ref = np.zeros((30, 30, 30), np.uint8)
    pred = np.zeros_like(ref)
    ref[5:15, 5:15, 5:15] = 1
    pred[5:15, 5:15, 8:18] = 1  # shifted 3 voxels: overlap 10*10*7
    scores = evaluate_pair(image(pred, (1, 1, 1)), image(ref, (1, 1, 1)), {1: "cube"})
    assert scores["cube"].dice == pytest.approx(2 * 700 / 2000, abs=1e-12)
    assert scores["cube"].status == OK


def test_parallel_slabs_distance_uses_the_spacing_of_the_right_axis():
    ref = np.zeros((12, 14, 16), np.uint8)
    pred = np.zeros_like(ref)
    ref[2, 2:10, 2:12] = 1
    pred[5, 2:10, 2:12] = 1  # 3 slices above: every border voxel is exactly 3 * z-spacing away
    scores = evaluate_pair(image(pred, (0.9, 0.7, 2.5)), image(ref, (0.9, 0.7, 2.5)), {1: "slab"})
    slab = scores["slab"]
    assert slab.dice == 0.0
    assert slab.asd_mm == pytest.approx(7.5, abs=1e-12)
    assert slab.hd95_mm == pytest.approx(7.5, abs=1e-12)
    assert slab.volume_ml_ref == pytest.approx(80 * 0.9 * 0.7 * 2.5 / 1000)


def test_concentric_cubes_with_anisotropic_spacing_match_brute_force():
    shape = (40, 50, 60)
    spacing = (2.5, 0.8, 1.3)  # z, y, x
    ref = np.zeros(shape, bool)
    pred = np.zeros(shape, bool)
    ref[4:16, 10:30, 20:44] = True
    pred[6:14, 13:27, 24:40] = True  # strictly inside
    score = score_masks(pred, ref, spacing)
    expected = brute_force_distances(pred, ref, spacing)
    assert score.asd_mm == pytest.approx(expected.mean(), rel=1e-12)
    assert score.hd95_mm == pytest.approx(np.percentile(expected, 95), rel=1e-12)
    # every inner border voxel is at least 2 slices (5 mm) or 3 rows (2.4 mm) or 4 columns away
    assert expected.min() == pytest.approx(2.4)


def test_cropped_evaluation_equals_brute_force_on_the_full_volume_with_edge_contact():
    rng = np.random.default_rng(7)
    shape = (24, 40, 44)
    spacing = (3.0, 0.7, 1.1)
    z, y, x = np.indices(shape)
    ref = (((z - 6) * 3.0) ** 2 + ((y - 12) * 0.7) ** 2 + ((x - 10) * 1.1) ** 2) < 12.0 ** 2
    pred = (((z - 3) * 3.0) ** 2 + ((y - 14) * 0.7) ** 2 + ((x - 12) * 1.1) ** 2) < 10.0 ** 2
    pred &= rng.random(shape) > 0.05  # ragged surface with holes; touches the z = 0 face
    assert pred[0].any()
    labels_pred = pred.astype(np.uint8) * 3
    labels_ref = ref.astype(np.uint8) * 3
    score = evaluate_arrays(labels_pred, labels_ref, spacing, {3: "organ"})["organ"]
    expected = brute_force_distances(pred, ref, spacing)
    assert score.asd_mm == pytest.approx(expected.mean(), rel=1e-12)
    assert score.hd95_mm == pytest.approx(np.percentile(expected, 95), rel=1e-12)
    overlap = np.count_nonzero(pred & ref)
    assert score.dice == pytest.approx(2 * overlap / (pred.sum() + ref.sum()), rel=1e-12)


def test_missing_and_absent_organs_are_reported_not_invented():
    ref = np.zeros((10, 10, 10), np.uint8)
    pred = np.zeros_like(ref)
    ref[2:5, 2:5, 2:5] = 1  # organ 1 only in the reference
    pred[6:8, 6:8, 6:8] = 2  # organ 2 only in the prediction
    scores = evaluate_arrays(pred, ref, (2.0, 1.0, 1.0), {1: "a", 2: "b", 3: "c"})
    assert scores["a"].status == MISSING_IN_PREDICTION and scores["a"].dice == 0.0
    assert scores["a"].asd_mm is None and scores["a"].hd95_mm is None
    assert scores["a"].volume_ml_ref == pytest.approx(27 * 2 / 1000)
    assert scores["b"].status == MISSING_IN_REFERENCE and scores["b"].dice == 0.0
    assert scores["b"].hd95_mm is None
    assert scores["c"].status == ABSENT_IN_BOTH and scores["c"].dice is None
    assert mean_dice(scores) == 0.0
    assert mean_dice(scores, absent="one") == pytest.approx(1 / 3)


def test_geometry_mismatch_names_both_files():
    a = image(np.zeros((4, 5, 6), np.uint8), (1, 1, 1))
    b = image(np.zeros((4, 5, 6), np.uint8), (1, 1, 2))
    with pytest.raises(InputError, match="pred.nii.gz.*gt.nii.gz.*spacing"):
        evaluate_pair(a, b, {1: "x"}, pred_name="pred.nii.gz", ref_name="gt.nii.gz")
    c = image(np.zeros((4, 5, 6), np.uint8), (1, 1, 1))
    c.SetOrigin((0, 0, 5))
    with pytest.raises(InputError, match="origin"):
        evaluate_pair(a, c, {1: "x"})


def test_non_integer_prediction_is_refused():
    with pytest.raises(InputError, match="non-integer"):
        evaluate_arrays(np.full((3, 3, 3), 0.5), np.zeros((3, 3, 3), np.uint8), (1, 1, 1), {1: "x"})


def test_real_ct_labels_of_two_models_match_brute_force_with_anisotropic_spacing():
    """tsA's label vs the overlapping part of tsB's label (two segmentation model variants)."""
    names = {1: "spleen", 5: "esophagus", 6: "liver", 8: "aorta", 12: "adrenal_gland_right",
             13: "adrenal_gland_left"}
    ref_img = sitk.ReadImage(str(REALCT / "tsA_ct_sm_noncontrast_label.nii.gz"))
    pred_array = sitk.GetArrayFromImage(
        sitk.ReadImage(str(REALCT / "tsB_ct_full_noncontrast_label.nii.gz")))[82:112]
    spacing_xyz = (0.8, 1.1, 2.5)
    ref_img.SetSpacing(spacing_xyz)
    pred_img = sitk.GetImageFromArray(pred_array)
    pred_img.CopyInformation(ref_img)
    scores = evaluate_pair(pred_img, ref_img, names)
    ref_array = sitk.GetArrayFromImage(ref_img)
    spacing_zyx = spacing_xyz[::-1]
    assert scores["esophagus"].status == ABSENT_IN_BOTH
    for value in (8, 12, 13):
        expected = brute_force_distances(pred_array == value, ref_array == value, spacing_zyx)
        score = scores[names[value]]
        assert score.asd_mm == pytest.approx(expected.mean(), rel=1e-12)
        assert score.hd95_mm == pytest.approx(np.percentile(expected, 95), rel=1e-12)
    liver_p, liver_r = pred_array == 6, ref_array == 6
    assert scores["liver"].dice == pytest.approx(
        2 * np.count_nonzero(liver_p & liver_r) / (liver_p.sum() + liver_r.sum()), rel=1e-12)
    assert 0.95 < scores["liver"].dice < 1.0


def run_evaluate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dcaseg", "evaluate", *args, "--progress", "none"],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def real_case_folders(tmp_path):
    """GT: tsA's label (case_a) and a second case without prediction; PRED: tsB's label cropped to
    tsA (nnU-Net-style name case_a_0000) and a stray prediction without reference."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    ref = sitk.ReadImage(str(REALCT / "tsA_ct_sm_noncontrast_label.nii.gz"))
    ref.SetSpacing((0.8, 1.1, 2.5))
    pred_img = sitk.GetImageFromArray(sitk.GetArrayFromImage(
        sitk.ReadImage(str(REALCT / "tsB_ct_full_noncontrast_label.nii.gz")))[82:112])
    pred_img.CopyInformation(ref)
    sitk.WriteImage(ref, str(gt / "case_a.nii.gz"))
    sitk.WriteImage(ref, str(gt / "case_b.nrrd"))
    sitk.WriteImage(pred_img, str(pred / "case_a_0000.nii.gz"))
    sitk.WriteImage(pred_img, str(pred / "stray.mha"))
    return pred, gt, pred_img, ref


def test_evaluate_cli_json_and_csv_match_the_library(real_case_folders, tmp_path):
    pred, gt, pred_img, ref = real_case_folders
    names = REALCT / "labelmap_abd14.json"
    result = run_evaluate(str(pred), str(gt), "--names", str(names), "--json", "--csv",
                          str(tmp_path / "scores.csv"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["missing_predictions"] == ["case_b"]
    assert report["unmatched_predictions"] == ["stray"]
    organ_names = {int(k): v for k, v in json.loads(names.read_text(encoding="utf-8")).items()}
    expected = evaluate_pair(pred_img, ref, organ_names)
    case = report["cases"]["case_a"]
    assert set(case) == set(organ_names.values())
    for name, score in expected.items():  # NIfTI stores spacing as float32: compare to 1e-6
        assert case[name]["dice"] == score.dice and case[name]["status"] == score.status
        if score.hd95_mm is None:
            assert case[name]["hd95_mm"] is None
        else:
            assert case[name]["hd95_mm"] == pytest.approx(score.hd95_mm, rel=1e-6)
    assert case["esophagus"]["status"] == ABSENT_IN_BOTH and "esophagus" not in report["organs"]
    assert report["organs"]["liver"]["dice"] == expected["liver"].dice
    assert report["mean_dice"] == pytest.approx(mean_dice(expected))
    with open(tmp_path / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 14 and rows[0]["case"] == "case_a" and rows[0]["organ"] == "spleen"
    esophagus = next(row for row in rows if row["organ"] == "esophagus")
    assert esophagus["dice"] == "" and esophagus["status"] == ABSENT_IN_BOTH
    assert float(rows[5]["asd_mm"]) == pytest.approx(expected["liver"].asd_mm, rel=1e-6)


def test_evaluate_cli_table_with_default_names_and_dataset_json(real_case_folders, tmp_path):
    pred, gt, _, _ = real_case_folders
    result = run_evaluate(str(pred / "case_a_0000.nii.gz"), str(gt / "case_a.nii.gz"))
    assert result.returncode == 0, result.stderr
    assert "case case_a" in result.stdout and "label_14" in result.stdout
    assert "label_5 " not in result.stdout  # absent on both sides: not invented
    dataset_json = tmp_path / "dataset.json"
    dataset_json.write_text(json.dumps({"labels": {"background": 0, "liver": 6, "aorta": 8}}))
    result = run_evaluate(str(pred), str(gt), "--names", str(dataset_json))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:1] == ["aorta"] for line in lines)
    assert not any(line.split()[:1] == ["spleen"] for line in lines)
    assert "reference cases without a prediction (1, not in the means): case_b" in result.stdout


def test_evaluate_cli_refuses_mismatched_grids_naming_both_files(real_case_folders, tmp_path):
    _, gt, _, _ = real_case_folders
    other = sitk.ReadImage(str(REALCT / "tsB_ct_full_noncontrast_label.nii.gz"))
    sitk.WriteImage(other, str(tmp_path / "case_a.nii.gz"))
    result = run_evaluate(str(tmp_path / "case_a.nii.gz"), str(gt / "case_a.nii.gz"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "case_a.nii.gz" in result.stderr and "gt/case_a.nii.gz" in result.stderr
    assert "size (122, 101, 112) vs (122, 101, 30)" in result.stderr


def test_dice_per_organ_averages_the_cases_that_scored_each_organ():
    assert dice_per_organ({"liver": [0.9, 0.8], "adrenal_gland_left": [0.123456], "esophagus": []}) == {
        "liver": 0.85, "adrenal_gland_left": 0.1235}

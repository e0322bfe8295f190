"""The synthetic abdomen phantom: organ shares like the real CT fixture, anatomy, HU, determinism."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dcaseg.data.phantom import DEFAULT_SIZE, make_phantom, phantom_case
from dcaseg.errors import InputError

REALCT = Path(__file__).parent / "Data" / "realct"
REPO = Path(__file__).resolve().parents[1]
NAMES = {int(k): v for k, v in json.loads((REALCT / "labelmap_abd14.json").read_text(encoding="utf-8")).items()
         if int(k) <= 13}
# Share of the foreground (%) the brief asks for, as (low, high).
SHARE_RANGES = {
    "liver": (50, 62), "spleen": (9, 16), "stomach": (5, 9), "kidney_right": (4.5, 8), "kidney_left": (4.5, 8),
    "inferior_vena_cava": (1, 3.2), "aorta": (1, 3.2), "pancreas": (0.8, 2.5), "gallbladder": (1, 3),
    "portal_vein_and_splenic_vein": (0.8, 2.5), "adrenal_gland_right": (0.15, 0.45),
    "adrenal_gland_left": (0.15, 0.45), "esophagus": (0.25, 0.6),
}
CASES = 6


@pytest.fixture(scope="module")
def cases() -> list[tuple[np.ndarray, np.ndarray, sitk.Image]]:
    """(HU array, label array, CT image) of the first cases for seed 3."""
    result = []
    for index in range(CASES):
        image, labels = phantom_case(3, index)
        result.append((sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(labels), image))
    return result


def shares(labels: np.ndarray, values: range = range(1, 14)) -> dict[int, float]:
    counts = np.bincount(labels.ravel(), minlength=max(values) + 1)
    total = sum(counts[v] for v in values)
    return {v: 100.0 * counts[v] / total for v in values}


def test_organ_shares_are_close_to_the_real_fixture(cases):
    mean = {v: np.mean([shares(labels)[v] for _, labels, _ in cases]) for v in NAMES}
    for value, name in NAMES.items():
        low, high = SHARE_RANGES[name]
        assert low <= mean[value] <= high, f"{name}: {mean[value]:.2f} % not in [{low}, {high}]"
    real = [shares(sitk.GetArrayFromImage(sitk.ReadImage(str(REALCT / f"{n}_label.nii.gz"))))
            for n in ("tsA_ct_sm_noncontrast", "tsB_ct_full_noncontrast")]
    for value, name in NAMES.items():
        reference = np.mean([r[value] for r in real])
        if reference > 0:  # the esophagus is outside the fixture's field of view
            assert 0.5 <= mean[value] / reference <= 2.0, f"{name}: {mean[value]:.2f} % vs real {reference:.2f} %"


def test_every_organ_is_present_in_every_case_with_enough_voxels(cases):
    for _, labels, _ in cases:
        counts = np.bincount(labels.ravel(), minlength=14)
        assert set(np.flatnonzero(counts)) == set(range(14))
        assert counts[12] >= 30 and counts[13] >= 30


def test_organs_sit_on_the_anatomical_side(cases):
    """LPS identity direction: the patient's right (liver) at small x, posterior at large y."""
    for _, labels, image in cases:
        assert image.GetDirection() == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
        centre = {v: np.argwhere(labels == v).mean(axis=0) for v in range(1, 14)}  # (z, y, x)
        assert centre[6][2] < DEFAULT_SIZE[0] / 2 < centre[1][2]          # liver right, spleen left
        assert centre[2][2] < centre[3][2]                                 # kidney_right, kidney_left
        assert centre[12][2] < centre[13][2]                               # adrenal glands
        assert centre[9][2] < centre[8][2]                                 # IVC right of the aorta
        assert centre[4][1] < centre[2][1] and centre[7][1] < centre[1][1]  # gallbladder, stomach anterior
        assert centre[12][0] > centre[2][0] and centre[13][0] > centre[3][0]  # adrenals above kidneys


def test_tissues_have_realistic_hounsfield_units(cases):
    for hu, labels, _ in cases:
        assert hu.dtype == np.int16 and labels.dtype == np.uint8
        median = {v: np.median(hu[labels == v]) for v in (1, 2, 4, 6, 8)}
        assert 45 <= median[6] <= 75 and 35 <= median[1] <= 65           # liver, spleen
        assert 20 <= median[2] <= 50 and -10 <= median[4] <= 25          # kidney, gallbladder
        assert 30 <= median[8] <= 60                                      # aorta
        assert np.median(hu[0, :3, :3]) < -950                            # air outside the body
        assert np.percentile(hu, 99.9) > 400                              # bone
        assert np.count_nonzero((hu > -150) & (hu < -60)) > 0.05 * hu.size  # fat
        stomach = hu[labels == 7]
        assert np.count_nonzero(stomach < -500) > 0                       # gas in the stomach
        assert 5 <= np.std(hu[labels == 6]) <= 30                         # noise, not a flat fill


def test_cases_differ_in_shape_and_geometry(cases):
    assert len({image.GetOrigin() for _, _, image in cases}) == CASES
    liver = [np.count_nonzero(labels == 6) for _, labels, _ in cases]
    assert len(set(liver)) == CASES
    assert not np.array_equal(cases[0][1], cases[1][1])


def test_make_phantom_writes_the_plain_layout_deterministically(tmp_path):
    ids = make_phantom(tmp_path / "a", cases=3, labeled=2, seed=5)
    make_phantom(tmp_path / "b", cases=3, labeled=2, seed=5)
    make_phantom(tmp_path / "c", cases=3, labeled=2, seed=6)
    assert ids == ["phantom_000", "phantom_001", "phantom_002"]
    a, b, c = (tmp_path / n for n in "abc")
    assert sorted(p.name for p in (a / "images").iterdir()) == [f"{i}.nii.gz" for i in ids]
    assert sorted(p.name for p in (a / "labels").iterdir()) == [f"{i}.nii.gz" for i in ids[:2]]
    assert {int(k): v for k, v in json.loads((a / "labels.json").read_text(encoding="utf-8")).items()} == NAMES
    for relative in ["labels.json"] + [f"images/{i}.nii.gz" for i in ids] + [f"labels/{i}.nii.gz" for i in ids[:2]]:
        assert (a / relative).read_bytes() == (b / relative).read_bytes(), relative
    assert (a / "images/phantom_000.nii.gz").read_bytes() != (c / "images/phantom_000.nii.gz").read_bytes()
    image = sitk.ReadImage(str(a / "images/phantom_001.nii.gz"))
    labels = sitk.ReadImage(str(a / "labels/phantom_001.nii.gz"))
    assert image.GetSize() == labels.GetSize() == DEFAULT_SIZE
    assert image.GetSpacing() == labels.GetSpacing() == (3.0, 3.0, 4.0)
    assert image.GetOrigin() == labels.GetOrigin()
    assert image.GetPixelID() == sitk.sitkInt16 and labels.GetPixelID() == sitk.sitkUInt8
    assert not [p for p in a.rglob(".*")]  # no temporary files left


def test_make_phantom_refuses_bad_requests(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("user data")
    with pytest.raises(InputError, match="not an empty folder"):
        make_phantom(tmp_path / "full", cases=1, labeled=1, seed=0)
    assert (tmp_path / "full" / "mine.txt").read_text(encoding="utf-8") == "user data"
    with pytest.raises(InputError, match="--labeled"):
        make_phantom(tmp_path / "x", cases=2, labeled=3, seed=0)
    with pytest.raises(InputError, match="--size"):
        make_phantom(tmp_path / "x", cases=2, labeled=1, seed=0, size=(96, 96, 8))
    with pytest.raises(InputError, match="--spacing"):
        make_phantom(tmp_path / "x", cases=2, labeled=1, seed=0, spacing=(3.0, 0.0, 4.0))
    assert not (tmp_path / "x").exists()


def test_cli_phantom_with_custom_grid(tmp_path):
    out = tmp_path / "small"
    done = subprocess.run([sys.executable, "-m", "dcaseg", "phantom", str(out), "--cases", "2", "--labeled", "1",
                           "--seed", "2", "--size", "64", "48", "40", "--spacing", "4.5", "6", "5"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote 2 cases (1 labeled)" in done.stdout
    labels = sitk.ReadImage(str(out / "labels" / "phantom_000.nii.gz"))
    assert labels.GetSize() == (64, 48, 40) and labels.GetSpacing() == (4.5, 6.0, 5.0)
    present = set(np.unique(sitk.GetArrayViewFromImage(labels)))
    assert {1, 2, 3, 6, 7, 8, 9} <= present  # the anatomy is scaled into the field of view
    again = subprocess.run([sys.executable, "-m", "dcaseg", "phantom", str(out)], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and str(out) in again.stderr

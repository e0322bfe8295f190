"""The varied phantom family makes the variety docs/phantom.md claims, measured on rendered cases."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dcaseg.data.phantom import make_phantom, phantom_case
from dcaseg.data.phantom_shapes import Ellipsoid, solid_mask
from dcaseg.data.phantom_varied import case_grid, render_case
from dcaseg.data.phantom_varied_draw import PHASES, draw_case
from dcaseg.errors import InputError

REPO = Path(__file__).resolve().parents[1]
SIZE, SPACING = (72, 72, 50), (4.0, 4.0, 4.0)   # the ablation's grid
CASES, SEED = 16, 0
LIVER, SPLEEN, KIDNEYS, GALLBLADDER, AORTA = 6, 1, (2, 3), 4, 8


def arrays(images: tuple[sitk.Image, sitk.Image]) -> tuple[np.ndarray, np.ndarray]:
    return sitk.GetArrayFromImage(images[0]), sitk.GetArrayFromImage(images[1])


@pytest.fixture(scope="module")
def varied() -> list[tuple[np.ndarray, np.ndarray]]:
    return [arrays(render_case(draw_case(SEED, i), SIZE, SPACING)) for i in range(CASES)]


@pytest.fixture(scope="module")
def draws() -> list:
    return [draw_case(seed, i) for seed in range(3) for i in range(100)]


def variation(volumes: list[int]) -> float:
    return float(np.std(volumes) / np.mean(volumes))


def test_organ_volumes_vary_by_the_designed_amount(varied):
    standard = [arrays(phantom_case(SEED, i, SIZE, SPACING))[1] for i in range(CASES)]
    ranges = {LIVER: (0.15, 0.40), SPLEEN: (0.25, 0.60), 2: (0.15, 0.50), 3: (0.15, 0.50)}
    for label, (low, high) in ranges.items():
        spread = variation([np.count_nonzero(labels == label) for _, labels in varied])
        assert low <= spread <= high, (label, spread)
    for label in (LIVER, SPLEEN):
        base = variation([np.count_nonzero(labels == label) for labels in standard])
        assert variation([np.count_nonzero(labels == label) for _, labels in varied]) >= 1.4 * base


def test_organs_lie_differently_against_each_other(varied):
    """Which kidney sits higher, and by how much, changes between patients."""
    offsets = [(np.argwhere(labels == 3)[:, 0].mean() - np.argwhere(labels == 2)[:, 0].mean()) * SPACING[2]
               for _, labels in varied if all((labels == k).any() for k in KIDNEYS)]
    assert len(offsets) >= CASES - 2 and np.std(offsets) >= 8.0
    assert min(offsets) < 0 < max(offsets)


def test_the_organs_keep_their_head_and_tail_shares(varied):
    counts = np.sum([np.bincount(labels.ravel(), minlength=14)[1:] for _, labels in varied], axis=0)
    shares = 100.0 * counts / counts.sum()
    assert shares.argmax() + 1 == LIVER and shares[LIVER - 1] >= 35.0
    assert all(0.05 <= shares[label - 1] < 1.0 for label in (5, 12, 13))   # oesophagus, adrenal glands


def test_the_contrast_phase_changes_vessel_and_organ_hu():
    """The same patient in each phase: aorta and liver as docs/phantom.md aims."""
    case = draw_case(SEED, 3)
    median = {}
    for phase in PHASES:
        hu, labels = arrays(render_case(dataclasses.replace(case, phase=phase, enhancement=1.0), SIZE, SPACING))
        median[phase] = {label: float(np.median(hu[labels == label])) for label in (AORTA, LIVER, 2)}
    assert 30 <= median["non-contrast"][AORTA] <= 60 and 45 <= median["non-contrast"][LIVER] <= 75
    assert median["arterial"][AORTA] >= 200
    assert 120 <= median["portal-venous"][AORTA] <= 220 and 85 <= median["portal-venous"][LIVER] <= 150
    assert median["portal-venous"][2] > median["non-contrast"][2] + 80   # kidneys enhance


def test_phases_and_pathology_come_in_the_designed_shares(draws):
    phases = [d.phase for d in draws]
    assert 0.18 <= phases.count("non-contrast") / len(draws) <= 0.32
    assert 0.40 <= phases.count("portal-venous") / len(draws) <= 0.60
    assert 0.10 <= np.mean([d.gallbladder_absent for d in draws]) <= 0.20
    assert 0.25 <= np.mean([bool(d.lesions) for d in draws]) <= 0.45
    strengths = [d.enhancement for d in draws]
    assert min(strengths) < 0.75 and max(strengths) > 1.25
    noise = [d.acquisition.noise_hu for d in draws]
    assert min(noise) >= 6.0 and max(noise) <= 18.0 and max(noise) - min(noise) >= 10.0
    slices = [d.acquisition.slice_fwhm_mm for d in draws]
    assert min(slices) < 1.5 and max(slices) > 4.5


def test_absent_gallbladders_and_liver_lesions_are_rendered(varied):
    drawn = [draw_case(SEED, i) for i in range(CASES)]
    absent = [i for i, d in enumerate(drawn) if d.gallbladder_absent]
    assert absent and len(absent) < CASES // 2
    for i, (_, labels) in enumerate(varied):
        assert (np.count_nonzero(labels == GALLBLADDER) == 0) == (i in absent), i
    with_lesions = [i for i, d in enumerate(drawn) if d.lesions]
    assert with_lesions
    for i in with_lesions:
        case, (hu, labels) = drawn[i], varied[i]
        grid = case_grid(case, SIZE, SPACING)
        for lesion in case.lesions:
            core = solid_mask((Ellipsoid(lesion.centre, (lesion.diameter_mm / 4,) * 3),), grid) & (labels == LIVER)
            if np.count_nonzero(core) < 4 or lesion.kind != "cyst":
                continue
            assert np.median(hu[core]) < np.median(hu[labels == LIVER]) - 25   # a cyst is darker, and labelled liver


def test_the_field_of_view_cuts_organs_at_the_top_and_bottom(varied):
    liver_at_top = np.mean([(labels[-1] == LIVER).any() for _, labels in varied])
    kidney_at_bottom = np.mean([np.isin(labels[0], KIDNEYS).any() for _, labels in varied])
    assert 0.2 <= liver_at_top <= 0.5 and kidney_at_bottom >= 0.2
    sides_cut = np.mean([(hu[:, :, 0] > -500).any() or (hu[:, :, -1] > -500).any() for hu, _ in varied])
    assert 0.0 < sides_cut < 1.0   # wide bodies only


def test_the_family_is_deterministic_per_seed_and_apart_from_the_standard_one(tmp_path):
    for name, seed, family in (("a", 4, "varied"), ("b", 4, "varied"), ("c", 5, "varied"), ("d", 4, "standard")):
        make_phantom(tmp_path / name, 2, 2, seed, SIZE, SPACING, family=family)
    def read(name: str, kind: str = "images") -> bytes:
        return (tmp_path / name / kind / "phantom_001.nii.gz").read_bytes()

    assert read("a") == read("b") and read("a", "labels") == read("b", "labels")
    assert read("a") != read("c") and read("a") != read("d")
    with pytest.raises(InputError, match="--family"):
        make_phantom(tmp_path / "e", 1, 1, 0, SIZE, SPACING, family="smooth")
    assert not (tmp_path / "e").exists()


def test_cli_writes_the_varied_family(tmp_path):
    out = tmp_path / "varied"
    done = subprocess.run([sys.executable, "-m", "dcaseg", "phantom", str(out), "--family", "varied", "--cases", "2",
                           "--labeled", "1", "--seed", "7"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    image = sitk.ReadImage(str(out / "images" / "phantom_000.nii.gz"))
    assert image.GetSize() == (96, 96, 50) and image.GetPixelID() == sitk.sitkInt16
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["phantom_000.nii.gz"]
    assert (arrays(render_case(draw_case(7, 0), (96, 96, 50), (3.0, 3.0, 4.0)))[0]
            == sitk.GetArrayFromImage(image)).all()

"""Fault tests, odd images: non-finite voxels and images that cannot be CT, segmented with the bundled model.

Before: one NaN voxel in an MHA CT removed most organ voxels, a NaN block gave an empty label
map (the resampling default was the image's minimum, NaN), and a constant image was labelled
almost all organ, each with exit 0 and no word.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from support import REALCT_IMAGE

from dcaseg.data.cache import PreprocessCache, PreprocessSettings
from dcaseg.data.preprocess import default_intensity
from dcaseg.events import Reporter
from dcaseg.inference import Predictor, PredictorOptions

DEMO_MODEL = Path(__file__).parents[1] / "DCASegmentation" / "Resources" / "Models" / "dca-demo-synthetic-abdomen.zip"
BLOCK_HALF = (3, 8, 8)  # a NaN / ±Inf block of 6 x 16 x 16 voxels (18 x 48 x 48 mm) in the organs


class Segmenter:
    """The bundled model on the CPU (windows overlapping by a quarter: half the work), keeping its events."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.predictor = Predictor(DEMO_MODEL, PredictorOptions(device="cpu", overlap=0.25),
                                   Reporter(self.events.append))

    def labels(self, path: Path) -> tuple[np.ndarray, list[str]]:
        """The label array of the image at ``path`` and the warnings given for it."""
        self.events.clear()
        labels = sitk.GetArrayFromImage(self.predictor.predict(path).labels)
        return labels, [e["message"] for e in self.events if e["event"] == "warning"]


def write_mha(array: np.ndarray, like: sitk.Image, path: Path) -> Path:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(like)
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Segmenter, np.ndarray, sitk.Image, np.ndarray]:
    """The segmenter, the real CT fixture as float32 voxels, its image, and its clean labels."""
    segmenter = Segmenter()
    image = sitk.Cast(sitk.ReadImage(str(REALCT_IMAGE)), sitk.sitkFloat32)
    path = write_mha(sitk.GetArrayFromImage(image), image, tmp_path_factory.mktemp("clean") / "ct.mha")
    labels, warnings = segmenter.labels(path)
    assert warnings == [] and (labels > 0).sum() > 10_000
    return segmenter, sitk.GetArrayFromImage(image), image, labels


def organ_centre(labels: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(np.median(axis)) for axis in np.nonzero(labels))  # type: ignore[return-value]


def test_one_nan_voxel_is_replaced_with_a_warning_and_the_organs_stay(clean, tmp_path: Path) -> None:
    segmenter, array, image, labels = clean
    centre = organ_centre(labels)
    assert labels[centre] > 0
    broken = array.copy()
    broken[centre] = np.nan
    result, warnings = segmenter.labels(write_mha(broken, image, tmp_path / "nan_voxel.mha"))
    assert len(warnings) == 1 and warnings[0].startswith("1 voxel of the image was NaN or infinite")
    assert (result > 0).sum() == pytest.approx((labels > 0).sum(), rel=0.01)


def test_a_nan_and_inf_block_is_replaced_with_a_warning_and_the_organs_around_it_stay(clean, tmp_path: Path) -> None:
    segmenter, array, image, labels = clean
    block = tuple(slice(c - h, c + h) for c, h in zip(organ_centre(labels), BLOCK_HALF))
    broken = array.copy()
    broken[block] = np.nan
    broken[block][0] = np.inf
    broken[block][-1] = -np.inf
    result, warnings = segmenter.labels(write_mha(broken, image, tmp_path / "nan_block.mha"))
    count = int(np.prod([2 * h for h in BLOCK_HALF]))
    assert len(warnings) == 1 and warnings[0].startswith(f"{count} voxels of the image were NaN or infinite")
    outside = np.ones(array.shape, dtype=bool)
    outside[block] = False
    # The block becomes air (the image's lowest value): organs inside it are lost and the model's view
    # of the tissue next to it changes (a larger hole changes more of its surroundings); the rest stays.
    assert (result[outside] > 0).sum() == pytest.approx((labels[outside] > 0).sum(), rel=0.01)


def test_a_constant_image_gets_a_no_contrast_warning(clean, tmp_path: Path) -> None:
    segmenter = clean[0]
    constant = sitk.Image([40, 40, 16], sitk.sitkFloat32) + 40.0
    constant.SetSpacing((3.0, 3.0, 3.0))
    _, warnings = segmenter.labels(write_mha(sitk.GetArrayFromImage(constant), constant, tmp_path / "constant.mha"))
    assert any(w.startswith("the image has no contrast") for w in warnings)


def test_an_image_without_a_finite_voxel_is_a_one_line_error(tmp_path: Path) -> None:
    empty = sitk.Image([24, 24, 8], sitk.sitkFloat32) + float("nan")
    path = tmp_path / "all_nan.mha"
    sitk.WriteImage(empty, str(path))
    result = subprocess.run([sys.executable, "-m", "dcaseg", "segment", "-m", str(DEMO_MODEL), "-i", str(path),
                             "-o", str(tmp_path / "out.nii.gz"), "--device", "cpu", "--progress", "none"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "dcaseg segment: error: no voxel of the image is a finite number (all are NaN or infinite)"]
    assert not (tmp_path / "out.nii.gz").exists()


@pytest.mark.parametrize("spacing", [(3.0, 3.0, 3.0), (4.0, 4.0, 4.0)])  # kept as it is, and resampled
def test_training_never_sees_a_nan_voxel(spacing: tuple[float, float, float], tmp_path: Path) -> None:
    image = sitk.Cast(sitk.ReadImage(str(REALCT_IMAGE)), sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(image)
    array[10:14, 40:60, 50:70] = np.nan
    array[0, 0, 0] = -np.inf
    path = write_mha(array, image, tmp_path / "ct.mha")
    cache = PreprocessCache(tmp_path / "cache", PreprocessSettings(spacing, default_intensity("CT"), (0,)))
    cache.prepare("ct", path, None)
    cached = cache.load("ct", labeled=False).image
    assert np.isfinite(cached).all() and cached.max() > 0.5  # the window still holds the soft tissue

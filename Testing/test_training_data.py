"""Training data pipeline: preprocessing cache, patch sampler, augmentation, split rules."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from training_helpers import small_phantom

from dcaseg.data.augment import augment
from dcaseg.data.augment_config import AugmentConfig
from dcaseg.data.cache import CachedCase, PreprocessCache, PreprocessSettings
from dcaseg.data.sampling import PatchSampler
from dcaseg.errors import InputError
from dcaseg.nets import ArchitectureConfig, DCANet
from dcaseg.training.batchnorm import recalibrate_batch_norm
from dcaseg.training.run_folder import resolve_split

CT = {"mode": "ct-window", "window": [-75.0, 275.0]}
VALUES = tuple(range(14))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_phantom(tmp_path_factory.mktemp("cache") / "data", cases=2, labeled=1)


def test_cache_prepares_once_and_redoes_a_changed_source(data: Path, tmp_path: Path) -> None:
    cache = PreprocessCache(tmp_path, PreprocessSettings((8.0, 8.0, 8.0), CT, VALUES))
    image, label = data / "images" / "phantom_000.nii.gz", data / "labels" / "phantom_000.nii.gz"
    cache.prepare("phantom_000", image, label)
    case = cache.load("phantom_000", labeled=True)
    assert isinstance(case.image, np.memmap) and case.image.dtype == np.float32
    assert case.label is not None and case.label.shape == case.image.shape
    assert 0.0 <= float(case.image.min()) and float(case.image.max()) <= 1.0
    assert set(np.unique(case.label)) <= set(VALUES) and len(np.unique(case.label)) > 5
    stamp = (cache.entry("phantom_000") / "image.npy").stat().st_mtime_ns
    cache.prepare("phantom_000", image, label)
    assert (cache.entry("phantom_000") / "image.npy").stat().st_mtime_ns == stamp
    os.utime(image, ns=(stamp + 10**9, stamp + 10**9))
    assert not cache.is_current("phantom_000", image, label)
    other = PreprocessCache(tmp_path, PreprocessSettings((9.0, 9.0, 9.0), CT, VALUES))
    assert other.folder != cache.folder


def test_a_mirrored_and_permuted_copy_of_a_case_caches_the_same_arrays(data: Path, tmp_path: Path) -> None:
    """A RAS NIfTI and an LPS DICOM of one patient must train the network on the same arrays."""
    import SimpleITK as sitk

    from dcaseg.data.cache import median_spacing

    image = sitk.ReadImage(str(data / "images" / "phantom_000.nii.gz"))
    image.SetSpacing((7.0, 6.0, 5.0))
    label = sitk.ReadImage(str(data / "labels" / "phantom_000.nii.gz"))
    label.CopyInformation(image)
    twin, twin_label = (sitk.DICOMOrient(x, "SRA") for x in (image, label))  # axes permuted, two flipped
    assert twin.GetDirection() != image.GetDirection() and twin.GetSize() != image.GetSize()
    paths = {}
    for name, (img, lab) in {"lps": (image, label), "sra": (twin, twin_label)}.items():
        paths[name] = (tmp_path / f"{name}.nii.gz", tmp_path / f"{name}_label.nii.gz")
        sitk.WriteImage(img, str(paths[name][0]))
        sitk.WriteImage(lab, str(paths[name][1]))
    assert median_spacing([paths["sra"][0]]) == median_spacing([paths["lps"][0]]) == (7.0, 6.0, 5.0)
    cache = PreprocessCache(tmp_path / "cache", PreprocessSettings((8.0, 8.0, 8.0), CT, VALUES))
    cases = {}
    for name, (img, lab) in paths.items():
        cache.prepare(name, img, lab)
        cases[name] = cache.load(name, labeled=True)
    assert np.array_equal(cases["lps"].label, cases["sra"].label)
    assert np.allclose(cases["lps"].image, cases["sra"].image, atol=1e-6)


def test_cache_refuses_label_values_outside_the_class_list(data: Path, tmp_path: Path) -> None:
    cache = PreprocessCache(tmp_path, PreprocessSettings((8.0, 8.0, 8.0), CT, (0, 1, 2)))
    with pytest.raises(InputError, match="phantom_000.nii.gz: label values .* not in the class list"):
        cache.prepare("phantom_000", data / "images" / "phantom_000.nii.gz", data / "labels" / "phantom_000.nii.gz")


def _case(shape: tuple[int, int, int], rare_at: tuple[int, int, int]) -> CachedCase:
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    label = np.zeros(shape, np.uint8)
    label[: shape[0] // 2] = 1
    label[rare_at] = 2
    return CachedCase("c", image, label)


def test_sampler_pads_small_volumes_and_favours_rare_classes() -> None:
    case = _case((20, 30, 40), (15, 25, 35))
    sampler = PatchSampler([case], [case], (32, 32, 32), 3, foreground_share=1.0, rare_class_power=1.0)
    hits = 0
    for iteration in range(40):
        batch = sampler.batch(iteration, 2, 1)
        assert batch.labeled_images.shape == (2, 1, 32, 32, 32) and batch.labels.shape == (2, 32, 32, 32)
        assert batch.unlabeled_images.shape == (1, 1, 32, 32, 32)
        hits += int((batch.labels == 2).any(axis=(1, 2, 3)).sum())
        assert float(batch.labeled_images.min()) >= float(case.image.min())  # padding uses the volume minimum
    assert hits >= 30  # the single-voxel class is in about half of the patches (uniform over classes)


def test_sampler_is_deterministic_per_iteration_and_differs_between_ranks() -> None:
    case = _case((40, 40, 40), (5, 5, 5))
    first = PatchSampler([case], [case], (16, 16, 16), 3, seed=1, rank=0)
    again = PatchSampler([case], [case], (16, 16, 16), 3, seed=1, rank=0)
    other = PatchSampler([case], [case], (16, 16, 16), 3, seed=1, rank=1)
    a, b, c = first.batch(7, 2, 2), again.batch(7, 2, 2), other.batch(7, 2, 2)
    assert np.array_equal(a.labeled_images, b.labeled_images) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.labeled_images, c.labeled_images)


def test_augmentation_keeps_label_values_and_shapes() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 16, 16, 16)
    labels = torch.randint(0, 4, (3, 16, 16, 16))
    config = AugmentConfig(flip_probability=1.0, rotate_probability=1.0, intensity_probability=1.0)
    out, out_labels = augment(images, labels, config, generator)
    assert out.shape == images.shape and out_labels is not None and out_labels.shape == labels.shape
    assert set(out_labels.unique().tolist()) <= set(range(4))
    assert not torch.equal(out, images)
    none = AugmentConfig(rotate_probability=0.0, intensity_probability=0.0)
    same, same_labels = augment(images, labels, none, generator)
    assert torch.equal(same, images) and same_labels is not None and torch.equal(same_labels, labels)


def test_split_keeps_validation_and_test_cases_out_of_training() -> None:
    split, _ = resolve_split(["a", "b", "c", "d", "e"], ["u1", "u2"], None, None, seed=0)
    assert len(split["validation"]) == 1 and len(split["labeled"]) == 4
    again, notes = resolve_split(["a", "b", "c", "d", "e", "u1"], ["u2"],
                                 {**split, "test": ["e"]}, 3, seed=5)
    assert again["validation"] == split["validation"]
    assert "u1" in again["labeled"] and "e" not in again["labeled"]
    assert any("u1" in note for note in notes)
    with pytest.raises(InputError, match="no labeled case"):
        resolve_split(["a"], ["u"], {"labeled": [], "validation": ["a"]}, None, seed=0)


def test_batchnorm_recalibration_makes_eval_match_the_volume_statistics() -> None:
    torch.manual_seed(0)
    network = DCANet(ArchitectureConfig(4, {"head": [1], "medium": [2], "tail": [3]}, n_filters=4))
    volume = np.random.default_rng(0).random((60, 62, 64), dtype=np.float32) * 3 + 5
    x = torch.nn.functional.pad(torch.from_numpy(volume)[None, None], (0, 0, 0, 2, 0, 4), value=float(volume.min()))
    with torch.no_grad():
        expected = network.train()(x).logits
        before = network.eval()(x).logits
    assert not torch.allclose(before, expected, atol=1e-3)
    recalibrate_batch_norm(network, [volume], (64, 64, 64), torch.device("cpu"))
    assert not network.training
    with torch.no_grad():
        after = network(x).logits
    # equal up to BatchNorm's unbiased running variance (n/(n-1): 64 voxels at the bottleneck)
    assert (after - expected).abs().mean() < 0.1 * (before - expected).abs().mean()

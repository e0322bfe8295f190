"""Preprocessing shared by training and inference: resampling, intensity, body crop."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import InputError

CT_WINDOW = (-75.0, 275.0)
MR_PERCENTILES = (0.5, 99.5)
BODY_THRESHOLD_HU = -500.0
MIN_CT_CONTRAST_HU = 1.0  # a CT whose voxels all lie closer together than this shows nothing


@dataclass(frozen=True)
class FiniteImage:
    """An image whose voxels are all finite numbers, its value range, and how many voxels were replaced."""

    image: sitk.Image
    low: float
    high: float
    replaced: int = 0


def finite_image(image: sitk.Image) -> FiniteImage:
    """``image`` with its NaN and ±Inf voxels set to its lowest finite value.

    Costs two reductions when every voxel is finite (the usual case, always for integer images).
    An image without any finite voxel is an ``InputError``.
    """
    view = sitk.GetArrayViewFromImage(image)
    low, high = float(view.min()), float(view.max())
    if np.isfinite(low) and np.isfinite(high):
        return FiniteImage(image, low, high)
    finite = np.isfinite(view)
    count = int(finite.sum())
    if count == 0:
        raise InputError("no voxel of the image is a finite number (all are NaN or infinite)")
    values = view[finite]
    low, high = float(values.min()), float(values.max())
    fixed = sitk.GetImageFromArray(np.where(finite, view, view.dtype.type(low)))
    fixed.CopyInformation(image)
    return FiniteImage(fixed, low, high, int(finite.size) - count)


def intensity_warnings(image: FiniteImage, intensity: Mapping[str, Any]) -> list[str]:
    """Warnings about an image's intensities: replaced non-finite voxels, no contrast (cannot be CT)."""
    warnings = []
    if image.replaced:
        warnings.append(f"{image.replaced} voxel{'s' if image.replaced > 1 else ''} of the image "
                        f"{'were' if image.replaced > 1 else 'was'} NaN or infinite; set to {image.low:g}, "
                        "the image's lowest value (the result there is a guess)")
    spread = image.high - image.low
    if intensity["mode"] == "ct-window" and spread < MIN_CT_CONTRAST_HU:
        warnings.append(f"the image has no contrast (every voxel between {image.low:g} and {image.high:g}), "
                        "so it cannot be a CT in Hounsfield units; its labels mean nothing")
    elif spread == 0:
        warnings.append(f"the image is constant ({image.low:g}); its labels mean nothing")
    return warnings


def default_intensity(modality: str) -> dict[str, Any]:
    """CT: clip to [-75, 275] HU and scale to [0, 1] (DHC/GA lineage). MR: percentile clip + z-score."""
    if modality.upper() == "CT":
        return {"mode": "ct-window", "window": list(CT_WINDOW)}
    return {"mode": "zscore", "percentiles": list(MR_PERCENTILES)}


def normalise_intensity(array: np.ndarray, intensity: Mapping[str, Any]) -> np.ndarray:
    """Apply the intensity settings of a model/run to an image array; returns float32."""
    data = array.astype(np.float32, copy=False)
    if intensity["mode"] == "ct-window":
        low, high = (float(v) for v in intensity["window"])
        out = np.clip(data, low, high)
        out -= low
        out *= 1.0 / (high - low)
        return out
    low, high = np.percentile(data, intensity.get("percentiles", MR_PERCENTILES))
    out = np.clip(data, low, high)
    std = float(out.std())
    return ((out - float(out.mean())) / (std if std > 0 else 1.0)).astype(np.float32)


def resampled_size(image: sitk.Image, spacing: Sequence[float]) -> tuple[int, int, int]:
    """Grid size (x, y, z) covering the same extent as ``image`` at ``spacing``."""
    x, y, z = (max(1, int(round(n * s / t))) for n, s, t in zip(image.GetSize(), image.GetSpacing(), spacing))
    return x, y, z


def resample(image: sitk.Image, spacing: Sequence[float], is_label: bool = False,
             size: Sequence[int] | None = None) -> sitk.Image:
    """Resample to ``spacing`` (x, y, z mm) keeping origin and direction.

    Images use linear interpolation (NaN and ±Inf voxels first set to the lowest finite value,
    which also fills outside the input), labels nearest neighbour. An image already at the
    spacing (and size) is returned unchanged but for those voxels.
    """
    default = 0.0
    if not is_label:
        finite = finite_image(image)
        image, default = finite.image, finite.low
    spacing = tuple(float(s) for s in spacing)
    size = tuple(int(n) for n in size) if size is not None else resampled_size(image, spacing)
    if np.allclose(image.GetSpacing(), spacing, rtol=1e-5) and tuple(image.GetSize()) == size:
        return image
    interpolator = sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear
    pixel = image.GetPixelID() if is_label else sitk.sitkFloat32
    return sitk.Resample(image, size, sitk.Transform(), interpolator, image.GetOrigin(), spacing,
                         image.GetDirection(), default, pixel)


def resample_to_reference(image: sitk.Image, reference: sitk.Image, is_label: bool) -> sitk.Image:
    """Resample ``image`` onto ``reference``'s exact grid (size, spacing, origin, direction)."""
    interpolator = sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear
    return sitk.Resample(image, reference, sitk.Transform(), interpolator, 0.0, image.GetPixelID())


def body_bounding_box(array_hu: np.ndarray, threshold: float = BODY_THRESHOLD_HU,
                      margin: int = 2) -> tuple[slice, ...] | None:
    """Bounding box (array order) of voxels above ``threshold`` HU plus a margin; None if none."""
    mask = array_hu > threshold
    if not mask.any():
        return None
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        box.append(slice(max(0, int(hits[0]) - margin), min(mask.shape[axis], int(hits[-1]) + 1 + margin)))
    return tuple(box)


def body_mask(array_hu: np.ndarray, threshold: float = BODY_THRESHOLD_HU,
              step: Sequence[int] = (1, 1, 1)) -> np.ndarray | None:
    """The patient (array order, axis 0 axial): the largest connected region above ``threshold`` HU,
    with what it encloses in each axial slice (bowel gas, lungs) filled in; None if no voxel is above.

    Air around the patient, the table and loose objects are outside it. A ``step`` above 1 on an
    axis finds it on every ``step``-th voxel there and spreads that back (as many times faster;
    the skin moves by less than ``step`` voxels).
    """
    array_hu = np.asarray(array_hu)
    if any(k > 1 for k in step):
        coarse = body_mask(array_hu[tuple(slice(None, None, k) for k in step)], threshold)
        if coarse is None:
            return None
        for axis, k in enumerate(step):
            coarse = coarse.repeat(k, axis)
        return np.ascontiguousarray(coarse[tuple(slice(0, n) for n in array_hu.shape)])
    regions, count = ndimage.label(array_hu > threshold)
    if count == 0:
        return None
    sizes = np.bincount(regions.ravel())
    sizes[0] = 0
    body = regions == int(sizes.argmax())
    # Holes: regions outside the body, connected within their slice only, that touch no slice edge.
    in_slice = np.zeros((3, 3, 3), dtype=bool)
    in_slice[1] = ndimage.generate_binary_structure(2, 1)
    rest, _ = ndimage.label(~body, structure=in_slice)
    open_to_edge = np.zeros(int(rest.max()) + 1, dtype=bool)
    open_to_edge[0] = True
    for edge in (rest[:, 0, :], rest[:, -1, :], rest[:, :, 0], rest[:, :, -1]):
        open_to_edge[np.unique(edge)] = True
    return body | ~open_to_edge[rest]


def spacing_zyx(spacing_xyz: Sequence[float]) -> tuple[float, float, float]:
    """Spacing in numpy array order (z, y, x) from SimpleITK order (x, y, z)."""
    return float(spacing_xyz[2]), float(spacing_xyz[1]), float(spacing_xyz[0])

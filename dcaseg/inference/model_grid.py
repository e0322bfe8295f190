"""Moving a volume onto the model's grid (body crop, spacing, intensity) and results back exactly.

The model grid keeps the input's direction and starts at the (cropped) input's first voxel; its
size is chosen so that its voxel centres span every input voxel centre, which makes the way back
an interpolation, never an extrapolation. Results return with ``sitk.Resample`` onto the input
image itself, so they have exactly its size, spacing, origin and direction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..data.preprocess import body_bounding_box, normalise_intensity, resample
from ..package import Preprocessing


@dataclass
class ModelGridVolume:
    """A normalised float32 array (z, y, x) on the model grid, and that grid's geometry (x, y, z)."""

    array: np.ndarray
    origin: tuple[float, ...]
    spacing: tuple[float, ...]
    direction: tuple[float, ...]
    cropped: bool

    def image(self, array: np.ndarray, is_vector: bool = False) -> sitk.Image:
        """``array`` (z, y, x) on this grid as a SimpleITK image carrying the grid's geometry."""
        result = sitk.GetImageFromArray(array, isVector=is_vector)
        result.SetOrigin(self.origin)
        result.SetSpacing(self.spacing)
        result.SetDirection(self.direction)
        return result


def covering_size(image: sitk.Image, spacing: tuple[float, ...]) -> tuple[int, ...]:
    """Voxels per axis at ``spacing`` whose centres, from the same first centre, reach the last input centre."""
    return tuple(math.ceil((n - 1) * s / t - 1e-6) + 1
                 for n, s, t in zip(image.GetSize(), image.GetSpacing(), spacing))


def crop_to_body(image: sitk.Image) -> sitk.Image | None:
    """The part of a CT (Hounsfield units) inside the body's bounding box; None if no voxel is body."""
    box = body_bounding_box(sitk.GetArrayViewFromImage(image))
    if box is None:
        return None
    z, y, x = box
    if all(s.start == 0 and s.stop == n for s, n in zip((x, y, z), image.GetSize())):
        return image
    return image[x, y, z]


def to_model_grid(image: sitk.Image, preprocessing: Preprocessing, body_crop: bool) -> tuple[ModelGridVolume, str | None]:
    """Crop (optionally), resample and normalise ``image``; also return a warning or None."""
    warning = None
    source = image
    if body_crop:
        cropped = crop_to_body(image)
        if cropped is None:
            warning = ("no voxel above -500 HU, so no body to crop to (is this a CT in Hounsfield units?); "
                       "segmenting the whole volume")
        else:
            source = cropped
    spacing = tuple(float(s) for s in preprocessing.target_spacing)
    resampled = resample(source, spacing, size=covering_size(source, spacing))
    array = normalise_intensity(sitk.GetArrayViewFromImage(resampled), preprocessing.intensity)
    grid = ModelGridVolume(np.ascontiguousarray(array), resampled.GetOrigin(), resampled.GetSpacing(),
                           resampled.GetDirection(), source is not image)
    return grid, warning


def restore(grid: ModelGridVolume, array: np.ndarray, reference: sitk.Image, is_label: bool,
            outside: float = 0.0) -> sitk.Image:
    """Resample ``array`` (z, y, x) from the model grid onto ``reference``'s exact grid.

    Labels use nearest neighbour, maps linear interpolation; voxels outside the model grid (outside
    the body crop) get ``outside``.
    """
    interpolator = sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear
    moving = grid.image(array)
    restored = sitk.Resample(moving, reference.GetSize(), sitk.Transform(), interpolator, reference.GetOrigin(),
                             reference.GetSpacing(), reference.GetDirection(), outside, moving.GetPixelID())
    return restored

"""Moving a volume onto the model's grid (orientation, body crop, spacing, intensity) and results back exactly.

The model grid has the input's axes permuted and flipped to LPS (``data.orientation``; the
voxels are resampled straight onto it, never copied), so the network always sees one
orientation. It starts at the reoriented input's first voxel, and its
size is chosen so that its voxel centres span every input voxel centre, which makes the way back
an interpolation, never an extrapolation. The body crop takes a window-aligned part of that
grid. Results return with ``sitk.Resample`` onto the input image itself, so they have exactly
its size, spacing, origin and direction.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..data.orientation import LpsView, lps_view
from ..data.preprocess import body_bounding_box, body_mask, finite_image, intensity_warnings, normalise_intensity
from ..package import Preprocessing
from .sliding_window import DEFAULT_OVERLAP, axis_window_starts

# The body mask is found on a grid of at most this spacing (every k-th voxel of a finer model grid):
# a fraction of the time on a fine grid, which matters beside a GPU's whole segmentation
# (benchmarks/RESULTS.md, "Hardware notes"); the skin moves by less than one step.
BODY_MASK_SPACING_MM = 3.0


@dataclass
class ModelGridVolume:
    """A normalised float32 array (z, y, x) on (part of) the model grid, and the whole grid's geometry (x, y, z).

    ``placement`` is the (before, after) padding per array axis that puts ``array`` back on the
    whole grid: zeros unless the body crop took only part of it. ``body`` marks the patient's
    voxels of ``array`` (``preprocess.body_mask``), or is None where no mask was asked for or found.
    """

    array: np.ndarray
    origin: tuple[float, ...]
    spacing: tuple[float, ...]
    direction: tuple[float, ...]
    placement: tuple[tuple[int, int], ...] = ((0, 0), (0, 0), (0, 0))
    body: np.ndarray | None = None

    @property
    def cropped(self) -> bool:
        return any(before or after for before, after in self.placement)

    def image(self, array: np.ndarray, outside: float = 0.0) -> sitk.Image:
        """``array`` (z, y, x, as ``self.array``) on the whole grid, ``outside`` beyond the crop, with its geometry."""
        if self.cropped:
            array = np.pad(array, self.placement, constant_values=outside)
        result = sitk.GetImageFromArray(array)
        result.SetOrigin(self.origin)
        result.SetSpacing(self.spacing)
        result.SetDirection(self.direction)
        return result


def covering_size(size: Sequence[int], spacing: Sequence[float], target: Sequence[float]) -> tuple[int, ...]:
    """Voxels per axis at ``target`` spacing whose centres, from the same first centre, reach the last input centre."""
    return tuple(math.ceil((n - 1) * s / t - 1e-6) + 1 for n, s, t in zip(size, spacing, target))


def body_range_on_grid(image: sitk.Image, view: LpsView, spacing: tuple[float, ...],
                       size: tuple[int, ...]) -> tuple[tuple[int, int], ...] | None:
    """Index ranges (LPS x, y, z; stop exclusive) of a model grid of ``size`` at ``spacing`` that hold the body.

    The grid starts at the first voxel centre of ``view``; None if no voxel is body (HU > -500).
    """
    box = body_bounding_box(sitk.GetArrayViewFromImage(image))
    if box is None:
        return None
    input_ranges = [(b.start, b.stop) for b in reversed(box)]  # input axes x, y, z
    ranges = []
    for k, (s, t, n) in enumerate(zip(view.spacing, spacing, size)):
        first, stop = view.index_range(k, *input_ranges[view.axes[k]])
        low = math.floor(first * s / t + 1e-6)
        high = math.ceil((stop - 1) * s / t - 1e-6) + 1
        ranges.append((max(0, low), min(n, high)))
    return tuple(ranges)


def window_aligned(start: int, stop: int, length: int, patch: int, overlap: float) -> tuple[int, int]:
    """The span of the sliding windows of a ``length``-voxel axis that touch ``[start, stop)``.

    Cropping to it keeps exactly the windows (same positions) that the whole axis would run
    over those voxels, so the crop changes no result inside ``[start, stop)``.
    """
    windows = [s for s in axis_window_starts(length, patch, overlap) if s < stop and s + patch > start]
    if length <= patch or not windows:
        return 0, length
    return windows[0], windows[-1] + patch


def to_model_grid(image: sitk.Image, preprocessing: Preprocessing, body_crop: bool,
                  overlap: float = DEFAULT_OVERLAP, find_body: bool = False) -> tuple[ModelGridVolume, list[str]]:
    """Reorient (LPS axes), resample and normalise ``image`` onto the model grid; also return warnings.

    NaN and ±Inf voxels are set to the image's lowest finite value first (with a warning that
    counts them); an image that cannot be a CT (no contrast) is warned about.
    With ``body_crop`` the grid keeps only the windows (at ``overlap``) that touch the body's
    bounding box: inside the body the result is the whole volume's, from fewer windows.
    ``find_body`` also marks the patient's voxels (from the resampled Hounsfield units).
    """
    finite = finite_image(image)
    image = finite.image
    warnings = intensity_warnings(finite, preprocessing.intensity)
    view = lps_view(image)
    spacing = tuple(float(s) for s in preprocessing.target_spacing)
    size = covering_size(view.size, view.spacing, spacing)
    first: tuple[int, ...] = (0, 0, 0)
    count = size
    if body_crop:
        body_box = body_range_on_grid(image, view, spacing, size)
        if body_box is None:
            warnings.append("no voxel above -500 HU, so no body to crop to (is this a CT in Hounsfield units?); "
                            "segmenting the whole volume")
        else:
            spans = [window_aligned(a, b, n, p, overlap)
                     for (a, b), n, p in zip(body_box, size, preprocessing.patch_size)]
            first, count = tuple(a for a, _ in spans), tuple(b - a for a, b in spans)
    direction = np.asarray(view.direction, dtype=float).reshape(3, 3)
    origin = np.asarray(view.origin, dtype=float) + direction @ (np.asarray(first) * np.asarray(spacing))
    resampled = sitk.Resample(image, [int(n) for n in count], sitk.Transform(), sitk.sitkLinear,
                              tuple(origin.tolist()), spacing, view.direction, finite.low, sitk.sitkFloat32)
    hounsfield = sitk.GetArrayViewFromImage(resampled)
    steps = [max(1, int(BODY_MASK_SPACING_MM // t)) for t in reversed(spacing)]  # array order (z, y, x)
    body = body_mask(hounsfield, step=steps) if find_body else None
    array = normalise_intensity(hounsfield, preprocessing.intensity)
    placement = tuple((a, n - a - c) for a, n, c in zip(reversed(first), reversed(size), reversed(count)))
    grid = ModelGridVolume(np.ascontiguousarray(array), view.origin, spacing, view.direction, placement, body)
    return grid, warnings


def restore(grid: ModelGridVolume, array: np.ndarray, reference: sitk.Image, is_label: bool,
            outside: float = 0.0) -> sitk.Image:
    """Resample ``array`` (z, y, x) from the model grid onto ``reference``'s exact grid.

    Labels use nearest neighbour, maps linear interpolation; voxels outside the body crop get
    ``outside``. The whole grid's geometry is used, so a crop moves no voxel centre.
    """
    interpolator = sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear
    moving = grid.image(array, outside)
    return sitk.Resample(moving, reference.GetSize(), sitk.Transform(), interpolator, reference.GetOrigin(),
                         reference.GetSpacing(), reference.GetDirection(), outside, moving.GetPixelID())

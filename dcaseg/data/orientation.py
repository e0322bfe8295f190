"""One array orientation for the network: LPS, ITK's and DICOM's own (the phantom's too).

A NIfTI in RAS and a DICOM series in LPS of the same patient hold mirrored arrays. A network
that saw one during training would take the other's right kidney for the left one, so every
volume is permuted and flipped to the closest LPS axes before training and prediction (no
resampling: the voxels are the same), and predictions go back to the input's own grid.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

STANDARD_ORIENTATION = "LPS"


def orientation_code(direction: Sequence[float]) -> str:
    """Three letters naming where each array axis points (ITK/DICOM convention: ``LPS`` = identity)."""
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines([float(d) for d in direction])


def to_standard_orientation(image: sitk.Image) -> sitk.Image:
    """``image`` with its axes permuted and flipped to the closest LPS ones (itself if already LPS)."""
    if orientation_code(image.GetDirection()) == STANDARD_ORIENTATION:
        return image
    return sitk.DICOMOrient(image, STANDARD_ORIENTATION)


def standard_axis_order(direction: Sequence[float]) -> tuple[int, int, int]:
    """For each LPS axis (x, y, z), the input axis that becomes it (ITK's own rule, on a 1×2×3 probe)."""
    probe = sitk.Image([1, 2, 3], sitk.sitkUInt8)
    probe.SetDirection([float(d) for d in direction])
    x, y, z = to_standard_orientation(probe).GetSize()
    return x - 1, y - 1, z - 1


def standard_spacing(spacing: Sequence[float], direction: Sequence[float]) -> tuple[float, float, float]:
    """The voxel spacing (x, y, z) an image of ``spacing`` and ``direction`` has once in LPS order."""
    x, y, z = standard_axis_order(direction)
    return float(spacing[x]), float(spacing[y]), float(spacing[z])


@dataclass(frozen=True)
class LpsView:
    """Where an image's voxels lie once its axes are in LPS order, found without copying them.

    ``axes[k]`` is the input axis that becomes LPS axis k, reversed where ``flipped[k]``; size,
    spacing, origin and direction (x, y, z) are those ``sitk.DICOMOrient(image, "LPS")`` would give.
    """

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    axes: tuple[int, int, int]
    flipped: tuple[bool, bool, bool]

    def index_range(self, axis: int, start: int, stop: int) -> tuple[int, int]:
        """The index range ``[start, stop)`` of input axis ``self.axes[axis]`` on LPS axis ``axis``."""
        if self.flipped[axis]:
            return self.size[axis] - stop, self.size[axis] - start
        return start, stop


def lps_view(image: sitk.Image) -> LpsView:
    """``image``'s geometry in LPS axis order (see ``LpsView``)."""
    axes = standard_axis_order(image.GetDirection())
    ax, ay, az = axes
    matrix = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    flipped = (bool(matrix[0, ax] < 0), bool(matrix[1, ay] < 0), bool(matrix[2, az] < 0))
    size, spacing = image.GetSize(), image.GetSpacing()
    corner = [0, 0, 0]
    for k, axis in enumerate(axes):
        corner[axis] = size[axis] - 1 if flipped[k] else 0
    columns = np.stack([matrix[:, axis] * (-1.0 if flip else 1.0) for axis, flip in zip(axes, flipped)], axis=1)
    return LpsView((size[ax], size[ay], size[az]), (spacing[ax], spacing[ay], spacing[az]),
                   image.TransformIndexToPhysicalPoint(corner), tuple(columns.ravel().tolist()), axes, flipped)

"""A CT padded with air to a wider field of view, the body kept at its centre (test and benchmark input)."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

AIR_HU = -1024
BODY_HU = -500


def pad_body_centred(image: sitk.Image, field: int = 512) -> sitk.Image:
    """``image`` padded with air (-1024 HU) in x and y to ``field``×``field`` voxels, spacing and
    direction kept, the body's bounding box (HU > -500) centred; the origin moves so that every
    original voxel keeps its physical place."""
    array = sitk.GetArrayFromImage(image)
    inside = array > BODY_HU
    before = []
    for axis, size in ((2, image.GetSize()[0]), (1, image.GetSize()[1])):  # x, then y
        if size > field:
            raise ValueError(f"the image is {size} voxels wide, more than the field of {field}")
        hits = np.flatnonzero(inside.any(axis=tuple(a for a in range(3) if a != axis)))
        centre = (hits[0] + hits[-1] + 1) / 2 if hits.size else size / 2
        before.append(int(min(max(round(field / 2 - centre), 0), field - size)))
    (x0, y0), (nx, ny) = before, image.GetSize()[:2]
    padded = np.pad(array, ((0, 0), (y0, field - ny - y0), (x0, field - nx - x0)), constant_values=AIR_HU)
    result = sitk.GetImageFromArray(padded.astype(array.dtype))
    result.SetSpacing(image.GetSpacing())
    result.SetDirection(image.GetDirection())
    result.SetOrigin(image.TransformContinuousIndexToPhysicalPoint((-x0, -y0, 0)))
    return result

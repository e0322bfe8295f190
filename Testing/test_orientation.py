"""LPS orientation: the view computed from the header matches what SimpleITK's DICOMOrient does."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from support import rotation

from dcaseg.data.orientation import lps_view, standard_spacing, to_standard_orientation


@pytest.mark.parametrize("direction", [
    rotation((0, 0, 0)),                       # LPS already
    rotation((0, 0, 0), (-1, -1, 1)),          # RAS, as NIfTI files often are
    (0, 0, 1, 1, 0, 0, 0, 1, 0),               # axes permuted (a sagittal series)
    rotation((0.3, -0.2, 0.5), (1, -1, 1)),    # oblique and flipped
    rotation((2.5, 0.4, -1.0), (-1, 1, -1)),   # far from any axis
])
def test_the_lps_view_is_what_dicom_orient_gives(direction):
    image = sitk.GetImageFromArray(np.arange(5 * 7 * 9, dtype=np.int16).reshape(9, 7, 5))
    image.SetSpacing((0.7, 1.1, 2.5))
    image.SetOrigin((10.0, -20.0, 30.0))
    image.SetDirection(direction)
    view, oriented = lps_view(image), to_standard_orientation(image)
    assert view.size == oriented.GetSize()
    assert np.allclose(view.spacing, oriented.GetSpacing())
    assert view.spacing == standard_spacing(image.GetSpacing(), direction)
    assert np.allclose(view.origin, oriented.GetOrigin(), atol=1e-9)
    assert np.allclose(view.direction, oriented.GetDirection(), atol=1e-12)
    array = sitk.GetArrayViewFromImage(image)
    first, last = (oriented.GetPixel(0, 0, 0), oriented.GetPixel(*(n - 1 for n in oriented.GetSize())))
    corners = {int(array[z, y, x]) for z in (0, -1) for y in (0, -1) for x in (0, -1)}
    assert {first, last} <= corners

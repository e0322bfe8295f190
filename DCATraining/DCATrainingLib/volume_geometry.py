"""MRML volume node -> SimpleITK image with the same voxels and physical geometry.

Slicer stores geometry in RAS, ITK files in LPS: ``IJKToRAS = diag(-1, -1, 1) @ [D * S | O]``.
The voxel array order (slices, rows, columns) is the same in both.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def sitk_image_from_volume(volume_node, array: np.ndarray | None = None) -> sitk.Image:
    """An image holding ``array`` (default: the node's voxels) in ``volume_node``'s geometry."""
    voxels = slicer.util.arrayFromVolume(volume_node) if array is None else array
    image = sitk.GetImageFromArray(np.ascontiguousarray(voxels))
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASDirectionMatrix(matrix)
    directions_ras = np.array([[matrix.GetElement(r, c) for c in range(3)] for r in range(3)])
    image.SetSpacing(tuple(float(s) for s in volume_node.GetSpacing()))
    image.SetOrigin(tuple(float(v) for v in RAS_TO_LPS @ np.array(volume_node.GetOrigin())))
    image.SetDirection(tuple(float(v) for v in (RAS_TO_LPS @ directions_ras).ravel()))
    return image

"""The command line's ``.seg.nrrd`` opened by Slicer's own segmentation reader (slicer-core), as Add Data does."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from segmentation_models import CT_IMAGE

slicer = pytest.importorskip("slicer")
vtk = pytest.importorskip("vtk")
from vtk.util.numpy_support import vtk_to_numpy  # noqa: E402

from dcaseg.package import read_meta  # noqa: E402
from dcaseg.terminology import terminology_entry  # noqa: E402
from DCASegmentationLib.mrml_io import read_volume  # noqa: E402

DEMO_MODEL = Path(__file__).resolve().parents[2] / "DCASegmentation" / "Resources" / "Models" / \
    "dca-demo-synthetic-abdomen.zip"


def test_slicer_reads_named_coloured_segments_with_terminology_on_the_input_grid(mrml, tmp_path):
    out = tmp_path / "case.seg.nrrd"
    result = subprocess.run([sys.executable, "-m", "dcaseg", "segment", "-m", str(DEMO_MODEL), "-i", str(CT_IMAGE),
                             "-o", str(out), "--format", "seg.nrrd,labelmap", "--progress", "none"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "case.nii.gz")))  # (k, j, i)
    node = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(out))
    node.SetAndObserveStorageNodeID(storage.GetID())
    assert storage.ReadData(node)
    segmentation = node.GetSegmentation()
    classes = {info.value: info for info in read_meta(DEMO_MODEL).classes}
    found = [int(v) for v in np.unique(labels) if v]
    assert segmentation.GetNumberOfSegments() == len(found) >= 3
    ct = read_volume(mrml.scene, CT_IMAGE, "vtkMRMLScalarVolumeNode", "CT")
    ijk_to_ras = vtk.vtkMatrix4x4()
    ct.GetIJKToRASMatrix(ijk_to_ras)
    for index, value in enumerate(found):
        segment, info = segmentation.GetNthSegment(index), classes[value]
        assert (segment.GetName(), segment.GetLabelValue()) == (info.name, value)
        assert np.allclose(segment.GetColor(), np.array(info.color) / 255, atol=1e-5)
        tag = vtk.mutable("")
        assert segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), tag)
        assert str(tag) == terminology_entry(info.snomed)
        image = segment.GetRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName())
        image_to_world = vtk.vtkMatrix4x4()
        image.GetImageToWorldMatrix(image_to_world)
        assert np.allclose(slicer.util.arrayFromVTKMatrix(image_to_world),
                           slicer.util.arrayFromVTKMatrix(ijk_to_ras), atol=1e-4)
        i0, i1, j0, j1, k0, k1 = image.GetExtent()
        voxels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(image.GetDimensions()[::-1])
        inside = np.zeros(labels.shape, bool)
        inside[k0:k1 + 1, j0:j1 + 1, i0:i1 + 1] = True
        assert np.array_equal(voxels == value, labels[k0:k1 + 1, j0:j1 + 1, i0:i1 + 1] == value)
        assert not np.any((labels == value) & ~inside)

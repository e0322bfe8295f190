"""End to end: the real engine subprocess segments the real CT; results land in a real MRML scene."""
from __future__ import annotations

import os
import shutil
import sys
import time

import numpy as np
import pytest
import SimpleITK as sitk
from segmentation_models import CT_IMAGE, abd14_classes, tiny_abd14_model

slicer = pytest.importorskip("slicer")
vtk = pytest.importorskip("vtk")

from dcaseg.grouping import GROUP_NAMES  # noqa: E402
from DCASegmentationLib.attention import color_node_id, show_overlays  # noqa: E402
from DCASegmentationLib.mrml_io import node_ids, read_volume  # noqa: E402
from DCASegmentationLib.segment_runner import SegmentRequest, SegmentRun  # noqa: E402

RUN_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_abd14_model(tmp_path_factory.mktemp("models") / "tiny-abd14")


@pytest.fixture
def ct(mrml):
    volume = read_volume(mrml.scene, CT_IMAGE, "vtkMRMLScalarVolumeNode", "CT")
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(mrml.scene)
    study = sh.CreateStudyItem(sh.CreateSubjectItem(sh.GetSceneItemID(), "patient"), "study")
    sh.CreateItem(study, volume)
    return volume


def ijk_to_ras(volume) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def start(request: SegmentRequest, **callbacks) -> SegmentRun:
    run = SegmentRun(request, python=sys.executable, **callbacks)
    run.start()
    return run


def test_real_engine_run_gives_segments_and_attention_overlays_in_mrml(mrml, ct, model):
    engine_files = {}
    progress = []

    def keep_engine_outputs(outcome):  # called before the temp folder is removed
        outputs = run.process.result.outputs
        engine_files.update({k: sitk.GetArrayFromImage(sitk.ReadImage(v)) for k, v in outputs.items()})

    request = SegmentRequest(ct, model, abd14_classes(), device="cpu", overlap=0.25, attention=True)
    run = start(request, on_progress=lambda f, text: progress.append((f, text)), on_finish=keep_engine_outputs)
    outcome = run.wait(RUN_TIMEOUT_S)

    assert outcome is not None and outcome.status == "done", outcome and outcome.error
    assert not run.temp_dir.exists()
    fractions = [f for f, _ in progress if f is not None]
    assert fractions[-1] == 1.0 and fractions == sorted(fractions) and len(fractions) > 2

    # one named, coloured segment per predicted organ, carrying the model's label value
    classes = {c.value: c for c in abd14_classes()}
    predicted = {int(v) for v in np.unique(engine_files["labels"]) if v}
    assert predicted, "the random model predicted background only: pick another seed"
    seg = outcome.segmentation.GetSegmentation()
    found = {seg.GetNthSegment(i).GetLabelValue(): seg.GetNthSegment(i) for i in range(seg.GetNumberOfSegments())}
    assert set(found) == predicted
    for value, segment in found.items():
        assert segment.GetName() == classes[value].name
        assert np.allclose(segment.GetColor(), np.array(classes[value].color) / 255.0)

    # the segmentation's geometry is the input's, and its voxels are the engine's labels
    ids, values = vtk.vtkStringArray(), vtk.vtkIntArray()
    for value, segment in found.items():
        ids.InsertNextValue(seg.GetSegmentIdBySegment(segment))
        values.InsertNextValue(value)
    merged = slicer.vtkOrientedImageData()
    assert outcome.segmentation.GenerateMergedLabelmapForAllSegments(
        merged, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY, None, ids, values)
    matrix = vtk.vtkMatrix4x4()
    merged.GetImageToWorldMatrix(matrix)
    assert np.allclose(slicer.util.arrayFromVTKMatrix(matrix), ijk_to_ras(ct))
    assert merged.GetDimensions() == ct.GetImageData().GetDimensions()
    from vtk.util.numpy_support import vtk_to_numpy

    exported = vtk_to_numpy(merged.GetPointData().GetScalars()).reshape(merged.GetDimensions()[::-1])
    assert np.array_equal(exported, engine_files["labels"])

    # three attention volumes with the input's geometry and a 0..1 perceptual colour map
    overlays = outcome.overlays
    assert sorted(overlays.volumes) == sorted(GROUP_NAMES)
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(mrml.scene)
    for expert, volume in overlays.volumes.items():
        assert np.allclose(ijk_to_ras(volume), ijk_to_ras(ct))
        assert np.array_equal(slicer.util.arrayFromVolume(volume), engine_files[f"attention_{expert}"])
        display = volume.GetDisplayNode()
        assert display.GetColorNodeID() == color_node_id(expert)
        assert mrml.scene.GetNodeByID(color_node_id(expert)) is not None
        assert (display.GetWindow(), display.GetLevel(), display.GetAutoWindowLevel()) == (1.0, 0.5, 0)
        assert sh.GetItemParent(sh.GetItemByDataNode(volume)) == overlays.folder_item
    assert sh.GetItemParent(overlays.folder_item) == sh.GetItemParent(sh.GetItemByDataNode(ct))

    # foreground layer: one expert, then an RGB blend of two, then none
    red = mrml.scene.GetFirstNode("Red", "vtkMRMLSliceNode")
    composite = next(c for c in show_overlays_composites(mrml.scene) if c.GetLayoutName() == red.GetLayoutName())
    before = blended_slice(mrml, ct, composite)
    shown = show_overlays(overlays, ["medium"], 0.7, background=ct)
    assert shown is overlays.volumes["medium"]
    assert composite.GetForegroundVolumeID() == shown.GetID() and composite.GetForegroundOpacity() == 0.7
    assert composite.GetBackgroundVolumeID() == ct.GetID()
    assert not np.array_equal(blended_slice(mrml, ct, composite), before)
    blend = show_overlays(overlays, ["head", "tail"], 0.5)
    rgb = slicer.util.arrayFromVolume(blend)
    assert composite.GetForegroundVolumeID() == blend.GetID() and rgb.shape[-1] == 3
    assert np.abs(rgb[..., 0] / 255.0 - engine_files["attention_head"]).max() <= 0.5 / 255 + 1e-6
    assert rgb[..., 1].max() == 0
    assert np.allclose(ijk_to_ras(blend), ijk_to_ras(ct))
    again = show_overlays(overlays, ["medium", "tail"], 0.5)
    rgb = slicer.util.arrayFromVolume(again)
    assert again is blend and rgb[..., 0].max() == 0 and rgb[..., 1].max() > 0   # same node, new channels
    assert show_overlays(overlays, [], 0.5) is None and composite.GetForegroundVolumeID() is None
    assert "ERR" not in mrml.vtk_log.GetOutput()


def show_overlays_composites(scene):
    nodes = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    return [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]


def blended_slice(mrml, ct, composite) -> np.ndarray:
    """The Red view's blended RGBA image as the slice logic computes it (no OpenGL)."""
    from vtk.util.numpy_support import vtk_to_numpy

    for i in range(mrml.slice_logics.GetNumberOfItems()):
        logic = mrml.slice_logics.GetItemAsObject(i)
        if logic.GetSliceCompositeNode() is composite:
            composite.SetBackgroundVolumeID(ct.GetID())
            logic.FitSliceToAll()
            producer = logic.GetImageDataConnection().GetProducer()
            producer.Update()
            image = producer.GetOutputDataObject(0)
            return vtk_to_numpy(image.GetPointData().GetScalars()).copy()
    raise AssertionError("no slice logic for the Red composite node")


def test_cancel_kills_the_engine_imports_nothing_and_removes_temp_files(mrml, ct, model):
    before = node_ids(mrml.scene)
    request = SegmentRequest(ct, model, abd14_classes(), device="cpu", overlap=0.5, attention=True)
    events, outcomes = [], []
    run = start(request, on_progress=lambda fraction, text: events.append(text), on_finish=outcomes.append)
    pid = run.process.pid
    while not [text for text in events if text != "starting the engine"]:    # the engine is at work
        assert run.poll(), "the engine ended before reporting any progress"
        time.sleep(0.02)
    run.cancel()
    outcome = run.wait(60)
    assert outcome.status == "cancelled" and outcomes == [outcome]
    assert not _alive(pid)
    assert node_ids(mrml.scene) == before
    assert not run.temp_dir.exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_corrupt_model_reaches_the_caller_as_one_readable_message(mrml, ct, model, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    (broken / "weights.safetensors").write_bytes(b"PK\x03\x04 this is not a tensor file")
    before = node_ids(mrml.scene)
    run = start(SegmentRequest(ct, broken, abd14_classes(), device="cpu"))
    outcome = run.wait(RUN_TIMEOUT_S)
    assert outcome.status == "failed"
    assert "weights.safetensors is not a valid safetensors file" in outcome.error
    assert "\n" not in outcome.error and "Traceback" not in outcome.error
    assert node_ids(mrml.scene) == before
    assert not run.temp_dir.exists()


def test_a_volume_without_voxels_fails_before_the_engine_starts(mrml, model):
    empty = mrml.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "no voxels")
    outcomes = []
    run = SegmentRun(SegmentRequest(empty, model, abd14_classes()), python=sys.executable, on_finish=outcomes.append)
    run.start()
    assert run.process is None and outcomes == [run.outcome]
    assert run.outcome.status == "failed" and run.outcome.error == "'no voxels' has no voxels to segment"
    assert not run.temp_dir.exists()

"""The widget's overlay display: only overlay choices touch the slice views; a new input hides them."""
from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

from dcaseg.grouping import GROUP_NAMES  # noqa: E402
from DCASegmentationLib.attention import AttentionOverlays, OverlayDisplay  # noqa: E402


def composites(scene) -> list:
    nodes = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    return [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]


def layers(scene) -> list[tuple]:
    return [(c.GetBackgroundVolumeID(), c.GetForegroundVolumeID(), c.GetForegroundOpacity()) for c in composites(scene)]


@pytest.fixture
def run(mrml):
    """A CT, a second CT and the first one's three attention volumes, as a finished run leaves them."""
    grid = np.zeros((8, 16, 16), np.float32)
    ct = slicer.util.addVolumeFromArray(grid - 1000.0, name="CT")
    other = slicer.util.addVolumeFromArray(grid + 40.0, name="other CT")
    volumes = {g: slicer.util.addVolumeFromArray(grid + i / 3.0, name=f"CT organs attention {g}")
               for i, g in enumerate(GROUP_NAMES)}
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(mrml.scene)
    folder = sh.CreateFolderItem(sh.GetSceneItemID(), "CT organs attention")
    return ct, other, AttentionOverlays(volumes, folder, "CT organs")


def test_other_choices_leave_the_users_slice_layers_alone(mrml, run):
    ct, other, overlays = run
    assert composites(mrml.scene)
    display = OverlayDisplay()
    display.set_run(overlays, ct)
    display.update(ct, ["head"], 0.5)
    assert {c.GetForegroundVolumeID() for c in composites(mrml.scene)} == {overlays.volumes["head"].GetID()}

    for composite in composites(mrml.scene):   # the user lays their own volume over the CT
        composite.SetForegroundVolumeID(other.GetID())
        composite.SetForegroundOpacity(0.3)
    before = layers(mrml.scene)
    display.update(ct, ["head"], 0.5)          # what a changed overlap, model or device triggers
    display.update(ct, ("head",), 0.5)
    assert layers(mrml.scene) == before

    display.update(ct, ["head", "tail"], 0.5)  # an overlay choice does apply
    assert all(fg != other.GetID() for _bg, fg, _op in layers(mrml.scene))


def test_choosing_another_input_hides_the_previous_runs_overlays(mrml, run):
    ct, other, overlays = run
    display = OverlayDisplay()
    display.set_run(overlays, ct)
    display.update(ct, ["medium"], 0.6)
    assert {fg for _bg, fg, _op in layers(mrml.scene)} == {overlays.volumes["medium"].GetID()}

    display.update(other, ["medium"], 0.6)
    assert {fg for _bg, fg, _op in layers(mrml.scene)} == {None}
    display.update(ct, ["medium"], 0.6)        # the run is forgotten: going back shows nothing again
    assert {fg for _bg, fg, _op in layers(mrml.scene)} == {None}
    assert all(v.GetScene() is mrml.scene for v in overlays.volumes.values())   # the maps stay in the scene

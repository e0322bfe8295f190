"""A real MRML scene from PyPI ``slicer-core`` (no Qt, no Slicer app) for the modules' Lib logic.

The application logic must stay referenced while module logics use it, and slice nodes are built
by hand (a layout logic followed by ``scene.Clear(1)`` crashes).
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

try:
    import slicer
    import vtk
except ImportError:  # a top-level importorskip would be a collection error
    slicer = vtk = None

ROOT = Path(__file__).resolve().parents[2]
for module_dir in ("DCASegmentation", "DCATraining"):
    if str(ROOT / module_dir) not in sys.path:
        sys.path.insert(0, str(ROOT / module_dir))

SLICE_VIEWS = (("Red", "Axial"), ("Yellow", "Sagittal"), ("Green", "Coronal"))
SLICER_RESOURCES = ROOT / "Testing" / "Data" / "slicer_resources"
SLICER_COLOUR_FILES = ("Inferno.txt", "Viridis.txt", "Cividis.txt")


def load_slicer_colour_files(scene) -> None:
    """Add Slicer's shipped colour tables as Slicer does at start-up (slicer-core ships no colour files)."""
    for name in SLICER_COLOUR_FILES:
        node = slicer.vtkMRMLColorTableNode()
        node.SetName(name[:-4])
        node.SetSingletonTag(f"File{name}")
        storage = slicer.vtkMRMLColorTableStorageNode()
        storage.SetFileName(str(SLICER_RESOURCES / name))
        assert storage.ReadData(node), name
        scene.AddNode(node)


@pytest.fixture
def mrml():
    """A scene with colour, volume and segmentation logics, three slice views and collected VTK errors."""
    if slicer is None:
        pytest.skip("slicer-core is not installed")
    scene = slicer.vtkMRMLScene()
    app = slicer.vtkSlicerApplicationLogic()
    app.SetMRMLScene(scene)
    colors = app.GetColorLogic()
    colors.SetMRMLScene(scene)
    app.SetModuleLogic("Colors", colors)
    load_slicer_colour_files(scene)
    logics = {"colors": colors}
    for key, name, cls in (("volumes", "Volumes", slicer.vtkSlicerVolumesLogic),
                           ("segmentations", "Segmentations", slicer.vtkSlicerSegmentationsModuleLogic)):
        logic = cls()
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(app)
        app.SetModuleLogic(name, logic)
        logics[key] = logic
    slice_logics = vtk.vtkCollection()
    slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene, True)
    for name, orientation in SLICE_VIEWS:
        slice_node = scene.AddNewNodeByClass("vtkMRMLSliceNode", name)  # gets the orientation presets
        slice_node.SetLayoutName(name)
        slice_node.SetSingletonTag(name)
        slice_node.SetOrientation(orientation)
        slice_logic = slicer.vtkMRMLSliceLogic()
        slice_logic.SetMRMLScene(scene)
        slice_logic.SetMRMLApplicationLogic(app)
        slice_logic.SetSliceNode(slice_node)
        slice_logics.AddItem(slice_logic)
    app.SetSliceLogics(slice_logics)
    missing = object()
    saved = {k: getattr(slicer, k, missing) for k in ("mrmlScene", "modules")}
    slicer.mrmlScene = scene
    slicer.modules = types.SimpleNamespace(**{k: types.SimpleNamespace(logic=(lambda lg=lg: lg))
                                              for k, lg in logics.items()})
    log, previous = vtk.vtkStringOutputWindow(), vtk.vtkOutputWindow.GetInstance()
    vtk.vtkOutputWindow.SetInstance(log)
    yield types.SimpleNamespace(scene=scene, app=app, vtk_log=log, slice_logics=slice_logics, **logics)
    vtk.vtkOutputWindow.SetInstance(previous)
    scene.Clear(1)
    for key, value in saved.items():
        if value is missing:
            delattr(slicer, key)
        else:
            setattr(slicer, key, value)

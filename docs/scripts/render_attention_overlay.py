"""Render docs/images/attention_overlay.png: what the DCA Segmentation module shows in a slice view.

Runs the real engine on the real CT fixture through the module's own logic (``SegmentRun``) in a
headless MRML scene (PyPI ``slicer-core``), then lets Slicer's slice logic blend each layer exactly
as the Red view would: organ labels, then each expert's attention overlay, then the RGB blend.

    .venv/bin/python docs/scripts/render_attention_overlay.py --model MODEL [--volume CT] [--out PNG]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import slicer  # noqa: E402
import vtk  # noqa: E402
from vtk.util.numpy_support import vtk_to_numpy  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "DCASegmentation"))

from dcaseg.package import read_meta  # noqa: E402
from DCASegmentationLib.attention import show_overlays  # noqa: E402
from DCASegmentationLib.mrml_io import read_volume  # noqa: E402
from DCASegmentationLib.segment_runner import SegmentRequest, SegmentRun  # noqa: E402

CT = ROOT / "Testing" / "Data" / "realct" / "tsA_ct_sm_noncontrast_image.nii.gz"


def red_view(scene, app):
    """A headless Red slice view: slice node + slice logic (the same blend Slicer draws)."""
    slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene, True)
    node = scene.AddNewNodeByClass("vtkMRMLSliceNode", "Red")  # the scene's default node has the presets
    node.SetLayoutName("Red")
    node.SetSingletonTag("Red")
    node.SetOrientation("Axial")
    node.SetDimensions(512, 512, 1)
    logic = slicer.vtkMRMLSliceLogic()
    logic.SetMRMLScene(scene)
    logic.SetMRMLApplicationLogic(app)
    logic.SetSliceNode(node)
    logics = vtk.vtkCollection()
    logics.AddItem(logic)
    app.SetSliceLogics(logics)
    return logic


def rendered(logic) -> np.ndarray:
    producer = logic.GetImageDataConnection().GetProducer()
    producer.Update()
    image = producer.GetOutputDataObject(0)
    width, height, _ = image.GetDimensions()
    rgba = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)
    return rgba[::-1, :, :3]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model package folder or .zip")
    parser.add_argument("--volume", type=Path, default=CT, help="CT to segment (default: the real CT fixture)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "attention_overlay.png")
    parser.add_argument("--opacity", type=float, default=0.6)
    args = parser.parse_args()

    scene = slicer.vtkMRMLScene()
    app = slicer.vtkSlicerApplicationLogic()
    app.SetMRMLScene(scene)
    colors = app.GetColorLogic()
    colors.SetMRMLScene(scene)
    app.SetModuleLogic("Colors", colors)
    slicer.mrmlScene = scene
    logic = red_view(scene, app)

    ct = read_volume(scene, args.volume, "vtkMRMLScalarVolumeNode", "CT")
    ct.CreateDefaultDisplayNodes()
    ct.GetDisplayNode().AutoWindowLevelOff()
    ct.GetDisplayNode().SetWindowLevel(400, 40)
    meta = read_meta(args.model)
    run = SegmentRun(SegmentRequest(ct, args.model, meta.classes, device="cpu", overlap=0.5, attention=True),
                     python=sys.executable)
    run.start()
    outcome = run.wait()
    if outcome is None or outcome.status != "done":
        print(f"segmentation failed: {outcome.error if outcome else 'timeout'}", file=sys.stderr)
        return 1

    labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "organs")
    slicer.vtkSlicerSegmentationsModuleLogic.ExportVisibleSegmentsToLabelmapNode(outcome.segmentation, labels, ct)
    composite = logic.GetSliceCompositeNode()
    composite.SetBackgroundVolumeID(ct.GetID())
    logic.FitSliceToAll()
    organs = slicer.util.arrayFromVolume(labels)
    k = int(np.argmax((organs > 0).sum(axis=(1, 2))))
    ijk_to_ras = vtk.vtkMatrix4x4()
    ct.GetIJKToRASMatrix(ijk_to_ras)
    logic.GetSliceNode().SetSliceOffset(ijk_to_ras.MultiplyPoint((0, 0, k, 1))[2])

    panels = []
    composite.SetLabelVolumeID(labels.GetID())
    composite.SetLabelOpacity(0.7)
    panels.append(("organs (segments)", rendered(logic)))
    composite.SetLabelVolumeID(None)
    for expert, title in (("head", "head expert (inferno)"), ("medium", "medium expert (viridis)"),
                          ("tail", "tail expert (cividis)")):
        show_overlays(outcome.overlays, [expert], args.opacity, background=ct)
        panels.append((title, rendered(logic)))
    show_overlays(outcome.overlays, ["head", "medium", "tail"], args.opacity, background=ct)
    panels.append(("all three: RGB blend", rendered(logic)))

    figure, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6))
    for ax, (title, image) in zip(axes, panels):
        ax.imshow(image)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    figure.suptitle(f"DCA Segmentation in a Slicer slice view: model '{meta.name}' on {args.volume.name}", fontsize=11)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

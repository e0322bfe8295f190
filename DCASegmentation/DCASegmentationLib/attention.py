"""Head/medium/tail attention overlays: which expert the model trusted where.

The engine writes one float map per expert (DFAM weights of the finest stage, 0..1, same
geometry as the input). Here they become scalar volumes with one of Slicer's perceptual colour maps
(Inferno, Viridis, Cividis) and a fixed window 0..1, grouped in a subject-hierarchy folder next to
the segmentation, and shown as the slice views' foreground: one expert alone with its colour map,
or several at once as one RGB blend (head red, medium green, tail blue).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import slicer
import vtk

from dcaseg.grouping import GROUP_NAMES

from .mrml_io import copy_parent_transform, read_volume, set_item_parent, subject_item

BLEND_CHANNEL = {"head": 0, "medium": 1, "tail": 2}
# One perceptual colour map of Slicer's per expert, for an expert shown alone.
EXPERT_COLORMAPS = {"head": "Inferno", "medium": "Viridis", "tail": "Cividis"}


@dataclass
class AttentionOverlays:
    """The overlay volumes of one segmentation run and their subject-hierarchy folder item."""

    volumes: dict[str, slicer.vtkMRMLScalarVolumeNode]
    folder_item: int
    base_name: str
    blend: slicer.vtkMRMLVectorVolumeNode | None = field(default=None)


def color_node_id(expert: str) -> str:
    """The ID of the colour table Slicer ships for ``expert``'s overlay (loaded at Slicer's start-up)."""
    return f"vtkMRMLColorTableNodeFile{EXPERT_COLORMAPS[expert]}.txt"


def load_overlays(paths: Mapping[str, str | Path], input_volume, segmentation_node) -> AttentionOverlays:
    """Add the three attention maps as volumes next to ``segmentation_node`` (all three or none)."""
    scene = input_volume.GetScene()
    missing = [g for g in GROUP_NAMES if g not in paths]
    if missing:
        raise ValueError(f"the engine wrote no attention map for {', '.join(missing)}")
    base = segmentation_node.GetName()
    volumes = {}
    for expert in GROUP_NAMES:
        volume = read_volume(scene, Path(paths[expert]), "vtkMRMLScalarVolumeNode", f"{base} attention {expert}")
        copy_parent_transform(volume, input_volume)
        volume.CreateDefaultDisplayNodes()
        display = volume.GetDisplayNode()
        if scene.GetNodeByID(color_node_id(expert)) is not None:
            display.SetAndObserveColorNodeID(color_node_id(expert))
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(0.0, 1.0)
        volume.SetAttribute("DCA.expert", expert)
        volumes[expert] = volume
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    folder = sh.CreateFolderItem(sh.GetItemParent(subject_item(sh, segmentation_node)), f"{base} attention")
    for volume in volumes.values():
        set_item_parent(sh, volume, folder)
    return AttentionOverlays(volumes, folder, base)


def show_overlays(overlays: AttentionOverlays | None, experts: tuple[str, ...] | list[str], opacity: float,
                  background=None, scene=None) -> slicer.vtkMRMLVolumeNode | None:
    """Make the slice views show the chosen experts' attention as foreground; return the shown node.

    No expert (or no overlays) clears the foreground; one expert shows its own volume; two or
    three show an RGB blend of them. ``background`` (e.g. the CT) is set too when given.
    """
    scene = scene or (next(iter(overlays.volumes.values())).GetScene() if overlays else None)
    if scene is None:
        return None
    chosen = [g for g in GROUP_NAMES if g in experts] if overlays is not None else []
    shown: slicer.vtkMRMLVolumeNode | None
    if overlays is None or not chosen:
        shown = None
    elif len(chosen) == 1:
        shown = overlays.volumes[chosen[0]]
    else:
        shown = _update_blend(overlays, chosen)
    for composite in _composite_nodes(scene):
        if background is not None:
            composite.SetBackgroundVolumeID(background.GetID())
        composite.SetForegroundVolumeID(shown.GetID() if shown is not None else None)
        composite.SetForegroundOpacity(float(opacity))
    return shown


def _update_blend(overlays: AttentionOverlays, experts: list[str]) -> slicer.vtkMRMLVectorVolumeNode:
    """An RGB (uint8) volume whose channels are the chosen experts' maps; created on first use and
    recomputed only when the choice of experts changes."""
    chosen = ",".join(experts)
    if overlays.blend is not None and overlays.blend.GetScene() is not None \
            and overlays.blend.GetAttribute("DCA.experts") == chosen:
        return overlays.blend
    reference = overlays.volumes[GROUP_NAMES[0]]
    maps = {g: slicer.util.arrayFromVolume(v) for g, v in overlays.volumes.items()}
    rgb = np.zeros((*maps[GROUP_NAMES[0]].shape, 3), dtype=np.uint8)
    for expert in experts:
        rgb[..., BLEND_CHANNEL[expert]] = np.clip(maps[expert] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    scene = reference.GetScene()
    blend = overlays.blend
    if blend is None or blend.GetScene() is None:
        blend = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", f"{overlays.base_name} attention blend")
        blend.CreateDefaultDisplayNodes()
        copy_parent_transform(blend, reference)
        set_item_parent(slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene), blend,
                        overlays.folder_item)
        overlays.blend = blend
    matrix = vtk.vtkMatrix4x4()
    reference.GetIJKToRASMatrix(matrix)
    blend.SetIJKToRASMatrix(matrix)
    slicer.util.updateVolumeFromArray(blend, rgb)
    blend.SetAttribute("DCA.experts", chosen)
    return blend


def _composite_nodes(scene) -> list:
    nodes = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    return [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]


def hide_overlays(overlays: AttentionOverlays) -> None:
    """Clear the slice views' foreground where it shows one of ``overlays``' volumes (others stay)."""
    ours = {v.GetID() for v in overlays.volumes.values() if v.GetScene() is not None}
    if overlays.blend is not None and overlays.blend.GetScene() is not None:
        ours.add(overlays.blend.GetID())
    if not ours:
        return
    scene = next(v for v in overlays.volumes.values() if v.GetScene() is not None).GetScene()
    for composite in _composite_nodes(scene):
        if composite.GetForegroundVolumeID() in ours:
            composite.SetForegroundVolumeID(None)


class OverlayDisplay:
    """The last run's overlays in the slice views, re-applied only when the overlay choice changes.

    Other choices (overlap, model, device) leave the user's slice-view layers alone; choosing
    another input volume hides the previous run's overlays, which belong to a different image.
    """

    def __init__(self) -> None:
        self.overlays: AttentionOverlays | None = None
        self.input_volume = None
        self._applied: tuple[tuple[str, ...], float] | None = None

    def set_run(self, overlays: AttentionOverlays | None, input_volume) -> None:
        """Follow a new run's overlays (of ``input_volume``); the next ``update`` shows them."""
        self.overlays, self.input_volume, self._applied = overlays, input_volume, None

    def forget(self) -> None:
        """Drop the overlays without touching the views (e.g. the scene is closing)."""
        self.set_run(None, None)

    def update(self, input_volume, experts: tuple[str, ...] | list[str], opacity: float) -> None:
        """Apply the current GUI state: show the chosen experts, or hide when the input changed."""
        if self.overlays is None:
            return
        if input_volume is not self.input_volume:
            hide_overlays(self.overlays)
            self.forget()
            return
        choice = (tuple(g for g in GROUP_NAMES if g in experts), float(opacity))
        if choice != self._applied:
            show_overlays(self.overlays, choice[0], choice[1], background=input_volume)
            self._applied = choice

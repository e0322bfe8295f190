"""Save correction: an edited segmentation becomes a label file in the dataset folder.

Segments are matched to the dataset's label values by name, exported in the volume's geometry,
and written atomically. An existing label is first copied to ``labels/.history/`` so no version
of an annotation is ever lost; the case then joins the labeled cases of the run's split.
"""
from __future__ import annotations

import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import slicer
import vtk

from dcaseg.atomic import atomic_write
from dcaseg.data.dataset import case_files, geometry_mismatch, scan_dataset
from dcaseg.data.imageio import image_extension, read_header, strip_image_extension, write_image_atomic
from dcaseg.errors import InputError
from dcaseg.training.split_file import mark_case_labeled
from DCASegmentationLib.mrml_io import node_ids

from .volume_geometry import sitk_image_from_volume

HISTORY_FOLDER = ".history"


@dataclass(frozen=True)
class SavedCorrection:
    """Where a correction went and what was kept."""

    case_id: str
    label_path: Path
    image_path: Path
    previous_label: Path | None
    image_copied: bool
    split_role: str | None


def normalized_name(name: str) -> str:
    """Segment/class names compare case-blind, with ``_``, ``-`` and spaces alike."""
    return re.sub(r"[\s_\-]+", " ", name).strip().lower()


def segment_label_values(segmentation_node, classes: Mapping[int, str]) -> dict[str, int]:
    """``{segment id: label value}`` for every segment; an unknown or repeated name is an error."""
    by_name = {normalized_name(name): value for value, name in classes.items()}
    segmentation = segmentation_node.GetSegmentation()
    values: dict[str, int] = {}
    seen: dict[int, str] = {}
    for index in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(index)
        name = segmentation.GetSegment(segment_id).GetName()
        value = by_name.get(normalized_name(name))
        if value is None:
            raise InputError(f"segment {name!r} matches no class of the dataset "
                             f"({', '.join(classes.values())}); rename or delete it")
        if value in seen:
            raise InputError(f"segments {seen[value]!r} and {name!r} both name class {classes[value]!r}")
        values[segment_id] = value
        seen[value] = name
    if not values:
        raise InputError(f"segmentation {segmentation_node.GetName()!r} has no segments to save")
    return values


def export_label_array(segmentation_node, volume_node, values: Mapping[str, int]) -> np.ndarray:
    """The segments as one label array (slices, rows, columns) on ``volume_node``'s voxel grid.

    Exported without a colour table, the way ``slicer.util.arrayFromSegmentBinaryLabelmap`` does
    in every Slicer version (5.8 dereferences a colour table that is not in the scene): Slicer
    numbers the segments 1..n in the order given, and we map those numbers to the class values.
    Every node the export adds to the scene (label map, display node, colour table) is removed.
    """
    scene = volume_node.GetScene()
    if scene is None or segmentation_node.GetScene() is not scene:
        raise InputError(f"volume {volume_node.GetName()!r} and segmentation {segmentation_node.GetName()!r} "
                         "must both be in the scene")
    segment_ids = list(values)
    id_array = vtk.vtkStringArray()
    for segment_id in segment_ids:
        id_array.InsertNextValue(segment_id)
    before = node_ids(scene)
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "DCATraining correction export")
    try:
        exported = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentation_node, id_array, labelmap, volume_node, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY)
        if not exported:
            raise InputError(f"could not export segmentation {segmentation_node.GetName()!r} "
                             f"onto volume {volume_node.GetName()!r}")
        order = np.array(slicer.util.arrayFromVolume(labelmap))
    finally:
        for node_id in node_ids(scene) - before:
            node = scene.GetNodeByID(node_id)
            if node is not None:
                scene.RemoveNode(node)
    class_of_order = np.array([0, *(values[segment_id] for segment_id in segment_ids)])
    dtype = np.uint8 if class_of_order.max() <= 255 else np.uint16
    return class_of_order.astype(dtype)[order]


def save_correction(segmentation_node, volume_node, dataset_root: str | Path, case_id: str | None = None,
                    run_dir: str | Path | None = None, role: str = "labeled") -> SavedCorrection:
    """Write the segmentation as the label of ``case_id`` (default: the volume's case) in the dataset.

    The volume's image is copied into the dataset when the case is new. With ``run_dir`` the case
    joins ``role`` in the run's ``split.json`` (see ``dcaseg.training.split_file.mark_case_labeled``).
    """
    scan = scan_dataset(dataset_root, inspect=False)
    if not scan.classes:
        raise InputError(f"{dataset_root}: no class names (labels.json or dataset.json) to match segments to")
    case_id = case_id or case_id_for_volume(volume_node, scan)
    existing = next((case for case in scan.cases if case.case_id == case_id), None)
    values = segment_label_values(segmentation_node, scan.classes)
    label_array = export_label_array(segmentation_node, volume_node, values)
    label_image = sitk_image_from_volume(volume_node, label_array)
    image_copied = existing is None
    if existing is None:
        image_path, label_path = case_files(Path(dataset_root), scan.layout, case_id)
        write_image_atomic(sitk_image_from_volume(volume_node), image_path)
    else:
        image_path = Path(existing.image)
        check_same_grid(image_path, label_image)
        label_path = Path(existing.label) if existing.label else \
            case_files(Path(dataset_root), scan.layout, case_id, image_extension(image_path))[1]
    previous = keep_history(label_path) if label_path.exists() else None
    write_image_atomic(label_image, label_path)
    split_role = mark_case_labeled(run_dir, case_id, role) if run_dir else None
    return SavedCorrection(case_id, label_path, image_path, previous, image_copied, split_role)


def case_id_for_volume(volume_node, scan) -> str:
    """The dataset case whose image the volume was loaded from, else a case id from the node name."""
    storage = volume_node.GetStorageNode()
    file_name = Path(storage.GetFileName()).resolve() if storage and storage.GetFileName() else None
    for case in scan.cases:
        if file_name is not None and Path(case.image).resolve() == file_name:
            return case.case_id
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "_", volume_node.GetName()).strip("._")
    if not name:
        raise InputError("cannot derive a case id from the volume name; give one")
    return name


def check_same_grid(image_path: Path, label_image) -> None:
    """Refuse a label whose voxel grid differs from the dataset image (e.g. a resampled volume)."""
    header = read_header(image_path)
    mismatch = geometry_mismatch((header.size, header.spacing, header.origin, header.direction),
                                 (label_image.GetSize(), label_image.GetSpacing(), label_image.GetOrigin(),
                                  label_image.GetDirection()))
    if mismatch:
        raise InputError(f"the volume in Slicer does not lie on the voxel grid of {image_path} ({mismatch}); "
                         "load that file and segment it")


def keep_history(label_path: Path) -> Path:
    """Copy ``label_path`` to ``<labels>/.history/<case>.<timestamp><ext>`` atomically; return the copy.

    The temporary copy carries this process's id, so one left by a killed Slicer is removed by the
    next write into the folder."""
    history = label_path.parent / HISTORY_FOLDER
    extension = image_extension(label_path) or label_path.suffix
    stem = strip_image_extension(label_path)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = history / f"{stem}.{stamp}{extension}"
    counter = 1
    while target.exists():
        target = history / f"{stem}.{stamp}-{counter}{extension}"
        counter += 1
    try:
        with atomic_write(target, binary=True) as copy, open(label_path, "rb") as source:
            shutil.copyfileobj(source, copy)
    except (InputError, OSError) as error:
        reason = error.strerror if isinstance(error, OSError) else str(error).rsplit(": ", 1)[-1]
        raise InputError(f"cannot keep a copy of {label_path} in {history}: {reason}") from None
    return target

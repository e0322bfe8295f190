"""Small MRML helpers shared by the result importers: read/write volumes, undo partial imports,
subject-hierarchy placement."""
from __future__ import annotations

from pathlib import Path

import slicer


class ResultError(RuntimeError):
    """An engine output that could not be turned into MRML nodes (one readable line)."""


def write_volume(volume_node, path: Path) -> None:
    """Write a volume with its full geometry (origin, spacing, directions) via Slicer's writer."""
    image = volume_node.GetImageData()
    if image is None or 0 in image.GetDimensions():
        raise ResultError(f"'{volume_node.GetName()}' has no voxels to segment")
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(False)
    if not storage.WriteData(volume_node):
        raise ResultError(f"could not write '{volume_node.GetName()}' to {path}")


def read_volume(scene, path: Path, class_name: str, name: str):
    """Add a volume node read from ``path``; no storage node stays attached (the file is temporary)."""
    node = scene.AddNewNodeByClass(class_name, name)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    if not Path(path).is_file() or not storage.ReadData(node):
        remove_node(node)
        raise ResultError(f"could not read engine output {path}")
    return node


class UndoOnError:
    """Context manager: nodes added to ``scene`` inside the block are removed again if it raises."""

    def __init__(self, scene) -> None:
        self.scene = scene
        self.before: set[str] = set()

    def __enter__(self) -> UndoOnError:
        self.before = node_ids(self.scene)
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is not None:
            for node_id in node_ids(self.scene) - self.before:
                node = self.scene.GetNodeByID(node_id)
                if node is not None:
                    self.scene.RemoveNode(node)


def remove_node(node) -> None:
    """Remove a node together with its display and storage nodes (``RemoveNode`` alone leaves them)."""
    scene = node.GetScene()
    if scene is None:
        return
    helpers = []
    for getter in ("GetNumberOfDisplayNodes", "GetNumberOfStorageNodes"):
        if hasattr(node, getter):
            nth = node.GetNthDisplayNode if getter == "GetNumberOfDisplayNodes" else node.GetNthStorageNode
            helpers += [nth(i) for i in range(getattr(node, getter)())]
    scene.RemoveNode(node)
    for helper in helpers:
        if helper is not None and helper.GetScene() is not None:
            scene.RemoveNode(helper)


def node_ids(scene) -> set[str]:
    """IDs of every node in ``scene``."""
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


def place_next_to(node, sibling) -> None:
    """Put ``node`` under the same subject-hierarchy parent as ``sibling`` (e.g. the CT's study)."""
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(node.GetScene())
    set_item_parent(sh, node, sh.GetItemParent(subject_item(sh, sibling)))


def subject_item(sh, node) -> int:
    """The subject-hierarchy item of ``node``; created under the scene if it has none yet."""
    item = sh.GetItemByDataNode(node)
    return item if item != sh.GetInvalidItemID() else sh.CreateItem(sh.GetSceneItemID(), node)


def set_item_parent(sh, node, parent_item: int) -> None:
    """Move ``node``'s subject-hierarchy item under ``parent_item``."""
    sh.SetItemParent(subject_item(sh, node), parent_item)


def copy_parent_transform(node, source) -> None:
    """Let ``node`` follow the same transform as ``source`` (outputs are in the source's frame)."""
    node.SetAndObserveTransformNodeID(source.GetTransformNodeID())

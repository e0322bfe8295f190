"""Small real model packages for the DCA Segmentation module's tests (random weights, n_filters 4)."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from support import random_network

from dcaseg.anatomy import organ_color, organ_snomed
from dcaseg.nets import ArchitectureConfig
from dcaseg.package import ClassInfo, ModelMeta, Preprocessing, expert_classes_from_groups, save_package

REALCT = Path(__file__).resolve().parents[1] / "Data" / "realct"
CT_IMAGE = REALCT / "tsA_ct_sm_noncontrast_image.nii.gz"
CT_LABELS = REALCT / "tsA_ct_sm_noncontrast_label.nii.gz"
GROUPS = {"head": [1, 2, 3, 6, 7], "medium": [4, 8, 9, 10, 11, 14], "tail": [5, 12, 13]}


def abd14_classes() -> list[ClassInfo]:
    """The 14 organs of the real CT fixture with the engine's colours and SNOMED codes."""
    names = json.loads((REALCT / "labelmap_abd14.json").read_text(encoding="utf-8"))
    return [ClassInfo(int(v), n, organ_color(n, int(v)), organ_snomed(n)) for v, n in names.items()]


def tiny_abd14_model(path: Path, seed: int = 0, name: str = "tiny abd14") -> Path:
    """Write a random-weight 14-organ DCA package (n_filters 4, 32^3 patches, 3 mm) to ``path``."""
    classes = abd14_classes()
    arch = ArchitectureConfig(len(classes) + 1, expert_classes_from_groups(GROUPS, classes), n_filters=4)
    meta = ModelMeta(name, arch, classes, GROUPS, Preprocessing((3.0, 3.0, 3.0), (32, 32, 32)),
                     description="random weights, for tests")
    torch.manual_seed(seed)
    return save_package(path, random_network(arch), meta)

"""Test support shared by the suites: the real CT fixture's paths, a tiny model description and
random networks.

Tests import from here, never from ``conftest`` (two conftest modules exist, so that name is ambiguous).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from dcaseg.anatomy import organ_color
from dcaseg.grouping import group_label_files
from dcaseg.nets import ArchitectureConfig, DCANet
from dcaseg.package import ClassInfo, ModelMeta, Preprocessing, expert_classes_from_groups

REALCT = Path(__file__).parent / "Data" / "realct"
REALCT_IMAGE = REALCT / "tsA_ct_sm_noncontrast_image.nii.gz"
REALCT_LABEL = REALCT / "tsA_ct_sm_noncontrast_label.nii.gz"


def tiny_model_meta() -> ModelMeta:
    """Metadata of a 14-class abdominal model: n_filters 4, 3 mm spacing, 32³ patches."""
    names = json.loads((REALCT / "labelmap_abd14.json").read_text(encoding="utf-8"))
    ordered = sorted(names.items(), key=lambda i: int(i[0]))
    classes = [ClassInfo(int(v), name, organ_color(name, int(v))) for v, name in ordered]
    groups = group_label_files([REALCT_LABEL], classes=[c.value for c in classes]).as_dict()
    architecture = ArchitectureConfig(num_classes=len(classes) + 1, n_filters=4,
                                      expert_classes=expert_classes_from_groups(groups, classes))
    preprocessing = Preprocessing(target_spacing=(3.0, 3.0, 3.0), patch_size=(32, 32, 32))
    return ModelMeta(name="tiny-abd14", architecture=architecture, classes=classes, groups=groups,
                     preprocessing=preprocessing, description="random weights, for tests")


def random_network(architecture: ArchitectureConfig) -> DCANet:
    """A random-weight network with a uniform start (output biases 0, no background prior), so its
    labels vary over the organs: test plumbing needs organs in the output, not background only."""
    network = DCANet(architecture)
    with torch.no_grad():
        for decoder in [network.aggregator, *network.experts.values()]:
            decoder.out_conv.bias.zero_()
    return network


def rotation(axis_angles: tuple[float, float, float], flip: tuple[int, int, int] = (1, 1, 1)) -> tuple[float, ...]:
    """A direction matrix (row-major) from rotations about x, y, z (radians) and per-axis flips."""
    ax, ay, az = axis_angles
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return tuple((rz @ ry @ rx @ np.diag(flip)).ravel())

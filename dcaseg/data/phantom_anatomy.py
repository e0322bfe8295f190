"""The reference anatomy of the synthetic abdomen: body wall, spine, muscles and the 13 BTCV organs.

All shapes are in millimetres in the reference frame of ``phantom_shapes`` (x: patient left,
y: posterior, z: superior; body centre at 0). The reference body is 260 mm wide and 200 mm deep;
its field of view spans z from -70 mm (below the kidneys) to 130 mm (lung bases), and
``phantom.py`` scales it to the requested one. Sizes are tuned so that each organ's share of the
foreground is close to that of a real abdominal CT (liver ~55 %, adrenal glands ~0.3 % each).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .phantom_shapes import Ellipsoid, Grid, Placement, Solid, Tube, solid_mask

BODY_HALF_WIDTH = 130.0   # x semi-axis of the body outline (mm)
BODY_HALF_DEPTH = 100.0   # y semi-axis
BODY_EXPONENT = 2.6       # superellipse exponent: a flatter back and sides than an ellipse
FAT_THICKNESS = 14.0      # subcutaneous fat
MUSCLE_THICKNESS = 9.0    # abdominal wall muscle
REFERENCE_FIELD = (288.0, 288.0, 200.0)  # field of view (mm) the reference anatomy is drawn for
REFERENCE_CENTER_Z = 30.0                 # z of the field's centre: liver dome to lower kidney poles


@dataclass(frozen=True)
class Organ:
    """A labelled organ: its label value, BTCV name, typical non-contrast HU and its solids."""

    label: int
    name: str
    hu: float
    solids: tuple[Solid, ...]


# Paint order: later organs win where solids overlap.
ORGANS: tuple[Organ, ...] = (
    Organ(6, "liver", 60.0, (
        Ellipsoid((-52.0, 2.0, 58.0), (62.0, 67.0, 56.5), yaw=-8.0),
        Ellipsoid((10.0, -38.0, 68.0), (50.0, 30.0, 32.0), yaw=-12.0),
    )),
    Organ(1, "spleen", 50.0, (Ellipsoid((78.0, 40.0, 60.0), (30.0, 58.0, 56.0), yaw=35.0),)),
    Organ(7, "stomach", 35.0, (
        Ellipsoid((42.0, 8.0, 88.0), (25.5, 24.5, 21.5)),
        Ellipsoid((32.0, -28.0, 52.0), (21.5, 19.5, 29.0), yaw=-20.0),
        Tube(((28.0, -40.0, 32.0), (-4.0, -46.0, 18.0)), 12.0),
    )),
    Organ(2, "kidney_right", 35.0, (Ellipsoid((-68.0, 50.0, -22.0), (26.0, 22.5, 53.0), yaw=25.0, tilt=12.0),)),
    Organ(3, "kidney_left", 35.0, (Ellipsoid((68.0, 50.0, -8.0), (26.0, 22.5, 53.0), yaw=-25.0, tilt=-12.0),)),
    Organ(4, "gallbladder", 10.0, (Ellipsoid((-48.0, -46.0, 14.0), (15.0, 17.0, 30.0), yaw=20.0, tilt=-15.0),)),
    Organ(11, "pancreas", 40.0, (
        Ellipsoid((-18.0, -14.0, 4.0), (13.0, 11.0, 16.0)),
        Tube(((-14.0, -12.0, 10.0), (6.0, -2.0, 22.0), (32.0, 12.0, 30.0), (58.0, 28.0, 40.0)), 8.5),
    )),
    Organ(5, "esophagus", 40.0, (Tube(((0.0, 34.0, 132.0), (6.0, 24.0, 104.0), (20.0, 14.0, 88.0),
                                       (30.0, 10.0, 80.0)), 6.5),)),
    Organ(8, "aorta", 45.0, (Tube(((10.0, 30.0, 132.0), (7.0, 28.0, 0.0), (4.0, 24.0, -70.0)), 8.0),)),
    Organ(9, "inferior_vena_cava", 45.0, (Tube(((-20.0, 22.0, 132.0), (-24.0, 26.0, 60.0), (-22.0, 28.0, 0.0),
                                                (-17.0, 28.0, -70.0)), 8.0),)),
    Organ(10, "portal_vein_and_splenic_vein", 45.0, (
        Tube(((-62.0, 0.0, 62.0), (-38.0, -4.0, 46.0), (-8.0, 6.0, 24.0)), 8.5),
        Tube(((-8.0, 6.0, 24.0), (24.0, 22.0, 30.0), (60.0, 36.0, 46.0)), 6.0),
    )),
    Organ(12, "adrenal_gland_right", 25.0, (
        Ellipsoid((-36.0, 38.0, 50.0), (3.5, 12.0, 18.0), yaw=20.0),
        Ellipsoid((-42.0, 40.0, 46.0), (3.5, 11.0, 16.0), yaw=-25.0),
    )),
    Organ(13, "adrenal_gland_left", 25.0, (
        Ellipsoid((38.0, 38.0, 40.0), (3.5, 12.0, 18.0), yaw=-20.0),
        Ellipsoid((44.0, 40.0, 36.0), (3.5, 11.0, 16.0), yaw=25.0),
    )),
)

CLASS_NAMES: dict[int, str] = {organ.label: organ.name for organ in sorted(ORGANS, key=lambda o: o.label)}

VERTEBRA = Ellipsoid((0.0, 52.0, 0.0), (21.0, 18.0, 1e6))
SPINAL_CANAL = Ellipsoid((0.0, 78.0, 0.0), (8.0, 7.0, 1e6))
POSTERIOR_ARCH = Tube(((0.0, 72.0, 0.0), (0.0, 92.0, 0.0)), 6.0)
MUSCLES: tuple[Solid, ...] = (
    Ellipsoid((-32.0, 54.0, -128.0), (15.0, 15.0, 140.0)),   # psoas, thicker towards the pelvis
    Ellipsoid((32.0, 54.0, -128.0), (15.0, 15.0, 140.0)),
    Ellipsoid((-32.0, 84.0, 0.0), (26.0, 14.0, 1e6)),        # paraspinal muscles
    Ellipsoid((32.0, 84.0, 0.0), (26.0, 14.0, 1e6)),
)
LUNG_BASES: tuple[Solid, ...] = (
    Ellipsoid((-70.0, 35.0, 175.0), (60.0, 60.0, 75.0)),
    Ellipsoid((70.0, 35.0, 175.0), (60.0, 60.0, 75.0)),
)


def body_radius(grid: Grid) -> np.ndarray:
    """Normalised superellipse radius of the body outline (1.0 on the skin, 0 at the centre)."""
    return (np.abs(grid.x * (1.0 / BODY_HALF_WIDTH)) ** BODY_EXPONENT
            + np.abs(grid.y * (1.0 / BODY_HALF_DEPTH)) ** BODY_EXPONENT) ** (1.0 / BODY_EXPONENT)


def layer_limit(thickness: float) -> float:
    """Normalised body radius at ``thickness`` mm inside the skin (measured on the short axis)."""
    return 1.0 - thickness / BODY_HALF_DEPTH


def spine_mask(grid: Grid) -> np.ndarray:
    """Vertebral bodies and posterior arches (the spinal canal excluded)."""
    return solid_mask((VERTEBRA, POSTERIOR_ARCH), grid) & ~solid_mask((SPINAL_CANAL,), grid)


def label_map(grid: Grid, places: dict[int, Placement], radius: np.ndarray) -> np.ndarray:
    """uint8 organ labels inside the abdominal cavity, painted in ``ORGANS`` order.

    ``radius`` is ``body_radius(grid)`` (shared with the CT rendering).
    """
    labels = np.zeros(grid.shape, dtype=np.uint8)
    for organ in ORGANS:
        labels[solid_mask(organ.solids, grid, places.get(organ.label, Placement()))] = organ.label
    outside = radius > layer_limit(FAT_THICKNESS + MUSCLE_THICKNESS)
    outside |= solid_mask((VERTEBRA, POSTERIOR_ARCH, SPINAL_CANAL) + MUSCLES, grid)
    labels[outside] = 0
    return labels

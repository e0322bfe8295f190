"""The ``varied`` phantom family: patients that differ the way a real cohort does (docs/phantom.md).

``varied_case(seed, index, size, spacing)`` renders (``render_case``) the record of
``phantom_varied_draw.draw_case`` on a grid: the body's frame scale, placement and roll, the
field of view moved along z, a smooth deformation, the wall layers of this patient, the organs
as drawn (an absent gallbladder is simply not painted), then the CT of ``phantom_varied_ct``.
Geometry and file layout are the standard family's (LPS, identity direction, int16 HU and uint8
labels on one grid).
"""
from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk

from .phantom_anatomy import MUSCLES, POSTERIOR_ARCH, REFERENCE_CENTER_Z, REFERENCE_FIELD, SPINAL_CANAL, VERTEBRA
from .phantom_shapes import Grid, solid_mask
from .phantom_varied_ct import render_varied_ct
from .phantom_varied_draw import Body, Deformation, VariedCase, draw_case

CAVITY_HALF_WIDTH = 100.0   # the abdominal cavity of the reference anatomy (mm, reference frame)
CAVITY_HALF_DEPTH = 77.0
POSTERIOR_FAT_SHARE = 0.8   # less subcutaneous fat at the back than at the sides and front


def superellipse_radius(x: np.ndarray, y: np.ndarray, half_width: float, half_depth: float,
                        exponent: float) -> np.ndarray:
    """Normalised radius of a superellipse outline: 1.0 on it, below 1 inside."""
    return (np.abs(x * (1.0 / half_width)) ** exponent + np.abs(y * (1.0 / half_depth)) ** exponent) ** (1.0 / exponent)


class BodyLayers:
    """Where the skin, the wall muscle and the abdominal cavity of one patient are on ``grid``."""

    def __init__(self, grid: Grid, body: Body) -> None:
        g, depth = body.frame_scale, CAVITY_HALF_DEPTH * body.cavity_depth_factor
        muscle, fat = body.muscle_mm / g, body.fat_mm / g
        outline = (grid.x, grid.y)
        self.cavity = superellipse_radius(*outline, CAVITY_HALF_WIDTH, depth, body.exponent) <= 1.0
        self.inside_muscle = superellipse_radius(*outline, CAVITY_HALF_WIDTH + muscle, depth + muscle,
                                                 body.exponent) <= 1.0
        self.body = superellipse_radius(*outline, CAVITY_HALF_WIDTH + muscle + fat,
                                        depth + muscle + POSTERIOR_FAT_SHARE * fat, body.exponent) <= 1.0
        self.half_width_mm = g * CAVITY_HALF_WIDTH + body.muscle_mm + body.fat_mm

    @property
    def wall_muscle(self) -> np.ndarray:
        return self.inside_muscle & ~self.cavity


def case_grid(case: VariedCase, size: tuple[int, int, int], spacing: tuple[float, float, float]) -> Grid:
    """Reference-frame coordinates of every voxel for this patient: field shift, placement, roll, deformation."""
    field = [n * s for n, s in zip(size, spacing)]
    fit_xy = min(field[0] / REFERENCE_FIELD[0], field[1] / REFERENCE_FIELD[1])
    fit = (fit_xy, fit_xy, field[2] / REFERENCE_FIELD[2])
    body = case.body
    centre = (-body.offset_mm[0], -body.offset_mm[1], REFERENCE_CENTER_Z + case.acquisition.fov_shift_mm)
    axes = tuple(((np.arange(n) - (n - 1) / 2.0) * s / f + c) / body.frame_scale
                 for n, s, f, c in zip(size, spacing, fit, centre))
    axes = tuple(a.astype(np.float32) for a in axes)
    x, y, z = axes[0][None, None, :], axes[1][None, :, None], axes[2][:, None, None]
    roll = math.radians(body.roll_deg)
    turned_x = math.cos(roll) * x + math.sin(roll) * y
    turned_y = -math.sin(roll) * x + math.cos(roll) * y
    shape = (size[2], size[1], size[0])
    moved = [np.broadcast_to(c, shape) + d for c, d in zip((turned_x, turned_y, z), _displacement(case.deformation,
                                                                                                 x, y, z, shape))]
    reach = float(np.hypot(np.abs(axes[0]).max(), np.abs(axes[1]).max()))
    margin = case.deformation.amplitude_mm + 2.0 * reach * abs(math.sin(roll / 2.0))
    return Grid(moved[0], moved[1], moved[2], (axes[0], axes[1], axes[2]), margin)


def _displacement(deformation: Deformation, x: np.ndarray, y: np.ndarray, z: np.ndarray,
                  shape: tuple[int, int, int]) -> list[np.ndarray]:
    """Per axis, the sum of sine-product terms; at most ``amplitude_mm`` in each axis."""
    result = []
    for wavelengths, phases in zip(deformation.wavelengths, deformation.phases):
        field = np.zeros(shape, dtype=np.float32)
        for term_waves, term_phases in zip(wavelengths, phases):
            factors = [np.sin(2.0 * math.pi * a / w + p).astype(np.float32)
                       for a, w, p in zip((x, y, z), term_waves, term_phases)]
            field += (deformation.amplitude_mm / len(wavelengths)) * factors[0] * factors[1] * factors[2]
        result.append(field)
    return result


def varied_label_map(case: VariedCase, grid: Grid, layers: BodyLayers) -> np.ndarray:
    """uint8 organ labels inside the patient's abdominal cavity, painted in anatomy order."""
    labels = np.zeros(grid.shape, dtype=np.uint8)
    for organ in case.organs:
        labels[solid_mask(organ.solids, grid)] = organ.label
    outside = ~layers.cavity | solid_mask((VERTEBRA, POSTERIOR_ARCH, SPINAL_CANAL) + MUSCLES, grid)
    labels[outside] = 0
    return labels


def varied_case(seed: int, index: int, size: tuple[int, int, int],
                spacing: tuple[float, float, float]) -> tuple[sitk.Image, sitk.Image]:
    """Case ``index`` of the varied family for ``seed``: (CT image in int16 HU, uint8 organ labels)."""
    return render_case(draw_case(seed, index), size, spacing)


def render_case(case: VariedCase, size: tuple[int, int, int],
                spacing: tuple[float, float, float]) -> tuple[sitk.Image, sitk.Image]:
    """The drawn patient ``case`` on a grid: (CT image in int16 HU, uint8 organ labels) on the same grid."""
    grid = case_grid(case, size, spacing)
    layers = BodyLayers(grid, case.body)
    labels = varied_label_map(case, grid, layers)
    hu = render_varied_ct(case, grid, layers.body, layers.wall_muscle, layers.cavity, labels, spacing,
                          layers.half_width_mm)
    rng = np.random.default_rng([case.render_seed, 1])
    origin = tuple(-(n - 1) / 2.0 * s + float(rng.uniform(-20.0, 20.0)) for n, s in zip(size, spacing))
    images = []
    for array in (hu, labels):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(tuple(float(s) for s in spacing))
        image.SetOrigin(origin)
        images.append(image)
    return images[0], images[1]

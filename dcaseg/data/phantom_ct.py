"""CT rendering of the synthetic abdomen: Hounsfield units per tissue, texture, blur and noise."""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .phantom_anatomy import (
    FAT_THICKNESS,
    LUNG_BASES,
    MUSCLE_THICKNESS,
    MUSCLES,
    ORGANS,
    POSTERIOR_ARCH,
    SPINAL_CANAL,
    VERTEBRA,
    layer_limit,
)
from .phantom_shapes import Grid, solid_mask

AIR, LUNG, GAS, FAT = -1000.0, -850.0, -950.0, -100.0
MUSCLE, BOWEL, FLUID, CSF = 50.0, 25.0, 12.0, 15.0
MARROW, CORTEX, DISC, RIB = 400.0, 700.0, 90.0, 450.0
STOMACH = 7
DISC_PERIOD_MM = 34.0   # vertebra + disc height
RIB_PERIOD_MM = 30.0


def smooth_field(shape: tuple[int, ...], rng: np.random.Generator, cells: int = 6) -> np.ndarray:
    """Smooth random field with zero mean and unit-ish amplitude over ``shape`` (z, y, x)."""
    coarse = rng.standard_normal((max(2, cells * shape[0] // max(shape)),) + (cells, cells)).astype(np.float32)
    zoom = [n / c for n, c in zip(shape, coarse.shape)]
    return ndimage.zoom(coarse, zoom, order=1, mode="nearest", grid_mode=True)[: shape[0], : shape[1], : shape[2]]


def render_ct(grid: Grid, labels: np.ndarray, radius: np.ndarray, rng: np.random.Generator,
              spacing: tuple[float, float, float]) -> np.ndarray:
    """int16 CT volume (z, y, x) in HU for the organ ``labels`` on ``grid``; ``spacing`` is (x, y, z) mm."""
    hu = np.full(grid.shape, AIR, dtype=np.float32)
    cavity = radius <= layer_limit(FAT_THICKNESS + MUSCLE_THICKNESS)
    hu[radius <= 1.0] = FAT
    hu[(radius <= layer_limit(FAT_THICKNESS)) & ~cavity] = MUSCLE
    _fill_viscera(hu, cavity & (labels == 0), rng)
    hu[solid_mask(LUNG_BASES, grid) & cavity & (labels == 0)] = LUNG
    hu[solid_mask(MUSCLES, grid)] = MUSCLE
    _paint_bones(hu, grid, radius, cavity, rng)
    _paint_organs(hu, grid, labels, rng)
    sigma_mm = rng.uniform(1.0, 1.8)
    hu = ndimage.gaussian_filter(hu, sigma=[sigma_mm / s for s in reversed(spacing)], mode="nearest")
    hu += rng.normal(0.0, rng.uniform(8.0, 15.0), size=hu.shape).astype(np.float32)
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


def _fill_viscera(hu: np.ndarray, free: np.ndarray, rng: np.random.Generator) -> None:
    """Unlabelled bowel loops with gas pockets in visceral fat."""
    field = smooth_field(hu.shape, rng, cells=10)
    bowel = free & (field > 0.1)
    hu[free] = FAT + 10.0
    hu[bowel] = BOWEL + 8.0 * field[bowel]
    hu[bowel & (smooth_field(hu.shape, rng, cells=16) > 1.3)] = GAS


def _paint_bones(hu: np.ndarray, grid: Grid, radius: np.ndarray, cavity: np.ndarray,
                 rng: np.random.Generator) -> None:
    vertebra = solid_mask((VERTEBRA,), grid)
    spine = vertebra | solid_mask((POSTERIOR_ARCH,), grid)
    hu[spine] = MARROW
    hu[spine & ~ndimage.binary_erosion(spine)] = CORTEX
    phase = rng.uniform(0.0, DISC_PERIOD_MM)
    discs = vertebra & (np.mod(grid.z + phase, DISC_PERIOD_MM) < 7.0)
    hu[discs] = DISC
    hu[solid_mask((SPINAL_CANAL,), grid)] = CSF
    wall = (radius <= layer_limit(FAT_THICKNESS)) & ~cavity & (grid.z > -20.0) & (np.abs(grid.x) > 45.0)
    rib_phase = rng.uniform(0.0, 2.0 * math.pi)
    ribs = wall & (np.cos(2.0 * math.pi * (grid.z + 0.4 * grid.y) / RIB_PERIOD_MM + rib_phase) > 0.75)
    hu[ribs] = RIB


def _paint_organs(hu: np.ndarray, grid: Grid, labels: np.ndarray, rng: np.random.Generator) -> None:
    texture = smooth_field(hu.shape, rng, cells=12)
    for organ in ORGANS:
        inside = labels == organ.label
        hu[inside] = organ.hu + rng.normal(0.0, 3.0) + 4.0 * texture[inside]
    stomach = labels == STOMACH
    if stomach.any():
        lumen = ndimage.binary_erosion(stomach)
        hu[lumen] = FLUID
        air_level = np.quantile(grid.y[stomach], rng.uniform(0.1, 0.35))   # supine: gas rises anteriorly
        hu[lumen & (grid.y < air_level)] = GAS

"""CT rendering of the varied family: Hounsfield units by contrast phase, lesions, slice profile, noise.

Every tissue has a non-contrast, arterial and portal-venous value (docs/phantom.md); a case's
enhancement strength ``k`` scales the change from the non-contrast value. Textures and noise come
from the case's ``render_seed``.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .phantom_anatomy import LUNG_BASES, MUSCLES, POSTERIOR_ARCH, SPINAL_CANAL, VERTEBRA
from .phantom_ct import (
    AIR,
    CORTEX,
    CSF,
    DISC,
    DISC_PERIOD_MM,
    FLUID,
    GAS,
    LUNG,
    MARROW,
    RIB,
    RIB_PERIOD_MM,
    smooth_field,
)
from .phantom_shapes import Ellipsoid, Grid, solid_mask
from .phantom_varied_draw import KIDNEY_LEFT, KIDNEY_RIGHT, LIVER, PHASES, SPLEEN, VariedCase

# Non-contrast, arterial, portal-venous HU of each organ (by label).
ORGAN_HU: dict[int, tuple[float, float, float]] = {
    LIVER: (60.0, 75.0, 115.0), SPLEEN: (48.0, 115.0, 120.0), KIDNEY_RIGHT: (33.0, 180.0, 160.0),
    KIDNEY_LEFT: (33.0, 180.0, 160.0), 4: (10.0, 10.0, 12.0), 5: (40.0, 60.0, 75.0), 7: (38.0, 70.0, 90.0),
    8: (45.0, 300.0, 160.0), 9: (45.0, 75.0, 140.0), 10: (45.0, 130.0, 180.0), 11: (42.0, 115.0, 95.0),
    12: (25.0, 60.0, 65.0), 13: (25.0, 60.0, 65.0),
}
MUSCLE_HU = (50.0, 55.0, 62.0)
BOWEL_HU = (25.0, 55.0, 70.0)
KIDNEY_MEDULLA_HU = (33.0, 80.0, 160.0)   # the cortex is ORGAN_HU; they differ in the arterial phase only
KIDNEY_CORTEX_MM = 5.0
SPLEEN_ARTERIAL_PATCHES_HU = 25.0
LESION_HU = {"cyst": (8.0, 8.0, 8.0), "hypovascular": (40.0, 55.0, 70.0), "hypervascular": (50.0, 140.0, 100.0)}
STOMACH = 7
TEXTURE_HU = 4.0
NOISE_REFERENCE_HALF_WIDTH_MM = 130.0
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def phase_hu(values: tuple[float, float, float], phase: str, enhancement: float) -> float:
    """HU of a tissue in ``phase``: its non-contrast value plus ``enhancement`` x the phase's change."""
    base = values[0]
    return base + enhancement * (values[PHASES.index(phase)] - base)


def render_varied_ct(case: VariedCase, grid: Grid, body: np.ndarray, wall_muscle: np.ndarray, cavity: np.ndarray,
                     labels: np.ndarray, spacing: tuple[float, float, float], half_width_mm: float) -> np.ndarray:
    """int16 CT volume (z, y, x) in HU; ``spacing`` is (x, y, z) mm, ``half_width_mm`` the body's half width."""
    rng = np.random.default_rng([case.render_seed, 0])
    muscle_hu = phase_hu(MUSCLE_HU, case.phase, case.enhancement)
    hu = np.full(grid.shape, AIR, dtype=np.float32)
    hu[body] = rng.uniform(-110.0, -90.0)
    hu[wall_muscle] = muscle_hu
    _fill_viscera(hu, cavity & (labels == 0), rng, phase_hu(BOWEL_HU, case.phase, case.enhancement))
    hu[solid_mask(LUNG_BASES, grid) & cavity & (labels == 0)] = LUNG
    hu[solid_mask(MUSCLES, grid)] = muscle_hu
    _paint_bones(hu, grid, wall_muscle, rng)
    _paint_organs(hu, grid, labels, case, rng, spacing)
    _paint_lesions(hu, grid, labels, case)
    sigma_mm = (case.acquisition.slice_fwhm_mm * FWHM_TO_SIGMA, case.acquisition.kernel_sigma_mm,
                case.acquisition.kernel_sigma_mm)
    hu = ndimage.gaussian_filter(hu, sigma=[s / d for s, d in zip(sigma_mm, reversed(spacing))], mode="nearest")
    noise = case.acquisition.noise_hu * half_width_mm / NOISE_REFERENCE_HALF_WIDTH_MM
    hu += rng.normal(0.0, noise, size=hu.shape).astype(np.float32)
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


def _fill_viscera(hu: np.ndarray, free: np.ndarray, rng: np.random.Generator, bowel_hu: float) -> None:
    """Unlabelled bowel loops with gas pockets in visceral fat."""
    field = smooth_field(hu.shape, rng, cells=10)
    bowel = free & (field > 0.1)
    hu[free] = -90.0
    hu[bowel] = bowel_hu + 8.0 * field[bowel]
    hu[bowel & (smooth_field(hu.shape, rng, cells=16) > 1.3)] = GAS


def _paint_bones(hu: np.ndarray, grid: Grid, wall_muscle: np.ndarray, rng: np.random.Generator) -> None:
    vertebra = solid_mask((VERTEBRA,), grid)
    spine = vertebra | solid_mask((POSTERIOR_ARCH,), grid)
    hu[spine] = MARROW
    hu[spine & ~ndimage.binary_erosion(spine)] = CORTEX
    discs = vertebra & (np.mod(grid.z + rng.uniform(0.0, DISC_PERIOD_MM), DISC_PERIOD_MM) < 7.0)
    hu[discs] = DISC
    hu[solid_mask((SPINAL_CANAL,), grid)] = CSF
    wall = wall_muscle & (grid.z > -20.0) & (np.abs(grid.x) > 45.0)
    ribs = wall & (np.cos(2.0 * math.pi * (grid.z + 0.4 * grid.y) / RIB_PERIOD_MM + rng.uniform(0.0, 2.0 * math.pi))
                   > 0.75)
    hu[ribs] = RIB


def _paint_organs(hu: np.ndarray, grid: Grid, labels: np.ndarray, case: VariedCase, rng: np.random.Generator,
                  spacing: tuple[float, float, float]) -> None:
    texture = smooth_field(hu.shape, rng, cells=12)
    patches = smooth_field(hu.shape, rng, cells=20)
    for label, values in ORGAN_HU.items():
        inside = labels == label
        if not inside.any():
            continue
        hu[inside] = phase_hu(values, case.phase, case.enhancement) + case.organ_hu_offsets[label] \
            + TEXTURE_HU * texture[inside]
        if label in (KIDNEY_RIGHT, KIDNEY_LEFT) and case.phase == "arterial":
            depth = ndimage.distance_transform_edt(inside, sampling=tuple(reversed(spacing)))
            medulla = inside & (depth > KIDNEY_CORTEX_MM)
            hu[medulla] = phase_hu(KIDNEY_MEDULLA_HU, case.phase, case.enhancement) + case.organ_hu_offsets[label]
        if label == SPLEEN and case.phase == "arterial":
            hu[inside] += SPLEEN_ARTERIAL_PATCHES_HU * case.enhancement * patches[inside]
    stomach = labels == STOMACH
    if stomach.any():
        lumen = ndimage.binary_erosion(stomach)
        hu[lumen] = FLUID
        air_level = np.quantile(grid.y[stomach], rng.uniform(0.1, 0.35))   # supine: gas rises anteriorly
        hu[lumen & (grid.y < air_level)] = GAS


def _paint_lesions(hu: np.ndarray, grid: Grid, labels: np.ndarray, case: VariedCase) -> None:
    """Round lesions, clipped to the liver label (they keep it)."""
    liver = labels == LIVER
    for lesion in case.lesions:
        radius = lesion.diameter_mm / 2.0
        inside = solid_mask((Ellipsoid(lesion.centre, (radius, radius, radius)),), grid) & liver
        hu[inside] = phase_hu(LESION_HU[lesion.kind], case.phase, case.enhancement)

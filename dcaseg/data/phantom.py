"""Synthetic abdominal CT phantom with the 13 BTCV organs, written as a plain dataset folder.

Geometry: LPS world coordinates with an identity direction, as SimpleITK reads most CT, so
image +x is the patient's left, +y posterior and +z superior. The liver therefore lies at small
x indices (the patient's right, image left in the radiological view) and the spleen at large
ones. Each case varies body size, organ sizes and positions, a smooth deformation, intensities,
blur, noise and the image origin. Case ``i`` depends only on ``(seed, i)``: the same seed gives
identical files.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..atomic import write_json_atomic
from ..errors import InputError
from .imageio import write_image_atomic
from .phantom_anatomy import CLASS_NAMES, ORGANS, REFERENCE_CENTER_Z, REFERENCE_FIELD, body_radius, label_map
from .phantom_ct import render_ct
from .phantom_shapes import Grid, Placement, Vec3
from .phantom_varied import varied_case

DEFAULT_SIZE = (96, 96, 50)
DEFAULT_SPACING = (3.0, 3.0, 4.0)
MIN_SIZE = 32
DEFORMATION_MM = 6.0
FAMILIES = ("standard", "varied")  # "varied": patients that differ like a real cohort (docs/phantom.md)


def case_id(index: int, cases: int) -> str:
    """Name of case ``index`` (``phantom_000``); wide enough for ``cases``."""
    return f"phantom_{index:0{max(3, len(str(cases - 1)))}d}"


def phantom_case(seed: int, index: int, size: tuple[int, int, int] = DEFAULT_SIZE,
                 spacing: tuple[float, float, float] = DEFAULT_SPACING) -> tuple[sitk.Image, sitk.Image]:
    """One synthetic case: (CT image in int16 HU, uint8 organ labels) on the same grid."""
    rng = np.random.default_rng([seed, index])
    grid = _case_grid(rng, size, spacing)
    places = {organ.label: Placement(float(rng.uniform(0.92, 1.08)), _random_shift(rng)) for organ in ORGANS}
    radius = body_radius(grid)
    labels = label_map(grid, places, radius)
    hu = render_ct(grid, labels, radius, rng, spacing)
    origin = tuple(-(n - 1) / 2.0 * s + float(rng.uniform(-20.0, 20.0)) for n, s in zip(size, spacing))
    images = []
    for array in (hu, labels):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(tuple(float(s) for s in spacing))
        image.SetOrigin(origin)
        images.append(image)
    return images[0], images[1]


def make_phantom(out: str | Path, cases: int, labeled: int, seed: int,
                 size: tuple[int, int, int] = DEFAULT_SIZE,
                 spacing: tuple[float, float, float] = DEFAULT_SPACING, family: str = "standard") -> list[str]:
    """Write ``cases`` phantom CTs of ``family`` to ``out/images``, the labels of the first ``labeled``
    to ``out/labels`` and ``out/labels.json``; return the case ids. ``out`` must be empty or new."""
    out = Path(out)
    if family not in FAMILIES:
        raise InputError(f"--family must be one of {list(FAMILIES)}, got {family!r}")
    _validate(out, cases, labeled, seed, size, spacing)
    make_case = varied_case if family == "varied" else phantom_case
    ids = [case_id(i, cases) for i in range(cases)]
    for index, name in enumerate(ids):
        image, labels = make_case(seed, index, size, spacing)
        write_image_atomic(image, out / "images" / f"{name}.nii.gz")
        if index < labeled:
            write_image_atomic(labels, out / "labels" / f"{name}.nii.gz")
    write_json_atomic(out / "labels.json", {str(v): n for v, n in CLASS_NAMES.items()}, indent=1)
    return ids


def _random_shift(rng: np.random.Generator) -> Vec3:
    """An organ's shift (mm) for one case: normal, sd 2.5 mm, clipped to ±5 mm per axis."""
    x, y, z = (float(v) for v in np.clip(rng.normal(0.0, 2.5, 3), -5.0, 5.0))
    return x, y, z


def _case_grid(rng: np.random.Generator, size: tuple[int, int, int],
               spacing: tuple[float, float, float]) -> Grid:
    """Reference-frame coordinates of every voxel, with per-case body scaling and deformation."""
    field = [n * s for n, s in zip(size, spacing)]
    fit_xy = min(field[0] / REFERENCE_FIELD[0], field[1] / REFERENCE_FIELD[1])
    fit = (fit_xy, fit_xy, field[2] / REFERENCE_FIELD[2])
    body = (rng.uniform(0.93, 1.03), rng.uniform(0.93, 1.03), rng.uniform(0.95, 1.05))
    centre = (0.0, 0.0, REFERENCE_CENTER_Z + rng.uniform(-8.0, 8.0))
    axis_x, axis_y, axis_z = (((np.arange(n) - (n - 1) / 2.0) * s / (f * b) + c).astype(np.float32)
                              for n, s, f, b, c in zip(size, spacing, fit, body, centre))
    shape = (size[2], size[1], size[0])
    x, y, z = axis_x[None, None, :], axis_y[None, :, None], axis_z[:, None, None]
    coords = []
    for _ in range(3):
        displacement = np.zeros(shape, dtype=np.float32)
        for _ in range(2):
            wavelengths = rng.uniform(150.0, 350.0, 3)
            phases = rng.uniform(0.0, 2.0 * math.pi, 3)
            factors = [np.sin(2.0 * math.pi * a / w + p).astype(np.float32)
                       for a, w, p in zip((x, y, z), wavelengths, phases)]
            displacement += (DEFORMATION_MM / 2.0) * factors[0] * factors[1] * factors[2]
        coords.append(displacement)
    return Grid(x + coords[0], y + coords[1], z + coords[2], (axis_x, axis_y, axis_z), DEFORMATION_MM)


def _validate(out: Path, cases: int, labeled: int, seed: int, size: tuple[int, ...],
              spacing: tuple[float, ...]) -> None:
    if cases < 1:
        raise InputError(f"--cases must be at least 1, got {cases}")
    if not 0 <= labeled <= cases:
        raise InputError(f"--labeled must be between 0 and --cases ({cases}), got {labeled}")
    if seed < 0:
        raise InputError(f"--seed must be a non-negative integer, got {seed}")
    if len(size) != 3 or min(size) < MIN_SIZE:
        raise InputError(f"--size needs three extents of at least {MIN_SIZE} voxels, got {tuple(size)}")
    if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise InputError(f"--spacing needs three positive values in mm, got {tuple(spacing)}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out}: already exists and is not an empty folder; choose a new output folder")


"""One patient of the ``varied`` phantom family, drawn as a plain record (see docs/phantom.md).

``draw_case(seed, index)`` decides everything that makes a case differ: body size and habitus,
each organ's size, shape and position, the contrast phase and its strength, the acquisition
(slice thickness, kernel, noise, field of view) and the pathology (liver lesions, an absent
gallbladder). It touches no image; ``phantom_varied`` renders the record on a grid. The record
depends only on ``(seed, index)``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .phantom_anatomy import ORGANS, Organ
from .phantom_shapes import Ellipsoid, Solid, Tube, Vec3, vec3

FAMILY_STREAM = 0x5EED_0FA2  # keeps this family's random stream apart from the standard family's

PHASES = ("non-contrast", "arterial", "portal-venous")
PHASE_SHARES = (0.25, 0.25, 0.5)
LESION_KINDS = ("cyst", "hypovascular", "hypervascular")
LESION_KIND_SHARES = (0.4, 0.4, 0.2)

LIVER, SPLEEN, KIDNEY_RIGHT, KIDNEY_LEFT, GALLBLADDER = 6, 1, 2, 3, 4
ADRENAL_RIGHT, ADRENAL_LEFT = 12, 13
# Spread (sd) of each organ's log linear scale; the default covers vessels, oesophagus and the rest.
SCALE_SD = {LIVER: 0.07, SPLEEN: 0.12, KIDNEY_RIGHT: 0.07, KIDNEY_LEFT: 0.07, GALLBLADDER: 0.15, 7: 0.12,
            11: 0.08, ADRENAL_RIGHT: 0.08, ADRENAL_LEFT: 0.08}
DEFAULT_SCALE_SD = 0.08
CLIP_SD = 2.2
# Organs under the diaphragm move up and down together with breathing.
BREATHING = (LIVER, SPLEEN, 7, KIDNEY_RIGHT, KIDNEY_LEFT, ADRENAL_RIGHT, ADRENAL_LEFT, 11, GALLBLADDER, 10)
# Tubes that run through the whole field: scaled in calibre only, not in length.
THROUGH_FIELD = (5, 8, 9)
SHIFT_SD_MM = (6.0, 6.0, 8.0)
KIDNEY_SHIFT_SD_MM = 12.0
ADRENAL_FOLLOWS_KIDNEY = 0.5
SHAPE_FACTOR_SD = 0.08
YAW_DEG, TILT_DEG = 12.0, 10.0
TUBE_JITTER_MM = 4.0
RIEDEL_SHARE = 0.15
RIEDEL_LOBE = Ellipsoid((-72.0, 8.0, 8.0), (20.0, 26.0, 42.0), yaw=-8.0)
GALLBLADDER_ABSENT_SHARE = 0.15
LESION_SHARE = 0.35


@dataclass(frozen=True)
class Body:
    """Frame scale (the anatomy's size), wall layers (mm), outline, and placement in the field."""

    frame_scale: float
    fat_mm: float
    muscle_mm: float
    cavity_depth_factor: float
    exponent: float
    offset_mm: tuple[float, float]
    roll_deg: float


@dataclass(frozen=True)
class Lesion:
    """A round liver lesion: centre (reference mm), diameter (mm) and kind (``LESION_KINDS``)."""

    centre: Vec3
    diameter_mm: float
    kind: str


@dataclass(frozen=True)
class Acquisition:
    """Slice profile FWHM and in-plane kernel sigma (mm), noise sigma (HU), field shift along z (mm)."""

    slice_fwhm_mm: float
    kernel_sigma_mm: float
    noise_hu: float
    fov_shift_mm: float


@dataclass(frozen=True)
class Deformation:
    """Smooth displacement: per axis, terms of sine products with these wavelengths and phases (mm, rad)."""

    amplitude_mm: float
    wavelengths: tuple[tuple[tuple[float, float, float], ...], ...]
    phases: tuple[tuple[tuple[float, float, float], ...], ...]


@dataclass(frozen=True)
class VariedCase:
    """Everything that decides one case of the varied family; ``render_seed`` seeds its textures and noise."""

    body: Body
    organs: tuple[Organ, ...]
    phase: str
    enhancement: float
    organ_hu_offsets: dict[int, float]
    acquisition: Acquisition
    deformation: Deformation
    lesions: tuple[Lesion, ...]
    riedel_lobe: bool
    render_seed: int

    @property
    def labels_present(self) -> set[int]:
        return {organ.label for organ in self.organs}

    @property
    def gallbladder_absent(self) -> bool:
        return GALLBLADDER not in self.labels_present


def _clipped_normal(rng: np.random.Generator, sd: float, clip: float = 2.0) -> float:
    return float(np.clip(rng.normal(0.0, sd), -clip * sd, clip * sd))


def _organ_centre(organ: Organ) -> np.ndarray:
    points = [np.asarray(s.center) if isinstance(s, Ellipsoid) else np.mean(s.points, axis=0) for s in organ.solids]
    return np.mean(points, axis=0)


def _changed_solid(solid: Solid, rng: np.random.Generator, centre: np.ndarray, scale: float, shift: np.ndarray,
                   scale_length: bool) -> Solid:
    """``solid`` resized about ``centre``, moved by ``shift`` and reshaped (axis factors, turns, jitter)."""
    if isinstance(solid, Ellipsoid):
        factors = np.clip(rng.normal(1.0, SHAPE_FACTOR_SD, 3), 1.0 - 2 * SHAPE_FACTOR_SD, 1.0 + 2 * SHAPE_FACTOR_SD)
        moved = centre + scale * (np.asarray(solid.center) - centre) + shift
        radii = vec3(r * scale * f for r, f in zip(solid.radii, factors))
        return Ellipsoid(vec3(moved), radii,
                         yaw=solid.yaw + float(rng.uniform(-YAW_DEG, YAW_DEG)),
                         tilt=solid.tilt + float(rng.uniform(-TILT_DEG, TILT_DEG)))
    points = np.asarray(solid.points)
    if scale_length:
        points = centre + scale * (points - centre)
    points = points + shift + np.clip(rng.normal(0.0, TUBE_JITTER_MM, points.shape), -2 * TUBE_JITTER_MM,
                                      2 * TUBE_JITTER_MM)
    return Tube(tuple(vec3(p) for p in points), solid.radius * scale)


def _organs(rng: np.random.Generator, riedel: bool, gallbladder_absent: bool) -> tuple[Organ, ...]:
    breathing = float(rng.uniform(-15.0, 15.0))
    kidney_shift = {label: _clipped_normal(rng, KIDNEY_SHIFT_SD_MM) for label in (KIDNEY_RIGHT, KIDNEY_LEFT)}
    follows = {ADRENAL_RIGHT: KIDNEY_RIGHT, ADRENAL_LEFT: KIDNEY_LEFT}
    organs = []
    for organ in ORGANS:
        sd = SCALE_SD.get(organ.label, DEFAULT_SCALE_SD)
        scale = float(np.exp(_clipped_normal(rng, sd, CLIP_SD)))
        shift = np.array([_clipped_normal(rng, s) for s in SHIFT_SD_MM])
        if organ.label in BREATHING:
            shift[2] += breathing
        shift[2] += kidney_shift.get(organ.label, 0.0)
        if organ.label in follows:
            shift[2] += ADRENAL_FOLLOWS_KIDNEY * kidney_shift[follows[organ.label]]
        solids = organ.solids + ((RIEDEL_LOBE,) if organ.label == LIVER and riedel else ())
        centre = _organ_centre(organ)
        changed = tuple(_changed_solid(s, rng, centre, scale, shift, organ.label not in THROUGH_FIELD) for s in solids)
        if organ.label == GALLBLADDER and gallbladder_absent:
            continue
        organs.append(replace(organ, solids=changed))
    return tuple(organs)


def _lesions(rng: np.random.Generator, liver: Organ) -> tuple[Lesion, ...]:
    """1-5 lesions inside the liver's main ellipsoid (within 70 % of its radii)."""
    main = liver.solids[0]
    assert isinstance(main, Ellipsoid)
    lesions = []
    for _ in range(int(rng.integers(1, 6))):
        direction = rng.normal(size=3)
        direction *= rng.uniform(0.0, 0.7) / np.linalg.norm(direction)
        centre = np.asarray(main.center) + direction * np.asarray(main.radii)
        lesions.append(Lesion(vec3(centre), float(np.exp(rng.uniform(np.log(8.0), np.log(40.0)))),
                              str(rng.choice(LESION_KINDS, p=LESION_KIND_SHARES))))
    return tuple(lesions)


def _deformation(rng: np.random.Generator) -> Deformation:
    wavelengths = tuple(tuple(vec3(rng.uniform(90.0, 220.0, 3)) for _ in range(3)) for _ in range(3))
    phases = tuple(tuple(vec3(rng.uniform(0.0, 2 * np.pi, 3)) for _ in range(3)) for _ in range(3))
    return Deformation(float(rng.uniform(6.0, 14.0)), wavelengths, phases)


def draw_case(seed: int, index: int) -> VariedCase:
    """The varied-family patient ``index`` of ``seed``."""
    rng = np.random.default_rng([FAMILY_STREAM, seed, index])
    body = Body(frame_scale=float(rng.uniform(0.90, 1.12)), fat_mm=float(rng.uniform(5.0, 45.0)),
                muscle_mm=float(rng.uniform(7.0, 11.0)), cavity_depth_factor=float(rng.uniform(0.92, 1.08)),
                exponent=float(rng.uniform(2.2, 3.0)),
                offset_mm=(float(rng.uniform(-12.0, 12.0)), float(rng.uniform(-15.0, 15.0))),
                roll_deg=float(rng.uniform(-6.0, 6.0)))
    riedel = bool(rng.random() < RIEDEL_SHARE)
    gallbladder_absent = bool(rng.random() < GALLBLADDER_ABSENT_SHARE)
    organs = _organs(rng, riedel, gallbladder_absent)
    phase = str(rng.choice(PHASES, p=PHASE_SHARES))
    enhancement = float(rng.uniform(0.7, 1.3))
    offsets = {organ.label: float(rng.normal(0.0, 5.0)) for organ in ORGANS}
    acquisition = Acquisition(slice_fwhm_mm=float(rng.uniform(1.0, 5.0)), kernel_sigma_mm=float(rng.uniform(0.6, 1.5)),
                              noise_hu=float(rng.uniform(6.0, 18.0)), fov_shift_mm=float(rng.uniform(-40.0, 40.0)))
    deformation = _deformation(rng)
    liver = next(o for o in organs if o.label == LIVER)
    lesions = _lesions(rng, liver) if rng.random() < LESION_SHARE else ()
    return VariedCase(body, organs, phase, enhancement, offsets, acquisition, deformation, lesions, riedel,
                      render_seed=int(rng.integers(0, 2**31 - 1)))

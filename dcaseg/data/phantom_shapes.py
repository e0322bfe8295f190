"""Implicit solids for the synthetic abdomen: ellipsoids and tubes evaluated on a deformed grid.

Coordinates are millimetres in the phantom's reference frame (x: patient left, y: posterior,
z: superior, origin at the body centre). Solids are evaluated only inside their bounding box,
which keeps a 96x96x64 case to a fraction of a second.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import numpy as np

Vec3 = tuple[float, float, float]


def vec3(values) -> Vec3:
    """Three numbers as a ``Vec3`` of plain floats (from a NumPy array, a list or a generator)."""
    x, y, z = (float(v) for v in values)
    return x, y, z


@dataclass(frozen=True)
class Placement:
    """Per-case change of one organ: its size factor and its shift in millimetres."""

    scale: float = 1.0
    shift: Vec3 = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Grid:
    """Reference coordinates of every voxel, as (z, y, x) arrays ``x``, ``y``, ``z``.

    ``axes`` are the undeformed coordinates along each image axis (x, y, z order) and
    ``margin`` bounds how far the deformation moves a voxel (mm), so that a box in reference
    space maps to a box of voxel indices.
    """

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    axes: tuple[np.ndarray, np.ndarray, np.ndarray]
    margin: float

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.x.shape

    def window(self, low: np.ndarray, high: np.ndarray) -> tuple[slice, slice, slice]:
        """Voxel slices (z, y, x) that hold every voxel whose coordinates lie in [low, high]."""
        bounds = []
        for axis, lo, hi in zip(self.axes, low, high):
            inside = np.nonzero((axis >= lo - self.margin) & (axis <= hi + self.margin))[0]
            bounds.append(slice(int(inside[0]), int(inside[-1]) + 1) if inside.size else slice(0, 0))
        return bounds[2], bounds[1], bounds[0]

    def coordinates(self, window: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.x[window], self.y[window], self.z[window]


def rotation(yaw: float, tilt: float) -> list[list[float]]:
    """Rotation by ``yaw`` degrees about z, then ``tilt`` degrees about y (columns = local axes)."""
    a, b = math.radians(yaw), math.radians(tilt)
    about_z = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    about_y = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    return (about_z @ about_y).tolist()


@dataclass(frozen=True)
class Ellipsoid:
    """Solid ellipsoid with semi-axes ``radii`` (mm) along its local axes, rotated by yaw and tilt."""

    center: Vec3
    radii: Vec3
    yaw: float = 0.0
    tilt: float = 0.0

    def bounds(self, place: Placement) -> tuple[np.ndarray, np.ndarray]:
        centre = np.add(self.center, place.shift)
        axes = np.asarray(rotation(self.yaw, self.tilt))
        reach = np.sqrt(np.square(axes * np.asarray(self.radii)).sum(axis=1)) * place.scale
        return centre - reach, centre + reach

    def contains(self, coords: tuple[np.ndarray, ...], place: Placement) -> np.ndarray:
        offsets = [g - float(c + s) for g, c, s in zip(coords, self.center, place.shift)]
        axes = rotation(self.yaw, self.tilt)
        squares = []
        for k, radius in enumerate(self.radii):
            local = sum(offsets[i] * axes[i][k] for i in range(3) if abs(axes[i][k]) > 1e-12)
            squares.append(np.square(local * (1.0 / (radius * place.scale))))
        return squares[0] + squares[1] + squares[2] <= 1.0


@dataclass(frozen=True)
class Tube:
    """Solid tube of ``radius`` (mm) around a polyline through ``points``, with round ends."""

    points: tuple[Vec3, ...]
    radius: float

    def bounds(self, place: Placement) -> tuple[np.ndarray, np.ndarray]:
        points = np.asarray(self.points) + np.asarray(place.shift)
        reach = self.radius * place.scale
        return points.min(axis=0) - reach, points.max(axis=0) + reach

    def contains(self, coords: tuple[np.ndarray, ...], place: Placement) -> np.ndarray:
        points = (np.asarray(self.points) + np.asarray(place.shift)).tolist()
        limit = (self.radius * place.scale) ** 2
        result = np.zeros(np.broadcast_shapes(*(c.shape for c in coords)), dtype=bool)
        for start, end in zip(points[:-1], points[1:]):
            along = [e - s for s, e in zip(start, end)]
            length2 = sum(a * a for a in along)
            offsets = [c - s for c, s in zip(coords, start)]
            t = sum(o * (a / length2) for o, a in zip(offsets, along))
            np.clip(t, 0.0, 1.0, out=t)
            squared = sum(np.square(o - t * a) for o, a in zip(offsets, along))
            result |= squared <= limit
        return result


Solid = Union[Ellipsoid, Tube]


def solid_mask(solids: tuple[Solid, ...], grid: Grid, place: Placement = Placement()) -> np.ndarray:
    """Boolean volume of the voxels inside any of ``solids``."""
    mask = np.zeros(grid.shape, dtype=bool)
    for solid in solids:
        window = grid.window(*solid.bounds(place))
        mask[window] |= solid.contains(grid.coordinates(window), place)
    return mask

"""What patch augmentation does (torch-free: a training config holds it)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation per patch (probabilities in [0, 1]; ranges are ± or [low, high]).

    Flips are off by default: mirroring an abdomen swaps left and right organs (kidneys, adrenals).
    """

    flip_probability: float = 0.0
    flip_axes: tuple[int, ...] = (0, 1, 2)
    rotate_probability: float = 0.2
    rotate_degrees: float = 15.0
    scale_range: tuple[float, float] = (0.85, 1.15)
    intensity_probability: float = 0.3
    brightness: float = 0.1
    contrast: tuple[float, float] = (0.75, 1.25)
    gamma: tuple[float, float] = (0.7, 1.5)

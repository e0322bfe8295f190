"""Patch augmentation on torch tensors (CPU or GPU): flips, small rotations and scaling, intensity.

Random parameters come from a CPU ``torch.Generator`` (so a seeded run is reproducible on any
device); the work runs where the tensors are. Labels follow spatial transforms with
nearest-neighbour sampling; intensity changes touch images only.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .augment_config import AugmentConfig


def augment(images: Tensor, labels: Tensor | None, config: AugmentConfig,
            generator: torch.Generator) -> tuple[Tensor, Tensor | None]:
    """Augment a batch: images (N, 1, D, H, W) float, labels (N, D, H, W) integer or None."""
    images, labels = _flip(images, labels, config, generator)
    images, labels = _rotate_scale(images, labels, config, generator)
    return _intensity(images, config, generator), labels


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _chance(generator: torch.Generator, probability: float) -> bool:
    return probability > 0 and float(torch.rand((), generator=generator)) < probability


def _flip(images: Tensor, labels: Tensor | None, config: AugmentConfig,
          generator: torch.Generator) -> tuple[Tensor, Tensor | None]:
    if config.flip_probability <= 0:
        return images, labels
    images = images.clone()
    labels = labels.clone() if labels is not None else None
    for n in range(images.shape[0]):
        axes = [a for a in config.flip_axes if _chance(generator, config.flip_probability)]
        if axes:
            images[n] = torch.flip(images[n], [a + 1 for a in axes])
            if labels is not None:
                labels[n] = torch.flip(labels[n], axes)
    return images, labels


def _rotation(angles: tuple[float, float, float]) -> Tensor:
    a, b, c = angles
    rx = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = torch.tensor([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = torch.tensor([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _rotate_scale(images: Tensor, labels: Tensor | None, config: AugmentConfig,
                  generator: torch.Generator) -> tuple[Tensor, Tensor | None]:
    chosen, thetas = [], []
    limit = math.radians(config.rotate_degrees)
    for n in range(images.shape[0]):
        if not _chance(generator, config.rotate_probability):
            continue
        angles = tuple(_uniform(generator, -limit, limit) for _ in range(3))
        scale = _uniform(generator, *config.scale_range)
        theta = torch.zeros(3, 4)
        theta[:, :3] = _rotation(angles) / scale  # type: ignore[arg-type]
        chosen.append(n)
        thetas.append(theta)
    if not chosen:
        return images, labels
    index = torch.tensor(chosen, device=images.device)
    theta = torch.stack(thetas).to(images.device, images.dtype)
    grid = F.affine_grid(theta, [len(chosen), 1, *images.shape[2:]], align_corners=False)
    images = images.clone()
    images[index] = F.grid_sample(images[index], grid, mode="bilinear", padding_mode="border", align_corners=False)
    if labels is not None:
        labels = labels.clone()
        moved = F.grid_sample(labels[index][:, None].to(images.dtype), grid, mode="nearest",
                              padding_mode="zeros", align_corners=False)
        labels[index] = moved[:, 0].round().to(labels.dtype)
    return images, labels


def _intensity(images: Tensor, config: AugmentConfig, generator: torch.Generator) -> Tensor:
    out = images
    for n in range(images.shape[0]):
        if not _chance(generator, config.intensity_probability):
            continue
        if out is images:
            out = images.clone()
        x = out[n]
        low, high = x.min(), x.max()
        span = (high - low).clamp_min(1e-6)
        gamma = _uniform(generator, *config.gamma)
        x = low + span * ((x - low) / span).pow(gamma)
        mean = x.mean()
        x = (x - mean) * _uniform(generator, *config.contrast) + mean
        out[n] = x + _uniform(generator, -config.brightness, config.brightness) * span
    return out

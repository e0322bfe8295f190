"""Sliding-window prediction: window grid, Gaussian importance weights, stitched accumulation.

The grid matches MONAI's ``sliding_window_inference`` for the same overlap (step
``int(patch * (1 - overlap))``, the last window moved back to end at the border, symmetric zero
padding of axes shorter than a window), so results can be compared window for window.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_OVERLAP = 0.5  # fraction of a window shared with its neighbour
GAUSSIAN_SIGMA_SCALE = 0.125
MIN_WEIGHT = 1e-3

WindowRunner = Callable[[Tensor], Mapping[str, Tensor]]
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class WindowGrid:
    """Where the windows of a volume lie (array order z, y, x).

    ``padding`` is (before, after) per axis; ``starts`` index the padded volume.
    """

    shape: tuple[int, int, int]
    patch: tuple[int, int, int]
    padding: tuple[tuple[int, int], ...]
    starts: tuple[tuple[int, int, int], ...]

    @property
    def padded_shape(self) -> tuple[int, int, int]:
        return tuple(n + a + b for n, (a, b) in zip(self.shape, self.padding))  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.starts)


def axis_window_starts(length: int, patch: int, overlap: float) -> list[int]:
    """Window starts along one axis of ``length`` voxels (a shorter axis gets one padded window)."""
    if length <= patch:
        return [0]
    step = max(1, int(patch * (1.0 - overlap)))
    count = math.ceil((length - patch) / step) + 1
    return [min(i * step, length - patch) for i in range(count)]


def plan_windows(shape: tuple[int, ...], patch: tuple[int, ...], overlap: float) -> WindowGrid:
    """The windows covering a volume of ``shape`` with ``patch``-sized windows at ``overlap``."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    padding = tuple(((max(p - n, 0)) // 2, max(p - n, 0) - (max(p - n, 0)) // 2) for n, p in zip(shape, patch))
    padded = [n + a + b for n, (a, b) in zip(shape, padding)]
    axes = [axis_window_starts(n, p, overlap) for n, p in zip(padded, patch)]
    return WindowGrid(tuple(shape), tuple(patch), padding, tuple(itertools.product(*axes)))  # type: ignore[arg-type]


def windows_holding(grid: WindowGrid, mask: np.ndarray) -> WindowGrid:
    """The windows of ``grid`` that hold at least one voxel of ``mask`` (boolean, the unpadded volume's shape).

    Every masked voxel keeps all the windows that cover it, so the blend there is unchanged.
    """
    if mask.shape != grid.shape:
        raise ValueError(f"mask shape {mask.shape} is not the volume's {grid.shape}")
    padded = np.pad(mask, grid.padding, constant_values=False)
    starts = tuple(start for start in grid.starts
                   if padded[tuple(slice(s, s + p) for s, p in zip(start, grid.patch))].any())
    return dataclasses.replace(grid, starts=starts)


def gaussian_weights(patch: tuple[int, ...], device: torch.device | str = "cpu",
                     sigma_scale: float = GAUSSIAN_SIGMA_SCALE) -> Tensor:
    """Separable Gaussian importance map (sigma = ``sigma_scale`` × size), peak at the centre, floored
    at ``MIN_WEIGHT``."""
    weights = torch.ones((), device=device)
    for size in patch:
        x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2.0
        profile = torch.exp(x**2 / (-2.0 * (sigma_scale * size) ** 2))
        weights = weights.unsqueeze(-1) * profile
    return weights.clamp_(min=MIN_WEIGHT)


def stitch_windows(volume: Tensor, grid: WindowGrid, run: WindowRunner, channels: Mapping[str, int],
                   weights: Tensor, compute_device: torch.device, accumulate_device: torch.device,
                   windows_per_batch: int = 1, on_progress: ProgressCallback | None = None) -> dict[str, Tensor]:
    """Run ``run`` over every window of ``volume`` (z, y, x) and blend its outputs.

    ``run`` takes a (N, 1, *patch) batch on ``compute_device`` and returns named (N, C, *patch)
    maps with ``channels[name]`` channels. Each map is accumulated with ``weights`` in buffers
    preallocated on ``accumulate_device`` and divided by the summed weights, so a map that sums to 1
    over channels in every window still does after blending. Voxels that no window of ``grid``
    covers (where windows were left out, ``windows_holding``) are 0 in every map. Returns
    (C, z, y, x) maps of the unpadded volume.
    """
    padded = F.pad(volume.to(accumulate_device, torch.float32),
                   [side for pair in reversed(grid.padding) for side in pair])
    shape = grid.padded_shape
    sums = {name: torch.zeros((count, *shape), dtype=torch.float32, device=accumulate_device)
            for name, count in channels.items()}
    weight_sum = torch.zeros(shape, dtype=torch.float32, device=accumulate_device)
    window_weights = weights.to(accumulate_device, torch.float32)
    total = len(grid)
    for first in range(0, total, windows_per_batch):
        starts = grid.starts[first:first + windows_per_batch]
        boxes = [tuple(slice(s, s + p) for s, p in zip(start, grid.patch)) for start in starts]
        outputs = run(torch.stack([padded[box] for box in boxes])[:, None].to(compute_device))
        for name, total_map in sums.items():
            maps = outputs[name].to(accumulate_device, torch.float32)
            for index, box in enumerate(boxes):
                total_map[(slice(None),) + tuple(box)].addcmul_(maps[index], window_weights)
        for box in boxes:
            weight_sum[box] += window_weights
        if on_progress is not None:
            on_progress(min(first + windows_per_batch, total), total)
    inside = tuple(slice(a, a + n) for (a, _), n in zip(grid.padding, grid.shape))
    weight_sum = weight_sum[inside]
    weight_sum[weight_sum == 0] = 1.0  # covered by no window: the sums there are 0
    return {name: total_map[(slice(None),) + inside].div_(weight_sum) for name, total_map in sums.items()}

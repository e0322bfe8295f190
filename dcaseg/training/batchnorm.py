"""Precise BatchNorm statistics: recompute running mean/variance over whole training volumes.

Small training patches give BatchNorm noisy per-batch statistics (at 32³ the deepest V-Net stage
sees 2×2×2 voxels per patch), and the running averages of those miss the variation between
batches: in eval mode a network that segments well in train mode predicted nothing. Before each
validation and export the statistics are therefore recomputed as a plain average over forward
passes on whole (centre-cropped) training volumes.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..nets import SIZE_MULTIPLE


def _centre_crop(volume: np.ndarray, limit: Sequence[int]) -> np.ndarray:
    starts = [max(0, (n - m) // 2) for n, m in zip(volume.shape, limit)]
    return np.array(volume[tuple(slice(s, s + m) for s, m in zip(starts, limit))], dtype=np.float32)


@torch.no_grad()
def recalibrate_batch_norm(network: nn.Module, volumes: Sequence[np.ndarray], max_size: Sequence[int],
                           device: torch.device, memory_format: torch.memory_format = torch.contiguous_format) -> None:
    """Reset every BatchNorm's running statistics and average them over ``volumes`` (z, y, x arrays).

    Each volume is centre-cropped to at most ``max_size`` and padded with its minimum to a
    multiple of 16. The network's train/eval mode and the layers' momentum are restored.
    """
    layers = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not layers or not volumes:
        return
    momenta = [layer.momentum for layer in layers]
    was_training = network.training
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average over the passes below
    network.train()
    try:
        for volume in volumes:
            array = _centre_crop(volume, max_size)
            x = torch.from_numpy(array)[None, None].to(device)
            pad = [(-n) % SIZE_MULTIPLE for n in array.shape]
            x = F.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]), value=float(array.min()))
            network(x.contiguous(memory_format=memory_format))
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        network.train(was_training)

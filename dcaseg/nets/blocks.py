"""V-Net building blocks of the DHC/GA lineage: Conv3d k3 → BatchNorm (or InstanceNorm) → ReLU stacks."""
from __future__ import annotations

from torch import nn

from ..architecture import NORMS


def norm_layer(kind: str, channels: int) -> nn.Module:
    """BatchNorm3d (the lineage's) or affine InstanceNorm3d (same parameters; no train/eval gap)."""
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    raise ValueError(f"unknown normalisation {kind!r}; use one of {list(NORMS)}")


class ConvStack(nn.Sequential):
    """``n`` × [Conv3d k3 → BatchNorm3d → ReLU]; padding keeps the size for any dilation."""

    def __init__(self, n_convs: int, in_channels: int, out_channels: int, dilation: int = 1,
                 norm: str = "batch") -> None:
        layers: list[nn.Module] = []
        for i in range(n_convs):
            layers += [
                nn.Conv3d(in_channels if i == 0 else out_channels, out_channels, 3,
                          padding=dilation, dilation=dilation),
                norm_layer(norm, out_channels),
                nn.ReLU(inplace=True),
            ]
        super().__init__(*layers)


class DownBlock(nn.Sequential):
    """Strided Conv3d k2 s2 → BatchNorm → ReLU: halves each spatial size."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "batch") -> None:
        super().__init__(nn.Conv3d(in_channels, out_channels, 2, stride=2),
                         norm_layer(norm, out_channels), nn.ReLU(inplace=True))


class UpBlock(nn.Sequential):
    """ConvTranspose3d k2 s2 → BatchNorm → ReLU: doubles each spatial size."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "batch") -> None:
        super().__init__(nn.ConvTranspose3d(in_channels, out_channels, 2, stride=2),
                         norm_layer(norm, out_channels), nn.ReLU(inplace=True))


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters (conv weights and biases, BN affine); buffers excluded."""
    return sum(p.numel() for p in module.parameters())


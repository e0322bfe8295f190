"""V-Net building blocks of the DHC/GA lineage: Conv3d k3 → BatchNorm → ReLU stacks."""
from __future__ import annotations

from torch import nn


class ConvStack(nn.Sequential):
    """``n`` × [Conv3d k3 → BatchNorm3d → ReLU]; padding keeps the size for any dilation."""

    def __init__(self, n_convs: int, in_channels: int, out_channels: int, dilation: int = 1) -> None:
        layers: list[nn.Module] = []
        for i in range(n_convs):
            layers += [
                nn.Conv3d(in_channels if i == 0 else out_channels, out_channels, 3,
                          padding=dilation, dilation=dilation),
                nn.BatchNorm3d(out_channels),
                nn.ReLU(inplace=True),
            ]
        super().__init__(*layers)


class DownBlock(nn.Sequential):
    """Strided Conv3d k2 s2 → BatchNorm → ReLU: halves each spatial size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.Conv3d(in_channels, out_channels, 2, stride=2),
                         nn.BatchNorm3d(out_channels), nn.ReLU(inplace=True))


class UpBlock(nn.Sequential):
    """ConvTranspose3d k2 s2 → BatchNorm → ReLU: doubles each spatial size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.ConvTranspose3d(in_channels, out_channels, 2, stride=2),
                         nn.BatchNorm3d(out_channels), nn.ReLU(inplace=True))


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters (conv weights and biases, BN affine); buffers excluded."""
    return sum(p.numel() for p in module.parameters())


"""DFAM: dynamic feature aggregation of the three experts' same-level features."""
from __future__ import annotations

import torch
from torch import Tensor, nn

N_EXPERTS = 3


class DFAM(nn.Module):
    """Voxel-level competition among the experts.

    1×1×1 convs align each expert's features → concat → 3×3×3 conv → ReLU → 1×1×1 conv to three
    channels → softmax over the experts gives A_H, A_M, A_T (summing to 1 per voxel).
    F_expert = Σ A_g·F_g (aligned features) and the output is F_expert + F_up.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.align = nn.ModuleList(nn.Conv3d(channels, channels, 1) for _ in range(N_EXPERTS))
        self.gate = nn.Sequential(
            nn.Conv3d(N_EXPERTS * channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv3d(channels, N_EXPERTS, 1),
        )

    def forward(self, f_up: Tensor, expert_features: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Return (F_DFAM, attention of shape (N, 3, D, H, W))."""
        aligned = [conv(f) for conv, f in zip(self.align, expert_features)]
        # The softmax runs in float32 even under mixed precision, so the maps still sum to 1.
        attention = torch.softmax(self.gate(torch.cat(aligned, dim=1)).float(), dim=1)
        f_expert = sum(attention[:, g:g + 1].to(aligned[g].dtype) * aligned[g] for g in range(N_EXPERTS))
        return f_expert + f_up, attention

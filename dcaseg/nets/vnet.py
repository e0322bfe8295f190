"""V-Net encoder and a decoder parameterised by its stage convolution counts and dilation."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..architecture import STOCK_DECODER_STAGES
from .blocks import ConvStack, DownBlock, UpBlock

ENCODER_STAGES = (1, 2, 3, 3, 3)
DEPTH = len(ENCODER_STAGES) - 1
SIZE_MULTIPLE = 2**DEPTH
BACKGROUND_PRIOR = 0.9  # an untrained network's background probability (see init_background_prior)


class Encoder(nn.Module):
    """Five stages of (1,2,3,3,3) convolutions, channels nf·(1,2,4,8,16), strided-conv down-sampling."""

    def __init__(self, in_channels: int = 1, n_filters: int = 16, norm: str = "batch") -> None:
        super().__init__()
        channels = [n_filters * 2**i for i in range(len(ENCODER_STAGES))]
        self.stages = nn.ModuleList()
        self.downs = nn.ModuleList()
        for i, n_convs in enumerate(ENCODER_STAGES):
            self.stages.append(ConvStack(n_convs, in_channels if i == 0 else channels[i], channels[i], norm=norm))
            if i < DEPTH:
                self.downs.append(DownBlock(channels[i], channels[i + 1], norm))

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the features of every stage, finest first (the last one is the bottleneck)."""
        features = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            features.append(x)
            if i < DEPTH:
                x = self.downs[i](x)
        return features


class Decoder(nn.Module):
    """V-Net decoder: up-sample, add the encoder skip, convolve; four stages from deep to shallow.

    ``stages`` gives the convolutions per stage (deep → shallow) and ``dilation`` applies to all of
    them. The output head is a 1×1×1 convolution to ``out_channels`` classes.
    """

    def __init__(self, out_channels: int, n_filters: int = 16,
                 stages: Sequence[int] = STOCK_DECODER_STAGES, dilation: int = 1, norm: str = "batch") -> None:
        super().__init__()
        if len(stages) != DEPTH or min(stages) < 1:
            raise ValueError(f"a decoder needs {DEPTH} stages of at least one convolution, got {list(stages)}")
        self.stage_channels = [n_filters * 2 ** (DEPTH - 1 - i) for i in range(DEPTH)]
        self.ups = nn.ModuleList()
        self.convs = nn.ModuleList()
        previous = n_filters * 2**DEPTH
        for n_convs, channels in zip(stages, self.stage_channels):
            self.ups.append(UpBlock(previous, channels, norm))
            self.convs.append(ConvStack(n_convs, channels, channels, dilation, norm))
            previous = channels
        self.out_conv = nn.Conv3d(previous, out_channels, 1)
        init_background_prior(self.out_conv)

    def up_step(self, level: int, x: Tensor, skip: Tensor) -> Tensor:
        """F_up of stage ``level``: up-sampled features plus the additive encoder skip."""
        return self.ups[level](x) + skip

    def forward_with_features(self, features: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Return the logits and each stage's output features (deep → shallow)."""
        x = features[-1]
        stage_outputs = []
        for level in range(DEPTH):
            x = self.convs[level](self.up_step(level, x, features[DEPTH - 1 - level]))
            stage_outputs.append(x)
        return self.out_conv(x), stage_outputs

    def forward(self, features: list[Tensor]) -> Tensor:
        return self.forward_with_features(features)[0]


def init_background_prior(out_conv: nn.Conv3d, probability: float = BACKGROUND_PRIOR) -> None:
    """Bias the output layer so that an untrained network calls every voxel background with ``probability``.

    With uniform initial softmax every organ channel claims ~1/K of all voxels, so the soft Dice
    gradient of a small organ (∝ 1 / Σp) starts near zero and rare classes are learned last. The
    prior bias (as in focal-loss detectors) makes the first steps already grow each organ from its
    own voxels: overfitting one batch, an nf8 medium expert learned all 9 of its organs in 250
    steps instead of 4.
    """
    classes = out_conv.out_channels
    bias = out_conv.bias
    if bias is None:
        raise ValueError("the output convolution has no bias to set a background prior on")
    with torch.no_grad():
        bias.zero_()
        if classes > 1:
            bias[0] = math.log(probability * (classes - 1) / (1.0 - probability))


def check_input_size(x: Tensor) -> None:
    """Raise a clear error unless ``x`` is (N, C, D, H, W) with each spatial size a multiple of 16."""
    if x.dim() != 5:
        raise ValueError(f"expected a 5-D tensor (batch, channels, D, H, W), got shape {tuple(x.shape)}")
    bad = [s for s in x.shape[2:] if s % SIZE_MULTIPLE or s == 0]
    if bad:
        raise ValueError(
            f"every spatial size must be a positive multiple of {SIZE_MULTIPLE}, got {tuple(x.shape[2:])}; "
            "pad the input (the predictor does this)")


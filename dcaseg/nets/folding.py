"""Inference-only network preparation: BatchNorm folded into the convolution before it."""
from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_CONVS = (nn.Conv3d, nn.ConvTranspose3d)


def fold_batch_norms(network: nn.Module) -> int:
    """Fold every eval-mode BatchNorm3d that directly follows a convolution in a Sequential into that
    convolution (its scale into the weights, its shift into the bias), in place; return how many.

    The folded network computes the same function in eval mode up to float rounding, with one pass
    over each feature map fewer; it cannot be trained any more (the statistics are gone), so only
    the predictor's own copy of a package's network is folded. InstanceNorm stays as it is.
    """
    if network.training:
        raise ValueError("fold a network in eval mode: training-mode BatchNorm uses the batch's statistics")
    folded = 0
    for module in network.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, norm = module[i], module[i + 1]
            if isinstance(conv, _CONVS) and isinstance(norm, nn.BatchNorm3d):
                module[i] = fuse_conv_bn_eval(conv, norm, transpose=isinstance(conv, nn.ConvTranspose3d))
                module[i + 1] = nn.Identity()
                folded += 1
    return folded

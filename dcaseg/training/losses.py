"""The DCA objective: CE + soft Dice per expert, aggregator vs fused pseudo-labels, λ ramp-up."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..labelsplit import label_split
from ..nets import DCAOutput

DICE_SMOOTH = 1.0
UNSUPERVISED_WEIGHT = 10.0


def soft_dice_loss(logits: Tensor, target: Tensor, smooth: float = DICE_SMOOTH) -> Tensor:
    """1 − mean soft Dice over foreground classes, summed over batch and space ("batch Dice")."""
    probs = torch.softmax(logits.float(), dim=1)[:, 1:]
    onehot = F.one_hot(target.long(), logits.shape[1]).movedim(-1, 1)[:, 1:].to(probs.dtype)
    dims = (0, *range(2, probs.dim()))
    intersection = (probs * onehot).sum(dims)
    denominator = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * intersection + smooth) / (denominator + smooth)
    return 1.0 - dice.mean()


def dice_ce_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy + soft Dice, weights 1:1 (Dice without background)."""
    return F.cross_entropy(logits.float(), target.long()) + soft_dice_loss(logits, target)


def supervised_loss(output: DCAOutput, target: Tensor, expert_classes: Mapping[str, Sequence[int]],
                    num_classes: int) -> tuple[Tensor, dict[str, Tensor]]:
    """Σ over experts of CE + Dice against each expert's label-split target.

    A single-decoder network (no experts) is supervised directly on the full label.
    """
    if not output.expert_logits:
        loss = dice_ce_loss(output.logits, target)
        return loss, {"vnet": loss.detach()}
    targets = label_split(target, expert_classes, num_classes)
    parts = {g: dice_ce_loss(logits, targets[g]) for g, logits in output.expert_logits.items()}
    return sum(parts.values()), {g: p.detach() for g, p in parts.items()}  # type: ignore[return-value]


def pseudo_labels(output: DCAOutput) -> Tensor:
    """Hard pseudo-labels: argmax of the fused expert logits (the network's own logits without experts)."""
    source = output.fused if output.fused is not None else output.logits
    return source.detach().argmax(dim=1)


def unsupervised_loss(output: DCAOutput) -> Tensor:
    """Aggregator (CE + Dice) against the pseudo-labels; no gradient flows through the pseudo-label."""
    return dice_ce_loss(output.logits, pseudo_labels(output))


def ramp_weight(iteration: float, ramp_length: float, weight: float = UNSUPERVISED_WEIGHT) -> float:
    """λ(t) = weight · exp(−5 (1 − t/T)²), clipped to [0, T] (sigmoid ramp-up)."""
    if ramp_length <= 0:
        return weight
    phase = 1.0 - min(max(iteration, 0.0), ramp_length) / ramp_length
    return weight * math.exp(-5.0 * phase * phase)

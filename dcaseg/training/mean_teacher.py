"""Mean teacher (Tarvainen & Valpola, 2017): the standard semi-supervised baseline of the V-Net lineage.

The teacher is an exponential moving average of the network's weights (decay 0.99, with the
usual warm-up ``min(1 − 1/(t+1), decay)``). On the unlabeled patches the network (the student)
sees its input with Gaussian noise (sd 0.1 of the normalised intensity, clipped at ±0.2; about
35 HU in the CT window) and must match the teacher's softmax on the clean patch: mean squared
error of the two softmaxes, weighted by ``TrainConfig.lambda_max`` ramped up like λ (0.1 is the
lineage's consistency weight). The teacher runs in training mode under ``no_grad`` (batch
statistics, as in the lineage's code); the student is the model that is validated and exported.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

CONSISTENCY_WEIGHT = 0.1
INPUT_NOISE_SD = 0.1
INPUT_NOISE_CLIP = 0.2


class MeanTeacher:
    """The EMA teacher of ``student`` and the three steps it adds to a training iteration."""

    def __init__(self, student: nn.Module, decay: float) -> None:
        self.decay = decay
        self.teacher = copy.deepcopy(student)
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        self.teacher.train()

    @staticmethod
    def student_input(unlabeled: Tensor, generator: torch.Generator) -> Tensor:
        """The unlabeled patches with clipped Gaussian noise (drawn on the CPU from ``generator``)."""
        noise = torch.randn(unlabeled.shape, generator=generator) * INPUT_NOISE_SD
        return unlabeled + noise.clamp_(-INPUT_NOISE_CLIP, INPUT_NOISE_CLIP).to(unlabeled.device, unlabeled.dtype)

    def targets(self, unlabeled: Tensor) -> Tensor:
        """The teacher's softmax on the clean unlabeled patches (no gradient)."""
        with torch.no_grad():
            return torch.softmax(self.teacher(unlabeled).logits.float(), dim=1)

    def update(self, student: nn.Module, step: int) -> None:
        """Move the teacher towards ``student`` after optimizer step ``step`` (1-based)."""
        decay = min(1.0 - 1.0 / (step + 1), self.decay)
        with torch.no_grad():
            for mine, theirs in zip(self.teacher.parameters(), student.parameters()):
                mine.mul_(decay).add_(theirs.detach(), alpha=1.0 - decay)

    def state_dict(self) -> dict[str, Any]:
        return {k: v.detach().cpu() for k, v in self.teacher.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.teacher.load_state_dict(state)


def consistency_loss(student_logits: Tensor, teacher_probabilities: Tensor) -> Tensor:
    """Mean squared error between the student's softmax and the teacher's."""
    return torch.mean((torch.softmax(student_logits.float(), dim=1) - teacher_probabilities) ** 2)

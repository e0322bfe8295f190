"""Validation during training: the predictor on the fixed validation cases, Dice per organ."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import SimpleITK as sitk
import torch

from ..data.imageio import read_image
from ..inference import PredictorOptions
from ..metrics import OrganScore
from ..nets import DCANet
from ..package import ModelMeta
from ..scoring import dice_by_organ, has_experts, mean_of, score_case, scoring_predictor
from .plan import TrainingPlan


@dataclass
class ValidationResult:
    """Dice per organ (mean over the validation cases that have the organ on either side) and their
    mean, for the aggregation decoder and (networks with experts) the experts' fused prediction."""

    dice: dict[str, float]
    mean_dice: float
    fused_dice: dict[str, float] | None = None
    fused_mean_dice: float | None = None

    @property
    def best_output(self) -> str:
        """``experts_fused`` when the experts' fused prediction scored a higher mean Dice, else ``aggregator``."""
        if self.fused_mean_dice is not None and self.fused_mean_dice > self.mean_dice:
            return "experts_fused"
        return "aggregator"

    @property
    def best(self) -> tuple[dict[str, float], float]:
        """Dice per organ and mean Dice of ``best_output``."""
        if self.best_output == "experts_fused":
            assert self.fused_dice is not None and self.fused_mean_dice is not None
            return self.fused_dice, self.fused_mean_dice
        return self.dice, self.mean_dice


class Validator:
    """Holds the validation images in memory and scores a network on them."""

    def __init__(self, plan: TrainingPlan, overlap: float) -> None:
        self.overlap = overlap
        self.class_names = plan.class_names
        self.cases: list[tuple[str, sitk.Image, sitk.Image]] = []
        for case_id in plan.split["validation"]:
            case = plan.cases[case_id]
            assert case.label is not None
            self.cases.append((case_id, read_image(case.image), read_image(case.label)))

    def __bool__(self) -> bool:
        return bool(self.cases)

    @torch.no_grad()
    def run(self, network: DCANet, meta: ModelMeta) -> ValidationResult:
        was_training = network.training
        network.eval()
        try:
            predictor = scoring_predictor(network, meta, PredictorOptions(overlap=self.overlap))
            cases = [score_case(predictor, image, reference).scores for _, image, reference in self.cases]
        finally:
            network.train(was_training)
        dice, mean = _summarise(case["aggregator"] for case in cases)
        if not has_experts(meta):
            return ValidationResult(dice, mean)
        return ValidationResult(dice, mean, *_summarise(case["experts_fused"] for case in cases))


def _summarise(cases: Iterable[Mapping[str, OrganScore]]) -> tuple[dict[str, float], float]:
    dice = dice_by_organ(cases)
    return dice, mean_of(dice.values()) or 0.0

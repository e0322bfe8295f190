"""Validation during training: the predictor on the fixed validation cases, Dice per organ."""
from __future__ import annotations

from dataclasses import dataclass, replace

import SimpleITK as sitk
import torch

from ..data.imageio import read_image
from ..inference import Predictor
from ..metrics import dice_per_organ, evaluate_pair, finite_mean
from ..nets import DCANet
from ..package import ModelMeta
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
        has_experts = meta.architecture.experts != "none"
        scores: dict[str, dict[str, list[float]]] = {"aggregator": {}, "experts_fused": {}}
        try:
            predictor = Predictor.from_network(network, replace(meta, output="aggregator"), overlap=self.overlap)
            for _, image, reference in self.cases:
                prediction = predictor.predict(image, fused=has_experts)
                reference = sitk.Cast(reference, prediction.labels.GetPixelID())
                reference.CopyInformation(prediction.labels)
                for output, labels in (("aggregator", prediction.labels), ("experts_fused", prediction.fused_labels)):
                    if labels is None:
                        continue
                    for organ, score in evaluate_pair(labels, reference, self.class_names).items():
                        if score.dice is not None:
                            scores[output].setdefault(organ, []).append(float(score.dice))
        finally:
            network.train(was_training)
        dice, mean = _summarise(scores["aggregator"])
        if not has_experts:
            return ValidationResult(dice, mean)
        return ValidationResult(dice, mean, *_summarise(scores["experts_fused"]))


def _summarise(per_case: dict[str, list[float]]) -> tuple[dict[str, float], float]:
    dice = dice_per_organ(per_case)
    mean = finite_mean(list(dice.values()))
    return dice, round(mean, 4) if mean is not None else 0.0

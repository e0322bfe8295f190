"""Validation during training: the predictor on the fixed validation cases, Dice per organ."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch

from ..data.imageio import read_image
from ..inference import Predictor
from ..metrics import evaluate_pair
from ..nets import DCANet
from ..package import ModelMeta
from .plan import TrainingPlan


@dataclass
class ValidationResult:
    """Dice per organ (mean over the validation cases that have the organ on either side) and their mean."""

    dice: dict[str, float]
    mean_dice: float


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
            predictor = Predictor.from_network(network, meta, overlap=self.overlap)
            per_organ: dict[str, list[float]] = {}
            for _, image, reference in self.cases:
                labels = predictor.predict(image).labels
                reference = sitk.Cast(reference, labels.GetPixelID())
                reference.CopyInformation(labels)
                for organ, score in evaluate_pair(labels, reference, self.class_names).items():
                    if score.dice is not None:
                        per_organ.setdefault(organ, []).append(float(score.dice))
        finally:
            network.train(was_training)
        dice = {organ: round(float(np.mean(v)), 4) for organ, v in per_organ.items()}
        mean = round(float(np.mean(list(dice.values()))), 4) if dice else 0.0
        return ValidationResult(dice, mean)

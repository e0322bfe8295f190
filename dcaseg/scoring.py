"""Scoring a model's heads on labeled cases: the one place that names the heads and what each reads.

A DCA model has up to two heads worth scoring (``package_meta.OUTPUTS``): ``aggregator`` (the aggregation decoder, the
paper's output) and, when it has experts, ``experts_fused`` (the argmax of the experts' logit
concatenation, the pseudo-label the aggregator learns from). A model package names one of them
as its ``output``; scoring reads both whatever the package names. Training's validation, the demo
and the ablation all score through here.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import SimpleITK as sitk

from .inference import Prediction, Predictor, PredictorOptions
from .metrics import OrganScore, dice_per_organ, evaluate_pair, finite_mean
from .nets import DCANet
from .package import ModelMeta
from .package_meta import OUTPUTS


def has_experts(meta: ModelMeta) -> bool:
    """Whether the model has experts, so an ``experts_fused`` head to score."""
    return meta.architecture.experts != "none"


def heads_of(meta: ModelMeta) -> tuple[str, ...]:
    """The heads this model has."""
    return OUTPUTS if has_experts(meta) else OUTPUTS[:1]


def scoring_predictor(network: DCANet, meta: ModelMeta, options: PredictorOptions | None = None) -> Predictor:
    """A predictor whose ``labels`` are the aggregator's (and ``fused_labels`` the experts'),
    whichever head the package names as its output."""
    return Predictor.from_network(network, replace(meta, output="aggregator"), options)


@dataclass
class ScoredCase:
    """One case: the prediction (``labels`` from the aggregator) and its scores, head → organ → score."""

    prediction: Prediction
    scores: dict[str, dict[str, OrganScore]]

    def labels(self, head: str) -> sitk.Image:
        """The label map of ``head``."""
        labels = self.prediction.labels if head == "aggregator" else self.prediction.fused_labels
        assert labels is not None, f"no {head} prediction"
        return labels


def score_case(predictor: Predictor, image: sitk.Image, reference: sitk.Image, attention: bool = False) -> ScoredCase:
    """Predict ``image`` with every head of ``predictor`` (made by ``scoring_predictor``) and score
    each against ``reference``, organ by organ."""
    meta = predictor.meta
    assert meta.output == "aggregator", "score with a predictor from scoring_predictor"
    prediction = predictor.predict(image, attention=attention, fused=has_experts(meta))
    scored = ScoredCase(prediction, {})
    for head in heads_of(meta):
        labels = scored.labels(head)
        scored.scores[head] = evaluate_pair(labels, sitk.Cast(reference, labels.GetPixelID()), meta.class_names)
    return scored


def dice_by_organ(cases: Iterable[Mapping[str, OrganScore]]) -> dict[str, float]:
    """Each organ's Dice averaged over the cases that have it on either side."""
    per_case: dict[str, list[float]] = {}
    for scores in cases:
        for organ, score in scores.items():
            if score.dice is not None:
                per_case.setdefault(organ, []).append(float(score.dice))
    return dice_per_organ(per_case)


def mean_of(values: Iterable[float | None]) -> float | None:
    """The mean of the defined values, to 4 decimals; None when none is."""
    mean = finite_mean(list(values))
    return round(mean, 4) if mean is not None else None

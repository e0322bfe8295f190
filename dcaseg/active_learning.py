"""Next case to annotate: rank unlabeled volumes by how unsure the model is about them.

Two scores per volume, both computed from one prediction:

* ``disagreement``: among voxels that the aggregator or the experts' fused prediction call
  foreground, the share where the two disagree on the class (the experts and the aggregator are
  trained to agree on unlabeled data, so disagreement marks what the model has not learnt);
* ``entropy``: the aggregator's mean voxel entropy, divided by log(number of classes) so it lies
  in [0, 1].

Volumes are ranked by one of them (default ``disagreement``; ties broken by the other score).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .events import Reporter
from .inference.predictor import Prediction, Predictor

SCORES = ("disagreement", "entropy")


@dataclass
class CaseScore:
    """How unsure the model is about one volume."""

    case_id: str
    image: Path
    disagreement: float
    entropy: float
    foreground_voxels: int

    def to_dict(self) -> dict:
        return asdict(self) | {"image": str(self.image)}


def prediction_scores(prediction: Prediction) -> tuple[float, float, int]:
    """(disagreement, normalised entropy, foreground voxels) of one prediction made with
    ``fused=True`` and ``probabilities=True``."""
    if prediction.fused_labels is None or prediction.probabilities is None:
        raise InputError("scoring needs a prediction with the experts' fused labels and the probabilities")
    aggregator = sitk.GetArrayViewFromImage(prediction.labels)
    experts = sitk.GetArrayViewFromImage(prediction.fused_labels)
    foreground = (aggregator > 0) | (experts > 0)
    count = int(foreground.sum())
    disagreement = float((aggregator != experts)[foreground].sum() / count) if count else 0.0
    probabilities = sitk.GetArrayViewFromImage(prediction.probabilities)  # (z, y, x, channels)
    channels = probabilities.shape[-1]
    entropy = np.zeros(probabilities.shape[:-1], dtype=np.float64)
    for c in range(channels):
        p = probabilities[..., c].astype(np.float64)
        entropy -= np.where(p > 0, p * np.log(np.maximum(p, 1e-12)), 0.0)
    return disagreement, float(entropy.mean() / math.log(channels)), count


def score_volumes(predictor: Predictor, volumes: Sequence[tuple[str, Path]],
                  reporter: Reporter | None = None) -> list[CaseScore]:
    """Predict each ``(case_id, image path)`` once and score it; in the given order."""
    reporter = reporter or Reporter()
    scores = []
    for done, (case_id, image) in enumerate(volumes, start=1):
        prediction = predictor.predict(image, probabilities=True, fused=True)
        disagreement, entropy, count = prediction_scores(prediction)
        scores.append(CaseScore(case_id, Path(image), disagreement, entropy, count))
        reporter.progress("cases", done, len(volumes))
    return scores


def rank(scores: Sequence[CaseScore], by: str = "disagreement") -> list[CaseScore]:
    """Most uncertain first by score ``by``; ties broken by the other score, then by case id."""
    if by not in SCORES:
        raise InputError(f"unknown ranking score {by!r}; use one of {list(SCORES)}")
    other = SCORES[1 - SCORES.index(by)]
    return sorted(scores, key=lambda s: (-getattr(s, by), -getattr(s, other), s.case_id))

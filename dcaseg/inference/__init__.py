"""Inference: sliding-window prediction of labels, attention maps and probabilities in the input's geometry."""
from .predictor import DEFAULT_OVERLAP, Prediction, Predictor

__all__ = ["DEFAULT_OVERLAP", "Prediction", "Predictor"]

"""Inference: sliding-window prediction of labels, attention maps and probabilities in the input's geometry."""
from .options import PredictorOptions
from .predictor import Prediction, Predictor
from .sliding_window import DEFAULT_OVERLAP

__all__ = ["DEFAULT_OVERLAP", "Prediction", "Predictor", "PredictorOptions"]

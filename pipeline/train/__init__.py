"""The end model: fine-tune an encoder as a classifier on (soft) labels (trainer), the loss-parameter search
above it (search), noise-robust losses and the forward transition, the head-mode model class, and prediction."""

from __future__ import annotations

from .search import LossParamSearch, train_classifier
from .trainer import TrainedClassifier, fine_tune, load_trained, predict_proba, save_classifier

__all__ = ["LossParamSearch", "TrainedClassifier", "fine_tune", "load_trained", "predict_proba", "save_classifier",
           "train_classifier"]

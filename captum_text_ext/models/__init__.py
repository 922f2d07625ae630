"""Reference text classifiers and their training loop."""

from captum_text_ext.models.lstm_classifier import LSTMClassifier
from captum_text_ext.models.training import FitResult, accuracy, fit

__all__ = ["FitResult", "LSTMClassifier", "accuracy", "fit"]

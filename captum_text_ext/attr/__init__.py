"""Captum attribution methods for text classifiers."""

from captum_text_ext.attr.contextual_decomposition import ContextualDecomposition, LayerContextualDecomposition
from captum_text_ext.attr.lstm_lrp import LSTMLRP, LayerLSTMLRP, LRPDecomposition

__all__ = ["LSTMLRP", "ContextualDecomposition", "LRPDecomposition", "LayerContextualDecomposition", "LayerLSTMLRP"]

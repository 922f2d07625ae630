"""Captum attribution methods for text classifiers."""

from captum_text_ext.attr.contextual_decomposition import ContextualDecomposition, LayerContextualDecomposition
from captum_text_ext.attr.gradient_surrogate import GradientLinearSurrogate, LayerGradientLinearSurrogate
from captum_text_ext.attr.lstm_lrp import LSTMLRP, LayerLSTMLRP, LRPDecomposition

__all__ = [
    "LSTMLRP",
    "ContextualDecomposition",
    "GradientLinearSurrogate",
    "LRPDecomposition",
    "LayerContextualDecomposition",
    "LayerGradientLinearSurrogate",
    "LayerLSTMLRP",
]

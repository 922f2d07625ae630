"""Captum attribution methods for text classifiers."""

from captum_text_ext.attr.contextual_decomposition import ContextualDecomposition, LayerContextualDecomposition
from captum_text_ext.attr.gradient_surrogate import (
    Expression,
    FeatureWeight,
    GradientLinearSurrogate,
    LayerGradientLinearSurrogate,
    NotFittedError,
    TopFeatures,
)
from captum_text_ext.attr.hidden_unit_optimization import (
    HiddenUnitOptimization,
    HiddenUnitOptimizationResult,
    MatchingRate,
    NearestWords,
    nearest_words,
)
from captum_text_ext.attr.hidden_unit_saliency import HiddenUnitSaliency
from captum_text_ext.attr.lstm_lrp import LSTMLRP, LayerLSTMLRP, LRPDecomposition
from captum_text_ext.attr.receptive_fields import stack_receptive_fields
from captum_text_ext.attr.transformer_lrp import LayerTransformerLRP, TransformerLRP

__all__ = [
    "LSTMLRP",
    "ContextualDecomposition",
    "Expression",
    "FeatureWeight",
    "GradientLinearSurrogate",
    "HiddenUnitOptimization",
    "HiddenUnitOptimizationResult",
    "HiddenUnitSaliency",
    "LRPDecomposition",
    "LayerContextualDecomposition",
    "LayerGradientLinearSurrogate",
    "LayerLSTMLRP",
    "LayerTransformerLRP",
    "MatchingRate",
    "NearestWords",
    "NotFittedError",
    "TopFeatures",
    "TransformerLRP",
    "nearest_words",
    "stack_receptive_fields",
]

"""captum_text_ext: Captum attribution methods for PyTorch text classifiers.

The attribution classes, the result types their methods return, and the errors users catch are exported here.
"""

from captum_text_ext._version import __version__
from captum_text_ext.attr import (
    LSTMLRP,
    ContextualDecomposition,
    Expression,
    FeatureWeight,
    GradientLinearSurrogate,
    HiddenUnitOptimization,
    HiddenUnitOptimizationResult,
    HiddenUnitSaliency,
    LayerContextualDecomposition,
    LayerGradientLinearSurrogate,
    LayerLSTMLRP,
    LayerTransformerLRP,
    LRPDecomposition,
    MatchingRate,
    NearestWords,
    NotFittedError,
    TopFeatures,
    TransformerLRP,
    nearest_words,
)
from captum_text_ext.decomposition import RandomOpError, UnsupportedOperationError

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
    "RandomOpError",
    "TopFeatures",
    "TransformerLRP",
    "UnsupportedOperationError",
    "__version__",
    "nearest_words",
]

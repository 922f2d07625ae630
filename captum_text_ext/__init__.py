"""captum_text_ext: Captum attribution methods for PyTorch text classifiers."""

from captum_text_ext._version import __version__
from captum_text_ext.attr import (
    LSTMLRP,
    ContextualDecomposition,
    GradientLinearSurrogate,
    HiddenUnitOptimization,
    HiddenUnitSaliency,
    LayerContextualDecomposition,
    LayerGradientLinearSurrogate,
    LayerLSTMLRP,
    nearest_words,
)

__all__ = [
    "LSTMLRP",
    "ContextualDecomposition",
    "GradientLinearSurrogate",
    "HiddenUnitOptimization",
    "HiddenUnitSaliency",
    "LayerContextualDecomposition",
    "LayerGradientLinearSurrogate",
    "LayerLSTMLRP",
    "__version__",
    "nearest_words",
]

"""captum_text_ext: Captum attribution methods for PyTorch text classifiers."""

from captum_text_ext._version import __version__
from captum_text_ext.attr import (
    LSTMLRP,
    ContextualDecomposition,
    GradientLinearSurrogate,
    LayerContextualDecomposition,
    LayerGradientLinearSurrogate,
    LayerLSTMLRP,
)

__all__ = [
    "LSTMLRP",
    "ContextualDecomposition",
    "GradientLinearSurrogate",
    "LayerContextualDecomposition",
    "LayerGradientLinearSurrogate",
    "LayerLSTMLRP",
    "__version__",
]

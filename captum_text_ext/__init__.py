"""captum_text_ext: Captum attribution methods for PyTorch text classifiers."""

from captum_text_ext._version import __version__
from captum_text_ext.attr import (
    LSTMLRP,
    ContextualDecomposition,
    HiddenUnitOptimization,
    HiddenUnitSaliency,
    LayerContextualDecomposition,
    LayerLSTMLRP,
    nearest_words,
)

__all__ = [
    "LSTMLRP",
    "ContextualDecomposition",
    "HiddenUnitOptimization",
    "HiddenUnitSaliency",
    "LayerContextualDecomposition",
    "LayerLSTMLRP",
    "__version__",
    "nearest_words",
]

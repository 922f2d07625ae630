"""captum_text_ext: Captum attribution methods for PyTorch text classifiers."""

from captum_text_ext._version import __version__
from captum_text_ext.attr import LSTMLRP, ContextualDecomposition, LayerContextualDecomposition, LayerLSTMLRP

__all__ = ["LSTMLRP", "ContextualDecomposition", "LayerContextualDecomposition", "LayerLSTMLRP", "__version__"]

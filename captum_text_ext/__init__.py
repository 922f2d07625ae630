"""captum_text_ext: Captum attribution methods for PyTorch text classifiers."""

from captum_text_ext._version import __version__
from captum_text_ext.attr import LSTMLRP, LayerLSTMLRP

__all__ = ["LSTMLRP", "LayerLSTMLRP", "__version__"]

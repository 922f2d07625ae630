"""captum_text_ext: Captum attribution methods for PyTorch text classifiers."""

from captum_text_ext._version import __version__

__all__ = ["__version__"]

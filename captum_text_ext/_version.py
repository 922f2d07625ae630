"""The package version, defined once (``setup.py`` and the docs read it from here)."""

__version__ = "0.1.0.dev0"

"""Sphinx configuration. CI builds with ``-W``: every warning is an error.

CI is offline, so intersphinx (links into the torch, captum and Python docs) is switched on only when
``CAPTUM_TEXT_EXT_DOCS_ONLINE=1``: an inventory download that fails would be a warning, hence an error.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from captum_text_ext._version import __version__  # noqa: E402

project = "captum_text_ext"
author = "the captum_text_ext developers"
copyright = "2026, the captum_text_ext developers"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
if os.environ.get("CAPTUM_TEXT_EXT_DOCS_ONLINE") == "1":
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "torch": ("https://pytorch.org/docs/stable", None),
        "captum": ("https://captum.ai/api", None),
    }

autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
nitpicky = False

exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list = []

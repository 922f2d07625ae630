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

exclude_patterns = ["_build", "_generated"]
html_theme = "alabaster"
html_static_path: list = []


def _write_models_table() -> None:
    """Render ``benchmarks/results/models/*.json`` (what ``captum-text-ext train --record`` wrote) as an RST table
    for the models page, so the docs show exactly the recorded numbers."""
    import json

    rows = []
    for path in sorted((ROOT / "benchmarks" / "results" / "models").glob("*.json")):
        result = json.loads(path.read_text(encoding="utf-8"))["results"]
        accuracy = f"{result['test_accuracy']:.4f}"
        if "binary_accuracy_non_neutral" in result:
            accuracy += f" (binary {result['binary_accuracy_non_neutral']:.4f})"
        rows.append(
            [result["name"], result["dataset"], accuracy, f"≥ {result['target_accuracy']:.2f}",
             result["paper_accuracy"], f"{result['train_seconds'] / 60:.1f} min"]
        )
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [["model", "data", "test accuracy", "target", "paper", "training time"], *rows]:
        lines.append("   * - " + row[0])
        lines += [f"     - {cell}" for cell in row[1:]]
    generated = ROOT / "docs" / "_generated"
    generated.mkdir(exist_ok=True)
    (generated / "models_table.rst").write_text("\n".join(lines) + "\n", encoding="utf-8")


_write_models_table()

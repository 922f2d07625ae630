"""The built docs in a browser without network: a method page's equations are typeset by the MathJax copy served
from the docs themselves, so no raw LaTeX is left in the visible text; the tutorials show their outputs.

It reads the docs that ``.ci/run`` builds, from the directory named by ``CAPTUM_TEXT_EXT_DOCS_HTML`` (``.ci/run``
sets it and runs this file after the docs build). Without the variable the test skips, saying so; with it, a missing
build fails.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from _browser import computed_dom, visible_text

DOCS_ENV_VAR = "CAPTUM_TEXT_EXT_DOCS_HTML"


@pytest.fixture(scope="module")
def built_docs() -> Path:
    value = os.environ.get(DOCS_ENV_VAR)
    if not value:
        pytest.skip(f"{DOCS_ENV_VAR} is not set: these tests read built docs (.ci/run sets it after building them)")
    path = Path(value)
    if not (path / "index.html").is_file():
        pytest.fail(f"{DOCS_ENV_VAR}={value} holds no built docs (no index.html)")
    return path


def test_equations_render_offline_on_a_method_page(built_docs: Path) -> None:
    page = built_docs / "lstm_lrp.html"
    source = page.read_text(encoding="utf-8")
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', source)
    assert "_static/mathjax/tex-chtml.js" in scripts, "MathJax comes from the built docs"
    assert not [src for src in scripts if "://" in src or src.startswith("//")], "no script from the network"
    assert "\\frac" in source, "the page has equations to typeset"
    dom = computed_dom(page, "math", wait_ms=8000)
    text = visible_text(dom)
    assert dom.count("<mjx-container") >= 5, "MathJax typeset the equations"
    for command in ("\\frac", "\\sum", "\\begin", "\\mathbf", "\\odot"):
        assert command not in text, f"raw LaTeX {command} is visible"


def test_tutorials_are_rendered_with_their_outputs(built_docs: Path) -> None:
    pages = sorted((built_docs / "_generated" / "tutorials").glob("*.html"))
    tutorials = Path(__file__).resolve().parents[2] / "tutorials"
    assert [p.stem for p in pages] == sorted(p.stem for p in tutorials.glob("*.ipynb"))
    for page in pages:
        source = page.read_text(encoding="utf-8")
        assert 'class="cell_output' in source, f"{page.name} shows no outputs"
    text = visible_text(computed_dom(built_docs / "_generated" / "tutorials" / "02_lstm_lrp.html", "math", 8000))
    assert "\\frac" not in text and "$$" not in text, "the notebook's math is typeset"

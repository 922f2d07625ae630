"""The comparison page in a real browser: it renders (a non-blank screenshot with the strongest colours of both
scales), it has one ``heatmap-row`` per method, and a token carrying a script stays text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from _browser import document_title, elements_with_class, render_in_chromium
from matplotlib import colormaps
from matplotlib.image import imread

from captum_text_ext.visualization import comparison_html

TOKENS = ["the", "film", "was", "<script>document.title='pwned'</script>", "not", "bad", "&", "fun"]
METHODS = {
    "Saliency": torch.tensor([0.1, 0.9, 0.0, 0.2, 0.3, 0.4, 0.0, 1.0]),
    "IntegratedGradients": torch.tensor([0.0, 2.0, -0.5, 0.0, -2.5, 1.0, 0.1, 1.5]),
    'LRP "ε" <eps>': torch.tensor([-1.0, 0.5, 0.0, 0.0, 1.0, -0.2, 0.0, 0.7]),
}


def test_comparison_page_renders_in_chromium_with_one_row_per_method(tmp_path: Path) -> None:
    page = tmp_path / "comparison.html"
    page.write_text(
        comparison_html(TOKENS, METHODS, target="positive", prediction="positive", probability=0.91,
                        title="Three methods", unsigned_methods=["Saliency"]),
        encoding="utf-8",
    )
    dom = render_in_chromium(page, tmp_path / "screenshot.png")

    pixels = imread(tmp_path / "screenshot.png")[..., :3]
    assert pixels.shape[:2] == (800, 1200)
    assert not np.all(pixels == pixels[0, 0]), "the screenshot is blank"
    for name, position in (("RdBu_r", 1.0), ("RdBu_r", 0.0), ("Purples", 1.0)):
        extreme = np.array(colormaps[name](position)[:3])
        assert (np.abs(pixels - extreme).max(axis=-1) < 0.02).any(), f"{name}({position}) is not on screen"

    rows = elements_with_class(dom, "heatmap-row")
    assert [row["data-method"] for row in rows] == list(METHODS)
    assert document_title(dom) == "Three methods", "a token's script ran"
    assert len(elements_with_class(dom, "tok")) == len(METHODS) * len(TOKENS)

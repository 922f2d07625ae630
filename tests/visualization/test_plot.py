"""Matplotlib heatmaps: the colour scale, wrapping, one row per method, and PNGs that decode and carry metadata."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.image import imread
from PIL import Image

import captum_text_ext.visualization.plot as plot_module
from captum_text_ext.provenance import RunRecorder
from captum_text_ext.visualization import plot_comparison, plot_token_heatmap, save_png

TOKENS = ["the", "film", "was", "not", "bad", "$\\frac$", "a$b", "at", "all"]
SCORES = torch.tensor([0.0, 2.0, -0.5, -4.0, 1.0, 0.3, 0.0, 0.1, 0.2])


def _decoded(path: Path) -> np.ndarray:
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 10 and pixels.shape[1] > 10
    assert pixels[..., :3].var() > 0, "the image is blank"
    return pixels


def test_boxes_use_the_html_colour_scale_normalized_per_sentence() -> None:
    ax = plot_token_heatmap(["up", "down", "zero"], torch.tensor([2.0, -4.0, 0.0]), title="IG")
    colours = [tuple(round(c, 3) for c in patch.get_facecolor()[:3]) for patch in ax.patches]
    assert colours == [(1.0, 0.502, 0.502), (0.0, 0.0, 1.0), (1.0, 1.0, 1.0)]
    assert [t.get_text() for t in ax.texts] == ["up", "down", "zero"] and ax.get_title(loc="left") == "IG"
    assert isinstance(ax.figure, Figure)


def test_tokens_wrap_at_the_axes_width() -> None:
    narrow = Figure(figsize=(1.5, 2.0)).add_subplot()
    plot_token_heatmap(TOKENS, SCORES, ax=narrow)
    lines = int(narrow.get_ylim()[0])
    assert lines > 1
    tops = sorted({round(patch.get_y()) for patch in narrow.patches})
    assert tops == list(range(lines))
    right = narrow.get_xlim()[1]
    assert all(patch.get_x() + patch.get_width() <= right for patch in narrow.patches)
    wide = plot_token_heatmap(TOKENS, SCORES)
    assert int(wide.get_ylim()[0]) == 1


def test_dollar_signs_are_drawn_literally(tmp_path: Path) -> None:
    ax = plot_token_heatmap(TOKENS, SCORES)
    _decoded(save_png(ax.figure, tmp_path / "dollars.png"))  # mathtext would fail on "$\frac$"
    assert [t.get_text() for t in ax.texts] == TOKENS


def test_comparison_has_one_row_per_method_and_decodes(tmp_path: Path) -> None:
    methods = {"Saliency": SCORES.abs(), "IntegratedGradients": SCORES, "LRP": -SCORES}
    fig = plot_comparison(TOKENS, methods, title="Review", target="pos", prediction="pos", probability=0.9)
    assert [ax.get_title(loc="left") for ax in fig.axes] == list(methods)
    assert all(len(ax.patches) == len(TOKENS) for ax in fig.axes)
    tops = [ax.get_position().y1 for ax in fig.axes]
    assert tops == sorted(tops, reverse=True), "rows run top to bottom in the mapping's order"
    assert "target: pos, prediction: pos, p = 0.90" in [t.get_text() for t in fig.texts]
    out = save_png(fig, tmp_path / "sub" / "comparison.png")
    pixels = _decoded(out)
    assert pixels.shape[1] == 800
    taller = plot_comparison(TOKENS, {**methods, "CD": SCORES}, title="Review", target="pos", prediction="pos",
                             probability=0.9)
    assert len(taller.axes) == 4 and taller.get_size_inches()[1] > fig.get_size_inches()[1]


def test_png_metadata_from_a_mapping_or_a_provenance(tmp_path: Path) -> None:
    fig = plot_comparison(["a"], {"m": torch.ones(1)})
    with Image.open(save_png(fig, tmp_path / "plain.png", metadata={"Title": "hello"})) as image:
        assert image.text["Title"] == "hello"
    with RunRecorder(command="captum-text-ext plot test", seeds={"plot": 0}) as run:
        pass
    with Image.open(save_png(fig, tmp_path / "provenance.png", metadata=run.provenance)) as image:
        assert image.text["Software"].startswith("captum_text_ext ")
        assert "command: captum-text-ext plot test" in image.text["Description"]


def test_plot_errors_name_the_argument() -> None:
    shape_error = r"Expected `scores` of shape \(T,\) with T = len\(tokens\) = 2, but got \(3,\)"
    with pytest.raises(ValueError, match=shape_error):
        plot_token_heatmap(["a", "b"], torch.zeros(3))
    with pytest.raises(ValueError, match=r"Expected `scores_by_method\['IG'\]` of shape \(T,\) .* but got \(2, 4\)"):
        plot_comparison(["a", "b"], {"IG": torch.zeros(2, 4)})
    with pytest.raises(ValueError, match="Expected at least one method in `scores_by_method`, but got an empty"):
        plot_comparison(["a"], {})
    with pytest.raises(ValueError, match=r"Expected `width` > 0 inches, but got 0"):
        plot_comparison(["a"], {"m": torch.ones(1)}, width=0)
    with pytest.raises(TypeError, match="Expected `tokens` to be a sequence of strings, but got a single str"):
        plot_token_heatmap("ab", torch.zeros(2))


def test_matplotlib_is_imported_only_inside_functions() -> None:
    tree = ast.parse(Path(plot_module.__file__).read_text(encoding="utf-8"))
    top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    names = [alias.name for node in top_level if isinstance(node, ast.Import) for alias in node.names]
    names += [node.module or "" for node in top_level if isinstance(node, ast.ImportFrom)]
    assert not [name for name in names if name.startswith("matplotlib")]

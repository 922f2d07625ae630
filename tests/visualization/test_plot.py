"""Matplotlib heatmaps: the colour scale, wrapping, one row per method, and PNGs that decode and carry metadata."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib import colormaps
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.image import imread
from PIL import Image

import captum_text_ext.visualization.plot as plot_module
from captum_text_ext.provenance import RunRecorder
from captum_text_ext.visualization import plot_comparison, plot_token_heatmap, save_png
from captum_text_ext.visualization.contrast import contrast_ratio
from captum_text_ext.records import GroundTruthMarks

TOKENS = ["the", "film", "was", "not", "bad", "$\\frac$", "a$b", "at", "all"]
SCORES = torch.tensor([0.0, 2.0, -0.5, -4.0, 1.0, 0.3, 0.0, 0.1, 0.2])


def _decoded(path: Path) -> np.ndarray:
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 10 and pixels.shape[1] > 10
    assert pixels[..., :3].var() > 0, "the image is blank"
    return pixels


def _on_map(name: str, position: float) -> tuple:
    """The colour map's colour at ``position``, rounded to 0-255 channels as the pages and figures draw it."""
    return tuple(round(round(255 * c) / 255, 3) for c in colormaps[name](position)[:3])


def _rgb255(colour) -> tuple:
    return tuple(round(255 * c) for c in to_rgb(colour))


def test_boxes_use_the_html_colour_scales_normalized_per_sentence() -> None:
    ax = plot_token_heatmap(["up", "down", "zero"], torch.tensor([2.0, -4.0, 0.0]), title="IG")
    colours = [tuple(round(c, 3) for c in patch.get_facecolor()[:3]) for patch in ax.patches]
    assert colours == [_on_map("RdBu_r", 0.75), _on_map("RdBu_r", 0.0), _on_map("RdBu_r", 0.5)]
    assert [t.get_text() for t in ax.texts] == ["up", "down", "zero"] and ax.get_title(loc="left") == "IG"
    assert ax.get_title(loc="right") == "signed, −4 … +4"
    assert isinstance(ax.figure, Figure)
    unsigned = plot_token_heatmap(["a", "b"], torch.tensor([0.5, 1.0]), signed=False)
    colours = [tuple(round(c, 3) for c in patch.get_facecolor()[:3]) for patch in unsigned.patches]
    assert colours == [_on_map("Purples", 0.5), _on_map("Purples", 1.0)]
    assert unsigned.get_title(loc="right") == "unsigned, 0 … 1"
    with pytest.raises(ValueError, match=r"Expected non-negative `scores` on the unsigned scale, but got -1"):
        plot_token_heatmap(["a"], -torch.ones(1), signed=False)


def test_token_text_contrasts_at_least_4_5_with_its_box() -> None:
    scores = torch.linspace(-1.0, 1.0, 21)
    for signed, values in ((True, scores), (False, scores.abs())):
        ax = plot_token_heatmap([f"t{i}" for i in range(21)], values, signed=signed)
        ratios = [contrast_ratio(_rgb255(patch.get_facecolor()), _rgb255(text.get_color()))
                  for patch, text in zip(ax.patches, ax.texts)]
        assert len(ratios) == 21 and min(ratios) >= 4.5


def test_ground_truth_rings_decisive_words_and_underlines_negations() -> None:
    truth = GroundTruthMarks((False, False, True, False), negation_spans=((1, 3),))
    ax = plot_token_heatmap(["it", "not", "good", "."], torch.tensor([0.1, -0.5, 1.0, 0.0]), ground_truth=truth)
    rings = [patch for patch in ax.patches[4:] if patch.get_facecolor()[3] == 0]
    assert len(ax.patches) == 4 + 1 and len(rings) == 1
    assert rings[0].get_x() < ax.patches[2].get_x() and rings[0].get_width() > ax.patches[2].get_width()
    assert len(ax.lines) == 2  # under "not" and "good"
    fig = plot_comparison(["it", "not", "good", "."], {"Saliency": torch.ones(4), "IG": torch.ones(4)},
                          unsigned_methods=["Saliency"], ground_truth=truth)
    notes = [t.get_text() for t in fig.texts]
    assert any(note.startswith("signed:") for note in notes)
    assert any(note.startswith("unsigned (Saliency") for note in notes)
    assert any(note.startswith("ground truth:") for note in notes)
    assert len(fig.artists) == 2 * 32, "one colour bar per scale in use"
    signed_only = plot_comparison(["a"], {"IG": torch.ones(1)})
    assert not any(t.get_text().startswith(("unsigned", "ground truth")) for t in signed_only.texts)
    with pytest.raises(ValueError, match=r"`unsigned_methods` names methods not in `scores_by_method`: \['SA'\]"):
        plot_comparison(["a"], {"IG": torch.ones(1)}, unsigned_methods=["SA"])
    with pytest.raises(ValueError, match="Expected `ground_truth` for 1 tokens, but it covers 4"):
        plot_comparison(["a"], {"IG": torch.ones(1)}, ground_truth=truth)


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

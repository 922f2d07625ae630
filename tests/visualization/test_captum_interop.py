"""Records for Captum's text visualization: normalized into [-1, 1], escaped, usable without IPython."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest
import torch
from captum.attr import visualization as viz

from captum_text_ext.visualization import to_visualization_record

EVIL = "x<script>alert(1)</script>"


def test_per_token_scores_are_normalized_by_max_abs_and_attr_score_is_the_raw_sum() -> None:
    record = to_visualization_record(["a", "b", "c"], torch.tensor([3.0, -6.0, 1.5]), 0.8, 1, 0, 1, 0.25)
    assert isinstance(record, viz.VisualizationDataRecord)
    assert record.word_attributions.tolist() == [0.5, -1.0, 0.25]
    assert record.attr_score == pytest.approx(-1.5)
    assert (record.pred_prob, record.pred_class, record.true_class, record.attr_class) == (0.8, 1, 0, 1)
    assert record.convergence_score == 0.25 and record.raw_input_ids == ["a", "b", "c"]


def test_embedding_dimension_is_summed() -> None:
    attributions = torch.tensor([[1.0, 2.0, 3.0], [-1.0, -1.0, -10.0]], requires_grad=True)
    record = to_visualization_record(["a", "b"], attributions, 0.5, 0, 0, 0)
    assert record.word_attributions.tolist() == pytest.approx([0.5, -1.0])
    assert record.attr_score == pytest.approx(-6.0) and not record.word_attributions.requires_grad
    assert math.isnan(record.convergence_score)


def test_values_stay_in_range_so_captums_clipping_never_bites() -> None:
    torch.manual_seed(0)
    attributions = 100 * torch.randn(20, 8)
    record = to_visualization_record([f"w{i}" for i in range(20)], attributions, 0.9, 1, 1, 1)
    values = record.word_attributions
    assert values.abs().max().item() == pytest.approx(1.0) and bool((values.abs() <= 1).all())
    zeros = to_visualization_record(["a", "b"], torch.zeros(2), 0.5, 0, 0, 0)
    assert zeros.word_attributions.tolist() == [0.0, 0.0]


def test_tokens_and_class_names_are_escaped_for_captums_html() -> None:
    assert "<script>" in viz.format_word_importances([EVIL], [1.0]), "Captum itself does not escape (#1226)"
    record = to_visualization_record([EVIL, "ok"], torch.tensor([1.0, -1.0]), 0.7, "<b>pos</b>", "pos", 1)
    words = viz.format_word_importances(record.raw_input_ids, record.word_attributions)
    assert "<script>" not in words and "x&lt;script&gt;alert(1)&lt;/script&gt;" in words
    assert (record.pred_class, record.true_class, record.attr_class) == ("&lt;b&gt;pos&lt;/b&gt;", "pos", 1)


def test_visualize_text_renders_the_record_safely() -> None:
    pytest.importorskip(
        "IPython", reason="IPython is not installed (`pip install .[notebook]`); Captum's visualize_text needs it"
    )
    record = to_visualization_record([EVIL], torch.tensor([5.0]), 0.7, "<i>neg</i>", 0, 1)
    page = viz.visualize_text([record]).data
    assert "<script>" not in page and "<i>" not in page and "&lt;i&gt;neg&lt;/i&gt; (0.70)" in page


def test_works_without_ipython() -> None:
    program = textwrap.dedent(
        f"""
        import sys
        sys.modules["IPython"] = None  # make `import IPython` fail
        import torch
        from captum.attr import visualization as viz
        from captum_text_ext.visualization import render_html, TextAttribution, to_visualization_record
        assert not viz.HAS_IPYTHON
        record = to_visualization_record([{EVIL!r}, "b"], torch.tensor([[2.0, 1.0], [-1.0, 0.0]]), 0.6, 1, 1, 1)
        html = viz.format_word_importances(record.raw_input_ids, record.word_attributions)
        assert "<script>" not in html and torch.allclose(record.word_attributions, torch.tensor([1.0, -1.0 / 3.0]))
        page = render_html(TextAttribution(["a"], torch.ones(1), "m", target=1, predicted=1, probability=0.6))
        assert page.count('class="heatmap-row"') == 1
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", program], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_record_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match=r"Expected `attributions` of shape \(T,\) or \(T, E\) with T = len\(tokens\) "
                                         r"= 3, but got \(1, 3, 4\)"):
        to_visualization_record(["a", "b", "c"], torch.zeros(1, 3, 4), 0.5, 0, 0, 0)
    with pytest.raises(ValueError, match=r"T = len\(tokens\) = 2, but got \(3,\)"):
        to_visualization_record(["a", "b"], torch.zeros(3), 0.5, 0, 0, 0)
    with pytest.raises(ValueError, match=r"Expected `pred_prob` in \[0, 1\], but got -0.1"):
        to_visualization_record(["a"], torch.zeros(1), -0.1, 0, 0, 0)
    with pytest.raises(TypeError, match="Expected `tokens` to be a sequence of strings, but got a single str"):
        to_visualization_record("ab", torch.zeros(2), 0.5, 0, 0, 0)


def test_subword_scores_are_shown_per_word_or_per_subword() -> None:
    scores = torch.tensor([[0.5, 0.5], [1.0, 1.0], [-0.5, -0.5], [3.0, 0.0], [9.0, 9.0]])  # [CLS] go ##od film [SEP]
    per_word = to_visualization_record(["good", "film"], scores, 0.9, 1, 1, 1, word_ids=[None, 0, 0, 1, None])
    assert per_word.raw_input_ids == ["good", "film"] and per_word.attr_score == pytest.approx(4.0)
    assert torch.allclose(per_word.word_attributions, torch.tensor([1.0 / 3.0, 1.0]))
    per_subword = to_visualization_record(["[CLS]", "go", "##od", "film", "[SEP]"], scores, 0.9, 1, 1, 1)
    assert len(per_subword.word_attributions) == 5 and per_subword.attr_score == pytest.approx(23.0)
    with pytest.raises(ValueError, match=r"T = len\(word_ids\) = 4, but got \(5, 2\)"):
        to_visualization_record(["good", "film"], scores, 0.9, 1, 1, 1, word_ids=[None, 0, 1, None])
    with pytest.raises(ValueError, match="number the 3 words of `tokens`, but they number 2"):
        to_visualization_record(["good", "film", "x"], scores, 0.9, 1, 1, 1, word_ids=[None, 0, 0, 1, None])

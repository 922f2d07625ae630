import pytest
import torch

from captum_text_ext.visualization import heatmap_row_html, html_page, normalize_scores


def test_scores_are_normalized_per_sentence_by_max_abs() -> None:
    assert normalize_scores(torch.tensor([2.0, -4.0, 1.0])).tolist() == [0.5, -1.0, 0.25]
    assert normalize_scores(torch.zeros(3)).tolist() == [0.0, 0.0, 0.0]


def test_tokens_are_escaped_and_coloured_by_sign() -> None:
    row = heatmap_row_html(["<script>", "a&b"], torch.tensor([1.0, -1.0]))
    assert "&lt;script&gt;" in row and "a&amp;b" in row and "<script>" not in row
    assert "rgb(255,0,0)" in row and "rgb(0,0,255)" in row


def test_one_score_per_token_is_required() -> None:
    with pytest.raises(ValueError, match=r"one score per token \(2\), but got 3"):
        heatmap_row_html(["a", "b"], torch.zeros(3))


def test_page_is_complete_and_escapes_its_title() -> None:
    page = html_page("<b>", "body")
    assert page.startswith("<!DOCTYPE html>") and "&lt;b&gt;" in page and "Legend" in page

import re
from pathlib import Path

import pytest
import torch
from matplotlib import colormaps

from captum_text_ext.visualization import (
    GroundTruthMarks,
    TextAttribution,
    comparison_html,
    comparison_records,
    contrast_ratio,
    heatmap_row_html,
    html_page,
    normalize_scores,
    render_html,
    save_html,
)


def test_scores_are_normalized_per_sentence_by_max_abs() -> None:
    assert normalize_scores(torch.tensor([2.0, -4.0, 1.0])).tolist() == [0.5, -1.0, 0.25]
    assert normalize_scores(torch.zeros(3)).tolist() == [0.0, 0.0, 0.0]


def _diverging_css(position: float) -> str:
    red, green, blue, _ = colormaps["RdBu_r"](position)
    return f"rgb({round(255 * red)},{round(255 * green)},{round(255 * blue)})"


def test_tokens_are_escaped_and_coloured_by_sign() -> None:
    row = heatmap_row_html(["<script>", "a&b", "zero"], torch.tensor([1.0, -1.0, 0.0]))
    assert "&lt;script&gt;" in row and "a&amp;b" in row and "<script>" not in row
    backgrounds = re.findall(r"background:(rgb\([0-9,]+\))", row)
    assert backgrounds == [_diverging_css(1.0), _diverging_css(0.0), _diverging_css(0.5)]
    assert re.findall(r'data-score="([^"]+)"', row) == ["+1", "-1", "+0"]


def _styles(page: str) -> list:
    """(background, text) per token span, as 0-255 channel tuples."""
    pairs = re.findall(r'class="tok[^"]*" style="background:rgb\(([0-9,]+)\);color:rgb\(([0-9,]+)\)"', page)
    return [tuple(tuple(int(c) for c in colour.split(",")) for colour in pair) for pair in pairs]


def test_every_token_text_contrasts_at_least_4_5_with_its_background() -> None:
    scores = torch.linspace(-1.0, 1.0, 41)
    tokens = [f"t{i}" for i in range(41)]
    page = render_html(comparison_records(tokens, {"signed": scores, "unsigned": scores.abs()}, target=1,
                                          prediction=1, probability=0.5, unsigned_methods=["unsigned"]))
    pairs = _styles(page)
    assert len(pairs) == 2 * 41
    ratios = [contrast_ratio(background, text) for background, text in pairs]
    assert min(ratios) >= 4.5
    assert {text for _, text in pairs} == {(0, 0, 0), (255, 255, 255)}, "dark backgrounds get white text"


def test_unsigned_scores_use_the_sequential_scale_and_must_not_be_negative() -> None:
    page = comparison_html(["a", "b"], {"Saliency": torch.tensor([0.0, 2.0]), "IG": torch.tensor([-1.0, 1.0])},
                           target=0, prediction=0, probability=0.5, unsigned_methods=["Saliency"])
    assert re.findall(r'data-method="([^"]+)" data-scale="([^"]+)"', page) == [("Saliency", "unsigned"),
                                                                                ("IG", "signed")]
    purple = colormaps["Purples"](1.0)
    assert f"background:rgb({round(255 * purple[0])},{round(255 * purple[1])},{round(255 * purple[2])})" in page
    assert "<b>unsigned</b> scores" in page and "<b>signed</b> scores" in page
    assert "0 &hellip; 2" in page and "&minus;1 &hellip; +1" in page
    signed_only = comparison_html(["a"], {"IG": torch.ones(1)}, target=0, prediction=0, probability=0.5)
    assert "<b>unsigned</b>" not in signed_only and "Ground truth" not in signed_only
    with pytest.raises(ValueError, match=r"non-negative scores for the unsigned method 'S' \(signed=False\)"):
        _record("S", signed=False)
    with pytest.raises(ValueError, match=r"`unsigned_methods` names methods not in `scores_by_method`: \['SA'\]"):
        comparison_html(["a"], {"IG": torch.ones(1)}, target=0, prediction=0, probability=0.5,
                        unsigned_methods=["SA"])
    with pytest.raises(ValueError, match=r"`convergence_deltas` names methods not in `scores_by_method`: \['x'\]"):
        comparison_records(["a"], {"IG": torch.ones(1)}, target=0, prediction=0, probability=0.5,
                           convergence_deltas={"x": 0.1})


def test_ground_truth_marks_decisive_words_and_negation_spans() -> None:
    truth = GroundTruthMarks((False, False, True, False), negation_spans=((1, 3),))
    page = comparison_html(["it", "not", "good", "."], {"IG": torch.tensor([0.1, -0.5, 1.0, 0.0]),
                                                         "LRP": torch.tensor([0.0, 1.0, 1.0, 0.0])},
                           target=1, prediction=1, probability=0.8, ground_truth=truth)
    classes = re.findall(r'<span class="(tok[^"]*)" style', page)
    assert classes == 2 * ["tok", "tok gt-negation", "tok gt-decisive gt-negation", "tok"]
    assert 'title="score +1; decides the label; in a negation span"' in page
    assert "Ground truth" in page
    with pytest.raises(ValueError, match="Expected `ground_truth` for 2 tokens, but it covers 4"):
        _record(ground_truth=truth)
    with pytest.raises(ValueError, match=r"0 <= start < end <= 4 tokens, but got \(3, 5\)"):
        GroundTruthMarks((False,) * 4, negation_spans=((3, 5),))


def test_one_score_per_token_is_required() -> None:
    with pytest.raises(ValueError, match=r"one score per token \(2\), but got 3"):
        heatmap_row_html(["a", "b"], torch.zeros(3))


def test_page_is_complete_and_escapes_its_title() -> None:
    page = html_page("<b>", "body")
    assert page.startswith("<!DOCTYPE html>") and "&lt;b&gt;" in page and 'class="legend"' in page

EVIL = "<img src=x onerror=alert(1)>"


def _record(method: str = "IG", **overrides: object) -> TextAttribution:
    fields: dict = dict(tokens=["a", "b"], scores=torch.tensor([1.0, -0.5]), method=method, target=1, predicted=1,
                        probability=0.75)
    fields.update(overrides)
    return TextAttribution(**fields)


def test_record_validates_its_fields() -> None:
    shape_error = r"Expected `scores` of shape \(T,\) with T = len\(tokens\) = 2, but got \(2, 1\)"
    with pytest.raises(ValueError, match=shape_error):
        _record(scores=torch.zeros(2, 1))
    with pytest.raises(TypeError, match="Expected `scores` to be a torch.Tensor, but got list"):
        _record(scores=[1.0, 2.0])
    with pytest.raises(TypeError, match="Expected `tokens` to be a sequence of strings, but got a single str"):
        _record(tokens="ab")
    with pytest.raises(ValueError, match=r"Expected `probability` in \[0, 1\], but got 1.5"):
        _record(probability=1.5)


def test_each_row_shows_method_target_prediction_and_heatmap() -> None:
    page = render_html([_record(true_label="gold", convergence_delta=0.0123)], title="t")
    (row,) = re.findall(r'<tr class="heatmap-row".*?</tr>', page)
    assert 'data-method="IG"' in row and '<td class="method">IG</td>' in row and '<td class="target">1</td>' in row
    assert '<td class="prediction">1 (0.75)</td>' in row and '<td class="true-label">gold</td>' in row
    assert '<td class="delta">+0.0123</td>' in row and row.count('class="tok"') == 2
    assert "true label" in page and "convergence &Delta;" in page


def test_optional_columns_appear_only_when_some_record_has_them() -> None:
    page = render_html(_record())
    assert "true label" not in page and "convergence" not in page and "true-label" not in page


def test_comparison_has_one_row_per_method_in_order_and_one_sentence() -> None:
    scores = {name: torch.tensor([1.0, 0.0]) for name in ["Saliency", "IG", "LRP"]}
    page = comparison_html(["a", "b"], scores, target="pos", prediction="neg", probability=0.4, true_label="pos",
                           convergence_deltas={"IG": 0.5})
    assert re.findall(r'class="heatmap-row" data-method="([^"]*)"', page) == ["Saliency", "IG", "LRP"]
    assert page.count('<section class="sentence">') == 1 and "<title>Attribution comparison</title>" in page
    assert page.count('<td class="delta">&mdash;</td>') == 2 and '<td class="delta">+0.5</td>' in page


def test_consecutive_records_of_one_sentence_share_a_table() -> None:
    other = _record("Saliency", tokens=["c"], scores=torch.ones(1))
    page = render_html([_record("IG"), _record("Saliency"), other])
    assert page.count('<section class="sentence">') == 2 and "Sentence 2" in page
    records = comparison_records(["a"], {"x": torch.ones(1)}, target=0, prediction=0, probability=1.0)
    assert render_html(records + records).count('<section class="sentence">') == 1


def test_everything_user_provided_is_escaped() -> None:
    page = comparison_html([EVIL, "x"], {EVIL: torch.ones(2), 'say "hi"': torch.ones(2)}, target=EVIL,
                           prediction=EVIL, probability=0.5, true_label=EVIL, title=EVIL)
    # <title> and <h1>; then per row (2 rows): the token, target, prediction, true label; the first row's method
    # cell and data-method attribute
    assert "<img" not in page and page.count("&lt;img src=x onerror=alert(1)&gt;") == 2 + 2 * 4 + 2
    assert 'data-method="say &quot;hi&quot;"' in page


def test_page_is_self_contained() -> None:
    page = comparison_html(["a"], {"m": torch.ones(1)}, target=0, prediction=0, probability=1.0)
    assert "<style>" in page and 'class="legend"' in page
    for external in ["http://", "https://", "<link", "<script", "src=", "@import", "url("]:
        assert external not in page


def test_render_html_rejects_empty_and_foreign_records() -> None:
    with pytest.raises(ValueError, match="Expected at least one TextAttribution in `records`, but got none"):
        render_html([])
    with pytest.raises(TypeError, match="Expected `records` to hold TextAttribution objects, but got dict"):
        render_html([{}])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="Expected at least one method in `scores_by_method`, but got an empty"):
        comparison_html(["a"], {}, target=0, prediction=0, probability=1.0)


def test_save_html_writes_the_rendered_page(tmp_path: Path) -> None:
    out = save_html(tmp_path / "new" / "page.html", [_record()], title="Saved")
    assert out == tmp_path / "new" / "page.html"
    assert out.read_text(encoding="utf-8") == render_html([_record()], title="Saved")


def test_subword_rows_join_a_words_subwords_and_outline_special_tokens() -> None:
    tokens = ["[CLS]", "go", "##od", "film", "[SEP]"]
    record = TextAttribution(tokens, torch.tensor([0.1, 1.0, -0.5, 0.2, 0.0]), "IG", target=1, predicted=1,
                             probability=0.9, word_ids=[-1, 0, 0, 1, -1])
    page = render_html(record)
    row = re.search(r'<td class="heatmap">(.*?)</td>', page).group(1)
    spans = re.findall(r'<span class="([^"]*)"', row)
    assert spans == ["tok special", "tok", "tok cont", "tok", "tok special"]
    assert "</span><span class=\"tok cont\"" in row and row.count("</span> <span") == 3  # no space inside a word
    assert "Scores per subword" in page and "a special token of no word" in row
    with pytest.raises(ValueError, match="`word_ids` for 5 tokens, but it covers 2"):
        TextAttribution(tokens, torch.zeros(5), "IG", target=1, predicted=1, probability=0.9, word_ids=[0, 1])
    words = render_html(TextAttribution(["good", "film"], torch.tensor([0.5, 0.2]), "IG", target=1, predicted=1,
                                        probability=0.9))
    assert "Scores per subword" not in words and "tok cont" not in words and "tok special" not in words

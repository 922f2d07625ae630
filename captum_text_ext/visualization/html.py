"""Self-contained HTML heatmaps: red supports the target class, blue speaks against it.

Scores are normalized per sentence by their largest absolute value, as in Arras et al. (2017), Fig. 2, so colour
intensity compares words within a sentence, never across sentences. Everything user-provided (tokens, method names,
class names, titles) is HTML-escaped (Captum's ``visualize_text`` does not escape words, captum #1226). Pages carry
their own CSS, load nothing external and need no IPython.

The building blocks are :func:`heatmap_row_html` (one sentence as coloured tokens) and :func:`html_page` (a complete
document). :class:`TextAttribution` holds one explanation with its context (method, target, prediction);
:func:`render_html` lays records out one table per sentence, one row per method, and :func:`comparison_html`
compares several methods on one sentence. Every row is a ``<tr class="heatmap-row" data-method="...">``, so a
browser test can count them.

References:
    Arras, Montavon, Müller and Samek (2017). Explaining Recurrent Neural Network Predictions in Sentiment
    Analysis. WASSA@EMNLP 2017.

Examples:
    >>> import torch
    >>> page = comparison_html(
    ...     ["a", "<great>", "film"],
    ...     {"Saliency": torch.tensor([0.1, 0.9, 0.0]), "IG": torch.tensor([0.0, 2.0, -0.5])},
    ...     target="positive", prediction="positive", probability=0.93, title="Review #1",
    ... )
    >>> page.count('class="heatmap-row"'), "&lt;great&gt;" in page, "<great>" in page
    (2, True, False)
"""

from __future__ import annotations

import html
import os
from itertools import groupby
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_text_ext.records import ClassLabel, TextAttribution


def _rgb(value: float) -> Tuple[int, int, int]:
    """White for 0, red for +1, blue for -1 (linear in between, clipped to [-1, 1]), as 0-255 channels."""
    strength = min(abs(value), 1.0)
    fade = int(round(255 * (1 - strength)))
    return (255, fade, fade) if value >= 0 else (fade, fade, 255)


def _colour(value: float) -> str:
    """The CSS colour of a normalized score (see :func:`_rgb`)."""
    return "rgb({},{},{})".format(*_rgb(value))


LEGEND = (
    '<div class="legend">Legend: '
    f'<span style="background:{_colour(1.0)};color:#fff">supports the target</span> '
    f'<span style="background:{_colour(0.0)};border:1px solid #ccc">neutral</span> '
    f'<span style="background:{_colour(-1.0)};color:#fff">against the target</span> '
    "&mdash; colours are normalized per sentence by the largest |score|; hover a token for its raw score.</div>"
)

_STYLE = """
body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
td, th { padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
.tok { padding: 1px 3px; margin: 0 1px; border-radius: 3px; display: inline-block; }
.legend span { padding: 2px 6px; margin-right: 4px; }
"""

_RECORD_STYLE = """
.sentence h2 { font-size: 1.1em; margin-bottom: 0.3em; }
td.heatmap { max-width: 60em; line-height: 1.9; }
td.method { font-weight: bold; white-space: nowrap; }
"""


def normalize_scores(scores: Tensor) -> Tensor:
    """Divide per-token scores by their largest absolute value (all zeros stay zeros); values land in [-1, 1].

    Args:
        scores: per-token scores.

    Returns:
        The scores divided by ``scores.abs().max()``, or zeros if that is 0.

    Shape:
        - scores: :math:`(T,)`.
        - output: :math:`(T,)`.

    Raises:
        ValueError: if ``scores`` is not 1-D.

    Examples:
        >>> normalize_scores(torch.tensor([2.0, -4.0, 1.0]))
        tensor([ 0.5000, -1.0000,  0.2500])
    """
    if scores.dim() != 1:
        raise ValueError(f"Expected per-token scores of shape (T,), but got {tuple(scores.shape)}")
    top = scores.abs().max() if scores.numel() else torch.tensor(0.0)
    return scores / top if float(top) > 0 else torch.zeros_like(scores)


def heatmap_row_html(tokens: Sequence[str], scores: Tensor) -> str:
    """One sentence as coloured, escaped tokens; each token's tooltip shows its raw score.

    Args:
        tokens: the words, in order.
        scores: their per-token scores, shape :math:`(T,)` with :math:`T` = ``len(tokens)``.

    Returns:
        An HTML fragment: one ``<span class="tok">`` per token.

    Raises:
        ValueError: if there is not exactly one score per token.

    Examples:
        >>> heatmap_row_html(["<b>"], torch.tensor([2.0]))
        '<span class="tok" style="background:rgb(255,0,0)" title="+2">&lt;b&gt;</span>'
    """
    if len(tokens) != scores.numel():
        raise ValueError(f"Expected one score per token ({len(tokens)}), but got {scores.numel()} scores")
    raw_scores = scores.detach().double().cpu()
    normalized = normalize_scores(raw_scores)
    spans = [
        f'<span class="tok" style="background:{_colour(float(v))}" title="{float(raw):+.4g}">{html.escape(tok)}</span>'
        for tok, v, raw in zip(tokens, normalized, raw_scores)
    ]
    return " ".join(spans)


def html_page(title: str, body: str, legend: bool = True, extra_style: Optional[str] = None) -> str:
    """A complete HTML document with the heatmap styles and an optional legend.

    Args:
        title: the page title (escaped).
        body: the HTML body, inserted as is (it must already be safe).
        legend: whether to show the colour legend above the body.
        extra_style: CSS appended to the page's own styles.

    Returns:
        The document, starting with ``<!DOCTYPE html>``.

    Examples:
        >>> html_page("A & B", "<p>hi</p>").count("A &amp; B")
        2
    """
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}{extra_style or ''}</style></head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
        f"{LEGEND if legend else ''}\n{body}\n</body></html>\n"
    )


def _label(value: Optional[ClassLabel]) -> str:
    return "&mdash;" if value is None else html.escape(str(value))


def _row_html(record: TextAttribution, show_truth: bool, show_delta: bool) -> str:
    cells = [
        f'<td class="method">{html.escape(record.method)}</td>',
        f'<td class="target">{_label(record.target)}</td>',
        f'<td class="prediction">{_label(record.predicted)} ({record.probability:.2f})</td>',
    ]
    if show_truth:
        cells.append(f'<td class="true-label">{_label(record.true_label)}</td>')
    if show_delta:
        delta = "&mdash;" if record.convergence_delta is None else f"{record.convergence_delta:+.3g}"
        cells.append(f'<td class="delta">{delta}</td>')
    cells.append(f'<td class="heatmap">{heatmap_row_html(record.tokens, record.scores)}</td>')
    return f'<tr class="heatmap-row" data-method="{html.escape(record.method)}">{"".join(cells)}</tr>'


def _sentence_html(number: int, records: Sequence[TextAttribution]) -> str:
    show_truth = any(r.true_label is not None for r in records)
    show_delta = any(r.convergence_delta is not None for r in records)
    headers = ["method", "target", "prediction (p)"]
    if show_truth:
        headers.append("true label")
    if show_delta:
        headers.append("convergence &Delta;")
    headers.append("attribution")
    head = "<tr>" + "".join(f"<th>{h}</th>" for h in headers) + "</tr>"
    rows = "\n".join(_row_html(r, show_truth, show_delta) for r in records)
    return f'<section class="sentence"><h2>Sentence {number}</h2><table>{head}\n{rows}</table></section>'


def render_html(
    records: Union[TextAttribution, Sequence[TextAttribution]], title: str = "Token attributions", preamble: str = ""
) -> str:
    """A self-contained page: the legend, then one table per sentence with one heatmap row per record.

    Consecutive records with the same tokens share a table (a side-by-side comparison of methods); each row shows
    the method, the target, the prediction with its probability, the true label and convergence delta when any
    record of the sentence has them, and the heatmap.

    Args:
        records: one record, or several (e.g. :func:`comparison_records` for several sentences, concatenated).
        title: the page title.
        preamble: HTML placed before the sentences (e.g. a summary table). It is inserted as is: escape anything
            user-provided in it.

    Returns:
        The HTML document.

    Raises:
        TypeError: if an element of ``records`` is not a :class:`TextAttribution`.
        ValueError: if ``records`` is empty.

    Examples:
        >>> page = render_html(comparison_records(["ok"], {"m": torch.tensor([1.0])}, target=0, prediction=0,
        ...                                       probability=0.6))
        >>> page.startswith("<!DOCTYPE html>"), page.count('data-method="m"')
        (True, 1)
    """
    items: List[TextAttribution] = [records] if isinstance(records, TextAttribution) else list(records)
    if not items:
        raise ValueError("Expected at least one TextAttribution in `records`, but got none")
    for item in items:
        if not isinstance(item, TextAttribution):
            raise TypeError(f"Expected `records` to hold TextAttribution objects, but got {type(item).__name__}")
    groups = [list(group) for _, group in groupby(items, key=lambda r: tuple(r.tokens))]
    body = "\n".join(_sentence_html(i + 1, group) for i, group in enumerate(groups))
    return html_page(title, preamble + body, extra_style=_RECORD_STYLE)


def comparison_records(
    tokens: Sequence[str],
    scores_by_method: Mapping[str, Tensor],
    *,
    target: ClassLabel,
    prediction: ClassLabel,
    probability: float,
    true_label: Optional[ClassLabel] = None,
    convergence_deltas: Optional[Mapping[str, float]] = None,
) -> List[TextAttribution]:
    """Several methods' attributions of one sentence as records, in the mapping's order.

    Args:
        tokens: the words, in order.
        scores_by_method: per-token scores, shape :math:`(T,)`, by method name.
        target: the class every method explains.
        prediction: the model's predicted class.
        probability: its probability.
        true_label: the gold label, if known.
        convergence_deltas: convergence deltas by method name (methods without one may be left out).

    Returns:
        One :class:`TextAttribution` per method.

    Raises:
        ValueError: if ``scores_by_method`` is empty, or as :class:`TextAttribution`.

    Examples:
        >>> [r.method for r in comparison_records(["a"], {"x": torch.ones(1), "y": torch.zeros(1)}, target=1,
        ...                                        prediction=1, probability=1.0)]
        ['x', 'y']
    """
    if not scores_by_method:
        raise ValueError("Expected at least one method in `scores_by_method`, but got an empty mapping")
    deltas = convergence_deltas or {}
    return [
        TextAttribution(tokens, scores, method, target, prediction, probability, true_label, deltas.get(method))
        for method, scores in scores_by_method.items()
    ]


def comparison_html(
    tokens: Sequence[str],
    scores_by_method: Mapping[str, Tensor],
    *,
    target: ClassLabel,
    prediction: ClassLabel,
    probability: float,
    true_label: Optional[ClassLabel] = None,
    convergence_deltas: Optional[Mapping[str, float]] = None,
    title: str = "Attribution comparison",
) -> str:
    """A page comparing several methods on one sentence: one ``heatmap-row`` per method (see the module example).

    Args:
        tokens: the words, in order.
        scores_by_method: per-token scores, shape :math:`(T,)`, by method name (one row each, in this order).
        target: the class every method explains.
        prediction: the model's predicted class.
        probability: its probability.
        true_label: the gold label, if known.
        convergence_deltas: convergence deltas by method name (methods without one may be left out).
        title: the page title.

    Returns:
        The HTML document (as :func:`render_html`).

    Raises:
        ValueError: as :func:`comparison_records`.
    """
    records = comparison_records(
        tokens,
        scores_by_method,
        target=target,
        prediction=prediction,
        probability=probability,
        true_label=true_label,
        convergence_deltas=convergence_deltas,
    )
    return render_html(records, title)


def save_html(
    path: Union[str, "os.PathLike[str]"],
    records: Union[TextAttribution, Sequence[TextAttribution]],
    title: str = "Token attributions",
) -> Path:
    """Write :func:`render_html` of ``records`` to ``path`` (UTF-8), creating missing parent directories.

    Args:
        path: the file to write.
        records: as :func:`render_html`.
        title: as :func:`render_html`.

    Returns:
        The path written.

    Examples:
        >>> import tempfile
        >>> out = save_html(Path(tempfile.mkdtemp()) / "page.html",
        ...                 TextAttribution(["hi"], torch.ones(1), "m", target=0, predicted=0, probability=0.5))
        >>> out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
        True
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(records, title), encoding="utf-8")
    return out

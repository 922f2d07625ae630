"""Self-contained HTML heatmaps: signed scores on a diverging scale, magnitudes on a sequential one.

A *signed* score (Integrated Gradients, LRP, CD, Occlusion, ...) says whether a token speaks for the target class or
against it: it is drawn on the diverging :data:`DIVERGING_COLOURMAP` (blue against, near-white 0, red for). An
*unsigned* score (Saliency's ℓ2 norm: a magnitude with no direction) is drawn on the sequential
:data:`SEQUENTIAL_COLOURMAP` (near-white 0, dark purple the largest), so it can never read as "supports the target".
Both are matplotlib's ColorBrewer maps, the ones the PNG figures (:mod:`captum_text_ext.visualization.plot`) use.
Scores are normalized per row by their largest absolute value, as in Arras et al. (2017), Fig. 2, so colour
intensity compares words within a row, never across rows; each row's scale cell gives that largest value, and
hovering a token shows its raw score. Every token's text is black or white, whichever contrasts more with its
background (always at least 4.5:1, WCAG AA: :mod:`captum_text_ext.visualization.contrast`). When a record carries
its :class:`~captum_text_ext.records.GroundTruthMarks`, decisive words are ringed and negation spans underlined.

Everything user-provided (tokens, method names, class names, titles) is HTML-escaped (Captum's ``visualize_text``
does not escape words, captum #1226). Pages carry their own CSS, load nothing external and need no IPython.

The building blocks are :func:`heatmap_row_html` (one sentence as coloured tokens), :func:`legend_html` and
:func:`html_page` (a complete document). :class:`~captum_text_ext.records.TextAttribution` holds one explanation with
its context (method, target, prediction); :func:`render_html` lays records out one table per sentence, one row per
method, and :func:`comparison_html` compares several methods on one sentence. Every row is a
``<tr class="heatmap-row" data-method="...">`` and every token a ``<span class="tok">``, so a browser test can find
them.

References:
    Arras, Montavon, Müller and Samek (2017). Explaining Recurrent Neural Network Predictions in Sentiment
    Analysis. WASSA@EMNLP 2017.

    Brewer, Hatchard and Harrower (2003). ColorBrewer in Print: A Catalog of Color Schemes for Maps. Cartography
    and Geographic Information Science 30(1).

Examples:
    >>> import torch
    >>> page = comparison_html(
    ...     ["a", "<great>", "film"],
    ...     {"Saliency": torch.tensor([0.1, 0.9, 0.0]), "IG": torch.tensor([0.0, 2.0, -0.5])},
    ...     target="positive", prediction="positive", probability=0.93, title="Review #1",
    ...     unsigned_methods=["Saliency"],
    ... )
    >>> page.count('class="heatmap-row"'), "&lt;great&gt;" in page, "<great>" in page
    (2, True, False)
"""

from __future__ import annotations

import html
import os
from itertools import groupby
from pathlib import Path
from typing import Collection, List, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor

from captum_text_ext.records import ClassLabel, GroundTruthMarks, TextAttribution
from captum_text_ext.visualization.contrast import RGB, text_rgb

__all__ = [
    "DIVERGING_COLOURMAP",
    "SEQUENTIAL_COLOURMAP",
    "ClassLabel",
    "comparison_html",
    "comparison_records",
    "heatmap_row_html",
    "html_page",
    "legend_html",
    "normalize_scores",
    "render_html",
    "save_html",
]

DIVERGING_COLOURMAP = "RdBu_r"
"""The matplotlib colour map of signed scores: -1 dark blue (against the target), 0 near-white, +1 dark red (for)."""
SEQUENTIAL_COLOURMAP = "Purples"
"""The matplotlib colour map of unsigned scores: 0 near-white, 1 dark purple (the row's largest magnitude)."""
_GRADIENT_STOPS = 11


def _rgb(value: float, signed: bool = True) -> RGB:
    """The background of a normalized score as 0-255 channels: ``value`` in [-1, 1] on the diverging map when
    ``signed``, in [0, 1] on the sequential map otherwise (clipped to the range)."""
    from matplotlib import colormaps  # imported when a page is drawn, as in plot.py

    if signed:
        position, name = (min(max(value, -1.0), 1.0) + 1.0) / 2.0, DIVERGING_COLOURMAP
    else:
        position, name = min(max(value, 0.0), 1.0), SEQUENTIAL_COLOURMAP
    red, green, blue, _ = colormaps[name](position)
    return int(round(255 * red)), int(round(255 * green)), int(round(255 * blue))


def _css(rgb: RGB) -> str:
    return "rgb({},{},{})".format(*rgb)


def _gradient(signed: bool) -> str:
    """The CSS ``linear-gradient`` of a colour scale, left (-1 or 0) to right (+1)."""
    low = -1.0 if signed else 0.0
    stops = [low + (1.0 - low) * i / (_GRADIENT_STOPS - 1) for i in range(_GRADIENT_STOPS)]
    return "linear-gradient(to right, " + ", ".join(_css(_rgb(v, signed)) for v in stops) + ")"


def _bar(signed: bool) -> str:
    kind = "signed" if signed else "unsigned"
    return f'<span class="scale-bar scale-{kind}" style="background:{_gradient(signed)}"></span>'


def legend_html(
    signed: bool = True, unsigned: bool = True, ground_truth: bool = False, subwords: bool = False
) -> str:
    """The legend: one line per colour scale shown, the ground-truth marks when a sentence has them, and how
    subwords are drawn when a row scores them.

    Args:
        signed: explain the diverging scale of signed scores.
        unsigned: explain the sequential scale of unsigned scores.
        ground_truth: explain the marks of decisive words and negation spans.
        subwords: explain the rows with one score per subword.

    Returns:
        An HTML ``<div class="legend">``.
    """
    lines = []
    if signed:
        lines.append(f"{_bar(True)} <b>signed</b> scores: blue speaks against the target, near-white is 0, red "
                     "supports the target")
    if unsigned:
        lines.append(f"{_bar(False)} <b>unsigned</b> scores (Saliency, ℓ2 norms): how much a token matters, in "
                     "either direction; near-white is 0, dark purple the row's largest")
    lines.append("Colours are normalized per row by its largest |score| (the row's scale); hover a token for its "
                 "raw score.")
    if ground_truth:
        lines.append('Ground truth: <span class="mark-sample gt-decisive">ringed</span> words decide the label; '
                     '<span class="mark-sample gt-negation">underlined</span> words lie in a negation span (the '
                     "negator through its scope).")
    if subwords:
        lines.append('Scores per subword: the subwords of one word are drawn joined, and tokens of no word '
                     '(<span class="mark-sample special">[CLS]</span>, [SEP]) are outlined.')
    return '<div class="legend">' + "".join(f"<div>{line}</div>" for line in lines) + "</div>"


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #111; background: #fff; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
td, th { padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
.tok, .mark-sample { padding: 1px 3px; margin: 0 2px; border-radius: 3px; display: inline-block;
  border-bottom: 3px solid transparent; }
.gt-decisive { box-shadow: 0 0 0 2px #fff, 0 0 0 4px #111; }
.gt-negation { border-bottom-color: #b45309; }
.tok.cont { margin-left: -2px; border-top-left-radius: 0; border-bottom-left-radius: 0; }
.special { outline: 1px dashed #666; font-size: 0.85em; }
.legend { margin-bottom: 1em; line-height: 2; }
.scale-bar { display: inline-block; width: 8em; height: 0.9em; vertical-align: middle; border: 1px solid #888; }
"""

_RECORD_STYLE = """
.sentence h2 { font-size: 1.1em; margin-bottom: 0.3em; }
td.heatmap { min-width: 30em; max-width: 60em; line-height: 2.2; }
td.method { font-weight: bold; white-space: nowrap; }
td.scale { white-space: nowrap; font-size: 0.85em; }
td.scale .scale-bar { width: 4em; }
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


def _token_html(token: str, value: float, raw: float, signed: bool, decisive: bool, negated: bool,
                kind: str = "") -> str:
    background = _rgb(value, signed)
    classes = "tok" + (" gt-decisive" if decisive else "") + (" gt-negation" if negated else "") + kind
    notes = "".join(note for flag, note in ((decisive, "; decides the label"), (negated, "; in a negation span"),
                                            (kind == " special", "; a special token of no word"))
                    if flag)
    return (
        f'<span class="{classes}" style="background:{_css(background)};color:{_css(text_rgb(background))}" '
        f'title="score {raw:+.4g}{notes}" data-score="{raw:+.6g}">{html.escape(token)}</span>'
    )


def _subword_kinds(word_ids: Optional[Sequence[int]], count: int) -> List[str]:
    """Per token, its extra classes: ``" cont"`` for a subword that continues the word before it, ``" special"`` for
    a token of no word (a negative word id)."""
    if word_ids is None:
        return [""] * count
    return [" special" if word < 0 else " cont" if i and word == word_ids[i - 1] else ""
            for i, word in enumerate(word_ids)]


def heatmap_row_html(
    tokens: Sequence[str],
    scores: Tensor,
    signed: bool = True,
    ground_truth: Optional[GroundTruthMarks] = None,
    word_ids: Optional[Sequence[int]] = None,
) -> str:
    """One sentence as coloured, escaped tokens with readable text; each token's tooltip shows its raw score.

    Args:
        tokens: the words, in order.
        scores: their per-token scores, shape :math:`(T,)` with :math:`T` = ``len(tokens)``.
        signed: the diverging scale (``True``) or the sequential one for non-negative magnitudes (``False``).
        ground_truth: marks decisive words (class ``gt-decisive``) and negation spans (``gt-negation``).
        word_ids: for subword tokens, the word of each (negative: a special token of no word): the subwords of a word
            are drawn joined (class ``cont`` after the first) and special tokens outlined (class ``special``).

    Returns:
        An HTML fragment: one ``<span class="tok">`` per token, its background the score's colour and its text black
        or white (:func:`~captum_text_ext.visualization.contrast.text_rgb`).

    Raises:
        ValueError: if there is not exactly one score per token, an unsigned row has a negative score, or
            ``ground_truth`` or ``word_ids`` covers another number of tokens.

    Examples:
        >>> heatmap_row_html(["<b>"], torch.tensor([2.0]))
        '<span class="tok" style="background:rgb(103,0,31);color:rgb(255,255,255)" title="score +2" data-score="+2">&lt;b&gt;</span>'
    """
    if len(tokens) != scores.numel():
        raise ValueError(f"Expected one score per token ({len(tokens)}), but got {scores.numel()} scores")
    raw_scores = scores.detach().double().cpu()
    if not signed and bool((raw_scores < 0).any()):
        raise ValueError(f"Expected non-negative scores on the unsigned scale, but got {float(raw_scores.min()):+.4g}")
    if ground_truth is not None and len(ground_truth.decisive) != len(tokens):
        raise ValueError(f"Expected `ground_truth` for {len(tokens)} tokens, but it covers "
                         f"{len(ground_truth.decisive)}")
    if word_ids is not None and len(word_ids) != len(tokens):
        raise ValueError(f"Expected `word_ids` for {len(tokens)} tokens, but it covers {len(word_ids)}")
    normalized = normalize_scores(raw_scores).tolist()
    kinds = _subword_kinds(word_ids, len(tokens))
    return "".join(
        ("" if kinds[i] == " cont" or not i else " ")
        + _token_html(
            token, normalized[i], float(raw_scores[i]), signed,
            ground_truth is not None and ground_truth.decisive[i],
            ground_truth is not None and ground_truth.negated(i),
            kinds[i],
        )
        for i, token in enumerate(tokens)
    )


def _scale_html(scores: Tensor, signed: bool) -> str:
    """A row's scale: its colour bar and the raw values at the bar's ends."""
    top = float(scores.detach().double().abs().max()) if scores.numel() else 0.0
    ends = f"&minus;{top:.3g} &hellip; +{top:.3g}" if signed else f"0 &hellip; {top:.3g}"
    return f'{_bar(signed)} {ends}'


def html_page(title: str, body: str, legend: bool = True, extra_style: Optional[str] = None) -> str:
    """A complete HTML document with the heatmap styles and an optional legend.

    Args:
        title: the page title (escaped).
        body: the HTML body, inserted as is (it must already be safe).
        legend: whether to show the legend of both colour scales (:func:`legend_html`) above the body.
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
        f"{legend_html() if legend else ''}\n{body}\n</body></html>\n"
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
    cells.append(f'<td class="scale">{_scale_html(record.scores, record.signed)}</td>')
    row = heatmap_row_html(record.tokens, record.scores, record.signed, record.ground_truth, record.word_ids)
    cells.append(f'<td class="heatmap">{row}</td>')
    kind = "signed" if record.signed else "unsigned"
    return (f'<tr class="heatmap-row" data-method="{html.escape(record.method)}" data-scale="{kind}">'
            f'{"".join(cells)}</tr>')


def _sentence_html(number: int, records: Sequence[TextAttribution]) -> str:
    show_truth = any(r.true_label is not None for r in records)
    show_delta = any(r.convergence_delta is not None for r in records)
    headers = ["method", "target", "prediction (p)"]
    if show_truth:
        headers.append("true label")
    if show_delta:
        headers.append("convergence &Delta;")
    headers += ["scale", "attribution"]
    head = "<tr>" + "".join(f"<th>{h}</th>" for h in headers) + "</tr>"
    rows = "\n".join(_row_html(r, show_truth, show_delta) for r in records)
    return f'<section class="sentence"><h2>Sentence {number}</h2><table>{head}\n{rows}</table></section>'


def render_html(
    records: Union[TextAttribution, Sequence[TextAttribution]],
    title: str = "Token attributions",
    preamble: str = "",
    extra_style: str = "",
) -> str:
    """A self-contained page: the preamble, the legend, then one table per sentence with one heatmap row per record.

    Consecutive records with the same tokens share a table (a side-by-side comparison of methods); each row shows
    the method, the target, the prediction with its probability, the true label and convergence delta when any
    record of the sentence has them, the row's scale and the heatmap. The legend explains the scales the records
    use, and the ground-truth marks when a record carries them.

    Args:
        records: one record, or several (e.g. :func:`comparison_records` for several sentences, concatenated).
        title: the page title.
        preamble: HTML placed before the sentences (e.g. a summary table). It is inserted as is: escape anything
            user-provided in it.
        extra_style: CSS for the preamble, appended to the page's styles.

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
    legend = legend_html(
        signed=any(r.signed for r in items),
        unsigned=any(not r.signed for r in items),
        ground_truth=any(r.ground_truth is not None for r in items),
        subwords=any(r.word_ids is not None for r in items),
    )
    body = "\n".join(_sentence_html(i + 1, group) for i, group in enumerate(groups))
    return html_page(title, preamble + legend + body, legend=False, extra_style=_RECORD_STYLE + extra_style)


def comparison_records(
    tokens: Sequence[str],
    scores_by_method: Mapping[str, Tensor],
    *,
    target: ClassLabel,
    prediction: ClassLabel,
    probability: float,
    true_label: Optional[ClassLabel] = None,
    convergence_deltas: Optional[Mapping[str, float]] = None,
    unsigned_methods: Collection[str] = (),
    ground_truth: Optional[GroundTruthMarks] = None,
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
        unsigned_methods: the methods whose scores are magnitudes without a sign (e.g. Saliency's ℓ2 norm), drawn
            on the sequential scale.
        ground_truth: what is known about the tokens, marked in every row.

    Returns:
        One :class:`TextAttribution` per method.

    Raises:
        ValueError: if ``scores_by_method`` is empty, ``convergence_deltas`` or ``unsigned_methods`` name a method
            it does not have, or as :class:`TextAttribution`.

    Examples:
        >>> [r.method for r in comparison_records(["a"], {"x": torch.ones(1), "y": torch.zeros(1)}, target=1,
        ...                                        prediction=1, probability=1.0)]
        ['x', 'y']
    """
    if not scores_by_method:
        raise ValueError("Expected at least one method in `scores_by_method`, but got an empty mapping")
    deltas = convergence_deltas or {}
    for argument, names in (("convergence_deltas", deltas), ("unsigned_methods", unsigned_methods)):
        unknown = [name for name in names if name not in scores_by_method]
        if unknown:
            raise ValueError(f"`{argument}` names methods not in `scores_by_method`: {unknown}; expected some of "
                             f"{list(scores_by_method)}")
    return [
        TextAttribution(tokens, scores, method, target, prediction, probability, true_label, deltas.get(method),
                        signed=method not in unsigned_methods, ground_truth=ground_truth)
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
    unsigned_methods: Collection[str] = (),
    ground_truth: Optional[GroundTruthMarks] = None,
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
        unsigned_methods: the methods whose scores are magnitudes without a sign, drawn on the sequential scale.
        ground_truth: what is known about the tokens, marked in every row.
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
        unsigned_methods=unsigned_methods,
        ground_truth=ground_truth,
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

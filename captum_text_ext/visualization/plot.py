"""Matplotlib heatmaps of per-token attributions, on the colour scales of :mod:`captum_text_ext.visualization.html`.

Tokens are drawn as coloured boxes that wrap onto new lines. Signed scores use the diverging scale (red supports the
target, blue speaks against it, near-white is 0), unsigned ones (Saliency's ℓ2 norm) the sequential scale (near-white
0, dark purple the largest); scores are normalized per row by their largest absolute value (Arras et al., 2017,
Fig. 2), and each row's title gives that value. Token text is black or white, whichever contrasts more with its box
(at least 4.5:1, :mod:`~captum_text_ext.visualization.contrast`). With a
:class:`~captum_text_ext.records.GroundTruthMarks`, decisive words are ringed in black and negation spans underlined in
amber, as in the HTML report; :func:`plot_comparison` draws the scales it uses and these marks in its footer.
Figures are built with the object API (:class:`matplotlib.figure.Figure`), never pyplot's global state, so they work
on any backend, in threads and on headless machines; matplotlib is imported only when a function runs. Tokens are
drawn in a monospace font with mathtext off, so ``$`` in a token prints as itself.

Examples:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> fig = plot_comparison(["a", "great", "film"], {"Saliency": torch.tensor([0.1, 0.9, 0.0]),
    ...                                               "IG": torch.tensor([0.0, 2.0, -0.5])}, title="Review #1")
    >>> [ax.get_title(loc="left") for ax in fig.axes]
    ['Saliency', 'IG']
    >>> save_png(fig, Path(tempfile.mkdtemp()) / "comparison.png", metadata={"Title": "Review #1"}).suffix
    '.png'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Collection, List, Mapping, Optional, Sequence, Tuple, Union

from torch import Tensor

from captum_text_ext.provenance import Provenance, png_metadata
from captum_text_ext.visualization.html import ClassLabel, _rgb, normalize_scores
from captum_text_ext.records import GroundTruthMarks
from captum_text_ext.visualization.contrast import text_rgb

__all__ = ["plot_comparison", "plot_token_heatmap", "save_png"]

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_FONT_SIZE = 10.0
"""Token font size in points."""
_CHAR_WIDTH_IN = 0.6 * _FONT_SIZE / 72
"""Advance of one monospace character in inches (DejaVu Sans Mono, matplotlib's default monospace: 0.602 em)."""
_LINE_HEIGHT_IN = 2.2 * _FONT_SIZE / 72
"""Height of one wrapped line of boxes in inches."""
_TITLE_HEIGHT_IN = 0.35
"""Room above each heatmap for its title, in inches."""


def _layout(tokens: Sequence[str], columns: int) -> List[Tuple[int, int, int]]:
    """Place tokens left to right, wrapping at ``columns`` characters: ``(x, line, width)`` per token.

    Each box is one character wider than its token (half a character of padding on each side), and boxes are one
    character apart; a token longer than a line gets a line of its own.
    """
    placed = []
    x, line = 0, 0
    for token in tokens:
        width = max(len(token), 1) + 1
        if x > 0 and x + width > columns:
            x, line = 0, line + 1
        placed.append((x, line, width))
        x += width + 1
    return placed


def _lines(tokens: Sequence[str], columns: int) -> int:
    """How many lines the wrapped tokens take (at least 1)."""
    placed = _layout(tokens, columns)
    return placed[-1][1] + 1 if placed else 1


def _columns(width_in: float) -> int:
    """How many monospace characters fit in ``width_in`` inches (at least 1)."""
    return max(int(width_in / _CHAR_WIDTH_IN), 1)


def _check_scores(
    tokens: Sequence[str], scores: Tensor, name: str, signed: bool, ground_truth: Optional[GroundTruthMarks]
) -> None:
    if isinstance(tokens, str):
        raise TypeError("Expected `tokens` to be a sequence of strings, but got a single str")
    if tuple(scores.shape) != (len(tokens),):
        raise ValueError(
            f"Expected `{name}` of shape (T,) with T = len(tokens) = {len(tokens)}, but got {tuple(scores.shape)}"
        )
    if not signed and bool((scores < 0).any()):
        raise ValueError(f"Expected non-negative `{name}` on the unsigned scale, but got {float(scores.min()):+.4g}")
    if ground_truth is not None and len(ground_truth.decisive) != len(tokens):
        raise ValueError(f"Expected `ground_truth` for {len(tokens)} tokens, but it covers "
                         f"{len(ground_truth.decisive)}")


_DECISIVE_RING = "0.07"
"""The colour of the ring around a decisive word."""
_NEGATION_LINE = "#b45309"
"""The colour of the line under a negation span (the HTML report's amber)."""


def _scale_label(scores: Tensor, signed: bool) -> str:
    top = float(scores.detach().double().abs().max()) if scores.numel() else 0.0
    return f"signed, −{top:.3g} … +{top:.3g}" if signed else f"unsigned, 0 … {top:.3g}"


def _draw(
    ax: "Axes", tokens: Sequence[str], scores: Tensor, columns: int, title: Optional[str], signed: bool,
    ground_truth: Optional[GroundTruthMarks],
) -> None:
    """Draw the boxes into ``ax`` (axis off, y pointing down, one unit per character and per line), the
    ground-truth marks, the title (left) and the row's scale (right)."""
    from matplotlib.patches import Rectangle

    normalized = normalize_scores(scores.detach().double().cpu())
    placed = _layout(tokens, columns)
    right = max([columns] + [x + width for x, _, width in placed])
    for token, value, (x, line, width) in zip(tokens, normalized.tolist(), placed):
        background = _rgb(value, signed)
        ax.add_patch(Rectangle((x, line + 0.14), width, 0.72, facecolor=tuple(c / 255 for c in background),
                               edgecolor="0.75", linewidth=0.5))
        ax.text(
            x + width / 2, line + 0.5, token, ha="center", va="center", family="monospace", fontsize=_FONT_SIZE,
            color=tuple(c / 255 for c in text_rgb(background)), parse_math=False,
        )
    if ground_truth is not None:
        for index, (x, line, width) in enumerate(placed):
            if ground_truth.decisive[index]:
                ax.add_patch(Rectangle((x - 0.2, line + 0.06), width + 0.4, 0.88, facecolor="none",
                                       edgecolor=_DECISIVE_RING, linewidth=1.6))
            if ground_truth.negated(index):
                ax.plot([x - 0.5, x + width + 0.5], [line + 0.99, line + 0.99], color=_NEGATION_LINE,
                        linewidth=2.2, solid_capstyle="butt", clip_on=False)
    ax.set_xlim(0, right)
    ax.set_ylim(_lines(tokens, columns), 0)
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title, loc="left", fontsize=_FONT_SIZE + 1, parse_math=False)
    ax.set_title(_scale_label(scores, signed), loc="right", fontsize=_FONT_SIZE - 1, color="0.3")


def plot_token_heatmap(
    tokens: Sequence[str],
    scores: Tensor,
    ax: Optional["Axes"] = None,
    title: Optional[str] = None,
    signed: bool = True,
    ground_truth: Optional[GroundTruthMarks] = None,
) -> "Axes":
    """Draw one sentence as coloured token boxes that wrap at the axes' width.

    Args:
        tokens: the words, in order.
        scores: one score per token; normalized by the largest absolute value before colouring.
        ax: the axes to draw into (its current width sets the wrapping); default: a new 8-inch-wide
            :class:`~matplotlib.figure.Figure` whose height fits the wrapped lines.
        title: the axes title (drawn as plain text, on the left; the scale is on the right).
        signed: the diverging scale (``True``) or the sequential one for non-negative magnitudes (``False``).
        ground_truth: rings decisive words and underlines negation spans.

    Returns:
        The axes drawn into (``ax.figure`` is its figure); one :class:`~matplotlib.patches.Rectangle` and one text
        per token, in order, then a ring per decisive word and a line per negated token.

    Shape:
        - scores: :math:`(T,)` with :math:`T` = ``len(tokens)``.

    Raises:
        TypeError: if ``tokens`` is a single string.
        ValueError: if ``scores`` does not have shape ``(len(tokens),)``, an unsigned row has a negative score, or
            ``ground_truth`` covers another number of tokens.

    Examples:
        >>> import torch
        >>> ax = plot_token_heatmap(["not", "bad"], torch.tensor([-1.0, 0.5]), title="IG")
        >>> len(ax.patches), ax.get_title(loc="left")
        (2, 'IG')
    """
    _check_scores(tokens, scores, "scores", signed, ground_truth)
    if ax is None:
        from matplotlib.figure import Figure

        width_in = 8.0
        columns = _columns(width_in * 0.96)
        lines = _lines(tokens, columns)
        height_in = lines * _LINE_HEIGHT_IN + _TITLE_HEIGHT_IN + 0.1
        fig = Figure(figsize=(width_in, height_in))
        ax = fig.add_axes((0.02, 0.05 / height_in, 0.96, lines * _LINE_HEIGHT_IN / height_in))
    else:
        box = ax.get_window_extent()
        columns = _columns(box.width / ax.figure.dpi)
    _draw(ax, tokens, scores, columns, title, signed, ground_truth)
    return ax


_FOOTER_LINE_IN = 0.22
"""Height of one footer line (a colour scale or a note), in inches."""
_BAR_IN = 1.2
"""Width of a colour bar in the footer, in inches."""
_BAR_STEPS = 32


def _footer_lines(signed: bool, unsigned: bool, ground_truth: bool) -> List[Tuple[Optional[bool], str]]:
    """What the footer explains, top to bottom: ``(scale or None, text)``; a scale's line draws its colour bar."""
    lines: List[Tuple[Optional[bool], str]] = []
    if signed:
        lines.append((True, "signed: blue speaks against the target, near-white is 0, red supports it"))
    if unsigned:
        lines.append((False, "unsigned (Saliency, ℓ2 norms): magnitude without direction, near-white is 0"))
    lines.append((None, "each row normalized by its largest |score| (its scale, right)"))
    if ground_truth:
        lines.append((None, "ground truth: ringed words decide the label; amber underline: a negation span"))
    return lines


def _draw_footer(fig: "Figure", lines: List[Tuple[Optional[bool], str]], width_in: float, height_in: float) -> None:
    """Draw the footer's colour bars (figure-level patches, so ``fig.axes`` keeps one axes per row) and notes."""
    from matplotlib.patches import Rectangle

    left_in = 0.02 * width_in
    for row, (scale, text) in enumerate(lines):
        bottom_in = 0.08 + (len(lines) - 1 - row) * _FOOTER_LINE_IN
        text_left_in = left_in
        if scale is not None:
            low = -1.0 if scale else 0.0
            step_in = _BAR_IN / _BAR_STEPS
            for i in range(_BAR_STEPS):
                value = low + (1.0 - low) * (i + 0.5) / _BAR_STEPS
                fig.add_artist(Rectangle(
                    ((left_in + i * step_in) / width_in, (bottom_in + 0.03) / height_in), step_in / width_in,
                    0.12 / height_in, transform=fig.transFigure, facecolor=tuple(c / 255 for c in _rgb(value, scale)),
                    edgecolor="none",
                ))
            text_left_in += _BAR_IN + 0.1
        fig.text(text_left_in / width_in, bottom_in / height_in, text, fontsize=_FONT_SIZE - 2, color="0.25",
                 va="bottom")


def plot_comparison(
    tokens: Sequence[str],
    scores_by_method: Mapping[str, Tensor],
    *,
    title: Optional[str] = None,
    target: Optional[ClassLabel] = None,
    prediction: Optional[ClassLabel] = None,
    probability: Optional[float] = None,
    width: float = 8.0,
    unsigned_methods: Collection[str] = (),
    ground_truth: Optional[GroundTruthMarks] = None,
) -> "Figure":
    """A figure comparing several methods on one sentence: one row (one axes) per method, in the mapping's order.

    Each row is normalized on its own (by its largest absolute score, given at the row's right). The figure's
    heading holds ``title`` and whichever of target, prediction and probability are given; the footer draws the
    colour scales in use and explains the ground-truth marks when there are any.

    Args:
        tokens: the words, in order.
        scores_by_method: per-token scores by method name; each method's name titles its row.
        title: the figure's title.
        target: the class the attributions explain.
        prediction: the model's predicted class.
        probability: the predicted class's probability.
        width: the figure's width in inches (it sets the wrapping); the height fits the rows.
        unsigned_methods: the methods whose scores are magnitudes without a sign (e.g. Saliency's ℓ2 norm), drawn
            on the sequential scale.
        ground_truth: rings decisive words and underlines negation spans in every row.

    Returns:
        The figure; ``fig.axes`` holds one axes per method.

    Shape:
        - each score tensor: :math:`(T,)` with :math:`T` = ``len(tokens)``.

    Raises:
        TypeError: if ``tokens`` is a single string.
        ValueError: if ``scores_by_method`` is empty, a score tensor has the wrong shape, an unsigned method has a
            negative score, ``unsigned_methods`` names a method not in ``scores_by_method``, ``ground_truth`` covers
            another number of tokens, or ``width`` is not positive.

    Examples:
        >>> import torch
        >>> fig = plot_comparison(["a", "b"], {"x": torch.ones(2), "y": -torch.ones(2)}, target="pos")
        >>> len(fig.axes)
        2
    """
    from matplotlib.figure import Figure

    if not scores_by_method:
        raise ValueError("Expected at least one method in `scores_by_method`, but got an empty mapping")
    if not width > 0:
        raise ValueError(f"Expected `width` > 0 inches, but got {width}")
    unknown = [name for name in unsigned_methods if name not in scores_by_method]
    if unknown:
        raise ValueError(f"`unsigned_methods` names methods not in `scores_by_method`: {unknown}; expected some of "
                         f"{list(scores_by_method)}")
    signed = {method: method not in unsigned_methods for method in scores_by_method}
    for method, scores in scores_by_method.items():
        _check_scores(tokens, scores, f"scores_by_method[{method!r}]", signed[method], ground_truth)

    heading = [title] if title is not None else []
    context = [
        f"{name}: {value}" for name, value in [("target", target), ("prediction", prediction)] if value is not None
    ]
    if probability is not None:
        context.append(f"p = {probability:.2f}")
    if context:
        heading.append(", ".join(context))
    footer = _footer_lines(any(signed.values()), not all(signed.values()), ground_truth is not None)

    margin_in = 0.1
    columns = _columns(width * 0.96)
    lines = _lines(tokens, columns)
    row_in = lines * _LINE_HEIGHT_IN + _TITLE_HEIGHT_IN
    heading_in = 0.3 * len(heading)
    footer_in = 0.12 + _FOOTER_LINE_IN * len(footer)
    height_in = margin_in + heading_in + len(scores_by_method) * row_in + footer_in
    fig = Figure(figsize=(width, height_in))
    for row, (method, scores) in enumerate(scores_by_method.items()):
        top_in = margin_in + heading_in + row * row_in + _TITLE_HEIGHT_IN
        bottom = 1 - (top_in + lines * _LINE_HEIGHT_IN) / height_in
        ax = fig.add_axes((0.02, bottom, 0.96, lines * _LINE_HEIGHT_IN / height_in))
        _draw(ax, tokens, scores, columns, method, signed[method], ground_truth)
    for i, text in enumerate(heading):
        bold = i == 0 and title is not None
        fig.text(
            0.02, 1 - (margin_in + 0.3 * i) / height_in, text, va="top", fontsize=_FONT_SIZE + (2 if bold else 0),
            weight="bold" if bold else "normal", parse_math=False,
        )
    _draw_footer(fig, footer, width, height_in)
    return fig


def save_png(
    fig: "Figure",
    path: Union[str, "os.PathLike[str]"],
    metadata: Optional[Union[Mapping[str, str], Provenance]] = None,
    dpi: float = 100.0,
) -> Path:
    """Save ``fig`` as a PNG, with ``metadata`` in its text chunks; missing parent directories are created.

    Args:
        fig: the figure.
        path: the file to write.
        metadata: PNG text chunks (keys such as ``"Title"``, ``"Description"``), or a
            :class:`~captum_text_ext.provenance.Provenance`, stored via
            :func:`~captum_text_ext.provenance.png_metadata` so the image carries how it was made.
        dpi: the resolution in dots per inch.

    Returns:
        The path written.

    Examples:
        >>> import tempfile, torch
        >>> from matplotlib.image import imread
        >>> ax = plot_token_heatmap(["hi"], torch.ones(1))
        >>> out = save_png(ax.figure, Path(tempfile.mkdtemp()) / "hi.png")
        >>> imread(out).shape[2]
        4
    """
    chunks = png_metadata(metadata) if isinstance(metadata, Provenance) else dict(metadata or {})
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=dpi, metadata=chunks)
    return out

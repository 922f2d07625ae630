"""Matplotlib heatmaps of per-token attributions, on the colour scale of :mod:`captum_text_ext.visualization.html`.

Tokens are drawn as coloured boxes that wrap onto new lines: red supports the target, blue speaks against it, white
is 0, and scores are normalized per sentence (per row) by their largest absolute value (Arras et al., 2017, Fig. 2).
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
from typing import TYPE_CHECKING, List, Mapping, Optional, Sequence, Tuple, Union

from torch import Tensor

from captum_text_ext.provenance import Provenance, png_metadata
from captum_text_ext.visualization.html import ClassLabel, _rgb, normalize_scores

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


def _check_scores(tokens: Sequence[str], scores: Tensor, name: str) -> None:
    if isinstance(tokens, str):
        raise TypeError("Expected `tokens` to be a sequence of strings, but got a single str")
    if tuple(scores.shape) != (len(tokens),):
        raise ValueError(
            f"Expected `{name}` of shape (T,) with T = len(tokens) = {len(tokens)}, but got {tuple(scores.shape)}"
        )


def _draw(ax: "Axes", tokens: Sequence[str], scores: Tensor, columns: int, title: Optional[str]) -> None:
    """Draw the boxes into ``ax`` (axis off, y pointing down, one unit per character and per line) and the title."""
    from matplotlib.patches import Rectangle

    normalized = normalize_scores(scores.detach().double().cpu())
    placed = _layout(tokens, columns)
    right = max([columns] + [x + width for x, _, width in placed])
    for token, value, (x, line, width) in zip(tokens, normalized.tolist(), placed):
        colour = tuple(channel / 255 for channel in _rgb(value))
        ax.add_patch(Rectangle((x, line + 0.12), width, 0.76, facecolor=colour, edgecolor="0.75", linewidth=0.5))
        ax.text(
            x + width / 2, line + 0.5, token, ha="center", va="center", family="monospace", fontsize=_FONT_SIZE,
            parse_math=False,
        )
    ax.set_xlim(0, right)
    ax.set_ylim(_lines(tokens, columns), 0)
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title, loc="left", fontsize=_FONT_SIZE + 1, parse_math=False)


def plot_token_heatmap(
    tokens: Sequence[str], scores: Tensor, ax: Optional["Axes"] = None, title: Optional[str] = None
) -> "Axes":
    """Draw one sentence as coloured token boxes that wrap at the axes' width.

    Args:
        tokens: the words, in order.
        scores: one score per token; normalized by the largest absolute value before colouring.
        ax: the axes to draw into (its current width sets the wrapping); default: a new 8-inch-wide
            :class:`~matplotlib.figure.Figure` whose height fits the wrapped lines.
        title: the axes title (drawn as plain text).

    Returns:
        The axes drawn into (``ax.figure`` is its figure); one :class:`~matplotlib.patches.Rectangle` and one text
        per token, in order.

    Shape:
        - scores: :math:`(T,)` with :math:`T` = ``len(tokens)``.

    Raises:
        TypeError: if ``tokens`` is a single string.
        ValueError: if ``scores`` does not have shape ``(len(tokens),)``.

    Examples:
        >>> import torch
        >>> ax = plot_token_heatmap(["not", "bad"], torch.tensor([-1.0, 0.5]), title="IG")
        >>> len(ax.patches), ax.get_title(loc="left")
        (2, 'IG')
    """
    _check_scores(tokens, scores, "scores")
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
    _draw(ax, tokens, scores, columns, title)
    return ax


def plot_comparison(
    tokens: Sequence[str],
    scores_by_method: Mapping[str, Tensor],
    *,
    title: Optional[str] = None,
    target: Optional[ClassLabel] = None,
    prediction: Optional[ClassLabel] = None,
    probability: Optional[float] = None,
    width: float = 8.0,
) -> "Figure":
    """A figure comparing several methods on one sentence: one row (one axes) per method, in the mapping's order.

    Each row is normalized on its own (by its largest absolute score). The figure's heading holds ``title`` and
    whichever of target, prediction and probability are given; a footnote explains the colours.

    Args:
        tokens: the words, in order.
        scores_by_method: per-token scores by method name; each method's name titles its row.
        title: the figure's title.
        target: the class the attributions explain.
        prediction: the model's predicted class.
        probability: the predicted class's probability.
        width: the figure's width in inches (it sets the wrapping); the height fits the rows.

    Returns:
        The figure; ``fig.axes`` holds one axes per method.

    Shape:
        - each score tensor: :math:`(T,)` with :math:`T` = ``len(tokens)``.

    Raises:
        TypeError: if ``tokens`` is a single string.
        ValueError: if ``scores_by_method`` is empty, a score tensor has the wrong shape, or ``width`` is not
            positive.

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
    for method, scores in scores_by_method.items():
        _check_scores(tokens, scores, f"scores_by_method[{method!r}]")

    heading = [title] if title is not None else []
    context = [
        f"{name}: {value}" for name, value in [("target", target), ("prediction", prediction)] if value is not None
    ]
    if probability is not None:
        context.append(f"p = {probability:.2f}")
    if context:
        heading.append(", ".join(context))

    margin_in = 0.1
    columns = _columns(width * 0.96)
    lines = _lines(tokens, columns)
    row_in = lines * _LINE_HEIGHT_IN + _TITLE_HEIGHT_IN
    heading_in = 0.3 * len(heading)
    footnote_in = 0.3
    height_in = margin_in + heading_in + len(scores_by_method) * row_in + footnote_in
    fig = Figure(figsize=(width, height_in))
    for row, (method, scores) in enumerate(scores_by_method.items()):
        top_in = margin_in + heading_in + row * row_in + _TITLE_HEIGHT_IN
        bottom = 1 - (top_in + lines * _LINE_HEIGHT_IN) / height_in
        ax = fig.add_axes((0.02, bottom, 0.96, lines * _LINE_HEIGHT_IN / height_in))
        _draw(ax, tokens, scores, columns, method)
    for i, text in enumerate(heading):
        bold = i == 0 and title is not None
        fig.text(
            0.02, 1 - (margin_in + 0.3 * i) / height_in, text, va="top", fontsize=_FONT_SIZE + (2 if bold else 0),
            weight="bold" if bold else "normal", parse_math=False,
        )
    fig.text(
        0.02, 0.1 / height_in, "red: supports the target, blue: against; each row normalized by its largest |score|",
        fontsize=_FONT_SIZE - 2, color="0.4", va="bottom",
    )
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

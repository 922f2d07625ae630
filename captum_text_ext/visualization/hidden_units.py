"""Figures of :class:`~captum_text_ext.HiddenUnitOptimization` results, as Yuan et al. (2019) draw them (Figures 2–5):
the sentence with the receptive fields of the top locations boxed in red, blue and green over a heatmap of the
locations' saliency, and a 2-D map (PCA, scikit-learn) of the neighbour words with a "target word" marker per location;
and the same as a self-contained HTML view."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, List, Optional, Sequence

import numpy as np
import torch

from captum_text_ext.attr.hidden_unit_optimization import HiddenUnitOptimizationResult
from captum_text_ext.visualization.html import html_page

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["LOCATION_COLOURS", "hidden_units_html", "plot_hidden_units"]

LOCATION_COLOURS = ("#d62728", "#1f77b4", "#2ca02c")
"""Red, blue and green for the first, second and third location (the paper's colours)."""


def _colour(rank: int) -> str:
    return LOCATION_COLOURS[rank % len(LOCATION_COLOURS)]


def plot_hidden_units(
    result: HiddenUnitOptimizationResult,
    example: int,
    tokens: Sequence[str],
    embedding_weight: torch.Tensor,
    title: Optional[str] = None,
) -> "Figure":
    """Figure 2 of Yuan et al. for one example: the neighbour map above, the sentence and its location saliency
    below.

    Args:
        result: what :meth:`~captum_text_ext.HiddenUnitOptimization.optimize` returned.
        example: the example's index in the batch.
        tokens: its tokens (padding excluded).
        embedding_weight: :math:`(V, E)` the embedding matrix the neighbours come from.
        title: the figure title.

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: when the example has no optimized location.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from sklearn.decomposition import PCA

    items = result.items_of(example)
    if not items:
        raise ValueError(f"Expected example {example} to have optimized locations, but it has none")
    width = max(8.0, 0.42 * len(tokens) + 1.5)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(width, 7.0), gridspec_kw={"height_ratios": [3, 1.4]})
    ids = [i for b in items for i in result.neighbors.ids[b].tolist()]
    words = np.concatenate([embedding_weight.detach().double().cpu()[ids].numpy(),
                            result.x_overall[items].detach().double().cpu().numpy()])
    words = words / np.linalg.norm(words, axis=1, keepdims=True).clip(min=1e-12)  # cosine geometry
    points = PCA(n_components=2, random_state=0).fit_transform(words)
    k = result.neighbors.ids.shape[1]
    for r, b in enumerate(items):
        colour = _colour(int(result.rank[b]))
        block = points[r * k : (r + 1) * k]
        target = points[len(ids) + r]
        top.scatter(block[:, 0], block[:, 1], color=colour, s=18)
        for (x, y), word in zip(block, result.neighbors.words[b]):
            top.annotate(word, (x, y), fontsize=9, color=colour, xytext=(3, 3), textcoords="offset points")
        top.scatter([target[0]], [target[1]], color=colour, marker="*", s=160, edgecolor="black")
        top.annotate(f"target word {r + 1}", target, fontsize=9, weight="bold", color=colour, xytext=(4, -10),
                     textcoords="offset points")
    top.set_xticks([])
    top.set_yticks([])
    top.set_title("nearest words of each location's x_overall (PCA of unit-length embeddings)", fontsize=9)

    saliency = result.saliency[example].detach().double().cpu()
    fields = result.receptive_fields.cpu()
    real = fields[:, 1] <= len(tokens)
    scale = float(saliency[real].abs().max()) if bool(real.any()) else 1.0
    for i in torch.nonzero(real).flatten().tolist():
        start, end = fields[i].tolist()
        value = float(saliency[i]) / (scale or 1.0)
        cmap = plt.get_cmap("bwr")
        bottom.add_patch(Rectangle(((start + end) / 2 - 0.5, 0.0), 1.0, 0.8, color=cmap(0.5 + value / 2)))
    for position, token in enumerate(tokens):
        bottom.text(position, 1.5, token, rotation=60, ha="left", va="bottom", fontsize=9)
    for b in items:
        start, end = fields[int(result.location[b])].tolist()
        colour = _colour(int(result.rank[b]))
        offset = 0.06 * int(result.rank[b])
        bottom.add_patch(Rectangle((start - 0.5 + offset, 1.0 + offset), end - start - 2 * offset, 0.45, fill=False,
                                   edgecolor=colour, linewidth=2))
        centre = (start + end) / 2 - 0.5
        bottom.add_patch(Rectangle((centre, 0.0), 1.0, 0.8, fill=False, edgecolor=colour, linewidth=2))
    bottom.set_xlim(-1, len(tokens) + 1)
    bottom.set_ylim(-0.2, 4.0)
    bottom.axis("off")
    bottom.set_title("location saliency (red: supports the class, blue: against; each cell under its receptive "
                     "field's centre) and the top receptive fields boxed", fontsize=9)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def hidden_units_html(
    result: HiddenUnitOptimizationResult,
    examples: Sequence[int],
    tokens: Sequence[Sequence[str]],
    titles: Sequence[str],
    page_title: str = "Hidden unit interpretations",
) -> str:
    """A self-contained HTML page: per example, its sentence with the top receptive fields marked, and each
    location's saliency and nearest words with their cosine similarities. Every word is HTML-escaped.

    Args:
        result: what :meth:`~captum_text_ext.HiddenUnitOptimization.optimize` returned.
        examples: the examples to show.
        tokens: the tokens of each shown example.
        titles: a heading per shown example.
        page_title: the page title.
    """
    sections: List[str] = []
    for example, words, heading in zip(examples, tokens, titles):
        items = result.items_of(example)
        marks = [""] * len(words)
        for b in reversed(items):
            start, end = result.receptive_fields[int(result.location[b])].tolist()
            for position in range(start, min(end, len(words))):
                marks[position] = _colour(int(result.rank[b]))
        sentence = " ".join(
            f'<span style="border-bottom:3px solid {m}">{html.escape(w)}</span>' if m else html.escape(w)
            for w, m in zip(words, marks)
        )
        rows = []
        for b in items:
            start, end = result.receptive_fields[int(result.location[b])].tolist()
            field = html.escape(" ".join(words[start:end]))
            neighbours = ", ".join(f"{html.escape(w)} ({s:.2f})" for w, s in
                                   zip(result.neighbors.words[b], result.neighbors.scores[b].tolist()))
            rows.append(
                f'<tr><td style="color:{_colour(int(result.rank[b]))}">{int(result.rank[b]) + 1}</td>'
                f"<td>{int(result.location[b])}</td><td>{float(result.saliency[example, result.location[b]]):.3f}</td>"
                f"<td>{field}</td><td>{neighbours}</td></tr>"
            )
        sections.append(
            f"<h2>{html.escape(heading)}</h2><p>{sentence}</p><table><tr><th>rank</th><th>location</th>"
            f"<th>saliency</th><th>receptive field</th><th>nearest words (cosine)</th></tr>{''.join(rows)}</table>"
        )
    style = "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}"
    return html_page(page_title, "\n".join(sections), legend=False, extra_style=style)

"""Self-contained HTML heatmaps: red supports the target class, blue speaks against it.

Scores are normalized per sentence by their largest absolute value, as in Arras et al. (2017), Fig. 2, so colour
intensity compares words within a sentence, never across sentences. Every token is HTML-escaped (Captum's
``visualize_text`` does not escape words, captum #1226), and no IPython is needed.
"""

from __future__ import annotations

import html
from typing import Optional, Sequence

import torch
from torch import Tensor

LEGEND = (
    '<div class="legend">Legend: <span style="background:rgb(255,80,80)">supports the target</span> '
    '<span style="background:rgb(240,240,240)">neutral</span> '
    '<span style="background:rgb(80,120,255)">against the target</span></div>'
)

_STYLE = """
body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
td, th { padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
.tok { padding: 1px 3px; margin: 0 1px; border-radius: 3px; display: inline-block; }
.legend span { padding: 2px 6px; margin-right: 4px; }
"""


def normalize_scores(scores: Tensor) -> Tensor:
    """Divide per-token scores by their largest absolute value (all zeros stay zeros); values land in [-1, 1].

    Shape:
        - scores: :math:`(T,)`.
    """
    if scores.dim() != 1:
        raise ValueError(f"Expected per-token scores of shape (T,), but got {tuple(scores.shape)}")
    top = scores.abs().max() if scores.numel() else torch.tensor(0.0)
    return scores / top if float(top) > 0 else torch.zeros_like(scores)


def _colour(value: float) -> str:
    """White for 0, red for +1, blue for -1 (linear in between)."""
    strength = min(abs(value), 1.0)
    fade = int(round(255 * (1 - strength)))
    return f"rgb(255,{fade},{fade})" if value >= 0 else f"rgb({fade},{fade},255)"


def heatmap_row_html(tokens: Sequence[str], scores: Tensor) -> str:
    """One sentence as coloured, escaped tokens; each token's tooltip shows its raw score.

    Args:
        tokens: the words, in order.
        scores: their per-token scores, shape :math:`(T,)` with :math:`T` = ``len(tokens)``.
    """
    if len(tokens) != scores.numel():
        raise ValueError(f"Expected one score per token ({len(tokens)}), but got {scores.numel()} scores")
    normalized = normalize_scores(scores.detach().double().cpu())
    spans = [
        f'<span class="tok" style="background:{_colour(float(v))}" title="{float(raw):+.4g}">{html.escape(tok)}</span>'
        for tok, v, raw in zip(tokens, normalized, scores.detach().double().cpu())
    ]
    return " ".join(spans)


def html_page(title: str, body: str, legend: bool = True, extra_style: Optional[str] = None) -> str:
    """A complete HTML document with the heatmap styles and an optional legend."""
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}{extra_style or ''}</style></head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
        f"{LEGEND if legend else ''}\n{body}\n</body></html>\n"
    )

"""Per-token heatmaps of attributions: self-contained HTML pages, matplotlib figures and Captum records.

Signed scores are drawn on a diverging scale (red supports the target class, blue speaks against it), unsigned ones
(Saliency's ℓ2 norm) on a sequential one; scores are normalized per row by their largest absolute value, and token
text is black or white, whichever contrasts more (WCAG AA). Everything user-provided is HTML-escaped, and nothing
needs IPython.
"""

from captum_text_ext.records import ClassLabel, GroundTruthMarks, TextAttribution
from captum_text_ext.visualization.captum_interop import to_visualization_record
from captum_text_ext.visualization.hidden_units import hidden_units_html, plot_hidden_units
from captum_text_ext.visualization.contrast import contrast_ratio, text_rgb
from captum_text_ext.visualization.html import (
    DIVERGING_COLOURMAP,
    SEQUENTIAL_COLOURMAP,
    comparison_html,
    comparison_records,
    heatmap_row_html,
    html_page,
    legend_html,
    normalize_scores,
    render_html,
    save_html,
)
from captum_text_ext.visualization.plot import plot_comparison, plot_token_heatmap, save_png

__all__ = [
    "DIVERGING_COLOURMAP",
    "SEQUENTIAL_COLOURMAP",
    "ClassLabel",
    "GroundTruthMarks",
    "TextAttribution",
    "comparison_html",
    "comparison_records",
    "contrast_ratio",
    "heatmap_row_html",
    "hidden_units_html",
    "html_page",
    "legend_html",
    "normalize_scores",
    "plot_comparison",
    "plot_hidden_units",
    "plot_token_heatmap",
    "render_html",
    "save_html",
    "save_png",
    "text_rgb",
    "to_visualization_record",
]

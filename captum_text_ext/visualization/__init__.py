"""Per-token heatmaps of attributions: self-contained HTML pages, matplotlib figures and Captum records.

Red supports the target class, blue speaks against it; scores are normalized per sentence by their largest absolute
value. Everything user-provided is HTML-escaped, and nothing needs IPython.
"""

from captum_text_ext.visualization.captum_interop import to_visualization_record
from captum_text_ext.visualization.hidden_units import hidden_units_html, plot_hidden_units
from captum_text_ext.visualization.html import (
    ClassLabel,
    TextAttribution,
    comparison_html,
    comparison_records,
    heatmap_row_html,
    html_page,
    normalize_scores,
    render_html,
    save_html,
)
from captum_text_ext.visualization.plot import plot_comparison, plot_token_heatmap, save_png

__all__ = [
    "ClassLabel",
    "TextAttribution",
    "comparison_html",
    "comparison_records",
    "heatmap_row_html",
    "hidden_units_html",
    "html_page",
    "normalize_scores",
    "plot_comparison",
    "plot_hidden_units",
    "plot_token_heatmap",
    "render_html",
    "save_html",
    "save_png",
    "to_visualization_record",
]

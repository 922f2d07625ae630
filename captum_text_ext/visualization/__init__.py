"""Per-token heatmaps of attributions."""

from captum_text_ext.visualization.html import heatmap_row_html, html_page, normalize_scores

__all__ = ["heatmap_row_html", "html_page", "normalize_scores"]

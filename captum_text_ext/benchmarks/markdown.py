"""Words in the Markdown tables of the results files."""

from __future__ import annotations

from typing import Any, Mapping, Optional

__all__ = ["markdown_cell", "summary_cell"]


def markdown_cell(text: str) -> str:
    """Escape a word for a Markdown table cell (the escapes also hold in reStructuredText).

    Backslash, backtick, asterisk, underscore and pipe are escaped anywhere, and a leading ``-``, ``+`` or ``#``.

    Examples:
        >>> markdown_cell("-") + " " + markdown_cell("a_b|``")
        '\\\\- a\\\\_b\\\\|\\\\`\\\\`'
    """
    escaped = "".join("\\" + char if char in "\\`*_|" else char for char in text)
    return "\\" + escaped if escaped[:1] in ("-", "+", "#") else escaped


def summary_cell(cell: Optional[Mapping[str, Any]]) -> str:
    """A cell of :func:`~captum_text_ext.benchmarks.statistics.compare_methods` as ``mean [low, high]``: in bold for
    the best method, with ``†`` when it differs from the best; ``n/a`` for no cell.

    Examples:
        >>> summary_cell({"mean": 0.5, "low": 0.4, "high": 0.6, "best": False, "differs": True})
        '0.500 [0.400, 0.600] †'
    """
    if cell is None:
        return "n/a"
    text = f"{cell['mean']:.3f} [{cell['low']:.3f}, {cell['high']:.3f}]"
    if cell["best"]:
        return f"**{text}**"
    return text + (" †" if cell["differs"] else "")

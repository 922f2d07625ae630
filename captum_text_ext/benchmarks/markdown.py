"""Words in the Markdown tables of the results files."""

from __future__ import annotations

__all__ = ["markdown_cell"]


def markdown_cell(text: str) -> str:
    """Escape a word for a Markdown table cell (the escapes also hold in reStructuredText).

    Backslash, backtick, asterisk, underscore and pipe are escaped anywhere, and a leading ``-``, ``+`` or ``#``.

    Examples:
        >>> markdown_cell("-") + " " + markdown_cell("a_b|``")
        '\\\\- a\\\\_b\\\\|\\\\`\\\\`'
    """
    escaped = "".join("\\" + char if char in "\\`*_|" else char for char in text)
    return "\\" + escaped if escaped[:1] in ("-", "+", "#") else escaped

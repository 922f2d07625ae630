r"""Text colours that stay readable on every heatmap colour: WCAG 2 contrast.

The contrast ratio of two colours is :math:`(L_1 + 0.05) / (L_2 + 0.05)`, where :math:`L_1 \ge L_2` are their
relative luminances :math:`L = 0.2126 R + 0.7152 G + 0.0722 B` over the linearized sRGB channels
(:math:`c / 12.92` for :math:`c \le 0.04045`, else :math:`((c + 0.055) / 1.055)^{2.4}`). WCAG level AA asks for at
least 4.5 for normal text. Black or white always reaches it: their ratios with a background multiply to
:math:`1.05 / 0.05 = 21`, so the better of the two is at least :math:`\sqrt{21} \approx 4.58`. :func:`text_rgb` picks
that one for each token.

References:
    W3C (2023). Web Content Accessibility Guidelines (WCAG) 2.2, success criterion 1.4.3 (Contrast, Minimum) and the
    definitions of *contrast ratio* and *relative luminance*.

Examples:
    >>> text_rgb((255, 255, 255)), text_rgb((0, 0, 128))
    ((0, 0, 0), (255, 255, 255))
    >>> round(contrast_ratio((0, 0, 0), (255, 255, 255)), 1)
    21.0
"""

from __future__ import annotations

from typing import Tuple

__all__ = ["AA_NORMAL_TEXT", "RGB", "contrast_ratio", "relative_luminance", "text_rgb"]

RGB = Tuple[int, int, int]
"""A colour as 0-255 sRGB channels."""
AA_NORMAL_TEXT = 4.5
"""The least contrast ratio WCAG 2 level AA accepts for normal text."""
_BLACK: RGB = (0, 0, 0)
_WHITE: RGB = (255, 255, 255)


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def relative_luminance(rgb: RGB) -> float:
    """The WCAG relative luminance of an sRGB colour, in [0, 1] (0 for black, 1 for white).

    Raises:
        ValueError: for a channel outside 0-255.
    """
    if any(not 0 <= channel <= 255 for channel in rgb):
        raise ValueError(f"Expected sRGB channels in [0, 255], but got {rgb}")
    red, green, blue = (_linear(channel) for channel in rgb)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast_ratio(first: RGB, second: RGB) -> float:
    """The WCAG contrast ratio of two colours, from 1 (equal luminance) to 21 (black on white); symmetric."""
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def text_rgb(background: RGB) -> RGB:
    """Black or white, whichever contrasts more with ``background`` (always at least 4.58:1, see the module)."""
    return max((_BLACK, _WHITE), key=lambda text: contrast_ratio(text, background))

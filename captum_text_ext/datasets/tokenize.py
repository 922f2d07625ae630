"""Kim (2014)'s regex tokenizer, the ``clean_str`` of CNN_sentence that Yuan et al. also use."""

from __future__ import annotations

import re
from typing import List

__all__ = ["kim_tokenize"]

_DISALLOWED = re.compile(r"[^A-Za-z0-9(),!?'`]")
_CONTRACTION = re.compile(r"('s|'ve|n't|'re|'d|'ll)")
_PUNCTUATION = re.compile(r"([,!()?])")


def kim_tokenize(text: str, lower: bool = False) -> List[str]:
    """Split ``text`` into tokens with the rules of Kim (2014)'s ``clean_str``.

    The rules, applied in this order:

    1. Every character other than ASCII letters, digits, parentheses, comma, ``!``, ``?``, apostrophe and backtick
       becomes a space. Accented and other non-ASCII letters are removed too (``"café"`` gives ``"caf"``), as in
       the original.
    2. The contractions ``'s``, ``'ve``, ``n't``, ``'re``, ``'d`` and ``'ll`` are split off the word before them
       (``"don't"`` gives ``"do n't"``). The match is case-sensitive, as in the original, where lowercasing comes
       last: ``"DON'T"`` is not split.
    3. ``,``, ``!``, ``(``, ``)`` and ``?`` become tokens of their own. (The original's replacement strings leave a
       backslash in front of the last three, producing ``\\(``, ``\\)`` and ``\\?``; here they are plain.)
    4. Runs of whitespace collapse and the text is split on them.
    5. If ``lower`` is true, tokens are lowercased.

    Case is kept by default because Yuan et al. keep it; the original lowercased everything except for TREC.

    Args:
        text: the text to tokenize.
        lower: lowercase the tokens.

    Returns:
        The tokens; an empty list when nothing survives rule 1.
    """
    cleaned = _DISALLOWED.sub(" ", text)
    cleaned = _CONTRACTION.sub(r" \1", cleaned)
    cleaned = _PUNCTUATION.sub(r" \1 ", cleaned)
    if lower:
        cleaned = cleaned.lower()
    return cleaned.split()

"""Kim (2014)'s regex tokenizer, the ``clean_str`` of CNN_sentence that Yuan et al. also use, keeping accented
letters."""

from __future__ import annotations

import re
import unicodedata
from typing import List

__all__ = ["kim_tokenize"]

_DISALLOWED = re.compile(r"[^\w(),!?'`]|_")
_DISALLOWED_ASCII = re.compile(r"[^A-Za-z0-9(),!?'`]")
_CONTRACTION = re.compile(r"('s|'ve|n't|'re|'d|'ll)")
_PUNCTUATION = re.compile(r"([,!()?])")


def kim_tokenize(text: str, lower: bool = False, ascii_only: bool = False) -> List[str]:
    """Split ``text`` into tokens with the rules of Kim (2014)'s ``clean_str``, letters of every script kept.

    The rules, applied in this order:

    1. The text is put in Unicode normal form C (a letter and its combining accent become one character), then every
       character other than letters (accented and non-Latin ones included), digits, parentheses, comma, ``!``,
       ``?``, apostrophe and backtick becomes a space: ``"clichés"`` stays one token. The original keeps ASCII
       letters only (``"clichés"`` gives ``"clich"`` and ``"s"``); ``ascii_only=True`` does the same.
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
        ascii_only: remove every non-ASCII character in rule 1, as the original does.

    Returns:
        The tokens; an empty list when nothing survives rule 1.
    """
    disallowed = _DISALLOWED_ASCII if ascii_only else _DISALLOWED
    cleaned = disallowed.sub(" ", unicodedata.normalize("NFC", text))
    cleaned = _CONTRACTION.sub(r" \1", cleaned)
    cleaned = _PUNCTUATION.sub(r" \1 ", cleaned)
    if lower:
        cleaned = cleaned.lower()
    return cleaned.split()

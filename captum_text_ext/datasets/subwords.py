"""Subword-tokenized batches and per-word scores.

A subword tokenizer (WordPiece, BPE) splits a word into one or more tokens and adds special tokens (``[CLS]``,
``[SEP]``, ``<s>``) that belong to no word. An attribution method scores every subword; a reader wants one score per
word. :func:`aggregate_subword_scores` sums each word's subword scores, using the word index of every subword that
the ``tokenizers`` library reports (``Encoding.word_ids``; ``BatchEncoding.word_ids(i)`` in ``transformers``), with
special tokens and padding left out.

Nothing here imports ``tokenizers`` or ``transformers``.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence

import torch
from torch import Tensor

NO_WORD = -1
"""The word id of a token that belongs to no word: special tokens and padding."""


class SubwordBatch(NamedTuple):
    """Subword-tokenized sentences, right-padded.

    Shape:
        - token_ids: ``(N, T)`` int64, padded with the tokenizer's pad id.
        - attention_mask: ``(N, T)`` int64, 1 at real tokens (special tokens included), 0 at padding: the mask
          Hugging Face models take.
        - word_ids: ``(N, T)`` int64, the index (0-based, within its sentence) of the word each token belongs to;
          :data:`NO_WORD` at special tokens and padding.
        - lengths: ``(N,)`` int64, real tokens per sentence (special tokens included).
        - tokens: the subword strings of every sentence, without padding (special tokens included).
    """

    token_ids: Tensor
    attention_mask: Tensor
    word_ids: Tensor
    lengths: Tensor
    tokens: List[List[str]]


def word_ids_tensor(word_ids: Sequence[Sequence[Optional[int]]], width: Optional[int] = None) -> Tensor:
    """The ``(N, T)`` int64 word ids of tokenized sentences, with :data:`NO_WORD` for ``None`` and padding.

    Args:
        word_ids: one list per sentence, as ``tokenizers`` gives them (``None`` at special tokens).
        width: ``T``; default the longest list.

    Raises:
        ValueError: when a list is longer than ``width``, or holds a negative id.

    Examples:
        >>> word_ids_tensor([[None, 0, 0, 1, None], [None, 0, None]]).tolist()
        [[-1, 0, 0, 1, -1], [-1, 0, -1, -1, -1]]
    """
    longest = max((len(ids) for ids in word_ids), default=0)
    width = longest if width is None else width
    if longest > width:
        raise ValueError(f"Expected at most `width`={width} word ids per sentence, but a sentence has {longest}")
    out = torch.full((len(word_ids), width), NO_WORD, dtype=torch.long)
    for row, ids in enumerate(word_ids):
        if any(i is not None and i < 0 for i in ids):
            raise ValueError(f"Expected word ids >= 0 or None, but sentence {row} has {list(ids)}")
        values = [NO_WORD if i is None else i for i in ids]
        out[row, : len(values)] = torch.tensor(values, dtype=torch.long)
    return out


def aggregate_subword_scores(scores: Tensor, word_ids: Tensor) -> Tensor:
    """Per-word scores: the sum of the scores of each word's subwords.

    Special tokens and padding (word id :data:`NO_WORD`) are left out; their scores are not part of any word (read
    them from ``scores`` when a method's total matters, e.g. for conservation). Summing keeps additive attributions
    additive: the words' scores add up to the subwords' scores minus those of the special tokens.

    Args:
        scores: ``(N, T)`` or ``(N, T, *)`` per-subword scores (e.g. attributions summed over the embedding
            dimension).
        word_ids: ``(N, T)`` int64 word ids (:func:`word_ids_tensor` or :attr:`SubwordBatch.word_ids`).

    Returns:
        ``(N, W)`` or ``(N, W, *)``, ``W`` the most words of a sentence; a sentence with fewer words has zeros after
        its last word. Differentiable in ``scores``.

    Raises:
        ValueError: when the shapes disagree, or a sentence's word ids skip a word (its words must be numbered
            ``0, 1, …`` without gaps; a gap means the text was truncated or the ids belong to another batch).

    Examples:
        >>> scores = torch.tensor([[0.5, 1.0, 2.0, 4.0, 0.25], [0.5, 3.0, 0.25, 9.0, 9.0]])
        >>> aggregate_subword_scores(scores, word_ids_tensor([[None, 0, 0, 1, None], [None, 0, None]], width=5))
        tensor([[3., 4.],
                [3., 0.]])
    """
    if word_ids.dim() != 2 or scores.shape[:2] != word_ids.shape:
        raise ValueError(
            f"Expected `scores` of shape (N, T, ...) and `word_ids` of shape (N, T), but got {tuple(scores.shape)} "
            f"and {tuple(word_ids.shape)}"
        )
    is_word = word_ids != NO_WORD
    if bool((word_ids[is_word] < 0).any()):
        raise ValueError(f"Expected word ids >= 0 or {NO_WORD} (no word), but got {word_ids[is_word].min().item()}")
    for row in range(word_ids.shape[0]):
        present = torch.unique(word_ids[row][is_word[row]])
        if present.numel() and int(present[-1]) != present.numel() - 1:
            missing = sorted(set(range(int(present[-1]) + 1)) - set(present.tolist()))
            raise ValueError(
                f"Sentence {row} has no subword for word(s) {missing[:5]}: the word ids must number the words 0, 1, "
                "… without gaps (was the text truncated?)"
            )
    extra = scores.shape[2:]
    if not bool(is_word.any()):
        return scores.new_zeros((scores.shape[0], 0, *extra))
    mask = is_word.reshape(is_word.shape + (1,) * len(extra))
    index = word_ids.clamp(min=0).reshape(mask.shape).expand(scores.shape)
    summed = scores.new_zeros((scores.shape[0], int(word_ids.max()) + 1, *extra))
    return summed.scatter_add(1, index, torch.where(mask, scores, torch.zeros_like(scores)))


__all__ = ["NO_WORD", "SubwordBatch", "aggregate_subword_scores", "word_ids_tensor"]

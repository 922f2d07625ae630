r"""Word deletion (Arras et al., 2017, Sec. 5.1): how fast a model's accuracy changes when the words a relevance
method ranks first are deleted.

Sentences the intact model classifies correctly lose their words in decreasing order of relevance, the others in
increasing order; deleting a word sets its embedding to zero (the sentence keeps its length). Ties keep the reading
order (a stable sort).
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import Tensor

from captum_text_ext.benchmarks.sentences import Forward, Sentences, predict

__all__ = ["deletion_curves", "deletion_mask", "deletion_order"]


def deletion_order(relevance: Tensor, lengths: Tensor, descending: Tensor) -> Tensor:
    """The positions of each sentence's words in deletion order; positions past the sentence's end come last.

    Args:
        relevance: :math:`(N, T)` word relevance.
        lengths: :math:`(N,)` numbers of words.
        descending: :math:`(N,)` bool: True deletes the most relevant word first, False the least relevant.

    Returns:
        :math:`(N, T)` int64 positions; ties keep the reading order.

    Examples:
        >>> deletion_order(torch.tensor([[1.0, 3.0, 2.0, 0.0]] * 2), torch.tensor([3, 3]), torch.tensor([True, False]))
        tensor([[1, 2, 0, 3],
                [0, 2, 1, 3]])
    """
    key = torch.where(descending.unsqueeze(1), -relevance, relevance).double()
    padding = torch.arange(relevance.shape[1]).unsqueeze(0) >= lengths.unsqueeze(1)
    return torch.argsort(key.masked_fill(padding, math.inf), dim=1, stable=True)


def deletion_mask(order: Tensor, lengths: Tensor, count: int) -> Tensor:
    """The words deleted after ``count`` deletions: the first ``count`` positions of ``order`` (never past a
    sentence's end).

    Args:
        order: :math:`(N, T)` positions in deletion order (:func:`deletion_order`).
        lengths: :math:`(N,)` numbers of words.
        count: the number of deletions.

    Returns:
        :math:`(N, T)` bool, True at the deleted words.
    """
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[1]).expand_as(order).contiguous())
    positions = torch.arange(order.shape[1]).unsqueeze(0)
    return (ranks < count) & (positions < lengths.unsqueeze(1))


def deletion_curves(
    forward: Forward, sentences: Sentences, relevance: Tensor, max_deletions: int
) -> Tuple[Tensor, Tensor]:
    """Accuracy after 0..``max_deletions`` deletions guided by ``relevance`` (relevance for the true class).

    Sentences the intact model classifies correctly lose their words in decreasing order of relevance, the others in
    increasing order.

    Args:
        forward: the model on embeddings and lengths.
        sentences: the sentences.
        relevance: :math:`(N, T_{max})` word relevance for each sentence's true class.
        max_deletions: the most words deleted.

    Returns:
        ``(correct_side, misclassified_side)``, each :math:`(K + 1,)` float64: the accuracy on the initially
        correctly classified resp. misclassified sentences after :math:`k = 0..K` deletions (``nan`` for an empty
        side).
    """
    correct = predict(forward, sentences) == sentences.labels
    order = deletion_order(relevance, sentences.lengths, descending=correct)
    hits = []
    for count in range(max_deletions + 1):
        deleted = deletion_mask(order, sentences.lengths, count)
        hits.append(predict(forward, sentences, deleted) == sentences.labels)
    stacked = torch.stack(hits).double()
    return stacked[:, correct].mean(1), stacked[:, ~correct].mean(1)

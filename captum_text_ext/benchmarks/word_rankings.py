"""Representative words (Arras et al., 2017, Table 1): the words whose occurrences a relevance method scores
highest or lowest over a set of sentences.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Dict, List, Mapping, Sequence, Tuple

from torch import Tensor

__all__ = ["WordScore", "mean_relevance_words", "most_relevant_words"]


@dataclasses.dataclass(frozen=True)
class WordScore:
    """A ranked word.

    Attributes:
        word: the (lowercased) word.
        relevance: its most extreme occurrence's relevance (or its mean relevance, for the mean ranking).
        sentence: the sentence (0-based, in the set's order) of that occurrence (-1 for the mean ranking).
        count: how often the word occurs in the sentences.
        known: whether the model's vocabulary has the word (unknown words are read as ``<unk>``).
    """

    word: str
    relevance: float
    sentence: int
    count: int
    known: bool


def most_relevant_words(
    tokens: Sequence[Sequence[str]],
    relevance: Tensor,
    vocabulary: Mapping[str, int],
    count: int = 10,
    most: bool = True,
) -> List[WordScore]:
    """Rank word occurrences by relevance and keep the first ``count`` distinct words (the paper's Table 1).

    Args:
        tokens: the sentences' words.
        relevance: :math:`(N, T_{max})` word relevance.
        vocabulary: the model's token-to-id map (to flag unknown words).
        count: how many words.
        most: True for the most relevant (decreasing), False for the least relevant (increasing).

    Returns:
        The words, each with its most extreme occurrence (ties: the earlier sentence and position).
    """
    counts: Dict[str, int] = defaultdict(int)
    occurrences: List[Tuple[float, int, int, str]] = []
    for sentence, words in enumerate(tokens):
        for position, word in enumerate(words):
            counts[word] += 1
            value = float(relevance[sentence, position])
            occurrences.append((-value if most else value, sentence, position, word))
    occurrences.sort()
    chosen: List[WordScore] = []
    seen = set()
    for key, sentence, _, word in occurrences:
        if word not in seen:
            seen.add(word)
            chosen.append(WordScore(word, -key if most else key, sentence, counts[word], word in vocabulary))
            if len(chosen) == count:
                break
    return chosen


def mean_relevance_words(
    tokens: Sequence[Sequence[str]],
    relevance: Tensor,
    vocabulary: Mapping[str, int],
    count: int = 10,
    most: bool = True,
    *,
    min_count: int,
) -> List[WordScore]:
    """Rank words by their mean relevance over all their occurrences (words occurring at least ``min_count`` times).

    Args:
        tokens: the sentences' words.
        relevance: :math:`(N, T_{max})` word relevance.
        vocabulary: the model's token-to-id map (to flag unknown words).
        count: how many words.
        most: True for the highest means, False for the lowest.
        min_count: the fewest occurrences a ranked word has.

    Returns:
        The words (``sentence`` is -1); ties in alphabetical order.
    """
    totals: Dict[str, List[float]] = defaultdict(list)
    for sentence, words in enumerate(tokens):
        for position, word in enumerate(words):
            totals[word].append(float(relevance[sentence, position]))
    means = [(sum(values) / len(values), word, len(values)) for word, values in totals.items()
             if len(values) >= min_count]
    means.sort(key=lambda item: (-item[0] if most else item[0], item[1]))
    return [WordScore(word, mean, -1, n, word in vocabulary) for mean, word, n in means[:count]]

"""The word rankings of Table 1: occurrences ranked with distinct words kept, and mean relevance per word."""

from __future__ import annotations

import torch

from captum_text_ext.benchmarks.word_rankings import mean_relevance_words, most_relevant_words


def test_table1_ranks_occurrences_and_keeps_distinct_words() -> None:
    tokens = [("good", "bad", "good"), ("bad", "ok", "fine")]
    relevance = torch.tensor([[3.0, -1.0, 2.0], [-2.0, 0.5, 2.5]])
    vocab = {"good": 2, "bad": 3}
    most = most_relevant_words(tokens, relevance, vocab, count=3)
    assert [(w.word, w.relevance, w.sentence, w.count, w.known) for w in most] == [
        ("good", 3.0, 0, 2, True), ("fine", 2.5, 1, 1, False), ("ok", 0.5, 1, 1, False)]
    least = most_relevant_words(tokens, relevance, vocab, count=2, most=False)
    assert [(w.word, w.relevance) for w in least] == [("bad", -2.0), ("ok", 0.5)]
    means = mean_relevance_words(tokens, relevance, vocab, count=5, min_count=2)
    assert [(w.word, w.relevance, w.count) for w in means] == [("good", 2.5, 2), ("bad", -1.5, 2)]

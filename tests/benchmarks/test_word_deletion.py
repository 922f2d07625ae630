"""Word deletion: the order and mask stay inside each sentence, and the batched curves equal a per-sentence loop."""

from __future__ import annotations

from typing import Dict, List, Tuple

import pytest
import torch
from torch import Tensor

from captum_text_ext.benchmarks.sentences import embed_sentences
from captum_text_ext.benchmarks.word_deletion import deletion_curves, deletion_mask, deletion_order
from captum_text_ext.models import LSTMClassifier


def test_deletion_order_and_mask_never_touch_padding() -> None:
    relevance = torch.tensor([[0.5, -1.0, 2.0, 9.0], [1.0, 1.0, 1.0, 1.0]])
    lengths = torch.tensor([3, 4])
    order = deletion_order(relevance, lengths, torch.tensor([False, True]))
    assert order.tolist() == [[1, 0, 2, 3], [0, 1, 2, 3]]  # increasing resp. decreasing; ties in reading order
    assert deletion_mask(order, lengths, 2).tolist() == [[True, True, False, False], [True, True, False, False]]
    assert deletion_mask(order, lengths, 9).tolist() == [[True, True, True, False], [True] * 4]


def _per_sentence_curves(
    model: LSTMClassifier, ids: List[List[int]], labels: List[int], relevance: Tensor, deletions: int
) -> Tuple[List[float], List[float]]:
    """The experiment written the slow way: one sentence at a time, with Python's sort."""
    hits: Dict[bool, List[List[bool]]] = {True: [], False: []}
    with torch.no_grad():
        for n, (sentence, label) in enumerate(zip(ids, labels)):
            x = model.embedding(torch.tensor([sentence]))
            correct = int(model.forward_embeddings(x).argmax()) == label
            scores = relevance[n, : len(sentence)].tolist()
            order = sorted(range(len(sentence)), key=lambda t: -scores[t] if correct else scores[t])
            row = []
            for k in range(deletions + 1):
                keep = torch.ones(1, len(sentence), 1)
                keep[0, order[:k]] = 0.0
                row.append(int(model.forward_embeddings(x * keep).argmax()) == label)
            hits[correct].append(row)
    return tuple(torch.tensor(hits[side]).double().mean(0).tolist() for side in (True, False))  # type: ignore[return-value]


def test_batched_deletion_equals_a_per_sentence_loop() -> None:
    torch.manual_seed(1)
    model = LSTMClassifier(30, embedding_dim=5, hidden_size=4, num_classes=3).eval()
    generator = torch.Generator().manual_seed(2)
    ids = [torch.randint(2, 30, (int(n),), generator=generator).tolist()
           for n in torch.randint(3, 12, (23,), generator=generator)]
    with torch.no_grad():
        predicted = [int(model(torch.tensor([s])).argmax()) for s in ids]
    labels = [p if n % 3 else (p + 1) % 3 for n, p in enumerate(predicted)]
    sentences = embed_sentences(model.embedding, ids, labels, model.embedding.padding_idx, batch_size=4)
    relevance = torch.randn(len(ids), sentences.max_length, generator=generator, dtype=torch.float64)
    batched = deletion_curves(model.forward_embeddings, sentences, relevance, max_deletions=4)
    slow = _per_sentence_curves(model, ids, labels, relevance, 4)
    for ours, reference in zip(batched, slow):
        assert ours.tolist() == pytest.approx(reference, abs=1e-12)

r"""Test texts whose ground truth the model provably uses, and every method scored against it.

A :class:`Probe` holds texts, the class each is explained for (the model's prediction) and the words that are the
ground truth of each. Two kinds are built on a model's clean test sentences:

- :func:`reliance_probe` (planted tokens; Bastings et al., 2022): a sentence the planted model classifies correctly
  gets the *other* class's planted word (:mod:`captum_text_ext.datasets.planted`) at a seeded, uniformly random
  gap; it qualifies when the prediction flips to that class. Without the word the model predicts the other class,
  so on a qualifying sentence the word is what the prediction rests on: the ground truth is that one word.
- :func:`mosaic_probe` (textual mosaics; Mariotti et al., 2024): a positive and a negative test sentence joined, in
  a seeded random order. The half whose label is the model's prediction for the mosaic is the ground truth, when
  removing the other half (the model reads the agreeing half alone) keeps the prediction.

:func:`score_probe` explains every text with every method and scores its per-word ranking against the truth
(:mod:`captum_text_ext.metrics.ground_truth`): ``top1``, ``rank`` (of the best-ranked truth word), ``P@k`` (precision
at :math:`k` = the number of truth words) and ``AUPRC``, ranking the words by their signed score toward the
explained class. :func:`method_word_scores` is the one place that calls the method registry.
"""

from __future__ import annotations

import dataclasses
import random
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_text_ext.benchmarks.method_rows import RANDOM, score_rows
from captum_text_ext.datasets import NO_WORD, Vocabulary, WordPieceTokenizer, aggregate_subword_scores, pad_sequences
from captum_text_ext.datasets.planted import PLANTED_TOKENS, insert_token
from captum_text_ext.explain import LayerBatch, Method, embedding_layer, embedding_layer_name
from captum_text_ext.metrics import best_rank, decisive_auprc, precision_at_k, top1_precision
from captum_text_ext.models.checkpoints import TokenVocabulary

__all__ = [
    "BATCH_SIZE",
    "MAX_WORDS",
    "METRICS",
    "RANDOM",
    "Probe",
    "ProbeScores",
    "method_word_scores",
    "mosaic_probe",
    "predict",
    "reliance_probe",
    "score_probe",
]

MAX_WORDS = 56
"""The most words of a probe text: textcnn-mr's fixed input length, so no model crops a text (a planted sentence is
at most ``MAX_WORDS - 1`` words before its planted word, a mosaic at most ``MAX_WORDS`` in all)."""
BATCH_SIZE = 64
"""Texts per batch."""
METRICS: Tuple[Tuple[str, bool], ...] = (("top1", True), ("rank", False), ("P@k", True), ("AUPRC", True))
"""The per-text metrics and whether higher is better (module docstring)."""

Pair = Tuple[Tuple[str, ...], int]


@dataclasses.dataclass(frozen=True)
class Probe:
    """Texts with known ground truth.

    Attributes:
        words: each text's words.
        target: the class each text is explained for (the model's prediction on it).
        truth: the ground-truth word positions of each text.
        source: how each text was made (JSON-ready: test-sentence indices, the gap, the half).
        counts: how many candidates each step of the construction kept (JSON-ready).
    """

    words: List[Tuple[str, ...]]
    target: List[int]
    truth: List[Tuple[int, ...]]
    source: List[Dict[str, Any]]
    counts: Dict[str, int]

    def __len__(self) -> int:
        return len(self.words)

    def take(self, n: int) -> "Probe":
        """The first ``n`` texts (the construction's order is already seeded and random)."""
        return Probe(self.words[:n], self.target[:n], self.truth[:n], self.source[:n], dict(self.counts))


@dataclasses.dataclass(frozen=True)
class _Batch:
    """Encoded texts of similar length: ``index`` (positions in the probe), ``token_ids`` and ``lengths`` as the
    model reads them, and ``word_ids`` (the word of each token; :data:`~captum_text_ext.datasets.NO_WORD` at special
    tokens and padding)."""

    index: Tensor
    token_ids: Tensor
    lengths: Tensor
    word_ids: Tensor


def _batches(vocabulary: TokenVocabulary, texts: Sequence[Sequence[str]], fixed_len: Optional[int] = None,
             batch_size: int = BATCH_SIZE) -> List[_Batch]:
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
    batches = []
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        words = [texts[i] for i in chunk]
        if isinstance(vocabulary, WordPieceTokenizer):
            encoded = vocabulary.encode_batch(words)
            token_ids, lengths, word_ids = encoded.token_ids, encoded.lengths, encoded.word_ids
        else:
            token_ids, lengths = pad_sequences([vocabulary.encode(w) for w in words], vocabulary.pad_index,
                                               fixed_len=fixed_len)
            positions = torch.arange(token_ids.shape[1]).unsqueeze(0)
            word_ids = torch.where(positions < lengths.unsqueeze(1), positions, torch.full_like(positions, NO_WORD))
        batches.append(_Batch(torch.tensor(chunk), token_ids, lengths, word_ids))
    return batches


@torch.no_grad()
def predict(model: nn.Module, vocabulary: TokenVocabulary, texts: Sequence[Sequence[str]],
            fixed_len: Optional[int] = None) -> Tensor:
    """The predicted class of every text, :math:`(N,)`."""
    predicted = torch.empty(len(texts), dtype=torch.long)
    for batch in _batches(vocabulary, texts, fixed_len):
        predicted[batch.index] = model(batch.token_ids, batch.lengths).argmax(-1)
    return predicted


def _check_two_classes(test: Sequence[Pair]) -> None:
    labels = sorted({label for _, label in test})
    if labels != [0, 1]:
        raise ValueError(f"Expected test sentences of the two classes 0 and 1, but got labels {labels}")


def reliance_probe(model: nn.Module, vocabulary: TokenVocabulary, test: Sequence[Pair], seed: int,
                   fixed_len: Optional[int] = None, tokens: Sequence[str] = PLANTED_TOKENS) -> Probe:
    """The verified-reliance texts of a planted model (module docstring), in a seeded random order.

    ``counts``: ``test`` sentences, ``eligible`` (at most ``MAX_WORDS - 1`` words), ``correct`` (classified
    correctly), ``qualifying`` (the prediction flips when the other class's word is planted).
    """
    _check_two_classes(test)
    eligible = [i for i, (words, _) in enumerate(test) if len(words) < MAX_WORDS]
    clean = predict(model, vocabulary, [test[i][0] for i in eligible], fixed_len)
    correct = [i for i, p in zip(eligible, clean.tolist()) if p == test[i][1]]
    draw = random.Random(seed)
    gaps = [draw.randint(0, len(test[i][0])) for i in correct]
    planted = [insert_token(test[i][0], gap, tokens[1 - test[i][1]]) for i, gap in zip(correct, gaps)]
    flipped = predict(model, vocabulary, planted, fixed_len)
    keep = [k for k, i in enumerate(correct) if int(flipped[k]) == 1 - test[i][1]]
    draw.shuffle(keep)
    return Probe(
        words=[planted[k] for k in keep],
        target=[1 - test[correct[k]][1] for k in keep],
        truth=[(gaps[k],) for k in keep],
        source=[{"test_index": correct[k], "gap": gaps[k], "word": tokens[1 - test[correct[k]][1]]} for k in keep],
        counts={"test": len(test), "eligible": len(eligible), "correct": len(correct), "qualifying": len(keep)},
    )


def mosaic_probe(model: nn.Module, vocabulary: TokenVocabulary, test: Sequence[Pair], seed: int,
                 fixed_len: Optional[int] = None) -> Probe:
    """The verified mosaics of a model (module docstring), in a seeded random order.

    The positive and the negative test sentences are shuffled (seeded) and paired in that order; each pair is joined
    positive-first or negative-first by a seeded coin. ``counts``: ``pairs``, ``fitting`` (at most ``MAX_WORDS``
    words), ``verified`` (the agreeing half alone keeps the prediction).
    """
    _check_two_classes(test)
    draw = random.Random(seed)
    by_class = [[i for i, (_, label) in enumerate(test) if label == c] for c in (0, 1)]
    for members in by_class:
        draw.shuffle(members)
    pairs = [(n, p) if draw.random() < 0.5 else (p, n) for n, p in zip(*by_class)]
    fitting = [(a, b) for a, b in pairs if len(test[a][0]) + len(test[b][0]) <= MAX_WORDS]
    mosaics = [test[a][0] + test[b][0] for a, b in fitting]
    predicted = predict(model, vocabulary, mosaics, fixed_len).tolist()
    agreeing = [a if test[a][1] == c else b for (a, b), c in zip(fitting, predicted)]
    alone = predict(model, vocabulary, [test[i][0] for i in agreeing], fixed_len).tolist()
    keep = [k for k, c in enumerate(predicted) if alone[k] == c]
    truth = []
    for k in keep:
        first, second = fitting[k]
        start = 0 if agreeing[k] == first else len(test[first][0])
        truth.append(tuple(range(start, start + len(test[agreeing[k]][0]))))
    return Probe(
        words=[mosaics[k] for k in keep],
        target=[predicted[k] for k in keep],
        truth=truth,
        source=[{"test_indices": list(fitting[k]), "agreeing": agreeing[k]} for k in keep],
        counts={"pairs": len(pairs), "fitting": len(fitting), "verified": len(keep)},
    )


def method_word_scores(method: Method, model: nn.Module, token_ids: Tensor, lengths: Tensor,
                       target: Tensor) -> Tensor:
    """One method's per-token scores :math:`(n, T)` toward ``target``: the one place the benchmark calls the method
    registry (:class:`~captum_text_ext.explain.Method`: its attribution at the model's token embedding layer,
    :func:`~captum_text_ext.explain.embedding_layer`, reduced to one score per token by the method's reduction)."""
    with torch.no_grad():
        classes = int(model(token_ids[:1], lengths[:1]).shape[-1])
    return method.token_scores(model, LayerBatch(embedding_layer(model), token_ids, lengths, classes), target)


@dataclasses.dataclass
class ProbeScores:
    """One method on one probe.

    Attributes:
        values: metric → its per-text values (:data:`METRICS`), in the probe's order.
        scores: each text's per-word scores.
        seconds: seconds of attribution (the method alone).
    """

    values: Dict[str, np.ndarray]
    scores: List[List[float]]
    seconds: float


def _truth_mask(probe: Probe, index: Tensor, width: int) -> Tensor:
    mask = torch.zeros(len(index), width, dtype=torch.bool)
    for row, i in enumerate(index.tolist()):
        mask[row, list(probe.truth[i])] = True
    return mask


def _score_method(model: nn.Module, vocabulary: TokenVocabulary, probe: Probe, method: Optional[Method], seed: int,
                  fixed_len: Optional[int], progress: bool) -> ProbeScores:
    n = len(probe)
    values = {name: np.full(n, np.nan) for name, _ in METRICS}
    scores: List[List[float]] = [[] for _ in range(n)]
    generator = torch.Generator().manual_seed(seed)
    targets = torch.tensor(probe.target, dtype=torch.long)
    seconds = 0.0
    batches = _batches(vocabulary, probe.words, fixed_len)
    for batch in tqdm(batches, desc=RANDOM if method is None else method.label, disable=not progress, leave=False):
        word_lengths = torch.tensor([len(probe.words[i]) for i in batch.index.tolist()])
        started = time.perf_counter()
        if method is None:
            words = 2 * torch.rand(len(batch.index), int(word_lengths.max()), generator=generator,
                                   dtype=torch.float64) - 1
        else:
            token = method_word_scores(method, model, batch.token_ids, batch.lengths, targets[batch.index])
            words = aggregate_subword_scores(token.detach().double(), batch.word_ids)
        seconds += time.perf_counter() - started
        truth = _truth_mask(probe, batch.index, words.shape[1])
        rows = batch.index.numpy()
        values["top1"][rows] = top1_precision(words, word_lengths, truth, aggregate="none").numpy()
        values["rank"][rows] = best_rank(words, word_lengths, truth, aggregate="none").numpy()
        values["P@k"][rows] = precision_at_k(words, word_lengths, truth, aggregate="none").numpy()
        values["AUPRC"][rows] = decisive_auprc(words, word_lengths, truth, aggregate="none").numpy()
        for row, i in enumerate(batch.index.tolist()):
            scores[i] = words[row, : len(probe.words[i])].tolist()
    return ProbeScores(values, scores, seconds)


def score_probe(
    model: nn.Module, vocabulary: TokenVocabulary, probe: Probe, methods: Mapping[str, Method], seed: int,
    fixed_len: Optional[int] = None, progress: bool = True,
) -> Tuple[Dict[str, ProbeScores], Dict[str, str]]:
    """Explain every text of ``probe`` with every method that applies (and the :data:`RANDOM` row) and score it.

    Args:
        model: the model (eval mode), reading ``vocabulary``'s ids.
        vocabulary: a word vocabulary or a WordPiece tokenizer (subword scores are summed to words).
        probe: the texts.
        methods: the methods by key.
        seed: seeds the sampling methods and the random row.
        fixed_len: pad (and crop) every batch to this length (models with a fixed input length).
        progress: show progress bars.

    Returns:
        ``(scores by method label, exclusions: label -> reason)``.
    """
    if isinstance(vocabulary, Vocabulary) and fixed_len is not None and any(len(w) > fixed_len for w in probe.words):
        raise ValueError(f"Expected texts of at most fixed_len={fixed_len} words (the model would crop them)")
    name = embedding_layer_name(model)
    layer = None if name is None else embedding_layer(model, name)
    return score_rows(model, layer, methods, seed,
                      lambda method: _score_method(model, vocabulary, probe, method, seed, fixed_len, progress))

r"""Deletion and insertion curves, and their area over the perturbation curve (AOPC).

Tokens are removed (deletion) or added (insertion) in the order of their attribution (see
:mod:`~captum_text_ext.metrics.reduction` for the ranking) and the model's target probability :math:`p` is read
after every step. The steps are token counts :math:`k = 0, 1, \ldots, K` (capped at each sentence's length) or
percentages of each sentence (``percents``; :math:`k\%` of :math:`L` tokens is :math:`\max(1, \lceil kL/100\rceil)`
tokens, and 100% is the whole sentence). Let :math:`x^{(k)}` be the sentence after step :math:`k`: for deletion,
without its :math:`k` highest-ranked tokens; for insertion, with only them (every other token removed).

With :math:`S` steps, Samek et al. (2017) define for deletion (most relevant first)

.. math::
    \mathrm{AOPC}_{del} = \frac{1}{S} \sum_{k} \big( p(x) - p(x^{(k)}) \big),

and we define for insertion, with :math:`x^{(\varnothing)}` the sentence with every token removed,

.. math::
    \mathrm{AOPC}_{ins} = \frac{1}{S} \sum_{k} \big( p(x^{(k)}) - p(x^{(\varnothing)}) \big).

Higher is better for both: a faithful ranking makes the probability fall fast when deleting and rise fast when
inserting. Samek et al. sum over :math:`k = 0..L` with :math:`L + 1` terms; the default steps (0, 10, ..., 100%)
include :math:`k = 0`, whose deletion term is 0. Both are returned per sentence; the accuracy along the curve needs
true labels.

References:
    W. Samek, A. Binder, G. Montavon, S. Lapuschkin, K.-R. Müller. Evaluating the visualization of what a deep
    neural network has learned. IEEE TNNLS 28(11), 2017. https://arxiv.org/abs/1509.06321

    L. Arras, G. Montavon, K.-R. Müller, W. Samek. Explaining Recurrent Neural Network Predictions in Sentiment
    Analysis. WASSA@EMNLP 2017 (removal by zeroing the embedding).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_text_ext.metrics._base import SentenceMetric
from captum_text_ext.metrics.perturbation import (
    ForwardFunc,
    Removal,
    resolve_removal,
    check_target,
    target_probabilities,
)
from captum_text_ext.metrics.reduction import percent_count, ranks, removal_order

__all__ = [
    "CurveResult",
    "DeletionCurve",
    "InsertionCurve",
    "deletion_curve",
    "insertion_curve",
    "step_counts",
    "top_k_masks",
]

DEFAULT_PERCENTS: Tuple[int, ...] = tuple(range(0, 101, 10))
"""The default steps: 0, 10, ..., 100 percent of each sentence."""


@dataclasses.dataclass(frozen=True)
class CurveResult:
    """A deletion or insertion curve of :math:`N` sentences over :math:`S` steps.

    Attributes:
        steps: the steps (token counts or percentages).
        unit: ``"tokens"`` or ``"percent"``.
        probability: :math:`(N, S)` float64 target probability after each step.
        correct: :math:`(N, S)` bool, whether each perturbed sentence is classified correctly (``None`` without
            labels).
        reference: :math:`(N,)` the probability the AOPC compares with: the intact sentence (deletion) or the
            sentence with every token removed (insertion).
        aopc: :math:`(N,)` each sentence's AOPC.
    """

    steps: Tuple[float, ...]
    unit: str
    probability: Tensor
    correct: Optional[Tensor]
    reference: Tensor
    aopc: Tensor

    @property
    def mean_probability(self) -> Tensor:
        """:math:`(S,)` the mean target probability after each step."""
        return self.probability.mean(0)

    @property
    def accuracy(self) -> Optional[Tensor]:
        """:math:`(S,)` the accuracy after each step (``None`` without labels)."""
        return None if self.correct is None else self.correct.double().mean(0)

    @staticmethod
    def cat(results: Sequence["CurveResult"]) -> "CurveResult":
        """Join the results of several batches (same steps)."""
        first = results[0]
        if any(r.steps != first.steps or r.unit != first.unit for r in results):
            raise ValueError("Expected results with the same steps to join")
        corrects = [r.correct for r in results if r.correct is not None]
        correct = torch.cat(corrects) if len(corrects) == len(results) else None
        return CurveResult(first.steps, first.unit, torch.cat([r.probability for r in results]), correct,
                           torch.cat([r.reference for r in results]), torch.cat([r.aopc for r in results]))


def step_counts(
    lengths: Tensor, counts: Optional[Sequence[int]] = None, percents: Optional[Sequence[float]] = None
) -> Tuple[Tensor, Tuple[float, ...], str]:
    """The number of tokens each step removes or adds, per sentence.

    Exactly one of ``counts`` (token counts, capped at each length) and ``percents`` is given; with neither, the
    percentages :data:`DEFAULT_PERCENTS`.

    Returns:
        ``(counts (S, N), steps, unit)``.
    """
    if counts is not None and percents is not None:
        raise ValueError("Expected either `counts` or `percents`, not both")
    if counts is not None:
        if not counts or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in counts):
            raise ValueError(f"Expected `counts` to be non-negative ints, but got {list(counts)}")
        capped = torch.stack([torch.clamp(lengths, max=c) for c in counts])
        return capped, tuple(float(c) for c in counts), "tokens"
    chosen = DEFAULT_PERCENTS if percents is None else tuple(percents)
    if not chosen:
        raise ValueError("Expected at least one percent")
    return percent_count(lengths, chosen), tuple(float(p) for p in chosen), "percent"


def top_k_masks(
    scores: Tensor,
    lengths: Tensor,
    order: str = "signed",
    counts: Optional[Sequence[int]] = None,
    percents: Optional[Sequence[float]] = None,
) -> Tuple[Tensor, Tuple[float, ...], str]:
    """The highest-ranked tokens of every sentence at every step.

    Args:
        scores: :math:`(N, T)` per-token scores; lengths: :math:`(N,)`.
        order: ``"signed"`` or ``"abs"``.
        counts, percents: the steps (:func:`step_counts`).

    Returns:
        ``(masks (S, N, T) bool, steps, unit)``: True at the top-:math:`k` tokens of step :math:`k`.

    Examples:
        >>> top_k_masks(torch.tensor([[0.1, 0.9, -2.0]]), torch.tensor([3]), counts=[1, 2])[0].int()
        tensor([[[0, 1, 0]],
        <BLANKLINE>
                [[1, 1, 0]]], dtype=torch.int32)
    """
    rank = ranks(removal_order(scores, lengths, order))
    step_sizes, steps, unit = step_counts(lengths.to(scores.device), counts, percents)
    return rank.unsqueeze(0) < step_sizes.unsqueeze(-1), steps, unit


def _curve(
    insertion: bool,
    forward_func: ForwardFunc,
    embeddings: Tensor,
    lengths: Tensor,
    scores: Tensor,
    target: Union[int, Sequence[int], Tensor],
    counts: Optional[Sequence[int]],
    percents: Optional[Sequence[float]],
    removal: Removal,
    order: str,
    labels: Optional[Tensor],
    additional_forward_args: Optional[Tuple[Any, ...]],
    apply_softmax: bool,
    batch_size: int,
    progress: bool,
    replacement: Optional[Tensor],
) -> CurveResult:
    if embeddings.dim() != 3 or embeddings.shape[:2] != scores.shape:
        raise ValueError(f"Expected embeddings (N, T, E) matching scores {tuple(scores.shape)}, but got "
                         f"{tuple(embeddings.shape)}")
    removal = resolve_removal(removal, replacement, embeddings.shape[-1])
    lengths = lengths.to(scores.device)
    chosen, steps, unit = top_k_masks(scores, lengths, order, counts, percents)
    every = torch.ones_like(chosen[:1])
    reference_keep = ~every if insertion else every
    keep = torch.cat([chosen if insertion else ~chosen, reference_keep])
    classes = check_target(target, embeddings.shape[0], embeddings.device)
    probability, correct = target_probabilities(forward_func, embeddings, lengths, keep, classes, removal,
                                                additional_forward_args, labels, apply_softmax, batch_size, progress)
    curve, reference = probability[:-1].t().contiguous(), probability[-1]
    area = (curve - reference.unsqueeze(1)) if insertion else (reference.unsqueeze(1) - curve)
    hits = None if correct is None else correct[:-1].t().contiguous()
    return CurveResult(steps, unit, curve, hits, reference, area.mean(1))


def deletion_curve(
    forward_func: ForwardFunc,
    embeddings: Tensor,
    lengths: Tensor,
    scores: Tensor,
    target: Union[int, Sequence[int], Tensor],
    counts: Optional[Sequence[int]] = None,
    percents: Optional[Sequence[float]] = None,
    removal: Removal = "zero",
    order: str = "signed",
    labels: Optional[Tensor] = None,
    additional_forward_args: Optional[Tuple[Any, ...]] = None,
    apply_softmax: bool = True,
    batch_size: int = 256,
    progress: bool = False,
    replacement: Optional[Tensor] = None,
) -> CurveResult:
    r"""Delete tokens in order of attribution and read the target probability after each step.

    Args:
        forward_func: ``forward_func(embeddings, lengths, *additional_forward_args)`` returning logits
            (:mod:`~captum_text_ext.metrics.perturbation`).
        embeddings: :math:`(N, T, E)` the embedded sentences.
        lengths: :math:`(N,)` their lengths.
        scores: :math:`(N, T)` per-token attribution toward the target
            (:func:`~captum_text_ext.metrics.reduction.token_scores`).
        target: the explained class: an int, or one per sentence (list or tensor).
        counts: token counts :math:`0..K` to delete (capped at each length).
        percents: percentages of each sentence to delete (default 0, 10, ..., 100).
        removal: how a token is removed, a key of :data:`~captum_text_ext.metrics.perturbation.REMOVALS`
            (``"zero"``, ``"unk"``, ``"pad"``, ``"drop"``) or a replacement embedding :math:`(E,)`
            (:mod:`~captum_text_ext.metrics.perturbation`).
        order: ``"signed"`` or ``"abs"``.
        labels: :math:`(N,)` true classes, for the accuracy along the curve.
        additional_forward_args: passed to ``forward_func`` after the lengths.
        apply_softmax: whether ``forward_func`` returns logits (the probability is their softmax).
        batch_size: rows per forward call.
        progress: show a progress bar.
        replacement: the ``<unk>`` or pad token's embedding :math:`(E,)` for ``removal="unk"`` / ``"pad"``
            (:func:`~captum_text_ext.metrics.perturbation.replacement_embedding`); refused with other removals.

    Returns:
        A :class:`CurveResult`; ``reference`` is the intact sentence's probability, ``aopc`` is
        :math:`\mathrm{AOPC}_{del}` per sentence.

    Raises:
        ValueError: for mismatched shapes, lengths outside ``[1, T]``, an unknown removal or order, both ``counts``
            and ``percents``, ``removal="unk"`` / ``"pad"`` without ``replacement`` (or a ``replacement`` with another
            removal), or a target that does not give one class per sentence.
    """
    return _curve(False, forward_func, embeddings, lengths, scores, target, counts, percents, removal, order, labels,
                  additional_forward_args, apply_softmax, batch_size, progress, replacement)


def insertion_curve(
    forward_func: ForwardFunc,
    embeddings: Tensor,
    lengths: Tensor,
    scores: Tensor,
    target: Union[int, Sequence[int], Tensor],
    counts: Optional[Sequence[int]] = None,
    percents: Optional[Sequence[float]] = None,
    removal: Removal = "zero",
    order: str = "signed",
    labels: Optional[Tensor] = None,
    additional_forward_args: Optional[Tuple[Any, ...]] = None,
    apply_softmax: bool = True,
    batch_size: int = 256,
    progress: bool = False,
    replacement: Optional[Tensor] = None,
) -> CurveResult:
    r"""Start from the sentence with every token removed and add tokens back in order of attribution.

    Arguments as :func:`deletion_curve`; ``counts`` / ``percents`` are the tokens kept.

    Returns:
        A :class:`CurveResult`; ``reference`` is the probability with every token removed, ``aopc`` is
        :math:`\mathrm{AOPC}_{ins}` per sentence.
    """
    return _curve(True, forward_func, embeddings, lengths, scores, target, counts, percents, removal, order, labels,
                  additional_forward_args, apply_softmax, batch_size, progress, replacement)


class _CurveMetric(SentenceMetric):
    """Accumulates :class:`CurveResult` s batch by batch."""

    higher_is_better = True
    _insertion = False

    def __init__(
        self,
        forward_func: ForwardFunc,
        counts: Optional[Sequence[int]] = None,
        percents: Optional[Sequence[float]] = None,
        removal: Removal = "zero",
        order: str = "signed",
        apply_softmax: bool = True,
        batch_size: int = 256,
        progress: bool = False,
        replacement: Optional[Tensor] = None,
    ) -> None:
        super().__init__()
        resolve_removal(removal, replacement, None)  # a wrong setting fails here, not at the first update
        self.forward_func = forward_func
        self._curve = functools.partial(_curve, counts=counts, percents=percents, removal=removal, order=order,
                                        apply_softmax=apply_softmax, batch_size=batch_size, progress=progress,
                                        replacement=replacement)

    def update(
        self,
        embeddings: Tensor,
        lengths: Tensor,
        scores: Tensor,
        target: Union[int, Sequence[int], Tensor],
        labels: Optional[Tensor] = None,
        additional_forward_args: Optional[Tuple[Any, ...]] = None,
    ) -> None:
        """Add a batch (arguments as :func:`deletion_curve`)."""
        self._results.append(self._curve(self._insertion, self.forward_func, embeddings, lengths, scores, target,
                                         labels=labels, additional_forward_args=additional_forward_args))

    def _join(self, results: List[CurveResult]) -> CurveResult:
        return CurveResult.cat(results)


class DeletionCurve(_CurveMetric):
    r"""The deletion curve and :math:`\mathrm{AOPC}_{del}` (module docstring), accumulated over batches.

    Args:
        forward_func: ``forward_func(embeddings, lengths, *additional_forward_args)`` returning logits.
        counts, percents, removal, order, apply_softmax, batch_size, progress, replacement: as
            :func:`deletion_curve`.

    Examples:
        >>> weights = torch.tensor([[0.0, 0.0], [2.0, -1.0]])  # logits (0, w . x summed over tokens)
        >>> forward = lambda x, n: torch.stack([torch.zeros(len(x)), (x * weights[1]).sum((1, 2))], 1)
        >>> x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
        >>> metric = DeletionCurve(forward, counts=[0, 1, 2])
        >>> metric.update(x, torch.tensor([2]), scores=torch.tensor([[2.0, -1.0]]), target=1)
        >>> [round(p, 4) for p in metric.compute().probability[0].tolist()]
        [0.7311, 0.2689, 0.5]
    """


class InsertionCurve(_CurveMetric):
    r"""The insertion curve and :math:`\mathrm{AOPC}_{ins}` (module docstring), accumulated over batches.

    Args: as :class:`DeletionCurve`.
    """

    _insertion = True

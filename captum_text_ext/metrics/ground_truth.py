r"""Explanations scored against known ground truth: the synthetic corpus (:mod:`captum_text_ext.datasets.synthetic`),
and any per-token truth given as a mask (the planted tokens and mosaics of ``captum-text-ext benchmark planted``).

Every synthetic sentence says which tokens decide its label (``decisive``: the sentiment words of the deciding
clauses that agree with the label, and the negators that flip them) and the signed effect of every sentiment word
after negation (``token_effect``). With per-token scores :math:`s` toward the target class (ranked as in
:mod:`~captum_text_ext.metrics.reduction`), :math:`D` the decisive tokens of a sentence of length :math:`L` and
:math:`\pi(1), \pi(2), \ldots` its positions from the highest-ranked down:

- **precision@k** :math:`= |\{\pi(1..k)\} \cap D| / k` with :math:`k \le L`; by default :math:`k = |D|`
  (R-precision, which is also the recall at :math:`|D|`).
- **top-1 precision**: precision@1, the share of sentences whose top-ranked token is decisive.
- **rank** of the truth: :math:`\min \{i : \pi(i) \in D\}`, the 1-based rank of the highest-ranked decisive token
  (1 is best; with one decisive token, as in the planted-token test, it is that token's rank).
- **AUPRC** (average precision) :math:`= \frac{1}{|D|} \sum_{i=1}^{L} \mathrm{prec@}i \cdot [\pi(i) \in D]`; ties
  keep the reading order.
- **sign accuracy**: over the sentiment words (``token_effect`` :math:`e_t \neq 0`), the share with
  :math:`\mathrm{sign}(s_t) = e_t \cdot \sigma`, where :math:`\sigma = +1` when the target is the positive class
  and :math:`-1` otherwise; a score of exactly 0 counts as wrong. Negated words have the opposite effect of the
  same word un-negated, so a method that ignores negation fails on them; ``negated_only`` restricts the count to
  them. Only meaningful for signed reductions (not ℓ2 norms).
- **negation interaction sign** (methods with interaction scores, e.g. CD): for every negator :math:`i` that
  targets a word :math:`j`, the interaction :math:`\beta(\{i, j\}) - \beta(\{i\}) - \beta(\{j\})` toward the target
  should have the sign :math:`e_j \cdot \sigma` (the negator turns the word's effect around).

Sentences without decisive tokens (or without counted words) give ``nan`` and are left out of the means.
"""

from __future__ import annotations

import dataclasses
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_text_ext.datasets.synthetic import SyntheticExample
from captum_text_ext.metrics._base import SentenceMetric
from captum_text_ext.metrics.reduction import check_scores, ranks, removal_order

__all__ = [
    "GROUND_TRUTH_COLUMNS",
    "GroundTruth",
    "GroundTruthMetric",
    "best_rank",
    "decisive_auprc",
    "ground_truth",
    "negation_interaction_sign",
    "precision_at_k",
    "sign_accuracy",
    "top1_precision",
]


GROUND_TRUTH_COLUMNS = {"top1": "top1_precision", "R-prec": "precision_at_k", "AUPRC": "auprc",
                        "sign": "sign_accuracy", "neg sign": "negated_sign_accuracy"}
"""The short column names of the results tables (leaderboard, ``evaluate``), each with the key of
:meth:`GroundTruthMetric.compute` it shows."""


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """The synthetic corpus's per-token truth as padded tensors.

    Attributes:
        decisive: :math:`(N, T)` bool.
        token_effect: :math:`(N, T)` int64 in {-1, 0, 1}.
        negated: :math:`(N, T)` bool, True at sentiment words a negator targets.
        labels: :math:`(N,)` 1 positive, 0 negative.
        negations: :math:`(M, 3)` int64 rows ``(sentence, negator position, target position)``, one per negator
            that targets a word.
    """

    decisive: Tensor
    token_effect: Tensor
    negated: Tensor
    labels: Tensor
    negations: Tensor


def ground_truth(examples: Sequence[SyntheticExample], steps: Optional[int] = None) -> GroundTruth:
    """Stack the annotations of synthetic examples, padded to ``steps`` tokens (default: the longest).

    Examples:
        >>> from captum_text_ext.datasets.synthetic import annotate
        >>> truth = ground_truth([annotate("the plot was not dull".split())])
        >>> truth.decisive.int().tolist(), truth.token_effect.tolist(), truth.negations.tolist()
        ([[0, 0, 0, 1, 1]], [[0, 0, 0, 0, 1]], [[0, 3, 4]])
    """
    steps = max(len(e.tokens) for e in examples) if steps is None else steps
    if any(len(e.tokens) > steps for e in examples):
        raise ValueError(f"Expected every example to have at most {steps} tokens")
    decisive = torch.zeros(len(examples), steps, dtype=torch.bool)
    effect = torch.zeros(len(examples), steps, dtype=torch.long)
    negated = torch.zeros(len(examples), steps, dtype=torch.bool)
    negations: List[Tuple[int, int, int]] = []
    for n, example in enumerate(examples):
        size = len(example.tokens)
        decisive[n, :size] = torch.tensor(example.decisive)
        effect[n, :size] = torch.tensor(example.token_effect)
        for negator, _, end in example.negation_spans:
            target = end - 1
            if example.token_effect[target] != 0:
                negated[n, target] = True
                negations.append((n, negator, target))
    return GroundTruth(decisive, effect, negated, torch.tensor([e.label for e in examples], dtype=torch.long),
                       torch.tensor(negations, dtype=torch.long).reshape(-1, 3))


def _mean(values: Tensor, aggregate: str) -> Tensor:
    if aggregate == "none":
        return values
    if aggregate != "mean":
        raise ValueError(f"Expected `aggregate` to be 'mean' or 'none', but got {aggregate!r}")
    return values.nanmean()


def _checked(scores: Tensor, lengths: Tensor, truth: Tensor, name: str) -> Tensor:
    check_scores(scores, lengths)
    if truth.shape != scores.shape:
        raise ValueError(f"Expected `{name}` of shape {tuple(scores.shape)} like the scores, but got "
                         f"{tuple(truth.shape)}")
    return lengths.to(scores.device)


def precision_at_k(
    scores: Tensor,
    lengths: Tensor,
    decisive: Tensor,
    k: Optional[int] = None,
    order: str = "signed",
    aggregate: str = "mean",
) -> Tensor:
    """The share of decisive tokens among each sentence's top-:math:`k` (module docstring).

    Args:
        scores: :math:`(N, T)` per-token scores toward the target; lengths: :math:`(N,)`.
        decisive: :math:`(N, T)` bool ground truth.
        k: tokens per sentence (capped at its length); ``None``: its number of decisive tokens (R-precision).
        order: ``"signed"`` or ``"abs"``.
        aggregate: ``"mean"`` (over sentences, ``nan`` ones left out) or ``"none"`` (:math:`(N,)`).

    Examples:
        >>> precision_at_k(torch.tensor([[3.0, 1.0, 2.0]]), torch.tensor([3]), torch.tensor([[True, True, False]]))
        tensor(0.5000, dtype=torch.float64)
    """
    lengths = _checked(scores, lengths, decisive, "decisive")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"Expected `k` to be a positive int or None, but got {k!r}")
    rank = ranks(removal_order(scores, lengths, order))
    relevant = decisive.to(scores.device)
    count = relevant.sum(1) if k is None else torch.clamp(lengths, max=k)
    hits = (relevant & (rank < count.unsqueeze(1))).sum(1).double()
    values = torch.where(count > 0, hits / count.clamp(min=1).double(), torch.full_like(hits, float("nan")))
    if k is None:
        values = values.masked_fill(relevant.sum(1) == 0, float("nan"))
    return _mean(values, aggregate)


def top1_precision(
    scores: Tensor, lengths: Tensor, decisive: Tensor, order: str = "signed", aggregate: str = "mean"
) -> Tensor:
    """The share of sentences whose top-ranked token is decisive (precision@1; sentences without a decisive token
    are left out)."""
    values = precision_at_k(scores, lengths, decisive, 1, order, "none")
    values = values.masked_fill(decisive.to(scores.device).sum(1) == 0, float("nan"))
    return _mean(values, aggregate)


def best_rank(
    scores: Tensor, lengths: Tensor, decisive: Tensor, order: str = "signed", aggregate: str = "mean"
) -> Tensor:
    """The 1-based rank of each sentence's highest-ranked decisive token (module docstring; ``nan`` for a sentence
    without one).

    Examples:
        >>> best_rank(torch.tensor([[3.0, 1.0, 2.0]]), torch.tensor([3]), torch.tensor([[False, True, True]]))
        tensor(2., dtype=torch.float64)
    """
    lengths = _checked(scores, lengths, decisive, "decisive")
    rank = ranks(removal_order(scores, lengths, order)).double() + 1
    relevant = decisive.to(scores.device) & (
        torch.arange(scores.shape[1], device=scores.device).unsqueeze(0) < lengths.unsqueeze(1))
    best = torch.where(relevant, rank, torch.full_like(rank, float("inf"))).min(1).values
    return _mean(best.masked_fill(~relevant.any(1), float("nan")), aggregate)


def decisive_auprc(
    scores: Tensor, lengths: Tensor, decisive: Tensor, order: str = "signed", aggregate: str = "mean"
) -> Tensor:
    """The average precision of the decisive tokens in each sentence's ranking (module docstring).

    Examples:
        >>> decisive_auprc(torch.tensor([[3.0, 1.0, 2.0]]), torch.tensor([3]), torch.tensor([[True, True, False]]))
        tensor(0.8333, dtype=torch.float64)
    """
    lengths = _checked(scores, lengths, decisive, "decisive")
    ordered = removal_order(scores, lengths, order)
    relevant = decisive.to(scores.device) & (
        torch.arange(scores.shape[1], device=scores.device).unsqueeze(0) < lengths.unsqueeze(1))
    hit = relevant.gather(1, ordered).double()  # (N, T) in ranked order
    precision = hit.cumsum(1) / torch.arange(1, scores.shape[1] + 1, device=scores.device).double()
    total = relevant.sum(1).double()
    values = (precision * hit).sum(1) / total.clamp(min=1)
    return _mean(values.masked_fill(total == 0, float("nan")), aggregate)


def _target_sign(target: Union[int, Sequence[int], Tensor], batch: int, device: torch.device,
                 positive_class: int) -> Tensor:
    classes = torch.as_tensor(target, dtype=torch.long, device=device).reshape(-1)
    classes = classes.expand(batch) if classes.numel() == 1 else classes
    if classes.numel() != batch:
        raise ValueError(f"Expected one target per example ({batch}), but got {classes.numel()}")
    return torch.where(classes == positive_class, 1, -1)


def sign_accuracy(
    scores: Tensor,
    lengths: Tensor,
    token_effect: Tensor,
    target: Union[int, Sequence[int], Tensor],
    negated: Optional[Tensor] = None,
    positive_class: int = 1,
    aggregate: str = "mean",
) -> Tensor:
    """The share of sentiment words whose score has the sign of their effect toward the target (module docstring).

    Args:
        scores: :math:`(N, T)` signed per-token scores toward the target; lengths: :math:`(N,)`.
        token_effect: :math:`(N, T)` in {-1, 0, 1}.
        target: the explained class (an int or one per sentence).
        negated: :math:`(N, T)` bool: count only these words (e.g. :attr:`GroundTruth.negated`).
        positive_class: the class index of "positive".
        aggregate: ``"mean"`` (over sentences) or ``"none"`` (:math:`(N,)`).

    Examples:
        >>> sign_accuracy(torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([3]), torch.tensor([[0, 1, 1]]), target=1)
        tensor(0.5000, dtype=torch.float64)
    """
    lengths = _checked(scores, lengths, token_effect, "token_effect")
    sign = _target_sign(target, scores.shape[0], scores.device, positive_class)
    real = torch.arange(scores.shape[1], device=scores.device).unsqueeze(0) < lengths.unsqueeze(1)
    counted = (token_effect.to(scores.device) != 0) & real
    if negated is not None:
        counted &= negated.to(scores.device)
    expected = token_effect.to(scores.device) * sign.unsqueeze(1)
    right = (torch.sign(scores.detach()).long() == expected) & counted
    total = counted.sum(1).double()
    values = right.sum(1).double() / total.clamp(min=1)
    return _mean(values.masked_fill(total == 0, float("nan")), aggregate)


def negation_interaction_sign(
    interaction_func: Any,
    embeddings: Tensor,
    lengths: Tensor,
    negations: Tensor,
    token_effect: Tensor,
    target: Union[int, Sequence[int], Tensor],
    positive_class: int = 1,
    additional_forward_args: Optional[Tuple[Any, ...]] = None,
    aggregate: str = "mean",
    **interaction_kwargs: Any,
) -> Tensor:
    r"""Whether each negator × word interaction has the sign the negation implies (module docstring).

    All pairs are scored in one call: the :math:`M` pairs become :math:`P` phrase masks per sentence (:math:`P` the
    most negations in one sentence; empty masks where a sentence has fewer).

    Args:
        interaction_func: ``interaction(inputs, mask_a, mask_b, target=..., additional_forward_args=..., **kw)``
            returning :math:`(P, N)` scores for :math:`(P, N, T)` masks, e.g.
            :meth:`ContextualDecomposition.interaction <captum_text_ext.ContextualDecomposition.interaction>`.
        embeddings: :math:`(N, T, E)`; lengths: :math:`(N,)` (passed first in ``additional_forward_args``).
        negations: :math:`(M, 3)` rows ``(sentence, negator, word)`` (:attr:`GroundTruth.negations`).
        token_effect: :math:`(N, T)` (the word's effect after negation).
        target: the explained class; positive_class: the index of "positive".
        additional_forward_args: passed after the lengths.
        aggregate: ``"mean"`` (over pairs) or ``"none"`` (:math:`(M,)` float64 1.0 / 0.0, in the rows' order).
        interaction_kwargs: passed on (e.g. ``contrast``).
    """
    if negations.dim() != 2 or negations.shape[1] != 3:
        raise ValueError(f"Expected `negations` of shape (M, 3), but got {tuple(negations.shape)}")
    batch, steps = embeddings.shape[:2]
    if negations.shape[0] == 0:
        return _mean(torch.empty(0, dtype=torch.float64), aggregate)
    rows = negations.cpu()
    sentence = rows[:, 0]
    by_sentence = torch.argsort(sentence, stable=True)
    counts = torch.bincount(sentence, minlength=batch)
    starts = counts.cumsum(0) - counts
    slot = torch.empty_like(sentence)
    slot[by_sentence] = torch.arange(sentence.numel()) - starts[sentence[by_sentence]]
    phrases = int(slot.max()) + 1
    mask_a = torch.zeros(phrases, batch, steps, dtype=torch.bool)
    mask_b = torch.zeros_like(mask_a)
    mask_a[slot, sentence, rows[:, 1]] = True
    mask_b[slot, sentence, rows[:, 2]] = True
    device = embeddings.device
    scores = interaction_func(embeddings, mask_a.to(device), mask_b.to(device), target=target,
                              additional_forward_args=(lengths, *(additional_forward_args or ())),
                              **interaction_kwargs)
    pair_scores = scores[slot.to(device), sentence.to(device)]
    sign = _target_sign(target, batch, device, positive_class)[sentence.to(device)]
    expected = token_effect.to(device)[sentence.to(device), rows[:, 2].to(device)] * sign
    values = (torch.sign(pair_scores.detach()).long() == expected).double()
    return _mean(values, aggregate)


class GroundTruthMetric(SentenceMetric):
    """Precision@k (R-precision), top-1 precision, AUPRC and sign accuracy over batches of synthetic sentences.

    Args:
        order: ``"signed"`` or ``"abs"`` (the ranking of precision and AUPRC).
        positive_class: the class index of "positive".

    :meth:`compute` returns a dict of per-sentence :math:`(N,)` tensors: ``precision_at_k``, ``top1_precision``,
    ``auprc``, ``sign_accuracy`` and ``negated_sign_accuracy`` (``nan`` where undefined; take ``nanmean``).

    Examples:
        >>> from captum_text_ext.datasets.synthetic import annotate
        >>> truth = ground_truth([annotate("the plot was not dull".split())])
        >>> metric = GroundTruthMetric()
        >>> metric.update(torch.tensor([[0.0, 0.0, 0.1, 0.9, -0.5]]), torch.tensor([5]), truth, target=1)
        >>> {k: round(float(v.nanmean()), 3) for k, v in metric.compute().items()}
        {'precision_at_k': 0.5, 'top1_precision': 1.0, 'auprc': 0.7, 'sign_accuracy': 0.0, 'negated_sign_accuracy': 0.0}
    """

    def __init__(self, order: str = "signed", positive_class: int = 1) -> None:
        super().__init__()
        self.order = order
        self.positive_class = positive_class

    def update(self, scores: Tensor, lengths: Tensor, truth: GroundTruth,
               target: Union[int, Sequence[int], Tensor]) -> None:
        """Score one batch; ``truth`` is padded like ``scores``."""
        self._results.append({
            "precision_at_k": precision_at_k(scores, lengths, truth.decisive, order=self.order, aggregate="none"),
            "top1_precision": top1_precision(scores, lengths, truth.decisive, order=self.order, aggregate="none"),
            "auprc": decisive_auprc(scores, lengths, truth.decisive, order=self.order, aggregate="none"),
            "sign_accuracy": sign_accuracy(scores, lengths, truth.token_effect, target,
                                           positive_class=self.positive_class, aggregate="none"),
            "negated_sign_accuracy": sign_accuracy(scores, lengths, truth.token_effect, target, truth.negated,
                                                   self.positive_class, "none"),
        })

    def _join(self, results: List[Any]) -> Any:
        return {key: torch.cat([r[key] for r in results]) for key in results[0]}

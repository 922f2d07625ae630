r"""Comprehensiveness and sufficiency (DeYoung et al. 2020, ERASER) at :math:`k` percent of the tokens.

Let :math:`r_k` be the top :math:`k\%` of a sentence's tokens by attribution (:math:`\max(1, \lceil kL/100\rceil)`
tokens, :mod:`~captum_text_ext.metrics.reduction`) and :math:`p` the model's probability for the target class:

.. math::
    \mathrm{comp}_k = p(x) - p(x \setminus r_k), \qquad \mathrm{suff}_k = p(x) - p(r_k),

where :math:`x \setminus r_k` is the sentence with :math:`r_k` removed and :math:`r_k` the sentence with every
other token removed (see :mod:`~captum_text_ext.metrics.perturbation` for the removal). A faithful ranking has a high
comprehensiveness (removing the rationale hurts) and a low sufficiency (the rationale alone suffices). The
aggregates are the means over the bins :math:`\mathcal{B} = \{1, 5, 10, 20, 50\}`,

.. math::
    \mathrm{AOPC}_{comp} = \frac{1}{|\mathcal{B}|} \sum_{k \in \mathcal{B}} \mathrm{comp}_k, \qquad
    \mathrm{AOPC}_{suff} = \frac{1}{|\mathcal{B}|} \sum_{k \in \mathcal{B}} \mathrm{suff}_k.

DeYoung et al. print the normalization :math:`1/(|\mathcal{B}| + 1)`; we divide by the number of bins (as ferret
does), so an aggregate is the mean of the reported columns. Multiply by :math:`|\mathcal{B}|/(|\mathcal{B}|+1) = 5/6`
to compare with numbers normalized the other way.

References:
    J. DeYoung, S. Jain, N. F. Rajani, E. Lehman, C. Xiong, R. Socher, B. C. Wallace. ERASER: A Benchmark to
    Evaluate Rationalized NLP Models. ACL 2020. https://arxiv.org/abs/1911.03429
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_text_ext.metrics._base import SentenceMetric
from captum_text_ext.metrics.curves import top_k_masks
from captum_text_ext.metrics.perturbation import (
    ForwardFunc,
    Removal,
    resolve_removal,
    check_target,
    target_probabilities,
)
from captum_text_ext.metrics.reduction import check_scores

__all__ = ["ERASER_PERCENTS", "Comprehensiveness", "ErasureResult", "Sufficiency", "comprehensiveness", "sufficiency"]

ERASER_PERCENTS: Tuple[int, ...] = (1, 5, 10, 20, 50)
"""The bins :math:`\\mathcal{B}` of DeYoung et al. (2020), in percent of the tokens."""


@dataclasses.dataclass(frozen=True)
class ErasureResult:
    """Comprehensiveness or sufficiency of :math:`N` sentences at :math:`K` percentages.

    Attributes:
        percents: the :math:`k` values.
        values: :math:`(N, K)` float64 :math:`\\mathrm{comp}_k` or :math:`\\mathrm{suff}_k`.
        aopc: :math:`(N,)` the mean over the percentages.
    """

    percents: Tuple[float, ...]
    values: Tensor
    aopc: Tensor

    @staticmethod
    def cat(results: Sequence["ErasureResult"]) -> "ErasureResult":
        """Join the results of several batches (same percentages)."""
        if any(r.percents != results[0].percents for r in results):
            raise ValueError("Expected results with the same percents to join")
        return ErasureResult(results[0].percents, torch.cat([r.values for r in results]),
                             torch.cat([r.aopc for r in results]))


def _erasure(
    keep_rationale: bool,
    forward_func: ForwardFunc,
    embeddings: Tensor,
    lengths: Tensor,
    scores: Tensor,
    target: Union[int, Sequence[int], Tensor],
    percents: Sequence[float],
    removal: Removal,
    order: str,
    additional_forward_args: Optional[Tuple[Any, ...]],
    apply_softmax: bool,
    batch_size: int,
    progress: bool,
    replacement: Optional[Tensor],
) -> ErasureResult:
    check_scores(scores, lengths)
    if embeddings.dim() != 3 or embeddings.shape[:2] != scores.shape:
        raise ValueError(f"Expected embeddings (N, T, E) matching scores {tuple(scores.shape)}, but got "
                         f"{tuple(embeddings.shape)}")
    removal = resolve_removal(removal, replacement, embeddings.shape[-1])
    rationale, steps, _ = top_k_masks(scores, lengths.to(scores.device), order, percents=percents)
    keep = torch.cat([rationale if keep_rationale else ~rationale, torch.ones_like(rationale[:1])])
    classes = check_target(target, embeddings.shape[0], embeddings.device)
    probability, _ = target_probabilities(forward_func, embeddings, lengths, keep, classes, removal,
                                          additional_forward_args, None, apply_softmax, batch_size, progress)
    values = (probability[-1].unsqueeze(0) - probability[:-1]).t().contiguous()
    return ErasureResult(steps, values, values.mean(1))


def comprehensiveness(
    forward_func: ForwardFunc,
    embeddings: Tensor,
    lengths: Tensor,
    scores: Tensor,
    target: Union[int, Sequence[int], Tensor],
    percents: Sequence[float] = ERASER_PERCENTS,
    removal: Removal = "zero",
    order: str = "signed",
    additional_forward_args: Optional[Tuple[Any, ...]] = None,
    apply_softmax: bool = True,
    batch_size: int = 256,
    progress: bool = False,
    replacement: Optional[Tensor] = None,
) -> ErasureResult:
    r""":math:`\mathrm{comp}_k = p(x) - p(x \setminus r_k)` per sentence and :math:`k`, and its AOPC (higher is better).

    Args:
        forward_func: ``forward_func(embeddings, lengths, *additional_forward_args)`` returning logits.
        embeddings: :math:`(N, T, E)`; lengths: :math:`(N,)`; scores: :math:`(N, T)` per-token attribution.
        target: the explained class: an int, or one per sentence.
        percents: the :math:`k` values (default :data:`ERASER_PERCENTS`).
        removal, order, additional_forward_args, apply_softmax, batch_size, progress, replacement: as
            :func:`~captum_text_ext.metrics.curves.deletion_curve` (``removal``: ``"zero"``, ``"unk"``, ``"pad"``,
            ``"drop"`` or a replacement embedding).

    Returns:
        An :class:`ErasureResult`.
    """
    return _erasure(False, forward_func, embeddings, lengths, scores, target, percents, removal, order,
                    additional_forward_args, apply_softmax, batch_size, progress, replacement)


def sufficiency(
    forward_func: ForwardFunc,
    embeddings: Tensor,
    lengths: Tensor,
    scores: Tensor,
    target: Union[int, Sequence[int], Tensor],
    percents: Sequence[float] = ERASER_PERCENTS,
    removal: Removal = "zero",
    order: str = "signed",
    additional_forward_args: Optional[Tuple[Any, ...]] = None,
    apply_softmax: bool = True,
    batch_size: int = 256,
    progress: bool = False,
    replacement: Optional[Tensor] = None,
) -> ErasureResult:
    r""":math:`\mathrm{suff}_k = p(x) - p(r_k)` per sentence and :math:`k`, and its AOPC (lower is better).

    Arguments as :func:`comprehensiveness`.
    """
    return _erasure(True, forward_func, embeddings, lengths, scores, target, percents, removal, order,
                    additional_forward_args, apply_softmax, batch_size, progress, replacement)


class _ErasureMetric(SentenceMetric):
    _keep_rationale = False

    def __init__(
        self,
        forward_func: ForwardFunc,
        percents: Sequence[float] = ERASER_PERCENTS,
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
        self._erasure = functools.partial(_erasure, percents=tuple(percents), removal=removal, order=order,
                                          apply_softmax=apply_softmax, batch_size=batch_size, progress=progress,
                                          replacement=replacement)

    def update(
        self,
        embeddings: Tensor,
        lengths: Tensor,
        scores: Tensor,
        target: Union[int, Sequence[int], Tensor],
        additional_forward_args: Optional[Tuple[Any, ...]] = None,
    ) -> None:
        """Add a batch (arguments as :func:`comprehensiveness`)."""
        self._results.append(self._erasure(self._keep_rationale, self.forward_func, embeddings, lengths, scores,
                                           target, additional_forward_args=additional_forward_args))

    def _join(self, results: List[ErasureResult]) -> ErasureResult:
        return ErasureResult.cat(results)


class Comprehensiveness(_ErasureMetric):
    r"""Comprehensiveness at :math:`k\%` and its AOPC (higher is better), accumulated over batches.

    Args:
        forward_func: ``forward_func(embeddings, lengths, *additional_forward_args)`` returning logits.
        percents, removal, order, apply_softmax, batch_size, progress, replacement: as :func:`comprehensiveness`.
    """


class Sufficiency(_ErasureMetric):
    r"""Sufficiency at :math:`k\%` and its AOPC (lower is better), accumulated over batches.

    Args: as :class:`Comprehensiveness`.
    """

    higher_is_better = False
    _keep_rationale = True

r"""Normalized AOPC (NAOPC, Edin et al. 2025): AOPC rescaled by the range it can take for this model and sentence.

For a sentence :math:`x` of :math:`L` tokens and an ordering :math:`\pi` of its tokens (most important first), let
:math:`\pi_{1:k}` be its first :math:`k` tokens and :math:`p` the model's probability for the target class. The
AOPC of comprehensiveness and of sufficiency sum over every prefix, :math:`k = 0, \ldots, L`:

.. math::
    \mathrm{AOPC}_{comp}(\pi) = \frac{1}{L+1} \sum_{k=0}^{L} \big( p(x) - p(x \setminus \pi_{1:k}) \big), \qquad
    \mathrm{AOPC}_{suff}(\pi) = \frac{1}{L+1} \sum_{k=0}^{L} \big( p(x) - p(\pi_{1:k}) \big),

where :math:`x \setminus \pi_{1:k}` has those tokens removed and :math:`\pi_{1:k}` keeps only them (the removal is a
setting: :mod:`~captum_text_ext.metrics.perturbation`). How high an AOPC can go depends on the model and the
sentence, so raw AOPCs of different models cannot be compared. NAOPC divides by the attainable range:

.. math::
    \mathrm{NAOPC}(\pi) = \frac{\mathrm{AOPC}(\pi) - \min_{\sigma} \mathrm{AOPC}(\sigma)}
                               {\max_{\sigma} \mathrm{AOPC}(\sigma) - \min_{\sigma} \mathrm{AOPC}(\sigma)},

the extremes taken over all orderings :math:`\sigma` of the sentence's tokens. 1 is the best ordering for
comprehensiveness; for sufficiency (lower is better) 0 is the best. Where every ordering scores alike (the bounds
coincide) NAOPC is undefined and returned as ``nan``.

**Bounds.** An ordering is a chain :math:`\varnothing = S_0 \subset S_1 \subset \cdots \subset S_L` of token sets
and its AOPC is :math:`\frac{1}{L+1}\sum_k f(S_k)`, with :math:`f(S)` the term of the set of the first tokens. So:

- *exactly*, for sentences of at most ``exact_max_tokens`` tokens (default :data:`EXACT_MAX_TOKENS` = 10): the model
  reads all :math:`2^L` subsets once and dynamic programming over the subset lattice,
  :math:`F(S) = f(S) + \max_{i \in S} F(S \setminus \{i\})` (and :math:`\min` for the lower bound), gives the best
  chain, :math:`\max_\sigma \mathrm{AOPC}(\sigma) = F(\{1..L\}) / (L+1)`, without enumerating the :math:`L!`
  orderings;
- *by beam search* for longer sentences (Edin et al.'s approximation), with beam width ``beam_width`` (default
  :data:`BEAM_WIDTH` = 5): chains grow one token at a time and the ``beam_width`` best partial sums are kept. The
  beam bounds are attained by real orderings, so they lie inside the exact ones (the beam's maximum is at most the
  true maximum); NAOPC against them can leave :math:`[0, 1]` when the explained ordering beats the beam, and it is
  not clipped. :attr:`NAOPCResult.exact` says which sentences have exact bounds.

**Both metrics have the same bounds.** Sufficiency's term of a set is comprehensiveness' term of its complement,
:math:`p(x) - p(\pi_{1:k}) = p(x) - p(x \setminus \overline{\pi_{1:k}})`, and the complements of a chain
:math:`S_0 \subset \cdots \subset S_L` form the chain read backwards, which is the chain of the reversed ordering. So
:math:`\mathrm{AOPC}_{suff}(\pi) = \mathrm{AOPC}_{comp}(\pi^{\mathrm{rev}})`: both range over the same values, and
their least and greatest AOPC coincide. :func:`aopc_bounds` computes them once, on comprehensiveness' chains (the
beam grows the removed set; a beam is attained by a real ordering of either metric, so it is a valid bound of both).

The bounds depend on the model, the sentence, the target and the removal, not on the explanation or the metric:
compute them once with :func:`aopc_bounds` and pass them to :func:`naopc` for every method and both metrics
(``bounds=``).

References:
    J. Edin, A. G. Motzfeldt, C. L. Christensen, T. Ruotsalo, L. Maaløe, M. Maistro. Normalized AOPC: Fixing
    Misleading Faithfulness Metrics for Feature Attribution Explainability. ACL 2025.
    https://arxiv.org/abs/2408.08137
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_text_ext.metrics.perturbation import (
    ForwardFunc,
    Removal,
    check_target,
    resolve_removal,
    select_example_args,
    target_probabilities,
)
from captum_text_ext.metrics.reduction import check_scores, ranks, removal_order

__all__ = ["BEAM_WIDTH", "EXACT_MAX_TOKENS", "NAOPC_METRICS", "AOPCBounds", "NAOPCResult", "aopc_bounds", "naopc"]

EXACT_MAX_TOKENS = 10
"""Sentences of at most this many tokens get exact bounds (:math:`2^{10} = 1024` forward passes each)."""
BEAM_WIDTH = 5
"""The beam width of the bounds of longer sentences."""
NAOPC_METRICS: Dict[str, bool] = {"comprehensiveness": True, "sufficiency": False}
"""The AOPCs NAOPC normalizes, with whether higher is better."""
_EXACT_LIMIT = 16
"""The largest ``exact_max_tokens`` accepted (:math:`2^{16}` forward passes per sentence)."""

SetValues = Callable[[List[int]], Tensor]
"""``(token sets as bit masks) -> f of each set``."""


@dataclasses.dataclass(frozen=True)
class AOPCBounds:
    """The least and greatest AOPC over the orderings of each of :math:`N` sentences' tokens, of comprehensiveness and
    sufficiency alike (module docstring).

    Attributes:
        lower: :math:`(N,)` float64 the least AOPC (exact or beam, see :attr:`exact`).
        upper: :math:`(N,)` the greatest.
        exact: :math:`(N,)` bool, True where the bounds are exact.
        beam_width: the beam width of the other sentences' bounds.
        target: :math:`(N,)` the class they are for.
        removal: the removal they are for (``"zero"``, ``"drop"``, or ``"replacement"`` for an embedding).
    """

    lower: Tensor
    upper: Tensor
    exact: Tensor
    beam_width: int
    target: Tensor
    removal: str


@dataclasses.dataclass(frozen=True)
class NAOPCResult:
    """NAOPC of :math:`N` sentences.

    Attributes:
        metric: ``"comprehensiveness"`` or ``"sufficiency"``.
        aopc: :math:`(N,)` float64 AOPC of the explained ordering (every prefix :math:`k = 0..L`).
        lower: :math:`(N,)` the least AOPC over orderings (exact or beam, see :attr:`exact`).
        upper: :math:`(N,)` the greatest.
        naopc: :math:`(N,)` :math:`(\\mathrm{aopc} - \\mathrm{lower}) / (\\mathrm{upper} - \\mathrm{lower})`,
            ``nan`` where the bounds coincide.
        exact: :math:`(N,)` bool, True where the bounds are exact.
        beam_width: the beam width of the other sentences' bounds.
    """

    metric: str
    aopc: Tensor
    lower: Tensor
    upper: Tensor
    naopc: Tensor
    exact: Tensor
    beam_width: int


def _bits(masks: Sequence[int], length: int, steps: int) -> Tensor:
    """Bit masks of the first ``length`` positions as :math:`(M, T)` bool rows (bit :math:`i` is position
    :math:`i`; Python integers, so a sentence may be longer than 64 tokens)."""
    rows = torch.zeros(len(masks), steps, dtype=torch.bool)
    if length:
        rows[:, :length] = torch.tensor([[(mask >> i) & 1 for i in range(length)] for mask in masks], dtype=torch.bool)
    return rows


def _exact_bounds(values: SetValues, length: int) -> Tuple[float, float]:
    """``(min, max)`` over orderings of :math:`\\sum_k f(S_k)`: every subset read once, then the lattice DP."""
    f = values(list(range(1 << length)))
    masks = torch.arange(1 << length)
    counts = torch.zeros(1 << length, dtype=torch.long)
    for i in range(length):
        counts += (masks >> i) & 1
    high, low = f.clone(), f.clone()
    for size in range(1, length + 1):
        layer = masks[counts == size]
        best_high = torch.full((len(layer),), -torch.inf, dtype=torch.float64)
        best_low = torch.full((len(layer),), torch.inf, dtype=torch.float64)
        for i in range(length):
            has = ((layer >> i) & 1).bool()
            before = layer ^ (1 << i)
            best_high = torch.where(has, torch.maximum(best_high, high[before]), best_high)
            best_low = torch.where(has, torch.minimum(best_low, low[before]), best_low)
        high[layer] = f[layer] + best_high
        low[layer] = f[layer] + best_low
    full = (1 << length) - 1
    return float(low[full]), float(high[full])


def _beam_bound(values: SetValues, length: int, beam_width: int, highest: bool) -> float:
    """The greatest (``highest``) or least :math:`\\sum_k f(S_k)` a beam search over chains finds."""
    beams: Dict[int, float] = {0: float(values([0])[0])}
    for _ in range(length):
        grown: Dict[int, float] = {}
        for mask, total in beams.items():
            for i in range(length):
                if not (mask >> i) & 1:
                    new = mask | (1 << i)
                    if new not in grown or (total > grown[new] if highest else total < grown[new]):
                        grown[new] = total  # the future of a chain depends only on its set: keep its best past
        sets = list(grown)
        f = values(sets).tolist()
        scored = sorted(((grown[s] + v, s) for s, v in zip(sets, f)), reverse=highest)
        beams = {s: total for total, s in scored[:beam_width]}
    return next(iter(beams.values()))


def _check(embeddings: Tensor, steps: int, exact_max_tokens: int, beam_width: int) -> None:
    if not 0 <= exact_max_tokens <= _EXACT_LIMIT or beam_width < 1:
        raise ValueError(f"Expected 0 <= exact_max_tokens <= {_EXACT_LIMIT} and beam_width >= 1, but got "
                         f"{exact_max_tokens} and {beam_width}")
    if embeddings.dim() != 3 or embeddings.shape[1] != steps:
        raise ValueError(f"Expected embeddings (N, T, E) matching scores of {steps} steps, but got "
                         f"{tuple(embeddings.shape)}")


def _removal_name(removal: Removal) -> str:
    return "replacement" if isinstance(removal, Tensor) else removal


def aopc_bounds(
    forward_func: ForwardFunc,
    embeddings: Tensor,
    lengths: Tensor,
    target: Union[int, Sequence[int], Tensor],
    removal: Removal = "zero",
    additional_forward_args: Optional[Tuple[Any, ...]] = None,
    apply_softmax: bool = True,
    batch_size: int = 256,
    replacement: Optional[Tensor] = None,
    exact_max_tokens: int = EXACT_MAX_TOKENS,
    beam_width: int = BEAM_WIDTH,
) -> AOPCBounds:
    """The least and greatest AOPC over all orderings of each sentence's tokens, of comprehensiveness and sufficiency
    alike (module docstring): exact up to ``exact_max_tokens`` tokens, by beam search of width ``beam_width`` beyond.

    Arguments as :func:`naopc` (without the scores, the metric and the order).
    """
    _check(embeddings, embeddings.shape[1] if embeddings.dim() == 3 else -1, exact_max_tokens, beam_width)
    removal = resolve_removal(removal, replacement, embeddings.shape[-1])
    classes = check_target(target, embeddings.shape[0], embeddings.device)
    args = tuple(additional_forward_args or ())
    steps = embeddings.shape[1]
    rows: Dict[str, List[float]] = {"lower": [], "upper": []}
    for n in range(embeddings.shape[0]):
        length = int(lengths[n])
        if not 1 <= length <= steps:
            raise ValueError(f"Expected every length in [1, {steps}], but got {length}")
        example_args = select_example_args(args, torch.tensor([n], device=embeddings.device), embeddings.shape[0])

        def probabilities(keep: Tensor) -> Tensor:
            probability, _ = target_probabilities(
                forward_func, embeddings[n : n + 1], lengths[n : n + 1], keep.unsqueeze(1).to(embeddings.device),
                classes[n : n + 1], removal, example_args, None, apply_softmax, batch_size)
            return probability[:, 0].cpu()

        full = float(probabilities(torch.ones(1, steps, dtype=torch.bool))[0])

        def values(masks: List[int]) -> Tensor:
            return full - probabilities(~_bits(masks, length, steps))

        if length <= exact_max_tokens:
            low, high = _exact_bounds(values, length)
        else:
            low = _beam_bound(values, length, beam_width, highest=False)
            high = _beam_bound(values, length, beam_width, highest=True)
        rows["lower"].append(low / (length + 1))
        rows["upper"].append(high / (length + 1))
    return AOPCBounds(torch.tensor(rows["lower"], dtype=torch.float64),
                      torch.tensor(rows["upper"], dtype=torch.float64), (lengths <= exact_max_tokens).cpu(),
                      beam_width, classes.cpu(), _removal_name(removal))


def naopc(
    forward_func: ForwardFunc,
    embeddings: Tensor,
    lengths: Tensor,
    scores: Tensor,
    target: Union[int, Sequence[int], Tensor],
    metric: str = "comprehensiveness",
    removal: Removal = "zero",
    order: str = "signed",
    additional_forward_args: Optional[Tuple[Any, ...]] = None,
    apply_softmax: bool = True,
    batch_size: int = 256,
    replacement: Optional[Tensor] = None,
    exact_max_tokens: int = EXACT_MAX_TOKENS,
    beam_width: int = BEAM_WIDTH,
    bounds: Optional[AOPCBounds] = None,
) -> NAOPCResult:
    r"""The AOPC of the ordering ``scores`` give, its bounds over all orderings and NAOPC (module docstring).

    Args:
        forward_func: ``forward_func(embeddings, lengths, *additional_forward_args)`` returning logits.
        embeddings: :math:`(N, T, E)`; lengths: :math:`(N,)`; scores: :math:`(N, T)` per-token attribution.
        target: the explained class: an int, or one per sentence.
        metric: ``"comprehensiveness"`` or ``"sufficiency"`` (:data:`NAOPC_METRICS`).
        removal, order, additional_forward_args, apply_softmax, batch_size, replacement: as
            :func:`~captum_text_ext.metrics.curves.deletion_curve`.
        exact_max_tokens: sentences of at most this many tokens get exact bounds (at most 16).
        beam_width: the beam width for longer sentences.
        bounds: the :func:`aopc_bounds` of these sentences, model, target and removal, computed once for several
            explanations and both metrics; ``None``: computed here.

    Returns:
        A :class:`NAOPCResult`.

    Raises:
        ValueError: for an unknown metric, removal or order, mismatched shapes, ``exact_max_tokens`` outside
            ``[0, 16]``, ``beam_width < 1``, or ``bounds`` of another target, removal or batch.

    Examples:
        >>> weights = torch.tensor([1.0, -2.0, 0.5])  # class-1 logit: the sum of the tokens' weights
        >>> forward = lambda x, n: torch.stack([torch.zeros(len(x)), (x[..., 0] * weights).sum(1)], 1)
        >>> result = naopc(forward, torch.ones(1, 3, 1), torch.tensor([3]), weights.view(1, 3), target=1)
        >>> round(float(result.naopc[0]), 6), bool(result.exact[0])  # the weights' own order is the best
        (1.0, True)
    """
    check_scores(scores, lengths)
    if metric not in NAOPC_METRICS:
        raise ValueError(f"Expected `metric` to be one of {list(NAOPC_METRICS)}, but got {metric!r}")
    _check(embeddings, scores.shape[1], exact_max_tokens, beam_width)
    if embeddings.shape[0] != scores.shape[0]:
        raise ValueError(f"Expected embeddings (N, T, E) matching scores {tuple(scores.shape)}, but got "
                         f"{tuple(embeddings.shape)}")
    resolved = resolve_removal(removal, replacement, embeddings.shape[-1])
    classes = check_target(target, embeddings.shape[0], embeddings.device)
    if bounds is None:
        bounds = aopc_bounds(forward_func, embeddings, lengths, classes, removal, additional_forward_args,
                             apply_softmax, batch_size, replacement, exact_max_tokens, beam_width)
    elif bounds.removal != _removal_name(resolved) or not torch.equal(bounds.target, classes.cpu()):
        raise ValueError(f"Expected bounds with removal {_removal_name(resolved)!r} for these targets, but got bounds "
                         f"with removal {bounds.removal!r} for targets {bounds.target.tolist()}")
    aopc = _ordering_aopc(forward_func, embeddings, lengths, scores, classes, metric, resolved, order,
                          tuple(additional_forward_args or ()), apply_softmax, batch_size)
    span = bounds.upper - bounds.lower
    normalized = torch.where(span > 0, (aopc - bounds.lower) / span.clamp(min=torch.finfo(torch.float64).tiny),
                             torch.full_like(span, float("nan")))
    return NAOPCResult(metric, aopc, bounds.lower, bounds.upper, normalized, bounds.exact, bounds.beam_width)


def _ordering_aopc(forward_func: ForwardFunc, embeddings: Tensor, lengths: Tensor, scores: Tensor, classes: Tensor,
                   metric: str, removal: Removal, order: str, args: Tuple[Any, ...], apply_softmax: bool,
                   batch_size: int) -> Tensor:
    """The AOPC of the ordering ``scores`` give: one row per prefix :math:`k = 0..L` of each sentence (none past its
    length) and one unperturbed row per sentence."""
    count = embeddings.shape[0]
    lengths = lengths.to(scores.device)
    rank = ranks(removal_order(scores, lengths, order))  # (N, T); positions past the length rank last
    sentence = torch.repeat_interleave(torch.arange(count, device=scores.device), lengths + 1)
    first = torch.cumsum(lengths + 1, 0) - (lengths + 1)
    prefix = torch.arange(len(sentence), device=scores.device) - first[sentence]  # k of each row
    chosen = rank[sentence] < prefix.unsqueeze(1)
    keep = torch.cat([chosen if metric == "sufficiency" else ~chosen, torch.ones_like(chosen[:count])])
    rows = torch.cat([sentence, torch.arange(count, device=scores.device)]).to(embeddings.device)
    probability, _ = target_probabilities(forward_func, embeddings[rows], lengths[rows.to(lengths.device)],
                                          keep.unsqueeze(0).to(embeddings.device), classes[rows], removal,
                                          select_example_args(args, rows, count), None, apply_softmax, batch_size)
    probability = probability[0].cpu()
    terms = probability[len(sentence):][sentence.cpu()] - probability[: len(sentence)]  # f of the first k tokens
    total = torch.zeros(count, dtype=torch.float64).index_add_(0, sentence.cpu(), terms)
    return total / (lengths.cpu().double() + 1)

r"""From an attribution to one score per token, and from scores to a removal order.

**The reduction.** An attribution over embeddings has shape :math:`(N, T, E)`; every metric and every table of the
package works on one score per token, :math:`s_{n,t}`, obtained by one of

.. math::
    s^{\text{sum}}_{n,t} = \sum_e a_{n,t,e}, \qquad
    s^{\ell_2}_{n,t} = \Big(\sum_e a_{n,t,e}^2\Big)^{1/2}, \qquad
    s^{\text{token}}_{n,t} = \tfrac1E \sum_e a_{n,t,e}.

``"sum"`` is for methods that multiply by the input (Gradient × Input, Integrated Gradients, DeepLift, LRP, CD):
their attributions are additive contributions, and the sum keeps the sign. ``"l2"`` is for pure gradients
(Saliency), whose sign says nothing about a token's contribution. ``"token"`` is for perturbation methods whose
features are whole tokens (Occlusion, FeatureAblation, ShapleyValueSampling, Lime): Captum gives every entry of a
token the token's score, so the mean over the embedding *is* that score.

**The ranking.** Tokens are ranked by their score toward the target, highest first (``order="signed"``): a token
speaking against the target comes last. ``order="abs"`` ranks by :math:`|s_{n,t}|` instead. Ties keep the reading
order, and positions past a sentence's length never enter a ranking.

**k percent of a sentence** of length :math:`L` means :math:`\max(1, \lceil kL/100 \rceil)` tokens.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

__all__ = ["ORDERS", "REDUCTIONS", "check_scores", "percent_count", "ranks", "removal_order", "token_scores"]

REDUCTIONS = {
    "sum": "sum over the embedding (signed)",
    "l2": "ℓ2 norm over the embedding (unsigned)",
    "token": "the token's own score (Captum gives every embedding entry of a token feature the same value)",
}
"""The per-token reductions by name, with the words the reports print."""
ORDERS = ("signed", "abs")
"""How tokens are ranked: by the score toward the target, or by its magnitude."""


def token_scores(attributions: Tensor, reduction: str) -> Tensor:
    """Reduce an attribution :math:`(N, T, E)` (or :math:`(N, T, E_1, ...)`) to per-token scores :math:`(N, T)`.

    Args:
        attributions: the attribution over embeddings.
        reduction: a key of :data:`REDUCTIONS`.

    Returns:
        :math:`(N, T)` contiguous scores in the attribution's dtype.

    Raises:
        ValueError: for an unknown reduction or an attribution with fewer than 3 dimensions.

    Examples:
        >>> a = torch.tensor([[[3.0, -4.0], [1.0, 1.0]]])
        >>> token_scores(a, "sum"), token_scores(a, "l2"), token_scores(a, "token")
        (tensor([[-1.,  2.]]), tensor([[5.0000, 1.4142]]), tensor([[-0.5000,  1.0000]]))
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"Expected `reduction` to be one of {list(REDUCTIONS)}, but got {reduction!r}")
    if not isinstance(attributions, Tensor) or attributions.dim() < 3:
        shape = tuple(attributions.shape) if isinstance(attributions, Tensor) else type(attributions).__name__
        raise ValueError(f"Expected `attributions` of shape (N, T, E), but got {shape}")
    flat = attributions.reshape(*attributions.shape[:2], -1)
    if reduction == "sum":
        return flat.sum(-1).contiguous()
    if reduction == "l2":
        norms: Tensor = flat.norm(dim=-1)
        return norms.contiguous()
    return flat.mean(-1).contiguous()


def check_scores(scores: Tensor, lengths: Tensor) -> None:
    """Check per-token scores :math:`(N, T)` against lengths :math:`(N,)` (``1 <= length <= T``).

    Raises:
        ValueError: naming the mismatch.
    """
    if not isinstance(scores, Tensor) or scores.dim() != 2:
        shape = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
        raise ValueError(f"Expected per-token `scores` of shape (N, T), but got {shape}; reduce an (N, T, E) "
                         "attribution with `token_scores` first")
    if not isinstance(lengths, Tensor) or lengths.dim() != 1 or lengths.shape[0] != scores.shape[0]:
        shape = tuple(lengths.shape) if isinstance(lengths, Tensor) else type(lengths).__name__
        raise ValueError(f"Expected `lengths` of shape ({scores.shape[0]},), but got {shape}")
    if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > scores.shape[1]):
        raise ValueError(f"Expected every length in [1, {scores.shape[1]}], but got lengths from "
                         f"{int(lengths.min())} to {int(lengths.max())}")


def removal_order(scores: Tensor, lengths: Tensor, order: str = "signed") -> Tensor:
    """Each sentence's positions, most important first; positions past its length come last.

    Args:
        scores: :math:`(N, T)` per-token scores toward the target.
        lengths: :math:`(N,)` sentence lengths.
        order: ``"signed"`` (highest score first) or ``"abs"`` (largest magnitude first).

    Returns:
        :math:`(N, T)` int64 positions; ties keep the reading order.

    Examples:
        >>> removal_order(torch.tensor([[1.0, -3.0, 2.0, 9.0]]), torch.tensor([3]))
        tensor([[2, 0, 1, 3]])
        >>> removal_order(torch.tensor([[1.0, -3.0, 2.0, 9.0]]), torch.tensor([3]), order="abs")
        tensor([[1, 2, 0, 3]])
    """
    if order not in ORDERS:
        raise ValueError(f"Expected `order` to be one of {list(ORDERS)}, but got {order!r}")
    check_scores(scores, lengths)
    key = (scores.abs() if order == "abs" else scores).detach().double()
    padding = torch.arange(scores.shape[1], device=scores.device).unsqueeze(0) >= lengths.to(scores.device).unsqueeze(1)
    return torch.argsort((-key).masked_fill(padding, math.inf), dim=1, stable=True)


def ranks(order: Tensor) -> Tensor:
    """The inverse of :func:`removal_order`: the rank (0 = first) of every position, :math:`(N, T)` int64."""
    result = torch.empty_like(order)
    result.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order).contiguous())
    return result


def percent_count(lengths: Tensor, percents: Sequence[float]) -> Tensor:
    r"""How many tokens :math:`k` percent of each sentence is: :math:`\max(1, \lceil kL/100 \rceil)`, and :math:`0`
    for :math:`k = 0`.

    Args:
        lengths: :math:`(N,)` sentence lengths.
        percents: the :math:`k` values in [0, 100].

    Returns:
        :math:`(K, N)` int64 token counts.

    Examples:
        >>> percent_count(torch.tensor([3, 20]), [0, 1, 10, 50, 100])
        tensor([[ 0,  0],
                [ 1,  1],
                [ 1,  2],
                [ 2, 10],
                [ 3, 20]])
    """
    if any(not 0 <= p <= 100 for p in percents):
        raise ValueError(f"Expected every percent in [0, 100], but got {list(percents)}")
    # exact for rational k: ceil(k L / 100) on integers when k is integral, else in float64
    counts = [
        torch.zeros_like(lengths) if p == 0
        else torch.clamp(torch.ceil(lengths.double() * float(p) / 100.0 - 1e-9).long(), min=1)
        for p in percents
    ]
    return torch.stack(counts).to(lengths.device)

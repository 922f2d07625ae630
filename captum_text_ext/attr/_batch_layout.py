r"""Which dimension of a layer's output holds the examples: a layer method hooked on ``self.emb(ids.t())`` sees
:math:`(T, N, E)`, not :math:`(N, T, E)`, and a per-example account of its relevance must sum over the right entries.

The batch dimension is inferred from the inputs' batch size :math:`N`: the one dimension of size :math:`N`. When
several dimensions have that size (:math:`T = N`), an LRP pass tells them apart by linearity: the relevance is linear
in the relevance the output starts with, so starting from :math:`w_n f_c(x_n)` instead of :math:`f_c(x_n)`
(distinct weights :math:`w_n`) scales example :math:`n`'s entries by :math:`w_n`, which only the true batch dimension
shows. What cannot be told apart is refused, never guessed.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ["batch_candidates", "example_totals", "infer_batch_dims", "layout_error", "probe_weights"]


def batch_candidates(shape: Sequence[int], batch: int) -> List[int]:
    """The dimensions of ``shape`` of size ``batch``.

    >>> batch_candidates((5, 3, 4), 3), batch_candidates((3, 3, 4), 3)
    ([1], [0, 1])
    """
    return [dim for dim, size in enumerate(shape) if size == batch]


def example_totals(tensor: Tensor, dim: Optional[int], batch: int) -> Tensor:
    """:math:`(N,)` the sum of ``tensor`` over everything but its batch dimension ``dim`` (``None``: one example,
    everything summed)."""
    if dim is None:
        return tensor.sum().reshape(1)
    moved = tensor.transpose(0, dim)
    return moved.reshape(batch, math.prod(moved.shape[1:])).sum(1)  # an explicit width: also for an empty batch


def probe_weights(batch: int, like: Tensor) -> Tensor:
    """:math:`(N,)` distinct weights :math:`w_n = n + 1` for the linearity probe."""
    return torch.arange(1, batch + 1, dtype=like.dtype, device=like.device)


def layout_error(shape: Sequence[int], batch: int, what: str) -> ValueError:
    """The error for a tensor whose batch dimension cannot be found."""
    found = batch_candidates(shape, batch)
    why = (
        f"dimensions {found} all have the batch size" if found else "no dimension has the batch size"
    )
    return ValueError(
        f"Expected {what} of shape {tuple(shape)} to have one dimension holding the {batch} examples, but {why}; "
        "its relevance cannot be summed per example (call with a batch size that differs from the other dimensions)"
    )


def infer_batch_dims(
    relevance: Sequence[Tensor],
    batch: int,
    probed: Optional[Sequence[Optional[Tensor]]],
    weights: Optional[Tensor],
    what: str = "the layer's output",
) -> Tuple[Optional[int], ...]:
    """The batch dimension of each relevance tensor.

    Args:
        relevance: the relevance of each tensor, started from the scores.
        batch: :math:`N`.
        probed: the relevance started from ``weights * scores`` (needed when a tensor has several dimensions of size
            :math:`N`), ``None`` for a tensor without one.
        weights: :math:`(N,)` the probe's weights.
        what: names the tensors in errors.

    Raises:
        ValueError: for a tensor without a dimension of size :math:`N` (for :math:`N > 1`), or whose candidates the
            probe does not tell apart.
    """
    dims: List[Optional[int]] = []
    for index, tensor in enumerate(relevance):
        found = batch_candidates(tensor.shape, batch)
        if batch == 1:
            dims.append(found[0] if found else None)
            continue
        if len(found) == 1:
            dims.append(found[0])
            continue
        other = None if probed is None else probed[index]
        if not found or other is None or weights is None:
            raise layout_error(tensor.shape, batch, what)
        dims.append(_probe(tensor, other, weights, found, batch, what))
    return tuple(dims)


def _probe(tensor: Tensor, probed: Tensor, weights: Tensor, found: Sequence[int], batch: int, what: str) -> int:
    scale = float(tensor.abs().sum()) * float(weights.max()) + torch.finfo(tensor.dtype).tiny
    tolerance = 1e3 * torch.finfo(tensor.dtype).eps * scale
    passing = []
    for dim in found:
        totals = example_totals(tensor, dim, batch)
        if float((example_totals(probed, dim, batch) - weights * totals).abs().max()) <= tolerance:
            passing.append((dim, totals))
    if not passing:
        raise layout_error(tensor.shape, batch, what)
    first, totals = passing[0]
    if any(float((other - totals).abs().max()) > tolerance for _, other in passing[1:]):
        raise layout_error(tensor.shape, batch, what)
    return first

"""Captum's ``target`` forms, checked with the package's own errors and turned into one score per example.

A target is ``None`` (a model with one output per example), an int or a 0-d / one-element integer tensor (the same
index for every example), a tuple of ints (an index into the dimensions after the batch), or one target per example:
a list of ints or tuples, or a 1-D integer tensor of length :math:`N`. Float and bool targets, indices out of range and
lists of the wrong length raise ``ValueError`` (Captum's own checks are assertions or indexing errors).

Examples:
    >>> output = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    >>> select_scores(output, 2), select_scores(output, [0, 1]), select_scores(output, torch.tensor([2, 0]))
    (tensor([3., 6.]), tensor([1., 5.]), tensor([3., 4.]))
    >>> select_scores(output, 3)
    Traceback (most recent call last):
    ...
    ValueError: Expected `target` to index the model's output of shape (2, 3), but index 3 is out of range ...
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
from captum._utils.typing import TargetType
from torch import Tensor

__all__ = ["check_target", "select_scores"]


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _per_example(target: TargetType, batch: int, name: str) -> Optional[List[Tuple[int, ...]]]:
    """The target as one index tuple per example (``None`` for ``None``)."""
    if target is None:
        return None
    if isinstance(target, int) and not isinstance(target, bool):
        return [(target,)] * batch
    if isinstance(target, tuple):
        if not target or not all(_is_index(t) for t in target):
            raise ValueError(f"Expected `{name}` as a tuple to hold ints, but got {target!r}")
        return [tuple(int(t) for t in target)] * batch
    if isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise ValueError(f"Expected `{name}` to hold integer class indices, but got a {target.dtype} tensor")
        if target.numel() == 1:
            return [(int(target.item()),)] * batch
        if target.dim() == 1 and target.numel() == batch:
            return [(int(t),) for t in target.tolist()]
        raise ValueError(
            f"Expected `{name}` as a tensor to hold one index or one per example ({batch}), but got shape "
            f"{tuple(target.shape)}"
        )
    if isinstance(target, list):
        if len(target) != batch:
            raise ValueError(f"Expected `{name}` to hold one target per example ({batch}), but got {len(target)}")
        rows: List[Tuple[int, ...]] = []
        for item in target:
            if isinstance(item, int) and not isinstance(item, bool):
                rows.append((item,))
            elif isinstance(item, tuple) and item and all(_is_index(t) for t in item):
                rows.append(tuple(int(t) for t in item))
            else:
                raise ValueError(f"Expected `{name}` as a list to hold ints or tuples of ints, but got {item!r}")
        return rows
    raise ValueError(
        f"Expected `{name}` to be None, an int, a tuple, a list or an integer tensor, but got {type(target).__name__}"
    )


def check_target(batch: int, target: TargetType, name: str = "target") -> None:
    """Check ``target``'s form against the batch size (before the model runs).

    Raises:
        ValueError: for a float, bool or otherwise malformed target, or one with the wrong number of entries.
    """
    _per_example(target, batch, name)


def select_scores(output: Tensor, target: TargetType, name: str = "target", leading: int = 0) -> Tensor:
    """The target score of every example: :math:`(N,)`, or :math:`(L_1, \\ldots, N)` for an output with
    ``leading`` dimensions before the batch (contextual decomposition's phrases).

    Raises:
        ValueError: for a malformed target, an index out of range of the output, or a target that does not select
            one score per example.
    """
    lead = tuple(output.shape[:leading])
    shape = tuple(output.shape[leading:])
    batch = int(shape[0])
    rows = _per_example(target, batch, name)
    if rows is None:
        selected = output
    else:
        depth = len(rows[0]) if rows else 1
        if any(len(row) != depth for row in rows) or depth > len(shape) - 1:
            raise ValueError(f"Expected `{name}` to index the dimensions after the batch of an output of shape {shape}")
        for row in rows:
            for dim, position in enumerate(row, start=1):
                if not 0 <= position < shape[dim]:
                    raise ValueError(
                        f"Expected `{name}` to index the model's output of shape {shape}, but index {position} is out "
                        f"of range for dimension {dim}"
                    )
        columns = torch.tensor(rows, dtype=torch.long, device=output.device).reshape(batch, depth)
        index = (torch.arange(batch, device=output.device),) + tuple(columns.unbind(1))
        selected = output[(slice(None),) * leading + index]
    if selected.numel() != batch * math.prod(lead):
        raise ValueError(
            f"Expected `{name}` to select one score per example ({batch}), but it selected a tensor of shape "
            f"{tuple(selected.shape[leading:])} from an output of shape {shape}"
        )
    return selected.reshape(*lead, batch)

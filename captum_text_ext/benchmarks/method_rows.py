"""Every registry method that applies to a model, and a random row, scored on it: the loop the leaderboard and the
planted benchmark share.

A method is left out with its reason when :meth:`~captum_text_ext.explain.Method.skip_reason` gives one, or when it
meets an op without a rule (:class:`~captum_text_ext.decomposition.UnsupportedOperationError`, whose message is the
reason); the global seed is set to ``seed`` before each row, so sampling methods draw the same numbers whatever ran
before them.
"""

from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional, Tuple, TypeVar

import torch
from torch import nn

from captum_text_ext.decomposition import UnsupportedOperationError
from captum_text_ext.explain import Method

__all__ = ["RANDOM", "score_rows"]

RANDOM = "Random"
"""The label of the row that scores tokens uniformly at random (what any method must beat)."""

Row = TypeVar("Row")


def score_rows(
    model: nn.Module,
    layer: Optional[nn.Module],
    methods: Mapping[str, Method],
    seed: int,
    score: Callable[[Optional[Method]], Row],
) -> Tuple[Dict[str, Row], Dict[str, str]]:
    """``score(method)`` for every method that applies to ``model`` read at ``layer``, then ``score(None)`` for the
    :data:`RANDOM` row.

    Returns:
        ``(rows by method label, exclusions: label -> reason)``.
    """
    rows: Dict[str, Row] = {}
    excluded: Dict[str, str] = {}
    for method in [*methods.values(), None]:
        label = RANDOM if method is None else method.label
        reason = None if method is None else method.skip_reason(model, layer)
        if reason is not None:
            excluded[label] = reason
            continue
        torch.manual_seed(seed)
        try:
            rows[label] = score(method)
        except UnsupportedOperationError as unsupported:
            excluded[label] = str(unsupported)
    return rows, excluded

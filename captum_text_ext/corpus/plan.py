"""The batch plan of a corpus run, computed from the corpus order alone, and the per-example seeds.

The corpus is cut into windows of consecutive examples (window :math:`k` holds positions :math:`kW \\ldots
(k+1)W - 1`); each window is one shard of the result. Within a window the examples are sorted by their number of
tokens (ties in corpus order) and cut into batches of at most ``batch_size`` examples and ``token_budget`` padded
tokens (:func:`plan_batches`). Nothing of this depends on the number of processes: the windows are then dealt out to
the ranks (:func:`deal`), so every example meets the same batch at any world size. Methods that draw random samples
run one example at a time with its own seed, :func:`example_seed` (a function of the run's seed and the example's
id), so that their numbers do not depend on the batch either.

Examples:
    >>> plan_batches([5, 2, 9, 2, 4], batch_size=2, token_budget=100)
    [[1, 3], [4, 0], [2]]
    >>> plan_batches([5, 2, 9, 2, 4], batch_size=8, token_budget=8)
    [[1, 3], [4], [0], [2]]
    >>> deal([0, 1, 2, 3, 4], rank=1, world_size=2)
    [1, 3]
"""

from __future__ import annotations

import hashlib
import math
from typing import List, Sequence

__all__ = ["DEFAULT_WINDOW", "TOKENS_PER_EXAMPLE", "deal", "example_seed", "plan_batches", "window_count"]

DEFAULT_WINDOW = 256
"""Examples per window (and per shard of the result)."""
TOKENS_PER_EXAMPLE = 32
"""The default token budget of a batch is ``batch_size`` times this many padded tokens."""


def window_count(examples: int, window: int) -> int:
    """How many windows of ``window`` examples cover ``examples``."""
    return math.ceil(examples / window)


def plan_batches(lengths: Sequence[int], batch_size: int, token_budget: int) -> List[List[int]]:
    """Batches of positions: sorted by length (ties in order), each with at most ``batch_size`` examples and at most
    ``token_budget`` tokens once padded to its longest (a longer example is a batch alone).

    Raises:
        ValueError: for a ``batch_size`` or ``token_budget`` below 1.
    """
    if batch_size < 1 or token_budget < 1:
        raise ValueError(f"Expected `batch_size` and `token_budget` >= 1, but got {batch_size} and {token_budget}")
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: List[List[int]] = []
    for position in order:
        current = batches[-1] if batches else None
        if current is not None and len(current) < batch_size and (len(current) + 1) * lengths[position] <= token_budget:
            current.append(position)
        else:
            batches.append([position])
    return batches


def deal(windows: Sequence[int], rank: int, world_size: int) -> List[int]:
    """The windows of ``rank``: every ``world_size``-th one, starting at its own rank."""
    return list(windows[rank::world_size])


def example_seed(seed: int, example_id: str) -> int:
    """The seed of one example: the first 63 bits of SHA-256 of the run's seed and the example's id.

    Examples:
        >>> example_seed(0, "17") == example_seed(0, "17") != example_seed(1, "17")
        True
    """
    digest = hashlib.sha256(f"{seed}\x1f{example_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)

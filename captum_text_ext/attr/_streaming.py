r"""Streaming over a dataset in batches, and a running mean whose memory does not grow with the dataset.

:class:`RunningMean` merges each batch's sum into the mean (Chan, Golub and LeVeque's pairwise update)

.. math::
    \bar g_{n + b} = \bar g_n + \frac{\sum_{i \in \text{batch}} g_i - b\, \bar g_n}{n + b},

one vectorised update per batch. Captum's ``Summarizer`` updates once per example, which would put a Python loop
over the examples of every batch.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Optional, Tuple, Union

from torch import Tensor
from torch.utils.data import DataLoader, Dataset

__all__ = ["Batches", "RunningMean", "iterate_batches"]

Batches = Union[Tensor, Tuple[Any, ...], "Dataset[Any]", Iterable[Any]]
"""What :func:`iterate_batches` reads (see there)."""


class RunningMean:
    """The mean over the rows of every batch passed to :meth:`update`, kept in the batches' dtype.

    Attributes:
        count: rows seen.
        mean: the mean row (``None`` before the first update).
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean: Optional[Tensor] = None

    def update(self, rows: Tensor) -> None:
        """Merge the rows :math:`(B, ...)` of one batch.

        Raises:
            ValueError: when the rows' shape differs from the earlier batches'.
        """
        size = int(rows.shape[0])
        if size == 0:
            return
        if self.mean is None:
            self.mean = rows.mean(0)
        else:
            if rows.shape[1:] != self.mean.shape:
                raise ValueError(
                    f"Expected every batch to have rows of shape {tuple(self.mean.shape)}, but got "
                    f"{tuple(rows.shape[1:])}"
                )
            self.mean = self.mean + (rows.sum(0) - size * self.mean) / (self.count + size)
        self.count += size


def _split(item: Any) -> Tuple[Any, Tuple[Any, ...]]:
    if isinstance(item, Tensor):
        return item, ()
    if isinstance(item, (tuple, list)) and item:
        return item[0], tuple(item[1:])
    raise TypeError(
        f"Expected each batch to be a tensor of inputs or a tuple (inputs, *additional_forward_args), but got "
        f"{type(item).__name__}"
    )


def iterate_batches(data: Batches, batch_size: int) -> Iterator[Tuple[Any, Tuple[Any, ...]]]:
    """``(inputs, additional_forward_args)`` per batch of ``data``, one batch in memory at a time.

    ``data`` is one of:

    - a ``Tensor``: the inputs of the whole set, cut into batches of ``batch_size`` rows;
    - a ``tuple`` ``(inputs, *additional_forward_args)`` for the whole set: every tensor in it is cut alike along
      dimension 0, other values are passed to every batch;
    - a ``torch.utils.data.Dataset`` whose items are single examples (a tensor, or a tuple ``(inputs, *args)``):
      batched by a ``DataLoader`` with ``batch_size`` and the default collation;
    - a ``DataLoader`` or any other iterable: each item is a batch (a tensor, or a tuple ``(inputs, *args)``).

    Raises:
        ValueError: for a non-positive ``batch_size``.
        TypeError: for an item that is neither a tensor nor a non-empty tuple or list.
    """
    if batch_size < 1:
        raise ValueError(f"Expected `batch_size` >= 1, but got {batch_size}")
    if isinstance(data, Tensor):
        data = (data,)
    if isinstance(data, tuple):
        inputs, args = _split(data)
        if not isinstance(inputs, Tensor):
            raise TypeError(f"Expected the inputs to be a tensor, but got {type(inputs).__name__}")
        for start in range(0, int(inputs.shape[0]), batch_size):
            rows = slice(start, start + batch_size)
            yield inputs[rows], tuple(a[rows] if isinstance(a, Tensor) and a.dim() else a for a in args)
        return
    batches: Iterable[Any] = DataLoader(data, batch_size=batch_size) if isinstance(data, Dataset) else data
    for item in batches:
        yield _split(item)


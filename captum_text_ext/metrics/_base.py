"""The base of the metric classes: torchmetrics' ``update`` / ``compute`` / ``reset`` over sentence batches."""

from __future__ import annotations

import abc
from typing import Any, List

__all__ = ["SentenceMetric"]


class SentenceMetric(abc.ABC):
    """A metric accumulated sentence batch by sentence batch.

    A subclass scores a batch in ``update(...)`` with its functional form and appends the per-sentence result to
    ``self._results``; :meth:`compute` joins every result since the last :meth:`reset` with :meth:`_join`.

    Attributes:
        higher_is_better: whether a larger value means a better explanation.
    """

    higher_is_better: bool = True

    def __init__(self) -> None:
        self._results: List[Any] = []

    def compute(self) -> Any:
        """Every sentence seen since the last :meth:`reset`.

        Raises:
            RuntimeError: before the first ``update``.
        """
        if not self._results:
            raise RuntimeError(f"Expected `{type(self).__name__}.update` to be called before `compute`")
        return self._join(self._results)

    def reset(self) -> None:
        """Forget every batch."""
        self._results = []

    @abc.abstractmethod
    def _join(self, results: List[Any]) -> Any:
        """One result for every batch's ``results``, in order."""

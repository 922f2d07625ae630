"""The record that carries one explanation from the methods to the reports: :class:`TextAttribution`.

:func:`captum_text_ext.explain.explain` returns these records and every report renders them
(:func:`captum_text_ext.visualization.render_html`, :func:`captum_text_ext.report.write_explain_report`). They live
in a module of their own so that the method registry (:mod:`captum_text_ext.explain`) imports no report-writing code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

from torch import Tensor

__all__ = ["ClassLabel", "TextAttribution"]

ClassLabel = Union[int, str]
"""A class as an index or a name."""


@dataclass(eq=False)
class TextAttribution:
    """One sentence's per-token attribution from one method, with what it explains.

    Args:
        tokens: the words, in order.
        scores: one score per token, shape :math:`(T,)`; reduce an embedding dimension first (e.g. ``.sum(-1)``).
        method: the attribution method's display name.
        target: the class the attribution explains.
        predicted: the model's predicted class.
        probability: the model's probability for ``predicted``, in [0, 1].
        true_label: the gold label, if known.
        convergence_delta: the method's convergence delta (e.g. Captum's ``return_convergence_delta=True``), if any.

    Raises:
        TypeError: if ``tokens`` is a single string or ``scores`` is not a tensor.
        ValueError: if ``scores`` is not of shape ``(len(tokens),)`` or ``probability`` is outside [0, 1].

    Examples:
        >>> import torch
        >>> record = TextAttribution(["good", "film"], torch.tensor([0.8, 0.1]), "IG", target=1, predicted=1,
        ...                          probability=0.9, true_label=1, convergence_delta=0.01)
        >>> record.method, tuple(record.scores.shape)
        ('IG', (2,))
    """

    tokens: Sequence[str]
    scores: Tensor
    method: str
    target: ClassLabel
    predicted: ClassLabel
    probability: float
    true_label: Optional[ClassLabel] = None
    convergence_delta: Optional[float] = None

    def __post_init__(self) -> None:
        if isinstance(self.tokens, str):
            raise TypeError("Expected `tokens` to be a sequence of strings, but got a single str")
        if not isinstance(self.scores, Tensor):
            raise TypeError(f"Expected `scores` to be a torch.Tensor, but got {type(self.scores).__name__}")
        if tuple(self.scores.shape) != (len(self.tokens),):
            raise ValueError(
                f"Expected `scores` of shape (T,) with T = len(tokens) = {len(self.tokens)}, "
                f"but got {tuple(self.scores.shape)}"
            )
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"Expected `probability` in [0, 1], but got {self.probability}")

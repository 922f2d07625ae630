"""The records that carry one explanation from the methods to the reports: :class:`TextAttribution` and the
:class:`GroundTruthMarks` a report marks when it is known.

:func:`captum_text_ext.explain.explain` returns these records and every report renders them
(:func:`captum_text_ext.visualization.render_html`, :mod:`captum_text_ext.report`). They live in a module of their
own so that the method registry (:mod:`captum_text_ext.explain`) imports no report-writing code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence, Tuple, Union

from torch import Tensor

if TYPE_CHECKING:
    from captum_text_ext.datasets import SyntheticExample

__all__ = ["ClassLabel", "GroundTruthMarks", "TextAttribution"]

ClassLabel = Union[int, str]
"""A class as an index or a name."""


@dataclass(frozen=True)
class GroundTruthMarks:
    """What is known to be true of a sentence's tokens, for a report to mark (the synthetic corpus knows it).

    Args:
        decisive: per token, whether it decides the label (e.g.
            :attr:`~captum_text_ext.datasets.SyntheticExample.decisive`).
        negation_spans: the ``[start, end)`` token ranges of the negations: each negator through the end of its
            scope.

    Raises:
        ValueError: if a span is empty or reaches past the sentence.

    Examples:
        >>> GroundTruthMarks((False, True, True), negation_spans=((1, 3),)).negated(2)
        True
        >>> from captum_text_ext.datasets import annotate
        >>> GroundTruthMarks.from_synthetic(annotate(("it", "is", "not", "bad")))
        GroundTruthMarks(decisive=(False, False, True, True), negation_spans=((2, 4),))
    """

    decisive: Tuple[bool, ...]
    negation_spans: Tuple[Tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        for start, end in self.negation_spans:
            if not 0 <= start < end <= len(self.decisive):
                raise ValueError(
                    f"Expected negation spans [start, end) with 0 <= start < end <= {len(self.decisive)} tokens, "
                    f"but got ({start}, {end})"
                )

    @classmethod
    def from_synthetic(cls, example: "SyntheticExample") -> "GroundTruthMarks":
        """The marks of a synthetic sentence: its decisive words, and each negation from the negator through the
        end of its scope."""
        return cls(example.decisive, tuple((negator, end) for negator, _, end in example.negation_spans))

    def negated(self, index: int) -> bool:
        """Whether token ``index`` lies in a negation span."""
        return any(start <= index < end for start, end in self.negation_spans)


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
        signed: whether the sign of a score means something (toward or against the target); ``False`` for
            magnitudes such as Saliency's ℓ2 norm, which reports draw on a sequential colour scale.
        ground_truth: what is known about the tokens (decisive words, negation spans), marked by the reports.
        word_ids: for scores per subword, the index of the word each token belongs to (negative for special tokens
            such as ``[CLS]``); reports draw a word's subwords joined and special tokens apart. ``None`` for scores
            per word.

    Raises:
        TypeError: if ``tokens`` is a single string or ``scores`` is not a tensor.
        ValueError: if ``scores`` is not of shape ``(len(tokens),)``, ``probability`` is outside [0, 1], an
            unsigned record has a negative score, or ``ground_truth`` or ``word_ids`` covers another number of
            tokens.

    Examples:
        >>> import torch
        >>> record = TextAttribution(["good", "film"], torch.tensor([0.8, 0.1]), "IG", target=1, predicted=1,
        ...                          probability=0.9, true_label=1, convergence_delta=0.01)
        >>> record.method, tuple(record.scores.shape), record.signed
        ('IG', (2,), True)
    """

    tokens: Sequence[str]
    scores: Tensor
    method: str
    target: ClassLabel
    predicted: ClassLabel
    probability: float
    true_label: Optional[ClassLabel] = None
    convergence_delta: Optional[float] = None
    signed: bool = True
    ground_truth: Optional[GroundTruthMarks] = None
    word_ids: Optional[Sequence[int]] = None

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
        if not self.signed and bool((self.scores < 0).any()):
            raise ValueError(
                f"Expected non-negative scores for the unsigned method {self.method!r} (signed=False), but got "
                f"{float(self.scores.min()):+.4g}; pass signed=True for scores whose sign means something"
            )
        if self.ground_truth is not None and len(self.ground_truth.decisive) != len(self.tokens):
            raise ValueError(
                f"Expected `ground_truth` for {len(self.tokens)} tokens, but it covers "
                f"{len(self.ground_truth.decisive)}"
            )
        if self.word_ids is not None and len(self.word_ids) != len(self.tokens):
            raise ValueError(
                f"Expected `word_ids` for {len(self.tokens)} tokens, but it covers {len(self.word_ids)}"
            )

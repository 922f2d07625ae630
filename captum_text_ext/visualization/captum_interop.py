"""Build Captum's :class:`~captum.attr.visualization.VisualizationDataRecord` safely from per-token attributions.

Captum's ``visualize_text`` and ``format_word_importances`` clip importances to [-1, 1] and insert words and class
names into HTML unescaped (captum #1226). :func:`to_visualization_record` therefore normalizes the per-token scores
per sentence by their largest absolute value (so the clipping never bites and colour intensity is comparable within
the sentence, as in Arras et al., 2017) and HTML-escapes the tokens and any class given as a name. Captum colours
positive scores green and negative red (this package's own pages use red and blue). A subword model's scores are
shown per subword (pass the subword tokens), or per word (pass the words and each subword's ``word_ids``: a word's
subword scores are summed, :func:`~captum_text_ext.datasets.subwords.aggregate_subword_scores`).

Examples:
    >>> import torch
    >>> from captum.attr import visualization as viz
    >>> record = to_visualization_record(["x<script>", "good"], torch.tensor([[1.0, 1.0], [-4.0, 0.0]]),
    ...                                  pred_prob=0.8, pred_class="pos", true_class="pos", attr_class="pos")
    >>> record.word_attributions, record.attr_score
    (tensor([ 0.5000, -1.0000]), -2.0)
    >>> "<script>" in viz.format_word_importances(record.raw_input_ids, record.word_attributions)
    False
"""

from __future__ import annotations

import html
from typing import Optional, Sequence, cast

from captum.attr import visualization
from torch import Tensor

from captum_text_ext.datasets.subwords import aggregate_subword_scores, word_ids_tensor
from captum_text_ext.visualization.html import ClassLabel, normalize_scores

__all__ = ["to_visualization_record"]


def _class(value: ClassLabel) -> int:
    """An index as is, a name HTML-escaped.

    Captum annotates the record's classes as ``int`` but only formats them into HTML, so names work; the cast
    states that.
    """
    return value if isinstance(value, int) else cast(int, html.escape(str(value)))


def to_visualization_record(
    tokens: Sequence[str],
    attributions: Tensor,
    pred_prob: float,
    pred_class: ClassLabel,
    true_class: ClassLabel,
    attr_class: ClassLabel,
    convergence_delta: Optional[float] = None,
    word_ids: Optional[Sequence[Optional[int]]] = None,
) -> visualization.VisualizationDataRecord:
    """One sentence's attributions as a Captum record that ``visualize_text`` renders safely and unclipped.

    Args:
        tokens: the words, in order; stored HTML-escaped in ``raw_input_ids`` (a token like ``<pad>`` is therefore
            shown as itself, not turned into Captum's ``#pad``).
        attributions: per-token scores :math:`(T,)`, or per-embedding-dimension scores :math:`(T, E)`, which are
            summed over :math:`E` (the completeness-preserving reduction for Integrated Gradients, LRP, CD and
            Gradient × Input). Pass one example: index the batch dimension of ``attribute()``'s output first.
        pred_prob: the predicted class's probability, in [0, 1].
        pred_class: the predicted class (an index, or a name, which is escaped).
        true_class: the gold class.
        attr_class: the class the attributions explain (the ``target``).
        convergence_delta: the method's convergence delta, if any; the record stores it as ``convergence_score``
            (NaN when not given, as Captum types that field ``float``; ``visualize_text`` does not show it).
        word_ids: for scores per subword shown per word: the word of each subword (``None`` for special tokens, as
            ``tokenizers`` gives them); ``tokens`` are then the words and each word's score is the sum of its
            subwords' (special tokens left out).

    Returns:
        A :class:`~captum.attr.visualization.VisualizationDataRecord` whose ``word_attributions`` are the per-token
        scores divided by their largest absolute value (in [-1, 1]; all zeros stay zeros) and whose ``attr_score``
        is the raw per-token sum.

    Shape:
        - attributions: :math:`(T,)` or :math:`(T, E)` with :math:`T` = ``len(tokens)``, or :math:`T` =
          ``len(word_ids)`` subwords when ``word_ids`` is given.
        - ``word_attributions``: :math:`(T,)`, or one per word.

    Raises:
        TypeError: if ``tokens`` is a single string.
        ValueError: if ``attributions`` has another shape, ``word_ids`` number other words than ``tokens``, or
            ``pred_prob`` is outside [0, 1].

    Examples:
        >>> import torch
        >>> record = to_visualization_record(["goodie", "film"], torch.tensor([0.1, 2.0, 1.0, 0.5, 0.3]),
        ...                                  pred_prob=0.8, pred_class=1, true_class=1, attr_class=1,
        ...                                  word_ids=[None, 0, 0, 1, None])
        >>> record.raw_input_ids, record.word_attributions
        (['goodie', 'film'], tensor([1.0000, 0.1667]))
    """
    if isinstance(tokens, str):
        raise TypeError("Expected `tokens` to be a sequence of strings, but got a single str")
    shape = tuple(attributions.shape)
    steps = len(tokens) if word_ids is None else len(word_ids)
    if attributions.dim() not in (1, 2) or shape[0] != steps:
        source = "len(tokens)" if word_ids is None else "len(word_ids)"
        raise ValueError(f"Expected `attributions` of shape (T,) or (T, E) with T = {source} = {steps}, but got {shape}")
    if not 0.0 <= pred_prob <= 1.0:
        raise ValueError(f"Expected `pred_prob` in [0, 1], but got {pred_prob}")
    per_token = attributions.detach().cpu()
    if per_token.dim() == 2:
        per_token = per_token.sum(dim=1)
    if word_ids is not None:
        per_token = aggregate_subword_scores(per_token.unsqueeze(0), word_ids_tensor([word_ids]))[0]
        if per_token.numel() != len(tokens):
            raise ValueError(f"Expected `word_ids` to number the {len(tokens)} words of `tokens`, but they number "
                             f"{per_token.numel()}")
    return visualization.VisualizationDataRecord(
        word_attributions=normalize_scores(per_token),
        pred_prob=float(pred_prob),
        pred_class=_class(pred_class),
        true_class=_class(true_class),
        attr_class=_class(attr_class),
        attr_score=float(per_token.sum()),
        raw_input_ids=[html.escape(token) for token in tokens],
        convergence_score=float("nan") if convergence_delta is None else float(convergence_delta),
    )

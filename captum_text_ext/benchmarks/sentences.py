r"""Sentences embedded once and kept in batches of similar length, and the model runs the benchmarks make over them.

A benchmark that explains many sentences with one model embeds them once (:func:`embed_sentences`); the
:class:`Sentences` then feed the model (:func:`predict`, :func:`target_scores`) and a word-relevance method
(:func:`word_relevance`) batch by batch, so that no method loops over sentences in Python.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from captum_text_ext.datasets import pad_sequences

if TYPE_CHECKING:
    from captum_text_ext.benchmarks.subword_sentences import SubwordLayout

__all__ = [
    "BATCH_SIZE",
    "Forward",
    "SentenceBatch",
    "Sentences",
    "WordRelevanceFn",
    "embed_sentences",
    "predict",
    "target_scores",
    "word_relevance",
]

BATCH_SIZE = 64
"""Sentences per batch."""
Forward = Callable[..., Tensor]
"""``forward(embeddings (N, T, E), lengths (N,), *forward_args) -> logits (N, C)``
(:attr:`SentenceBatch.forward_args`)."""
WordRelevanceFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``(embeddings (N, T, E), lengths (N,), target (N,)) -> word relevance (N, T)``."""


@dataclasses.dataclass(frozen=True)
class SentenceBatch:
    """Embedded sentences of similar length.

    Attributes:
        index: :math:`(n,)` the sentences' positions in the whole set.
        embeddings: :math:`(n, T, E)` their embeddings (detached), padded with the pad id's embedding.
        lengths: :math:`(n,)` their numbers of words.
        token_ids: :math:`(n, T)` the padded token ids the embeddings come from (set by :func:`embed_sentences`).
        layout: for a subword model, where each word's subwords sit
            (:class:`~captum_text_ext.benchmarks.subword_sentences.SubwordLayout`): ``embeddings`` then hold the
            packed words and ``lengths`` the words; ``None`` for a word model.
    """

    index: Tensor
    embeddings: Tensor
    lengths: Tensor
    token_ids: Optional[Tensor] = None
    layout: Optional["SubwordLayout"] = None

    @property
    def forward_args(self) -> Tuple[Tensor, ...]:
        """What the batch's forward function reads after the embeddings and lengths: nothing for a word model, the
        layout (:meth:`SubwordLayout.forward_args`) for a subword model."""
        if self.layout is None:
            return ()
        if self.token_ids is None:
            raise ValueError("Expected a subword batch to keep its token ids")
        return self.layout.forward_args(self.token_ids)


@dataclasses.dataclass(frozen=True)
class Sentences:
    """A set of embedded sentences in batches of at most :data:`BATCH_SIZE` (sorted by length).

    Attributes:
        batches: the batches; together they hold every sentence once.
        lengths: :math:`(N,)` every sentence's number of words, in the set's order.
        labels: :math:`(N,)` the true classes.
    """

    batches: List[SentenceBatch]
    lengths: Tensor
    labels: Tensor

    @property
    def max_length(self) -> int:
        """The longest sentence's number of words."""
        return int(self.lengths.max())

    def __len__(self) -> int:
        return int(self.lengths.numel())


def embed_sentences(
    embedding: nn.Module,
    token_ids: Sequence[Sequence[int]],
    labels: Sequence[int],
    pad_index: int,
    batch_size: int = BATCH_SIZE,
    fixed_len: Optional[int] = None,
) -> Sentences:
    """Embed token-id sequences in batches of similar length.

    Args:
        embedding: the model's embedding layer (token ids :math:`(n, T)` to :math:`(n, T, E)`).
        token_ids: one id sequence per sentence.
        labels: one true class per sentence.
        pad_index: the padding id.
        batch_size: the most sentences per batch.
        fixed_len: pad (and crop) every batch to this length, for models with a fixed input length.

    Returns:
        The :class:`Sentences`; batches follow the sentences sorted by length (ties in the set's order).

    Raises:
        ValueError: for no sentences, a count mismatch or a non-positive ``batch_size``.
    """
    if not token_ids or len(token_ids) != len(labels):
        raise ValueError(f"Expected as many labels as sentences (> 0), but got {len(token_ids)} and {len(labels)}")
    if batch_size < 1:
        raise ValueError(f"Expected `batch_size` >= 1, but got {batch_size}")
    lengths = torch.tensor([len(ids) for ids in token_ids], dtype=torch.long)
    if fixed_len is not None:
        lengths = lengths.clamp(max=fixed_len)
    order = torch.argsort(lengths, stable=True)
    batches = []
    with torch.no_grad():
        for start in range(0, len(token_ids), batch_size):
            index = order[start : start + batch_size]
            ids, batch_lengths = pad_sequences([token_ids[i] for i in index.tolist()], pad_index, fixed_len=fixed_len)
            batches.append(SentenceBatch(index, embedding(ids).detach(), batch_lengths, ids))
    return Sentences(batches, lengths, torch.tensor(list(labels), dtype=torch.long))


def predict(forward: Forward, sentences: Sentences, deleted: Optional[Tensor] = None) -> Tensor:
    """The predicted class of every sentence, optionally with words deleted (their embeddings set to zero).

    Args:
        forward: the model on embeddings and lengths.
        sentences: the sentences.
        deleted: :math:`(N, T_{max})` bool, True at the words to delete.

    Returns:
        :math:`(N,)` the argmax of the logits.
    """
    predicted = torch.empty(len(sentences), dtype=torch.long)
    with torch.no_grad():
        for batch in sentences.batches:
            embeddings = batch.embeddings
            if deleted is not None:
                keep = ~deleted[batch.index, : embeddings.shape[1]]
                embeddings = embeddings * keep.unsqueeze(-1).to(embeddings.dtype)
            predicted[batch.index] = forward(embeddings, batch.lengths, *batch.forward_args).argmax(-1)
    return predicted


def target_scores(forward: Forward, sentences: Sentences, targets: Tensor) -> Tensor:
    """The logit of each sentence's target class.

    Args:
        forward: the model on embeddings and lengths.
        sentences: the sentences.
        targets: :math:`(N,)` the classes.

    Returns:
        :math:`(N,)` float64 scores.
    """
    scores = torch.empty(len(sentences), dtype=torch.float64)
    with torch.no_grad():
        for batch in sentences.batches:
            logits = forward(batch.embeddings, batch.lengths, *batch.forward_args)
            scores[batch.index] = logits.gather(1, targets[batch.index].unsqueeze(1)).squeeze(1).double()
    return scores


def word_relevance(method: WordRelevanceFn, sentences: Sentences, targets: Tensor) -> Tensor:
    """Run a word-relevance method batch by batch.

    Args:
        method: ``(embeddings, lengths, target) -> (n, T)``.
        sentences: the sentences.
        targets: :math:`(N,)` the class to explain for each sentence.

    Returns:
        :math:`(N, T_{max})` float64 word relevance, 0 past each sentence's end.
    """
    relevance = torch.zeros(len(sentences), sentences.max_length, dtype=torch.float64)
    for batch in sentences.batches:
        scores = method(batch.embeddings, batch.lengths, targets[batch.index]).detach().double()
        relevance[batch.index, : scores.shape[1]] = scores
    positions = torch.arange(sentences.max_length).unsqueeze(0)
    return relevance.masked_fill(positions >= sentences.lengths.unsqueeze(1), 0.0)

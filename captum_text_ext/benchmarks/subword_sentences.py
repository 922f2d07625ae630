r"""Sentences of a subword model (a WordPiece transformer) held word by word, so that the removal metrics remove words.

A transformer reads subword tokens between special tokens (``[CLS] … [SEP]``); the benchmarks rank, remove and
score *words*, the units of the ground truth and of what a reader sees. Each batch keeps the output :math:`H \in
\mathbb{R}^{n \times T \times d}` of the layer the methods attribute to (the model's embeddings module,
:func:`~captum_text_ext.explain.embedding_layer`) packed word by word: word :math:`w` of sentence :math:`i`, made of
the subwords at positions :math:`t_{w,1} < \dots < t_{w,k_w}`, is the row

.. math::

    P_{i,w} = \big(H_{i,t_{w,1}}, \dots, H_{i,t_{w,k_w}}, 0, \dots, 0\big) \in \mathbb{R}^{K d},

:math:`K` the most subwords of a word in the batch. The metrics of :mod:`captum_text_ext.metrics` read :math:`P` as
embedded sentences of :math:`W` "tokens": zeroing :math:`P_{i,w}` (removal ``"zero"``) zeroes every subword of the
word at the embeddings module's output. Special tokens belong to no word: they keep their rows and are never removed.
:class:`SubwordForward` is the model on :math:`P`: the rows go back to their positions and the model runs with the
embeddings module's output replaced (:func:`~captum_text_ext.explain.replaced_output`), so on an unchanged
:math:`P` it gives the model's own logits, exactly. Per-word scores are the sums of their subwords' scores
(:func:`~captum_text_ext.datasets.aggregate_subword_scores`).

What does not carry over from word models, and is refused rather than approximated: removal ``"drop"`` (the words
would move but their positions would not), and ``"unk"`` / ``"pad"`` replacements (a token's vector at the
embeddings module's output depends on its position, so there is no one replacement vector).
"""

from __future__ import annotations

import dataclasses
from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn

from captum_text_ext.benchmarks.sentences import BATCH_SIZE, SentenceBatch, Sentences
from captum_text_ext.datasets import NO_WORD, WordPieceTokenizer
from captum_text_ext.explain.layers import capture_layer_output, replaced_output

__all__ = ["SubwordForward", "SubwordLayout", "embed_subword_sentences", "pack", "unpack"]


@dataclasses.dataclass(frozen=True)
class SubwordLayout:
    """Where each word's subwords sit in a batch of subword sentences.

    Attributes:
        token_lengths: :math:`(n,)` real tokens per sentence (special tokens included): what the model reads.
        word_ids: :math:`(n, T)` the word of every token (:data:`~captum_text_ext.datasets.NO_WORD` at special
            tokens and padding).
        slots: :math:`(n, W, K)` the position of subword :math:`k` of word :math:`w`; :math:`T` (one past the last
            position) where the word has fewer than :math:`k + 1` subwords or the sentence fewer than :math:`w + 1`
            words.
        base: :math:`(n, T, d)` the layer's output on the sentences (the special tokens' rows are read from it).
    """

    token_lengths: Tensor
    word_ids: Tensor
    slots: Tensor
    base: Tensor

    @classmethod
    def from_word_ids(cls, word_ids: Tensor, token_lengths: Tensor, base: Tensor) -> "SubwordLayout":
        """The layout of right-padded subword sentences from their word ids.

        Raises:
            ValueError: for a sentence without words, or word ids that are not ``0, 1, …`` in reading order.
        """
        n, steps = word_ids.shape
        real = word_ids != NO_WORD
        words = word_ids.amax(1) + 1  # NO_WORD is -1
        if bool((words < 1).any()):
            raise ValueError("Expected every sentence to hold at least one word")
        positions = torch.arange(steps, device=word_ids.device).expand(n, steps)
        safe = word_ids.clamp(min=0)
        first = torch.full((n, int(words.max())), steps, dtype=torch.long, device=word_ids.device)
        first = first.scatter_reduce(1, safe, torch.where(real, positions, torch.full_like(positions, steps)), "amin")
        marks = torch.where(real, positions, torch.full_like(positions, -1))
        last = torch.full_like(first, -1).scatter_reduce(1, safe, marks, "amax")
        count = torch.zeros_like(first).scatter_add(1, safe, real.long())
        inside = torch.arange(first.shape[1], device=word_ids.device) < words.unsqueeze(1)
        ordered = (first[:, 1:] > first[:, :-1]) | ~inside[:, 1:]
        if bool(((count < 1) & inside).any()) or bool(((last - first + 1 != count) & inside).any()) or \
                not bool(ordered.all()):
            raise ValueError("Expected word ids numbered 0, 1, … in reading order, each word's subwords together")
        offset = torch.where(real, positions - first.gather(1, safe), torch.zeros_like(positions))
        slots = torch.full((n, first.shape[1], int(offset.max()) + 1), steps, dtype=torch.long,
                           device=word_ids.device)
        rows = torch.arange(n, device=word_ids.device).unsqueeze(1).expand(n, steps)
        slots[rows[real], safe[real], offset[real]] = positions[real]
        return cls(token_lengths, word_ids, slots, base)

    @property
    def word_lengths(self) -> Tensor:
        """:math:`(n,)` words per sentence."""
        return _word_counts(self.slots, self.word_ids.shape[1])

    def forward_args(self, token_ids: Tensor) -> Tuple[Tensor, ...]:
        """What :class:`SubwordForward` reads after the packed rows and the word lengths."""
        return token_ids, self.token_lengths, self.slots, self.base

    def select(self, index: Tensor) -> "SubwordLayout":
        """The layout of the sentences at ``index`` (repeats allowed)."""
        return SubwordLayout(self.token_lengths[index], self.word_ids[index], self.slots[index], self.base[index])

    def word_masks(self, masks: Tensor) -> Tensor:
        """Word masks :math:`(P, n, W)` as token masks :math:`(P, n, T)`: a token is in the mask when its word is;
        special tokens and padding never are."""
        padded = torch.cat([masks, torch.zeros_like(masks[..., :1])], dim=-1)
        index = torch.where(self.word_ids == NO_WORD, torch.full_like(self.word_ids, masks.shape[-1]), self.word_ids)
        return padded.gather(-1, index.expand(*masks.shape[:-1], -1))


def _word_counts(slots: Tensor, steps: int) -> Tensor:
    """Words per sentence of a layout's ``slots`` over ``steps`` token positions (a word's first slot is real)."""
    return (slots[:, :, 0] < steps).sum(1)


def pack(values: Tensor, slots: Tensor) -> Tensor:
    """Token rows :math:`(n, T, E)` packed word by word, :math:`(n, W, K E)` (module docstring; zeros in unused
    slots)."""
    n, steps, width = values.shape
    padded = torch.cat([values, values.new_zeros(n, 1, width)], dim=1)
    gathered = padded.gather(1, slots.reshape(n, -1, 1).expand(-1, -1, width))
    return gathered.reshape(n, slots.shape[1], slots.shape[2] * width)


def unpack(packed: Tensor, slots: Tensor, base: Tensor) -> Tensor:
    """The token rows :math:`(n, T, E)` of packed words: ``base`` with each word's subword rows taken from
    ``packed`` (the inverse of :func:`pack` on ``base``)."""
    n, steps, width = base.shape
    padded = torch.cat([base, base.new_zeros(n, 1, width)], dim=1)
    rows = packed.reshape(n, -1, width).to(base.dtype)
    padded = padded.scatter(1, slots.reshape(n, -1, 1).expand(-1, -1, width), rows)
    return padded[:, :steps]


class SubwordForward:
    """The model read from packed words: ``forward(packed, word_lengths, token_ids, token_lengths, slots, base)``
    returns the logits :math:`(n, C)` (the ``forward_func`` of the metrics, with
    :meth:`SubwordLayout.forward_args` as their ``additional_forward_args``).

    Raises:
        ValueError: (when called) when ``word_lengths`` are not the layout's: a removal that shortens sentences
            (``"drop"``) would move words the layout keeps in place.
    """

    def __init__(self, model: nn.Module, layer: nn.Module) -> None:
        self.model = model
        self.layer = layer

    def __call__(self, packed: Tensor, word_lengths: Tensor, token_ids: Tensor, token_lengths: Tensor,
                 slots: Tensor, base: Tensor) -> Tensor:
        words = _word_counts(slots, base.shape[1])
        if not torch.equal(word_lengths.to(words.device), words):
            raise ValueError("Expected the words of each sentence in place (removal 'zero' or a replacement): a "
                             "subword model's words cannot be dropped, because their positions would not move")
        with replaced_output(self.layer, unpack(packed, slots, base)):
            logits: Tensor = self.model(token_ids, token_lengths)
        return logits


def embed_subword_sentences(
    model: nn.Module,
    layer: nn.Module,
    tokenizer: WordPieceTokenizer,
    texts: Sequence[Sequence[str]],
    labels: Sequence[int],
    batch_size: int = BATCH_SIZE,
) -> Sentences:
    """Tokenize sentences given as words and hold them word by word (module docstring).

    Args:
        model: the model (eval mode), reading ``(token_ids, lengths)``.
        layer: the layer whose output is packed (the methods' layer).
        tokenizer: the model's tokenizer.
        texts: each sentence's words.
        labels: their true classes.
        batch_size: the most sentences per batch.

    Returns:
        :class:`~captum_text_ext.benchmarks.sentences.Sentences` whose batches hold the packed words as
        ``embeddings``, the word counts as ``lengths``, the subword ids as ``token_ids`` and the
        :class:`SubwordLayout` as ``layout``; batches follow the sentences sorted by their number of words.

    Raises:
        ValueError: for no sentences, a count mismatch, a non-positive ``batch_size``, or an empty sentence.
    """
    if not texts or len(texts) != len(labels):
        raise ValueError(f"Expected as many labels as sentences (> 0), but got {len(texts)} and {len(labels)}")
    if batch_size < 1:
        raise ValueError(f"Expected `batch_size` >= 1, but got {batch_size}")
    lengths = torch.tensor([len(words) for words in texts], dtype=torch.long)
    order = torch.argsort(lengths, stable=True)
    batches: List[SentenceBatch] = []
    for start in range(0, len(texts), batch_size):
        index = order[start : start + batch_size]
        encoded = tokenizer.encode_batch([texts[i] for i in index.tolist()])
        base = capture_layer_output(model, layer, encoded.token_ids, encoded.lengths)
        layout = SubwordLayout.from_word_ids(encoded.word_ids, encoded.lengths, base)
        batches.append(SentenceBatch(index, pack(base, layout.slots), layout.word_lengths, encoded.token_ids,
                                     layout))
    return Sentences(batches, lengths, torch.tensor(list(labels), dtype=torch.long))

"""Batching token sequences: padding, lengths, masks and length buckets for ``torch.utils.data.DataLoader``."""

from __future__ import annotations

from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Sampler

from captum_text_ext.datasets.vocab import Vocabulary

__all__ = ["BucketBatchSampler", "TextBatch", "TextCollator", "lengths_to_mask", "pad_sequences"]


class TextBatch(NamedTuple):
    """A padded batch.

    Shape:
        - token_ids: ``(N, T)`` int64, padded with the vocabulary's pad id.
        - lengths: ``(N,)`` int64, the number of real tokens per example.
        - mask: ``(N, T)`` bool, True at real tokens.
        - labels: ``(N,)`` int64.
    """

    token_ids: Tensor
    lengths: Tensor
    mask: Tensor
    labels: Tensor


def lengths_to_mask(lengths: Tensor, max_len: Optional[int] = None) -> Tensor:
    """A ``(N, T)`` bool mask, True at positions ``t < lengths[n]``; ``T`` is ``max_len`` or ``lengths.max()``."""
    if lengths.dim() != 1:
        raise ValueError(f"Expected `lengths` to have shape (N,), but got {tuple(lengths.shape)}")
    width = int(lengths.max()) if max_len is None and lengths.numel() else (max_len or 0)
    return torch.arange(width, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def pad_sequences(
    sequences: Sequence[Sequence[int]], pad_index: int, max_len: Optional[int] = None, fixed_len: Optional[int] = None
) -> Tuple[Tensor, Tensor]:
    """Pad id sequences to one length.

    Args:
        sequences: token id lists.
        pad_index: the id written at padded positions.
        max_len: longer sequences are truncated to this many tokens.
        fixed_len: pad every batch to exactly this length (models with a fixed input length, e.g. the text CNNs of
            Yuan et al.); sequences are truncated to it. Default: the batch's longest sequence.

    Returns:
        ``(token_ids (N, T), lengths (N,))``, both int64.

    Raises:
        ValueError: for an empty sequence, which no model can read.
    """
    limit = fixed_len if fixed_len is not None else max_len
    clipped = [list(seq)[:limit] if limit is not None else list(seq) for seq in sequences]
    for i, seq in enumerate(clipped):
        if not seq:
            raise ValueError(f"Expected every sequence to hold at least one token, but sequence {i} is empty")
    width = fixed_len if fixed_len is not None else max((len(s) for s in clipped), default=0)
    ids = torch.full((len(clipped), width), pad_index, dtype=torch.long)
    for i, seq in enumerate(clipped):
        ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    lengths = torch.tensor([len(s) for s in clipped], dtype=torch.long)
    return ids, lengths


class TextCollator:
    """``collate_fn`` turning ``(tokens, label)`` pairs into a :class:`TextBatch`.

    Args:
        vocabulary: encodes the tokens; its pad id fills the padding.
        max_len: truncate longer texts.
        fixed_len: pad every batch to exactly this length.

    Examples:
        >>> vocab = Vocabulary.build([["a", "b"]])
        >>> batch = TextCollator(vocab)([(["a", "b"], 1), (["b"], 0)])
        >>> batch.token_ids.tolist(), batch.lengths.tolist()
        ([[2, 3], [3, 0]], [2, 1])
    """

    def __init__(self, vocabulary: Vocabulary, max_len: Optional[int] = None, fixed_len: Optional[int] = None) -> None:
        self.vocabulary = vocabulary
        self.max_len = max_len
        self.fixed_len = fixed_len

    def __call__(self, items: Sequence[Tuple[Sequence[str], int]]) -> TextBatch:
        ids, lengths = pad_sequences(
            [self.vocabulary.encode(tokens) for tokens, _ in items],
            self.vocabulary.pad_index,
            max_len=self.max_len,
            fixed_len=self.fixed_len,
        )
        labels = torch.tensor([label for _, label in items], dtype=torch.long)
        return TextBatch(ids, lengths, lengths_to_mask(lengths, ids.shape[1]), labels)


class BucketBatchSampler(Sampler[List[int]]):
    """Batches of indices whose texts have similar lengths, so little of a batch is padding.

    The indices are shuffled (seeded, reshuffled each epoch when ``shuffle``), cut into pools of
    ``batch_size * bucket_factor``, sorted by length inside each pool, cut into batches, and the batches shuffled.

    Args:
        lengths: the length of every example.
        batch_size: examples per batch (the last batch may be smaller).
        shuffle: reshuffle every epoch; otherwise batches follow the sorted order.
        seed: seeds the shuffling; epoch ``e`` uses ``seed + e``.
        bucket_factor: pool size in batches.
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, shuffle: bool = True, seed: int = 0, bucket_factor: int = 50
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"Expected `batch_size` >= 1, but got {batch_size}")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.bucket_factor = bucket_factor
        self.epoch = 0

    def __iter__(self) -> Iterator[List[int]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        self.epoch += 1
        order = rng.permutation(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
        pool = self.batch_size * self.bucket_factor
        batches: List[List[int]] = []
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i : i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size))
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return iter(batches)

    def __len__(self) -> int:
        pool = self.batch_size * self.bucket_factor
        full, rest = divmod(len(self.lengths), pool)
        return full * self.bucket_factor + -(-rest // self.batch_size)

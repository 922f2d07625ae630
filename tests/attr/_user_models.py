"""Tiny models written the way Captum's and PyTorch's tutorials (and their users) write them, that nobody here
designed for the methods: an ``nn.EmbeddingBag`` classifier, an ``nn.LSTM(proj_size > 0)``, an LSTM fed
``self.emb(ids.t())``, and a hand-written cell loop masked by multiplication. Each takes ``(token_ids, lengths)``
(and, where it embeds tokens with an ``nn.Embedding``, ``forward_embeddings(embeddings, lengths)``)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence


class BagClassifier(nn.Module):
    """PyTorch's text-classification tutorial model (``nn.EmbeddingBag`` → ``nn.Linear``), Captum's LIME tutorial
    model. ``flat``: the token ids arrive flat, one bag per example given by ``lengths`` (the offsets); else as a 2-D
    batch of fixed-length bags padded with ``padding_idx``. ``weighted``: each id weighs ``1 / (1 + id)``
    (``per_sample_weights``, mode ``sum`` only)."""

    def __init__(self, vocab: int, dim: int, classes: int, mode: str = "mean", flat: bool = True,
                 weighted: bool = False, padding_idx: Optional[int] = 0) -> None:
        super().__init__()
        self.flat, self.weighted = flat, weighted
        self.embedding = nn.EmbeddingBag(vocab, dim, mode=mode, padding_idx=padding_idx)
        self.fc = nn.Linear(dim, classes)

    def forward(self, ids: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        weights = 1.0 / (1.0 + ids.to(self.fc.weight.dtype)) if self.weighted else None
        if not self.flat:
            return self.fc(self.embedding(ids, per_sample_weights=weights))
        assert lengths is not None
        offsets = torch.cumsum(lengths, 0) - lengths
        return self.fc(self.embedding(ids, offsets, per_sample_weights=weights))


def flat_ids(ids: Tensor, lengths: Tensor) -> Tensor:
    """The real tokens of a padded batch :math:`(N, T)`, concatenated: :math:`(\\sum_n L_n,)`."""
    return torch.cat([row[: int(length)] for row, length in zip(ids, lengths)])


class ProjectedLSTM(nn.Module):
    """A bidirectional ``nn.LSTM(proj_size=2)`` over packed sequences, the final states into a linear layer."""

    def __init__(self, vocab: int, dim: int, classes: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim, padding_idx=0)
        self.lstm = nn.LSTM(dim, 4, proj_size=2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(4, classes)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        return self.forward_embeddings(self.embedding(ids), lengths)

    def forward_embeddings(self, x: Tensor, lengths: Tensor) -> Tensor:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.fc(torch.cat([h[0], h[1]], dim=-1))


class SeqFirstLSTM(nn.Module):
    """A time-major LSTM fed ``self.embedding(ids.t())``: the embedding's output is :math:`(T, N, E)`."""

    def __init__(self, vocab: int, dim: int, classes: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim, padding_idx=0)
        self.lstm = nn.LSTM(dim, 3)
        self.fc = nn.Linear(3, classes)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        packed = pack_padded_sequence(self.embedding(ids.t()), lengths, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.fc(h[-1])


class MaskedLoop(nn.Module):
    """A hand-written loop over an ``nn.LSTMCell`` / ``nn.GRUCell`` whose padded steps keep the state by
    multiplication with a 0/1 float mask from the lengths, ``h = m * h_new + (1 - m) * h`` (or by ``torch.where``
    with ``where=True``)."""

    def __init__(self, vocab: int, dim: int, classes: int, cell: str = "lstm", where: bool = False) -> None:
        super().__init__()
        self.where = where
        self.embedding = nn.Embedding(vocab, dim, padding_idx=0)
        self.cell = nn.LSTMCell(dim, 3) if cell == "lstm" else nn.GRUCell(dim, 3)
        self.fc = nn.Linear(3, classes)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        return self.forward_embeddings(self.embedding(ids), lengths)

    def _keep(self, mask: Tensor, new: Tensor, old: Tensor) -> Tensor:
        return torch.where(mask.bool(), new, old) if self.where else mask * new + (1 - mask) * old

    def forward_embeddings(self, x: Tensor, lengths: Tensor) -> Tensor:
        batch, steps = x.shape[:2]
        masks = (torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)).to(x.dtype)
        h = x.new_zeros(batch, 3)
        c = x.new_zeros(batch, 3)
        for t in range(steps):
            m = masks[:, t : t + 1]
            if isinstance(self.cell, nn.LSTMCell):
                h_new, c_new = self.cell(x[:, t], (h, c))
                h, c = self._keep(m, h_new, h), self._keep(m, c_new, c)
            else:
                h = self._keep(m, self.cell(x[:, t], h), h)
        return self.fc(h)

"""The Kim (2014) CNN in the 2-D form of Captum's IMDB and TCAV NLP tutorials: ``nn.Conv2d(1, F, (k, E))`` over the
embeddings seen as a one-channel image."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_text_ext.models._base import ReferenceModel
from captum_text_ext.models._pooling import pad_for_convolution

__all__ = ["KimCNN"]


class KimCNN(ReferenceModel):
    r"""Embedding → ``unsqueeze(1)`` → one ``nn.Conv2d(1, F, (k, E))`` per filter size, each with ReLU and
    ``squeeze(3)`` → ``max_pool1d`` over time → concatenation → dropout → linear.

    This is the CNN of Captum's "Interpreting text models: IMDB sentiment analysis" and TCAV NLP tutorials, layer for
    layer (a ``ModuleList`` ``convs`` of 2-D convolutions whose kernel spans the whole embedding, so each one's output
    is :math:`(N, F, L, 1)`: channels, then :math:`L` locations along time, then a singleton), with one addition: the
    lengths. The tutorials pad every sentence to at least the widest filter and pool over every position; here the
    batch is padded with zeros (the pad embedding) to at least :math:`R = \max_j k_j` steps and, when ``lengths`` are
    given, the positions whose window reaches past :math:`\max(L, R)` are set to :math:`-\infty` before the pooling,
    so a padded batch gives each sentence the logits it gets alone. Without ``lengths`` it is the tutorials' model.

    Args:
        vocab_size: number of token ids.
        embedding_dim: embedding size :math:`E`.
        num_classes: number of output logits :math:`C` (the tutorials: 1).
        num_filters: output channels :math:`F` of each convolution (the tutorials: 100).
        filter_sizes: the height :math:`k_j` of each convolution's kernel, in tokens (the tutorials: 3, 4, 5).
        dropout: dropout before the output layer (the tutorials: 0.5).
        padding_idx: the pad id; its embedding is zero and receives no gradient.

    Shape:
        - token_ids: :math:`(N, T)` int64.
        - lengths: :math:`(N,)` int64 with values in :math:`[1, T]`, optional.
        - output: :math:`(N, C)` logits.

    Attributes:
        embedding: the ``nn.Embedding``.
        convs: the ``nn.Conv2d`` layers, one per filter size (each a layer the hidden-unit methods can name).
        dropout: the ``nn.Dropout`` before the output layer.
        fc: the output ``nn.Linear``.
        receptive_field: :math:`R = \max_j k_j`.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> model = KimCNN(vocab_size=20, embedding_dim=4, num_classes=2, num_filters=3, filter_sizes=(2, 3))
        >>> model(torch.tensor([[2, 3, 4, 5], [6, 7, 0, 0]]), torch.tensor([4, 2])).shape
        torch.Size([2, 2])
        >>> model.convs[1](torch.zeros(1, 1, 5, 4)).shape   # (N, F, L, 1): locations along dimension 2
        torch.Size([1, 3, 3, 1])

    References:
        Yoon Kim. Convolutional Neural Networks for Sentence Classification. EMNLP 2014.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        num_classes: int,
        num_filters: int = 100,
        filter_sizes: Sequence[int] = (3, 4, 5),
        dropout: float = 0.5,
        padding_idx: int = 0,
    ) -> None:
        super().__init__()
        sizes = [int(k) for k in filter_sizes]
        if not sizes or min(sizes) < 1 or num_filters < 1:
            raise ValueError(
                f"Expected non-empty positive `filter_sizes` and a positive `num_filters`, but got {sizes} and "
                f"{num_filters}"
            )
        self._config: Dict[str, Any] = {
            "vocab_size": vocab_size,
            "embedding_dim": embedding_dim,
            "num_classes": num_classes,
            "num_filters": num_filters,
            "filter_sizes": sizes,
            "dropout": dropout,
            "padding_idx": padding_idx,
        }
        self.filter_sizes = tuple(sizes)
        self.receptive_field = max(sizes)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.convs = nn.ModuleList(nn.Conv2d(1, num_filters, (k, embedding_dim)) for k in sizes)
        self.fc = nn.Linear(len(sizes) * num_filters, num_classes)
        self.dropout = nn.Dropout(dropout)

    def extra_repr(self) -> str:
        return f"receptive_field={self.receptive_field}"

    def forward(self, token_ids: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Logits for token ids."""
        return self.forward_embeddings(self.embedding(token_ids), lengths)

    def forward_embeddings(self, embeddings: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Logits for embedded tokens :math:`(N, T, E)` (the entry point for attributing at the embeddings)."""
        given = lengths is not None
        embeddings, lengths = pad_for_convolution(embeddings, lengths, self.receptive_field)
        embedded = embeddings.unsqueeze(1)
        conved = [F.relu(conv(embedded)).squeeze(3) for conv in self.convs]
        if given:
            conved = [self._mask(c, lengths, k) for c, k in zip(conved, self.filter_sizes)]
        pooled = [F.max_pool1d(c, c.shape[2]).squeeze(2) for c in conved]
        logits: Tensor = self.fc(self.dropout(torch.cat(pooled, dim=1)))
        return logits

    def _mask(self, features: Tensor, lengths: Tensor, window: int) -> Tensor:
        """``features`` :math:`(N, F, L)` with the positions whose window passes the sentence set to :math:`-\\infty`."""
        valid = lengths.clamp(min=self.receptive_field) - window + 1
        inside = torch.arange(features.shape[-1], device=features.device).unsqueeze(0) < valid.unsqueeze(1)
        return features.masked_fill(~inside.unsqueeze(1), float("-inf"))

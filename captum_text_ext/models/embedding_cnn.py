"""A one-layer convolutional classifier over word embeddings (Hechtlinger, 2016, first example)."""

from __future__ import annotations

import copy
from typing import Any, Dict, Optional

from torch import Tensor, nn

from captum_text_ext.models._pooling import masked_max_over_time, pad_for_convolution


class EmbeddingCNN(nn.Module):
    r"""Embedding → ``Conv1d`` → ReLU → global max pooling over time → dropout → linear.

    Hechtlinger's first example: 50-dimensional embeddings, 250 filters of width 3. Padding follows
    :class:`~captum_text_ext.models.TextCNN` with ``input_length=None``: positions at or after a sentence's length
    become the pad embedding (zeros), the input is padded to at least ``kernel_size`` steps, and max pooling reads
    position :math:`i` only when :math:`i \le \max(L, k) - k` for a sentence of length :math:`L` and kernel width
    :math:`k`. A padded batch gives each sentence the logits it gets alone, and one-word sentences work.

    Args:
        vocab_size: number of token ids.
        num_classes: number of output logits :math:`C`.
        embedding_dim: embedding size :math:`E`.
        num_filters: convolution output channels :math:`F`.
        kernel_size: convolution width :math:`k`.
        dropout: dropout before the output layer.
        padding_idx: the pad id; its embedding is zero and receives no gradient.

    Shape:
        - token_ids: :math:`(N, T)` int64.
        - lengths: :math:`(N,)` int64 with values in :math:`[1, T]`, optional; all :math:`T` tokens are read when
          omitted.
        - output: :math:`(N, C)` logits.

    Attributes:
        embedding: the ``nn.Embedding``.
        conv: the ``nn.Conv1d`` (it reads :math:`(N, E, T)`).
        activation: the ``nn.ReLU`` after it.
        dropout: the ``nn.Dropout`` before the output layer.
        output: the output ``nn.Linear``.

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> model = EmbeddingCNN(vocab_size=20, num_classes=2, embedding_dim=4, num_filters=5)
        >>> model(torch.tensor([[2, 3, 4, 5], [6, 0, 0, 0]]), torch.tensor([4, 1])).shape
        torch.Size([2, 2])

    References:
        Yotam Hechtlinger. Interpretation of Prediction Models Using the Input Gradient. arXiv:1611.07634, 2016.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        embedding_dim: int = 50,
        num_filters: int = 250,
        kernel_size: int = 3,
        dropout: float = 0.0,
        padding_idx: int = 0,
    ) -> None:
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"Expected `kernel_size` >= 1, but got {kernel_size}")
        self.kernel_size = kernel_size
        self._config: Dict[str, Any] = {
            "vocab_size": vocab_size,
            "num_classes": num_classes,
            "embedding_dim": embedding_dim,
            "num_filters": num_filters,
            "kernel_size": kernel_size,
            "dropout": dropout,
            "padding_idx": padding_idx,
        }
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.conv = nn.Conv1d(embedding_dim, num_filters, kernel_size)
        self.activation = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(num_filters, num_classes)

    @property
    def config(self) -> Dict[str, Any]:
        """The constructor's keyword arguments as plain values: ``type(model)(**model.config)`` rebuilds the model."""
        return copy.deepcopy(self._config)

    def reset_parameters(self) -> None:
        """Re-initialise every layer as its constructor does (the pad embedding becomes zero again)."""
        for module in self.modules():
            if isinstance(module, (nn.Embedding, nn.Conv1d, nn.Linear)):
                module.reset_parameters()

    def extra_repr(self) -> str:
        return f"receptive_field={self.kernel_size}"

    def forward(self, token_ids: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Logits for token ids."""
        return self.forward_embeddings(self.embedding(token_ids), lengths)

    def forward_embeddings(self, embeddings: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Logits for embedded tokens of shape :math:`(N, T, E)`, padded as :meth:`forward` does: the entry point
        for attributing at the embeddings (lengths travel in Captum's ``additional_forward_args``)."""
        embeddings, lengths = pad_for_convolution(embeddings, lengths, self.kernel_size)
        features = self.activation(self.conv(embeddings.transpose(1, 2)))
        pooled = masked_max_over_time(features, lengths, self.kernel_size, self.kernel_size)
        logits: Tensor = self.output(self.dropout(pooled))
        return logits

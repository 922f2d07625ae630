"""A one-layer convolutional classifier over word embeddings (Hechtlinger, 2016, first example)."""

from __future__ import annotations

from typing import Any, Dict

from captum_text_ext.models.text_cnn import TextCNN

__all__ = ["EmbeddingCNN"]


class EmbeddingCNN(TextCNN):
    r"""Embedding → ``Conv1d`` → ReLU → global max pooling over time → dropout → linear.

    Hechtlinger's first example: 50-dimensional embeddings, 250 filters of width 3. It is a one-branch
    :class:`~captum_text_ext.models.TextCNN` (``mode="parallel"``, ``input_length=None``) with Hechtlinger's arguments,
    so its padding is TextCNN's: positions at or after a sentence's length
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
        conv_layers: one ``nn.Conv1d`` (it reads :math:`(N, E, T)`).
        activations: the ``nn.ReLU`` after it.
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
        super().__init__(
            vocab_size,
            embedding_dim,
            num_classes,
            channels=[num_filters],
            kernel_sizes=[kernel_size],
            mode="parallel",
            dropout=dropout,
            padding_idx=padding_idx,
        )
        self._config: Dict[str, Any] = {
            "vocab_size": vocab_size,
            "num_classes": num_classes,
            "embedding_dim": embedding_dim,
            "num_filters": num_filters,
            "kernel_size": kernel_size,
            "dropout": dropout,
            "padding_idx": padding_idx,
        }

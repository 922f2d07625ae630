"""Convolutional sentence classifiers: the stacked CNN of Yuan et al. (2019) and the parallel CNN of Kim (2014)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch
from torch import Tensor, nn

from captum_text_ext.models._base import ReferenceModel
from captum_text_ext.models._pooling import masked_max_over_time, pad_for_convolution

__all__ = ["MODES", "TextCNN"]

MODES = ("stacked", "parallel")
"""The architectures: Yuan et al.'s stacked CNN, or Kim's parallel widths."""


class TextCNN(ReferenceModel):
    r"""Embedding → 1-D convolutions with ReLU → global max pooling over time → dropout → linear.

    Two layouts, chosen by ``mode``:

    - ``"stacked"`` (Yuan et al., 2019, Table 2): the convolutions run one after the other,
      ``Conv1d(E, c_1, k_1) → ReLU → Conv1d(c_1, c_2, k_2) → ReLU → …``, all valid (no padding) with stride 1;
      the last layer's :math:`c_K` channels are max-pooled. Receptive field :math:`R = 1 + \sum_j (k_j - 1)`.
    - ``"parallel"`` (Kim, 2014): one ``Conv1d(E, c_j, k_j)`` per kernel size reads the embeddings, each followed by
      ReLU and max pooling; the :math:`\sum_j c_j` pooled features are concatenated. :math:`R = \max_j k_j`.

    **Padding.** Positions at or after a sentence's length are replaced by the pad embedding (zeros), whatever their
    token ids or embeddings, so they never change the output.

    - With ``input_length`` set (Yuan's fixed input), every batch is right-padded with zeros or cropped to exactly
      ``input_length`` steps and max pooling reads every output position, as the model was trained.
    - With ``input_length=None`` the batch is padded to at least :math:`R` steps, and max pooling reads output
      position :math:`i` of a layer with window :math:`w` (:math:`w = R` for the stacked output, :math:`w = k_j` for
      a parallel branch) only when :math:`i \le \max(L, R) - w` for a sentence of length :math:`L`: the window lies
      inside the sentence, or inside the zeros a sentence shorter than :math:`R` is padded with. The other positions
      are masked with :math:`-\infty`. A padded batch then gives each sentence the logits it gets alone, and
      sentences shorter than :math:`R` work.

    Args:
        vocab_size: number of token ids.
        embedding_dim: embedding size :math:`E`.
        num_classes: number of output logits :math:`C`.
        channels: output channels :math:`c_j` of each convolution.
        kernel_sizes: kernel width :math:`k_j` of each convolution (as many as ``channels``).
        mode: ``"stacked"`` or ``"parallel"``.
        input_length: the fixed number of input steps, at least :math:`R`; ``None`` reads each batch at its own
            length.
        dropout: dropout before the output layer.
        padding_idx: the pad id; its embedding is zero and receives no gradient.
        embedding_dropout: dropout on the embeddings (after padding, so pad steps stay zero).
        conv_dropout: ``"stacked"`` only: dropout on the input of every convolution after the first.

    Shape:
        - token_ids: :math:`(N, T)` int64.
        - lengths: :math:`(N,)` int64 with values in :math:`[1, T]`, optional; all :math:`T` tokens are read when
          omitted.
        - output: :math:`(N, C)` logits.

    Attributes:
        embedding: the ``nn.Embedding``.
        conv_layers: the ``nn.Conv1d`` layers in order (input channels first: they read :math:`(N, E, T)`).
        activations: one ``nn.ReLU`` per convolution, in the same order.
        embedding_dropout: the ``nn.Dropout`` on the embeddings.
        conv_dropout: the ``nn.Dropout`` between stacked convolutions.
        dropout: the ``nn.Dropout`` before the output layer.
        output: the output ``nn.Linear``.
        receptive_field: :math:`R`, the input steps one output position of the whole stack reads.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> model = TextCNN(vocab_size=20, embedding_dim=4, num_classes=2, channels=(3, 2), kernel_sizes=(3, 2))
        >>> model.receptive_field
        4
        >>> model(torch.tensor([[2, 3, 4, 5, 6], [7, 8, 0, 0, 0]]), torch.tensor([5, 2])).shape
        torch.Size([2, 2])
        >>> [(conv.out_channels, conv.kernel_size[0]) for conv in TextCNN.yuan_mr(vocab_size=100).conv_layers]
        [(128, 5), (64, 5), (32, 5)]

    References:
        Yoon Kim. Convolutional Neural Networks for Sentence Classification. EMNLP 2014.
        Hao Yuan, Yongjun Chen, Xia Hu, Shuiwang Ji. Interpreting Deep Models for Text Analysis via Optimization and
        Regularization Methods. AAAI 2019.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        num_classes: int,
        channels: Sequence[int] = (128, 64, 32),
        kernel_sizes: Sequence[int] = (5, 5, 5),
        mode: str = "stacked",
        input_length: Optional[int] = None,
        dropout: float = 0.0,
        padding_idx: int = 0,
        embedding_dropout: float = 0.0,
        conv_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"Expected `mode` to be one of {MODES}, but got {mode!r}")
        channels, kernel_sizes = [int(c) for c in channels], [int(k) for k in kernel_sizes]
        if not channels or len(channels) != len(kernel_sizes):
            raise ValueError(
                "Expected `channels` and `kernel_sizes` to be non-empty and of the same length, but got "
                f"{len(channels)} channels and {len(kernel_sizes)} kernel sizes"
            )
        if min(channels) < 1 or min(kernel_sizes) < 1:
            raise ValueError(
                f"Expected positive `channels` and `kernel_sizes`, but got channels={channels}, "
                f"kernel_sizes={kernel_sizes}"
            )
        self.mode = mode
        self.kernel_sizes = tuple(kernel_sizes)
        if mode == "stacked":
            self.receptive_field = 1 + sum(k - 1 for k in kernel_sizes)
        else:
            self.receptive_field = max(kernel_sizes)
        if input_length is not None and input_length < self.receptive_field:
            raise ValueError(
                f"Expected `input_length` >= the receptive field {self.receptive_field} or None, but got {input_length}"
            )
        self.input_length = input_length
        self._config: Dict[str, Any] = {
            "vocab_size": vocab_size,
            "embedding_dim": embedding_dim,
            "num_classes": num_classes,
            "channels": channels,
            "kernel_sizes": kernel_sizes,
            "mode": mode,
            "input_length": input_length,
            "dropout": dropout,
            "padding_idx": padding_idx,
            "embedding_dropout": embedding_dropout,
            "conv_dropout": conv_dropout,
        }
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        in_channels = [embedding_dim, *channels[:-1]] if mode == "stacked" else [embedding_dim] * len(channels)
        self.conv_layers = nn.ModuleList(nn.Conv1d(i, o, k) for i, o, k in zip(in_channels, channels, kernel_sizes))
        self.activations = nn.ModuleList(nn.ReLU() for _ in channels)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.conv_dropout = nn.Dropout(conv_dropout)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(channels[-1] if mode == "stacked" else sum(channels), num_classes)

    @classmethod
    def yuan_mr(
        cls,
        vocab_size: int,
        embedding_dim: int = 300,
        num_classes: int = 2,
        input_length: Optional[int] = 56,
        dropout: float = 0.0,
        padding_idx: int = 0,
    ) -> "TextCNN":
        """Yuan et al. (2019), Table 2, MR: input length 56, three convolutions of width 5 with 128, 64 and 32
        channels. The embedding size and dropout are not part of the table; they are this package's defaults."""
        return cls(
            vocab_size,
            embedding_dim,
            num_classes,
            channels=(128, 64, 32),
            kernel_sizes=(5, 5, 5),
            mode="stacked",
            input_length=input_length,
            dropout=dropout,
            padding_idx=padding_idx,
        )

    @classmethod
    def yuan_agnews(
        cls,
        vocab_size: int,
        embedding_dim: int = 300,
        num_classes: int = 4,
        input_length: Optional[int] = 195,
        dropout: float = 0.0,
        padding_idx: int = 0,
    ) -> "TextCNN":
        """Yuan et al. (2019), Table 2, AG News: input length 195, four convolutions of width 5 with 512, 256, 128
        and 64 channels. ``input_length=None`` reads each batch at its longest text instead."""
        return cls(
            vocab_size,
            embedding_dim,
            num_classes,
            channels=(512, 256, 128, 64),
            kernel_sizes=(5, 5, 5, 5),
            mode="stacked",
            input_length=input_length,
            dropout=dropout,
            padding_idx=padding_idx,
        )

    @classmethod
    def kim(
        cls,
        vocab_size: int,
        embedding_dim: int = 300,
        num_classes: int = 2,
        kernel_sizes: Sequence[int] = (3, 4, 5),
        num_filters: int = 100,
        dropout: float = 0.5,
        padding_idx: int = 0,
    ) -> "TextCNN":
        """Kim (2014): parallel convolutions of widths 3, 4 and 5 with 100 filters each, dropout 0.5, read at each
        batch's own length."""
        return cls(
            vocab_size,
            embedding_dim,
            num_classes,
            channels=[num_filters] * len(kernel_sizes),
            kernel_sizes=kernel_sizes,
            mode="parallel",
            dropout=dropout,
            padding_idx=padding_idx,
        )

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, receptive_field={self.receptive_field}, input_length={self.input_length}"

    def forward(self, token_ids: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Logits for token ids."""
        return self.forward_embeddings(self.embedding(token_ids), lengths)

    def forward_embeddings(self, embeddings: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Logits for embedded tokens of shape :math:`(N, T, E)`, padded or cropped as :meth:`forward` does: the
        entry point for attributing at the embeddings (lengths travel in Captum's ``additional_forward_args``)."""
        embeddings, lengths = pad_for_convolution(embeddings, lengths, self.receptive_field, self.input_length)
        x = self.embedding_dropout(embeddings).transpose(1, 2)
        if self.mode == "stacked":
            for depth, (conv, activation) in enumerate(zip(self.conv_layers, self.activations)):
                if depth:
                    x = self.conv_dropout(x)
                x = activation(conv(x))
            features = self._pool(x, lengths, self.receptive_field)
        else:
            features = torch.cat(
                [
                    self._pool(activation(conv(x)), lengths, kernel_size)
                    for conv, activation, kernel_size in zip(self.conv_layers, self.activations, self.kernel_sizes)
                ],
                dim=1,
            )
        logits: Tensor = self.output(self.dropout(features))
        return logits

    def _pool(self, features: Tensor, lengths: Tensor, window: int) -> Tensor:
        if self.input_length is not None:
            return features.amax(dim=-1)
        return masked_max_over_time(features, lengths, self.receptive_field, window)

"""A recurrent sentence classifier: embedding → LSTM/GRU → pooling over time → dropout → linear."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from captum_text_ext.datasets.collate import lengths_to_mask
from captum_text_ext.models._base import ReferenceModel
from captum_text_ext.models._pooling import checked_lengths

__all__ = ["LSTMClassifier", "POOLINGS"]

POOLINGS = ("last", "max", "mean", "attention")
"""How the classifier reads its hidden states."""


class LSTMClassifier(ReferenceModel):
    r"""Embedding → ``nn.LSTM`` or ``nn.GRU`` → pooling over time → dropout → linear.

    Padded batches are run through :func:`~torch.nn.utils.rnn.pack_padded_sequence` (``enforce_sorted=False``), so
    a padded batch gives each sentence the logits it gets alone, and pooling ignores padding.

    Attention pooling scores each real time step :math:`t < L` of the top layer's outputs :math:`h_t` (both
    directions concatenated, size :math:`D`) and averages them with the softmax of the scores:

    .. math::
        s_t = v^\top \tanh(W h_t + b), \qquad
        \alpha_t = \begin{cases} \frac{\exp s_t}{\sum_{u < L} \exp s_u} & t < L \\ 0 & t \ge L \end{cases}, \qquad
        z = \sum_t \alpha_t h_t,

    with :math:`W \in \mathbb{R}^{D \times D}`, :math:`b \in \mathbb{R}^D` and :math:`v \in \mathbb{R}^D`; padding
    gets exactly zero weight.

    Args:
        vocab_size: number of token ids.
        embedding_dim: embedding size :math:`E`.
        hidden_size: recurrent state size :math:`H` per direction.
        num_classes: number of output logits :math:`C`.
        cell: ``"lstm"`` or ``"gru"``.
        num_layers: stacked recurrent layers.
        bidirectional: read the sentence in both directions.
        pooling: ``"last"`` (the final hidden state of every direction of the top layer, concatenated), ``"max"``,
            ``"mean"`` or ``"attention"`` over the real time steps of the top layer's outputs.
        dropout: dropout before the output layer.
        padding_idx: the pad id; its embedding is zero and receives no gradient.
        output_bias: whether the output layer has a bias.

    Shape:
        - token_ids: :math:`(N, T)` int64.
        - lengths: :math:`(N,)` int64, optional; all :math:`T` tokens are read when omitted.
        - output: :math:`(N, C)` logits.

    Attributes:
        embedding: the ``nn.Embedding``.
        rnn: the ``nn.LSTM`` or ``nn.GRU`` (``batch_first=True``).
        attention_projection: :math:`W` and :math:`b` as an ``nn.Linear`` (attention pooling only).
        attention_activation: the ``nn.Tanh`` (attention pooling only).
        attention_vector: :math:`v` as an ``nn.Linear`` without bias (attention pooling only).
        dropout: the ``nn.Dropout`` before the output layer.
        output: the output ``nn.Linear``.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> model = LSTMClassifier(vocab_size=10, embedding_dim=4, hidden_size=3, num_classes=2)
        >>> model(torch.tensor([[2, 3, 4], [5, 6, 0]]), torch.tensor([3, 2])).shape
        torch.Size([2, 2])
        >>> attentive = LSTMClassifier(10, embedding_dim=4, hidden_size=3, num_classes=2, pooling="attention")
        >>> weights = attentive.attention_weights(torch.tensor([[2, 3, 4], [5, 6, 0]]), torch.tensor([3, 2]))
        >>> weights[1, 2].item(), torch.allclose(weights.sum(dim=1), torch.ones(2))
        (0.0, True)
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        hidden_size: int,
        num_classes: int,
        cell: str = "lstm",
        num_layers: int = 1,
        bidirectional: bool = True,
        pooling: str = "last",
        dropout: float = 0.0,
        padding_idx: int = 0,
        output_bias: bool = True,
    ) -> None:
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ValueError(f"Expected `cell` to be 'lstm' or 'gru', but got {cell!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"Expected `pooling` to be one of {POOLINGS}, but got {pooling!r}")
        self.pooling = pooling
        self._config: Dict[str, Any] = {
            "vocab_size": vocab_size,
            "embedding_dim": embedding_dim,
            "hidden_size": hidden_size,
            "num_classes": num_classes,
            "cell": cell,
            "num_layers": num_layers,
            "bidirectional": bidirectional,
            "pooling": pooling,
            "dropout": dropout,
            "padding_idx": padding_idx,
            "output_bias": output_bias,
        }
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        rnn_type = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_type(
            embedding_dim, hidden_size, num_layers=num_layers, bidirectional=bidirectional, batch_first=True
        )
        self.dropout = nn.Dropout(dropout)
        features = hidden_size * (2 if bidirectional else 1)
        self.output = nn.Linear(features, num_classes, bias=output_bias)
        if pooling == "attention":
            self.attention_projection = nn.Linear(features, features)
            self.attention_activation = nn.Tanh()
            self.attention_vector = nn.Linear(features, 1, bias=False)

    def extra_repr(self) -> str:
        return f"pooling={self.pooling!r}"

    def forward(self, token_ids: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Logits for token ids."""
        return self.forward_embeddings(self.embedding(token_ids), lengths)

    def forward_embeddings(self, embeddings: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Logits for embedded tokens of shape :math:`(N, T, E)`: the entry point for attributing at the
        embeddings (lengths travel in Captum's ``additional_forward_args``); an empty batch gives empty logits."""
        if embeddings.shape[0] == 0:
            empty: Tensor = self.output(embeddings.new_zeros(0, self.output.in_features))
            return empty
        packed_out, state, lengths = self._encode(embeddings, lengths)
        if self.pooling == "last":
            h_n = state[0] if isinstance(state, tuple) else state
            directions = 2 if self.rnn.bidirectional else 1
            features = torch.cat([h_n[-directions + d] for d in range(directions)], dim=-1)
        else:
            outputs, mask = self._unpack(packed_out, lengths, embeddings.shape[1])
            if self.pooling == "max":
                features = outputs.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)
            elif self.pooling == "mean":
                features = (outputs * mask.unsqueeze(-1)).sum(dim=1) / lengths.to(outputs).unsqueeze(-1)
            else:
                features = (self._attention(outputs, mask).unsqueeze(-1) * outputs).sum(dim=1)
        logits: Tensor = self.output(self.dropout(features))
        return logits

    def attention_weights(self, token_ids: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        r"""The attention weights :math:`\alpha_t` of ``pooling="attention"``, shape :math:`(N, T)`: each row sums to
        one over the real time steps and is exactly zero at padding.

        Raises:
            ValueError: when the model pools otherwise.
        """
        if self.pooling != "attention":
            raise ValueError(f"Expected a model with `pooling='attention'`, but this one has pooling={self.pooling!r}")
        packed_out, _, lengths = self._encode(self.embedding(token_ids), lengths)
        return self._attention(*self._unpack(packed_out, lengths, token_ids.shape[1]))

    def _encode(self, embeddings: Tensor, lengths: Optional[Tensor]) -> Tuple[PackedSequence, Any, Tensor]:
        batch, steps = embeddings.shape[:2]
        if lengths is None:
            lengths = torch.full((batch,), steps, dtype=torch.long)
        lengths = checked_lengths(lengths, batch, steps)
        packed = pack_padded_sequence(embeddings, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_out, state = self.rnn(packed)
        return packed_out, state, lengths

    def _unpack(self, packed_out: PackedSequence, lengths: Tensor, steps: int) -> Tuple[Tensor, Tensor]:
        outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=steps)
        return outputs, lengths_to_mask(lengths.to(outputs.device), steps)

    def _attention(self, outputs: Tensor, mask: Tensor) -> Tensor:
        scores: Tensor = self.attention_vector(self.attention_activation(self.attention_projection(outputs)))
        return scores.squeeze(-1).masked_fill(~mask, float("-inf")).softmax(dim=1)

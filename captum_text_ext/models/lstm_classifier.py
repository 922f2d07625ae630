"""A recurrent sentence classifier: embedding → LSTM/GRU → pooling over time → dropout → linear."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from captum_text_ext.datasets.collate import lengths_to_mask

POOLINGS = ("last", "max", "mean")


class LSTMClassifier(nn.Module):
    r"""Embedding → ``nn.LSTM`` or ``nn.GRU`` → pooling over time → dropout → linear.

    Padded batches are run through :func:`~torch.nn.utils.rnn.pack_padded_sequence` (``enforce_sorted=False``), so
    a padded batch gives each sentence the logits it gets alone, and pooling ignores padding.

    Args:
        vocab_size: number of token ids.
        embedding_dim: embedding size :math:`E`.
        hidden_size: recurrent state size :math:`H` per direction.
        num_classes: number of output logits :math:`C`.
        cell: ``"lstm"`` or ``"gru"``.
        num_layers: stacked recurrent layers.
        bidirectional: read the sentence in both directions.
        pooling: ``"last"`` (the final hidden state of every direction, concatenated), ``"max"`` or ``"mean"`` over
            the real time steps of the top layer's outputs.
        dropout: dropout before the output layer.
        padding_idx: the pad id; its embedding is zero and receives no gradient.
        output_bias: whether the output layer has a bias.

    Shape:
        - token_ids: :math:`(N, T)` int64.
        - lengths: :math:`(N,)` int64, optional; all :math:`T` tokens are read when omitted.
        - output: :math:`(N, C)` logits.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> model = LSTMClassifier(vocab_size=10, embedding_dim=4, hidden_size=3, num_classes=2)
        >>> model(torch.tensor([[2, 3, 4], [5, 6, 0]]), torch.tensor([3, 2])).shape
        torch.Size([2, 2])
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
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        rnn_type = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_type(
            embedding_dim, hidden_size, num_layers=num_layers, bidirectional=bidirectional, batch_first=True
        )
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes, bias=output_bias)

    def forward(self, token_ids: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Logits for token ids."""
        return self.forward_embeddings(self.embedding(token_ids), lengths)

    def forward_embeddings(self, embeddings: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Logits for embedded tokens of shape :math:`(N, T, E)`: the entry point for attributing at the
        embeddings (lengths travel in Captum's ``additional_forward_args``)."""
        batch, steps = embeddings.shape[:2]
        if lengths is None:
            lengths = torch.full((batch,), steps, dtype=torch.long)
        packed = pack_padded_sequence(embeddings, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_out, state = self.rnn(packed)
        if self.pooling == "last":
            h_n = state[0] if isinstance(state, tuple) else state
            directions = 2 if self.rnn.bidirectional else 1
            features = torch.cat([h_n[-directions + d] for d in range(directions)], dim=-1)
        else:
            outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=steps)
            mask = lengths_to_mask(lengths.to(outputs.device), steps).unsqueeze(-1)
            if self.pooling == "max":
                features = outputs.masked_fill(~mask, float("-inf")).amax(dim=1)
            else:
                features = (outputs * mask).sum(dim=1) / lengths.to(outputs).unsqueeze(-1)
        return self.output(self.dropout(features))

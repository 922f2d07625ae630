"""Tiny transformer classifiers read like the package's reference models — ``forward(token_ids, lengths)``,
``forward_embeddings(embeddings, lengths)`` and the token embedding as ``embedding`` — so the contract suite and the
CD tests run them as they run ``LSTMClassifier``:

- :class:`HFTokenClassifier`: a Hugging Face ``BertForSequenceClassification`` (eager or SDPA attention) built from a
  config without dropout, the embeddings passed as ``inputs_embeds``;
- :class:`EncoderTokenClassifier`: token and position embeddings → ``nn.TransformerEncoder`` (pre- or post-norm,
  ``src_key_padding_mask``) → mean over the real tokens → linear;
- :class:`LSTMSelfAttentionClassifier`: a bidirectional LSTM (packed) → ``nn.MultiheadAttention`` over its states (with the
  padding mask) → residual and LayerNorm → mean over the real tokens → linear.

Without the ``transformers`` extra the Hugging Face model skips the calling test (fails under ``CI=true``).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from _transformer_models import require_extra


def real_tokens(lengths: Optional[Tensor], steps: int, like: Tensor) -> Tensor:
    """``(N, T)`` bool, True at the first ``lengths[n]`` positions (all when ``lengths`` is ``None``)."""
    if lengths is None:
        return torch.ones(like.shape[0], steps, dtype=torch.bool, device=like.device)
    return torch.arange(steps, device=like.device).unsqueeze(0) < lengths.to(like.device).unsqueeze(1)


def masked_mean(hidden: Tensor, keep: Tensor) -> Tensor:
    """The mean of ``hidden`` :math:`(N, T, H)` over the positions where ``keep`` :math:`(N, T)` is True."""
    weights = keep.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1)


class HFTokenClassifier(nn.Module):
    """``BertForSequenceClassification`` (2 layers, width 8, 2 heads, no dropout) read with lengths."""

    def __init__(self, vocab_size: int, num_classes: int, attn_implementation: str = "sdpa", width: int = 8) -> None:
        super().__init__()
        transformers = require_extra()
        config = transformers.BertConfig(
            vocab_size=vocab_size, hidden_size=width, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=2 * width, max_position_embeddings=16, num_labels=num_classes, pad_token_id=0,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, attn_implementation=attn_implementation,
        )  # fmt: skip
        self.bert = transformers.BertForSequenceClassification(config)
        self.embedding = self.bert.bert.embeddings.word_embeddings

    def forward(self, token_ids: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        mask = real_tokens(lengths, token_ids.shape[1], token_ids).long()
        logits: Tensor = self.bert(input_ids=token_ids, attention_mask=mask).logits
        return logits

    def forward_embeddings(self, embeddings: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        mask = real_tokens(lengths, embeddings.shape[1], embeddings).long()
        logits: Tensor = self.bert(inputs_embeds=embeddings, attention_mask=mask).logits
        return logits


class EncoderTokenClassifier(nn.Module):
    """Token + position embeddings → ``nn.TransformerEncoder`` (2 layers, width 8, 2 heads, GELU, no dropout) → mean
    over the real tokens → linear."""

    def __init__(
        self, vocab_size: int, num_classes: int, norm_first: bool = True, width: int = 8, max_length: int = 16,
        enable_nested_tensor: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, width, padding_idx=0)
        self.position = nn.Embedding(max_length, width)
        layer = nn.TransformerEncoderLayer(width, 2, dim_feedforward=2 * width, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(width) if norm_first else None,
                                             enable_nested_tensor=enable_nested_tensor)
        self.output = nn.Linear(width, num_classes)

    def forward(self, token_ids: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        return self.forward_embeddings(self.embedding(token_ids), lengths)

    def forward_embeddings(self, embeddings: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        keep = real_tokens(lengths, embeddings.shape[1], embeddings)
        positions = self.position(torch.arange(embeddings.shape[1], device=embeddings.device))
        hidden = self.encoder(embeddings + positions, src_key_padding_mask=~keep)
        logits: Tensor = self.output(masked_mean(hidden, keep))
        return logits


class LSTMSelfAttentionClassifier(nn.Module):
    """Embedding → bidirectional LSTM (packed by the lengths) → ``nn.MultiheadAttention`` (2 heads) over its states, padded keys masked →
    residual and LayerNorm → mean over the real tokens → linear."""

    def __init__(self, vocab_size: int, num_classes: int, embedding_dim: int = 4, hidden_size: int = 3) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.rnn = nn.LSTM(embedding_dim, hidden_size, batch_first=True, bidirectional=True)
        self.attention = nn.MultiheadAttention(2 * hidden_size, 2, batch_first=True)
        self.norm = nn.LayerNorm(2 * hidden_size)
        self.output = nn.Linear(2 * hidden_size, num_classes)

    def forward(self, token_ids: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        return self.forward_embeddings(self.embedding(token_ids), lengths)

    def forward_embeddings(self, embeddings: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        steps = embeddings.shape[1]
        keep = real_tokens(lengths, steps, embeddings)
        if lengths is None:
            states, _ = self.rnn(embeddings)
        else:
            packed = pack_padded_sequence(embeddings, lengths.cpu(), batch_first=True, enforce_sorted=False)
            states = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=steps)[0]
        attended, _ = self.attention(states, states, states, key_padding_mask=~keep, need_weights=False)
        hidden = self.norm(states + attended)
        logits: Tensor = self.output(masked_mean(hidden, keep))
        return logits

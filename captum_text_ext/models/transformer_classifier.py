"""A BERT-style encoder classifier built from a Hugging Face ``BertConfig``, read like every reference model with
``(token_ids, lengths)``.

``transformers`` is imported when a model is built, not with this module: it comes with the ``transformers`` extra
(``pip install "captum_text_ext[transformers]"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

import torch
from torch import Tensor, nn

from captum_text_ext.datasets.collate import lengths_to_mask
from captum_text_ext.models._base import ReferenceModel

if TYPE_CHECKING:
    from transformers import BertForSequenceClassification

ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")
"""The attention implementations a :class:`TransformerClassifier` can be built with."""
EXTRA_HINT = 'install the transformers extra: pip install "captum_text_ext[transformers]"'


class TransformerClassifier(ReferenceModel):
    r"""A ``transformers`` ``BertForSequenceClassification`` built from a ``BertConfig``: token, position (and one
    token-type) embeddings with LayerNorm → ``num_layers`` post-norm encoder layers (multi-head self-attention, GELU
    feed-forward) → the pooler's :math:`\tanh(W h_{[CLS]} + b)` → dropout → linear.

    The input is right-padded token ids from a :class:`~captum_text_ext.datasets.wordpiece.WordPieceTokenizer` that
    start with ``[CLS]``; ``lengths`` becomes the attention mask (1 at the first ``lengths[n]`` positions), so padded
    keys get exactly zero attention and a padded batch gives each sentence the logits it gets alone.

    Args:
        vocab_size: number of token ids.
        num_classes: number of output logits :math:`C`.
        hidden_size: the model width :math:`d`.
        num_layers: encoder layers.
        num_heads: attention heads (they divide ``hidden_size``).
        intermediate_size: the feed-forward width; default :math:`4d`.
        max_length: the most tokens a sentence may have (the position embeddings), special tokens included.
        dropout: dropout on embeddings, sublayer outputs and before the classifier.
        attention_dropout: dropout on the attention weights.
        pad_index: the pad id (its embedding row gets no gradient).
        attn_implementation: ``"eager"`` (the attention weights are computed as tensors, and
            ``output_attentions=True`` returns them) or ``"sdpa"`` (one ``scaled_dot_product_attention`` call, which
            returns no weights). The two give the same logits and share the state dict.

    Shape:
        - token_ids: :math:`(N, T)` int64, :math:`T \le` ``max_length``.
        - lengths: :math:`(N,)` int64, optional; all :math:`T` tokens are read when omitted.
        - output: :math:`(N, C)` logits.

    Attributes:
        hf_model: the ``BertForSequenceClassification``; its embeddings module is ``hf_model.bert.embeddings``
            (also :attr:`embeddings`).

    Raises:
        ImportError: without the ``transformers`` package.
        ValueError: for an unknown ``attn_implementation``, or heads that do not divide the width.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> model = TransformerClassifier(vocab_size=20, num_classes=2, hidden_size=8, num_heads=2).eval()
        >>> logits = model(torch.tensor([[2, 7, 8, 3], [2, 9, 3, 0]]), torch.tensor([4, 3]))
        >>> alone = model(torch.tensor([[2, 9, 3]]))
        >>> logits.shape, torch.allclose(logits[1], alone[0], atol=1e-6)
        (torch.Size([2, 2]), True)
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        hidden_size: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        intermediate_size: Optional[int] = None,
        max_length: int = 128,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        pad_index: int = 0,
        attn_implementation: str = "eager",
    ) -> None:
        super().__init__()
        if attn_implementation not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(
                f"Expected `attn_implementation` to be one of {ATTENTION_IMPLEMENTATIONS}, but got "
                f"{attn_implementation!r}"
            )
        if hidden_size % num_heads:
            raise ValueError(f"Expected `num_heads` to divide `hidden_size`, but got {num_heads} and {hidden_size}")
        try:
            from transformers import BertConfig, BertForSequenceClassification
        except ImportError as err:
            raise ImportError(f"TransformerClassifier needs the `transformers` package; {EXTRA_HINT}") from err
        self._config: Dict[str, Any] = {
            "vocab_size": vocab_size,
            "num_classes": num_classes,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "num_heads": num_heads,
            "intermediate_size": intermediate_size,
            "max_length": max_length,
            "dropout": dropout,
            "attention_dropout": attention_dropout,
            "pad_index": pad_index,
            "attn_implementation": attn_implementation,
        }
        options: Dict[str, Any] = {"num_labels": num_classes, "attn_implementation": attn_implementation}
        config = BertConfig(  # num_labels and attn_implementation go through PretrainedConfig's **kwargs
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
            intermediate_size=intermediate_size if intermediate_size is not None else 4 * hidden_size,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=attention_dropout,
            max_position_embeddings=max_length,
            type_vocab_size=1,
            pad_token_id=pad_index,
            **options,
        )
        self.hf_model: BertForSequenceClassification = BertForSequenceClassification(config)

    def extra_repr(self) -> str:
        return f"attn_implementation={self._config['attn_implementation']!r}"

    @property
    def embeddings(self) -> nn.Module:
        """The embeddings module, whose output (token, position and token-type embeddings summed, normalized by
        LayerNorm, then dropout) is the layer the transformer attribution methods attribute to."""
        module: nn.Module = self.hf_model.bert.embeddings
        return module

    def reset_parameters(self) -> None:
        """Re-initialise the weights as the constructor does (BERT's initialization, drawn from torch's global
        generator; the dtype and device are kept)."""
        fresh = type(self.hf_model)(self.hf_model.config)
        self.hf_model.load_state_dict(fresh.state_dict())

    def forward(self, token_ids: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Logits for right-padded token ids.

        Raises:
            ValueError: when the batch is longer than ``max_length`` tokens.
        """
        steps = token_ids.shape[1]
        if steps > self._config["max_length"]:
            raise ValueError(
                f"Expected at most max_length={self._config['max_length']} tokens per sentence (special tokens "
                f"included), but got a batch of {steps}"
            )
        if lengths is None:
            mask = torch.ones_like(token_ids)
        else:
            mask = lengths_to_mask(lengths.to(token_ids.device), steps).long()
        logits: Tensor = self.hf_model(input_ids=token_ids, attention_mask=mask).logits
        return logits


__all__ = ["ATTENTION_IMPLEMENTATIONS", "TransformerClassifier"]

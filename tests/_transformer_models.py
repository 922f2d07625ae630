"""Tiny float64 transformer classifiers for tests: the Hugging Face models a user brings, and a model a user writes
with PyTorch's ``nn.TransformerEncoder``.

Every case is named in :data:`CASES` and built by :func:`build_case`, so a test runs on all of them with
``@pytest.mark.parametrize("name", CASES)`` and ``case = build_case(name, tmp_path)``:

- ``bert-eager``, ``bert-sdpa``, ``distilbert-…``, ``roberta-…``: ``BertForSequenceClassification``,
  ``DistilBertForSequenceClassification`` and ``RobertaForSequenceClassification`` built from a config (2 layers,
  width 16, 2 heads, ``attn_implementation`` in the config), in float64, saved with ``save_pretrained(directory)`` and
  read back with ``from_pretrained(directory)`` as a user's model would be;
- ``torch-postnorm``, ``torch-prenorm``: :class:`UserTransformerClassifier`, ``nn.TransformerEncoder`` with
  ``norm_first`` off or on, read with ``src_key_padding_mask``.

Without the ``transformers`` extra a Hugging Face case skips the test, except under ``CI=true``, where it fails:
``.ci/run`` installs the extra, so CI can never pass by skipping. Import this module as ``from _transformer_models
import …`` (pytest puts ``tests/`` on ``sys.path``); it imports ``transformers`` only when a case needs it.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import pytest
import torch
from torch import Tensor, nn

HF_ARCHITECTURES = ("bert", "distilbert", "roberta")
ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")
HF_CASES = tuple(f"{arch}-{attention}" for arch in HF_ARCHITECTURES for attention in ATTENTION_IMPLEMENTATIONS)
TORCH_CASES = ("torch-postnorm", "torch-prenorm")
CASES = HF_CASES + TORCH_CASES
"""Every case name, for ``pytest.mark.parametrize``."""

VOCAB_SIZE, NUM_CLASSES, HIDDEN, HEADS, LAYERS, MAX_LENGTH = 40, 3, 16, 2, 2, 40
SENTENCES: Tuple[Tuple[int, ...], ...] = ((5, 6, 7, 8, 9, 10, 11), (12, 13, 14), (15, 16, 17, 18, 19), (20,))
"""Token ids of a few sentences of different lengths (ids 0–4 are left to the special tokens)."""
EXTRA_REASON = 'the transformers extra is not installed (pip install "captum_text_ext[transformers]")'


def require_extra(module: str = "transformers") -> ModuleType:
    """A module of the ``transformers`` extra (``transformers``, ``tokenizers``); without it the calling test skips,
    or fails under ``CI=true``."""
    if os.environ.get("CI", "").lower() == "true":
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=EXTRA_REASON)


class HFLogits(nn.Module):
    """A Hugging Face classifier as Captum needs it: ``forward(input_ids, attention_mask)`` returns the logits
    tensor (the model returns a ``SequenceClassifierOutput``), as in Captum's BERT tutorials.

    Attributes:
        model: the wrapped ``…ForSequenceClassification``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None) -> Tensor:
        logits: Tensor = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits


class TokenAndPositionEmbedding(nn.Module):
    """Token embedding plus a learned position embedding: the input of the user's encoder."""

    def __init__(self, vocab_size: int, width: int, max_length: int, pad_id: int) -> None:
        super().__init__()
        self.token = nn.Embedding(vocab_size, width, padding_idx=pad_id)
        self.position = nn.Embedding(max_length, width)

    def forward(self, token_ids: Tensor) -> Tensor:
        positions = torch.arange(token_ids.shape[1], device=token_ids.device)
        out: Tensor = self.token(token_ids) + self.position(positions)
        return out


class UserTransformerClassifier(nn.Module):
    """What a user writes with PyTorch's own modules: :class:`TokenAndPositionEmbedding` → ``nn.TransformerEncoder``
    (``batch_first``, GELU, a final LayerNorm when ``norm_first``) → mean over the real tokens → linear → tanh →
    linear.

    Args:
        norm_first: pre-norm (LayerNorm before each sublayer) or post-norm layers.
        enable_nested_tensor: passed to ``nn.TransformerEncoder`` (padded batches become nested tensors on its
            eval-mode fast path).
    """

    def __init__(self, norm_first: bool, enable_nested_tensor: bool = False, pad_id: int = 0) -> None:
        super().__init__()
        self.embeddings = TokenAndPositionEmbedding(VOCAB_SIZE, HIDDEN, MAX_LENGTH, pad_id)
        layer = nn.TransformerEncoderLayer(
            HIDDEN, HEADS, dim_feedforward=2 * HIDDEN, dropout=0.1, activation="gelu", batch_first=True,
            norm_first=norm_first,
        )
        self.encoder = nn.TransformerEncoder(
            layer, LAYERS, norm=nn.LayerNorm(HIDDEN) if norm_first else None, enable_nested_tensor=enable_nested_tensor
        )
        self.pre_classifier = nn.Linear(HIDDEN, HIDDEN)
        self.activation = nn.Tanh()
        self.classifier = nn.Linear(HIDDEN, NUM_CLASSES)

    def forward(self, token_ids: Tensor, padding_mask: Optional[Tensor] = None) -> Tensor:
        """Logits; ``padding_mask`` is ``(N, T)`` bool, True at padding (``src_key_padding_mask``'s convention)."""
        hidden = self.encoder(self.embeddings(token_ids), src_key_padding_mask=padding_mask)
        keep = torch.ones_like(token_ids, dtype=hidden.dtype) if padding_mask is None else (~padding_mask).to(hidden)
        pooled = (hidden * keep.unsqueeze(-1)).sum(dim=1) / keep.sum(dim=1, keepdim=True)
        logits: Tensor = self.classifier(self.activation(self.pre_classifier(pooled)))
        return logits


@dataclasses.dataclass(frozen=True)
class TransformerCase:
    """One model to test on.

    Attributes:
        name: a key of :data:`CASES`.
        model: returns logits ``(N, NUM_CLASSES)`` from ``(token_ids, mask)``; in eval mode, float64.
        embeddings: the module whose output the encoder reads (``model.bert.embeddings`` and the like): where the
            relevance of a conserving method is summed.
        pad_id: the id padding is written with.
        mask: ``mask(lengths, width)``: the model's mask for right-padded sentences of ``lengths`` tokens, in its
            own convention (Hugging Face: int64, 1 = attend; ``torch-…``: bool, True = padding).
        hf_model: the ``…ForSequenceClassification`` (``None`` for the ``torch-…`` cases).
    """

    name: str
    model: nn.Module
    embeddings: nn.Module
    pad_id: int
    mask: Callable[[Tensor, int], Tensor]
    hf_model: Optional[nn.Module] = None

    def batch(self, sentences: Sequence[Sequence[int]] = SENTENCES) -> Tuple[Tensor, Tensor]:
        """``(token_ids, mask)`` of ``sentences`` right-padded to the longest; ``model(*case.batch())`` runs."""
        lengths = torch.tensor([len(s) for s in sentences])
        ids = torch.full((len(sentences), int(lengths.max())), self.pad_id, dtype=torch.long)
        for row, sentence in enumerate(sentences):
            ids[row, : len(sentence)] = torch.tensor(sentence)
        return ids, self.mask(lengths, ids.shape[1])


def _attend_mask(lengths: Tensor, width: int) -> Tensor:
    return (torch.arange(width) < lengths.unsqueeze(1)).long()


def _padding_mask(lengths: Tensor, width: int) -> Tensor:
    return torch.arange(width) >= lengths.unsqueeze(1)


def hf_config(architecture: str, attn_implementation: str) -> Any:
    """The config of a tiny classifier (2 layers, width 16, 2 heads, 3 labels, dropout 0.1 everywhere)."""
    transformers = require_extra()
    common: Dict[str, Any] = {"vocab_size": VOCAB_SIZE, "max_position_embeddings": MAX_LENGTH,
                              "num_labels": NUM_CLASSES, "attn_implementation": attn_implementation}
    if architecture == "distilbert":
        return transformers.DistilBertConfig(dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=2 * HIDDEN,
                                             pad_token_id=0, **common)
    bert_like = {"hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
                 "intermediate_size": 2 * HIDDEN, **common}
    if architecture == "bert":
        return transformers.BertConfig(pad_token_id=0, **bert_like)
    if architecture == "roberta":
        return transformers.RobertaConfig(pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1,
                                          **bert_like)
    raise ValueError(f"Expected `architecture` to be one of {HF_ARCHITECTURES}, but got {architecture!r}")


def hf_classifier(architecture: str, attn_implementation: str, directory: Path, seed: int = 0) -> nn.Module:
    """A tiny ``…ForSequenceClassification``, float64, saved to ``directory`` with ``save_pretrained`` and returned
    as ``from_pretrained(directory, attn_implementation=…)`` loads it (eval mode).

    ``config.json`` does not record the attention implementation: ``from_pretrained`` picks ``"sdpa"`` unless told
    otherwise, whatever the saved model used (transformers 5.25).
    """
    transformers = require_extra()
    config = hf_config(architecture, attn_implementation)
    cls = {
        "bert": transformers.BertForSequenceClassification,
        "distilbert": transformers.DistilBertForSequenceClassification,
        "roberta": transformers.RobertaForSequenceClassification,
    }[architecture]
    torch.manual_seed(seed)
    cls(config).double().save_pretrained(directory)
    loaded: nn.Module = cls.from_pretrained(directory, attn_implementation=attn_implementation).eval()
    return loaded


def build_case(name: str, directory: Path, seed: int = 0) -> TransformerCase:
    """The case ``name`` of :data:`CASES` (Hugging Face models are saved to and loaded from ``directory``)."""
    if name in TORCH_CASES:
        torch.manual_seed(seed)
        user = UserTransformerClassifier(norm_first=name == "torch-prenorm").double().eval()
        return TransformerCase(name, user, user.embeddings, 0, _padding_mask)
    if name not in HF_CASES:
        raise ValueError(f"Expected `name` to be one of {CASES}, but got {name!r}")
    architecture, attention = name.split("-")
    hf_model = hf_classifier(architecture, attention, directory / name, seed)
    pad_id = int(hf_model.config.pad_token_id)
    model = HFLogits(hf_model).eval()
    return TransformerCase(name, model, hf_model.base_model.embeddings, pad_id, _attend_mask, hf_model)


def zero_biases(model: nn.Module) -> List[str]:
    """Set every bias of ``model`` to zero in place (Linear, LayerNorm and attention projections): the bias-free
    models on which a conserving method's relevance sums to the logit. Returns the names of the parameters zeroed."""
    names = []
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()
                names.append(name)
    return names

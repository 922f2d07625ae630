r"""CD_Circuit's per-encoding CD-T loop for a Hugging Face BERT classifier, ported: the baseline of the transformer row
of ``captum-text-ext benchmark cd-speed``.

Hsu et al. (ICLR 2025) released CD-T as research code (github.com/adelaidehsu/CD_Circuit, ``pyfunctions/cdt_basic.py``
and ``cdt_core.py``). Their scores of one sentence come from ``comp_cd_scores_level_skip``: the sentence is encoded
alone, padded to ``max_seq_len`` (``padding="max_length"``), and its unit phrases go through
``prop_classifier_model`` :data:`NUM_AT_TIME` at a time; each call embeds the sentence again, builds the β/γ tensors
phrase by phrase, and propagates them module by module (``prop_encoder`` → ``prop_layer`` → ``prop_attention`` →
``prop_self_attention`` …), computing every layer's attention probabilities from the sum of the parts. This module
keeps that loop and that structure; the propagation rules are those of
:class:`~captum_text_ext.ContextualDecomposition` (docs: "Transformers (CD-T)") so that the two give the same numbers:

- a ``Linear``'s bias (and a LayerNorm's) is kept apart and split by the parts' magnitudes at the next op that needs
  the parts (CD_Circuit splits it at once, with ``tol=1e-8`` in the denominator); the classifier's bias is returned
  apart;
- GELU and tanh use the two-player Shapley split (CD_Circuit: ``rel = act(rel + irrel) - act(irrel)``);
- no ``normalize_rel_irrel`` sign fix-ups;
- the closest-competitor forward pass and the whole-sentence phrase of ``comp_cd_scores_level_skip`` are left out
  (the benchmark scores :math:`\beta_{pos} - \beta_{neg}`): they would only add to the loop's time.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["NUM_AT_TIME", "comp_cd_scores", "prop_classifier_model"]

NUM_AT_TIME = 64
"""Unit phrases per ``prop_classifier_model`` call (CD_Circuit's ``num_at_time``)."""

Decomposition = Tuple[Tensor, Tensor, Optional[Tensor]]
"""``(rel, irrel, bias)``: β, γ and a bias not yet split between them. The modules passed around are the
``transformers`` BERT modules (typed ``Any``: the library is untyped)."""


def resolve_bias(rel: Tensor, irrel: Tensor, bias: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """The pending bias split in proportion to ``|rel|`` and ``|irrel|`` (halves where both are 0)."""
    if bias is None:
        return rel, irrel
    rel_wt, irrel_wt = torch.abs(rel), torch.abs(irrel)
    rel_share = torch.nan_to_num(rel_wt / (rel_wt + irrel_wt), nan=0.5)  # CD_Circuit adds tol = 1e-8 instead
    return rel + bias * rel_share, irrel + bias * (1 - rel_share)


def prop_linear(rel: Tensor, irrel: Tensor, bias: Optional[Tensor], linear_module: nn.Linear) -> Decomposition:
    rel, irrel = resolve_bias(rel, irrel, bias)
    weight = linear_module.weight.T
    return torch.matmul(rel, weight), torch.matmul(irrel, weight), linear_module.bias.expand(*rel.shape[:-1], -1)


def prop_act(rel: Tensor, irrel: Tensor, bias: Optional[Tensor], act_mod: Any) -> Decomposition:
    rel, irrel = resolve_bias(rel, irrel, bias)
    act_rel, act_irrel, act_tot = act_mod(rel), act_mod(irrel), act_mod(rel + irrel)
    return 0.5 * (act_rel + (act_tot - act_irrel)), 0.5 * (act_irrel + (act_tot - act_rel)), None


def prop_layer_norm(rel: Tensor, irrel: Tensor, bias: Optional[Tensor], layer_norm_module: nn.LayerNorm) -> Decomposition:
    tot = rel + irrel + (0 if bias is None else bias)
    rel, irrel = resolve_bias(rel, irrel, bias)
    rel_mn = torch.mean(rel, dim=2, keepdim=True)
    irrel_mn = torch.mean(irrel, dim=2, keepdim=True)
    vr = torch.mean(tot**2, dim=2, keepdim=True) - torch.mean(tot, dim=2, keepdim=True) ** 2
    scale = layer_norm_module.weight / torch.sqrt(vr + layer_norm_module.eps)
    rel_t = (rel - rel_mn) * scale
    return rel_t, (irrel - irrel_mn) * scale, layer_norm_module.bias.expand_as(rel_t)


def add_parts(first: Decomposition, second: Decomposition) -> Decomposition:
    """A residual addition: the parts add, and so do the pending biases."""
    bias = first[2] if second[2] is None else second[2] if first[2] is None else first[2] + second[2]
    return first[0] + second[0], first[1] + second[1], bias


def transpose_for_scores(x: Tensor, sa_module: Any) -> Tensor:
    new_x_shape = x.size()[:-1] + (sa_module.num_attention_heads, sa_module.attention_head_size)
    return x.view(new_x_shape).permute(0, 2, 1, 3)


def mul_att(att_probs: Tensor, value: Tensor, sa_module: Any) -> Tensor:
    context_layer = torch.matmul(att_probs, transpose_for_scores(value, sa_module))
    context_layer = context_layer.permute(0, 2, 1, 3).contiguous()
    return context_layer.view(*context_layer.size()[:-2], -1)


def get_attention_probs(tot_embed: Tensor, attention_mask: Tensor, sa_module: Any) -> Tensor:
    query_layer = transpose_for_scores(sa_module.query(tot_embed), sa_module)
    key_layer = transpose_for_scores(sa_module.key(tot_embed), sa_module)
    attention_scores = torch.matmul(query_layer, key_layer.transpose(-1, -2)) * sa_module.scaling
    return nn.functional.softmax(attention_scores + attention_mask, dim=-1)


def prop_self_attention(parts: Decomposition, attention_mask: Tensor, sa_module: Any) -> Decomposition:
    rel, irrel, bias = parts
    att_probs = get_attention_probs(rel + irrel + (0 if bias is None else bias), attention_mask, sa_module)
    rel_value, irrel_value = resolve_bias(*prop_linear(rel, irrel, bias, sa_module.value))
    return mul_att(att_probs, rel_value, sa_module), mul_att(att_probs, irrel_value, sa_module), None


def prop_attention(parts: Decomposition, attention_mask: Tensor, a_module: Any) -> Decomposition:
    context = prop_self_attention(parts, attention_mask, a_module.self)
    dense = prop_linear(*context, a_module.output.dense)
    return prop_layer_norm(*add_parts(dense, parts), a_module.output.LayerNorm)


def prop_layer(parts: Decomposition, attention_mask: Tensor, layer_module: Any) -> Decomposition:
    attention = prop_attention(parts, attention_mask, layer_module.attention)
    intermediate = prop_linear(*attention, layer_module.intermediate.dense)
    activated = prop_act(*intermediate, layer_module.intermediate.intermediate_act_fn)
    output = prop_linear(*activated, layer_module.output.dense)
    return prop_layer_norm(*add_parts(output, attention), layer_module.output.LayerNorm)


def prop_encoder(parts: Decomposition, attention_mask: Tensor, encoder_module: Any) -> Decomposition:
    for layer_module in encoder_module.layer:
        parts = prop_layer(parts, attention_mask, layer_module)
    return parts


def prop_pooler(parts: Decomposition, pooler_module: Any) -> Decomposition:
    rel, irrel, bias = parts
    first = prop_linear(rel[:, 0], irrel[:, 0], None if bias is None else bias[:, 0], pooler_module.dense)
    return prop_act(*first, pooler_module.activation)


def get_extended_attention_mask(attention_mask: Tensor, dtype: torch.dtype) -> Tensor:
    """``(1 - mask) * finfo.min``, broadcastable to the attention scores ``(P, heads, S, S)``."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def prop_classifier_model(
    input_ids: Tensor, attention_mask: Tensor, rel_ind_list: Sequence[Sequence[int]], model: Any,
    max_seq_len: int,
) -> Decomposition:  # fmt: skip
    """The parts of the logits of one encoding :math:`(1, S)` for each phrase of ``rel_ind_list`` (token indices),
    from the embeddings' output: ``(rel, irrel, bias)``, each :math:`(P, C)`.

    Args:
        input_ids, attention_mask: the encoding, padded to ``max_seq_len``.
        rel_ind_list: the phrases.
        model: a ``BertForSequenceClassification``.
        max_seq_len: the padded length.
    """
    embedding_output = model.bert.embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids))
    extended_attention_mask = get_extended_attention_mask(attention_mask, embedding_output.dtype)
    shape = (len(rel_ind_list), *embedding_output.shape[1:])
    rel = torch.zeros(shape, dtype=embedding_output.dtype)
    irrel = torch.zeros(shape, dtype=embedding_output.dtype)
    for i, rel_inds in enumerate(rel_ind_list):
        mask = torch.from_numpy(np.isin(np.arange(max_seq_len), rel_inds))
        rel[i, mask, :] = embedding_output[0, mask, :]
        irrel[i, ~mask, :] = embedding_output[0, ~mask, :]
    encoded = prop_encoder((rel, irrel, None), extended_attention_mask, model.bert.encoder)
    pooled = prop_pooler(encoded, model.bert.pooler)
    return prop_linear(*pooled, model.classifier)


def comp_cd_scores(
    model: Any, token_ids: Sequence[int], pad_id: int, max_seq_len: int, positive: int, negative: int,
    num_at_time: int = NUM_AT_TIME,
) -> np.ndarray:  # fmt: skip
    r"""Every token's score :math:`\beta_{positive} - \beta_{negative}` for one sentence, its unit phrases
    ``num_at_time`` at a time (CD_Circuit's ``comp_cd_scores_level_skip`` with ``level=0, skip=1``).

    Args:
        model: a ``BertForSequenceClassification`` in evaluation mode.
        token_ids: the sentence's token ids, special tokens included.
        pad_id: the padding id.
        max_seq_len: the length every encoding is padded to (at most the model's position embeddings).
        positive, negative: the scored classes.

    Returns:
        :math:`(L,)` one score per token.
    """
    length = len(token_ids)
    input_ids = torch.full((1, max_seq_len), pad_id, dtype=torch.long)
    input_ids[0, :length] = torch.tensor(list(token_ids))
    attention_mask = (torch.arange(max_seq_len) < length).long().unsqueeze(0)
    unit_rel_ind_list = [[i] for i in range(length)]
    scores: List[np.ndarray] = []
    with torch.no_grad():
        for start in range(0, length, num_at_time):
            rel = prop_classifier_model(
                input_ids, attention_mask, unit_rel_ind_list[start : start + num_at_time], model, max_seq_len
            )[0]
            scores.append((rel[:, positive] - rel[:, negative]).numpy())
    return np.concatenate(scores)

"""ContextualDecomposition on a Hugging Face BERT against a written-out CD-T reference, layer by layer (float64, one
sentence, one phrase).

The reference follows the structure of CD_Circuit's ``pyfunctions/cdt_basic.py`` and ``cdt_core.py`` (Hsu et al.,
ICLR 2025: ``prop_linear``, ``prop_layer_norm``, ``prop_self_attention``, ``prop_attention``, ``prop_layer``,
``prop_encoder``, ``prop_pooler``), written here from the equations, with this package's choices where the two
differ (stated in ``docs/contextual_decomposition.rst``): a bias is kept apart ("pending") until the next op that
is not routing, an addition or a scaling, and only then split by the parts' magnitudes (exact halves where both are
0, no ``tol``); the activations use the two-player Shapley split; no ``normalize_rel_irrel`` sign fix-ups. The
decomposition starts at the word embeddings, so the position and token-type rows are constants (pending biases).
"""

from __future__ import annotations

from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import pytest
import torch
from torch import Tensor, nn

from _transformer_models import require_extra
from captum_text_ext import LayerContextualDecomposition
from captum_text_ext.decomposition.cd import Decomposed

AGREEMENT = 1e-10


class Parts(NamedTuple):
    """β (the phrase), γ (the rest) and a bias not yet split between them; their sum is the actual value."""

    rel: Tensor
    irrel: Tensor
    bias: Optional[Tensor]

    @property
    def total(self) -> Tensor:
        return self.rel + self.irrel + (0 if self.bias is None else self.bias)


def split_bias(parts: Parts) -> Tuple[Tensor, Tensor]:
    """The pending bias split in proportion to |β| and |γ| (halves where both are 0)."""
    if parts.bias is None:
        return parts.rel, parts.irrel
    size_rel, size_irrel = parts.rel.abs(), parts.irrel.abs()
    total = size_rel + size_irrel
    share = torch.where(total > 0, size_rel / torch.where(total > 0, total, torch.ones_like(total)), 0.5)
    return parts.rel + parts.bias * share, parts.irrel + parts.bias * (1 - share)


def prop_linear(parts: Parts, module: nn.Linear) -> Parts:
    rel, irrel = split_bias(parts)
    return Parts(rel @ module.weight.T, irrel @ module.weight.T, module.bias.expand(*rel.shape[:-1], -1))


def prop_add(first: Parts, second: Parts) -> Parts:
    """A residual addition: parts add, and so do the pending biases."""
    biases = [b for b in (first.bias, second.bias) if b is not None]
    return Parts(first.rel + second.rel, first.irrel + second.irrel, sum(biases) if biases else None)


def prop_layer_norm(parts: Parts, module: nn.LayerNorm) -> Parts:
    """Each part with its own mean removed, divided by the actual value's standard deviation; the bias pending."""
    total = parts.total
    rel, irrel = split_bias(parts)
    std = torch.sqrt(total.var(-1, unbiased=False, keepdim=True) + module.eps)
    rel_t = (rel - rel.mean(-1, keepdim=True)) / std * module.weight
    irrel_t = (irrel - irrel.mean(-1, keepdim=True)) / std * module.weight
    return Parts(rel_t, irrel_t, module.bias.expand_as(rel_t))


def prop_act(parts: Parts, act: Callable[[Tensor], Tensor]) -> Parts:
    """The two-player Shapley split with baseline 0 (:math:`a(0) = 0` for GELU and tanh)."""
    rel, irrel = split_bias(parts)
    zero = act(torch.zeros_like(rel))
    assert not zero.any()
    return Parts(0.5 * (act(rel) + act(rel + irrel) - act(irrel)), 0.5 * (act(irrel) + act(rel + irrel) - act(rel)), None)


def transpose_for_scores(x: Tensor, heads: int) -> Tensor:
    return x.view(*x.shape[:-1], heads, x.shape[-1] // heads).permute(0, 2, 1, 3)


def get_attention_probs(total: Tensor, sa_module: nn.Module, heads: int) -> Tensor:
    """The attention probabilities of the actual input (CD_Circuit's ``get_attention_probs``, no mask: one
    sentence, no padding)."""
    query = transpose_for_scores(sa_module.query(total), heads)
    key = transpose_for_scores(sa_module.key(total), heads)
    scores = query @ key.transpose(-1, -2) / (query.shape[-1] ** 0.5)
    return torch.softmax(scores, dim=-1)


def mul_att(probs: Tensor, value: Tensor, heads: int) -> Tensor:
    context = probs @ transpose_for_scores(value, heads)
    return context.permute(0, 2, 1, 3).reshape(*value.shape)


def prop_self_attention(parts: Parts, sa_module: nn.Module, heads: int) -> Parts:
    """The probabilities held fixed; the value path is linear."""
    probs = get_attention_probs(parts.total, sa_module, heads)
    value = prop_linear(parts, sa_module.value)
    rel, irrel = split_bias(value)
    return Parts(mul_att(probs, rel, heads), mul_att(probs, irrel, heads), None)


def prop_attention(parts: Parts, a_module: nn.Module, heads: int) -> Parts:
    context = prop_self_attention(parts, a_module.self, heads)
    dense = prop_linear(context, a_module.output.dense)
    return prop_layer_norm(prop_add(dense, parts), a_module.output.LayerNorm)


def prop_layer(parts: Parts, layer_module: nn.Module, heads: int) -> Parts:
    attention = prop_attention(parts, layer_module.attention, heads)
    intermediate = prop_act(prop_linear(attention, layer_module.intermediate.dense), nn.functional.gelu)
    output = prop_linear(intermediate, layer_module.output.dense)
    return prop_layer_norm(prop_add(output, attention), layer_module.output.LayerNorm)


def prop_embeddings(word: Tensor, phrase: Tensor, embeddings: nn.Module) -> Parts:
    """The word embeddings split by the phrase; position and token-type rows are constants (pending)."""
    steps = word.shape[1]
    inside = phrase.to(word.dtype).unsqueeze(-1)
    constants = embeddings.position_embeddings.weight[:steps] + embeddings.token_type_embeddings.weight[0]
    return prop_layer_norm(Parts(word * inside, word * (1 - inside), constants.expand_as(word)), embeddings.LayerNorm)


def prop_pooler(parts: Parts, pooler_module: nn.Module) -> Parts:
    first = Parts(parts.rel[:, 0], parts.irrel[:, 0], None if parts.bias is None else parts.bias[:, 0])
    return prop_act(prop_linear(first, pooler_module.dense), torch.tanh)


def cdt_reference(model: nn.Module, ids: Tensor, phrase: Tensor) -> Dict[str, Parts]:
    """The parts after the embeddings, after each encoder layer, after the pooler and at the logits."""
    bert = model.bert
    heads = bert.config.num_attention_heads
    parts = prop_embeddings(bert.embeddings.word_embeddings(ids), phrase, bert.embeddings)
    out = {"embeddings": parts}
    for index, layer_module in enumerate(bert.encoder.layer):
        parts = prop_layer(parts, layer_module, heads)
        out[f"layer {index}"] = parts
    out["pooler"] = prop_pooler(parts, bert.pooler)
    out["logits"] = prop_linear(out["pooler"], model.classifier)
    return out


def ours(model: nn.Module, ids: Tensor, phrase: Tensor) -> Dict[str, Parts]:
    """LayerContextualDecomposition from the word embeddings, with the same modules' outputs recorded."""
    bert = model.bert
    watched = {"embeddings": bert.embeddings, "pooler": bert.pooler}
    watched.update({f"layer {i}": layer for i, layer in enumerate(bert.encoder.layer)})
    seen: Dict[str, Decomposed] = {}
    handles = [
        module.register_forward_hook(lambda m, args, output, name=name: seen.setdefault(name, output))
        for name, module in watched.items()
    ]

    def logits(token_ids: Tensor) -> Tensor:
        result: Tensor = model(input_ids=token_ids).logits
        return result

    try:
        relevant, irrelevant, bias = LayerContextualDecomposition(logits, bert.embeddings.word_embeddings).decompose(
            ids, phrase, return_bias=True
        )
    finally:
        for handle in handles:
            handle.remove()
    parts = {name: Parts(d.beta[0], d.gamma[0], d.pending) for name, d in seen.items()}
    parts["logits"] = Parts(relevant, irrelevant, bias)
    return parts


@pytest.fixture(scope="module")
def bert_models() -> Dict[str, nn.Module]:
    transformers = require_extra()
    models = {}
    for attention in ("eager", "sdpa"):
        config = transformers.BertConfig(
            vocab_size=30, hidden_size=12, num_hidden_layers=2, num_attention_heads=3, intermediate_size=20,
            max_position_embeddings=16, num_labels=3, attn_implementation=attention,
        )  # fmt: skip
        torch.manual_seed(0)
        model = transformers.BertForSequenceClassification(config).double().eval()
        with torch.no_grad():  # biases as large as the weights, so that where they go matters
            for name, parameter in model.named_parameters():
                if name.endswith("bias"):
                    parameter.uniform_(-0.5, 0.5)
        models[attention] = model
    return models


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
@pytest.mark.parametrize("phrase", [[2], [1, 2, 3], [0, 5], list(range(6))], ids=str)
def test_every_layer_equals_the_written_out_cdt_reference(
    bert_models: Dict[str, nn.Module], attention: str, phrase: List[int]
) -> None:
    model = bert_models[attention]
    ids = torch.tensor([[2, 7, 11, 19, 23, 3]])
    mask = torch.zeros_like(ids, dtype=torch.bool)
    mask[0, phrase] = True
    with torch.no_grad():
        expected = cdt_reference(model, ids, mask)
    got = ours(model, ids, mask)
    assert set(got) == set(expected)
    for name, reference in expected.items():
        for part in ("rel", "irrel", "bias"):
            a, b = getattr(got[name], part), getattr(reference, part)
            assert (a is None) == (b is None), (name, part)
            if a is not None:
                torch.testing.assert_close(a, b.expand_as(a), rtol=0, atol=AGREEMENT, msg=f"{name}, {part}")
    torch.testing.assert_close(expected["logits"].total, model(input_ids=ids).logits, rtol=0, atol=1e-12)

"""ContextualDecomposition on transformers (CD-T): the identity on every model of part 1 (Hugging Face BERT,
DistilBERT, RoBERTa with eager and SDPA attention; ``nn.TransformerEncoder``; an LSTM with self-attention), padding,
eager = SDPA, phrases, words and interactions in batched passes, and the refusals (float64, tiny models)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import torch
from torch import Tensor, nn

from _token_transformers import EncoderTokenClassifier, LSTMSelfAttentionClassifier
from _transformer_models import CASES, HF_ARCHITECTURES, SENTENCES, TransformerCase, build_case
from captum_text_ext import ContextualDecomposition, LayerContextualDecomposition
from captum_text_ext.decomposition import RandomOpError, UnsupportedOperationError

IDENTITY = 1e-8
"""β + γ + bias against the logits (float64)."""
SAME = 1e-10
"""The same decomposition computed two ways (float64)."""


_BUILT: Dict[str, TransformerCase] = {}


def case_named(name: str, tmp_path_factory: pytest.TempPathFactory) -> TransformerCase:
    """The case ``name``, built once per session (Hugging Face models are saved and loaded as a user's are)."""
    if name not in _BUILT:
        _BUILT[name] = build_case(name, Path(tmp_path_factory.mktemp(name)))
    return _BUILT[name]


def word_embeddings(case: TransformerCase) -> nn.Module:
    """The token embedding inside the case's embeddings module."""
    embeddings = case.embeddings
    return embeddings.word_embeddings if hasattr(embeddings, "word_embeddings") else embeddings.token


def random_masks(shape: Tuple[int, int], phrases: int, seed: int) -> Tensor:
    """``(P, N, T)`` phrases of random positions, padding included."""
    return torch.rand(phrases, *shape, generator=torch.Generator().manual_seed(seed)) < 0.4


def padding(ids: Tensor) -> Tensor:
    """``(N, T)`` True at the padding of :data:`SENTENCES`."""
    lengths = torch.tensor([len(s) for s in SENTENCES])
    return torch.arange(ids.shape[1]).unsqueeze(0) >= lengths.unsqueeze(1)


# ----------------------------------------------------------------------------------------------------------------
# The identity, padding, eager = SDPA
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["embeddings", "word embeddings"])
@pytest.mark.parametrize("name", CASES)
def test_parts_and_bias_add_up_to_the_logits_for_every_phrase(
    name: str, start: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    case = case_named(name, tmp_path_factory)
    ids, mask = case.batch()
    layer = case.embeddings if start == "embeddings" else word_embeddings(case)
    masks = random_masks(tuple(ids.shape), 8, seed=len(name))
    masks[0] = padding(ids)  # padding alone
    masks[1] = ~padding(ids)  # each whole sentence
    relevant, irrelevant, bias = LayerContextualDecomposition(case.model, layer).decompose(
        ids, masks, (mask,), return_bias=True
    )
    with torch.no_grad():
        logits = case.model(ids, mask)
    assert (relevant + irrelevant + bias - logits).abs().max() < IDENTITY
    assert torch.equal(relevant[0], torch.zeros_like(relevant[0]))  # masked positions never enter β
    assert torch.equal(irrelevant[1], torch.zeros_like(irrelevant[1]))  # a whole sentence leaves γ nothing
    assert relevant[2:].abs().max() > 1e-3 and irrelevant[2:].abs().max() > 1e-3


@pytest.mark.parametrize("name", CASES)
def test_a_sentence_alone_gets_the_scores_it_gets_in_a_padded_batch(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    case = case_named(name, tmp_path_factory)
    ids, mask = case.batch()
    cd = LayerContextualDecomposition(case.model, word_embeddings(case))
    batch = cd.attribute(ids, target=1, additional_forward_args=(mask,))
    for n, sentence in enumerate(SENTENCES):
        alone_ids, alone_mask = case.batch([sentence])
        alone = cd.attribute(alone_ids, target=1, additional_forward_args=(alone_mask,))
        assert (batch[n, : len(sentence)] - alone[0]).abs().max() < 1e-8
        assert torch.equal(batch[n, len(sentence) :], torch.zeros_like(batch[n, len(sentence) :]))


@pytest.mark.parametrize("architecture", HF_ARCHITECTURES)
def test_eager_and_sdpa_attention_give_the_same_decomposition(
    architecture: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    results = []
    for attention in ("eager", "sdpa"):
        case = case_named(f"{architecture}-{attention}", tmp_path_factory)
        ids, mask = case.batch()
        masks = random_masks(tuple(ids.shape), 5, seed=3)
        cd = LayerContextualDecomposition(case.model, word_embeddings(case))
        results.append(cd.decompose(ids, masks, (mask,), return_bias=True))
    for eager, sdpa in zip(*results):
        assert (eager - sdpa).abs().max() < IDENTITY


# ----------------------------------------------------------------------------------------------------------------
# Words, phrases, interactions: batched as for LSTMs
# ----------------------------------------------------------------------------------------------------------------

TOKEN_MODELS = {
    "encoder-postnorm": lambda: EncoderTokenClassifier(40, 3, norm_first=False),
    "lstm-self-attention": lambda: LSTMSelfAttentionClassifier(40, 3),
}
IDS = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 0, 0, 0], [14, 15, 16, 17, 18, 0]])
LENGTHS = torch.tensor([6, 3, 5])


def token_model(name: str) -> nn.Module:
    torch.manual_seed(4)
    return TOKEN_MODELS[name]().double().eval()


@pytest.mark.parametrize("name", list(TOKEN_MODELS))
def test_all_single_token_scores_of_a_batch_equal_each_token_alone(name: str) -> None:
    model = token_model(name)
    cd = LayerContextualDecomposition(model, model.embedding)
    scores = cd.attribute(IDS, target=[0, 2, 1], additional_forward_args=LENGTHS, contrast=1)
    for t in range(IDS.shape[1]):
        mask = torch.zeros_like(IDS, dtype=torch.bool)
        mask[:, t] = True
        relevant = cd.decompose(IDS, mask, LENGTHS)[0]
        expected = relevant[torch.arange(3), torch.tensor([0, 2, 1])] - relevant[:, 1]
        assert (scores[:, t] - expected).abs().max() < SAME
    assert torch.equal(scores[1, 3:], torch.zeros(3, dtype=scores.dtype))  # padding scores exactly 0


@pytest.mark.parametrize("name", list(TOKEN_MODELS))
def test_phrase_scores_are_spread_over_their_tokens(name: str) -> None:
    model = token_model(name)
    cd = LayerContextualDecomposition(model, model.embedding)
    groups = torch.tensor([[0, 0, 1, 1, 1, 2], [0, 2, 2, 1, 1, 1], [2, 2, 0, 0, 1, 1]])
    scores = cd.attribute(IDS, target=2, additional_forward_args=LENGTHS, feature_mask=groups)
    relevant = cd.decompose(IDS, torch.stack([groups == g for g in range(3)]), LENGTHS)[0]
    for n in range(3):
        for g in range(3):
            assert abs(scores[n][groups[n] == g].sum() - relevant[g, n, 2]) < SAME


@pytest.mark.parametrize("name", list(TOKEN_MODELS))
def test_interaction_is_the_joint_phrase_minus_each_alone(name: str) -> None:
    model = token_model(name)
    cd = LayerContextualDecomposition(model, model.embedding)
    a, b = torch.zeros(2, 3, 6, dtype=torch.bool), torch.zeros(2, 3, 6, dtype=torch.bool)
    a[0, :, 0], b[0, :, 1:3] = True, True
    a[1, :, 2], b[1, :, 4] = True, True
    inter = cd.interaction(IDS, a, b, target=1, additional_forward_args=LENGTHS, contrast=0)
    joint, alone_a, alone_b = (cd.decompose(IDS, m, LENGTHS)[0] for m in (a | b, a, b))
    expected = joint - alone_a - alone_b
    assert (inter - (expected[..., 1] - expected[..., 0])).abs().max() < SAME
    assert inter.abs().max() > 1e-6  # attention makes the phrases interact


@pytest.mark.parametrize("name", list(TOKEN_MODELS))
def test_token_ids_and_embedding_inputs_give_the_same_decomposition(name: str) -> None:
    model = token_model(name)
    masks = random_masks((3, 6), 4, seed=1)
    by_ids = LayerContextualDecomposition(model, model.embedding).decompose(IDS, masks, LENGTHS, return_bias=True)
    x = model.embedding(IDS).detach()
    by_embeddings = ContextualDecomposition(model.forward_embeddings).decompose(x, masks, LENGTHS, return_bias=True)
    for first, second in zip(by_ids, by_embeddings):
        assert torch.equal(first, second)
    with torch.no_grad():
        logits = model(IDS, LENGTHS)
    assert (sum(by_ids) - logits).abs().max() < IDENTITY


# ----------------------------------------------------------------------------------------------------------------
# Fused paths and refusals
# ----------------------------------------------------------------------------------------------------------------


def test_nested_tensors_stay_off_under_the_guard() -> None:
    torch.manual_seed(4)
    nested = EncoderTokenClassifier(40, 3, norm_first=False, enable_nested_tensor=True).double().eval()
    plain = EncoderTokenClassifier(40, 3, norm_first=False, enable_nested_tensor=False).double().eval()
    plain.load_state_dict(nested.state_dict())
    masks = random_masks((3, 6), 4, seed=2)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*nested tensors")  # the nested path is never taken
        first = LayerContextualDecomposition(nested, nested.embedding).decompose(IDS, masks, LENGTHS, return_bias=True)
    second = LayerContextualDecomposition(plain, plain.embedding).decompose(IDS, masks, LENGTHS, return_bias=True)
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    with torch.no_grad(), pytest.warns(UserWarning, match="nested tensors"):  # outside the guard it is
        logits = nested(IDS, LENGTHS)
    assert (sum(first) - logits).abs().max() < IDENTITY


class _Direct(nn.Module):
    """Calls a fused kernel (or makes a nested tensor) itself."""

    def __init__(self, which: str) -> None:
        super().__init__()
        self.which = which
        self.layer = nn.TransformerEncoderLayer(4, 2, dim_feedforward=8, dropout=0.0, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        attention = self.layer.self_attn
        if self.which == "_transformer_encoder_layer_fwd":
            out = torch._transformer_encoder_layer_fwd(
                x, 4, 2, attention.in_proj_weight, attention.in_proj_bias, attention.out_proj.weight,
                attention.out_proj.bias, False, False, 1e-5, self.layer.norm1.weight, self.layer.norm1.bias,
                self.layer.norm2.weight, self.layer.norm2.bias, self.layer.linear1.weight, self.layer.linear1.bias,
                self.layer.linear2.weight, self.layer.linear2.bias, None,
            )  # fmt: skip
        elif self.which == "_native_multi_head_attention":
            out = torch._native_multi_head_attention(
                x, x, x, 4, 2, attention.in_proj_weight, attention.in_proj_bias, attention.out_proj.weight,
                attention.out_proj.bias, None, False,
            )[0]  # fmt: skip
        else:
            out = torch._nested_tensor_from_mask(x, torch.ones(x.shape[:2], dtype=torch.bool)).to_padded_tensor(0.0)
        return out.sum(1)


@pytest.mark.parametrize("which", ["_transformer_encoder_layer_fwd", "_native_multi_head_attention",
                                   "_nested_tensor_from_mask"])
def test_fused_kernels_and_nested_tensors_are_refused_by_name(which: str) -> None:
    model = _Direct(which).double().eval()
    x = torch.randn(2, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(UnsupportedOperationError, match=f"no rule for `torch.{which}`") as error:
        ContextualDecomposition(model).decompose(x, torch.ones(2, 3, dtype=torch.bool))
    if which != "_nested_tensor_from_mask":
        assert "fast path" in str(error.value)


def test_attention_scores_that_reach_the_output_are_refused() -> None:
    def gram(x: Tensor) -> Tensor:
        return (x @ x.transpose(1, 2)).sum(-1)

    x = torch.randn(2, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(UnsupportedOperationError, match=r"`torch.(Tensor.)?matmul` .*as attention scores"):
        ContextualDecomposition(gram).decompose(x, torch.ones(2, 3, dtype=torch.bool))

    def scores_times_values(x: Tensor) -> Tensor:  # a product of the scores with a decomposed tensor: no softmax
        return ((x @ x.transpose(1, 2)) @ x).sum(1)

    with pytest.raises(UnsupportedOperationError, match=r"`torch.(Tensor.)?matmul` .*as attention scores"):
        ContextualDecomposition(scores_times_values).decompose(x, torch.ones(2, 3, dtype=torch.bool))


def test_attention_dropout_in_training_mode_is_random() -> None:
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(4, 2, dropout=0.5, batch_first=True).double().train()
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    with pytest.raises(RandomOpError, match="multi_head_attention_forward"):
        ContextualDecomposition(lambda e: attention(e, e, e)[0].sum(1)).decompose(x, torch.ones(2, 3, dtype=torch.bool))

    def sdpa(e: Tensor) -> Tensor:
        q = e.unsqueeze(1)
        return nn.functional.scaled_dot_product_attention(q, q, q, dropout_p=0.2).sum((1, 2))

    with pytest.raises(RandomOpError, match="scaled_dot_product_attention"):
        ContextualDecomposition(sdpa).decompose(x, torch.ones(2, 3, dtype=torch.bool))


def test_multi_head_attention_options_without_a_rule_are_refused() -> None:
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(4, 2, add_bias_kv=True, batch_first=True).double().eval()
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    with pytest.raises(UnsupportedOperationError, match="with bias_k, bias_v is not supported"):
        ContextualDecomposition(lambda e: attention(e, e, e)[0].sum(1)).decompose(x, torch.ones(2, 3, dtype=torch.bool))


# ----------------------------------------------------------------------------------------------------------------
# The attention and normalization rules against their formulas
# ----------------------------------------------------------------------------------------------------------------


def _single(forward: nn.Module, x: Tensor, mask: Tensor) -> List[Tensor]:
    return list(ContextualDecomposition(forward).decompose(x, mask, return_bias=True))


@pytest.mark.parametrize("kind", ["sdpa", "multi-head"])
def test_attention_holds_its_weights_fixed_and_averages_the_values_parts(kind: str) -> None:
    torch.manual_seed(2)
    attention = nn.MultiheadAttention(4, 2, batch_first=True).double().eval()
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    keep = torch.tensor([[True] * 5, [True, True, True, False, False]])
    mask = torch.tensor([[False, True, True, False, False], [True, False, False, False, False]])

    def multi_head(e: Tensor) -> Tensor:
        return attention(e, e, e, key_padding_mask=~keep, need_weights=False)[0]

    def sdpa(e: Tensor) -> Tensor:  # the value projected by hand, the same weights as multi-head
        q = e.unsqueeze(1)
        return nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=keep[:, None, None, :]).squeeze(1)

    forward = multi_head if kind == "multi-head" else sdpa
    relevant, irrelevant, bias = _single(forward, x, mask)
    with torch.no_grad():
        if kind == "multi-head":
            _, weights = attention(x, x, x, key_padding_mask=~keep, average_attn_weights=False)  # (N, H, L, S)
            w_v, b_v = attention.in_proj_weight[8:], attention.in_proj_bias[8:]
            inside = mask.to(x.dtype).unsqueeze(-1)
            rel_v, irrel_v = (x * inside) @ w_v.T, (x * (1 - inside)) @ w_v.T
            share = rel_v.abs() / (rel_v.abs() + irrel_v.abs())
            rel_v, irrel_v = rel_v + b_v * share, irrel_v + b_v * (1 - share)

            def heads(v: Tensor) -> Tensor:
                per_head = weights @ v.view(2, 5, 2, 2).transpose(1, 2)
                return per_head.transpose(1, 2).reshape(2, 5, 4) @ attention.out_proj.weight.T

            expected = (heads(rel_v), heads(irrel_v), attention.out_proj.bias.expand(2, 5, 4))
        else:
            weights = torch.softmax((x @ x.transpose(1, 2) / 2).masked_fill(~keep[:, None, :], -torch.inf), -1)
            inside = mask.to(x.dtype).unsqueeze(-1)
            expected = (weights @ (x * inside), weights @ (x * (1 - inside)), torch.zeros_like(x))
    for got, want in zip((relevant, irrelevant, bias), expected):
        assert (got - want).abs().max() < SAME


def test_layer_norm_removes_each_parts_mean_and_uses_the_actual_scale() -> None:
    torch.manual_seed(1)
    norm = nn.LayerNorm(4).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5), norm.bias.uniform_(-1, 1)
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    relevant, irrelevant, bias = _single(norm, x, mask)
    with torch.no_grad():
        std = torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + norm.eps)
        inside = mask.to(x.dtype).unsqueeze(-1)
        rel, irrel = x * inside, x * (1 - inside)
    assert (relevant - (rel - rel.mean(-1, keepdim=True)) / std * norm.weight).abs().max() < SAME
    assert (irrelevant - (irrel - irrel.mean(-1, keepdim=True)) / std * norm.weight).abs().max() < SAME
    assert torch.equal(bias, norm.bias.detach().expand(2, 3, 4))
    assert torch.equal(relevant[1, :2], torch.zeros(2, 4, dtype=x.dtype))  # positions outside stay exactly 0


def test_rms_norm_scales_every_part_by_the_actual_value() -> None:
    torch.manual_seed(1)
    norm = nn.RMSNorm(4, eps=1e-6).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    relevant, irrelevant, bias = _single(lambda e: norm(e + 1.0), x, mask)
    with torch.no_grad():
        scale = torch.rsqrt((x + 1).pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight
        inside = mask.to(x.dtype).unsqueeze(-1)
    assert (relevant - x * inside * scale).abs().max() < SAME
    assert (irrelevant - x * (1 - inside) * scale).abs().max() < SAME
    assert (bias - scale).abs().max() < SAME  # the added constant stays pending, scaled

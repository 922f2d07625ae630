"""TransformerLRP on the models users bring (Hugging Face BERT, DistilBERT, RoBERTa in eager and SDPA attention, and
PyTorch's ``nn.TransformerEncoder``), float64: the written-out per-layer oracle of both presets, conservation on
bias-free models, masks and padding, the fused kernels and fast paths, LSTM layers mixed with self-attention, and the
refusals. The Captum contract is in ``test_contract.py``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

import pytest
import torch
from torch import Tensor, nn

from _transformer_lrp_oracle import Encoder, oracle_relevance
from _transformer_models import (
    CASES,
    HF_ARCHITECTURES,
    HF_CASES,
    SENTENCES,
    TransformerCase,
    build_case,
    UserTransformerClassifier,
    hf_classifier,
    zero_biases,
)
from captum_text_ext import (
    LSTMLRP,
    LayerTransformerLRP,
    RandomOpError,
    TransformerLRP,
    UnsupportedOperationError,
)
from captum_text_ext.decomposition.lrp import PRESETS

ORACLE = 1e-10
CONSERVED = 1e-6
SAME = 1e-8
TARGET = 2


Models = Callable[..., TransformerCase]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """``models(name, bias_free=False)``: every case built once per module (saving and loading the Hugging Face
    models takes a moment); ``bias_free``: its :func:`conservation_model`."""
    directory = tmp_path_factory.mktemp("models")
    built: Dict[Tuple[str, bool], TransformerCase] = {}

    def get(name: str, bias_free: bool = False) -> TransformerCase:
        if (name, bias_free) not in built:
            case = build_case(name, directory / ("bias-free" if bias_free else "biased"))
            built[name, bias_free] = conservation_model(case) if bias_free else case
        return built[name, bias_free]

    return get


def conservation_model(case: TransformerCase) -> TransformerCase:
    r"""``case`` without biases and with every Linear weight redrawn at its width's scale (std
    :math:`1/\sqrt{\text{fan-in}}`): Hugging Face's std 0.02 (meant for width 768) leaves the width-16 models
    logits near :math:`10^{-3}`, where the ε-rule's own absorption (about ε per layer) is :math:`10^{-6}` of the
    logit; at this scale the logits are near 1."""
    zero_biases(case.model)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for module in case.model.modules():
            if isinstance(module, nn.Linear):
                drawn = torch.randn(module.weight.shape, generator=generator, dtype=module.weight.dtype)
                module.weight.copy_(drawn / module.in_features**0.5)
    return case


def lengths_of(sentences: Any = SENTENCES) -> Tensor:
    return torch.tensor([len(s) for s in sentences])


def padded(ids: Tensor, sentences: Any = SENTENCES) -> Tensor:
    """``(N, T)`` True at the padded positions of a right-padded batch."""
    return torch.arange(ids.shape[1]) >= lengths_of(sentences).unsqueeze(1)


def explain(case: TransformerCase, preset: str, epsilon: float = 1e-6, sentences: Any = SENTENCES) -> Any:
    ids, mask = case.batch(sentences)
    lrp = LayerTransformerLRP(case.model, case.embeddings, rule=preset, epsilon=epsilon)
    return lrp.decompose(ids, target=TARGET, additional_forward_args=(mask,))


def written_out(case: TransformerCase, preset: str, epsilon: float) -> Tuple[Tensor, Tensor]:
    """The per-layer oracle's relevance and softmax leak on the case's batch (target :data:`TARGET`)."""
    ids, mask = case.batch()
    with torch.no_grad():
        embedded = case.embeddings(ids)
    return oracle_relevance(Encoder.of(case.hf_model), embedded, mask, TARGET, preset, epsilon)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("name", HF_CASES)
def test_the_written_out_equations_give_the_same_relevance(
    models: Models, name: str, preset: str
) -> None:
    case = models(name)
    ours = explain(case, preset).inputs
    expected, _ = written_out(case, preset, 1e-6)
    assert (ours - expected).abs().max() <= ORACLE * expected.abs().max()


@pytest.mark.parametrize("name", CASES)
def test_cp_conserves_the_logit_on_a_bias_free_model(models: Models, name: str) -> None:
    account = explain(models(name, bias_free=True), "cp", epsilon=1e-9)
    assert account.initial_states == {}
    assert ((account.input_total - account.scores).abs() <= CONSERVED * account.scores.abs()).all()


@pytest.mark.parametrize("name", HF_CASES)
def test_attnlrp_departs_from_conservation_by_what_its_softmax_rule_leaks(
    models: Models, name: str
) -> None:
    case = models(name, bias_free=True)
    account = explain(case, "attnlrp", epsilon=1e-9)
    _, leak = written_out(case, "attnlrp", 1e-9)
    assert (leak.abs() > 1e3 * CONSERVED * account.scores.abs()).all()  # a real departure, not rounding
    assert ((account.absorbed - leak).abs() <= CONSERVED * account.scores.abs()).all()


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("name", CASES)
def test_padding_gets_zero_and_a_sentence_alone_equals_it_in_a_padded_batch(
    models: Models, name: str, preset: str
) -> None:
    case = models(name)
    batch = explain(case, preset).inputs
    ids, _ = case.batch()
    assert not batch.isnan().any()
    assert batch[padded(ids)].abs().max() == 0
    for row, sentence in enumerate(SENTENCES):
        alone = explain(case, preset, sentences=[sentence]).inputs[0]
        scale = alone.abs().max()
        assert (batch[row, : len(sentence)] - alone).abs().max() <= CONSERVED * scale


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("architecture", HF_ARCHITECTURES)
def test_eager_and_sdpa_attention_give_the_same_relevance(
    models: Models, architecture: str, preset: str
) -> None:
    eager = explain(models(f"{architecture}-eager"), preset).inputs
    sdpa = explain(models(f"{architecture}-sdpa"), preset).inputs
    assert (eager - sdpa).abs().max() <= SAME * eager.abs().max()


def test_token_type_ids_are_read(tmp_path: Path) -> None:
    bert = hf_classifier("bert", "sdpa", tmp_path / "bert-types")

    def logits(ids: Tensor, mask: Tensor, types: Tensor) -> Tensor:
        out: Tensor = bert(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        return out

    ids = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 10, 11, 12]])
    mask = (ids != 0).long()
    types = torch.tensor([[0, 1, 1, 0, 0], [0, 0, 1, 1, 1]])
    lrp = LayerTransformerLRP(logits, bert.bert.embeddings, rule="cp")
    relevance, delta = lrp.attribute(ids, target=1, additional_forward_args=(mask, types),
                                     return_convergence_delta=True)
    assert relevance[0, 3:].abs().max() == 0 and relevance[0, :3].abs().min() > 0
    scores = logits(ids, mask, types)[:, 1]
    assert torch.allclose(relevance.flatten(1).sum(1) + delta, scores, atol=1e-12)
    other_types = lrp.attribute(ids, target=1, additional_forward_args=(mask, torch.zeros_like(types)))
    assert not torch.allclose(relevance, other_types)


@pytest.mark.parametrize("preset", PRESETS)
def test_left_padding_runs_and_its_padded_positions_get_zero(models: Models, preset: str) -> None:
    """Left padding is explained as the model computes it: masked keys get no relevance (a model that reads the
    first position, like BERT's pooler, would read a pad there: right padding is the supported layout)."""
    case = models("torch-postnorm")
    right, _ = case.batch()
    left = torch.stack([torch.roll(row, int((row == 0).sum())) for row in right])
    is_pad = left == 0
    relevance = LayerTransformerLRP(case.model, case.embeddings, rule=preset).attribute(
        left, target=TARGET, additional_forward_args=(is_pad,))
    assert not relevance.isnan().any() and relevance[is_pad].abs().max() == 0
    assert relevance[~is_pad].abs().min() > 0


class Attention(nn.Module):
    """Self-attention over embeddings with a mask in one of the three conventions, then a linear head on the
    first position (no biases: "cp" conserves)."""

    def __init__(self, convention: str) -> None:
        super().__init__()
        self.convention = convention
        self.mha = nn.MultiheadAttention(6, 2, bias=False, batch_first=True)
        self.head = nn.Linear(6, 3, bias=False)

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:
        if self.convention == "key_padding_mask":  # True = ignore; need_weights=True runs baddbmm + softmax
            out, _ = self.mha(x, x, x, key_padding_mask=~keep)
        else:
            n, t, _ = x.shape
            q, k, v = (p.view(n, t, 2, 3).transpose(1, 2) for p in torch.nn.functional.linear(
                x, self.mha.in_proj_weight).chunk(3, dim=-1))
            mask = keep[:, None, None, :]  # bool: True = attend
            if self.convention == "additive":
                mask = torch.zeros(mask.shape, dtype=x.dtype).masked_fill(~mask, float("-inf"))
            heads = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            out = self.mha.out_proj(heads.transpose(1, 2).reshape(n, t, 6))
        logits: Tensor = self.head(out[:, 0])
        return logits


@pytest.mark.parametrize("preset", PRESETS)
def test_the_three_mask_conventions_give_the_same_relevance_without_nan(preset: str) -> None:
    torch.manual_seed(3)
    x = torch.randn(3, 5, 6, dtype=torch.float64)
    keep = torch.tensor([[True] * 5, [True, True, True, False, False], [True, False, False, False, False]])
    results = []
    for convention in ("key_padding_mask", "boolean", "additive"):
        torch.manual_seed(4)
        model = Attention(convention).double().eval()
        lrp = TransformerLRP(model, rule=preset, epsilon=1e-9)
        relevance, delta = lrp.attribute(x, target=0, additional_forward_args=(keep,), return_convergence_delta=True)
        assert not relevance.isnan().any() and relevance[~keep].abs().max() == 0
        if preset == "cp":
            assert (delta.abs() <= CONSERVED * model(x, keep)[:, 0].abs()).all()
        results.append(relevance)
    for other in results[1:]:
        assert (other - results[0]).abs().max() <= SAME * results[0].abs().max()


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors is in prototype stage")
def test_the_fast_path_and_nested_tensors_are_not_taken_and_the_direct_kernel_is_refused(tmp_path: Path) -> None:
    case = build_case("torch-postnorm", tmp_path)
    torch.manual_seed(0)
    user = UserTransformerClassifier(norm_first=False, enable_nested_tensor=True).double().eval()
    user.load_state_dict(case.model.state_dict())
    assert user.encoder.use_nested_tensor
    nested = dataclasses.replace(case, model=user, embeddings=user.embeddings)
    ids, mask = case.batch()
    with torch.no_grad():  # the model itself takes its fast path here, with nested tensors
        assert torch.allclose(nested.model(ids, mask)[~mask.all(1)], case.model(ids, mask)[~mask.all(1)])
    for preset in PRESETS:
        plain = explain(case, preset).inputs
        assert torch.equal(explain(nested, preset).inputs, plain)
    layer = case.model.encoder.layers[0]
    x = torch.randn(2, 3, 16, dtype=torch.float64)

    def fused(x: Tensor) -> Tensor:
        out: Tensor = torch._transformer_encoder_layer_fwd(  # what nn.TransformerEncoderLayer's fast path calls
            x, 16, 2, layer.self_attn.in_proj_weight, layer.self_attn.in_proj_bias, layer.self_attn.out_proj.weight,
            layer.self_attn.out_proj.bias, False, True, 1e-5, layer.norm1.weight, layer.norm1.bias,
            layer.norm2.weight, layer.norm2.bias, layer.linear1.weight, layer.linear1.bias, layer.linear2.weight,
            layer.linear2.bias, None,
        )
        return out[:, 0, :3]

    with pytest.raises(UnsupportedOperationError, match="_transformer_encoder_layer_fwd.*fast paths"):
        TransformerLRP(fused).attribute(x, target=0)


class RecurrentAttention(nn.Module):
    """A bi-LSTM whose outputs go through self-attention (``nn.MultiheadAttention``), mean-pooled, then linear."""

    def __init__(self, bias: bool) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 3, batch_first=True, bidirectional=True, bias=bias)
        self.attention = nn.MultiheadAttention(6, 2, batch_first=True, bias=bias)
        self.head = nn.Linear(6, 2, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        states, _ = self.lstm(x)
        mixed, _ = self.attention(states, states, states)
        logits: Tensor = self.head(mixed.mean(1))
        return logits


def test_lstm_layers_mixed_with_self_attention_get_arras_rules() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 6, 4, dtype=torch.float64)
    model = RecurrentAttention(bias=False).double().eval()
    account = TransformerLRP(model, rule="cp", epsilon=1e-12).decompose(x, target=1)  # logits near 1e-2
    assert sorted(account.initial_states) == ["lstm.c0", "lstm.h0"]
    total = account.input_total + account.initial_state_total
    assert ((total - account.scores).abs() <= CONSERVED * account.scores.abs()).all()
    lstm_only = RecurrentAttention(bias=True).double().eval()

    def first_states(x: Tensor) -> Tensor:
        states, _ = lstm_only.lstm(x)
        logits: Tensor = lstm_only.head(states[:, -1])
        return logits

    for epsilon in (1e-3, 1e-6):
        arras = LSTMLRP(first_states, epsilon=epsilon).attribute(x, target=0)
        ours = TransformerLRP(first_states, rule="attnlrp", epsilon=epsilon).attribute(x, target=0)
        assert torch.equal(ours, arras)


def test_refusals_name_what_is_refused() -> None:
    with pytest.raises(ValueError, match="`rule` to be one of"):
        TransformerLRP(nn.Linear(2, 2), rule="lrp")
    with pytest.raises(ValueError, match="epsilon"):
        TransformerLRP(nn.Linear(2, 2), epsilon=0.0)
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    grouped = nn.Sequential(nn.GroupNorm(1, 3), nn.Flatten(), nn.Linear(12, 2)).double()
    with pytest.raises(UnsupportedOperationError, match="group_norm.*'0' of type GroupNorm.*layer_norm, rms_norm"):
        TransformerLRP(grouped).attribute(x, target=0)

    def dropped(x: Tensor) -> Tensor:
        out = torch.nn.functional.scaled_dot_product_attention(x, x, x, dropout_p=0.1)
        return out[:, 0, :2]

    with pytest.raises(RandomOpError, match="scaled_dot_product_attention"):
        TransformerLRP(dropped).attribute(x, target=0)

    def all_masked(x: Tensor) -> Tensor:
        mask = torch.tensor([[False, False, False]] * 3)
        out = torch.nn.functional.scaled_dot_product_attention(x, x, x, attn_mask=mask)
        return out[:, 0, :2]

    with pytest.raises(UnsupportedOperationError, match="hides every key"):
        TransformerLRP(all_masked).attribute(x, target=0)


@pytest.mark.parametrize("preset", PRESETS)
def test_layer_norm_and_rms_norm_and_normalize_hold_their_scale(preset: str) -> None:
    """Bias-free normalizations and an element-wise product of two relevance-carrying tensors (uniform rule):
    relevance is conserved; the RMSNorm and ``normalize`` pass it on entry by entry."""
    torch.manual_seed(2)
    x = torch.randn(3, 5, dtype=torch.float64)
    norm = nn.LayerNorm(5, bias=False).double()
    rms = nn.RMSNorm(5).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        rms.weight.uniform_(0.5, 1.5)

    def model(x: Tensor) -> Tensor:
        gated = torch.nn.functional.normalize(rms(norm(x)), dim=-1) * torch.sigmoid(x)
        return gated.sum(-1, keepdim=True)

    relevance, delta = TransformerLRP(model, rule=preset, epsilon=1e-12).attribute(x, return_convergence_delta=True)
    assert (delta.abs() <= 1e-9 * model(x).abs().squeeze(1)).all()

    def entry_wise(x: Tensor) -> Tensor:
        return torch.nn.functional.normalize(rms(x), dim=-1)[:, :1]

    relevance = TransformerLRP(entry_wise, rule=preset, epsilon=1e-12).attribute(x)
    assert torch.allclose(relevance[:, 0], entry_wise(x)[:, 0], atol=1e-12) and relevance[:, 1:].abs().max() == 0


def test_verbose_names_the_rules(capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    model = Attention("boolean").double().eval()
    x = torch.randn(2, 4, 6, dtype=torch.float64)
    TransformerLRP(model).attribute(x, target=0, additional_forward_args=(torch.ones(2, 4, dtype=torch.bool),),
                                    verbose=True)
    printed = capsys.readouterr().out
    assert "TransformerLRP: <root>: torch.nn.functional.scaled_dot_product_attention -> run as its steps" in printed
    assert "torch.softmax -> Taylor at x (AttnLRP)" in printed
    assert "uniform rule for two relevance-carrying operands" in printed

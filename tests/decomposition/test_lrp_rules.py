"""Each LRP rule against its formula, written out with NumPy loops (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from captum_text_ext import LSTMLRP
from captum_text_ext.decomposition.lrp import EpsilonRule, sign0
from captum_text_ext.decomposition.lrp.relevance import stabilized_quotient

EPS = 1e-2  # a large stabilizer makes every stabilizer term visible
EXACT = 1e-12
DELTAS = pytest.mark.parametrize("delta", [0.0, 1.0], ids=["LRP", "LRP_cons"])


def sgn(z: float) -> float:
    return 1.0 if z >= 0 else -1.0


def test_sign_of_zero_is_plus_one_and_rule_validation() -> None:
    values = torch.tensor([0.0, -0.0, -1e-300], dtype=torch.float64)
    assert torch.equal(sign0(values), torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="Expected `epsilon` to be a finite positive number, but got -1"):
        EpsilonRule(-1)
    with pytest.raises(ValueError, match="Expected `epsilon` to be a finite positive number, but got inf"):
        EpsilonRule(float("inf"))
    with pytest.raises(ValueError, match=r"Expected `bias_factor` to be a number in \[0, 1\] .*, but got inf"):
        EpsilonRule(1e-3, float("inf"))
    with pytest.raises(ValueError, match=r"Expected `bias_factor` to be a number in \[0, 1\] .*, but got 2"):
        EpsilonRule(1e-3, 2)


def test_stabilized_quotient_is_the_division_by_the_stabilized_denominator() -> None:
    """In one buffer (no grad, same shapes) and by plain division (grad enabled, broadcast relevance) alike, exactly
    R / (z + eps sign0(z)), with sign0(±0) = +1."""
    z = torch.tensor([[0.0, -0.0, -2.5, 3.0], [1e-3, -1e-3, 7.0, -0.5]], dtype=torch.float64)
    relevance = torch.tensor([[1.0, -2.0, 0.5, 4.0], [3.0, 1.0, -1.0, 2.0]], dtype=torch.float64)
    signs = torch.tensor([[1.0, 1.0, -1.0, 1.0], [1.0, -1.0, 1.0, -1.0]], dtype=torch.float64)
    expected = relevance / (z + EPS * signs)
    with torch.no_grad():
        assert torch.equal(stabilized_quotient(relevance, z, EPS), expected)
    with torch.enable_grad():
        assert torch.equal(stabilized_quotient(relevance, z, EPS), expected)
    with torch.no_grad():
        assert torch.equal(stabilized_quotient(relevance[:1], z, EPS), relevance[:1] / (z + EPS * signs))


@DELTAS
def test_linear_epsilon_rule(delta: float) -> None:
    torch.manual_seed(0)
    layer = nn.Linear(4, 3).double()
    x = torch.randn(2, 4, dtype=torch.float64)
    relevance = LSTMLRP(layer, epsilon=EPS, bias_factor=delta).attribute(x, target=1)
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    for n in range(2):
        z = w[1] @ x[n].numpy() + b[1]
        expected = (x[n].numpy() * w[1] + delta * (b[1] + EPS * sgn(z)) / 4) / (z + EPS * sgn(z)) * z
        assert np.abs(relevance[n].numpy() - expected).max() < EXACT


@DELTAS
def test_conv1d_epsilon_rule_counts_the_taps_inside_the_input(delta: float) -> None:
    torch.manual_seed(1)
    conv = nn.Conv1d(2, 3, kernel_size=3, padding=1).double()
    x = torch.randn(1, 2, 5, dtype=torch.float64)

    def unit(inputs: Tensor) -> Tensor:
        return conv(inputs).flatten(1)

    w, b = conv.weight.detach().numpy(), conv.bias.detach().numpy()
    for channel, position in [(0, 0), (2, 2), (1, 4)]:  # borders have 2 taps inside the input, the middle 3
        target = channel * 5 + position
        relevance = LSTMLRP(unit, epsilon=EPS, bias_factor=delta).attribute(x, target=target)[0].numpy()
        taps = [k for k in range(3) if 0 <= position + k - 1 < 5]
        z = b[channel] + sum(w[channel, :, k] @ x[0, :, position + k - 1].numpy() for k in taps)
        fan_in = 2 * len(taps)
        expected = np.zeros((2, 5))
        for k in taps:
            i = position + k - 1
            expected[:, i] = (
                (x[0, :, i].numpy() * w[channel, :, k] + delta * (b[channel] + EPS * sgn(z)) / fan_in)
                / (z + EPS * sgn(z))
                * z
            )
        assert np.abs(relevance - expected).max() < EXACT


@DELTAS
def test_masked_sum_and_mean_count_only_nonzero_terms(delta: float) -> None:
    x = torch.randn(2, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.float64).unsqueeze(-1)

    def masked_sum(inputs: Tensor) -> Tensor:
        return (inputs * mask).sum(dim=1)

    def mean(inputs: Tensor) -> Tensor:
        return inputs.mean(dim=1)

    for model, weight in ((masked_sum, mask), (mean, torch.full_like(mask, 1 / 5))):
        relevance = LSTMLRP(model, epsilon=EPS, bias_factor=delta).attribute(x, target=2)
        for n in range(2):
            terms = (weight[n, :, 0] * x[n, :, 2]).numpy()
            z = terms.sum()
            present = terms != 0
            expected = (terms + delta * EPS * sgn(z) * present / present.sum()) / (z + EPS * sgn(z)) * z
            assert np.abs(relevance[n, :, 2].numpy() - expected).max() < EXACT
            assert torch.count_nonzero(relevance[n, :, :2]) == 0
        if model is masked_sum:
            assert torch.count_nonzero(relevance[0, 3:]) == 0  # masked positions get exactly 0


@DELTAS
def test_add_and_sub_are_weighted_layers_with_constants_as_bias(delta: float) -> None:
    x = torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    constant = torch.full((1, 1), 1.5, dtype=torch.float64)
    models = {
        "two operands": (lambda t: torch.sub(t[:, :1], t[:, 1:], alpha=2), (1.0, -2.0), 0.0),
        "constant tensor": (lambda t: t[:, :1] + constant, (1.0, 0.0), 1.5),
        "reflected scalar": (lambda t: 1.5 - t[:, :1], (-1.0, 0.0), 1.5),
    }
    for model, weights, bias in models.values():
        relevance = LSTMLRP(model, epsilon=EPS, bias_factor=delta).attribute(x, target=0)
        operands = sum(1 for w in weights if w != 0)
        for n in range(3):
            terms = np.array(weights) * x[n].numpy()
            z = terms.sum() + bias
            expected = np.where(
                np.array(weights) != 0, (terms + delta * (bias + EPS * sgn(z)) / operands) / (z + EPS * sgn(z)) * z, 0.0
            )
            assert np.abs(relevance[n].numpy() - expected).max() < EXACT


@DELTAS
def test_attention_weights_are_gates_and_the_weighted_sum_is_a_weighted_layer(delta: float) -> None:
    x = torch.randn(2, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])

    def attention(inputs: Tensor) -> Tensor:
        scores = inputs.sum(-1).masked_fill(~mask, float("-inf"))
        alpha = torch.softmax(scores, dim=1)
        return torch.bmm(alpha.unsqueeze(1), inputs).squeeze(1)

    relevance = LSTMLRP(attention, epsilon=EPS, bias_factor=delta).attribute(x, target=1)
    for n in range(2):
        alpha = torch.softmax(x[n].sum(-1).masked_fill(~mask[n], float("-inf")), 0).numpy()
        terms = alpha * x[n, :, 1].numpy()
        z = terms.sum()
        present = terms != 0
        expected = (terms + delta * EPS * sgn(z) * present / present.sum()) / (z + EPS * sgn(z)) * z
        assert np.abs(relevance[n, :, 1].numpy() - expected).max() < EXACT
        assert torch.count_nonzero(relevance[n, :, [0, 2]]) == 0  # the scores path carries nothing


@DELTAS
def test_activations_and_constant_products_pass_relevance_through(delta: float) -> None:
    torch.manual_seed(5)
    layer = nn.Linear(3, 2).double()

    def model(inputs: Tensor) -> Tensor:
        return -torch.relu(torch.tanh(layer(inputs)) * 2.0) / 3.0 - 0.0

    x = torch.randn(4, 3, dtype=torch.float64)
    relevance = LSTMLRP(model, epsilon=EPS, bias_factor=delta).attribute(x, target=0)
    w, b = layer.weight.detach().numpy()[0], layer.bias.detach().numpy()[0]
    for n in range(4):
        y = w @ x[n].numpy() + b
        out = -max(np.tanh(y) * 2.0, 0.0) / 3.0
        r_out = (out + delta * EPS * sgn(out)) / (out + EPS * sgn(out)) * out  # the final `- 0.0`
        expected = (x[n].numpy() * w + delta * (b + EPS * sgn(y)) / 3) / (y + EPS * sgn(y)) * r_out
        assert np.abs(relevance[n].numpy() - expected).max() < EXACT


def test_in_place_activations_give_what_their_out_of_place_forms_give() -> None:
    """``F.relu(h, inplace=True)`` and an in-place ``nn.Dropout`` in evaluation mode run on a copy under the method:
    the relevance equals the out-of-place model's, and the tensor the preceding rule saved is left as it was."""
    torch.manual_seed(6)
    first, second = nn.Linear(3, 4).double(), nn.Linear(4, 2).double()
    dropout = nn.Dropout(0.5, inplace=True).eval()

    def model(inputs: Tensor, inplace: bool) -> Tensor:
        hidden = torch.nn.functional.relu(first(inputs), inplace=inplace)
        return second(dropout(hidden) if inplace else hidden)

    x = torch.randn(5, 3, dtype=torch.float64)
    explainer = LSTMLRP(model, epsilon=EPS)
    in_place = explainer.attribute(x, target=1, additional_forward_args=(True,))
    out_of_place = explainer.attribute(x, target=1, additional_forward_args=(False,))
    assert torch.equal(in_place, out_of_place)


def test_text_cnn_head_conserves_with_bias_factor_one() -> None:
    torch.manual_seed(6)

    class TextCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(3, 4, kernel_size=3, padding=1)
            self.fc = nn.Linear(8, 2)

        def forward(self, x: Tensor) -> Tensor:
            features = torch.relu(self.conv(x.transpose(1, 2)))
            pooled = [nn.functional.max_pool1d(features, features.shape[-1]).squeeze(-1), features.amax(-1)]
            return self.fc(torch.cat(pooled, dim=-1))

    x = torch.randn(3, 6, 3, dtype=torch.float64)
    model = TextCNN().double()
    account = LSTMLRP(model, bias_factor=1.0).decompose(x, target=[0, 1, 0])
    assert (account.input_total - account.scores).abs().max() < EXACT
    assert account.initial_states == {}

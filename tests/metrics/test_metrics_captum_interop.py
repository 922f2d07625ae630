"""Captum's infidelity and sensitivity_max through the text wrappers."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from captum_text_ext.metrics import text_infidelity, text_sensitivity_max

WEIGHT = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]], dtype=torch.float64)


def linear(embeddings: Tensor, lengths: Tensor) -> Tensor:
    """Logits sum_t W x_t over the real tokens."""
    real = (torch.arange(embeddings.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)
    return (embeddings * real) .sum(1) @ WEIGHT.t()


def case():
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(4, 5, 3, generator=generator, dtype=torch.float64)
    return embeddings, torch.tensor([5, 3, 1, 4])


def test_the_exact_gradient_of_a_linear_model_has_zero_infidelity():
    embeddings, lengths = case()
    target = torch.tensor([0, 1, 1, 0])
    real = (torch.arange(5).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1).double()
    gradient = WEIGHT[target].unsqueeze(1) * real  # the exact attribution for f(x) - f(x - I) = I . w
    exact = text_infidelity(linear, embeddings, gradient, lengths, target, normalize=False)
    assert torch.allclose(exact, torch.zeros(4, dtype=torch.float64), atol=1e-20)
    wrong = text_infidelity(linear, embeddings, gradient.flip(-1), lengths, target, normalize=False)
    assert bool((wrong > 1e-6).all())


def test_infidelity_is_seeded():
    embeddings, lengths = case()
    attributions = torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    first = text_infidelity(linear, embeddings, attributions, lengths, 1, seed=3)
    assert torch.equal(first, text_infidelity(linear, embeddings, attributions, lengths, 1, seed=3))
    assert not torch.equal(first, text_infidelity(linear, embeddings, attributions, lengths, 1, seed=4))


def test_sensitivity_of_a_constant_explanation_is_zero_and_noncontiguous_outputs_work():
    embeddings, lengths = case()

    def constant(x: Tensor, n: Tensor, target: Tensor) -> Tensor:
        return WEIGHT[target].unsqueeze(1).expand(x.shape)  # non-contiguous

    assert torch.equal(text_sensitivity_max(constant, embeddings, lengths, 1), torch.zeros(4, dtype=torch.float64))


def test_sensitivity_of_lstm_gradients_runs_and_is_seeded():
    torch.manual_seed(0)
    rnn = nn.LSTM(3, 2, batch_first=True).double()
    head = nn.Linear(2, 2).double()

    def forward(x: Tensor, n: Tensor) -> Tensor:
        return head(rnn(x)[0][:, -1])

    def saliency(x: Tensor, n: Tensor, target: Tensor) -> Tensor:
        leaf = x.detach().requires_grad_(True)
        (gradient,) = torch.autograd.grad(forward(leaf, n).gather(1, target.unsqueeze(1)).sum(), leaf)
        return gradient.transpose(0, 1).contiguous().transpose(0, 1)  # a non-contiguous view

    embeddings, lengths = case()
    first = text_sensitivity_max(saliency, embeddings, lengths, 0, n_perturb_samples=3, seed=5)
    assert first.shape == (4,) and bool((first > 0).all())
    assert torch.equal(first, text_sensitivity_max(saliency, embeddings, lengths, 0, n_perturb_samples=3, seed=5))


def test_bad_interop_arguments_raise():
    embeddings, lengths = case()
    with pytest.raises(ValueError, match="raw attribution"):
        text_infidelity(linear, embeddings, embeddings.sum(-1), lengths, 0)
    with pytest.raises(ValueError, match="noise_std"):
        text_infidelity(linear, embeddings, embeddings, lengths, 0, noise_std=0.0)
    with pytest.raises(ValueError, match="perturb_radius"):
        text_sensitivity_max(lambda x, n, t: x, embeddings, lengths, 0, perturb_radius=-1.0)

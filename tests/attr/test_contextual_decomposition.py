"""ContextualDecomposition against per-step NumPy implementations of its equations, and each CD rule against its
formula (float64, tiny models)."""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from captum_text_ext import ContextualDecomposition, LayerContextualDecomposition
from captum_text_ext.models import EmbeddingCNN, LSTMClassifier, TextCNN

EXACT = 1e-10
MODES = ["phrase", "reference", "never"]
LENGTHS = torch.tensor([6, 3, 5])
STEPS = 6


# ----------------------------------------------------------------------------------------------------------------
# NumPy oracles, written from the equations (the LSTM one as in the authors' released code)
# ----------------------------------------------------------------------------------------------------------------


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def decomp_three(a: np.ndarray, b: np.ndarray, c: np.ndarray, act: Callable[[np.ndarray], np.ndarray]) -> Tuple:
    """Phrase part ``a``, other part ``b``, bias ``c``: the bias-first two-player Shapley split."""
    a_part = 0.5 * (act(a + c) - act(c) + act(a + b + c) - act(b + c))
    b_part = 0.5 * (act(b + c) - act(c) + act(a + b + c) - act(a + c))
    return a_part, b_part, act(c)


def decomp_tanh_two(a: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    return 0.5 * (np.tanh(a) + (np.tanh(a + b) - np.tanh(b))), 0.5 * (np.tanh(b) + (np.tanh(a + b) - np.tanh(a)))


def bias_goes_to_beta(mode: str, in_phrase: bool, t: int, last: Optional[int]) -> bool:
    if mode == "phrase":
        return in_phrase
    if mode == "reference":
        return in_phrase and t != last  # the authors' `start <= i < stop`, stop inclusive
    return False


def numpy_lstm_cd(weights: Dict[str, np.ndarray], x: np.ndarray, phrase: np.ndarray, mode: str, reverse: bool):
    """One direction of a 1-layer LSTM over one sentence ``x`` (T, E); returns the final (β_h, γ_h)."""
    w_ii, w_if, w_ig, w_io = np.split(weights["w_ih"], 4, 0)
    w_hi, w_hf, w_hg, w_ho = np.split(weights["w_hh"], 4, 0)
    b_i, b_f, b_g, b_o = np.split(weights["b_ih"] + weights["b_hh"], 4)
    steps, hidden = x.shape[0], weights["w_hh"].shape[1]
    order = list(range(steps))[::-1] if reverse else list(range(steps))
    in_order = [t for t in order if phrase[t]]
    last = in_order[-1] if in_order else None
    rel_c, irrel_c, rel_h, irrel_h = (np.zeros(hidden) for _ in range(4))
    h, c = np.zeros(hidden), np.zeros(hidden)
    for t in order:
        rel_i, rel_g, rel_f = w_hi @ rel_h, w_hg @ rel_h, w_hf @ rel_h
        irrel_i, irrel_g, irrel_f = w_hi @ irrel_h, w_hg @ irrel_h, w_hf @ irrel_h
        if phrase[t]:
            rel_i, rel_g, rel_f = rel_i + w_ii @ x[t], rel_g + w_ig @ x[t], rel_f + w_if @ x[t]
        else:
            irrel_i, irrel_g, irrel_f = irrel_i + w_ii @ x[t], irrel_g + w_ig @ x[t], irrel_f + w_if @ x[t]
        rel_ci, irrel_ci, bias_ci = decomp_three(rel_i, irrel_i, b_i, sigmoid)
        rel_cg, irrel_cg, bias_cg = decomp_three(rel_g, irrel_g, b_g, np.tanh)
        rel_cf, irrel_cf, bias_cf = decomp_three(rel_f, irrel_f, b_f, sigmoid)
        new_rel = rel_ci * (rel_cg + bias_cg) + bias_ci * rel_cg + (rel_cf + bias_cf) * rel_c
        new_irrel = (
            irrel_ci * (rel_cg + irrel_cg + bias_cg)
            + (rel_ci + bias_ci) * irrel_cg
            + (rel_cf + irrel_cf + bias_cf) * irrel_c
            + irrel_cf * rel_c
        )
        if bias_goes_to_beta(mode, bool(phrase[t]), t, last):
            new_rel = new_rel + bias_ci * bias_cg
        else:
            new_irrel = new_irrel + bias_ci * bias_cg
        o = sigmoid(w_io @ x[t] + w_ho @ h + b_o)  # the actual output gate
        i, f = sigmoid(w_ii @ x[t] + w_hi @ h + b_i), sigmoid(w_if @ x[t] + w_hf @ h + b_f)
        c = f * c + i * np.tanh(w_ig @ x[t] + w_hg @ h + b_g)
        h = o * np.tanh(c)
        rel_part, irrel_part = decomp_tanh_two(new_rel, new_irrel)
        rel_h, irrel_h, rel_c, irrel_c = o * rel_part, o * irrel_part, new_rel, new_irrel
    assert np.abs(rel_h + irrel_h - h).max() < 1e-12  # the decomposition sums to the actual state
    return rel_h, irrel_h


def numpy_gru_cd(weights: Dict[str, np.ndarray], x: np.ndarray, phrase: np.ndarray, mode: str, reverse: bool):
    """One direction of a 1-layer GRU (the equations of the cd_rules docstring); returns the final (β_h, γ_h)."""
    w_ir, w_iz, w_in = np.split(weights["w_ih"], 3, 0)
    w_hr, w_hz, w_hn = np.split(weights["w_hh"], 3, 0)
    b_ir, b_iz, b_in = np.split(weights["b_ih"], 3)
    b_hr, b_hz, b_hn = np.split(weights["b_hh"], 3)
    steps, hidden = x.shape[0], weights["w_hh"].shape[1]
    order = list(range(steps))[::-1] if reverse else list(range(steps))
    in_order = [t for t in order if phrase[t]]
    last = in_order[-1] if in_order else None
    rel, irrel, h = np.zeros(hidden), np.zeros(hidden), np.zeros(hidden)
    for t in order:
        zero = np.zeros_like(x[t])
        x_p, x_q = (x[t], zero) if phrase[t] else (zero, x[t])
        r_p, r_q, r_b = decomp_three(w_ir @ x_p + w_hr @ rel, w_ir @ x_q + w_hr @ irrel, b_ir + b_hr, sigmoid)
        z_p, z_q, z_b = decomp_three(w_iz @ x_p + w_hz @ rel, w_iz @ x_q + w_hz @ irrel, b_iz + b_hz, sigmoid)
        z = sigmoid(w_iz @ x[t] + w_hz @ (rel + irrel) + b_iz + b_hz)
        m_p, m_q = w_hn @ rel, w_hn @ irrel
        n_b = b_in + r_b * b_hn
        n_p = w_in @ x_p + r_p * (m_p + b_hn) + r_b * m_p
        n_q = w_in @ x_q + r_q * (m_p + m_q + b_hn) + (r_p + r_b) * m_q
        ln_p, ln_q, ln_b = decomp_three(n_p, n_q, n_b, np.tanh)
        n = np.tanh(n_p + n_q + n_b)
        u_b, u_p, u_q = 1 - z_b, -z_p, -z_q
        new_rel = u_p * (ln_p + ln_b) + u_b * ln_p + (z_p + z_b) * rel
        new_irrel = u_q * n + (u_p + u_b) * ln_q + z * irrel + z_q * rel
        if bias_goes_to_beta(mode, bool(phrase[t]), t, last):
            new_rel = new_rel + u_b * ln_b
        else:
            new_irrel = new_irrel + u_b * ln_b
        # the actual GRU step (PyTorch's equations)
        r_act = sigmoid(w_ir @ x[t] + b_ir + w_hr @ h + b_hr)
        z_act = sigmoid(w_iz @ x[t] + b_iz + w_hz @ h + b_hz)
        h = (1 - z_act) * np.tanh(w_in @ x[t] + b_in + r_act * (w_hn @ h + b_hn)) + z_act * h
        rel, irrel = new_rel, new_irrel
    assert np.abs(rel + irrel - h).max() < 1e-12  # the GRU equations are exact
    return rel, irrel


def _weights(rnn: nn.Module, suffix: str) -> Dict[str, np.ndarray]:
    names = {"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}
    return {key: getattr(rnn, f"{name}_l0{suffix}").detach().numpy() for key, name in names.items()}


def _contiguous_phrases(seed: int, phrases: int = 4) -> Tensor:
    """(P, N, T) contiguous phrases, some reaching into the padding, one a single word, one the whole row."""
    generator = torch.Generator().manual_seed(seed)
    masks = torch.zeros(phrases, len(LENGTHS), STEPS, dtype=torch.bool)
    for p in range(phrases):
        for n in range(len(LENGTHS)):
            start = int(torch.randint(0, STEPS, (1,), generator=generator))
            stop = int(torch.randint(start, STEPS, (1,), generator=generator))
            masks[p, n, start : stop + 1] = True
    masks[0, :, :] = False
    masks[0, :, 1] = True  # single words
    masks[1, :, :] = True  # whole rows (padding included)
    return masks


def _embeddings(seed: int = 1, size: int = 3) -> Tensor:
    x = torch.randn(len(LENGTHS), STEPS, size, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return x * (torch.arange(STEPS) < LENGTHS.unsqueeze(1)).unsqueeze(-1)


# ----------------------------------------------------------------------------------------------------------------
# Oracles
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_lstm_equals_the_numpy_oracle(mode: str, bidirectional: bool) -> None:
    torch.manual_seed(0)
    model = LSTMClassifier(10, 3, 4, num_classes=3, bidirectional=bidirectional, pooling="last").double()
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(1.5)
    x, masks = _embeddings(), _contiguous_phrases(7)
    relevant, irrelevant, bias = ContextualDecomposition(model.forward_embeddings, mode).decompose(
        x, masks, LENGTHS, return_bias=True
    )
    w_out = model.output.weight.detach().numpy()
    assert torch.equal(bias, model.output.bias.detach().expand(3, 3))
    directions = [("", False), ("_reverse", True)] if bidirectional else [("", False)]
    for p in range(masks.shape[0]):
        for n, length in enumerate(LENGTHS.tolist()):
            sentence, phrase = x[n, :length].numpy(), masks[p, n, :length].numpy()
            parts = [numpy_lstm_cd(_weights(model.rnn, s), sentence, phrase, mode, r) for s, r in directions]
            expected_rel = w_out @ np.concatenate([rel for rel, _ in parts])
            expected_irrel = w_out @ np.concatenate([irrel for _, irrel in parts])
            assert np.abs(relevant[p, n].numpy() - expected_rel).max() < EXACT
            assert np.abs(irrelevant[p, n].numpy() - expected_irrel).max() < EXACT


class BiGRUFinal(nn.Module):
    """A 1-layer bi-GRU on a packed batch, final states of both directions to a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(3, 4, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        _, h_n = self.rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        return self.fc(torch.cat([h_n[0], h_n[1]], dim=-1))


@pytest.mark.parametrize("mode", MODES)
def test_bigru_equals_the_numpy_oracle(mode: str) -> None:
    torch.manual_seed(1)
    model = BiGRUFinal().double()
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(1.5)
    x, masks = _embeddings(2), _contiguous_phrases(8)
    relevant, irrelevant = ContextualDecomposition(model, mode).decompose(x, masks, LENGTHS)
    w_out = model.fc.weight.detach().numpy()
    for p in range(masks.shape[0]):
        for n, length in enumerate(LENGTHS.tolist()):
            sentence, phrase = x[n, :length].numpy(), masks[p, n, :length].numpy()
            forward = numpy_gru_cd(_weights(model.rnn, ""), sentence, phrase, mode, False)
            backward = numpy_gru_cd(_weights(model.rnn, "_reverse"), sentence, phrase, mode, True)
            assert np.abs(relevant[p, n].numpy() - w_out @ np.concatenate([forward[0], backward[0]])).max() < EXACT
            assert np.abs(irrelevant[p, n].numpy() - w_out @ np.concatenate([forward[1], backward[1]])).max() < EXACT


def test_reference_equals_never_for_single_words_and_phrase_differs() -> None:
    torch.manual_seed(2)
    model = LSTMClassifier(10, 3, 4, num_classes=2, bidirectional=True).double()
    x = _embeddings()
    words = torch.eye(STEPS, dtype=torch.bool).unsqueeze(1).expand(STEPS, len(LENGTHS), STEPS)
    never = ContextualDecomposition(model.forward_embeddings, "never").decompose(x, words, LENGTHS)[0]
    reference = ContextualDecomposition(model.forward_embeddings, "reference").decompose(x, words, LENGTHS)[0]
    phrase = ContextualDecomposition(model.forward_embeddings, "phrase").decompose(x, words, LENGTHS)[0]
    assert torch.equal(never, reference)
    assert (phrase - never).abs().max() > 1e-3


# ----------------------------------------------------------------------------------------------------------------
# Exactness over a zoo
# ----------------------------------------------------------------------------------------------------------------


class MLPHeadOnLastToken(nn.Module):
    """Time-major LSTM with given lengths; the output at the last real token through a Linear-ReLU-Linear-Tanh MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(3, 3, num_layers=2)
        self.head = nn.Sequential(
            nn.Linear(3, 5), nn.ReLU(), nn.Dropout(0.2), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)
        )

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        outputs, _ = self.rnn(x.transpose(0, 1))
        last = outputs[lengths - 1, torch.arange(x.shape[0])]
        return self.head(last)


class ProjectedGRUSigmoid(nn.Module):
    """A projection with bias before a GRU, sigmoid and GELU in the head, max pooling with F.max_pool1d."""

    def __init__(self) -> None:
        super().__init__()
        self.project = nn.Linear(3, 4)
        self.rnn = nn.GRU(4, 3, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        packed = pack_padded_sequence(torch.sigmoid(self.project(x)), lengths, batch_first=True, enforce_sorted=False)
        outputs, _ = nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0], batch_first=True, padding_value=-1e9)
        pooled = nn.functional.max_pool1d(outputs.transpose(1, 2), kernel_size=outputs.shape[1]).squeeze(-1)
        return self.fc(nn.functional.gelu(pooled)) + 0.5


def _classifier(**kwargs: object) -> Callable[[], Tuple[Callable[..., Tensor], nn.Module]]:
    def build() -> Tuple[Callable[..., Tensor], nn.Module]:
        model = LSTMClassifier(vocab_size=10, embedding_dim=3, hidden_size=3, num_classes=3, **kwargs).double()
        return model.forward_embeddings, model

    return build


def _module(factory: Callable[[], nn.Module]) -> Callable[[], Tuple[Callable[..., Tensor], nn.Module]]:
    def build() -> Tuple[Callable[..., Tensor], nn.Module]:
        model = factory().double()
        forward = getattr(model, "forward_embeddings", model)
        return forward, model

    return build


ZOO: Dict[str, Callable[[], Tuple[Callable[..., Tensor], nn.Module]]] = {
    "lstm-1-uni-last": _classifier(num_layers=1, bidirectional=False, pooling="last"),
    "lstm-1-bi-attention": _classifier(num_layers=1, bidirectional=True, pooling="attention"),
    "lstm-2-bi-max": _classifier(num_layers=2, bidirectional=True, pooling="max"),
    "lstm-3-uni-mean": _classifier(num_layers=3, bidirectional=False, pooling="mean"),
    "lstm-3-bi-last-nobias": _classifier(num_layers=3, bidirectional=True, pooling="last", output_bias=False),
    "gru-1-bi-last": _classifier(cell="gru", bidirectional=True, pooling="last"),
    "gru-2-uni-attention": _classifier(cell="gru", num_layers=2, bidirectional=False, pooling="attention"),
    "gru-3-bi-mean": _classifier(cell="gru", num_layers=3, bidirectional=True, pooling="mean"),
    "lstm-mlp-head-last-token": _module(MLPHeadOnLastToken),
    "gru-projected-sigmoid-maxpool": _module(ProjectedGRUSigmoid),
    "textcnn-stacked": _module(lambda: TextCNN(10, 3, 3, channels=(4, 3), kernel_sizes=(3, 2))),
    "textcnn-stacked-fixed-length": _module(
        lambda: TextCNN(10, 3, 3, channels=(4, 3, 2), kernel_sizes=(2, 2, 2), input_length=8)
    ),
    "textcnn-parallel": _module(lambda: TextCNN(10, 3, 3, channels=(3, 2, 2), kernel_sizes=(1, 2, 3), mode="parallel")),
    "embedding-cnn": _module(lambda: EmbeddingCNN(10, 3, embedding_dim=3, num_filters=4)),
}


def build(name: str, seed: int = 0) -> Tuple[Callable[..., Tensor], nn.Module]:
    torch.manual_seed(seed)
    forward, model = ZOO[name]()
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(1.5)
    model.eval()
    return forward, model


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(ZOO))
def test_relevant_plus_irrelevant_is_logits_minus_bias(name: str, mode: str) -> None:
    forward, _ = build(name)
    x, masks = _embeddings(3), _contiguous_phrases(11, phrases=5)
    relevant, irrelevant, bias = ContextualDecomposition(forward, mode).decompose(x, masks, LENGTHS, return_bias=True)
    with torch.no_grad():
        logits = forward(x, LENGTHS)
    assert relevant.shape == irrelevant.shape == (5, 3, 3) and bias.shape == (3, 3)
    assert (relevant + irrelevant + bias - logits).abs().max() < EXACT
    assert relevant.abs().max() > 1e-3 and irrelevant.abs().max() > 1e-3


@pytest.mark.parametrize(
    "name", ["lstm-1-bi-attention", "lstm-3-bi-last-nobias", "gru-3-bi-mean", "lstm-2-bi-max", "textcnn-stacked"]
)
def test_whole_sentence_phrase_gives_gamma_zero_with_phrase_mode(name: str) -> None:
    forward, model = build(name, seed=4)
    x = _embeddings(5)
    whole = torch.arange(STEPS) < LENGTHS.unsqueeze(1)
    relevant, irrelevant, bias = ContextualDecomposition(forward).decompose(x, whole, LENGTHS, return_bias=True)
    with torch.no_grad():
        logits = forward(x, LENGTHS)
    assert irrelevant.abs().max() <= 1e-12
    assert (relevant - (logits - bias)).abs().max() < EXACT
    expected_bias = model.output.bias if model.output.bias is not None else torch.zeros(3, dtype=torch.float64)
    assert torch.equal(bias, expected_bias.detach().expand(3, 3))


# ----------------------------------------------------------------------------------------------------------------
# The rules of the head, against their formulas
# ----------------------------------------------------------------------------------------------------------------


def _single(forward: Callable[[Tensor], Tensor], x: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    relevant, irrelevant, bias = ContextualDecomposition(forward).decompose(x, mask, return_bias=True)
    return relevant, irrelevant, bias


def test_linear_relu_linear_splits_the_hidden_bias_by_magnitude() -> None:
    torch.manual_seed(3)
    first, second = nn.Linear(4, 5).double(), nn.Linear(5, 2).double()

    def forward(x: Tensor) -> Tensor:
        return second(torch.relu(first(x.flatten(1))))

    x = torch.randn(2, 2, 2, dtype=torch.float64)
    mask = torch.tensor([[True, False], [False, True]])
    relevant, irrelevant, bias = _single(forward, x, mask)
    w1, b1, w2 = first.weight.detach(), first.bias.detach(), second.weight.detach()
    for n in range(2):
        inside = mask[n].repeat_interleave(2)
        beta, gamma = w1 @ torch.where(inside, x[n].flatten(), 0.0), w1 @ torch.where(inside, 0.0, x[n].flatten())
        total = beta.abs() + gamma.abs()
        beta, gamma = beta + b1 * beta.abs() / total, gamma + b1 * gamma.abs() / total
        beta_r, gamma_r = torch.relu(beta), torch.relu(beta + gamma) - torch.relu(beta)
        assert (relevant[n] - w2 @ beta_r).abs().max() < 1e-12
        assert (irrelevant[n] - w2 @ gamma_r).abs().max() < 1e-12
    assert torch.equal(bias, second.bias.detach().expand(2, 2))


def test_bias_halves_when_both_parts_are_zero() -> None:
    first, second = nn.Linear(2, 2).double(), nn.Linear(2, 1).double()
    with torch.no_grad():
        first.bias.fill_(3.0)

    def forward(x: Tensor) -> Tensor:
        return second(torch.tanh(first(x[:, 0])))

    x = torch.zeros(1, 1, 2, dtype=torch.float64)
    relevant, irrelevant, bias = _single(forward, x, torch.tensor([[True]]))
    # both parts are 0: each gets 1.5, and tanh's two-player split gives each tanh(3) / 2
    half = 0.5 * torch.tanh(torch.tensor(3.0, dtype=torch.float64)).item()
    w = second.weight.detach()[0]
    assert abs(relevant.item() - w.sum().item() * half) < 1e-12
    assert abs(irrelevant.item() - w.sum().item() * half) < 1e-12
    assert bias.item() == second.bias.item()


@pytest.mark.parametrize(
    "activation",
    [torch.tanh, torch.sigmoid, nn.functional.elu, lambda z: nn.functional.leaky_relu(z, 0.2), nn.functional.softplus],
    ids=["tanh", "sigmoid", "elu", "leaky_relu", "softplus"],
)
def test_activations_use_the_two_player_shapley_split(activation: Callable[[Tensor], Tensor]) -> None:
    weight = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)

    def forward(x: Tensor) -> Tensor:
        return activation(x.squeeze(-1)) @ weight.t()

    x = torch.tensor([[[0.7], [-1.3], [2.0]]], dtype=torch.float64)
    relevant, irrelevant, bias = _single(forward, x, torch.tensor([[True, False, True]]))
    beta = torch.tensor([0.7, 0.0, 2.0], dtype=torch.float64)
    gamma = torch.tensor([0.0, -1.3, 0.0], dtype=torch.float64)
    zero = activation(torch.zeros(3, dtype=torch.float64))
    expected_beta = 0.5 * (activation(beta) - zero + activation(beta + gamma) - activation(gamma))
    expected_gamma = 0.5 * (activation(gamma) - zero + activation(beta + gamma) - activation(beta))
    # a(0) is a constant: it stays pending, and the matmul (a linear map) splits it by magnitude
    total = expected_beta.abs() + expected_gamma.abs()
    share = torch.where(total > 0, expected_beta.abs() / total, 0.5)
    expected_beta, expected_gamma = expected_beta + zero * share, expected_gamma + zero * (1 - share)
    assert abs(relevant.item() - (weight @ expected_beta).item()) < 1e-12
    assert abs(irrelevant.item() - (weight @ expected_gamma).item()) < 1e-12
    assert bias.item() == 0.0


def test_max_pooling_picks_positions_by_the_value_and_carries_both_parts() -> None:
    def forward(x: Tensor) -> Tensor:
        return x.amax(dim=1) - torch.max(x, dim=1).values * 0.5

    x = torch.tensor([[[1.0, 5.0], [3.0, -1.0], [2.0, 4.0]]], dtype=torch.float64)
    relevant, irrelevant, _ = _single(forward, x, torch.tensor([[False, True, True]]))
    assert torch.equal(relevant, torch.tensor([[1.5, 0.0]], dtype=torch.float64))  # (3 from t=1, 5 from t=0) / 2
    assert torch.equal(irrelevant, torch.tensor([[0.0, 2.5]], dtype=torch.float64))


def test_attention_weights_are_fixed_gates() -> None:
    torch.manual_seed(5)
    forward, model = build("lstm-1-bi-attention")
    x = _embeddings(6)
    mask = torch.zeros(3, STEPS, dtype=torch.bool)
    mask[:, 1] = True
    cd = ContextualDecomposition(forward)
    relevant = cd.decompose(x, mask, LENGTHS)[0]
    # the same decomposition by hand: the recurrent outputs' parts, weighted with the actual attention weights

    def recurrent_outputs(embeddings: Tensor, lengths: Tensor) -> Tensor:
        packed_out, _, lengths = model._encode(embeddings, lengths)
        outputs, _ = model._unpack(packed_out, lengths, embeddings.shape[1])
        return outputs.flatten(1)

    parts = ContextualDecomposition(recurrent_outputs).decompose(x, mask, LENGTHS)[0].reshape(3, STEPS, -1)
    with torch.no_grad():
        packed_out, _, _ = model._encode(x, LENGTHS)
        outputs, mask_real = model._unpack(packed_out, LENGTHS, STEPS)
        alpha = model._attention(outputs, mask_real)
    expected = (alpha.unsqueeze(-1) * parts).sum(1) @ model.output.weight.detach().t()
    assert (relevant - expected).abs().max() < 1e-12


with torch.random.fork_rng():  # the same weights whatever ran before the import
    torch.manual_seed(0)
    _GLUE_RNN = nn.LSTM(3, 4, batch_first=True).double()
    _GLUE_FC = nn.Linear(4, 2).double()
    _GLUE_LSTM_NO_BIAS = nn.LSTM(3, 4, batch_first=True, bias=False).double()
    _GLUE_GRU_NO_BIAS = nn.GRU(4, 4, batch_first=True, bias=False).double()
    _GLUE_GRU = nn.GRU(3, 4, batch_first=True).double()
    _GLUE_STATE = nn.Linear(3, 4).double()
_GLUE_H0 = torch.full((1, 1, 4), 0.3, dtype=torch.float64)


def _h(e: Tensor) -> Tensor:
    return _GLUE_RNN(e)[0]


GLUE: Dict[str, Callable[[Tensor], Tensor]] = {
    "iterate": lambda e: _GLUE_FC(torch.stack([row for row in _h(e)[:, -1]])),
    "transpose-property": lambda e: _GLUE_FC(_h(e)[:, -1].T.T),
    "pad-keywords": lambda e: _GLUE_FC(nn.functional.pad(input=_h(e), pad=(0, 0, 0, 2), value=1.0).sum(1)),
    "flatten-keywords": lambda e: _GLUE_FC(torch.flatten(input=_h(e)[:, -1:], start_dim=1)),
    "max-min-with-dim": lambda e: _GLUE_FC(_h(e).max(1)[0] + _h(e).min(dim=1).values),
    "maximum": lambda e: _GLUE_FC(torch.maximum(_h(e)[:, 0], _h(e)[:, 1])),
    "global-max": lambda e: _GLUE_FC(_h(e)[:, -1] + _h(e).max()),
    "adaptive-max-pool": lambda e: _GLUE_FC(nn.functional.adaptive_max_pool1d(_h(e).transpose(1, 2), 1).squeeze(-1)),
    "avg-pool": lambda e: _GLUE_FC(nn.functional.avg_pool1d(_h(e).transpose(1, 2), 5).squeeze(-1)),
    "bmm-with-constant": lambda e: _GLUE_FC(torch.bmm(torch.full((2, 1, 5), 0.2, dtype=e.dtype), _h(e)).squeeze(1)),
    "manual-linear": lambda e: (_h(e)[:, -1] @ _GLUE_FC.weight.t()) + _GLUE_FC.bias,
    "rsub-sigmoid": lambda e: _GLUE_FC(1 - torch.sigmoid(_h(e)[:, -1])),
    "clamp": lambda e: _GLUE_FC(torch.clamp(_h(e)[:, -1], min=0.1)),
    "cat-with-constant": lambda e: _GLUE_FC(torch.cat([_h(e)[:, -1, :2], torch.ones(2, 2, dtype=e.dtype)], -1)),
    "where-with-scalar": lambda e: _GLUE_FC(torch.where(_h(e)[:, -1] > 0, _h(e)[:, -1], 0.3)),
    "prelu": lambda e: _GLUE_FC(nn.functional.prelu(_h(e)[:, -1], torch.tensor([0.25], dtype=e.dtype))),
    "split-and-add": lambda e: _GLUE_FC(sum(_h(e)[:, -1].split(2, -1)).repeat(1, 2)),
    "lstm-cell-state": lambda e: _GLUE_FC(_GLUE_RNN(e)[1][1][0]),
    "recurrent-layers-without-bias": lambda e: _GLUE_FC(_GLUE_GRU_NO_BIAS(_GLUE_LSTM_NO_BIAS(e)[0])[1][0]),
    "initial-state-from-the-inputs": lambda e: _GLUE_FC(
        _GLUE_GRU(e, torch.tanh(_GLUE_STATE(e.mean(1))).unsqueeze(0))[0][:, -1]
    ),
    "constant-initial-state": lambda e: _GLUE_FC(
        _GLUE_RNN(e, (_GLUE_H0.expand(1, 2, 4), _GLUE_H0.expand(1, 2, 4)))[1][0][0]
    ),
}


@pytest.mark.parametrize("name", list(GLUE))
def test_glue_code_is_decomposed_exactly(name: str) -> None:
    forward = GLUE[name]
    x = torch.randn(2, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    masks = torch.zeros(2, 2, 5, dtype=torch.bool)
    masks[0, :, 1:3], masks[1] = True, True
    relevant, irrelevant, bias = ContextualDecomposition(forward).decompose(x, masks, return_bias=True)
    with torch.no_grad():
        logits = forward(x)
    assert (relevant + irrelevant + bias - logits).abs().max() < EXACT
    assert relevant[0].abs().max() > 1e-4 and irrelevant[0].abs().max() > 1e-4
    if name == "manual-linear":
        assert torch.equal(bias, _GLUE_FC.bias.detach().expand(2, 2))  # an added constant after the last map


# ----------------------------------------------------------------------------------------------------------------
# attribute, interaction, the layer variant
# ----------------------------------------------------------------------------------------------------------------


def test_attribute_spreads_each_groups_beta_over_its_tokens() -> None:
    forward, _ = build("lstm-2-bi-max")
    x = _embeddings(7)
    groups = torch.tensor([[0, 0, 1, 1, 1, 2], [0, 2, 2, 1, 1, 1], [2, 2, 0, 0, 1, 1]])
    cd = ContextualDecomposition(forward)
    attributions = cd.attribute(x, target=[0, 2, 1], additional_forward_args=LENGTHS, feature_mask=groups.unsqueeze(-1))
    masks = torch.stack([groups == g for g in range(3)])
    relevant = cd.decompose(x, masks, LENGTHS)[0]
    assert attributions.shape == groups.shape  # one score per token: CD has no split per embedding dimension
    for n, target in enumerate([0, 2, 1]):
        for g in range(3):
            entries = attributions[n][groups[n] == g]
            assert (entries - entries[0]).abs().max() == 0  # evenly spread
            assert abs(entries.sum() - relevant[g, n, target]) < 1e-12
    contrast = cd.attribute(x, 1, LENGTHS, feature_mask=groups, contrast=0)  # (N, T) masks are accepted too
    words = cd.attribute(x, 1, LENGTHS, feature_mask=groups) - cd.attribute(x, 0, LENGTHS, feature_mask=groups)
    assert (contrast - words).abs().max() < 1e-12


def test_interaction_is_the_joint_phrase_minus_each_alone() -> None:
    forward, _ = build("gru-1-bi-last")
    x = _embeddings(8)
    a = torch.zeros(2, 3, STEPS, dtype=torch.bool)
    b = torch.zeros_like(a)
    a[0, :, 0], b[0, :, 1:3] = True, True
    a[1, :, 2], b[1, :, 4] = True, True
    cd = ContextualDecomposition(forward, "reference")
    phrase_mode = ContextualDecomposition(forward, "phrase")
    with pytest.raises(ValueError, match="bias_product='reference' is defined for contiguous phrases"):
        cd.interaction(x, a, b, target=1, additional_forward_args=LENGTHS)  # a | b of the second pair has a gap
    inter = phrase_mode.interaction(x, a, b, target=1, additional_forward_args=LENGTHS, contrast=0)
    full = phrase_mode.interaction(x, a[0], b[0], additional_forward_args=LENGTHS)
    joint, alone_a, alone_b = (phrase_mode.decompose(x, m, LENGTHS)[0] for m in (a | b, a, b))
    expected = joint - alone_a - alone_b
    assert inter.shape == (2, 3) and full.shape == (3, 3)
    assert (inter - (expected[..., 1] - expected[..., 0])).abs().max() < 1e-12
    assert (full - expected[0]).abs().max() < 1e-12


def test_layer_variant_on_token_ids_equals_embedding_inputs() -> None:
    torch.manual_seed(9)
    model = LSTMClassifier(12, embedding_dim=3, hidden_size=3, num_classes=3, pooling="attention").double()
    ids = torch.tensor([[1, 2, 3, 4, 5, 6], [6, 7, 8, 0, 0, 0], [8, 9, 10, 11, 3, 0]])
    with torch.no_grad():
        embeddings = model.embedding(ids)
    layer_cd = LayerContextualDecomposition(model, model.embedding, "reference")
    cd = ContextualDecomposition(model.forward_embeddings, "reference")
    masks = _contiguous_phrases(12)
    for got, expected in zip(
        layer_cd.decompose(ids, masks, LENGTHS, return_bias=True),
        cd.decompose(embeddings, masks, LENGTHS, return_bias=True),
    ):
        assert (got - expected).abs().max() < 1e-12
    per_token = layer_cd.attribute(ids, [0, 1, 2], LENGTHS)
    assert per_token.shape == (3, STEPS) and per_token.is_contiguous()
    assert (per_token - cd.attribute(embeddings, [0, 1, 2], LENGTHS)).abs().max() < 1e-12
    assert torch.count_nonzero(per_token[1, 3:]) == 0 and torch.count_nonzero(per_token[2, 5:]) == 0
    groups = torch.tensor([[0, 0, 1, 1, 2, 2]])
    grouped = layer_cd.attribute(ids, 2, LENGTHS, feature_mask=groups)
    relevant = layer_cd.decompose(ids, torch.stack([groups.expand(3, -1) == g for g in range(3)]), LENGTHS)[0]
    assert (grouped.reshape(3, 3, 2).sum(-1) - relevant[..., 2].t()).abs().max() < 1e-12
    a, b = masks[2], masks[3]
    layer_phrase = LayerContextualDecomposition(model, model.embedding)
    expected = ContextualDecomposition(model.forward_embeddings).interaction(embeddings, a, b & ~a, 1, LENGTHS)
    assert (layer_phrase.interaction(ids, a, b & ~a, 1, LENGTHS) - expected).abs().max() < 1e-12

"""LSTMLRP against a straightforward per-timestep NumPy implementation of the paper's equations (float64).

The oracle below is written from the equations of Arras et al. (2017), Sec. 2.2 and the appendix, the way the
authors' released code walks one sentence (``lrp_linear`` for weighted connections), with the rules of the issue:
the ε-rule multiplies both bias and stabilizer by δ, and the cell sum c_t = f ⊙ c_{t-1} + i ⊙ g_t spreads its share
over its N = 2 inputs per unit (the paper), or, written out as the released ``LSTM_bidi.py`` does, over all 2d inputs
of the layer (``cell_stabilizer="layer"``). It knows nothing of the package.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any, Dict, Tuple

import numpy as np
import pytest
import torch
from captum.attr import InputXGradient
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from captum_text_ext import LSTMLRP
from captum_text_ext.decomposition.lrp.recurrent import direction_walk
from captum_text_ext.models import LSTMClassifier
from captum_text_ext.datasets.arras_lrp import arras_lrp_to_torch, load_arras_lrp_model

EXACT = 1e-10


# ---------------------------------------------------------------------------------------------------------------
# The NumPy oracle: one sentence, one step at a time.
# ---------------------------------------------------------------------------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def sign(z: np.ndarray) -> np.ndarray:
    return np.where(z >= 0, 1.0, -1.0)


def lrp_linear(hin, w, b, hout, rout, fan_in, eps, delta):  # type: ignore[no-untyped-def]
    """z_j = sum_i hin_i w_ij + b_j: R_i = sum_j (hin_i w_ij + delta (b_j + eps sign z_j) / N) / (z_j + eps sign z_j)
    R_j.

    hin (D,), w (D, M), b (M,), hout (M,) = z, rout (M,).
    """
    numerator = w * hin[:, None] + delta * (b + eps * sign(hout))[None, :] / fan_in
    return (numerator / (hout + eps * sign(hout))[None, :] * rout[None, :]).sum(axis=1)


def lrp_two_inputs(u, v, out, rout, eps, delta):  # type: ignore[no-untyped-def]
    """out = u + v per unit (N = 2, no bias): the relevance of u and of v."""
    den = out + eps * sign(out)
    share = delta * eps * sign(out) / 2
    return (u + share) / den * rout, (v + share) / den * rout


def lstm_forward(x, w_ih, w_hh, b_ih, b_hh, order):  # type: ignore[no-untyped-def]
    """One direction over x (T, E); ``order`` is the gate order of the weight rows ("ifgo" or "igfo")."""
    steps, hidden = x.shape[0], w_hh.shape[1]
    rows = {name: slice(k * hidden, (k + 1) * hidden) for k, name in enumerate(order)}
    h, c = np.zeros((steps + 1, hidden)), np.zeros((steps + 1, hidden))  # index 0: initial state
    gates = {name: np.zeros((steps, hidden)) for name in "ifgo"}
    pre_g = np.zeros((steps, hidden))
    for t in range(steps):
        pre = w_ih @ x[t] + b_ih + w_hh @ h[t] + b_hh
        i, f, o = (sigmoid(pre[rows[name]]) for name in "ifo")
        g = np.tanh(pre[rows["g"]])
        c[t + 1] = f * c[t] + i * g
        h[t + 1] = o * np.tanh(c[t + 1])
        for name, value in zip("ifgo", (i, f, g, o)):
            gates[name][t] = value
        pre_g[t] = pre[rows["g"]]
    return {"h": h, "c": c, "pre_g": pre_g, "rows": rows, **gates}


def lstm_backward(fw, x, w_ih, w_hh, b_ih, b_hh, r_final, eps, delta, released=False, r_outputs=None):  # type: ignore[no-untyped-def]
    """LRP from the relevance of the final hidden state (and of every output h_t, ``r_outputs`` (T, H), if given);
    returns (R_x (T, E), R_h0, R_c0). ``released``: the cell sum
    as Arras et al.'s released ``LSTM_bidi.py`` writes it, ``lrp_linear`` over an identity matrix with
    ``bias_nb_units = 2 d`` (each unit's stabilizer share spread over all 2d inputs), instead of N = 2 per unit."""
    steps, embed = x.shape
    hidden = w_hh.shape[1]
    g_rows = fw["rows"]["g"]
    b_g = b_ih[g_rows] + b_hh[g_rows]
    r_h, r_c = np.zeros((steps + 1, hidden)), np.zeros((steps + 1, hidden))
    r_x = np.zeros((steps, embed))
    r_h[steps] = r_final
    if r_outputs is not None:
        r_h[1:] += r_outputs
    identity, zeros = np.identity(hidden), np.zeros(hidden)
    for t in reversed(range(steps)):
        r_c[t + 1] += r_h[t + 1]  # h_t = o_t * tanh(c_t): all to c_t
        if released:  # LSTM_bidi.py: Rc[t-1] = lrp_linear(f*c[t-1], I, 0, c[t], Rc[t], 2d, ...), Rg likewise
            c_out = fw["c"][t + 1]
            r_c[t] = lrp_linear(fw["f"][t] * fw["c"][t], identity, zeros, c_out, r_c[t + 1], 2 * hidden, eps, delta)
            r_g = lrp_linear(fw["i"][t] * fw["g"][t], identity, zeros, c_out, r_c[t + 1], 2 * hidden, eps, delta)
        else:
            r_c[t], r_g = lrp_two_inputs(
                fw["f"][t] * fw["c"][t], fw["i"][t] * fw["g"][t], fw["c"][t + 1], r_c[t + 1], eps, delta
            )
        r_x[t] = lrp_linear(x[t], w_ih[g_rows].T, b_g, fw["pre_g"][t], r_g, embed + hidden, eps, delta)
        r_h[t] += lrp_linear(fw["h"][t], w_hh[g_rows].T, b_g, fw["pre_g"][t], r_g, embed + hidden, eps, delta)
    return r_x, r_h[0], r_c[0]


def gru_forward(x, w_ih, w_hh, b_ih, b_hh):  # type: ignore[no-untyped-def]
    """PyTorch's GRU (gate order r, z, n) over x (T, E)."""
    steps, hidden = x.shape[0], w_hh.shape[1]
    r_rows, z_rows, n_rows = (slice(k * hidden, (k + 1) * hidden) for k in range(3))
    h = np.zeros((steps + 1, hidden))
    record = {name: np.zeros((steps, hidden)) for name in ("r", "z", "n", "m", "a")}
    for t in range(steps):
        r = sigmoid(w_ih[r_rows] @ x[t] + b_ih[r_rows] + w_hh[r_rows] @ h[t] + b_hh[r_rows])
        z = sigmoid(w_ih[z_rows] @ x[t] + b_ih[z_rows] + w_hh[z_rows] @ h[t] + b_hh[z_rows])
        m = w_hh[n_rows] @ h[t] + b_hh[n_rows]
        a = w_ih[n_rows] @ x[t] + b_ih[n_rows] + r * m
        n = np.tanh(a)
        h[t + 1] = (1 - z) * n + z * h[t]
        for name, value in zip(("r", "z", "n", "m", "a"), (r, z, n, m, a)):
            record[name][t] = value
    return {"h": h, "n_rows": n_rows, **record}


def gru_backward(fw, x, w_ih, w_hh, b_ih, b_hh, r_final, eps, delta):  # type: ignore[no-untyped-def]
    """The GRU rule: h_t = (1 - z) n + z h_{t-1} (N = 2, gates get 0); n = tanh(a) passes; a = W_in x + b_in + p is
    a weighted connection with N = E + 1 inputs (x and p = r * m); p gives all to m (r is a gate); m = W_hn h + b_hn
    is a weighted connection with N = H."""
    steps, embed = x.shape
    hidden = w_hh.shape[1]
    rows = fw["n_rows"]
    r_h = np.zeros((steps + 1, hidden))
    r_x = np.zeros((steps, embed))
    r_h[steps] = r_final
    for t in reversed(range(steps)):
        z, n, r, m, a = (fw[name][t] for name in ("z", "n", "r", "m", "a"))
        r_n, r_direct = lrp_two_inputs((1 - z) * n, z * fw["h"][t], fw["h"][t + 1], r_h[t + 1], eps, delta)
        r_x[t] = lrp_linear(x[t], w_ih[rows].T, b_ih[rows], a, r_n, embed + 1, eps, delta)
        p = r * m
        r_p = (p + delta * (b_ih[rows] + eps * sign(a)) / (embed + 1)) / (a + eps * sign(a)) * r_n
        r_h[t] = r_direct + lrp_linear(fw["h"][t], w_hh[rows].T, b_hh[rows], m, r_p, hidden, eps, delta)
    return r_x, r_h[0], None


def oracle_bidirectional(x, fwd, bwd, w_out, b_out, target, eps, delta, cell="lstm", order="ifgo", released=False):  # type: ignore[no-untyped-def]
    """A bidirectional layer read forwards and backwards, the final states concatenated into a linear layer.

    ``fwd`` / ``bwd``: (w_ih, w_hh, b_ih, b_hh) per direction. Returns (score, R_x (T, E), initial-state relevance).
    ``released``: the LSTM cell sum as the authors' released code (:func:`lstm_backward`).
    """
    hidden = fwd[1].shape[1]
    if cell == "lstm":
        f_run, b_run = lstm_forward(x, *fwd, order), lstm_forward(x[::-1], *bwd, order)
    else:
        f_run, b_run = gru_forward(x, *fwd), gru_forward(x[::-1], *bwd)
    h_cat = np.concatenate([f_run["h"][-1], b_run["h"][-1]])
    scores = w_out @ h_cat + b_out
    r_out = np.zeros_like(scores)
    r_out[target] = scores[target]
    r_cat = lrp_linear(h_cat, w_out.T, b_out, scores, r_out, 2 * hidden, eps, delta)
    if cell == "lstm":
        rx_f, rh_f, rc_f = lstm_backward(f_run, x, *fwd, r_cat[:hidden], eps, delta, released)
        rx_b, rh_b, rc_b = lstm_backward(b_run, x[::-1].copy(), *bwd, r_cat[hidden:], eps, delta, released)
    else:
        rx_f, rh_f, rc_f = gru_backward(f_run, x, *fwd, r_cat[:hidden], eps, delta)
        rx_b, rh_b, rc_b = gru_backward(b_run, x[::-1].copy(), *bwd, r_cat[hidden:], eps, delta)
    initial = rh_f.sum() + rh_b.sum() + (0.0 if rc_f is None else rc_f.sum() + rc_b.sum())
    return scores[target], rx_f + rx_b[::-1], initial


# ---------------------------------------------------------------------------------------------------------------
# The model of the issue, and its weights as numpy arrays
# ---------------------------------------------------------------------------------------------------------------


class Net(nn.Module):
    """The issue's example: a bidirectional LSTM/GRU, final states concatenated, a linear layer."""

    def __init__(self, cell: str, embed: int, hidden: int, classes: int, bias: bool) -> None:
        super().__init__()
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(embed, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, state = self.rnn(x)
        h = state[0] if isinstance(state, tuple) else state
        return self.fc(torch.cat([h[0], h[1]], dim=-1))


def directions(rnn: nn.Module) -> Tuple[tuple, tuple]:
    def arrays(suffix: str) -> tuple:
        return tuple(
            getattr(rnn, f"{name}_l0{suffix}").detach().numpy()
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )

    return arrays(""), arrays("_reverse")


def random_net(cell: str, bias: bool, seed: int) -> Net:
    torch.manual_seed(seed)
    net = Net(cell, embed=4, hidden=3, classes=3, bias=bias).double()
    with torch.no_grad():
        for param in net.parameters():
            param.mul_(3.0)  # larger weights: saturated gates and signs of every kind
    return net


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bias", [False, True], ids=["no-output-bias", "output-bias"])
@pytest.mark.parametrize("delta", [0.0, 1.0], ids=["LRP", "LRP_cons"])
def test_agrees_with_numpy_oracle(cell: str, bias: bool, delta: float) -> None:
    net = random_net(cell, bias, seed=7 if cell == "lstm" else 8)
    x = torch.randn(3, 5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    fwd, bwd = directions(net.rnn)
    w_out = net.fc.weight.detach().numpy()
    b_out = net.fc.bias.detach().numpy() if bias else np.zeros(3)
    lrp = LSTMLRP(net, epsilon=1e-3, bias_factor=delta)
    for target in range(3):
        account = lrp.decompose(x, target)
        for n in range(3):
            score, r_x, initial = oracle_bidirectional(
                x[n].numpy(), fwd, bwd, w_out, b_out, target, 1e-3, delta, cell=cell
            )
            assert abs(account.scores[n].item() - score) < EXACT
            assert np.abs(account.inputs[n].numpy() - r_x).max() < EXACT
            assert abs(account.initial_state_total[n].item() - initial) < EXACT


class OutputsNet(nn.Module):
    """A bidirectional LSTM whose head reads every output: a linear layer over all of them, flattened."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.rnn = nn.LSTM(4, 3, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(steps * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.fc(out.flatten(1))


@pytest.mark.parametrize("delta", [0.0, 1.0], ids=["LRP", "LRP_cons"])
def test_a_head_on_every_output_agrees_with_numpy_oracle(delta: float) -> None:
    """Relevance enters the walk at every step (the output of the step walked next joins its sum): against the
    written-out backward with each output's relevance added to R_{h_t}."""
    torch.manual_seed(5)
    net = OutputsNet(steps=5).double()
    with torch.no_grad():
        for param in net.parameters():
            param.mul_(3.0)
    x = torch.randn(3, 5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    fwd, bwd = directions(net.rnn)
    w_out, b_out = net.fc.weight.detach().numpy(), net.fc.bias.detach().numpy()
    account = LSTMLRP(net, epsilon=1e-3, bias_factor=delta).decompose(x, target=1)
    for n in range(3):
        x_n = x[n].numpy()
        f_run, b_run = lstm_forward(x_n, *fwd, "ifgo"), lstm_forward(x_n[::-1], *bwd, "ifgo")
        outputs = np.concatenate([f_run["h"][1:], b_run["h"][1:][::-1]], axis=1)  # (T, 2H) as nn.LSTM orders them
        scores = w_out @ outputs.reshape(-1) + b_out
        r_scores = np.zeros_like(scores)
        r_scores[1] = scores[1]
        r_outputs = lrp_linear(outputs.reshape(-1), w_out.T, b_out, scores, r_scores, outputs.size, 1e-3,
                               delta).reshape(outputs.shape)
        zeros = np.zeros(3)
        rx_f, _, _ = lstm_backward(f_run, x_n, *fwd, zeros, 1e-3, delta, r_outputs=r_outputs[:, :3])
        rx_b, _, _ = lstm_backward(b_run, x_n[::-1].copy(), *bwd, zeros, 1e-3, delta,
                                   r_outputs=r_outputs[::-1, 3:])
        assert abs(account.scores[n].item() - scores[1]) < EXACT
        assert np.abs(account.inputs[n].numpy() - (rx_f + rx_b[::-1])).max() < EXACT


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_conservation_with_bias_factor_one(cell: str) -> None:
    net = random_net(cell, bias=True, seed=11)
    x = torch.randn(4, 6, 4, dtype=torch.float64)
    account = LSTMLRP(net, bias_factor=1.0).decompose(x, target=[0, 1, 2, 0])
    assert (account.input_total + account.initial_state_total - account.scores).abs().max() < EXACT
    assert account.absorbed.abs().max() < EXACT
    zero_delta = LSTMLRP(net).decompose(x, target=1)
    assert all(state.abs().max() == 0 for state in zero_delta.initial_states.values())  # delta = 0: h0 = 0 gets 0


def test_epsilon_to_zero_on_relu_network_equals_gradient_times_input() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    x = torch.randn(10, 6, dtype=torch.float64)
    relevance = LSTMLRP(model, epsilon=1e-12).attribute(x, target=2)
    expected = InputXGradient(model).attribute(x.clone().requires_grad_(), target=2).detach()
    assert (relevance - expected).abs().max() < 1e-8


# ---------------------------------------------------------------------------------------------------------------
# The released weights of Arras et al. (2017)
# ---------------------------------------------------------------------------------------------------------------


class ArrasNet(nn.Module):
    """The released bi-LSTM with lengths, through ``pack_padded_sequence`` (a padded batch)."""

    def __init__(self, arrays: Dict[str, np.ndarray]) -> None:
        super().__init__()
        self.lstm, self.out = arras_lrp_to_torch(arrays)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        return self.out(torch.cat([h[0], h[1]], dim=-1))


@pytest.fixture(scope="module")
def arras_arrays(shared_data_dir) -> Dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    return load_arras_lrp_model(shared_data_dir)


@pytest.mark.parametrize("bias", [False, True], ids=["no-output-bias", "output-bias"])
def test_cell_stabilizer_layer_is_the_released_code(bias: bool) -> None:
    """``cell_stabilizer="layer"`` against the released code's cell sum (``lrp_linear`` over an identity with
    ``bias_nb_units = 2d``), with δ = 1 where the two rules differ; the paper's rule differs from it, and both
    conserve relevance."""
    net = random_net("lstm", bias, seed=7)
    x = torch.randn(3, 5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    fwd, bwd = directions(net.rnn)
    w_out = net.fc.weight.detach().numpy()
    b_out = net.fc.bias.detach().numpy() if bias else np.zeros(3)
    released = LSTMLRP(net, epsilon=0.1, bias_factor=1.0, cell_stabilizer="layer")
    paper = LSTMLRP(net, epsilon=0.1, bias_factor=1.0)
    assert released.cell_stabilizer == "layer" and paper.cell_stabilizer == "unit"
    for target in range(3):
        account, other = released.decompose(x, target), paper.decompose(x, target)
        assert (account.inputs - other.inputs).abs().max() > 1e-6  # the rules differ
        for result in (account, other):
            assert (result.input_total + result.initial_state_total - result.scores).abs().max() < EXACT
        for n in range(3):
            score, r_x, initial = oracle_bidirectional(
                x[n].numpy(), fwd, bwd, w_out, b_out, target, 0.1, 1.0, released=True
            )
            assert abs(account.scores[n].item() - score) < EXACT
            assert np.abs(account.inputs[n].numpy() - r_x).max() < EXACT
            assert abs(account.initial_state_total[n].item() - initial) < EXACT


@pytest.mark.parametrize("delta", [0.0, 1.0], ids=["LRP", "LRP_cons"])
@pytest.mark.parametrize("released", [False, True], ids=["paper", "released-code"])
def test_real_arras_weights_agree_with_numpy_oracle(
    arras_arrays: Dict[str, np.ndarray], delta: float, released: bool
) -> None:
    model = ArrasNet(arras_arrays)
    rng = np.random.default_rng(2017)
    lengths = torch.tensor([7, 3, 5])
    embeddings = torch.from_numpy(rng.normal(0.0, 0.5, size=(3, 7, 60)))
    left = tuple(arras_arrays[f"{k}_Left"] for k in ("Wxh", "Whh", "bxh", "bhh"))
    right = tuple(arras_arrays[f"{k}_Right"] for k in ("Wxh", "Whh", "bxh", "bhh"))
    w_out = np.concatenate([arras_arrays["Why_Left"], arras_arrays["Why_Right"]], axis=1)
    lrp = LSTMLRP(model, epsilon=1e-3, bias_factor=delta, cell_stabilizer="layer" if released else "unit")
    for target in range(5):
        account = lrp.decompose(embeddings, target, additional_forward_args=lengths)
        for n, length in enumerate(lengths.tolist()):
            x = embeddings[n, :length].numpy()
            score, r_x, initial = oracle_bidirectional(
                x, left, right, w_out, np.zeros(5), target, 1e-3, delta, cell="lstm", order="igfo", released=released
            )
            assert abs(account.scores[n].item() - score) < EXACT
            assert np.abs(account.inputs[n, :length].numpy() - r_x).max() < EXACT
            assert torch.count_nonzero(account.inputs[n, length:]) == 0  # never read
            assert abs(account.initial_state_total[n].item() - initial) < EXACT
            if delta == 1.0:
                assert abs(r_x.sum() + initial - score) < EXACT


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device (torch.cuda.is_available() is False): it compares GPU and CPU"
)
def test_cuda_eval_mode_model_matches_cpu() -> None:
    # cuDNN refuses an RNN backward in eval mode (captum #564); the unrolled cells never call it.
    torch.manual_seed(0)
    model = nn.LSTM(5, 4, batch_first=True, bidirectional=True)
    head = nn.Linear(8, 3)

    def forward(x: torch.Tensor, lstm: nn.LSTM = model, fc: nn.Linear = head) -> torch.Tensor:
        return fc(lstm(x)[0][:, -1])

    x = torch.randn(2, 6, 5)
    expected = LSTMLRP(forward).attribute(x, target=1)
    model.cuda().eval()
    head.cuda()
    actual = LSTMLRP(forward).attribute(x.cuda(), target=1)
    assert actual.device.type == "cuda"
    assert torch.allclose(actual.cpu(), expected, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_call_frees_the_recurrent_trace(cell: str, monkeypatch) -> None:
    """The recurrent rule keeps of each direction's forward trace only the ratios its backward walk reads: every
    trace is freed before the call ends (kept, it would double the call's memory), and so are the ratios after it
    (the tensors the rule returns must not be, or be the base of, tensors its autograd node keeps, or node ->
    ratios -> output -> node is a cycle no collection frees: the trace of every call once leaked, about 14 MB per
    call at 64 x 40)."""
    from captum_text_ext.decomposition.lrp import recurrent

    traces, walks = [], []

    def recording_walk(trace: Any, rule: Any) -> Any:
        walk = direction_walk(trace, rule)
        traces.append(weakref.ref(trace))
        walks.append(weakref.ref(walk))
        return walk

    monkeypatch.setattr(recurrent, "direction_walk", recording_walk)
    torch.manual_seed(0)
    model = LSTMClassifier(12, embedding_dim=3, hidden_size=4, num_classes=2, cell=cell, pooling="max").eval()
    embeddings = model.embedding(torch.tensor([[2, 3, 4], [5, 6, 7]])).detach()
    LSTMLRP(model.forward_embeddings).attribute(embeddings, target=1)
    assert len(traces) == 2 and all(trace() is None for trace in traces)  # no collection needed: nothing kept them
    gc.collect()
    assert len(walks) == 2 and all(walk() is None for walk in walks)

"""The GRU's β-only CD walk (:func:`captum_text_ext.decomposition.cd.recurrent_cd`) against the straightforward
recurrence that carries both parts, β and γ, through every step for every phrase (two matrix products per step: the
rules of the :mod:`captum_text_ext.decomposition.cd` docstring written out, kept here as the oracle)."""

from typing import List, Optional, Tuple

import pytest
import torch
from torch import Tensor, nn

from captum_text_ext.decomposition.cd import recurrent_cd
from captum_text_ext.decomposition.cells import DirectionTrace, RecurrentSpec, RecurrentTrace
from captum_text_ext.decomposition.kernel_trace import kernel_unroll

TOLERANCE = 1e-12


def _linearize(b: Tensor, p: Tensor, q: Tensor, act) -> Tuple[Tensor, Tensor, Tensor]:
    """Bias first: ``(L(P), L(Q), a(b + P + Q))``."""
    a_b, a_p, a_q, a_all = act(b), act(b + p), act(b + q), act(b + p + q)
    return 0.5 * ((a_p - a_b) + (a_all - a_q)), 0.5 * ((a_q - a_b) + (a_all - a_p)), a_all


def _bias(bias: Optional[Tensor], like: Tensor) -> Tensor:
    return like.new_zeros(like.shape[0]) if bias is None else bias


def oracle_direction(
    trace: DirectionTrace, beta_x: Tensor, gamma_x: Tensor, beta_h: Tensor, gamma_h: Tensor, to_beta: Tensor
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """One direction, β and γ carried for every phrase from step 0: ``(β_out, γ_out, β_hn, γ_hn)``."""
    w = trace.weights
    hidden = w.hidden_size
    b_x, b_h = _bias(w.bias_ih, w.weight_ih), _bias(w.bias_hh, w.weight_hh)
    x_beta, x_gamma = beta_x @ w.weight_ih.t(), gamma_x @ w.weight_ih.t()
    b_rz = b_x[: 2 * hidden] + b_h[: 2 * hidden]
    r_b, z_b = torch.sigmoid(b_rz).split(hidden)
    b_hn = b_h[2 * hidden :]
    n_b = b_x[2 * hidden :] + r_b * b_hn
    n_bias, u_b = torch.tanh(n_b), 1 - z_b
    out_beta = beta_x.new_zeros(beta_x.shape[:3] + (hidden,))
    out_gamma = torch.zeros_like(out_beta)
    for t in trace.reading_order():
        keep = trace.active[t].unsqueeze(-1)
        h_beta, h_gamma = beta_h @ w.weight_hh.t(), gamma_h @ w.weight_hh.t()
        p_rz = x_beta[:, t, :, : 2 * hidden] + h_beta[..., : 2 * hidden]
        q_rz = x_gamma[:, t, :, : 2 * hidden] + h_gamma[..., : 2 * hidden]
        rz_p, rz_q, rz = _linearize(b_rz, p_rz, q_rz, torch.sigmoid)
        (r_p, z_p), (r_q, z_q), z = rz_p.split(hidden, -1), rz_q.split(hidden, -1), rz[..., hidden:]
        m_p, m_q = h_beta[..., 2 * hidden :], h_gamma[..., 2 * hidden :]
        n_p = x_beta[:, t, :, 2 * hidden :] + r_p * (m_p + b_hn) + r_b * m_p
        n_q = x_gamma[:, t, :, 2 * hidden :] + r_q * (m_p + m_q + b_hn) + (r_p + r_b) * m_q
        n_phrase, n_other, n = _linearize(n_b, n_p, n_q, torch.tanh)
        new_beta = -z_p * (n_phrase + n_bias) + u_b * n_phrase + (z_p + z_b) * beta_h
        new_gamma = -z_q * n + (u_b - z_p) * n_other + z * gamma_h + z_q * beta_h
        product = torch.where(to_beta[:, t].unsqueeze(-1), u_b * n_bias, torch.zeros_like(new_beta))
        new_beta, new_gamma = new_beta + product, new_gamma + (u_b * n_bias - product)
        out_beta[:, t] = torch.where(keep, new_beta, 0.0)
        out_gamma[:, t] = torch.where(keep, new_gamma, 0.0)
        beta_h, gamma_h = torch.where(keep, new_beta, beta_h), torch.where(keep, new_gamma, gamma_h)
    return out_beta, out_gamma, beta_h, gamma_h


def oracle(
    trace: RecurrentTrace, beta_x: Tensor, gamma_x: Tensor, beta_h0: Tensor, gamma_h0: Tensor, to_beta: List[Tensor]
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """The stacked layer: ``(β_out, γ_out, β_hn, γ_hn)``, the states :math:`(P, K D, B, H)`."""
    directions = trace.spec.num_directions
    h_beta, h_gamma = [], []
    for k, layer in enumerate(trace.layers):
        parts = []
        for d, direction in enumerate(layer):
            index = k * directions + d
            ob, og, hb, hg = oracle_direction(
                direction, beta_x, gamma_x, beta_h0[:, index], gamma_h0[:, index], to_beta[d]
            )
            parts.append((ob, og))
            h_beta.append(hb)
            h_gamma.append(hg)
        beta_x, gamma_x = torch.cat([p[0] for p in parts], -1), torch.cat([p[1] for p in parts], -1)
    return beta_x, gamma_x, torch.stack(h_beta, 1), torch.stack(h_gamma, 1)


CONFIGS = [
    # (layers, bidirectional, bias, lengths, initial state, phrase masks)
    (1, False, True, None, False, "words"),
    (1, True, True, [6, 4, 1, 5], True, "words"),
    (2, False, False, [6, 6, 2, 3], True, "random"),
    (2, True, True, None, True, "random"),
    (3, True, True, [5, 6, 3, 1], False, "words"),
    (3, False, True, [4, 6, 6, 2], True, "random"),
]


def _case(layers: int, bidirectional: bool, bias: bool, lengths: Optional[List[int]], initial: bool, masks: str):
    torch.manual_seed(layers * 10 + bidirectional + 2 * bias + (3 if initial else 0))
    gru = nn.GRU(3, 5, num_layers=layers, bidirectional=bidirectional, bias=bias).double()
    with torch.no_grad():  # biases and weights large enough that the gates saturate somewhere
        for parameter in gru.parameters():
            parameter.mul_(2.0)
    steps, batch, directions = 6, 4, 2 if bidirectional else 1
    x = torch.randn(steps, batch, 3, dtype=torch.float64)
    lengths_t = None if lengths is None else torch.tensor(lengths)
    h0 = torch.randn(layers * directions, batch, 5, dtype=torch.float64) if initial else None
    trace = kernel_unroll(RecurrentSpec.from_module(gru).detached(), x, lengths_t, h0)
    if masks == "words":  # each step its own phrase, across padding too
        mask = torch.eye(steps, dtype=torch.bool).unsqueeze(-1).expand(steps, steps, batch).contiguous()
    else:
        mask = torch.rand(5, steps, batch) < 0.4
    phrases = mask.shape[0]
    states = layers * directions
    state = trace.h_n.new_zeros(phrases, states, batch, 5) if h0 is None else h0.expand(phrases, -1, -1, -1)
    share = torch.rand(phrases, states, batch, 1, dtype=torch.float64) if initial else 0.0
    beta_h0 = state * share
    gamma_h0 = state - beta_h0
    to_beta = [torch.rand(phrases, steps, batch) < 0.5 for _ in range(directions)]
    return trace, x, mask, beta_h0, gamma_h0, to_beta


@pytest.mark.parametrize("config", CONFIGS)
def test_the_beta_only_walk_equals_the_beta_and_gamma_recurrence(config) -> None:
    trace, x, mask, beta_h0, gamma_h0, to_beta = _case(*config)
    inside = mask.unsqueeze(-1).to(x.dtype)
    expected = oracle(trace, x * inside, x * (1 - inside), beta_h0, gamma_h0, to_beta)
    for given in ("mask", "parts"):
        if given == "mask":
            result = recurrent_cd(trace, None, None, (beta_h0, gamma_h0, None, None), to_beta, mask)
        else:  # the input split within rows too: β and γ both nonzero where the mask holds
            split = torch.rand_like(x) * inside
            beta_x, gamma_x = x * split, x * (1 - split)
            expected = oracle(trace, beta_x, gamma_x, beta_h0, gamma_h0, to_beta)
            result = recurrent_cd(trace, beta_x, gamma_x, (beta_h0, gamma_h0, None, None), to_beta)
        out_beta, hn_beta, hn_gamma, cn_beta, cn_gamma = result
        assert cn_beta is None and cn_gamma is None
        for ours, theirs in zip((out_beta, trace.outputs - out_beta, hn_beta, hn_gamma), expected):
            assert (ours - theirs).abs().max() <= TOLERANCE
        assert bool((out_beta[:, ~trace.layers[0][0].active] == 0).all())  # 0 at padding


def test_beta_is_exactly_zero_before_a_phrase_starts() -> None:
    trace, x, mask, beta_h0, gamma_h0, to_beta = _case(2, False, True, [6, 4, 1, 5], False, "words")
    out_beta = recurrent_cd(trace, None, None, (beta_h0, gamma_h0, None, None), [to_beta[0] & mask], mask)[0]
    for phrase in range(mask.shape[0]):
        assert bool((out_beta[phrase, :phrase] == 0).all())
        assert bool((out_beta[phrase, phrase:][trace.layers[0][0].active[phrase:]] != 0).any())

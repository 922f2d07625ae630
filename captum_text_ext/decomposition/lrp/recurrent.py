r"""LRP through LSTM and GRU layers: the backward walk over the unrolled cells of
:mod:`~captum_text_ext.decomposition.cells` (equations in :mod:`~captum_text_ext.decomposition.lrp`)."""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple, Union

import torch
from torch import Tensor

from captum_text_ext.decomposition.cells import DirectionTrace, FusedRecurrentCall, RecurrentTrace, unroll
from captum_text_ext.decomposition.guard import RANDOM_REASON, Handler, is_tracked
from captum_text_ext.decomposition.lrp.relevance import EpsilonRule, LRPRun, stabilized

__all__ = [
    "RecurrentLRP",
    "gru_direction_relevance",
    "lstm_direction_relevance",
    "recurrent_relevance",
    "recurrent_rule",
]


def _gated_sum(
    out: Tensor, relevance: Tensor, rule: EpsilonRule
) -> Tuple[Tensor, Union[Tensor, float]]:
    """The ε-rule's factor :math:`q = R / (z + \\epsilon\\,\\mathrm{sign}(z))` of an element-wise sum of two gated
    terms per unit (:math:`c_t = f \\odot c_{t-1} + i \\odot g_t`, or the GRU's :math:`h_t`), and the stabilizer's
    share each of the two inputs gets: :math:`\\delta\\,\\epsilon\\,\\mathrm{sign}(z_j)\\,q_j / 2` for its own unit
    (``rule.cell_stabilizer == "unit"``, the paper's :math:`N = 2`), or
    :math:`\\delta\\,\\epsilon \\sum_j \\mathrm{sign}(z_j)\\,q_j / (2H)` for every unit (``"layer"``, Arras et al.'s
    released code, which passes the sum to ``lrp_linear`` as an identity matrix over all :math:`2H` inputs)."""
    denominator, sign = stabilized(out, rule.epsilon)
    q = relevance / denominator
    if rule.bias_factor == 0:
        return q, 0.0
    if rule.cell_stabilizer == "unit":
        return q, rule.bias_factor * rule.epsilon * sign / 2 * q
    units = out.shape[-1]
    return q, rule.bias_factor * rule.epsilon * (sign * q).sum(-1, keepdim=True) / (2 * units)


def lstm_direction_relevance(
    trace: DirectionTrace, r_out: Tensor, r_h: Tensor, r_c: Tensor, rule: EpsilonRule
) -> Tuple[Tensor, Tensor, Tensor]:
    """LRP backwards through one direction of one LSTM layer (equations in the module docstring).

    Args:
        trace: the direction's :class:`~captum_text_ext.decomposition.cells.DirectionTrace`.
        r_out: :math:`(T, B, S)` relevance of the direction's outputs (ignored at padding).
        r_h: :math:`(B, S)` relevance of the final hidden state :math:`h_n`.
        r_c: :math:`(B, H)` relevance of the final cell state :math:`c_n`.
        rule: :math:`\\epsilon, \\delta` and where the cell sum's stabilizer share goes.

    Returns:
        ``(R_x (T, B, E), R_h0 (B, S), R_c0 (B, H))``.
    """
    assert trace.c is not None and trace.c_prev is not None
    eps, delta = rule.epsilon, rule.bias_factor
    weights = trace.weights
    w_x, w_h, _, _ = weights.gate("g")
    bias = weights.gate_bias("g")
    hidden = weights.hidden_size
    fan_in = weights.input_size + weights.state_size
    steps = trace.inputs.shape[0]
    q_all = torch.zeros_like(trace.c)
    share_all = trace.h.new_zeros(steps, trace.h.shape[1], 1)
    i_gate, f_gate, g_gate = trace.gates["i"], trace.gates["f"], trace.gates["g"]
    for t in reversed(trace.reading_order()):
        active = trace.active[t].unsqueeze(-1)
        r_ht = r_h + torch.where(active, r_out[t], torch.zeros_like(r_out[t]))
        if weights.weight_hr is not None:
            r_ht = _projection_relevance(trace, t, r_ht, rule)
        r_ct = r_c + r_ht
        q_c, spread = _gated_sum(trace.c[t], r_ct, rule)
        r_c_prev = f_gate[t] * trace.c_prev[t] * q_c + spread
        r_g = i_gate[t] * g_gate[t] * q_c + spread
        z_g = trace.pre[t][:, 2 * hidden : 3 * hidden]
        den_g, sign_g = stabilized(z_g, eps)
        q = r_g / den_g
        r_h_prev = trace.h_prev[t] * (q @ w_h)
        if delta != 0:
            spread_g = eps * sign_g if bias is None else bias + eps * sign_g
            share = delta * (spread_g * q).sum(-1, keepdim=True) / fan_in
            r_h_prev = r_h_prev + share
            share_all[t] = torch.where(active, share, torch.zeros_like(share))
        q_all[t] = torch.where(active, q, torch.zeros_like(q))
        r_h = torch.where(active, r_h_prev, r_h)
        r_c = torch.where(active, r_c_prev, r_c)
    r_x = trace.inputs * (q_all @ w_x) + share_all
    return r_x, r_h, r_c


def _projection_relevance(trace: DirectionTrace, t: int, relevance: Tensor, rule: EpsilonRule) -> Tensor:
    r"""The relevance of :math:`m_t = o_t \odot \tanh(c_t)` from that of :math:`h_t = W_{hr} m_t` (the projection of
    ``nn.LSTM(proj_size > 0)``): the ε-rule without bias, :math:`N = H`."""
    weights = trace.weights
    assert weights.weight_hr is not None and trace.c is not None
    m = trace.gates["o"][t] * torch.tanh(trace.c[t])
    denominator, sign = stabilized(trace.h[t], rule.epsilon)
    q = relevance / denominator
    r_m = m * (q @ weights.weight_hr)
    if rule.bias_factor != 0:
        r_m = r_m + rule.bias_factor * rule.epsilon * (sign * q).sum(-1, keepdim=True) / weights.hidden_size
    return r_m


def gru_direction_relevance(
    trace: DirectionTrace, r_out: Tensor, r_h: Tensor, rule: EpsilonRule
) -> Tuple[Tensor, Tensor]:
    """LRP backwards through one direction of one GRU layer (equations in the module docstring).

    Returns:
        ``(R_x (T, B, E), R_h0 (B, H))``.
    """
    assert trace.pre_h is not None
    eps, delta = rule.epsilon, rule.bias_factor
    w_x, w_h, b_x, b_h = trace.weights.gate("n")
    hidden = trace.weights.hidden_size
    fan_in_a = trace.weights.input_size + 1
    steps = trace.inputs.shape[0]
    q_all = torch.zeros_like(trace.h)
    share_all = trace.h.new_zeros(steps, trace.h.shape[1], 1)
    r_gate, z_gate, n_gate = trace.gates["r"], trace.gates["z"], trace.gates["n"]
    for t in reversed(trace.reading_order()):
        active = trace.active[t].unsqueeze(-1)
        r_ht = r_h + torch.where(active, r_out[t], torch.zeros_like(r_out[t]))
        h_prev = trace.h_prev[t]
        q_h, spread = _gated_sum(trace.h[t], r_ht, rule)
        r_n = (1 - z_gate[t]) * n_gate[t] * q_h + spread
        r_direct = z_gate[t] * h_prev * q_h + spread
        m = trace.pre_h[t][:, 2 * hidden :]
        p = r_gate[t] * m
        a = trace.pre[t][:, 2 * hidden :] + p
        den_a, sign_a = stabilized(a, eps)
        q = r_n / den_a
        r_p = p * q
        if delta != 0:
            spread_a = eps * sign_a if b_x is None else b_x + eps * sign_a
            unit_share = delta * spread_a * q / fan_in_a
            r_p = r_p + unit_share
            share = unit_share.sum(-1, keepdim=True)
            share_all[t] = torch.where(active, share, torch.zeros_like(share))
        den_m, sign_m = stabilized(m, eps)
        u = r_p / den_m
        r_h_prev = r_direct + h_prev * (u @ w_h)
        if delta != 0:
            spread_m = eps * sign_m if b_h is None else b_h + eps * sign_m
            r_h_prev = r_h_prev + delta * (spread_m * u).sum(-1, keepdim=True) / hidden
        q_all[t] = torch.where(active, q, torch.zeros_like(q))
        r_h = torch.where(active, r_h_prev, r_h)
    r_x = trace.inputs * (q_all @ w_x) + share_all
    return r_x, r_h


def recurrent_relevance(
    trace: RecurrentTrace, r_out: Tensor, r_hn: Tensor, r_cn: Optional[Tensor], rule: EpsilonRule
) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """LRP backwards through a stacked, possibly bidirectional LSTM/GRU.

    Args:
        trace: the :class:`~captum_text_ext.decomposition.cells.RecurrentTrace` of the forward pass.
        r_out: :math:`(T, B, D S)` relevance of the outputs.
        r_hn: :math:`(K D, B, S)` relevance of the final hidden states.
        r_cn: :math:`(K D, B, H)` relevance of the final cell states (LSTM) or ``None``.
        rule: :math:`\\epsilon, \\delta`.

    Returns:
        ``(R_inputs (T, B, E), R_h0 (K D, B, S), R_c0 (K D, B, H) or None)``.
    """
    spec = trace.spec
    directions, hidden = spec.num_directions, spec.state_size
    r_h0 = torch.zeros_like(trace.h_n)
    r_c0 = None if trace.c_n is None else torch.zeros_like(trace.c_n)
    relevance = r_out
    for k in reversed(range(spec.num_layers)):
        r_in = torch.zeros_like(trace.layers[k][0].inputs)
        for d in range(directions):
            tr = trace.layers[k][d]
            index = k * directions + d
            r_dir = relevance[..., d * hidden : (d + 1) * hidden]
            if spec.cell == "lstm":
                assert r_cn is not None and r_c0 is not None
                r_x, r_h0[index], r_c0[index] = lstm_direction_relevance(tr, r_dir, r_hn[index], r_cn[index], rule)
            else:
                r_x, r_h0[index] = gru_direction_relevance(tr, r_dir, r_hn[index], rule)
            r_in = r_in + r_x
        relevance = r_in
    return relevance, r_h0, r_c0


class RecurrentLRP(torch.autograd.Function):
    """Forward: the unrolled LSTM/GRU (values equal ``nn.LSTM``'s); backward: :func:`recurrent_relevance`.

    ``RecurrentLRP.apply(x, h0, c0, spec, lengths, rule)``.
    """

    @staticmethod
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Tuple[Tensor, ...]:
        """The op's value (the arguments are the class's); the rule is in ``backward``."""
        x, h0, c0, spec, lengths, rule = args
        trace = unroll(spec, x, lengths, h0, c0)
        ctx.trace, ctx.rule = trace, rule
        if trace.c_n is None:
            return trace.outputs, trace.h_n
        return trace.outputs, trace.h_n, trace.c_n

    @staticmethod
    def backward(ctx: Any, *relevance: Any) -> Tuple[Optional[Tensor], ...]:
        trace: RecurrentTrace = ctx.trace
        r_out, r_hn = relevance[0], relevance[1]
        r_cn = relevance[2] if len(relevance) > 2 else None
        r_x, r_h0, r_c0 = recurrent_relevance(trace, r_out, r_hn, r_cn, ctx.rule)
        return r_x, r_h0, r_c0, None, None, None


def recurrent_rule(run: LRPRun, op: str) -> Handler:
    """``torch.lstm`` / ``torch.gru`` / ``torch.lstm_cell`` / ``torch.gru_cell``: :class:`RecurrentLRP`."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        try:
            call = FusedRecurrentCall.parse(op, args, kwargs)
        except TypeError as err:
            raise run.refuse(func, str(err)) from err
        weights = [t for w in call.spec.weights for t in (w.weight_ih, w.weight_hh, w.bias_ih, w.bias_hh)]
        if any(is_tracked(t) for t in weights):
            raise run.refuse(func, "the recurrent weights must be constants (parameters, not computed from the inputs)")
        if call.train and call.dropout > 0 and call.spec.num_layers > 1:
            raise run.refuse(func, RANDOM_REASON)
        apply: Callable[..., Tuple[Tensor, ...]] = RecurrentLRP.apply
        outputs = apply(call.inputs, call.h0, call.c0, call.spec.detached(), call.lengths, run.rule)
        return call.result(*outputs)

    return handler

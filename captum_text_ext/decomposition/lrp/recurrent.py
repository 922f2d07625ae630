r"""LRP through LSTM and GRU layers: the backward walk over the unrolled cells of
:mod:`~captum_text_ext.decomposition.cells` (equations in :mod:`~captum_text_ext.decomposition.lrp`)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from captum_text_ext.decomposition.cells import DirectionTrace, FusedRecurrentCall, RecurrentTrace
from captum_text_ext.decomposition.kernel_trace import kernel_unroll
from captum_text_ext.decomposition.guard import RANDOM_REASON, Handler, is_tracked
from captum_text_ext.decomposition.lrp.relevance import EpsilonRule, LRPRun, stabilized

__all__ = [
    "RecurrentLRP",
    "gru_direction_relevance",
    "lstm_direction_relevance",
    "recurrent_relevance",
    "recurrent_rule",
]


def _cell_sum_ratios(
    out: Tensor, first: Tensor, second: Tensor, rule: EpsilonRule
) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    r"""The ε-rule on an element-wise sum of two gated terms per unit, :math:`z = u + v` (the LSTM's
    :math:`c_t = f_t \odot c_{t-1} + i_t \odot g_t`, the GRU's :math:`h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}`),
    as ratios computed for all steps at once: :math:`R_u = A \odot R_z + \rho`, :math:`R_v = B \odot R_z + \rho`.

    With ``rule.cell_stabilizer == "unit"`` (the paper's :math:`N = 2`) the stabilizer share sits in the ratios,

    .. math::
        A = \frac{u + \delta\,\epsilon\,\mathrm{sign}(z)/2}{z + \epsilon\,\mathrm{sign}(z)}, \qquad
        B = \frac{v + \delta\,\epsilon\,\mathrm{sign}(z)/2}{z + \epsilon\,\mathrm{sign}(z)}, \qquad \rho = 0;

    with ``"layer"`` (Arras et al.'s released code: ``lrp_linear`` over an identity matrix with all :math:`2H`
    inputs) every unit gets :math:`\rho = \sum_j V_j R_{z_j}` with
    :math:`V = \delta\,\epsilon\,\mathrm{sign}(z) / \big(2H\,(z + \epsilon\,\mathrm{sign}(z))\big)`, returned as the
    third value (``None`` when :math:`\rho = 0`).
    """
    denominator, sign = stabilized(out, rule.epsilon)
    if rule.bias_factor == 0:
        return first / denominator, second / denominator, None
    if rule.cell_stabilizer == "unit":
        share = rule.bias_factor * rule.epsilon / 2 * sign
        return (first + share) / denominator, (second + share) / denominator, None
    per_unit = rule.bias_factor * rule.epsilon / (2 * out.shape[-1]) * sign / denominator
    return first / denominator, second / denominator, per_unit


def _epsilon_ratios(
    z: Tensor, bias: Optional[Tensor], fan_in: int, rule: EpsilonRule
) -> Tuple[Tensor, Optional[Tensor]]:
    r"""The ε-rule's per-output factors of a weighted connection :math:`z_j = \sum_i a_i w_{ij} + b_j` for all steps
    at once: :math:`1 / (z_j + \epsilon\,\mathrm{sign}(z_j))` and the bias-and-stabilizer weight
    :math:`\delta\,(b_j + \epsilon\,\mathrm{sign}(z_j)) / N` (``None`` when :math:`\delta = 0`), so that with
    :math:`q = R_z / (z + \epsilon\,\mathrm{sign}(z))` each input gets
    :math:`R_i = a_i (W q)_i + \sum_j \delta\,(b_j + \epsilon\,\mathrm{sign}(z_j))\,q_j / N`."""
    denominator, sign = stabilized(z, rule.epsilon)
    if rule.bias_factor == 0:
        return 1 / denominator, None
    spread = rule.epsilon * sign if bias is None else bias + rule.epsilon * sign
    return 1 / denominator, rule.bias_factor / fan_in * spread


def _row_dot(weight: Optional[Tensor], values: Tensor) -> Optional[Tensor]:
    """:math:`\\sum_j w_j v_j` per row, keeping the last dimension (``None`` when ``weight`` is)."""
    return None if weight is None else (weight * values).sum(-1, keepdim=True)


def _at_real_steps(trace: DirectionTrace, values: Tensor) -> Tensor:
    """``values`` of shape :math:`(T, B, \\ldots)` with 0 at padding (``values`` itself when no column has padding)."""
    if trace.active.all():
        return values
    return torch.where(trace.active.unsqueeze(-1), values, torch.zeros_like(values))


def _masked_outputs(trace: DirectionTrace, r_out: Tensor) -> Tuple[Optional[Tensor], List[bool]]:
    """The output relevance, 0 at padding (``None`` when it is 0 everywhere: a head on :math:`h_n` alone), and for
    each step whether every column is active there (no masking needed)."""
    masked = _at_real_steps(trace, r_out)
    all_active: List[bool] = trace.active.all(dim=1).tolist()
    return (masked if bool(masked.any()) else None), all_active


def _per_step(tensor: Optional[Tensor], steps: int) -> List[Optional[Tensor]]:
    return [None] * steps if tensor is None else list(tensor.unbind(0))


def _stack_in_time(trace: DirectionTrace, walked: List[Tensor], empty: Tensor) -> Tensor:
    """The per-step tensors of a backward walk (collected in reverse reading order) stacked in time order."""
    if not walked:
        return empty
    return torch.stack(walked[::-1] if trace.direction == 0 else walked)


def lstm_direction_relevance(
    trace: DirectionTrace, r_out: Tensor, r_h: Tensor, r_c: Tensor, rule: EpsilonRule
) -> Tuple[Tensor, Tensor, Tensor]:
    r"""LRP backwards through one direction of one LSTM layer (equations in the module docstring).

    Every ratio the walk needs is computed for all steps at once before it (:func:`_cell_sum_ratios` for
    :math:`c_t`, :func:`_epsilon_ratios` for :math:`z^g_t`), so each step is a few element-wise ops and one matmul:

    .. math::
        R_{c_t} = R_c + R_{h_t}, \quad q_t = \frac{B_t}{z^g_t + \epsilon\,\mathrm{sign}(z^g_t)} \odot R_{c_t}, \quad
        R_{c_{t-1}} = A_t \odot R_{c_t}, \quad
        R_{h_{t-1}} = h_{t-1} \odot W_{hg}^\top q_t + \textstyle\sum_j S_{t,j}\, q_{t,j}

    with :math:`S = \delta\,(b_g + \epsilon\,\mathrm{sign}(z^g))/(E + H)`; finally
    :math:`R_{x_t} = x_t \odot W_{ig}^\top q_t + \sum_j S_{t,j}\, q_{t,j}` for all steps in one matmul.

    Args:
        trace: the direction's :class:`~captum_text_ext.decomposition.cells.DirectionTrace`.
        r_out: :math:`(T, B, S)` relevance of the direction's outputs (ignored at padding).
        r_h: :math:`(B, S)` relevance of the final hidden state :math:`h_n`.
        r_c: :math:`(B, H)` relevance of the final cell state :math:`c_n`.
        rule: :math:`\epsilon, \delta` and where the cell sum's stabilizer share goes.

    Returns:
        ``(R_x (T, B, E), R_h0 (B, S), R_c0 (B, H))``.
    """
    assert trace.c is not None and trace.c_prev is not None
    weights = trace.weights
    w_x, w_h, _, _ = weights.gate("g")
    hidden = weights.hidden_size
    steps = trace.inputs.shape[0]
    gates = trace.gates
    to_c_prev, to_g, per_unit = _cell_sum_ratios(trace.c, gates["f"] * trace.c_prev, gates["i"] * gates["g"], rule)
    inv_g, share_g = _epsilon_ratios(
        trace.pre[..., 2 * hidden : 3 * hidden], weights.gate_bias("g"), weights.input_size + weights.state_size, rule
    )
    # q_t = to_q ⊙ R_{c_t} (+ ρ_t / den_g); 0 at padding, so padded steps send nothing to x_t.
    active = trace.active.unsqueeze(-1)
    to_q = _at_real_steps(trace, to_g * inv_g)
    rho_q = None if per_unit is None else _at_real_steps(trace, inv_g)
    projection = _projection_ratios(trace, rule)
    masked_out, all_active = _masked_outputs(trace, r_out)
    outs, shares, rhos, rho_qs = (_per_step(t, steps) for t in (masked_out, share_g, per_unit, rho_q))
    proj_m, proj_inv, proj_share = (_per_step(t, steps) for t in projection)
    to_c_prevs, to_qs, h_prevs, actives = to_c_prev.unbind(0), to_q.unbind(0), trace.h_prev.unbind(0), active.unbind(0)
    q_steps: List[Tensor] = []
    for t in reversed(trace.reading_order()):
        out_t, active_t = outs[t], actives[t]
        r_ht = r_h if out_t is None else r_h + out_t
        m_t, inv_t = proj_m[t], proj_inv[t]
        if m_t is not None and inv_t is not None:
            assert weights.weight_hr is not None
            spread_h = _row_dot(proj_share[t], r_ht)
            r_ht = m_t * ((r_ht * inv_t) @ weights.weight_hr)
            r_ht = r_ht if spread_h is None else r_ht + spread_h
        r_ct = r_c + r_ht
        q = to_qs[t] * r_ct
        r_c_prev = to_c_prevs[t] * r_ct
        rho_t = _row_dot(rhos[t], r_ct)
        rho_q_t = rho_qs[t]
        if rho_t is not None and rho_q_t is not None:
            q = q + rho_q_t * rho_t
            r_c_prev = r_c_prev + rho_t
        r_h_prev = h_prevs[t] * (q @ w_h)
        share = _row_dot(shares[t], q)
        if share is not None:
            r_h_prev = r_h_prev + share
        q_steps.append(q)
        if all_active[t]:
            r_h, r_c = r_h_prev, r_c_prev
        else:
            r_h, r_c = torch.where(active_t, r_h_prev, r_h), torch.where(active_t, r_c_prev, r_c)
    q_all = _stack_in_time(trace, q_steps, to_q)
    r_x = trace.inputs * (q_all @ w_x)
    share_x = _row_dot(share_g, q_all)
    return (r_x if share_x is None else r_x + share_x), r_h, r_c


def _projection_ratios(
    trace: DirectionTrace, rule: EpsilonRule
) -> Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    r"""For ``nn.LSTM(proj_size > 0)``, :math:`h_t = W_{hr} m_t` with :math:`m_t = o_t \odot \tanh(c_t)` is the
    ε-rule without bias, :math:`N = H`: :math:`R_{m_t} = m_t \odot W_{hr}^\top q_t + \sum_j V_{t,j} R_{h_{t,j}}` with
    :math:`q_t = R_{h_t} / (h_t + \epsilon\,\mathrm{sign}(h_t))` and
    :math:`V = \delta\,\epsilon\,\mathrm{sign}(h) / \big(H\,(h + \epsilon\,\mathrm{sign}(h))\big)`. Returns
    :math:`(m, 1 / (h + \epsilon\,\mathrm{sign}(h)), V)` for all steps (``None`` without a projection, :math:`V`
    ``None`` when :math:`\delta = 0`)."""
    weights = trace.weights
    if weights.weight_hr is None:
        return None, None, None
    assert trace.c is not None
    m = trace.gates["o"] * torch.tanh(trace.c)
    denominator, sign = stabilized(trace.h, rule.epsilon)
    inverse = 1 / denominator
    if rule.bias_factor == 0:
        return m, inverse, None
    return m, inverse, rule.bias_factor * rule.epsilon / weights.hidden_size * sign * inverse


def gru_direction_relevance(
    trace: DirectionTrace, r_out: Tensor, r_h: Tensor, rule: EpsilonRule
) -> Tuple[Tensor, Tensor]:
    r"""LRP backwards through one direction of one GRU layer (equations in the module docstring).

    As for the LSTM every ratio is computed for all steps first; each step is then

    .. math::
        q_t = \frac{B_t \odot R_{h_t} + \rho_t}{a_t + \epsilon\,\mathrm{sign}(a_t)}, \quad
        u_t = \frac{p_t + \delta\,(b_{in} + \epsilon\,\mathrm{sign}(a_t))/(E + 1)}
                   {m_t + \epsilon\,\mathrm{sign}(m_t)} \odot q_t, \quad
        R_{h_{t-1}} = A_t \odot R_{h_t} + \rho_t + h_{t-1} \odot W_{hn}^\top u_t
            + \textstyle\sum_j \delta\,(b_{hn,j} + \epsilon\,\mathrm{sign}(m_{t,j}))\,u_{t,j} / H

    (:math:`A, B, \rho` of :func:`_cell_sum_ratios` for :math:`h_t = z_t \odot h_{t-1} + (1 - z_t) \odot n_t`).

    Returns:
        ``(R_x (T, B, E), R_h0 (B, H))``.
    """
    assert trace.pre_h is not None
    w_x, w_h, b_x, b_h = trace.weights.gate("n")
    hidden = trace.weights.hidden_size
    steps = trace.inputs.shape[0]
    gates = trace.gates
    direct, new, per_unit = _cell_sum_ratios(trace.h, gates["z"] * trace.h_prev, (1 - gates["z"]) * gates["n"], rule)
    m = trace.pre_h[..., 2 * hidden :]
    p = gates["r"] * m
    inv_a, share_a = _epsilon_ratios(trace.pre[..., 2 * hidden :] + p, b_x, trace.weights.input_size + 1, rule)
    inv_m, share_m = _epsilon_ratios(m, b_h, hidden, rule)
    active = trace.active.unsqueeze(-1)
    inv_a = _at_real_steps(trace, inv_a)  # q_t = 0 at padding
    to_u = (p if share_a is None else p + share_a) * inv_m
    masked_out, all_active = _masked_outputs(trace, r_out)
    outs, shares, rhos = (_per_step(t, steps) for t in (masked_out, share_m, per_unit))
    directs, news, inv_as, to_us = direct.unbind(0), new.unbind(0), inv_a.unbind(0), to_u.unbind(0)
    h_prevs, actives = trace.h_prev.unbind(0), active.unbind(0)
    q_steps: List[Tensor] = []
    for t in reversed(trace.reading_order()):
        out_t = outs[t]
        r_ht = r_h if out_t is None else r_h + out_t
        r_n, r_direct = news[t] * r_ht, directs[t] * r_ht
        rho_t = _row_dot(rhos[t], r_ht)
        if rho_t is not None:
            r_n, r_direct = r_n + rho_t, r_direct + rho_t
        q = r_n * inv_as[t]
        u = to_us[t] * q
        r_h_prev = r_direct + h_prevs[t] * (u @ w_h)
        share = _row_dot(shares[t], u)
        if share is not None:
            r_h_prev = r_h_prev + share
        q_steps.append(q)
        r_h = r_h_prev if all_active[t] else torch.where(actives[t], r_h_prev, r_h)
    q_all = _stack_in_time(trace, q_steps, inv_a)
    r_x = trace.inputs * (q_all @ w_x)
    share_x = _row_dot(share_a, q_all)
    return (r_x if share_x is None else r_x + share_x), r_h


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
    """Forward: the trace of :func:`~captum_text_ext.decomposition.kernel_trace.kernel_unroll` (the fused kernels;
    values equal ``nn.LSTM``'s); backward: :func:`recurrent_relevance`.

    ``RecurrentLRP.apply(x, h0, c0, spec, lengths, rule)``.
    """

    @staticmethod
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Tuple[Tensor, ...]:
        """The op's value (the arguments are the class's); the rule is in ``backward``."""
        x, h0, c0, spec, lengths, rule = args
        projected = any(w.weight_hr is not None for w in spec.weights)  # the projection's rule reads o_t
        trace = kernel_unroll(spec, x, lengths, h0, c0, lean=not projected)
        ctx.trace, ctx.rule = trace, rule
        # The returned tensors get this node as their grad_fn, so they are new aliases of the trace's tensors: were
        # they the trace's own (or the base of its views), node -> context -> trace -> output -> node would be a
        # cycle that no garbage collection frees, and every call would leak its trace.
        states = (trace.h_n,) if trace.c_n is None else (trace.h_n, trace.c_n)
        return tuple(t.detach() for t in (trace.outputs, *states))

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

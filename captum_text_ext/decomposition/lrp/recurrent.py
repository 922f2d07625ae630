r"""LRP through LSTM and GRU layers: the backward walk over the unrolled cells of
:mod:`~captum_text_ext.decomposition.cells` (equations in :mod:`~captum_text_ext.decomposition.lrp`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_text_ext.decomposition.cells import (
    CellWeights,
    DirectionTrace,
    FusedRecurrentCall,
    RecurrentSpec,
    RecurrentTrace,
)
from captum_text_ext.decomposition.kernel_trace import kernel_direction_traces
from captum_text_ext.decomposition.stepped_trace import stepped_direction_traces, uses_stepped_loop
from captum_text_ext.decomposition.guard import RANDOM_REASON, Handler, is_tracked
from captum_text_ext.decomposition.lrp.relevance import EpsilonRule, LRPRun, sign0, stabilized

__all__ = [
    "DirectionWalk",
    "RecurrentLRP",
    "direction_walk",
    "gru_direction_relevance",
    "gru_walk",
    "lstm_direction_relevance",
    "lstm_walk",
    "recurrent_relevance",
    "recurrent_rule",
    "walk_gru",
    "walk_lstm",
    "walks_relevance",
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
    third value (``None`` when :math:`\rho = 0`). ``first`` and ``second`` (:math:`u, v`) are overwritten with
    :math:`A, B` (the caller passes products made for the purpose: no third buffer at the walk's memory peak).
    """
    denominator, sign = stabilized(out, rule.epsilon)
    if rule.bias_factor == 0:
        return first.div_(denominator), second.div_(denominator), None
    if rule.cell_stabilizer == "unit":
        share = sign.mul_(rule.bias_factor * rule.epsilon / 2)
        return first.add_(share).div_(denominator), second.add_(share).div_(denominator), None
    per_unit = sign.mul_(rule.bias_factor * rule.epsilon / (2 * out.shape[-1])).div_(denominator)
    return first.div_(denominator), second.div_(denominator), per_unit


def _epsilon_ratios(
    z: Tensor, bias: Optional[Tensor], fan_in: int, rule: EpsilonRule, overwrite: bool = False
) -> Tuple[Tensor, Optional[Tensor]]:
    r"""The ε-rule's per-output factors of a weighted connection :math:`z_j = \sum_i a_i w_{ij} + b_j` for all steps
    at once: :math:`1 / (z_j + \epsilon\,\mathrm{sign}(z_j))` and the bias-and-stabilizer weight
    :math:`\delta\,(b_j + \epsilon\,\mathrm{sign}(z_j)) / N` (``None`` when :math:`\delta = 0`), so that with
    :math:`q = R_z / (z + \epsilon\,\mathrm{sign}(z))` each input gets
    :math:`R_i = a_i (W q)_i + \sum_j \delta\,(b_j + \epsilon\,\mathrm{sign}(z_j))\,q_j / N`. With ``overwrite``
    the first factor is computed in ``z``'s own buffer (a tensor made for the purpose)."""
    if overwrite:
        sign = sign0(z)
        denominator = z.add_(sign, alpha=rule.epsilon)
    else:
        denominator, sign = stabilized(z, rule.epsilon)
    if rule.bias_factor == 0:
        return denominator.reciprocal_(), None
    spread = sign.mul_(rule.epsilon) if bias is None else sign.mul_(rule.epsilon).add_(bias)
    return denominator.reciprocal_(), spread.mul_(rule.bias_factor / fan_in)


def _row_dot(weight: Optional[Tensor], values: Tensor) -> Optional[Tensor]:
    """:math:`\\sum_j w_j v_j` per row, keeping the last dimension (``None`` when ``weight`` is)."""
    return None if weight is None else (weight * values).sum(-1, keepdim=True)


def _at_real_steps(active: Tensor, values: Tensor) -> Tensor:
    """``values`` of shape :math:`(T, B, \\ldots)` with 0 at padding (``values`` itself when no column has padding)."""
    if active.all():
        return values
    return torch.where(active.unsqueeze(-1), values, torch.zeros_like(values))


def _passing_at_padding(active: Tensor, carry: Tensor, per_unit: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
    """The carry ratio :math:`C` set to 1 and the stabilizer weights :math:`V` to 0 at padding, in place (tensors
    made for the purpose): with :math:`Q = 0` there, a padded step hands its relevance on unchanged."""
    if not bool(active.all()):
        padding = ~active.unsqueeze(-1)
        carry.masked_fill_(padding, 1.0)
        if per_unit is not None:
            per_unit.masked_fill_(padding, 0.0)
    return carry, per_unit


def _per_step(tensor: Optional[Tensor], steps: int) -> List[Optional[Tensor]]:
    return [None] * steps if tensor is None else list(tensor.unbind(0))


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


@dataclass(frozen=True)
class DirectionWalk:
    r"""What the backward walk through one direction of one layer reads: the ratios of every step, computed from the
    forward trace at once (:func:`lstm_walk`, :func:`gru_walk`), so the trace itself need not be kept.

    Each step, in reverse reading order, with :math:`R_t` the relevance of the gated sum (the LSTM's :math:`c_t`,
    :math:`R_t = R_{c_t} + R_{h_t}`; the GRU's :math:`h_t`) and :math:`\rho_t = \sum_j V_{t,j} R_{t,j}` the
    layer-wide stabilizer share (``cell_stabilizer="layer"``, else 0): :math:`q_t = Q_t \odot R_t + \rho^q_t
    \rho_t`, :math:`u_t = q_t` (LSTM) or :math:`U_t \odot q_t` (GRU); the sum's carried input (:math:`c_{t-1}`, the
    GRU's :math:`h_{t-1}`) gets :math:`C_t \odot R_t + \rho_t`, and :math:`h_{t-1}` gets
    :math:`h_{t-1} \odot W_h^\top u_t + \sum_j S_{t,j} u_{t,j}` (for the GRU in addition). Then
    :math:`R_{x_t} = x_t \odot W_x^\top q_t + \sum_j S^x_{t,j} q_{t,j}` for all steps in one matmul.

    Attributes:
        cell: ``"lstm"`` or ``"gru"``.
        direction: 0 (reads :math:`0 \dots L-1`) or 1.
        weights: the layer-direction's weights.
        inputs: :math:`(T, B, E)` the layer's input.
        active: :math:`(T, B)` bool, True at real steps.
        h_prev: :math:`(T, B, S)` the hidden state before each step.
        to_q: :math:`Q`, 0 at padding.
        carry: :math:`C` (the LSTM's :math:`A` to :math:`c_{t-1}`, the GRU's :math:`A` to :math:`h_{t-1}` directly),
            1 at padding.
        to_u: the GRU's :math:`U` (``None`` for the LSTM).
        per_unit: :math:`V`, 0 at padding (``None`` when :math:`\rho = 0`).
        rho_q: :math:`\rho^q`, 0 at padding (``None`` when :math:`\rho = 0`).
        share: :math:`S` (``None`` when :math:`\delta = 0`).
        share_x: :math:`S^x` (``None`` when :math:`\delta = 0`).
        projection: for ``nn.LSTM(proj_size > 0)``, :func:`_projection_ratios` (``(None, None, None)`` without).
    """

    cell: str
    direction: int
    weights: CellWeights
    inputs: Tensor
    active: Tensor
    h_prev: Tensor
    to_q: Tensor
    carry: Tensor
    to_u: Optional[Tensor]
    per_unit: Optional[Tensor]
    rho_q: Optional[Tensor]
    share: Optional[Tensor]
    share_x: Optional[Tensor]
    projection: Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]

    def reading_order(self) -> range:
        """The time indices in the order this direction processes them (padding steps included)."""
        steps = self.inputs.shape[0]
        return range(steps) if self.direction == 0 else range(steps - 1, -1, -1)


def lstm_walk(trace: DirectionTrace, rule: EpsilonRule) -> DirectionWalk:
    r"""The ratios of :func:`lstm_direction_relevance` for all steps of one LSTM direction:
    :math:`C = A` and :math:`Q = B / (z^g + \epsilon\,\mathrm{sign}(z^g))` of the cell sum
    :math:`c_t = f_t \odot c_{t-1} + i_t \odot g_t` (:func:`_cell_sum_ratios`, :func:`_epsilon_ratios`),
    :math:`S = S^x = \delta\,(b_g + \epsilon\,\mathrm{sign}(z^g))/(E + H)`."""
    assert trace.c is not None and trace.c_prev is not None
    weights = trace.weights
    hidden = weights.hidden_size
    gates = trace.gates
    to_c_prev, to_g, per_unit = _cell_sum_ratios(trace.c, gates["f"] * trace.c_prev, gates["i"] * gates["g"], rule)
    z_g = trace.pre if trace.pre_x is None else trace.pre[..., 2 * hidden : 3 * hidden]  # a lean trace's is z^g
    inv_g, share_g = _epsilon_ratios(z_g, weights.gate_bias("g"), weights.input_size + weights.state_size, rule)
    to_q = _at_real_steps(trace.active, to_g.mul_(inv_g))  # q_t = 0 at padding: padded steps send nothing to x_t
    rho_q = None if per_unit is None else _at_real_steps(trace.active, inv_g)
    to_c_prev, per_unit = _passing_at_padding(trace.active, to_c_prev, per_unit)
    return DirectionWalk("lstm", trace.direction, weights, trace.inputs, trace.active, trace.h_prev, to_q, to_c_prev,
                         None, per_unit, rho_q, share_g, share_g, _projection_ratios(trace, rule))


def gru_walk(trace: DirectionTrace, rule: EpsilonRule) -> DirectionWalk:
    r"""The ratios of :func:`gru_direction_relevance` for all steps of one GRU direction: :math:`C = A` and
    :math:`Q = B / (a + \epsilon\,\mathrm{sign}(a))` of :math:`h_t = z_t \odot h_{t-1} + (1 - z_t) \odot n_t`
    (:func:`_cell_sum_ratios`), :math:`U = (p + \delta\,(b_{in} + \epsilon\,\mathrm{sign}(a))/(E + 1)) /
    (m + \epsilon\,\mathrm{sign}(m))`, :math:`S = \delta\,(b_{hn} + \epsilon\,\mathrm{sign}(m))/H`,
    :math:`S^x = \delta\,(b_{in} + \epsilon\,\mathrm{sign}(a))/(E + 1)`."""
    assert trace.pre_h is not None
    _, _, b_x, b_h = trace.weights.gate("n")
    hidden = trace.weights.hidden_size
    gates = trace.gates
    kept = gates["z"] * trace.h_prev
    direct, new, per_unit = _cell_sum_ratios(trace.h, kept, torch.sub(1, gates["z"]).mul_(gates["n"]), rule)
    m = trace.pre_h if trace.pre_x is None else trace.pre_h[..., 2 * hidden :]  # a lean trace's is the n block
    p = gates["r"] * m
    inv_a, share_a = _epsilon_ratios(trace.pre[..., 2 * hidden :] + p, b_x, trace.weights.input_size + 1, rule,
                                     overwrite=True)
    inv_m, share_m = _epsilon_ratios(m, b_h, hidden, rule)
    inv_a = _at_real_steps(trace.active, inv_a)  # q_t = 0 at padding
    to_u = (p if share_a is None else p + share_a).mul_(inv_m)
    rho_q = None if per_unit is None else inv_a
    direct, per_unit = _passing_at_padding(trace.active, direct, per_unit)
    return DirectionWalk("gru", trace.direction, trace.weights, trace.inputs, trace.active, trace.h_prev,
                         new.mul_(inv_a), direct, to_u, per_unit, rho_q, share_m, share_a, (None, None, None))


def direction_walk(trace: DirectionTrace, rule: EpsilonRule) -> DirectionWalk:
    """:func:`lstm_walk` or :func:`gru_walk`, by the trace's cell."""
    return lstm_walk(trace, rule) if trace.cell == "lstm" else gru_walk(trace, rule)


def _output_relevance(walk: DirectionWalk, r_out: Tensor) -> Optional[Tensor]:
    """:math:`(T, B, S)` the direction's output relevance, 0 at padding (``None`` when it is 0 everywhere: a head on
    :math:`h_n` alone)."""
    masked = _at_real_steps(walk.active, r_out)
    return masked if bool(masked.any()) else None


def _input_relevance(walk: DirectionWalk, q_all: Tensor, w_x: Tensor) -> Tensor:
    r""":math:`R_{x_t} = x_t \odot W_x^\top q_t + \sum_j S^x_{t,j} q_{t,j}` for all steps in one matmul (``q_all``
    :math:`(T, B, H)` in time order)."""
    r_x = walk.inputs * (q_all @ w_x)
    share_x = _row_dot(walk.share_x, q_all)
    return r_x if share_x is None else r_x + share_x


def _time_ordered(walk: DirectionWalk, q_steps: List[Tensor]) -> Tensor:
    """The :math:`q_t` a walk collected (in its order) stacked in time order (the walk's own ``to_q`` for no steps)."""
    if not q_steps:
        return walk.to_q
    return torch.stack(q_steps[::-1] if walk.direction == 0 else q_steps)


def _walk_ordered(walks: Sequence[DirectionWalk], values: Sequence[Optional[Tensor]]) -> Optional[Tensor]:
    r""":math:`(T, D, \ldots)`: row :math:`k` holds step :math:`k` of each direction's walk (the forward direction
    walks its steps backwards; one direction alone is not reordered here, its walk reads the rows backwards); a
    direction's ``None`` is 0; ``None`` when every value is."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    parts = [torch.zeros_like(present[0]) if v is None else v for v in values]
    if len(parts) == 1:
        return parts[0].unsqueeze(1)
    return torch.stack([p.flip(0) if w.direction == 0 else p for w, p in zip(walks, parts)], dim=1)


def _start_index(walk: DirectionWalk) -> Optional[Tensor]:
    r"""Where a column's first real step in reading order (the walk's last one that is not padding) lies in the walk
    order, when it is not the walk's last step for every column (the backward direction of a batch with padding):
    :math:`L_b - 1` (0 for an empty column); else ``None``."""
    if walk.direction == 0 or bool(walk.active.all()):
        return None
    return (walk.active.sum(0) - 1).clamp(min=0)


def _step_quotient(
    to_q: Tensor, r: Tensor, per_unit: Optional[Tensor], rho_q: Optional[Tensor]
) -> Tuple[Tensor, Optional[Tensor]]:
    r"""One step's :math:`q_t = Q_t \odot r_t + \rho^q_t \rho_t` and :math:`\rho_t` (``None`` when it is 0)."""
    q = to_q * r
    rho = _row_dot(per_unit, r)
    if rho is not None and rho_q is not None:
        q = torch.addcmul(q, rho_q, rho)
    return q, rho


def _previous_hidden(following: Optional[Tensor], h_prev: Tensor, mapped: Tensor, share: Optional[Tensor]) -> Tensor:
    r""":math:`R^{out}_{t-1} + h_{t-1} \odot M_t + s_t`: what a step hands to :math:`h_{t-1}` from the mapped quotient
    :math:`M_t` (:math:`W_h^\top q_t`; the GRU's :math:`W_h^\top u_t`) and the bias share :math:`s_t` (``None`` when
    :math:`\delta = 0`), with the output relevance of the step walked next (``following``, ``None`` when it is 0)
    added in the same fused op."""
    r_h_prev = h_prev * mapped if following is None else torch.addcmul(following, h_prev, mapped)
    return r_h_prev if share is None else r_h_prev + share


def walk_lstm(
    walks: Sequence[DirectionWalk], r_out: Tensor, r_h: Tensor, r_c: Tensor
) -> Tuple[Tensor, Tensor, Tensor]:
    r"""LRP backwards through the directions of one LSTM layer at once, from their ratios (:func:`lstm_walk`; the
    steps in :func:`lstm_direction_relevance`).

    The directions' walks are independent, so step :math:`k` of each runs in the same ops (the per-direction
    matrices in one batched product). Without a projection each walk carries one sum,
    :math:`r_t = R_{c_t} = R_c + R_{h_t}` (the relevance of :math:`c_t` and of :math:`h_t` always meet there), and the
    output relevance of the step it walks next is added in the same fused op: per step :math:`q_t = Q_t \odot r_t`,
    :math:`R_{h_{t-1}} = R^{out}_{t-1} + h_{t-1} \odot W_h^\top q_t`, :math:`r_{t-1} = R_{h_{t-1}} + C_t \odot r_t`.
    A padded step has :math:`Q = 0, C = 1` and hands :math:`r` on unchanged; the initial states' shares are read at
    each column's first real step.

    Args:
        walks: the layer's directions (one or two).
        r_out: :math:`(T, B, D S)` relevance of the layer's outputs (ignored at padding).
        r_h: :math:`(D, B, S)` relevance of the final hidden states.
        r_c: :math:`(D, B, H)` relevance of the final cell states.

    Returns:
        ``(R_x (T, B, E) summed over the directions, R_h0 (D, B, S), R_c0 (D, B, H))``.
    """
    size = walks[0].weights.state_size
    outputs = [r_out[..., d * size : (d + 1) * size] for d in range(len(walks))]
    steps = walks[0].inputs.shape[0]
    if steps == 0 or any(walk.projection[0] is not None for walk in walks):
        parts = [_walk_projected_lstm(walk, outputs[d], r_h[d], r_c[d]) for d, walk in enumerate(walks)]
        return _summed(part[0] for part in parts), torch.stack([p[1] for p in parts]), torch.stack([p[2] for p in parts])
    carry, to_q, h_prev, share, per_unit, rho_q = (
        _walk_ordered(walks, [getattr(walk, name) for walk in walks])
        for name in ("carry", "to_q", "h_prev", "share", "per_unit", "rho_q")
    )
    assert carry is not None and to_q is not None and h_prev is not None
    outs = _per_step(_walk_ordered(walks, [_output_relevance(w, o) for w, o in zip(walks, outputs)]), steps)
    shares, rhos, rho_qs = (_per_step(t, steps) for t in (share, per_unit, rho_q))
    carries, to_qs, h_prevs = carry.unbind(0), to_q.unbind(0), h_prev.unbind(0)
    w_h = torch.stack([walk.weights.gate("g")[1] for walk in walks])
    starts = [_start_index(walk) for walk in walks]
    backwards = len(walks) == 1 and walks[0].direction == 0  # one forward direction: its rows read backwards
    order = list(reversed(range(steps))) if backwards else list(range(steps))
    first_out = outs[order[0]]
    r = r_c + (r_h if first_out is None else r_h + first_out)
    entering: List[Tensor] = []
    to_h: List[Tensor] = []
    if share is None and per_unit is None and all(start is None for start in starts):
        q_steps, r_h_prev, last_in = _plain_lstm_steps(order, outs, to_qs, h_prevs, carries, w_h, r, r_h)
    else:
        q_steps = []
        r_h_prev, last_in = r_h, r
        for k, row in enumerate(order):
            q, rho_k = _step_quotient(to_qs[row], r, rhos[row], rho_qs[row])
            following = outs[order[k + 1]] if k + 1 < steps else None
            r_h_prev = _previous_hidden(following, h_prevs[row], torch.bmm(q, w_h), _row_dot(shares[row], q))
            if any(start is not None for start in starts):
                entering.append(r)
                to_h.append(r_h_prev)
            q_steps.append(q)
            last_in, r = r, torch.addcmul(r_h_prev, carries[row], r)
            if rho_k is not None:
                r = r + rho_k
    r_h0, r_c0 = r_h_prev, _cell_share(carries[order[-1]], rhos[order[-1]], last_in)
    walked = (torch.stack(entering), torch.stack(to_h)) if entering else None
    for d, start in enumerate(starts):
        if start is not None and walked is not None:  # the column's first real step is not the walk's last one
            columns = torch.arange(start.shape[0], device=start.device)
            at_start = walked[0][start, d, columns]
            r_h0[d] = walked[1][start, d, columns]
            r_c0[d] = _cell_share(carry[start, d, columns], None if per_unit is None else per_unit[start, d, columns],
                                  at_start)
    empty = ~walks[0].active.any(0).unsqueeze(-1)
    if bool(empty.any()):  # an empty column keeps the final states' relevance
        r_h0, r_c0 = torch.where(empty, r_h, r_h0), torch.where(empty, r_c, r_c0)
    q_all = torch.stack(q_steps[::-1] if backwards else q_steps)  # in row order
    r_x = _summed(
        _input_relevance(walk, q_all[:, d].flip(0) if len(walks) > 1 and walk.direction == 0 else q_all[:, d],
                         walk.weights.gate("g")[0])
        for d, walk in enumerate(walks)
    )
    return r_x, r_h0, r_c0


def _plain_lstm_steps(
    order: Sequence[int], outs: Sequence[Optional[Tensor]], to_qs: Sequence[Tensor], h_prevs: Sequence[Tensor],
    carries: Sequence[Tensor], w_h: Tensor, r: Tensor, r_h: Tensor,
) -> Tuple[List[Tensor], Tensor, Tensor]:
    r""":func:`walk_lstm`'s steps when there is no stabilizer or bias share and every column starts at the walk's
    last step: :math:`q_t = Q_t \odot r_t`, :math:`R_{h_{t-1}} = R^{out}_{t-1} + h_{t-1} \odot W_h^\top q_t`,
    :math:`r_{t-1} = R_{h_{t-1}} + C_t \odot r_t`, four ops a step. Returns the :math:`q_t` (in walk order), the last
    :math:`R_{h_{t-1}}` and the last step's :math:`r_t`."""
    followings = [outs[row] for row in order[1:]] + [None]
    q_steps: List[Tensor] = []
    r_h_prev, last_in = r_h, r
    for row, following in zip(order, followings):
        q = to_qs[row] * r
        mapped = torch.bmm(q, w_h)
        r_h_prev = mapped.mul_(h_prevs[row]) if following is None else torch.addcmul(following, h_prevs[row], mapped)
        q_steps.append(q)
        last_in, r = r, torch.addcmul(r_h_prev, carries[row], r)
    return q_steps, r_h_prev, last_in


def _cell_share(carry: Tensor, per_unit: Optional[Tensor], entering: Tensor) -> Tensor:
    r"""What a step hands to :math:`c_{t-1}`: :math:`C_t \odot r_t + \rho_t`."""
    share = carry * entering
    rho = _row_dot(per_unit, entering)
    return share if rho is None else share + rho


def _summed(parts: Iterable[Tensor]) -> Tensor:
    """The sum of the (one or more) tensors of ``parts``."""
    total: Optional[Tensor] = None
    for part in parts:
        total = part if total is None else total + part
    assert total is not None
    return total


def _walk_projected_lstm(
    walk: DirectionWalk, r_out: Tensor, r_h: Tensor, r_c: Tensor
) -> Tuple[Tensor, Tensor, Tensor]:
    r""":func:`walk_lstm` for ``nn.LSTM(proj_size > 0)`` (and no steps at all): :math:`R_{h_t}` passes the projection's
    rule (:func:`_projection_ratios`) before it meets :math:`R_{c_t}`, so the walk carries the two apart."""
    weights = walk.weights
    w_x, w_h, _, _ = weights.gate("g")
    steps = walk.inputs.shape[0]
    outs = _per_step(_output_relevance(walk, r_out), steps)
    all_active: List[bool] = walk.active.all(dim=1).tolist()
    actives = walk.active.unsqueeze(-1).unbind(0)
    shares, rhos, rho_qs = (_per_step(t, steps) for t in (walk.share, walk.per_unit, walk.rho_q))
    proj_m, proj_inv, proj_share = (_per_step(t, steps) for t in walk.projection)
    to_c_prevs, to_qs, h_prevs = walk.carry.unbind(0), walk.to_q.unbind(0), walk.h_prev.unbind(0)
    q_steps: List[Tensor] = []
    for t in reversed(walk.reading_order()):
        out_t = outs[t]
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
            r_h, r_c = torch.where(actives[t], r_h_prev, r_h), torch.where(actives[t], r_c_prev, r_c)
    return _input_relevance(walk, _time_ordered(walk, q_steps), w_x), r_h, r_c


def walk_gru(walk: DirectionWalk, r_out: Tensor, r_h: Tensor) -> Tuple[Tensor, Tensor]:
    r"""LRP backwards through one GRU direction from its ratios (:func:`gru_walk`; the steps in
    :func:`gru_direction_relevance`). Returns ``(R_x (T, B, E), R_h0 (B, H))``.

    As for the LSTM the output relevance of the step walked next is added in the step's fused op, and a padded step
    (:math:`Q = 0, C = 1`) hands the relevance on unchanged."""
    assert walk.to_u is not None
    w_x, w_h, _, _ = walk.weights.gate("n")
    steps = walk.inputs.shape[0]
    outs = _per_step(_output_relevance(walk, r_out), steps)
    shares, rhos, rho_qs = (_per_step(t, steps) for t in (walk.share, walk.per_unit, walk.rho_q))
    directs, to_qs, to_us = walk.carry.unbind(0), walk.to_q.unbind(0), walk.to_u.unbind(0)
    h_prevs = walk.h_prev.unbind(0)
    order = list(reversed(walk.reading_order()))
    first_out = outs[order[0]] if order else None
    r = r_h if first_out is None else r_h + first_out
    q_steps: List[Tensor] = []
    for k, t in enumerate(order):
        q, rho_t = _step_quotient(to_qs[t], r, rhos[t], rho_qs[t])
        u = to_us[t] * q
        following = outs[order[k + 1]] if k + 1 < steps else None
        r_h_prev = _previous_hidden(following, h_prevs[t], u @ w_h, _row_dot(shares[t], u))
        q_steps.append(q)
        r = torch.addcmul(r_h_prev, directs[t], r)
        if rho_t is not None:
            r = r + rho_t
    return _input_relevance(walk, _time_ordered(walk, q_steps), w_x), r


def lstm_direction_relevance(
    trace: DirectionTrace, r_out: Tensor, r_h: Tensor, r_c: Tensor, rule: EpsilonRule
) -> Tuple[Tensor, Tensor, Tensor]:
    r"""LRP backwards through one direction of one LSTM layer (equations in the module docstring).

    Every ratio the walk needs is computed for all steps at once before it (:func:`lstm_walk`), so each step is a
    few element-wise ops and one matmul:

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
    r_x, r_h0, r_c0 = walk_lstm([lstm_walk(trace, rule)], r_out, r_h.unsqueeze(0), r_c.unsqueeze(0))
    return r_x, r_h0[0], r_c0[0]


def gru_direction_relevance(
    trace: DirectionTrace, r_out: Tensor, r_h: Tensor, rule: EpsilonRule
) -> Tuple[Tensor, Tensor]:
    r"""LRP backwards through one direction of one GRU layer (equations in the module docstring).

    As for the LSTM every ratio is computed for all steps first (:func:`gru_walk`); each step is then

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
    return walk_gru(gru_walk(trace, rule), r_out, r_h)


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
    layers = [[direction_walk(direction, rule) for direction in layer] for layer in trace.layers]
    return walks_relevance(trace.spec, layers, r_out, r_hn, r_cn)


JOINT_WALK_ENTRIES = 32768
"""A layer's two directions walk together (:func:`walk_lstm` on both) when one direction's :math:`(T, B, S)` tensors
have at most this many entries: there the per-step ops dominate and walking together halves them; beyond it the
copies that put the directions side by side cost more than they save (measured on a bi-LSTM of 60 units: 1.3-1.7
times faster together at batch 1 to 8, equal at 16 sentences of 40 steps, 1.6 times slower at 128 of 40)."""


def _walk_together(walks: Sequence[DirectionWalk]) -> bool:
    """Whether a layer's directions walk together (:data:`JOINT_WALK_ENTRIES`)."""
    steps, batch = walks[0].inputs.shape[:2]
    return len(walks) == 1 or steps * batch * walks[0].weights.state_size <= JOINT_WALK_ENTRIES


def walks_relevance(
    spec: RecurrentSpec, layers: Sequence[Sequence[DirectionWalk]], r_out: Tensor, r_hn: Tensor,
    r_cn: Optional[Tensor],
) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """:func:`recurrent_relevance` from each layer's and direction's :class:`DirectionWalk`."""
    directions, hidden = spec.num_directions, spec.state_size
    r_h0 = torch.zeros_like(r_hn)
    r_c0 = None if r_cn is None else torch.zeros_like(r_cn)
    relevance = r_out
    for k in reversed(range(spec.num_layers)):
        rows = slice(k * directions, (k + 1) * directions)
        if layers[k][0].cell == "lstm" and _walk_together(layers[k]):
            assert r_cn is not None and r_c0 is not None
            relevance, r_h0[rows], r_c0[rows] = walk_lstm(layers[k], relevance, r_hn[rows], r_cn[rows])
            continue
        r_in = torch.zeros_like(layers[k][0].inputs)
        for d, walk in enumerate(layers[k]):
            index = k * directions + d
            r_dir = relevance[..., d * hidden : (d + 1) * hidden]
            if walk.cell == "lstm":
                assert r_cn is not None and r_c0 is not None
                one = slice(index, index + 1)
                r_x, r_h0[one], r_c0[one] = walk_lstm([walk], r_dir, r_hn[one], r_cn[one])
            else:
                r_x, r_h0[index] = walk_gru(walk, r_dir, r_hn[index])
            r_in = r_in + r_x
        relevance = r_in
    return relevance, r_h0, r_c0


class RecurrentLRP(torch.autograd.Function):
    """Forward: the module's values and one direction's trace at a time, by the fused kernels
    (:func:`~captum_text_ext.decomposition.kernel_trace.kernel_direction_traces`) or, for a large batch on the CPU,
    by one loop over the steps that keeps its gates
    (:func:`~captum_text_ext.decomposition.stepped_trace.stepped_direction_traces`), each trace turned into the ratios
    its backward walk reads (:func:`direction_walk`) and dropped; backward: :func:`walks_relevance`.

    ``RecurrentLRP.apply(x, h0, c0, spec, lengths, rule)``.
    """

    @staticmethod
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Tuple[Tensor, ...]:
        """The op's value (the arguments are the class's); the rule is in ``backward``."""
        x, h0, c0, spec, lengths, rule = args
        projected = any(w.weight_hr is not None for w in spec.weights)  # the projection's rule reads o_t
        layers: List[List[DirectionWalk]] = [[] for _ in range(spec.num_layers)]
        h_n: List[Tensor] = []
        c_n: List[Tensor] = []
        outputs = x
        traces = (
            stepped_direction_traces(spec, x, lengths, h0, c0) if uses_stepped_loop(spec, x)
            else kernel_direction_traces(spec, x, lengths, h0, c0, lean=not projected)
        )
        for trace, outputs in traces:
            layers[trace.layer].append(direction_walk(trace, rule))
            h_n.append(trace.h_n)
            if trace.c_n is not None:
                c_n.append(trace.c_n)
            del trace  # only its ratios are kept: the trace's other tensors are freed before the next direction's
        ctx.spec, ctx.layers = spec, layers
        # The returned tensors get this node as their grad_fn, so they are new aliases: were they tensors the walks
        # keep (a layer's outputs are the next layer's inputs), node -> context -> walk -> output -> node would be a
        # cycle that no garbage collection frees, and every call would leak its ratios.
        states = (torch.stack(h_n),) if not c_n else (torch.stack(h_n), torch.stack(c_n))
        return tuple(t.detach() for t in (outputs, *states))

    @staticmethod
    def backward(ctx: Any, *relevance: Any) -> Tuple[Optional[Tensor], ...]:
        r_out, r_hn = relevance[0], relevance[1]
        r_cn = relevance[2] if len(relevance) > 2 else None
        r_x, r_h0, r_c0 = walks_relevance(ctx.spec, ctx.layers, r_out, r_hn, r_cn)
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

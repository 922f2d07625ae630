r"""Contextual decomposition through one direction of one LSTM or GRU layer: the β-only walk over its steps
(the rules are in :mod:`~captum_text_ext.decomposition.cd`).

**Only β is carried.** The rules split every value exactly, so the other part of every state is the actual value
minus β: :math:`\gamma_t = h_t - \beta_t` (and :math:`\gamma^c_t = c_t - \beta^c_t`), with :math:`h_t, c_t` from the
:class:`~captum_text_ext.decomposition.cells.DirectionTrace` of the actual run. Likewise the other part of a
pre-activation is :math:`Q = z_t - b - P` for the actual pre-activation :math:`z_t`, so that :math:`a(b + P + Q)` is
the actual gate and the bias-first linearization needs two evaluations of :math:`a` per step and phrase:

.. math::
    D = a(b + P) - a(z_t - P) + \big[a(z_t) - a(b)\big] = 2 L(P),

the bracket computed once for all phrases (:math:`b + Q = (z_t + b) - (b + P)`). Per step and phrase one matrix
product remains, :math:`W_h \beta_{t-1}`; the input term :math:`W_x \beta_{x,t}` is the actual run's :math:`W_x x_t`
(computed once) wherever the phrase holds the whole input (:class:`_PhraseInput`). Every tanh is computed as
:math:`\tanh(x) = 2\sigma(2x) - 1` (``torch.tanh`` is several times slower than ``torch.sigmoid`` on CPU builds):
the tanh blocks' rows of the weights and biases are doubled once.

**Phrases join late.** A phrase joins the recurrence at the first step (in reading order) where its β can be nonzero:
its first token, its first bias-only product, or step 0 for a nonzero initial state. Before that β is exactly 0 and
no work is done for it (:class:`_Walk`): for single-token phrases this halves the work.

**Bias terms folded in.** The constants of each update are added to :math:`D` with the bracket, so that the block
gives the factor the update multiplies by; the updates are then two fused multiply-adds.

**LSTM.** :math:`2\beta^c` is carried; with :math:`E_i = D_i + 2L(i_b)`, :math:`F = D_f + 2L(f_b)` and
:math:`G = D_g + L(g_b)` (the g block's :math:`D_g = L(g_P)`: its rows are doubled),

.. math::
    2\beta^c_t = \tfrac12 F \odot 2\beta^c_{t-1} + E_i \odot G - 2L(i_b) L(g_b) \;[+\, 2 L(i_b) L(g_b)], \qquad
    \beta_t = o_t \odot \big[\sigma(2\beta^c_t) - \sigma(2c_t - 2\beta^c_t)\big] + o_t \odot \tfrac12\tanh(c_t),

which is :math:`\big(\tfrac12 D_f + L(f_b)\big) 2\beta^c_{t-1} + D_i \big(D_g + L(g_b)\big) + 2 L(i_b) D_g`, the rule
of :mod:`~captum_text_ext.decomposition.cd` doubled, written out.

**GRU.** With :math:`E_r = D_r + 2L(r_b)` and :math:`E_z = D_z + 2L(z_b)` of the reset and update gates, the
candidate's phrase part regroups as :math:`n_b + n_P = b_{in} + W_{in}\beta_{x,t} + \tfrac12 E_r \odot (m_P +
b_{hn})`, its other part is :math:`n_b + n_Q = a_t - n_P` for the actual pre-activation
:math:`a_t = W_{in} x_t + b_{in} + r_t \odot m_t`, and with :math:`Y = L(n_P) + L(z_b) L(n_b)`,

.. math::
    \begin{aligned}
    Y &= \sigma\big(2(n_b + n_P)\big) - \sigma\big(2(a_t + n_b) - 2(n_b + n_P)\big)
        + \tfrac12\big(n_t - \tanh(n_b)\big) + L(z_b) L(n_b), \\
    \beta_t &= Y + \tfrac12 E_z \odot \big(\beta_{t-1} - Y - L(u_b) L(n_b)\big) \;[+\, L(u_b) \odot L(n_b)],
    \end{aligned}

which is :math:`L(z_b) \beta_{t-1} + L(u_b) L(n_P) + L(z_P) \big(\beta_{t-1} - L(n_P) - L(n_b)\big)`, the rule of
:mod:`~captum_text_ext.decomposition.cd` with :math:`L(u_P) = -L(z_P)` and :math:`L(u_b) + L(z_b) = 1` regrouped.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import torch
from torch import Tensor

from captum_text_ext.decomposition.cells import DirectionTrace

__all__ = ["gru_direction_cd", "lstm_direction_cd"]


def _bias(weights: Any, rows: slice, which: str) -> Tensor:
    bias: Optional[Tensor] = getattr(weights, which)
    if bias is None:
        zeros: Tensor = weights.weight_hh.new_zeros(rows.stop - rows.start)
        return zeros
    return bias[rows]


def _doubled_from(trace: DirectionTrace, start: int, stop: int) -> Tensor:
    """The factors 1 for the gate rows ``[0, start)`` and 2 for ``[start, stop)`` (the tanh block:
    :math:`\\tanh(x) = 2\\sigma(2x) - 1`)."""
    scale = torch.ones(stop, dtype=trace.inputs.dtype, device=trace.inputs.device)
    scale[start:] = 2
    return scale


class _PhraseInput:
    r"""The phrase part :math:`W_x \beta_{x,t}` of a recurrent layer's input term, without recomputing what the actual
    forward pass already has.

    A row :math:`(p, t, b)` of the input's β is either 0 (the token is not in the phrase: the term is 0), the whole
    input (γ is 0 there: the term is :math:`W_x x_t` of the actual run, shared by all phrases), or split between both
    parts (only then is :math:`W_x \beta_{x,t}` computed for it).

    Args:
        inputs: :math:`(T, B, E)` the layer's actual input.
        projected: :math:`(T, B, G)` :math:`W_x x_t` of the actual run.
        beta_x, gamma_x: :math:`(P, T, B, E)` the input's parts (``None`` with ``mask``).
        w_x: :math:`(E, G)`.
        mask: :math:`(P, T, B)` bool: the input's β is the input where True, its γ the rest.
    """

    def __init__(
        self, inputs: Tensor, projected: Tensor, beta_x: Optional[Tensor], gamma_x: Optional[Tensor], w_x: Tensor,
        mask: Optional[Tensor] = None,
    ) -> None:
        self.projected = projected  # (T, B, G): W_x x_t of the actual run
        self.split: Optional[Tensor] = None
        if mask is not None:  # β is the input where the mask is True: whole rows or zero rows
            in_beta = mask & (inputs.abs().amax(-1) > 0)
            self.whole, self.nonzero = in_beta.unsqueeze(-1), in_beta
            return
        assert beta_x is not None and gamma_x is not None
        in_beta = beta_x.abs().amax(-1) > 0
        in_gamma = gamma_x.abs().amax(-1) > 0
        self.whole = (in_beta & ~in_gamma).unsqueeze(-1)  # (P, T, B, 1)
        self.nonzero = in_beta  # (P, T, B)
        split = in_beta & in_gamma
        if bool(split.any()):
            self.split = beta_x.new_zeros(*beta_x.shape[:3], w_x.shape[1])
            self.split[split] = beta_x[split] @ w_x

    def reorder(self, order: Tensor) -> None:
        """Put the phrases in ``order``."""
        self.whole, self.nonzero = self.whole[order], self.nonzero[order]
        if self.split is not None:
            self.split = self.split[order]

    def add_to(self, out: Tensor, t: int, phrases: Tensor, columns: slice = slice(None)) -> None:
        """Add the term's ``columns`` at step ``t`` of the given phrases (indices into ``out``'s first dimension) to
        ``out``."""
        part = torch.where(self.whole[phrases, t], self.projected[t, :, columns], 0.0)
        if self.split is not None:
            part = part + self.split[phrases, t, :, columns]
        out.index_add_(0, phrases, part)


def _nonzero_rows(state: Tensor) -> Tensor:
    """:math:`(P, B)` bool: the rows of a :math:`(P, B, S)` state that are not 0 (one reduction when none is)."""
    if not bool(state.any()):
        return state.new_zeros(state.shape[:-1], dtype=torch.bool)
    return (state != 0).any(-1)


def _phrase_order(started: Tensor) -> Tuple[Tensor, List[int]]:
    """Phrases sorted by the step at which their β may first be nonzero, and how many have started by each step.

    Args:
        started: :math:`(P, T, B)` bool, in reading order and cumulative along it.
    """
    steps = started.shape[1]
    any_column = started.any(-1)  # (P, T)
    first = torch.where(any_column.any(-1), any_column.float().argmax(-1), steps)
    permutation = torch.argsort(first, stable=True)
    counts = torch.bincount(first, minlength=steps + 1)[:steps].cumsum(0).tolist()
    return permutation, counts


class _Walk:
    """The schedule of one direction's β-only walk: which phrases take part in each step, and where their new β goes.

    The phrases are put in the order in which they join (``permutation``); at the step ``r`` (in reading order) the
    first ``counts[r]`` take part. The outputs' β is written time first, :math:`(T, P, B, S)`, so that each step's
    slice is contiguous; it is 0 at padding and for the phrases that have not joined.

    Args:
        trace: the direction's actual run.
        inputs: the input term (put in the walk's order here).
        initial: :math:`(P, B)` bool: the phrase's initial state is nonzero in the column.
        to_beta: :math:`(P, T, B)` bool: where the bias-only product goes to β.
    """

    def __init__(self, trace: DirectionTrace, inputs: _PhraseInput, initial: Tensor, to_beta: Tensor) -> None:
        device = trace.inputs.device
        self.order = list(trace.reading_order())
        reading = torch.tensor(self.order, device=device, dtype=torch.long)
        active = trace.active
        sources = (inputs.nonzero | to_beta) & active.unsqueeze(0)
        started = (sources[:, reading].cumsum(1) > 0) | initial.unsqueeze(1)  # in reading order
        self.permutation, self.counts = _phrase_order(started)
        self.identity = bool((self.permutation == torch.arange(len(self.permutation), device=device)).all())
        inputs.reorder(self.permutation)
        started, self.to_beta = started[self.permutation], to_beta[self.permutation]
        # per step (in reading order): the phrases whose input or bias-only product touches it, and whether every
        # joined phrase updates in every column (no padding, no phrase that has not started in some column)
        touched = (inputs.nonzero | self.to_beta)[:, reading].any(-1)  # (P, T) in reading order
        self.keep = (started & active[reading].unsqueeze(0)).unsqueeze(-1)  # (P, T, B, 1) in reading order
        phrases = len(self.permutation)
        joined = torch.arange(phrases, device=device).unsqueeze(1) < torch.tensor(self.counts, device=device)
        touched = (touched & joined).t()  # (T, P): a phrase touched before it joins is touched only at padding
        self.rows: List[Optional[Tensor]] = [  # per step in reading order: the joined phrases it touches
            rows if rows.numel() else None
            for rows in torch.split(touched.nonzero()[:, 1], touched.sum(1).tolist())
        ]
        self.everywhere: List[bool] = (self.keep.squeeze(-1) | ~joined.unsqueeze(-1)).all(-1).all(0).tolist()
        self.padding = (~active).unsqueeze(-1)  # (T, B, 1)
        self.padded: List[bool] = self.padding.any(1).flatten().tolist()

    def ordered(self, state: Tensor) -> Tensor:
        """A :math:`(P, \\ldots)` tensor in the walk's order."""
        return state if self.identity else state[self.permutation]

    def restored(self, state: Tensor) -> Tensor:
        """A :math:`(P, \\ldots)` tensor in the caller's order."""
        return state if self.identity else state[torch.argsort(self.permutation)]

    def store(self, out: Tensor, r: int, t: int, k: int, new: Tensor, previous: Tensor) -> Tensor:
        """Record the new state of the ``k`` joined phrases at step ``t`` (the ``r``-th in reading order) in ``out``
        :math:`(T, P, B, S)` and return the state every phrase carries on, :math:`(P, B, S)`: ``new`` where the
        phrase updates, ``previous`` where it has not started in the column or the column is padding (where ``out``
        gets 0), 0 for the phrases that have not joined. Where :attr:`everywhere` holds, the caller has written
        ``new`` into ``out[t, :k]`` itself."""
        if self.everywhere[r]:
            return out[t]
        carried = torch.where(self.keep[:k, r], new, previous)
        if not self.padded[t]:
            out[t, :k] = carried
            return out[t]
        out[t, :k] = carried.masked_fill(self.padding[t], 0.0)
        return torch.cat([carried, out[t, k:]])


def lstm_direction_cd(
    trace: DirectionTrace,
    beta_x: Optional[Tensor],
    gamma_x: Optional[Tensor],
    state: Tuple[Tensor, Tensor, Tensor, Tensor],
    to_beta: Tensor,
    input_mask: Optional[Tensor] = None,
) -> Tuple[Tensor, Tuple[Tensor, Tensor, Tensor, Tensor]]:
    r"""CD forwards through one direction of one LSTM layer (equations in the module docstring).

    Args:
        trace: the direction's actual run (its gates, states and which steps are real).
        beta_x, gamma_x: :math:`(P, T, B, E)` the parts of the layer's input (``None`` with ``input_mask``).
        state: ``(β_h0, γ_h0, β_c0, γ_c0)``, each :math:`(P, B, S)` for :math:`h` and :math:`(P, B, H)` for :math:`c`.
        to_beta: :math:`(P, T, B)` bool: where the bias-only product goes to β.
        input_mask: :math:`(P, T, B)` bool: the input's β is the input where True, its γ the rest.

    Returns:
        ``(β_out, (β_hn, γ_hn, β_cn, γ_cn))``: β of the outputs :math:`(P, T, B, S)` (0 at padding; their γ is the
        actual output minus β, left to the caller, who may never need it) and the final states' parts.
    """
    assert trace.c is not None and trace.c_n is not None and trace.pre_x is not None, "a full LSTM trace (not lean)"
    w = trace.weights
    hidden, state_size = w.hidden_size, w.state_size
    project = None if w.weight_hr is None else w.weight_hr.t()  # h_t = W_hr (o_t ⊙ tanh(c_t)): linear, no bias
    gates3 = slice(0, 3 * hidden)
    scale = _doubled_from(trace, 2 * hidden, 3 * hidden)  # the g block doubled: tanh(z) = 2σ(2z) - 1
    bias = (_bias(w, gates3, "bias_ih") + _bias(w, gates3, "bias_hh")) * scale
    w_x, w_h = w.weight_ih[gates3].t() * scale, w.weight_hh[gates3].t() * scale
    beta_h0, _, beta_c0, _ = state
    phrases, steps, batch = to_beta.shape
    projected = torch.addcmul(_bias(w, gates3, "bias_ih") * -scale, trace.pre_x[..., gates3], scale)  # W_x x_t
    inputs = _PhraseInput(trace.inputs, projected, beta_x, gamma_x, w_x, input_mask)
    b_act = torch.sigmoid(bias)
    # σ(z_t) - σ(b) plus the bias terms of the cell update: E_i = D_i + 2 L(i_b), F = D_f + 2 L(f_b), G = D_g + L(g_b)
    shift = torch.mul(trace.pre[..., gates3], scale).sigmoid_().add_(b_act)
    shift[..., 2 * hidden :] -= 1
    pre_and_bias = torch.addcmul(bias, trace.pre[..., gates3], scale)  # z_t + b: b + Q = (z_t + b) - (b + P)
    double_product = 2 * b_act[:hidden] * (2 * b_act[2 * hidden :] - 1)  # 2 L(i_b) L(g_b)
    minus_double_product = -double_product
    double_c = 2 * trace.c  # (T, B, H)
    o_gate = trace.gates["o"]
    o_half_tanh_c = torch.sigmoid(double_c).sub_(0.5).mul_(o_gate)  # o_t ⊙ ½ tanh(c_t)
    walk = _Walk(trace, inputs, _nonzero_rows(beta_h0) | _nonzero_rows(beta_c0), to_beta)
    out_beta = trace.inputs.new_empty(steps, phrases, batch, state_size)
    beta_h = walk.ordered(beta_h0)
    double_beta_c = 2 * walk.ordered(beta_c0)  # 2β^c is carried: tanh(β^c) = 2σ(2β^c) - 1
    spare = double_beta_c.clone()  # the next step's 2β^c is written here, then the two swap
    for r, t in enumerate(walk.order):
        k = walk.counts[r]
        out_beta[t, k:] = 0.0  # the phrases that have not joined
        if k == 0:
            continue
        with_p = torch.addmm(bias, beta_h[:k].reshape(k * batch, state_size), w_h).view(k, batch, 3 * hidden)  # b + P
        rows = walk.rows[r]
        if rows is not None:
            inputs.add_to(with_p, t, rows)
        with_q = torch.sub(pre_and_bias[t], with_p).sigmoid_()  # σ(b + Q)
        e = with_p.sigmoid_().sub_(with_q).add_(shift[t])  # E_i, F, G
        previous = double_beta_c[:k]
        # 2β^c_t = ½ F 2β^c_{t-1} + E_i G - 2 L(i_b) L(g_b)
        new_c = torch.addcmul(minus_double_product, e[..., :hidden], e[..., 2 * hidden :], out=spare[:k])
        new_c.addcmul_(e[..., hidden : 2 * hidden], previous, value=0.5)
        if rows is not None:
            new_c.index_add_(0, rows, torch.where(walk.to_beta[rows, t].unsqueeze(-1), double_product, 0.0))
        # β_t = o_t ⊙ [σ(2β^c_t) - σ(2c_t - 2β^c_t)] + o_t ⊙ ½ tanh(c_t)
        difference = torch.sigmoid(new_c).sub_(torch.sub(double_c[t], new_c).sigmoid_())
        target = out_beta[t, :k] if walk.everywhere[r] and project is None else None
        new_h = torch.addcmul(o_half_tanh_c[t], o_gate[t], difference, out=target)
        if project is not None:
            new_h = torch.matmul(new_h, project, out=out_beta[t, :k] if walk.everywhere[r] else None)
        if not walk.everywhere[r]:
            new_c.copy_(torch.where(walk.keep[:k, r], new_c, previous))
        beta_h = walk.store(out_beta, r, t, k, new_h, beta_h[:k])
        double_beta_c, spare = spare, double_beta_c
    beta_hn, beta_c = walk.restored(beta_h).clone(), walk.restored(0.5 * double_beta_c)
    out = walk.restored(out_beta.transpose(0, 1))
    return out, (beta_hn, trace.h_n - beta_hn, beta_c, trace.c_n - beta_c)


def gru_direction_cd(
    trace: DirectionTrace,
    beta_x: Optional[Tensor],
    gamma_x: Optional[Tensor],
    state: Tuple[Tensor, Tensor],
    to_beta: Tensor,
    input_mask: Optional[Tensor] = None,
) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
    r"""CD forwards through one direction of one GRU layer (equations in the module docstring).

    Arguments and result as :func:`lstm_direction_cd`, with ``state = (β_h0, γ_h0)`` and the final state's parts
    ``(β_hn, γ_hn)``.
    """
    assert trace.pre_h is not None and trace.pre_x is not None, "a GRU trace holds both parts of the pre-activations"
    w = trace.weights
    hidden = w.hidden_size
    gates, rz, n_rows = slice(0, 3 * hidden), slice(0, 2 * hidden), slice(2 * hidden, 3 * hidden)
    scale = _doubled_from(trace, 2 * hidden, 3 * hidden)  # the n block doubled: tanh(z) = 2σ(2z) - 1
    b_x, b_h = _bias(w, gates, "bias_ih"), _bias(w, gates, "bias_hh")
    b_rz = b_x[rz] + b_h[rz]
    rz_b = torch.sigmoid(b_rz)
    r_b, z_b = rz_b[:hidden], rz_b[hidden:]
    u_b = 1 - z_b
    n_b = b_x[n_rows] + r_b * b_h[n_rows]
    n_bias = torch.tanh(n_b)
    bias_product = u_b * n_bias
    # the product's columns: b_rz + W_h β for r and z, 2 (W_hn β + b_hn) for the candidate
    bias = torch.cat([b_rz, 2 * b_h[n_rows]])
    w_x, w_h = w.weight_ih.t() * scale, w.weight_hh.t() * scale
    beta_h0, _ = state
    phrases, steps, batch = to_beta.shape
    inputs = _PhraseInput(trace.inputs, torch.addcmul(b_x * -scale, trace.pre_x, scale), beta_x, gamma_x, w_x,
                          input_mask)
    pre_rz = trace.pre_x[..., rz] + trace.pre_h[..., rz]  # the actual pre-activations of r and z
    shift_rz = torch.sigmoid(pre_rz).add_(rz_b)  # σ(z_t) - σ(b) + 2 σ(b): E_r = D_r + 2 L(r_b), E_z = D_z + 2 L(z_b)
    pre_and_bias = pre_rz + b_rz  # z_t + b, so that b + Q = (z_t + b) - (b + P)
    candidate = torch.addcmul(trace.pre_x[..., n_rows], trace.gates["r"], trace.pre_h[..., n_rows])  # a_t
    double_candidate_and_bias = 2 * (candidate + n_b)  # 2 (n_b + n_Q) = 2 (a_t + n_b) - 2 (n_b + n_P)
    shift_n = 0.5 * (trace.gates["n"] - n_bias) + z_b * n_bias  # ½ (n_t - tanh(n_b)) + L(z_b) L(n_b)
    double_input_bias = 2 * b_x[n_rows]
    walk = _Walk(trace, inputs, _nonzero_rows(beta_h0), to_beta)
    out_beta = trace.inputs.new_empty(steps, phrases, batch, hidden)
    beta_h = walk.ordered(beta_h0)
    for r, t in enumerate(walk.order):
        k = walk.counts[r]
        out_beta[t, k:] = 0.0  # the phrases that have not joined
        if k == 0:
            continue
        previous = beta_h[:k]
        with_p = torch.addmm(bias, previous.reshape(k * batch, hidden), w_h).view(k, batch, 3 * hidden)
        with_p_rz, doubled_m = with_p[..., rz], with_p[..., n_rows]  # b + P of r and z; 2 (m_P + b_hn)
        rows = walk.rows[r]
        if rows is not None:
            inputs.add_to(with_p_rz, t, rows, rz)
        with_q = torch.sub(pre_and_bias[t], with_p_rz).sigmoid_()  # σ(b + Q)
        e = with_p_rz.sigmoid_().sub_(with_q).add_(shift_rz[t])  # E_r, E_z
        # 2 (n_b + n_P) = 2 b_in + 2 W_in β_x + ½ E_r 2 (m_P + b_hn)
        phrase_n = torch.addcmul(double_input_bias, e[..., :hidden], doubled_m, value=0.5)
        if rows is not None:
            inputs.add_to(phrase_n, t, rows, n_rows)
        y = torch.sigmoid(phrase_n)  # Y = L(n_P) + L(z_b) L(n_b)
        y.sub_(torch.sub(double_candidate_and_bias[t], phrase_n, out=phrase_n).sigmoid_()).add_(shift_n[t])
        # β_t = Y + ½ E_z (β_{t-1} - Y - L(u_b) L(n_b)) [+ L(u_b) L(n_b)]
        rest = torch.sub(previous, y).sub_(bias_product)
        new = torch.addcmul(y, rest, e[..., hidden:], value=0.5, out=out_beta[t, :k] if walk.everywhere[r] else None)
        if rows is not None:
            new.index_add_(0, rows, torch.where(walk.to_beta[rows, t].unsqueeze(-1), bias_product, 0.0))
        beta_h = walk.store(out_beta, r, t, k, new, previous)
    beta_hn = walk.restored(beta_h).clone()
    out = walk.restored(out_beta.transpose(0, 1))
    return out, (beta_hn, trace.h_n - beta_hn)

r"""Contextual decomposition through LSTM and GRU layers: the forward walk over the unrolled cells of
:mod:`~captum_text_ext.decomposition.cells` with the actual gates (equations in
:mod:`~captum_text_ext.decomposition.cd`)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten

from captum_text_ext.decomposition.cd.call import plain_of, same_origin, values_of
from captum_text_ext.decomposition.cd.decomposed import CDRun, Decomposed
from captum_text_ext.decomposition.cd.routing import pad_packed, select_rows
from captum_text_ext.decomposition.cells import DirectionTrace, FusedRecurrentCall, RecurrentTrace, unroll
from captum_text_ext.decomposition.guard import RANDOM_REASON, Handler

__all__ = ["gru_direction_cd", "lstm_direction_cd", "recurrent_cd", "recurrent_rule"]


def _linearize(
    act: Callable[[Tensor], Tensor], b: Tensor, a_b: Tensor, p: Tensor, q: Tensor
) -> Tuple[Tensor, Tensor, Tensor]:
    """Bias-first linearization: ``(L(P), L(Q), a(b + P + Q))`` given ``a_b = act(b)``.

    ``b`` must have the layout of ``p`` and ``q`` (and ``a_b`` be computed from it): element-wise kernels take SIMD or
    scalar paths by position, so only then does ``P = 0`` give ``L(P) = 0`` exactly (and likewise for ``Q``).
    """
    with_p, with_q = b + p, b + q
    a_p, a_q, a_all = act(with_p), act(with_q), act(with_p + q)
    l_p = 0.5 * ((a_p - a_b) + (a_all - a_q))
    l_q = 0.5 * ((a_q - a_b) + (a_all - a_p))
    return l_p, l_q, a_all


def _tanh(x: Tensor) -> Tensor:
    """:math:`\\tanh(x) = 2\\sigma(2x) - 1` (exact; ``torch.sigmoid`` is several times faster than ``torch.tanh`` on
    CPU builds)."""
    return torch.sigmoid(x * 2).mul_(2).sub_(1)


def _bias(weights: Any, rows: slice, which: str) -> Tensor:
    bias: Optional[Tensor] = getattr(weights, which)
    if bias is None:
        zeros: Tensor = weights.weight_hh.new_zeros(rows.stop - rows.start)
        return zeros
    return bias[rows]


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

    def add_to(self, out: Tensor, t: int, phrases: Tensor) -> None:
        """Add the term at step ``t`` of the given phrases (indices into ``out``'s first dimension) to ``out``."""
        part = torch.where(self.whole[phrases, t], self.projected[t], 0.0)
        if self.split is not None:
            part = part + self.split[phrases, t]
        out.index_add_(0, phrases, part)


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


def lstm_direction_cd(
    trace: DirectionTrace,
    beta_x: Optional[Tensor],
    gamma_x: Optional[Tensor],
    state: Tuple[Tensor, Tensor, Tensor, Tensor],
    to_beta: Tensor,
    input_mask: Optional[Tensor] = None,
) -> Tuple[Tensor, Tuple[Tensor, Tensor, Tensor, Tensor]]:
    r"""CD forwards through one direction of one LSTM layer (equations in the module docstring).

    Only β is carried through the steps: since the rules split every value exactly,
    :math:`\gamma = \text{actual} - \beta` (for the cell and hidden states, and :math:`Q = z_t - b - P` for the gate
    pre-activations :math:`z_t` of the actual run), and :math:`a(b + P + Q)` is the actual gate. So per step and
    phrase one matrix product (:math:`W_h \beta_{t-1}`) and two σ evaluations of the gates remain; the input term,
    the actual gates and :math:`\tanh(c_t)` are computed once for all phrases. A phrase joins the recurrence at the
    first step where its β can be nonzero (its first token in reading order, or step 0 for a nonzero initial state):
    before that β is exactly 0 and no work is done for it. With :math:`\tanh(x) = 2\sigma(2x) - 1` every activation
    is a σ (``torch.tanh`` is several times slower on CPU), and
    :math:`\beta_t = o_t \odot [\sigma(2\beta^c_t) - \sigma(2\gamma^c_t) + \tfrac12\tanh(c_t)]`.

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
    # the g block's pre-activations doubled: tanh(z) = 2σ(2z) - 1
    dtype, device = trace.inputs.dtype, trace.inputs.device
    scale = torch.ones(3 * hidden, dtype=dtype, device=device)
    scale[2 * hidden :] = 2
    bias = (_bias(w, gates3, "bias_ih") + _bias(w, gates3, "bias_hh")) * scale
    w_x, w_h = w.weight_ih[gates3].t() * scale, w.weight_hh[gates3].t() * scale
    beta_h0, _, beta_c0, _ = state
    phrases, steps, batch = to_beta.shape
    projected = (trace.pre_x[..., gates3] - _bias(w, gates3, "bias_ih")) * scale  # W_x x_t from the actual run
    inputs = _PhraseInput(trace.inputs, projected, beta_x, gamma_x, w_x, input_mask)
    pre = trace.pre[..., gates3] * scale  # (T, B, 3H)
    b_act = torch.sigmoid(bias)
    shift = torch.sigmoid(pre) - b_act  # σ(z_t) - σ(b): the actual gates less the bias terms
    pre_and_bias = pre + bias  # z_t + b, so that b + Q = z_t - P = (z_t + b) - (b + P)
    i_b, f_b, g_b = b_act[:hidden], b_act[hidden : 2 * hidden], 2 * b_act[2 * hidden :] - 1
    double_product = 2 * i_b * g_b
    double_c = 2 * trace.c  # (T, B, H)
    half_tanh_c = torch.sigmoid(double_c) - 0.5  # ½ tanh(c_t)
    o_gate = trace.gates["o"]
    order = list(trace.reading_order())
    reading = torch.tensor(order, device=device, dtype=torch.long)
    active = trace.active
    initial = ((beta_h0 != 0).any(-1) | (beta_c0 != 0).any(-1)).unsqueeze(1)  # (P, 1, B)
    sources = (inputs.nonzero | to_beta) & active.unsqueeze(0)
    started = (sources[:, reading].cumsum(1) > 0) | initial  # in reading order
    permutation, counts = _phrase_order(started)
    inputs.reorder(permutation)
    started, to_beta = started[permutation], to_beta[permutation]
    # per step (in reading order): the phrases whose input or bias-only product touches it, and whether every
    # started phrase updates in every column (no padding, no phrase that has not started in some column)
    touched = (inputs.nonzero | to_beta)[:, reading].any(-1)  # (P, T) in reading order
    keep = started & active[reading].unsqueeze(0)  # (P, T, B) in reading order
    joined = torch.arange(phrases, device=device).unsqueeze(1) < torch.tensor(counts, device=device)  # (P, T)
    everywhere = (keep | ~joined.unsqueeze(-1)).all(-1).all(0).tolist()
    out_beta = trace.inputs.new_empty(steps, phrases, batch, state_size)  # time first: each step's slice is contiguous
    beta_h = beta_h0[permutation]
    double_beta_c = 2 * beta_c0[permutation]  # 2β^c is carried: tanh(β^c) = 2σ(2β^c) - 1
    spare = double_beta_c.clone()  # the next step's 2β^c is written here, then the two swap
    for r, t in enumerate(order):
        k = counts[r]
        out_beta[t, k:] = 0.0  # the phrases that have not started
        if k == 0:
            continue
        with_p = torch.addmm(bias, beta_h[:k].reshape(k * batch, state_size), w_h).view(k, batch, 3 * hidden)  # b + P
        rows = touched[:k, r].nonzero().squeeze(1)
        if rows.numel():
            inputs.add_to(with_p, t, rows)
        with_q = torch.sub(pre_and_bias[t], with_p).sigmoid_()  # σ(b + Q)
        # D = 2 L(P) for the i and f blocks, D = L(P) for the g block
        d = with_p.sigmoid_().sub_(with_q).add_(shift[t])
        d_i, d_f, d_g = d[..., :hidden], d[..., hidden : 2 * hidden], d[..., 2 * hidden :]
        previous = double_beta_c[:k]
        # 2β^c_t = (L(f_P) + L(f_b)) 2β^c_{t-1} + 2 L(i_P) (L(g_P) + L(g_b)) + 2 L(i_b) L(g_P)
        new_c = torch.mul(previous, f_b, out=spare[:k]).addcmul_(d_f, previous, value=0.5)
        new_c.addcmul_(d_i, torch.add(d_g, g_b)).addcmul_(d_g, i_b, value=2.0)
        product_rows = to_beta[rows, t].unsqueeze(-1)
        if bool(product_rows.any()):
            new_c.index_add_(0, rows, torch.where(product_rows, double_product, 0.0))
        # β_t = o_t ⊙ [σ(2β^c_t) - σ(2c_t - 2β^c_t) + ½ tanh(c_t)]
        new_h = torch.sigmoid(new_c).sub_(torch.sub(double_c[t], new_c).sigmoid_()).add_(half_tanh_c[t])
        new_h.mul_(o_gate[t])
        if project is not None:
            new_h = new_h @ project
        if everywhere[r]:
            out_beta[t, :k] = new_h
        else:
            kept = keep[:k, r].unsqueeze(-1)
            out_beta[t, :k] = torch.where(kept, new_h, beta_h[:k])
            new_c.copy_(torch.where(kept, new_c, previous))
        double_beta_c, spare = spare, double_beta_c
        beta_h = out_beta[t]
    out_beta, beta_c = out_beta.transpose(0, 1), 0.5 * double_beta_c
    if not bool((permutation == torch.arange(phrases, device=device)).all()):
        restore = torch.argsort(permutation)
        beta_h, beta_c, out_beta = beta_h[restore], beta_c[restore], out_beta[restore]
    beta_hn = beta_h.clone()
    if not bool(active.all()):
        out_beta = out_beta.masked_fill(~active.unsqueeze(-1), 0.0)
    return out_beta, (beta_hn, trace.h_n - beta_hn, beta_c, trace.c_n - beta_c)


def gru_direction_cd(
    trace: DirectionTrace,
    beta_x: Tensor,
    gamma_x: Tensor,
    state: Tuple[Tensor, Tensor],
    to_beta: Tensor,
) -> Tuple[Tensor, Tensor, Tuple[Tensor, Tensor]]:
    """CD forwards through one direction of one GRU layer (equations in the module docstring).

    Arguments as :func:`lstm_direction_cd`, with ``state = (β_h0, γ_h0)``.
    """
    w = trace.weights
    hidden = w.hidden_size
    b_x, b_h = _bias(w, slice(0, 3 * hidden), "bias_ih"), _bias(w, slice(0, 3 * hidden), "bias_hh")
    x_beta, x_gamma = beta_x @ w.weight_ih.t(), gamma_x @ w.weight_ih.t()
    w_h = w.weight_hh.t()
    beta_h, gamma_h = state
    lead = beta_h.shape[:-1]
    b_rz = (b_x[: 2 * hidden] + b_h[: 2 * hidden]).expand(*lead, 2 * hidden).contiguous()
    rz_b = torch.sigmoid(b_rz)
    r_b, z_b = torch.split(rz_b, hidden, -1)
    b_hn = b_h[2 * hidden :]
    n_b = (b_x[2 * hidden :] + r_b * b_hn).contiguous()
    n_bias = torch.tanh(n_b)
    u_b = 1 - z_b
    bias_product = u_b * n_bias
    out_beta = beta_x.new_zeros(beta_x.shape[:3] + (hidden,))
    out_gamma = torch.zeros_like(out_beta)
    zero = torch.zeros_like(bias_product)
    for t in trace.reading_order():
        keep = trace.active[t].unsqueeze(-1)
        h_beta, h_gamma = beta_h @ w_h, gamma_h @ w_h
        p_rz = x_beta[:, t, ..., : 2 * hidden] + h_beta[..., : 2 * hidden]
        q_rz = x_gamma[:, t, ..., : 2 * hidden] + h_gamma[..., : 2 * hidden]
        rz_p, rz_q, rz = _linearize(torch.sigmoid, b_rz, rz_b, p_rz, q_rz)
        r_p, z_p = torch.split(rz_p, hidden, -1)
        r_q, z_q = torch.split(rz_q, hidden, -1)
        z = rz[..., hidden:]
        m_p, m_q = h_beta[..., 2 * hidden :], h_gamma[..., 2 * hidden :]
        n_p = x_beta[:, t, ..., 2 * hidden :] + r_p * (m_p + b_hn) + r_b * m_p
        n_q = x_gamma[:, t, ..., 2 * hidden :] + r_q * ((m_p + m_q) + b_hn) + (r_p + r_b) * m_q
        n_phrase, n_other, n = _linearize(torch.tanh, n_b, n_bias, n_p, n_q)
        u_p, u_q = -z_p, -z_q
        new_beta = u_p * (n_phrase + n_bias) + u_b * n_phrase + (z_p + z_b) * beta_h
        new_gamma = u_q * n + (u_p + u_b) * n_other + z * gamma_h + z_q * beta_h
        phrase = to_beta[:, t].unsqueeze(-1)
        new_beta = new_beta + torch.where(phrase, bias_product, zero)
        new_gamma = new_gamma + torch.where(phrase, zero, bias_product)
        out_beta[:, t] = torch.where(keep, new_beta, zero)
        out_gamma[:, t] = torch.where(keep, new_gamma, zero)
        beta_h, gamma_h = torch.where(keep, new_beta, beta_h), torch.where(keep, new_gamma, gamma_h)
    return out_beta, out_gamma, (beta_h, gamma_h)


def _reference_masks(in_phrase: Tensor) -> Tuple[Tensor, Tensor]:
    """Phrase steps before the phrase's last one, forwards and backwards in reading order: :math:`(P, T, B)`."""
    counts = in_phrase.long()
    later = counts.flip(1).cumsum(1).flip(1) - counts
    earlier = counts.cumsum(1) - counts
    return in_phrase & (later > 0), in_phrase & (earlier > 0)


def recurrent_cd(
    trace: RecurrentTrace,
    beta_x: Optional[Tensor],
    gamma_x: Optional[Tensor],
    initial: Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]],
    to_beta: Sequence[Tensor],
    input_mask: Optional[Tensor] = None,
) -> Tuple[Tensor, Optional[Tensor], Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """CD forwards through a stacked, possibly bidirectional LSTM/GRU.

    Args:
        trace: the actual run (:func:`~captum_text_ext.decomposition.cells.unroll`).
        beta_x, gamma_x: :math:`(P, T, B, E)` the parts of the input, or ``None`` with ``input_mask``.
        initial: ``(β_h0, γ_h0, β_c0, γ_c0)``, each :math:`(P, K D, B, H)` (the cell parts ``None`` for a GRU).
        to_beta: per direction, :math:`(P, T, B)` bool: where the bias-only product goes to β.
        input_mask: :math:`(P, T, B)` bool: the input's β is the input where True, its γ the rest (instead of
            ``beta_x`` and ``gamma_x``).

    Returns:
        ``(β_out, γ_out, β_hn, γ_hn, β_cn, γ_cn)``: outputs :math:`(P, T, B, D H)`, final states
        :math:`(P, K D, B, H)`; ``γ_out`` is ``None`` for an LSTM, where it is ``trace.outputs - β_out`` (made by the
        caller when needed).
    """
    spec = trace.spec
    directions = spec.num_directions
    beta_h0, gamma_h0, beta_c0, gamma_c0 = initial
    h_beta, h_gamma, c_beta, c_gamma = [], [], [], []
    layer_beta, layer_gamma = beta_x, gamma_x
    if input_mask is not None and spec.cell == "gru":
        inside = input_mask.unsqueeze(-1).to(trace.layers[0][0].inputs.dtype)
        layer_beta, layer_gamma = trace.layers[0][0].inputs * inside, trace.layers[0][0].inputs * (1 - inside)
    for k in range(spec.num_layers):
        outs_beta: List[Tensor] = []
        outs_gamma: List[Tensor] = []
        for d in range(directions):
            index = k * directions + d
            tr = trace.layers[k][d]
            if spec.cell == "lstm":
                assert beta_c0 is not None and gamma_c0 is not None
                state = (beta_h0[:, index], gamma_h0[:, index], beta_c0[:, index], gamma_c0[:, index])
                mask = input_mask if k == 0 else None
                ob, (hb, hg, cb, cg) = lstm_direction_cd(tr, layer_beta, layer_gamma, state, to_beta[d], mask)
                c_beta.append(cb)
                c_gamma.append(cg)
            else:
                assert layer_beta is not None and layer_gamma is not None
                ob, og, (hb, hg) = gru_direction_cd(
                    tr, layer_beta, layer_gamma, (beta_h0[:, index], gamma_h0[:, index]), to_beta[d]
                )
                outs_gamma.append(og)
            h_beta.append(hb)
            h_gamma.append(hg)
            outs_beta.append(ob)
        layer_beta = outs_beta[0] if directions == 1 else torch.cat(outs_beta, -1)
        if spec.cell == "gru":
            layer_gamma = outs_gamma[0] if directions == 1 else torch.cat(outs_gamma, -1)
        elif k + 1 < spec.num_layers:  # γ = the actual output (the next layer's input, 0 at padding) - β
            layer_gamma = trace.layers[k + 1][0].inputs - layer_beta
        else:
            layer_gamma = None
    assert layer_beta is not None
    cells = (torch.stack(c_beta, 1), torch.stack(c_gamma, 1)) if c_beta else (None, None)
    return layer_beta, layer_gamma, torch.stack(h_beta, 1), torch.stack(h_gamma, 1), cells[0], cells[1]


def _parts_or_constant(obj: Any, phrases: int) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """``(β, γ, origin)`` of a decomposed tensor (bias resolved), or of a constant (all in γ)."""
    if isinstance(obj, Decomposed):
        beta, gamma = obj.resolved()
        return beta, gamma, obj.origin
    gamma = obj.unsqueeze(0).expand(phrases, *obj.shape)
    return torch.zeros_like(gamma), gamma, None


def recurrent_rule(run: CDRun, op: str) -> Handler:
    """``torch.lstm`` / ``torch.gru`` / ``torch.lstm_cell`` / ``torch.gru_cell``: :func:`recurrent_cd`."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        plain_args, plain_kwargs = values_of(args), values_of(kwargs)
        try:
            call = FusedRecurrentCall.parse(op, plain_args, plain_kwargs)
        except TypeError as err:
            raise run.refuse(func, str(err)) from err
        hx, weights = _state_and_weights(op, args, kwargs, call.packed)
        if any(isinstance(t, Decomposed) for t in weights):
            raise run.refuse(func, "the recurrent weights must be constants")
        if call.train and call.dropout > 0 and call.spec.num_layers > 1:
            raise run.refuse(func, RANDOM_REASON)
        phrases = _phrases_in(args, kwargs)
        value = func(*plain_args, **plain_kwargs)
        trace = unroll(call.spec.detached(), call.inputs, call.lengths, call.h0, call.c0)
        cell_op = op.endswith("_cell")
        x_arg = args[0] if args else kwargs["input"]
        lead = 1 if cell_op or call.packed else 2  # the dimensions of the input before its features
        lazy = x_arg.lazy_mask(lead) if isinstance(x_arg, Decomposed) else None
        if lazy is not None and lazy.dim() - 1 == lead:
            x_origin = x_arg.origin
        else:
            lazy = None
            x_beta, x_gamma, x_origin = _parts_or_constant(x_arg, phrases)
        batch_sizes: Any = None if not call.packed else plain_of(args[1])
        steps = call.inputs.shape[0]

        def time_major(part: Tensor, batched: bool) -> Tensor:
            if cell_op:
                return part.unsqueeze(1 if batched else 0)
            if call.packed:
                return pad_packed(torch._pad_packed_sequence, part, batch_sizes, False, 0.0, steps, batched)
            if call.batch_first:
                return part.transpose(1, 2) if batched else part.transpose(0, 1)
            return part

        input_mask = None if lazy is None else time_major(lazy, True)
        beta_x, gamma_x = (None, None) if lazy is not None else (time_major(x_beta, True), time_major(x_gamma, True))
        origin = None if x_origin is None else time_major(x_origin, False)
        step_origin = (
            torch.zeros(call.inputs.shape[:2], dtype=torch.float64, device=call.inputs.device)
            if origin is None
            else same_origin(origin, [-1], keepdim=False)
        )
        initial = _initial_parts(hx, op, phrases)
        to_beta = _bias_to_beta(run, trace, step_origin, cell_op)
        out_beta, out_gamma, hn_beta, hn_gamma, cn_beta, cn_gamma = recurrent_cd(
            trace, beta_x, gamma_x, initial, to_beta, input_mask
        )
        out_origin = step_origin.unsqueeze(-1).expand(*step_origin.shape, out_beta.shape[-1])
        if op == "lstm_cell":
            assert cn_beta is not None and cn_gamma is not None
            h, c = value
            return (
                Decomposed.wrap(h, hn_beta[:, 0], hn_gamma[:, 0], None, out_origin[0]),
                Decomposed.wrap(c, cn_beta[:, 0], cn_gamma[:, 0], None, out_origin[0]),
            )
        if op == "gru_cell":
            return Decomposed.wrap(value, hn_beta[:, 0], hn_gamma[:, 0], None, out_origin[0])

        def restore(part: Tensor, batched: bool) -> Tensor:
            if call.packed:
                assert kept is not None
                return select_rows(part, kept, batched)
            if call.batch_first:
                return part.transpose(1, 2) if batched else part.transpose(0, 1)
            return part

        kept = None
        if call.packed:
            assert call.lengths is not None
            flat = torch.arange(steps * call.inputs.shape[1], device=call.inputs.device).reshape(steps, -1)
            kept = torch._pack_padded_sequence(flat, call.lengths, False)[0]
        def output_parts() -> Tuple[Tensor, Tensor]:
            gamma = trace.outputs - out_beta if out_gamma is None else out_gamma
            return restore(out_beta, True), restore(gamma, True)

        outputs = Decomposed.deferred(value[0], phrases, output_parts, restore(out_origin, False))
        h_n = Decomposed.wrap(value[1], hn_beta, hn_gamma)
        if cn_beta is None:
            return outputs, h_n
        assert cn_gamma is not None
        return outputs, h_n, Decomposed.wrap(value[2], cn_beta, cn_gamma)

    return handler


def _state_and_weights(op: str, args: Tuple[Any, ...], kwargs: Dict[str, Any], packed: bool) -> Tuple[Any, List[Any]]:
    """The initial state argument and the weight tensors of a recurrent op call (as the model passed them)."""
    if op.endswith("_cell"):
        names = ("input", "hx", "w_ih", "w_hh", "b_ih", "b_hh")
        bound = list(args) + [kwargs.get(name) for name in names[len(args) :]]
        return bound[1], [w for w in bound[2:] if w is not None]
    offset = 2 if packed else 1
    return args[offset], list(args[offset + 1])


def _phrases_in(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> int:
    for leaf in tree_flatten((args, kwargs))[0]:
        if isinstance(leaf, Decomposed):
            return leaf.phrases
    raise AssertionError("a handler ran without a decomposed argument")  # pragma: no cover - the guard ensures one


def _initial_parts(hx: Any, op: str, phrases: int) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """The parts of the initial states, :math:`(P, K D, B, H)`; constant states belong to γ."""
    lstm = op.startswith("lstm")
    states = list(hx) if lstm else [hx]
    parts = []
    for state in states:
        beta, gamma, _ = _parts_or_constant(state, phrases)
        if op.endswith("_cell"):
            beta, gamma = beta.unsqueeze(1), gamma.unsqueeze(1)
        parts.append((beta, gamma))
    if lstm:
        return parts[0][0], parts[0][1], parts[1][0], parts[1][1]
    return parts[0][0], parts[0][1], None, None


def _bias_to_beta(run: CDRun, trace: RecurrentTrace, step_origin: Tensor, cell_op: bool) -> List[Tensor]:
    """Per direction, :math:`(P, T, B)`: the steps whose bias-only product goes to β."""
    active = trace.layers[0][0].active
    in_phrase = run.lookup(run.phrase_lookup, step_origin) & active.unsqueeze(0)
    directions = trace.spec.num_directions
    if run.bias_product == "never":
        return [torch.zeros_like(in_phrase)] * directions
    if run.bias_product == "phrase":
        return [in_phrase] * directions
    if cell_op:
        return [run.lookup(run.forward_reference, step_origin) & active.unsqueeze(0)]
    forward, backward = _reference_masks(in_phrase)
    return [forward, backward][:directions]



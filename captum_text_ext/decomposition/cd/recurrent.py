r"""Contextual decomposition through LSTM and GRU layers: the rule of ``torch.lstm`` / ``torch.gru`` (and their
cells), which traces the actual run with the fused kernels
(:func:`~captum_text_ext.decomposition.kernel_trace.kernel_unroll`) and walks each layer and direction with
:mod:`~captum_text_ext.decomposition.cd.directions` (equations in :mod:`~captum_text_ext.decomposition.cd`)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten

from captum_text_ext.decomposition.cd.call import plain_of, same_origin, values_of
from captum_text_ext.decomposition.cd.decomposed import CDRun, Decomposed
from captum_text_ext.decomposition.cd.routing import pad_packed, select_rows
from captum_text_ext.decomposition.cd.directions import gru_direction_cd, lstm_direction_cd
from captum_text_ext.decomposition.cells import FusedRecurrentCall, RecurrentTrace, unroll
from captum_text_ext.decomposition.guard import RANDOM_REASON, Handler

__all__ = ["recurrent_cd", "recurrent_rule"]


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
) -> Tuple[Tensor, Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """CD forwards through a stacked, possibly bidirectional LSTM/GRU.

    Args:
        trace: the actual run (:func:`~captum_text_ext.decomposition.kernel_trace.kernel_unroll`).
        beta_x, gamma_x: :math:`(P, T, B, E)` the parts of the input, or ``None`` with ``input_mask``.
        initial: ``(β_h0, γ_h0, β_c0, γ_c0)``, each :math:`(P, K D, B, H)` (the cell parts ``None`` for a GRU).
        to_beta: per direction, :math:`(P, T, B)` bool: where the bias-only product goes to β.
        input_mask: :math:`(P, T, B)` bool: the input's β is the input where True, its γ the rest (instead of
            ``beta_x`` and ``gamma_x``).

    Returns:
        ``(β_out, β_hn, γ_hn, β_cn, γ_cn)``: β of the outputs :math:`(P, T, B, D H)` (their γ is
        ``trace.outputs - β_out``, made by the caller when needed), final states :math:`(P, K D, B, H)` (the cell
        parts ``None`` for a GRU).
    """
    spec = trace.spec
    directions = spec.num_directions
    beta_h0, gamma_h0, beta_c0, gamma_c0 = initial
    h_beta, h_gamma, c_beta, c_gamma = [], [], [], []
    layer_beta, layer_gamma = beta_x, gamma_x
    for k in range(spec.num_layers):
        outs_beta: List[Tensor] = []
        mask = input_mask if k == 0 else None
        for d in range(directions):
            index = k * directions + d
            tr = trace.layers[k][d]
            if spec.cell == "lstm":
                assert beta_c0 is not None and gamma_c0 is not None
                state = (beta_h0[:, index], gamma_h0[:, index], beta_c0[:, index], gamma_c0[:, index])
                ob, (hb, hg, cb, cg) = lstm_direction_cd(tr, layer_beta, layer_gamma, state, to_beta[d], mask)
                c_beta.append(cb)
                c_gamma.append(cg)
            else:
                h_state = (beta_h0[:, index], gamma_h0[:, index])
                ob, (hb, hg) = gru_direction_cd(tr, layer_beta, layer_gamma, h_state, to_beta[d], mask)
            h_beta.append(hb)
            h_gamma.append(hg)
            outs_beta.append(ob)
        layer_beta = outs_beta[0] if directions == 1 else torch.cat(outs_beta, -1)
        if k + 1 < spec.num_layers:  # γ = the actual output (the next layer's input, 0 at padding) - β
            layer_gamma = trace.layers[k + 1][0].inputs - layer_beta
    assert layer_beta is not None
    cells = (torch.stack(c_beta, 1), torch.stack(c_gamma, 1)) if c_beta else (None, None)
    return layer_beta, torch.stack(h_beta, 1), torch.stack(h_gamma, 1), cells[0], cells[1]


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
        trace = unroll(call.spec.detached(), call.inputs, call.lengths, call.h0, call.c0)
        value = call.result(trace.outputs, trace.h_n, trace.c_n)  # the op's value, from the trace
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
        out_beta, hn_beta, hn_gamma, cn_beta, cn_gamma = recurrent_cd(
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
            return restore(out_beta, True), restore(trace.outputs - out_beta, True)

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



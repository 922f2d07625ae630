r"""The :class:`~captum_text_ext.decomposition.cells.RecurrentTrace` of a stacked LSTM/GRU computed with PyTorch's
fused kernels (``torch.lstm`` / ``torch.gru``) instead of a Python loop over the cell equations.

:func:`kernel_unroll` returns what :func:`~captum_text_ext.decomposition.cells.unroll` returns, equal up to float
rounding. Per layer it makes one kernel call for both directions (with padding: one per direction on the padded
tensor, the backward direction on every sequence reversed within its length, because PyTorch's kernel for a
``PackedSequence`` is a slow loop of small ops), which gives the hidden states :math:`h_t` at every real step;
everything else follows batched over all steps:

- the state before each step, :math:`h_{t-1}`, is a gather of the outputs (the initial state :math:`h_0` before the
  first real step in reading order; at padding the carried state, as ``unroll`` records it);
- the pre-activations of all steps in one matmul each: LSTM :math:`z_t = W_i x_t + b_i + W_h h_{t-1} + b_h`, GRU
  :math:`W_i x_t + b_i` and :math:`W_h h_{t-1} + b_h`;
- the gates from those (:math:`i, f, g, o` or :math:`r, z, n = \tanh(W_{in} x_t + b_{in} + r_t \odot m_t)`);
- the LSTM's cell states by the only recurrence left, one fused op per step:
  :math:`c_t = f_t \odot c_{t-1} + (i_t \odot g_t)`.

Without padding the outputs and :math:`h_n` are the kernel's, so they equal ``nn.LSTM`` / ``nn.GRU`` exactly;
the cell states (:math:`c_n` included) come from the recurrence above, equal up to rounding.

Examples:
    >>> from captum_text_ext.decomposition.cells import RecurrentSpec, unroll
    >>> lstm = torch.nn.LSTM(3, 2, num_layers=2, bidirectional=True).double()
    >>> x, lengths = torch.randn(5, 4, 3, dtype=torch.float64), torch.tensor([5, 3, 1, 4])
    >>> fast, slow = (f(RecurrentSpec.from_module(lstm), x, lengths) for f in (kernel_unroll, unroll))
    >>> bool((fast.layers[1][1].c - slow.layers[1][1].c).abs().max() < 1e-12)
    True
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor

from captum_text_ext.decomposition.cells import (
    GATE_ORDER,
    CellWeights,
    DirectionTrace,
    RecurrentSpec,
    RecurrentTrace,
    _check_inputs,
    _check_lengths,
    _initial_state,
    unroll,
)

__all__ = ["JOINT_CELL_ENTRIES", "kernel_direction_traces", "kernel_unroll"]


def _affine(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    return x @ weight.t() if bias is None else torch.addmm(bias, x.flatten(0, -2), weight.t()).view(
        *x.shape[:-1], weight.shape[0]
    )


def _flat_weights(weights: Tuple[CellWeights, ...]) -> List[Tensor]:
    """The flat parameter list ``torch.lstm`` / ``torch.gru`` take for one layer (all its directions)."""
    flat: List[Tensor] = []
    for w in weights:
        flat += [w.weight_ih, w.weight_hh]
        if w.bias_ih is not None and w.bias_hh is not None:
            flat += [w.bias_ih, w.bias_hh]
        if w.weight_hr is not None:
            flat.append(w.weight_hr)
    return flat


def _state_before(outputs: Tensor, initial: Tensor, index: Optional[Tensor], direction: int) -> Tensor:
    """:math:`(T, B, S)` the state before each step: rows of ``[initial; outputs]`` (``index`` 0 is ``initial``;
    ``index`` ``None`` when no column has padding: the rows shifted by one step in reading order)."""
    if index is None and direction == 1:
        return torch.cat([outputs[1:], initial.unsqueeze(0)])
    rows = torch.cat([initial.unsqueeze(0), outputs])
    if index is None:
        return rows[:-1]
    return rows.gather(0, index.unsqueeze(-1).expand(-1, -1, rows.shape[-1]))


def _previous_index(lengths: Tensor, steps: int, direction: int) -> Tensor:
    r""":math:`(T, B)` the row of ``[h_0; h_0 \dots h_{T-1}]`` holding each step's previous state. Forwards the state
    before step :math:`t` is :math:`h_{t-1}` (row :math:`t`), carried as :math:`h_{L-1}` past the end; backwards
    it is :math:`h_{t+1}` (row :math:`t + 2`) inside the sequence and :math:`h_0` (row 0) from :math:`t = L - 1` on."""
    time = torch.arange(steps, device=lengths.device).unsqueeze(1)
    if direction == 0:
        return torch.minimum(time, lengths.unsqueeze(0))
    return torch.where(time + 1 < lengths.unsqueeze(0), time + 2, torch.zeros_like(time))


def _run_kernel(
    cell: str, weights: Tuple[CellWeights, ...], inputs: Tensor, h0: Tensor, c0: Optional[Tensor]
) -> Tuple[Tensor, Tensor]:
    """``torch.lstm`` / ``torch.gru`` over a padded, time-major batch, one layer with the directions of ``weights``:
    ``(outputs (T, B, D S), h_n (D, B, S))``."""
    flat = _flat_weights(weights)
    has_biases, bidirectional = weights[0].bias_ih is not None, len(weights) == 2
    if cell == "lstm":
        assert c0 is not None
        out, h_n, _ = torch.lstm(inputs, [h0, c0], flat, has_biases, 1, 0.0, False, bidirectional, False)
        return out, h_n
    out, h_n = torch.gru(inputs, h0, flat, has_biases, 1, 0.0, False, bidirectional, False)
    return out, h_n


def _reversal_index(lengths: Tensor, steps: int) -> Tensor:
    """:math:`(T, B)` step :math:`L - 1 - t` for :math:`t < L` (each sequence reversed within its length), else
    :math:`t`: its own inverse."""
    time = torch.arange(steps, device=lengths.device).unsqueeze(1)
    return torch.where(time < lengths.unsqueeze(0), lengths.unsqueeze(0) - 1 - time, time)


def _gather_steps(values: Tensor, index: Tensor) -> Tensor:
    return values.gather(0, index.unsqueeze(-1).expand(-1, -1, values.shape[-1]))


def _run_ragged(
    spec: RecurrentSpec, layer: int, inputs: Tensor, lengths: Tensor, h0: Tensor, c0: Optional[Tensor]
) -> Tuple[Tensor, Tensor]:
    """One layer of a batch with padding: each direction on the padded tensor (PyTorch's packed-sequence kernel is
    a slow loop of small ops), the backward one on every sequence reversed within its length, so that both read
    their real steps first; outputs 0 at padding, final states at each column's last real step."""
    steps = inputs.shape[0]
    reverse = _reversal_index(lengths, steps)
    active = (torch.arange(steps, device=lengths.device).unsqueeze(1) < lengths.unsqueeze(0)).unsqueeze(-1)
    last = (lengths - 1).clamp(min=0).view(1, -1)
    empty = (lengths == 0).unsqueeze(-1)  # an empty sequence keeps its initial state
    outputs: List[Tensor] = []
    finals: List[Tensor] = []
    for d in range(spec.num_directions):
        x = inputs if d == 0 else _gather_steps(inputs, reverse)
        c0_d = None if c0 is None else c0[d : d + 1]
        out, _ = _run_kernel(spec.cell, (spec.cell_weights(layer, d),), x, h0[d : d + 1], c0_d)
        out = torch.where(active, out if d == 0 else _gather_steps(out, reverse), torch.zeros_like(out))
        outputs.append(out)
        final = _gather_steps(out, last)[0] if d == 0 else out[0]
        finals.append(torch.where(empty, h0[d], final))
    return torch.cat(outputs, dim=-1), torch.stack(finals)


def _tanh_from_sigmoid_(doubled: Tensor) -> Tensor:
    r""":math:`\tanh(x) = 2\,\sigma(2x) - 1` in place, from :math:`\sigma(2x)` (``doubled``): PyTorch's CPU tanh
    costs about six times its sigmoid per element (measured at 3.1 against 0.53 ns in float32), and the identity's
    rounding (a few units in the last place of 1) is below the trace's own (the gates are recomputed, not the
    kernel's)."""
    return doubled.mul_(2).sub_(1)


def _lean_lstm_gates(weights: CellWeights, inputs: Tensor, h_prev: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
    r"""The LSTM's gates :math:`i, f, g` from one product of their pre-activations,
    :math:`[W_i\ W_h]_{i,f,g} [x_t; h_{t-1}] + b_i + b_h` (one matmul over the concatenation is several times faster
    than two and a sum), and one sigmoid over that contiguous product: the rows of :math:`g` are doubled in the
    product (exactly: a power of two), so that :math:`g = \tanh(z^g) = 2\,\sigma(2 z^g) - 1`
    (:func:`_tanh_from_sigmoid_`). Returns :math:`z^g` (halved back) and the gates."""
    hidden = weights.hidden_size
    rows = 3 * hidden
    weight = torch.cat([weights.weight_ih[:rows], weights.weight_hh[:rows]], dim=1)
    weight[2 * hidden :] *= 2
    bias = None
    if weights.bias_ih is not None and weights.bias_hh is not None:
        bias = weights.bias_ih[:rows] + weights.bias_hh[:rows]
        bias[2 * hidden :] *= 2
    pre = _affine(torch.cat([inputs, h_prev], dim=-1), weight, bias)
    gates = torch.sigmoid(pre)
    pre_g = pre[..., 2 * hidden :].mul_(0.5)
    g = _tanh_from_sigmoid_(gates[..., 2 * hidden :])
    return pre_g, {"i": gates[..., :hidden], "f": gates[..., hidden : 2 * hidden], "g": g}


def _direction_trace(
    weights: CellWeights,
    layer: int,
    direction: int,
    inputs: Tensor,
    active: Tensor,
    outputs: Tensor,
    index: Optional[Tensor],
    h0: Tensor,
    c0: Optional[Tensor],
    h_n: Tensor,
    lean: bool,
) -> DirectionTrace:
    """One direction's trace from the kernel's outputs :math:`h_t` (0 at padding)."""
    h_prev = _state_before(outputs, h0, index, direction)
    if lean and weights.cell == "lstm":
        assert c0 is not None
        pre, gates = _lean_lstm_gates(weights, inputs, h_prev)
        c, c_n = _cell_states(gates["i"] * gates["g"], gates["f"], active, c0, direction)
        return _lean_lstm_trace(weights, layer, direction, inputs, active, h_prev, pre, gates, (c, c_n), outputs,
                                index, c0, h_n)
    pre_x = _affine(inputs, weights.weight_ih, weights.bias_ih)
    pre_h = _affine(h_prev, weights.weight_hh, weights.bias_hh)
    names = GATE_ORDER[weights.cell]
    if weights.cell == "gru":
        hidden = weights.hidden_size
        reset, update = torch.sigmoid(pre_x[..., : 2 * hidden] + pre_h[..., : 2 * hidden]).chunk(2, dim=-1)
        doubled = torch.addcmul(pre_x[..., 2 * hidden :], reset, pre_h[..., 2 * hidden :]).mul_(2).sigmoid_()
        candidate = _tanh_from_sigmoid_(doubled)
        gates = {"r": reset, "z": update, "n": candidate}
        if lean:  # the backward walk reads the hidden part of n alone
            return DirectionTrace("gru", layer, direction, weights, inputs, active, h_prev, None, gates, pre_x, None,
                                  pre_h[..., 2 * hidden :], None, outputs, h_n, None)
        return DirectionTrace(
            "gru", layer, direction, weights, inputs, active, h_prev, None, gates, pre_x, pre_x, pre_h, None,
            outputs, h_n, None,
        )
    assert c0 is not None
    pre = pre_x + pre_h
    # One sigmoid over all four gates: on a contiguous tensor it is several times faster than on three strided ones.
    i, f, _, o = torch.sigmoid(pre).chunk(4, dim=-1)
    g = torch.tanh(pre.chunk(4, dim=-1)[2])
    c, c_n = _cell_states(i * g, f, active, c0, direction)
    gates = dict(zip(names, (i, f, g, o)))
    c_prev = _state_before(c, c0, index, direction)
    return DirectionTrace(
        "lstm", layer, direction, weights, inputs, active, h_prev, c_prev, gates, pre, pre_x, None, c, outputs, h_n,
        c_n,
    )


def _lean_lstm_trace(
    weights: CellWeights,
    layer: int,
    direction: int,
    inputs: Tensor,
    active: Tensor,
    h_prev: Tensor,
    pre: Tensor,
    gates: Dict[str, Tensor],
    cells: Tuple[Tensor, Tensor],
    outputs: Tensor,
    index: Optional[Tensor],
    c0: Tensor,
    h_n: Tensor,
) -> DirectionTrace:
    """A lean LSTM trace from its gates (:func:`_lean_lstm_gates`) and cell states ``(c, c_n)``."""
    c, c_n = cells
    c_prev = _state_before(c, c0, index, direction)
    return DirectionTrace(
        "lstm", layer, direction, weights, inputs, active, h_prev, c_prev, gates, pre, None, None, c, outputs, h_n, c_n
    )


JOINT_CELL_ENTRIES = 20000
"""A small bidirectional LSTM layer's lean traces compute their cell states in one loop for both directions
(:func:`_lean_lstm_layer`) when one direction's :math:`(T, B, H)` gates have at most this many entries: there the
per-step ops dominate and one loop halves them. Measured on a bi-LSTM of 60 units, the cell states alone, the
best of 7 runs of 100 calls, one thread: 118 against 211 µs at 1 sentence of 40 steps, 146 against 228 µs at 8 of 40,
equal at 64 of 8; beyond, the copies that put the directions side by side cost more than the loop saves."""


def _lean_lstm_layer(
    spec: RecurrentSpec,
    layer: int,
    inputs: Tensor,
    active: Tensor,
    outputs: Tensor,
    indices: List[Optional[Tensor]],
    h0: Tensor,
    c0: Tensor,
    h_n: Tensor,
) -> List[DirectionTrace]:
    r"""Both directions' lean traces of one bidirectional LSTM layer, the cell states of both in one loop over the
    steps: step :math:`k` is time :math:`k` forwards and :math:`T - 1 - k` backwards (a column at padding keeps its
    state, as in :func:`_cell_states`; the values are the same)."""
    size = spec.state_size
    weights = [spec.cell_weights(layer, d) for d in range(2)]
    parts = []
    for d in range(2):
        h_prev = _state_before(outputs[..., d * size : (d + 1) * size], h0[d], indices[d], d)
        pre, gates = _lean_lstm_gates(weights[d], inputs, h_prev)
        parts.append((h_prev, pre, gates))
    written = [gates["i"] * gates["g"] for _, _, gates in parts]
    steps = inputs.shape[0]
    writes = torch.stack([written[0], written[1].flip(0)], dim=1).unbind(0)
    forgets = torch.stack([parts[0][2]["f"], parts[1][2]["f"].flip(0)], dim=1).unbind(0)
    keep = torch.stack([active, active.flip(0)], dim=1)
    all_active: List[bool] = keep.flatten(1).all(dim=1).tolist()
    keeps = keep.unsqueeze(-1).unbind(0)
    c = c0
    cells: List[Tensor] = []
    for k in range(steps):
        new = torch.addcmul(writes[k], forgets[k], c)
        cells.append(new)
        c = new if all_active[k] else torch.where(keeps[k], new, c)
    stacked = torch.stack(cells)
    states = ((stacked[:, 0], c[0]), (stacked[:, 1].flip(0), c[1]))
    return [
        _lean_lstm_trace(weights[d], layer, d, inputs, active, h_prev, pre, gates, states[d],
                         outputs[..., d * size : (d + 1) * size], indices[d], c0[d], h_n[d])
        for d, (h_prev, pre, gates) in enumerate(parts)
    ]


def _cell_states(written: Tensor, forget: Tensor, active: Tensor, c0: Tensor, direction: int) -> Tuple[Tensor, Tensor]:
    r"""The recurrence :math:`c_t = f_t \odot c_{t-1} + (i_t \odot g_t)` in reading order, one fused op per step
    (plus a ``where`` at steps where some column is padding, which keeps its state). Returns the new cell state of
    every step (computed from the carried state at padding, as ``unroll`` does) and the final one."""
    steps = written.shape[0]
    order = range(steps) if direction == 0 else range(steps - 1, -1, -1)
    writes, forgets = written.unbind(0), forget.unbind(0)
    cells: List[Tensor] = []
    c = c0
    all_active: List[bool] = active.all(dim=1).tolist()
    if all(all_active):
        for t in order:
            c = torch.addcmul(writes[t], forgets[t], c)
            cells.append(c)
    else:
        keeps = active.unsqueeze(-1).unbind(0)
        for t in order:
            new = torch.addcmul(writes[t], forgets[t], c)
            cells.append(new)
            c = new if all_active[t] else torch.where(keeps[t], new, c)
    return torch.stack(cells if direction == 0 else cells[::-1]), c


def kernel_unroll(
    spec: RecurrentSpec,
    inputs: Tensor,
    lengths: Optional[Tensor] = None,
    h0: Optional[Tensor] = None,
    c0: Optional[Tensor] = None,
    lean: bool = False,
) -> RecurrentTrace:
    """:func:`~captum_text_ext.decomposition.cells.unroll` (same arguments, same result up to float rounding), with
    the fused kernels. An empty batch or one without steps is unrolled by
    :func:`~captum_text_ext.decomposition.cells.unroll` itself.

    With ``lean`` an LSTM's trace holds only what LRP's backward walk reads: ``pre`` is the pre-activation of
    :math:`g` alone (:math:`(T, B, H)`; the gates :math:`i, f, g` come from one product over :math:`[x_t; h_{t-1}]`),
    ``gates`` has no output gate :math:`o`, and ``pre_x`` is ``None``; the states are the same. A lean GRU trace's
    ``pre_x`` is ``None`` too and its ``pre_h`` the block of :math:`n` alone, :math:`(T, B, H)`.

    Raises:
        ValueError: as :func:`~captum_text_ext.decomposition.cells.unroll`.
    """
    if inputs.dim() == 3 and 0 in inputs.shape[:2]:
        return unroll(spec, inputs, lengths, h0, c0)  # it checks the arguments; kernel_direction_traces does below
    layers: List[List[DirectionTrace]] = [[] for _ in range(spec.num_layers)]
    outputs = inputs
    for trace, outputs in kernel_direction_traces(spec, inputs, lengths, h0, c0, lean):
        layers[trace.layer].append(trace)
    directions = [trace for layer in layers for trace in layer]
    c_n = [trace.c_n for trace in directions if trace.c_n is not None]
    return RecurrentTrace(
        spec=spec,
        lengths=_check_lengths(lengths, inputs.shape[0], inputs.shape[1], inputs.device),
        outputs=outputs,
        h_n=torch.stack([trace.h_n for trace in directions]),
        c_n=torch.stack(c_n) if c_n else None,
        layers=layers,
    )


def kernel_direction_traces(
    spec: RecurrentSpec,
    inputs: Tensor,
    lengths: Optional[Tensor] = None,
    h0: Optional[Tensor] = None,
    c0: Optional[Tensor] = None,
    lean: bool = False,
) -> Iterator[Tuple[DirectionTrace, Tensor]]:
    """The traces of :func:`kernel_unroll` one direction at a time, layer by layer, each with its layer's outputs
    :math:`(T, B, D S)` (the last one yielded are the module's outputs): a caller that keeps only what it needs of
    each trace holds one direction's trace at a time, not the whole run's. Same arguments and errors as
    :func:`kernel_unroll`; the arguments are checked before the first trace is computed."""
    _check_inputs(spec, inputs, c0)
    steps, batch = inputs.shape[:2]
    if steps == 0 or batch == 0:
        trace = unroll(spec, inputs, lengths, h0, c0)
        for layer in trace.layers:
            layer_outputs = torch.cat([direction.h for direction in layer], dim=-1)
            yield from ((direction, layer_outputs) for direction in layer)
        return
    full = _check_lengths(lengths, steps, batch, inputs.device)
    h0_full = _initial_state(h0, spec, batch, inputs, "h0")
    c0_full = _initial_state(c0, spec, batch, inputs, "c0") if spec.cell == "lstm" else None
    active = torch.arange(steps, device=inputs.device).unsqueeze(1) < full.unsqueeze(0)
    ragged = bool((full < steps).any())
    indices = [_previous_index(full, steps, d) if ragged else None for d in range(spec.num_directions)]
    layer_input = inputs
    size = spec.state_size
    for k in range(spec.num_layers):
        rows = slice(k * spec.num_directions, (k + 1) * spec.num_directions)
        c0_k = None if c0_full is None else c0_full[rows]
        if ragged:
            out, h_n_k = _run_ragged(spec, k, layer_input, full, h0_full[rows], c0_k)
        else:
            out, h_n_k = _run_kernel(spec.cell, spec.weights[rows], layer_input, h0_full[rows], c0_k)
        if lean and spec.cell == "lstm" and spec.num_directions == 2 and steps * batch * size <= JOINT_CELL_ENTRIES:
            assert c0_k is not None
            yield from ((trace, out) for trace in _lean_lstm_layer(spec, k, layer_input, active, out, indices,
                                                                     h0_full[rows], c0_k, h_n_k))
            layer_input = out
            continue
        for d in range(spec.num_directions):
            yield _direction_trace(
                spec.cell_weights(k, d), k, d, layer_input, active, out[..., d * size : (d + 1) * size], indices[d],
                h0_full[rows][d], None if c0_k is None else c0_k[d], h_n_k[d], lean,
            ), out
        layer_input = out

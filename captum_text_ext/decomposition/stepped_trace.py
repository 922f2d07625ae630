r"""A lean LSTM trace (what LRP's backward walk reads) from one loop over the steps that keeps the gates it computes,
for large batches on the CPU.

:func:`~captum_text_ext.decomposition.kernel_trace.kernel_direction_traces` runs PyTorch's fused kernel for the
hidden states and then computes the gates of all steps again (one product over :math:`[x_t; h_{t-1}]`), so every
gate is computed twice. Here a layer's directions run side by side in one loop over the steps, each step once:

.. math::
    z_t = W_i x_t + b_i + W_h h_{t-1} + b_h, \qquad
    (i_t, f_t, \tilde g_t, o_t) = \sigma(z_t \text{ with the rows of } g \text{ doubled}), \qquad
    g_t = 2 \tilde g_t - 1 = \tanh(z^g_t),

.. math::
    c_t = f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \big(2\,\sigma(2 c_t) - 1\big)

(:math:`\tanh` by the sigmoid: on the CPU PyTorch's tanh costs about six times its sigmoid; doubling rows of the
weights doubles :math:`z^g` exactly, a power of two), with the input part :math:`W_i x_t + b_i` of every step in one
batched product beforehand. The backward direction reads every sequence reversed within its length, so both
directions read their real steps first; what follows a column's last real step there is computed and meaningless,
as the gates at padding are in every trace. The trace is then the kernel path's, up to float rounding: the outputs
(0 at padding), :math:`h_{t-1}` and :math:`c_{t-1}` gathered the same way, ``pre`` the blocks :math:`i, f, g`.

Each step is about ten small ops of Python dispatch, so at small batches the fused kernel is faster: the loop runs
on the CPU from :data:`STEPPED_MIN_BATCH` columns per torch thread on (:func:`uses_stepped_loop`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_text_ext.decomposition.cells import (
    CellWeights,
    DirectionTrace,
    RecurrentSpec,
    _check_inputs,
    _check_lengths,
    _initial_state,
)
from captum_text_ext.decomposition.kernel_trace import _tanh_from_sigmoid_

__all__ = ["STEPPED_MIN_BATCH", "stepped_direction_traces", "uses_stepped_loop"]

STEPPED_MIN_BATCH = 64
"""The smallest batch, per torch thread, whose LSTM trace comes from :func:`stepped_direction_traces` (on the CPU).
Measured on a bi-LSTM of 60 units, the trace alone, the fastest of 15 interleaved timings: with one thread the loop
takes 0.78 of the kernel path's time at 64 sentences of 8 steps, 0.56 at 64 of 40, 0.61 at 256 of 40, about the
same at 32, 1.2 to 1.6 times it at 16; with two threads a whole LSTMLRP call at 64 sentences took 1.14 to 1.18 times
longer with the loop (its per-step ops are too small for a second thread; the kernel path's products over all steps
are not) and 0.78 to 0.80 of the time at 256 of 40."""


def uses_stepped_loop(spec: RecurrentSpec, inputs: Tensor) -> bool:
    """Whether LRP traces this LSTM with :func:`stepped_direction_traces`: an LSTM without a projection, on the CPU,
    with at least :data:`STEPPED_MIN_BATCH` columns (``inputs`` :math:`(T, B, E)`) per torch thread. Elsewhere the
    fused kernels' path runs (on a GPU it has not been measured against this loop)."""
    projected = any(w.weight_hr is not None for w in spec.weights)
    return (
        spec.cell == "lstm" and not projected and inputs.device.type == "cpu" and inputs.dim() == 3
        and inputs.shape[0] > 0 and inputs.shape[1] >= STEPPED_MIN_BATCH * torch.get_num_threads()
    )


def _doubled_g(weight: Tensor, hidden: int) -> Tensor:
    """A copy of ``weight`` (gates along the last dimension, in the order :math:`i, f, g, o`) with the block of
    :math:`g` doubled."""
    doubled = weight.clone()
    doubled[..., 2 * hidden : 3 * hidden] *= 2
    return doubled


def _rows(buffer: Tensor, rows: Sequence[int]) -> Tensor:
    """Row ``rows[d]`` of direction ``d`` of ``buffer`` :math:`(D, R, \\ldots)` for every direction, as one view
    :math:`(D, \\ldots)` (the directions' rows are apart by a positive stride: the backward direction's lies later in
    memory)."""
    first = buffer[0, rows[0]]
    if len(rows) == 1:
        return first.unsqueeze(0)
    gap = buffer.stride(0) + (rows[1] - rows[0]) * buffer.stride(1)
    return buffer.as_strided((len(rows), *first.shape), (gap, *first.stride()), first.storage_offset())


@dataclass(frozen=True)
class _SteppedLayer:
    """What the loop over one layer's steps keeps, in time order, the directions side by side: ``gates``
    :math:`(D, T, B, 4H)` (:math:`i, f, g, o`), ``pre_g`` :math:`(D, T, B, H)` (:math:`z^g`), and ``states`` and
    ``cells`` :math:`(D, T + 2, B, \\cdot)` holding :math:`h_t, c_t` at row :math:`t + 1`, the forward direction's
    initial state at row 0 and the backward one's at row :math:`T + 1`; at padding the state read is carried."""

    gates: Tensor
    pre_g: Tensor
    states: Tensor
    cells: Tensor

    def before(self, buffer: Tensor, direction: int) -> Tensor:
        """:math:`(T, B, \\cdot)` the state before each step of ``direction``."""
        steps = buffer.shape[1] - 2
        return buffer[0, :steps] if direction == 0 else buffer[1, 2:]

    def final(self, buffer: Tensor, direction: int) -> Tensor:
        """:math:`(B, \\cdot)` the state after the direction's last step (the carried state after its last real
        one)."""
        return buffer[0, -2] if direction == 0 else buffer[1, 1]


@torch.no_grad()
def _run_steps(weights: Tuple[CellWeights, ...], inputs: Tensor, active: Tensor, h0: Tensor, c0: Tensor) -> _SteppedLayer:
    """The loop over one layer's steps for its directions side by side: step :math:`k` is time :math:`k` of the
    forward direction and :math:`T - 1 - k` of the backward one (``inputs`` :math:`(T, B, E)`, ``active``
    :math:`(T, B)`, ``h0``, ``c0`` :math:`(D, B, H)`)."""
    steps, batch, width = inputs.shape
    directions, hidden = len(weights), weights[0].hidden_size
    w_x = _doubled_g(torch.stack([w.weight_ih for w in weights]).transpose(1, 2), hidden)
    w_h = _doubled_g(torch.stack([w.weight_hh for w in weights]).transpose(1, 2), hidden)
    flat = inputs.reshape(1, steps * batch, width).expand(directions, -1, -1)
    if weights[0].bias_ih is not None:
        bias = torch.stack([w.bias_ih + w.bias_hh for w in weights])  # type: ignore[operator]
        gates = torch.baddbmm(_doubled_g(bias, hidden).unsqueeze(1), flat, w_x)
    else:
        gates = torch.bmm(flat, w_x)
    layer = _SteppedLayer(
        gates.view(directions, steps, batch, 4 * hidden), gates.new_empty(directions, steps, batch, hidden),
        gates.new_empty(directions, steps + 2, batch, hidden), gates.new_empty(directions, steps + 2, batch, hidden),
    )
    for buffer, initial in ((layer.states, h0), (layer.cells, c0)):
        buffer[0, 0] = initial[0]
        buffer[-1, -1] = initial[-1]
    step_active = torch.stack([active, active.flip(0)][:directions], dim=1).unsqueeze(-1)  # (T, D, B, 1)
    padded: List[bool] = (~step_active).any(dim=3).any(dim=2).any(dim=1).tolist()
    for k in range(steps):
        at = (k, steps - 1 - k)[:directions]
        read, written = (k, steps + 1 - k)[:directions], (k + 1, steps - k)[:directions]
        z = _rows(layer.gates, at).baddbmm_(_rows(layer.states, read), w_h)
        torch.mul(z[..., 2 * hidden : 3 * hidden], 0.5, out=_rows(layer.pre_g, at))
        s = z.sigmoid_()
        g = _tanh_from_sigmoid_(s[..., 2 * hidden : 3 * hidden])
        c_read, c_written = _rows(layer.cells, read), _rows(layer.cells, written)
        h_read, h_written = _rows(layer.states, read), _rows(layer.states, written)
        if padded[k]:  # a padded column keeps the state it read
            torch.where(step_active[k], torch.addcmul(s[..., :hidden] * g, s[..., hidden : 2 * hidden], c_read),
                        c_read, out=c_written)
            h = torch.mul(s[..., 3 * hidden :], _tanh_from_sigmoid_(torch.mul(c_written, 2).sigmoid_()))
            torch.where(step_active[k], h, h_read, out=h_written)
        else:
            torch.addcmul(s[..., :hidden] * g, s[..., hidden : 2 * hidden], c_read, out=c_written)
            torch.mul(s[..., 3 * hidden :], _tanh_from_sigmoid_(torch.mul(c_written, 2).sigmoid_()), out=h_written)
    return layer


def stepped_direction_traces(
    spec: RecurrentSpec,
    inputs: Tensor,
    lengths: Optional[Tensor] = None,
    h0: Optional[Tensor] = None,
    c0: Optional[Tensor] = None,
) -> Iterator[Tuple[DirectionTrace, Tensor]]:
    """The lean traces of
    :func:`~captum_text_ext.decomposition.kernel_trace.kernel_direction_traces` (``lean=True``, same arguments),
    one direction at a time with its layer's outputs, for an LSTM without a projection and at least one step and
    one column. The loop writes into its buffers, so the traces are values without autograd history (what LRP's
    forward reads).

    Raises:
        ValueError: as :func:`~captum_text_ext.decomposition.cells.unroll`, or for a GRU, a projection, no steps or
            no columns.
    """
    _check_inputs(spec, inputs, c0)
    if spec.cell != "lstm" or any(w.weight_hr is not None for w in spec.weights) or 0 in inputs.shape[:2]:
        raise ValueError("The stepped trace needs an LSTM without a projection and at least one step and column")
    steps, batch = inputs.shape[:2]
    full = _check_lengths(lengths, steps, batch, inputs.device)
    h0_full = _initial_state(h0, spec, batch, inputs, "h0")
    c0_full = _initial_state(c0, spec, batch, inputs, "c0")
    active = torch.arange(steps, device=inputs.device).unsqueeze(1) < full.unsqueeze(0)
    ragged = bool((full < steps).any())
    layer_input = inputs
    directions = spec.num_directions
    for k in range(spec.num_layers):
        rows = slice(k * directions, (k + 1) * directions)
        weights = spec.weights[rows]
        hidden = weights[0].hidden_size
        layer = _run_steps(weights, layer_input, active, h0_full[rows], c0_full[rows])
        outputs = [layer.states[d, 1:-1] for d in range(directions)]
        if ragged:  # the outputs are 0 at padding, where the buffer holds the carried state
            outputs = [torch.where(active.unsqueeze(-1), out, torch.zeros_like(out)) for out in outputs]
        layer_outputs = torch.cat(outputs, dim=-1) if directions > 1 else outputs[0]
        for d in range(directions):
            gates = layer.gates[d]
            trace = DirectionTrace(
                "lstm", k, d, weights[d], layer_input, active, layer.before(layer.states, d),
                layer.before(layer.cells, d),
                {"i": gates[..., :hidden], "f": gates[..., hidden : 2 * hidden], "g": gates[..., 2 * hidden : 3 * hidden]},
                layer.pre_g[d], None, None, layer.cells[d, 1:-1], outputs[d], layer.final(layer.states, d),
                layer.final(layer.cells, d),
            )
            yield trace, layer_outputs
        layer_input = layer_outputs

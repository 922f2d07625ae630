r"""A lean LSTM or GRU trace (what LRP's backward walk reads) from one loop over the steps that keeps what it
computes, for large batches on the CPU.

:func:`~captum_text_ext.decomposition.kernel_trace.kernel_direction_traces` runs PyTorch's fused kernel for the
hidden states and then computes the gates of all steps again (one product over :math:`[x_t; h_{t-1}]`), so every
gate is computed twice. Here a layer's directions run side by side in one loop over the steps, each step once, the
LSTM's as

.. math::
    z_t = W_i x_t + b_i + W_h h_{t-1} + b_h, \qquad
    (i_t, f_t, \tilde g_t, o_t) = \sigma(z_t \text{ with the rows of } g \text{ doubled}), \qquad
    g_t = 2 \tilde g_t - 1 = \tanh(z^g_t),

.. math::
    c_t = f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \big(2\,\sigma(2 c_t) - 1\big)

and the GRU's as in :func:`_gru_steps` (:math:`\tanh` by the sigmoid: on the CPU PyTorch's tanh costs about six times
its sigmoid; doubling rows of the weights doubles :math:`z^g` exactly, a power of two), with the input part
:math:`W_i x_t + b_i` of every step in one batched product beforehand. Everything stays in time order: step
:math:`k` is time :math:`k` of the forward direction and :math:`T - 1 - k` of the backward one, read and written
through one strided view of both (:class:`_Rows`), and a column at padding keeps the state it read, so the backward
direction starts each sequence from its initial state at its last real step. The traces are the kernel path's up to
float rounding (the gates at padding are meaningless in both).

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
"""The smallest batch, per torch thread, whose trace comes from :func:`stepped_direction_traces` (on the CPU).
Measured on a bi-LSTM of 60 units, the trace alone, the fastest of 15 interleaved timings: with one thread the loop
takes 0.78 of the kernel path's time at 64 sentences of 8 steps, 0.56 at 64 of 40, 0.61 at 256 of 40, about the
same at 32, 1.2 to 1.6 times it at 16 (a bi-GRU: 0.78 to 0.85 at 64, 0.59 to 0.70 at 256, 0.82 to 0.93 at 32, 1.1 to
1.2 times at 16); with two threads a whole LSTMLRP call at 64 sentences took 1.14 to 1.18 times
longer with the loop (its per-step ops are too small for a second thread; the kernel path's products over all steps
are not) and 0.78 to 0.80 of the time at 256 of 40."""


def uses_stepped_loop(spec: RecurrentSpec, inputs: Tensor) -> bool:
    """Whether LRP traces this layer with :func:`stepped_direction_traces`: a GRU or an LSTM without a projection, on
    the CPU, with at least :data:`STEPPED_MIN_BATCH` columns (``inputs`` :math:`(T, B, E)`) per torch thread.
    Elsewhere the fused kernels' path runs (on a GPU it has not been measured against this loop)."""
    projected = any(w.weight_hr is not None for w in spec.weights)
    return (
        not projected and inputs.device.type == "cpu" and inputs.dim() == 3
        and inputs.shape[0] > 0 and inputs.shape[1] >= STEPPED_MIN_BATCH * torch.get_num_threads()
    )


def _doubled_g(weight: Tensor, hidden: int) -> Tensor:
    """A copy of ``weight`` (gates along the last dimension, in the order :math:`i, f, g, o`) with the block of
    :math:`g` doubled."""
    doubled = weight.clone()
    doubled[..., 2 * hidden : 3 * hidden] *= 2
    return doubled


class _Rows:
    """One row per direction of ``buffer`` :math:`(D, R, \\ldots)` as one view :math:`(D, \\ldots)`:
    ``rows[d]`` of direction ``d`` (the directions' rows are apart by a positive stride, since the backward
    direction's lie later in memory; the strides are read once, a view is then one ``as_strided``)."""

    def __init__(self, buffer: Tensor) -> None:
        self.buffer = buffer
        self.size = (buffer.shape[0], *buffer.shape[2:])
        self.inner = buffer.stride()[2:]
        self.direction, self.row = buffer.stride(0), buffer.stride(1)
        self.offset = buffer.storage_offset()

    def __call__(self, rows: Sequence[int]) -> Tensor:
        gap = self.direction + (rows[-1] - rows[0]) * self.row
        return self.buffer.as_strided(self.size, (gap, *self.inner), self.offset + rows[0] * self.row)


@dataclass(frozen=True)
class _SteppedLayer:
    """What the loop over one layer's steps keeps, in time order, the directions side by side: ``gates``
    :math:`(D, T, B, \\cdot)` (the LSTM's :math:`i, f, g, o`, the GRU's :math:`r, z, n`), ``pre`` (the LSTM's
    :math:`z^g`, the GRU's input part :math:`W_i x_t + b_i`), ``pre_h`` (the block of :math:`n` of the GRU's
    :math:`W_h h_{t-1} + b_h`, else ``None``), and ``states`` and ``cells`` (the LSTM's, else ``None``)
    :math:`(D, T + 2, B, H)` holding :math:`h_t, c_t` at row :math:`t + 1`, the forward direction's initial state at
    row 0 and the backward one's at row :math:`T + 1`; at padding the state read is carried."""

    gates: Tensor
    pre: Tensor
    pre_h: Optional[Tensor]
    states: Tensor
    cells: Optional[Tensor]

    @staticmethod
    def before(buffer: Tensor, direction: int) -> Tensor:
        """:math:`(T, B, H)` the state before each step of ``direction``."""
        steps = buffer.shape[1] - 2
        return buffer[0, :steps] if direction == 0 else buffer[1, 2:]

    @staticmethod
    def final(buffer: Tensor, direction: int) -> Tensor:
        """:math:`(B, H)` the state after the direction's last step (the carried state after its last real one)."""
        return buffer[0, -2] if direction == 0 else buffer[1, 1]


def _state_buffer(initial: Tensor, steps: int) -> Tensor:
    """:math:`(D, T + 2, B, H)` with the initial states ``initial`` :math:`(D, B, H)` in place
    (:class:`_SteppedLayer`)."""
    buffer = initial.new_empty(initial.shape[0], steps + 2, *initial.shape[1:])
    buffer[0, 0] = initial[0]
    buffer[-1, -1] = initial[-1]
    return buffer


def _input_part(weights: Tuple[CellWeights, ...], inputs: Tensor, w_x: Tensor, bias: Optional[Tensor]) -> Tensor:
    """:math:`(D, T, B, G)` the input part of every step's pre-activations, one batched product (``w_x``
    :math:`(D, E, G)`, ``bias`` :math:`(D, G)` or ``None``)."""
    steps, batch, width = inputs.shape
    flat = inputs.reshape(1, steps * batch, width).expand(len(weights), -1, -1)
    product = torch.bmm(flat, w_x) if bias is None else torch.baddbmm(bias.unsqueeze(1), flat, w_x)
    return product.view(len(weights), steps, batch, w_x.shape[-1])


class _Steps:
    """The rows step :math:`k` reads and writes: time :math:`k` of the forward direction, :math:`T - 1 - k` of the
    backward one (``active`` :math:`(T, B)`), and whether a column is padding there."""

    def __init__(self, active: Tensor, directions: int) -> None:
        self.steps = active.shape[0]
        self.directions = directions
        self.active = torch.stack([active, active.flip(0)][:directions], dim=1).unsqueeze(-1)  # (T, D, B, 1)
        self.padded: List[bool] = (~self.active).flatten(1).any(dim=1).tolist()

    def at(self, k: int) -> Tuple[int, ...]:
        """The rows of a :math:`(D, T, \\ldots)` buffer."""
        return (k, self.steps - 1 - k)[: self.directions]

    def read(self, k: int) -> Tuple[int, ...]:
        """The rows of a state buffer holding the state before the step."""
        return (k, self.steps + 1 - k)[: self.directions]

    def written(self, k: int) -> Tuple[int, ...]:
        """The rows of a state buffer receiving the step's state."""
        return (k + 1, self.steps - k)[: self.directions]

    def keep(self, k: int, new: Tensor, read: Tensor, out: Tensor) -> Tensor:
        """``new`` into ``out``, where a column is padding at step ``k`` the state it ``read``."""
        if self.padded[k]:
            return torch.where(self.active[k], new, read, out=out)
        return out.copy_(new)


@torch.no_grad()
def _lstm_steps(weights: Tuple[CellWeights, ...], inputs: Tensor, active: Tensor, h0: Tensor, c0: Tensor
                ) -> _SteppedLayer:
    """The loop over one LSTM layer's steps, its directions side by side (``inputs`` :math:`(T, B, E)`,
    ``active`` :math:`(T, B)`, ``h0``, ``c0`` :math:`(D, B, H)`)."""
    hidden = weights[0].hidden_size
    w_x = _doubled_g(torch.stack([w.weight_ih for w in weights]).transpose(1, 2), hidden)
    w_h = _doubled_g(torch.stack([w.weight_hh for w in weights]).transpose(1, 2), hidden)
    biases = [w.bias_ih + w.bias_hh for w in weights if w.bias_ih is not None and w.bias_hh is not None]
    gates = _input_part(weights, inputs, w_x, _doubled_g(torch.stack(biases), hidden) if biases else None)
    layer = _SteppedLayer(gates, gates.new_empty(*gates.shape[:-1], hidden), None, _state_buffer(h0, gates.shape[1]),
                          _state_buffer(c0, gates.shape[1]))
    assert layer.cells is not None
    plan = _Steps(active, len(weights))
    gate_rows, pre_rows, state_rows, cell_rows = (_Rows(t) for t in (gates, layer.pre, layer.states, layer.cells))
    for k in range(plan.steps):
        h_read, c_read = state_rows(plan.read(k)), cell_rows(plan.read(k))
        z = gate_rows(plan.at(k)).baddbmm_(h_read, w_h)
        torch.mul(z[..., 2 * hidden : 3 * hidden], 0.5, out=pre_rows(plan.at(k)))
        s = z.sigmoid_()
        g = _tanh_from_sigmoid_(s[..., 2 * hidden : 3 * hidden])
        c = plan.keep(k, torch.addcmul(s[..., :hidden] * g, s[..., hidden : 2 * hidden], c_read), c_read,
                      cell_rows(plan.written(k)))
        h = torch.mul(s[..., 3 * hidden :], _tanh_from_sigmoid_(torch.mul(c, 2).sigmoid_()))
        plan.keep(k, h, h_read, state_rows(plan.written(k)))
    return layer


@torch.no_grad()
def _gru_steps(weights: Tuple[CellWeights, ...], inputs: Tensor, active: Tensor, h0: Tensor) -> _SteppedLayer:
    r"""The loop over one GRU layer's steps, its directions side by side: :math:`m_t = W_h h_{t-1} + b_h`,
    :math:`(r_t, z_t) = \sigma(W_{i\{r,z\}} x_t + b_{i\{r,z\}} + m^{r,z}_t)`,
    :math:`n_t = 2\,\sigma\big(2 (W_{in} x_t + b_{in} + r_t \odot m^n_t)\big) - 1`,
    :math:`h_t = n_t + z_t \odot (h_{t-1} - n_t)`; of :math:`m_t` only the block of :math:`n` is kept."""
    hidden = weights[0].hidden_size
    w_x = torch.stack([w.weight_ih for w in weights]).transpose(1, 2)
    w_h = torch.stack([w.weight_hh for w in weights]).transpose(1, 2)
    b_x = [w.bias_ih for w in weights if w.bias_ih is not None]
    b_h = [w.bias_hh for w in weights if w.bias_hh is not None]
    pre_x = _input_part(weights, inputs, w_x, torch.stack(b_x) if b_x else None)
    directions, steps, batch = pre_x.shape[:3]
    layer = _SteppedLayer(torch.empty_like(pre_x), pre_x, pre_x.new_empty(directions, steps, batch, hidden),
                          _state_buffer(h0, steps), None)
    assert layer.pre_h is not None
    m = pre_x.new_empty(directions, batch, 3 * hidden)
    bias_h = torch.stack(b_h).unsqueeze(1) if b_h else None
    plan = _Steps(active, len(weights))
    state_rows, pre_h_rows, pre_x_rows, gate_rows = (_Rows(t) for t in (layer.states, layer.pre_h, pre_x, layer.gates))
    for k in range(plan.steps):
        h_read = state_rows(plan.read(k))
        if bias_h is None:
            torch.bmm(h_read, w_h, out=m)
        else:
            torch.baddbmm(bias_h, h_read, w_h, out=m)
        pre_h_rows(plan.at(k)).copy_(m[..., 2 * hidden :])
        x, s = pre_x_rows(plan.at(k)), gate_rows(plan.at(k))
        rz = torch.add(x[..., : 2 * hidden], m[..., : 2 * hidden], out=s[..., : 2 * hidden]).sigmoid_()
        n_rows = slice(2 * hidden, 3 * hidden)
        candidate = torch.addcmul(x[..., n_rows], rz[..., :hidden], m[..., n_rows], out=s[..., n_rows])
        n = _tanh_from_sigmoid_(candidate.mul_(2).sigmoid_())
        plan.keep(k, torch.addcmul(n, rz[..., hidden:], h_read - n), h_read, state_rows(plan.written(k)))
    return layer


def _direction_trace(layer: _SteppedLayer, index: int, direction: int, weights: CellWeights, inputs: Tensor,
                     active: Tensor, outputs: Tensor) -> DirectionTrace:
    """One direction's trace from its layer's buffers (``outputs`` its :math:`h_t`, 0 at padding)."""
    hidden = weights.hidden_size
    gates = layer.gates[direction]
    h_prev, h_n = layer.before(layer.states, direction), layer.final(layer.states, direction)
    if layer.cells is None:
        assert layer.pre_h is not None
        named = {"r": gates[..., :hidden], "z": gates[..., hidden : 2 * hidden], "n": gates[..., 2 * hidden :]}
        return DirectionTrace("gru", index, direction, weights, inputs, active, h_prev, None, named,
                              layer.pre[direction], None, layer.pre_h[direction], None, outputs, h_n, None)
    named = {"i": gates[..., :hidden], "f": gates[..., hidden : 2 * hidden], "g": gates[..., 2 * hidden : 3 * hidden]}
    return DirectionTrace(
        "lstm", index, direction, weights, inputs, active, h_prev, layer.before(layer.cells, direction), named,
        layer.pre[direction], None, None, layer.cells[direction, 1:-1], outputs, h_n,
        layer.final(layer.cells, direction),
    )


def stepped_direction_traces(
    spec: RecurrentSpec,
    inputs: Tensor,
    lengths: Optional[Tensor] = None,
    h0: Optional[Tensor] = None,
    c0: Optional[Tensor] = None,
) -> Iterator[Tuple[DirectionTrace, Tensor]]:
    """The lean traces of
    :func:`~captum_text_ext.decomposition.kernel_trace.kernel_direction_traces` (``lean=True``, same arguments),
    one direction at a time with its layer's outputs, for an LSTM without a projection or a GRU, with at least one
    step and one column. The loop writes into its buffers, so the traces are values without autograd history (what
    LRP's forward reads).

    Raises:
        ValueError: as :func:`~captum_text_ext.decomposition.cells.unroll`, or for a projection, no steps or no
            columns.
    """
    _check_inputs(spec, inputs, c0)
    if any(w.weight_hr is not None for w in spec.weights) or 0 in inputs.shape[:2]:
        raise ValueError("The stepped trace needs an LSTM without a projection or a GRU, and at least one step and "
                         "column")
    steps, batch = inputs.shape[:2]
    full = _check_lengths(lengths, steps, batch, inputs.device)
    h0_full = _initial_state(h0, spec, batch, inputs, "h0")
    c0_full = _initial_state(c0, spec, batch, inputs, "c0") if spec.cell == "lstm" else None
    active = torch.arange(steps, device=inputs.device).unsqueeze(1) < full.unsqueeze(0)
    ragged = bool((full < steps).any())
    layer_input = inputs
    directions = spec.num_directions
    for k in range(spec.num_layers):
        rows = slice(k * directions, (k + 1) * directions)
        weights = spec.weights[rows]
        if c0_full is None:
            layer = _gru_steps(weights, layer_input, active, h0_full[rows])
        else:
            layer = _lstm_steps(weights, layer_input, active, h0_full[rows], c0_full[rows])
        outputs = [layer.states[d, 1:-1] for d in range(directions)]
        if ragged:  # the outputs are 0 at padding, where the buffer holds the carried state
            outputs = [torch.where(active.unsqueeze(-1), out, torch.zeros_like(out)) for out in outputs]
        layer_outputs = torch.cat(outputs, dim=-1) if directions > 1 else outputs[0]
        for d in range(directions):
            yield _direction_trace(layer, k, d, weights[d], layer_input, active, outputs[d]), layer_outputs
        layer_input = layer_outputs

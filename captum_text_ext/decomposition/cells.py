r"""Unrolled LSTM and GRU layers that reproduce ``nn.LSTM`` / ``nn.GRU`` step by step and record every gate.

Both decomposition methods walk the same unrolled cells: LRP (:class:`~captum_text_ext.attr.LSTMLRP`) goes backwards
over a :class:`RecurrentTrace`, contextual decomposition goes forwards through :func:`lstm_step` / :func:`gru_step`
with the actual activations of the trace. Everything here is plain tensor arithmetic, batched over the batch, with the
PyTorch conventions:

- gate order in ``weight_ih_l{k}`` / ``weight_hh_l{k}``: :math:`i, f, g, o` (LSTM) and :math:`r, z, n` (GRU);
- both biases (``bias_ih`` and ``bias_hh``) are used; a layer built with ``bias=False`` has none;
- sequences are **time-major and padded**: ``inputs`` is :math:`(T, B, E)` and ``lengths`` :math:`(B,)` says how many
  steps of each column are real. A direction reads the real steps of a sequence in its own order (forwards
  :math:`0 \dots L-1`, backwards :math:`L-1 \dots 0`) and leaves its state untouched at the padded steps, exactly as
  ``nn.LSTM`` does on a ``PackedSequence``; outputs at padded steps are 0.

The LSTM (PyTorch's equations):

.. math::
    \begin{aligned}
    i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) &
    f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
    g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) &
    o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
    c_t &= f_t \odot c_{t-1} + i_t \odot g_t &
    h_t &= o_t \odot \tanh(c_t)
    \end{aligned}

The GRU:

.. math::
    \begin{aligned}
    r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) &
    z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
    n_t &= \tanh\big(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})\big) &
    h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}
    \end{aligned}

Examples:
    >>> lstm = torch.nn.LSTM(3, 2, num_layers=2, bidirectional=True).double()
    >>> x = torch.randn(5, 4, 3, dtype=torch.float64)
    >>> trace = unroll(RecurrentSpec.from_module(lstm), x, lengths=torch.tensor([5, 3, 1, 4]))
    >>> packed = torch.nn.utils.rnn.pack_padded_sequence(x, [5, 3, 1, 4], enforce_sorted=False)
    >>> out, (h_n, c_n) = lstm(packed)
    >>> out = torch.nn.utils.rnn.pad_packed_sequence(out)[0]
    >>> bool((trace.outputs - out).abs().max() < 1e-12), bool((trace.h_n - h_n).abs().max() < 1e-12)
    (True, True)
    >>> trace.layers[1][0].gates["f"].shape   # layer 2, forward direction: (T, B, H)
    torch.Size([5, 4, 2])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

CELLS = ("lstm", "gru")
"""The recurrent cells the core unrolls."""

GATE_ORDER: Dict[str, Tuple[str, ...]] = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}
"""Gate order of the packed weight matrices, as PyTorch stores them."""


@dataclass(frozen=True)
class CellWeights:
    """The weights of one layer and one direction, as ``nn.LSTM`` / ``nn.GRU`` store them (gates stacked).

    Attributes:
        cell: ``"lstm"`` or ``"gru"``.
        weight_ih: :math:`(G H, E)`, :math:`G = 4` (LSTM) or 3 (GRU).
        weight_hh: :math:`(G H, S)`, :math:`S` the size of the hidden state :math:`h` (:math:`S = H` without a
            projection).
        bias_ih: :math:`(G H,)` or ``None`` (a layer without biases).
        bias_hh: :math:`(G H,)` or ``None``.
        weight_hr: :math:`(S, H)` the projection of ``nn.LSTM(proj_size=S)``,
            :math:`h_t = W_{hr}(o_t \\odot \\tanh(c_t))`, or ``None``.
    """

    cell: str
    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Optional[Tensor] = None
    bias_hh: Optional[Tensor] = None
    weight_hr: Optional[Tensor] = None

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"Expected `cell` to be one of {CELLS}, but got {self.cell!r}")
        gates = len(GATE_ORDER[self.cell])
        rows, state = self.weight_hh.shape
        if self.cell == "gru" and self.weight_hr is not None:
            raise ValueError("Expected no projection weights for a GRU, but got `weight_hr`")
        hidden = rows // gates
        expected_state = int(self.weight_hr.shape[0]) if self.weight_hr is not None else hidden
        if (
            rows != gates * hidden
            or self.weight_ih.shape[0] != rows
            or state != expected_state
            or (self.weight_hr is not None and tuple(self.weight_hr.shape) != (state, hidden))
        ):
            hr = "" if self.weight_hr is None else f" and weight_hr {tuple(self.weight_hr.shape)}"
            raise ValueError(
                f"Expected {self.cell} weights with {gates} * hidden_size rows and a hidden block of the state's size, "
                f"but got weight_ih {tuple(self.weight_ih.shape)}, weight_hh {tuple(self.weight_hh.shape)}{hr}"
            )

    @property
    def hidden_size(self) -> int:
        """:math:`H`, the size of the cell state and the gates."""
        return int(self.weight_hh.shape[0]) // len(GATE_ORDER[self.cell])

    @property
    def state_size(self) -> int:
        """:math:`S`, the size of the hidden state :math:`h` (the projection's size, else :math:`H`)."""
        return int(self.weight_hh.shape[1])

    @property
    def input_size(self) -> int:
        """:math:`E`."""
        return int(self.weight_ih.shape[1])

    def gate(self, name: str) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
        """One gate's block: ``(W_i (H, E), W_h (H, S), b_i (H,) or None, b_h (H,) or None)``.

        >>> w = CellWeights("lstm", torch.zeros(8, 3), torch.zeros(8, 2), torch.arange(8.0), torch.zeros(8))
        >>> w.gate("g")[2]
        tensor([4., 5.])
        """
        order = GATE_ORDER[self.cell]
        if name not in order:
            raise ValueError(f"Expected a {self.cell} gate name in {order}, but got {name!r}")
        rows = slice(order.index(name) * self.hidden_size, (order.index(name) + 1) * self.hidden_size)
        b_i = None if self.bias_ih is None else self.bias_ih[rows]
        b_h = None if self.bias_hh is None else self.bias_hh[rows]
        return self.weight_ih[rows], self.weight_hh[rows], b_i, b_h

    def gate_bias(self, name: str) -> Optional[Tensor]:
        """The summed bias :math:`b_i + b_h` of one gate, ``None`` without biases."""
        _, _, b_i, b_h = self.gate(name)
        if b_i is None or b_h is None:
            return None
        return b_i + b_h

    def detached(self) -> "CellWeights":
        """The same weights, detached from autograd."""
        return CellWeights(
            self.cell,
            self.weight_ih.detach(),
            self.weight_hh.detach(),
            None if self.bias_ih is None else self.bias_ih.detach(),
            None if self.bias_hh is None else self.bias_hh.detach(),
            None if self.weight_hr is None else self.weight_hr.detach(),
        )


@dataclass(frozen=True)
class RecurrentSpec:
    """A stacked (possibly bidirectional) LSTM or GRU, as a list of :class:`CellWeights`.

    Attributes:
        cell: ``"lstm"`` or ``"gru"``.
        num_layers: stacked layers :math:`K`.
        bidirectional: whether each layer has a backward direction.
        weights: one :class:`CellWeights` per layer and direction, index ``layer * D + direction``
            (PyTorch's order of ``h_n``).
    """

    cell: str
    num_layers: int
    bidirectional: bool
    weights: Tuple[CellWeights, ...]

    def __post_init__(self) -> None:
        if len(self.weights) != self.num_layers * self.num_directions:
            raise ValueError(
                f"Expected {self.num_layers * self.num_directions} CellWeights (layers x directions), but got "
                f"{len(self.weights)}"
            )

    @property
    def num_directions(self) -> int:
        """:math:`D`: 2 when bidirectional, else 1."""
        return 2 if self.bidirectional else 1

    @property
    def hidden_size(self) -> int:
        """:math:`H`, the size of the cell states."""
        return self.weights[0].hidden_size

    @property
    def state_size(self) -> int:
        """:math:`S`, the size of the hidden states (``proj_size`` of a projected LSTM, else :math:`H`)."""
        return self.weights[0].state_size

    @property
    def input_size(self) -> int:
        """:math:`E` of the first layer."""
        return self.weights[0].input_size

    def cell_weights(self, layer: int, direction: int) -> CellWeights:
        """The weights of one layer and direction (0 forwards, 1 backwards)."""
        return self.weights[layer * self.num_directions + direction]

    @classmethod
    def from_module(cls, module: nn.Module) -> "RecurrentSpec":
        """Read an ``nn.LSTM`` (with or without ``proj_size``) or ``nn.GRU``.

        Raises:
            TypeError: for any other module.
        """
        if isinstance(module, nn.LSTM):
            cell = "lstm"
        elif isinstance(module, nn.GRU):
            cell = "gru"
        else:
            raise TypeError(f"Expected an nn.LSTM or nn.GRU, but got {type(module).__name__}")
        weights: List[Tensor] = [w for w in module._flat_weights if w is not None]
        return cls.from_flat_weights(cell, weights, module.bias, module.num_layers, module.bidirectional)

    @classmethod
    def from_flat_weights(
        cls, cell: str, flat_weights: Sequence[Tensor], has_biases: bool, num_layers: int, bidirectional: bool
    ) -> "RecurrentSpec":
        """Read the flat weight list that ``nn.LSTM`` / ``nn.GRU`` hand to ``torch.lstm`` / ``torch.gru``.

        Per layer and direction the list holds ``weight_ih, weight_hh[, bias_ih, bias_hh][, weight_hr]`` (the
        projection ``weight_hr`` of ``nn.LSTM(proj_size > 0)``).

        Raises:
            ValueError: when its length does not fit ``num_layers`` and ``bidirectional``.
        """
        groups = num_layers * (2 if bidirectional else 1)
        per_group = 4 if has_biases else 2
        if cell == "lstm" and len(flat_weights) == groups * (per_group + 1):
            per_group += 1
        if len(flat_weights) != groups * per_group:
            raise ValueError(
                f"Expected {groups * per_group} flat weights for a {cell} with num_layers={num_layers}, "
                f"bidirectional={bidirectional}, bias={has_biases}, but got {len(flat_weights)}"
            )
        weights = []
        for k in range(groups):
            chunk = list(flat_weights[k * per_group : (k + 1) * per_group])
            bias_ih, bias_hh = (chunk[2], chunk[3]) if has_biases else (None, None)
            projection = chunk[-1] if len(chunk) in (3, 5) else None
            weights.append(CellWeights(cell, chunk[0], chunk[1], bias_ih, bias_hh, projection))
        return cls(cell, num_layers, bidirectional, tuple(weights))

    def detached(self) -> "RecurrentSpec":
        """The same spec with detached weights."""
        return RecurrentSpec(self.cell, self.num_layers, self.bidirectional, tuple(w.detached() for w in self.weights))


class LSTMStep(NamedTuple):
    """One LSTM step for a batch: every quantity of the cell equations, each :math:`(B, H)` except ``pre`` and ``h``.

    - ``pre``: :math:`(B, 4H)` gate pre-activations (both biases included), gate order :math:`i, f, g, o`;
    - ``i``, ``f``, ``g``, ``o``: the gates (``g`` is the tanh cell input);
    - ``c``: the new cell state :math:`c_t = f \\odot c_{t-1} + i \\odot g`;
    - ``h``: :math:`(B, S)` the new hidden state :math:`h_t = o \\odot \\tanh(c_t)`, projected by
      :math:`W_{hr}` for ``nn.LSTM(proj_size=S)``.
    """

    pre: Tensor
    i: Tensor
    f: Tensor
    g: Tensor
    o: Tensor
    c: Tensor
    h: Tensor


class GRUStep(NamedTuple):
    """One GRU step for a batch, each :math:`(B, H)` except the pre-activations.

    - ``pre_x``: :math:`(B, 3H)` input part :math:`W_i x + b_i`, gate order :math:`r, z, n`;
    - ``pre_h``: :math:`(B, 3H)` hidden part :math:`W_h h + b_h`;
    - ``r``, ``z``: the reset and update gates;
    - ``n``: the candidate :math:`n_t`;
    - ``h``: the new hidden state.
    """

    pre_x: Tensor
    pre_h: Tensor
    r: Tensor
    z: Tensor
    n: Tensor
    h: Tensor


def _affine(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    out = x @ weight.t()
    return out if bias is None else out + bias


def lstm_step(
    weights: CellWeights, x: Tensor, h_prev: Tensor, c_prev: Tensor, pre_x: Optional[Tensor] = None
) -> LSTMStep:
    """One LSTM step.

    Args:
        weights: the layer-direction's weights.
        x: :math:`(B, E)` input.
        h_prev: :math:`(B, S)` hidden state.
        c_prev: :math:`(B, H)` cell state.
        pre_x: :math:`(B, 4H)` precomputed :math:`W_{i} x + b_{i}` (saves a matmul per step when unrolling).
    """
    if pre_x is None:
        pre_x = _affine(x, weights.weight_ih, weights.bias_ih)
    pre = pre_x + _affine(h_prev, weights.weight_hh, weights.bias_hh)
    i, f, g, o = pre.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c_prev + i * g
    h = o * torch.tanh(c)
    if weights.weight_hr is not None:
        h = h @ weights.weight_hr.t()
    return LSTMStep(pre, i, f, g, o, c, h)


def gru_step(weights: CellWeights, x: Tensor, h_prev: Tensor, pre_x: Optional[Tensor] = None) -> GRUStep:
    """One GRU step (arguments as :func:`lstm_step`, without a cell state)."""
    if pre_x is None:
        pre_x = _affine(x, weights.weight_ih, weights.bias_ih)
    pre_h = _affine(h_prev, weights.weight_hh, weights.bias_hh)
    x_r, x_z, x_n = pre_x.chunk(3, dim=-1)
    h_r, h_z, h_n = pre_h.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    h = (1 - z) * n + z * h_prev
    return GRUStep(pre_x, pre_h, r, z, n, h)


@dataclass
class DirectionTrace:
    """Everything one direction of one layer computed, stacked over time (index = position in the sequence).

    For a step :math:`t` that is padding for column :math:`b` (``active[t, b]`` is False) the state is carried
    unchanged: ``h_prev[t, b]`` is the carried state and the gate values there are meaningless.

    Attributes:
        cell: ``"lstm"`` or ``"gru"``.
        layer: the layer index.
        direction: 0 (reads :math:`0 \\dots L-1`) or 1 (reads :math:`L-1 \\dots 0`).
        weights: the layer-direction's weights.
        inputs: :math:`(T, B, E)` the layer's input.
        active: :math:`(T, B)` bool, True at real steps.
        h_prev: :math:`(T, B, S)` hidden state before each step (:math:`S = H` without a projection).
        c_prev: :math:`(T, B, H)` cell state before each step (LSTM; ``None`` for the GRU).
        gates: gate values by name, each :math:`(T, B, H)` (:math:`i, f, g, o` or :math:`r, z, n`).
        pre: :math:`(T, B, 4H)` LSTM gate pre-activations; for the GRU the input part :math:`(T, B, 3H)`.
        pre_x: the input part :math:`W_i x_t + b_i` of the pre-activations, :math:`(T, B, 4H)` or :math:`(T, B, 3H)`
            (for the GRU the same tensor as ``pre``); ``None`` in a lean trace
            (:func:`~captum_text_ext.decomposition.kernel_trace.kernel_unroll`): a lean LSTM trace's ``pre`` is the
            pre-activation of :math:`g` alone, :math:`(T, B, H)`, and its ``gates`` have no :math:`o`.
        pre_h: the GRU's hidden part :math:`W_h h_{t-1} + b_h`, :math:`(T, B, 3H)` (in a lean trace its block of
            :math:`n` alone, :math:`(T, B, H)`; ``None`` for the LSTM).
        c: :math:`(T, B, H)` new cell states (LSTM; ``None`` for the GRU).
        h: :math:`(T, B, S)` new hidden states (at real steps; meaningless at padding).
        h_n: :math:`(B, S)` final hidden state (after the last real step in reading order).
        c_n: :math:`(B, H)` final cell state (LSTM) or ``None``.
    """

    cell: str
    layer: int
    direction: int
    weights: CellWeights
    inputs: Tensor
    active: Tensor
    h_prev: Tensor
    c_prev: Optional[Tensor]
    gates: Dict[str, Tensor]
    pre: Tensor
    pre_x: Optional[Tensor]
    pre_h: Optional[Tensor]
    c: Optional[Tensor]
    h: Tensor
    h_n: Tensor
    c_n: Optional[Tensor]

    def reading_order(self) -> range:
        """The time indices in the order this direction processes them (padding steps included)."""
        steps = self.inputs.shape[0]
        return range(steps) if self.direction == 0 else range(steps - 1, -1, -1)


@dataclass
class RecurrentTrace:
    """The unrolled run of a :class:`RecurrentSpec` on a padded batch.

    Attributes:
        spec: the recurrent layer.
        lengths: :math:`(B,)` real steps per column.
        outputs: :math:`(T, B, D S)` the top layer's outputs (0 at padding), as ``nn.LSTM`` returns them.
        h_n: :math:`(K D, B, S)` final hidden states.
        c_n: :math:`(K D, B, H)` final cell states (LSTM) or ``None``.
        layers: ``layers[k][d]`` is the :class:`DirectionTrace` of layer ``k``, direction ``d``.
    """

    spec: RecurrentSpec
    lengths: Tensor
    outputs: Tensor
    h_n: Tensor
    c_n: Optional[Tensor]
    layers: List[List[DirectionTrace]]


def _check_lengths(lengths: Optional[Tensor], steps: int, batch: int, device: torch.device) -> Tensor:
    if lengths is None:
        return torch.full((batch,), steps, dtype=torch.long, device=device)
    if not isinstance(lengths, Tensor) or lengths.dim() != 1 or lengths.shape[0] != batch:
        got = tuple(lengths.shape) if isinstance(lengths, Tensor) else type(lengths).__name__
        raise ValueError(f"Expected `lengths` to be a tensor of shape ({batch},), but got {got}")
    lengths = lengths.to(device=device, dtype=torch.long)
    if batch and (int(lengths.min()) < 0 or int(lengths.max()) > steps):
        raise ValueError(f"Expected `lengths` in [0, {steps}], but got {lengths.tolist()}")
    return lengths


def _check_inputs(spec: RecurrentSpec, inputs: Tensor, c0: Optional[Tensor]) -> None:
    if inputs.dim() != 3 or inputs.shape[-1] != spec.input_size:
        raise ValueError(f"Expected `inputs` of shape (T, B, {spec.input_size}), but got {tuple(inputs.shape)}")
    if spec.cell == "gru" and c0 is not None:
        raise ValueError("Expected `c0` to be None for a GRU, but got a tensor")


def _initial_state(state: Optional[Tensor], spec: RecurrentSpec, batch: int, like: Tensor, name: str) -> Tensor:
    size = spec.state_size if name == "h0" else spec.hidden_size
    shape = (spec.num_layers * spec.num_directions, batch, size)
    if state is None:
        return like.new_zeros(shape)
    if tuple(state.shape) != shape:
        raise ValueError(f"Expected `{name}` to have shape {shape}, but got {tuple(state.shape)}")
    return state


def unroll_direction(
    weights: CellWeights,
    inputs: Tensor,
    active: Tensor,
    h0: Tensor,
    c0: Optional[Tensor],
    direction: int,
    layer: int = 0,
) -> DirectionTrace:
    """Run one direction of one layer over a padded, time-major batch and record every step.

    Args:
        weights: the layer-direction's weights.
        inputs: :math:`(T, B, E)`.
        active: :math:`(T, B)` bool, True at real steps.
        h0: :math:`(B, H)` initial hidden state.
        c0: :math:`(B, H)` initial cell state (LSTM) or ``None`` (GRU).
        direction: 0 reads forwards, 1 backwards.
        layer: recorded in the trace.
    """
    steps, batch = inputs.shape[:2]
    hidden, state = weights.hidden_size, weights.state_size
    flat = inputs.reshape(steps * batch, inputs.shape[-1])  # explicit width: also for an empty batch
    pre_x_all = _affine(flat, weights.weight_ih, weights.bias_ih).reshape(steps, batch, -1)
    h, c = h0, c0
    h_prev = inputs.new_empty(steps, batch, state)
    h_new = inputs.new_zeros(steps, batch, state)
    lstm = weights.cell == "lstm"
    names = GATE_ORDER[weights.cell]
    gates = {name: inputs.new_zeros(steps, batch, hidden) for name in names}
    pre = inputs.new_zeros(steps, batch, pre_x_all.shape[-1])
    c_prev = inputs.new_empty(steps, batch, hidden) if lstm else None
    c_new = inputs.new_zeros(steps, batch, hidden) if lstm else None
    pre_h = None if lstm else inputs.new_zeros(steps, batch, pre_x_all.shape[-1])
    order = range(steps) if direction == 0 else range(steps - 1, -1, -1)
    for t in order:
        keep = active[t].unsqueeze(-1)
        h_prev[t] = h
        if lstm:
            assert c is not None and c_prev is not None and c_new is not None
            c_prev[t] = c
            step = lstm_step(weights, inputs[t], h, c, pre_x_all[t])
            pre[t] = step.pre
            for name in names:
                gates[name][t] = getattr(step, name)
            c_new[t] = step.c
            c = torch.where(keep, step.c, c)
            new_h = step.h
        else:
            assert pre_h is not None
            gru = gru_step(weights, inputs[t], h, pre_x_all[t])
            pre[t] = gru.pre_x
            pre_h[t] = gru.pre_h
            for name in names:
                gates[name][t] = getattr(gru, name)
            new_h = gru.h
        h_new[t] = new_h
        h = torch.where(keep, new_h, h)
    return DirectionTrace(
        cell=weights.cell,
        layer=layer,
        direction=direction,
        weights=weights,
        inputs=inputs,
        active=active,
        h_prev=h_prev,
        c_prev=c_prev,
        gates=gates,
        pre=pre,
        pre_x=pre_x_all,
        pre_h=pre_h,
        c=c_new,
        h=h_new,
        h_n=h,
        c_n=c,
    )


def unroll(
    spec: RecurrentSpec,
    inputs: Tensor,
    lengths: Optional[Tensor] = None,
    h0: Optional[Tensor] = None,
    c0: Optional[Tensor] = None,
) -> RecurrentTrace:
    """Run a stacked LSTM/GRU step by step on a padded, time-major batch and record every gate.

    The result equals ``nn.LSTM`` / ``nn.GRU`` on the ``PackedSequence`` of the same sequences (outputs padded with
    0), or on the padded tensor when ``lengths`` is ``None``.

    Args:
        spec: the recurrent layer (:meth:`RecurrentSpec.from_module`).
        inputs: :math:`(T, B, E)`.
        lengths: :math:`(B,)` real steps per column, each in :math:`[0, T]`; all :math:`T` when ``None``.
        h0: :math:`(K D, B, H)` initial hidden states (zeros when ``None``).
        c0: :math:`(K D, B, H)` initial cell states (LSTM only; zeros when ``None``).

    Returns:
        The :class:`RecurrentTrace`.

    Raises:
        ValueError: for inputs, lengths or states of the wrong shape, or ``c0`` given to a GRU.
    """
    _check_inputs(spec, inputs, c0)
    steps, batch = inputs.shape[:2]
    lengths = _check_lengths(lengths, steps, batch, inputs.device)
    active = torch.arange(steps, device=inputs.device).unsqueeze(1) < lengths.unsqueeze(0)
    h0 = _initial_state(h0, spec, batch, inputs, "h0")
    c0_full = _initial_state(c0, spec, batch, inputs, "c0") if spec.cell == "lstm" else None
    layer_input = inputs
    layers: List[List[DirectionTrace]] = []
    h_n: List[Tensor] = []
    c_n: List[Tensor] = []
    for k in range(spec.num_layers):
        traces = []
        for d in range(spec.num_directions):
            index = k * spec.num_directions + d
            trace = unroll_direction(
                spec.weights[index],
                layer_input,
                active,
                h0[index],
                None if c0_full is None else c0_full[index],
                direction=d,
                layer=k,
            )
            traces.append(trace)
            h_n.append(trace.h_n)
            if trace.c_n is not None:
                c_n.append(trace.c_n)
        layers.append(traces)
        mask = active.unsqueeze(-1)
        layer_input = torch.cat([torch.where(mask, tr.h, torch.zeros_like(tr.h)) for tr in traces], dim=-1)
    return RecurrentTrace(
        spec=spec,
        lengths=lengths,
        outputs=layer_input,
        h_n=torch.stack(h_n),
        c_n=torch.stack(c_n) if c_n else None,
        layers=layers,
    )


@dataclass
class FusedRecurrentCall:
    """One call of the fused ops ``nn.LSTM`` / ``nn.GRU`` / ``nn.LSTMCell`` / ``nn.GRUCell`` run
    (``torch.lstm``, ``torch.gru``, ``torch.lstm_cell``, ``torch.gru_cell``), normalised to the padded, time-major
    form :func:`unroll` takes. A method that intercepts these ops (see :mod:`~captum_text_ext.decomposition.guard`)
    parses the call with :meth:`parse`, runs its own unrolled version on :attr:`inputs`, and hands back
    :meth:`result`.

    The conversions (``PackedSequence`` data to padded and back, ``batch_first`` transposes) are ordinary
    differentiable torch ops, so whatever a method carries through autograd follows them.

    Attributes:
        op: ``"lstm"``, ``"gru"``, ``"lstm_cell"`` or ``"gru_cell"``.
        spec: the recurrent layer (the call's weight tensors, not detached).
        inputs: :math:`(T, B, E)` padded, time-major inputs (:math:`T = 1` for a cell).
        lengths: :math:`(B,)` real steps per column (packed input), else ``None``.
        h0: :math:`(K D, B, H)` initial hidden states.
        c0: :math:`(K D, B, H)` initial cell states (LSTM) or ``None``.
        packed: whether the call received ``PackedSequence`` data.
        batch_first: whether the call's (unpacked) input was batch-first.
        dropout: dropout between layers, and ``train``: whether it is applied.
    """

    op: str
    spec: RecurrentSpec
    inputs: Tensor
    lengths: Optional[Tensor]
    h0: Tensor
    c0: Optional[Tensor]
    packed: bool = False
    batch_first: bool = False
    dropout: float = 0.0
    train: bool = False

    OPS = ("lstm", "gru", "lstm_cell", "gru_cell")

    @classmethod
    def parse(cls, op: str, args: Sequence[Any], kwargs: Optional[Dict[str, Any]] = None) -> "FusedRecurrentCall":
        """Read the arguments of ``torch.<op>`` (both overloads of ``torch.lstm`` / ``torch.gru``: padded with
        ``batch_first``, or packed data with ``batch_sizes``).

        Raises:
            TypeError: for keyword arguments to the fused layer op.
            ValueError: for an unknown ``op``.
        """
        kwargs = dict(kwargs or {})
        if op not in cls.OPS:
            raise ValueError(f"Expected `op` to be one of {cls.OPS}, but got {op!r}")
        cell = "lstm" if op.startswith("lstm") else "gru"
        if op.endswith("_cell"):
            names = ("input", "hx", "w_ih", "w_hh", "b_ih", "b_hh")
            values = list(args) + [kwargs.pop(name, None) for name in names[len(args) :]]
            x, hx, w_ih, w_hh, b_ih, b_hh = values
            weights = CellWeights(cell, w_ih, w_hh, b_ih, b_hh)
            h0, c0 = (hx[0], hx[1]) if cell == "lstm" else (hx, None)
            return cls(
                op,
                RecurrentSpec(cell, 1, False, (weights,)),
                x.unsqueeze(0),
                None,
                h0.unsqueeze(0),
                None if c0 is None else c0.unsqueeze(0),
            )
        if kwargs:
            raise TypeError(f"keyword arguments to torch.{op} are not supported (got {sorted(kwargs)})")
        second = args[1]
        packed = isinstance(second, Tensor) and not second.is_floating_point()
        if packed:
            data, batch_sizes, hx, params, has_biases, num_layers, dropout, train, bidirectional = args
            batch_first = False
        else:
            data, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first = args
        spec = RecurrentSpec.from_flat_weights(
            cell,
            params,
            bool(has_biases),
            int(num_layers),
            bool(bidirectional),
        )
        h0, c0 = (hx[0], hx[1]) if cell == "lstm" else (hx, None)
        lengths: Optional[Tensor] = None
        if packed:
            steps = int(batch_sizes.shape[0])
            x, lengths = torch._pad_packed_sequence(data, batch_sizes, False, 0.0, steps)
        else:
            x = data.transpose(0, 1) if batch_first else data
        return cls(
            op,
            spec,
            x,
            lengths,
            h0,
            c0,
            packed,
            bool(batch_first),
            float(dropout),
            bool(train),
        )

    def result(self, outputs: Tensor, h_n: Tensor, c_n: Optional[Tensor] = None) -> Any:
        """What ``torch.<op>`` returns, from time-major padded ``outputs`` :math:`(T, B, D H)` and final states:
        ``(output, h_n[, c_n])`` for a layer, ``(h', c')`` for ``lstm_cell``, ``h'`` for ``gru_cell``."""
        if self.op == "lstm_cell":
            assert c_n is not None
            return h_n[0], c_n[0]
        if self.op == "gru_cell":
            return h_n[0]
        if self.packed:
            assert self.lengths is not None
            out = torch._pack_padded_sequence(outputs, self.lengths, False)[0]
        else:
            out = outputs.transpose(0, 1) if self.batch_first else outputs
        return (out, h_n) if c_n is None else (out, h_n, c_n)

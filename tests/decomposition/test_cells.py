"""The unrolled cells reproduce nn.LSTM / nn.GRU exactly (float64, <= 1e-12) over a zoo of configurations."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.overrides import TorchFunctionMode

from captum_text_ext.decomposition.cells import (
    CellWeights,
    FusedRecurrentCall,
    RecurrentSpec,
    gru_step,
    lstm_step,
    unroll,
)

TOL = 1e-12

# (cell, num_layers, bidirectional, bias, batch_first, packed, with_state[, proj_size])
ZOO = [
    ("lstm", 2, True, True, True, True, True, 2),
    ("lstm", 1, False, False, False, False, False, 3),
    ("lstm", 1, False, True, True, False, False),
    ("lstm", 1, True, True, False, True, True),
    ("lstm", 2, True, False, True, True, False),
    ("lstm", 3, False, True, False, False, True),
    ("lstm", 2, False, True, True, True, True),
    ("gru", 1, True, True, True, False, False),
    ("gru", 2, True, True, False, True, True),
    ("gru", 3, True, False, True, True, False),
    ("gru", 1, False, True, False, True, True),
]


def _ids(case: tuple) -> str:
    cell, layers, bi, bias, batch_first, packed, state, *proj = case
    return f"{cell}-L{layers}-{'bi' if bi else 'uni'}-{'bias' if bias else 'nobias'}-" + (
        f"{'bf' if batch_first else 'tm'}-{'packed' if packed else 'padded'}-{'h0' if state else 'zeros'}"
    ) + (f"-proj{proj[0]}" if proj else "")


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("case", ZOO, ids=_ids)
def test_unroll_equals_torch(case: tuple) -> None:
    cell, layers, bi, bias, batch_first, packed, with_state, *proj = case
    torch.manual_seed(len(_ids(case)))
    extra = {"proj_size": proj[0]} if proj else {}
    cls = nn.LSTM if cell == "lstm" else nn.GRU
    module = cls(3, 4, num_layers=layers, bidirectional=bi, bias=bias, batch_first=batch_first, **extra).double()
    steps, batch = 5, 4
    lengths = torch.tensor([5, 2, 4, 1]) if packed else torch.full((batch,), steps)
    x_tm = torch.randn(steps, batch, 3, dtype=torch.float64)
    directions = 2 if bi else 1
    state_size = proj[0] if proj else 4
    h0 = torch.randn(layers * directions, batch, state_size, dtype=torch.float64) if with_state else None
    c0 = torch.randn(layers * directions, batch, 4, dtype=torch.float64) if with_state and cell == "lstm" else None
    x_in = x_tm.transpose(0, 1) if batch_first else x_tm
    hx = None if h0 is None else ((h0, c0) if cell == "lstm" else h0)
    if packed:
        out, state = module(pack_padded_sequence(x_in, lengths, batch_first=batch_first, enforce_sorted=False), hx)
        out = pad_packed_sequence(out, batch_first=batch_first, total_length=steps)[0]
    else:
        out, state = module(x_in, hx)
    expected_out = out.transpose(0, 1) if batch_first else out
    expected_h = state[0] if cell == "lstm" else state
    trace = unroll(RecurrentSpec.from_module(module), x_tm, lengths if packed else None, h0, c0)
    assert trace.outputs.shape == expected_out.shape
    assert (trace.outputs - expected_out).abs().max() < TOL
    assert (trace.h_n - expected_h).abs().max() < TOL
    if cell == "lstm":
        assert trace.c_n is not None and (trace.c_n - state[1]).abs().max() < TOL
    else:
        assert trace.c_n is None


def test_trace_records_the_cell_equations() -> None:
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 2, bidirectional=True).double()
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    trace = unroll(RecurrentSpec.from_module(lstm), x, torch.tensor([4, 3]))
    backward = trace.layers[0][1]
    assert list(backward.reading_order()) == [3, 2, 1, 0]
    assert backward.c is not None and backward.c_prev is not None
    g = backward.gates
    c = g["f"] * backward.c_prev + g["i"] * g["g"]
    assert torch.equal(c, backward.c)
    assert torch.equal(g["o"] * torch.tanh(backward.c), backward.h)
    # padding: column 1 has 3 steps; the backward direction starts at t = 2 from the zero state
    assert not backward.active[3, 1] and torch.equal(backward.h_prev[2, 1], torch.zeros(2, dtype=torch.float64))
    # the state after the last real step in reading order is h_n
    assert torch.equal(backward.h_n[1], backward.h[0, 1])
    assert torch.equal(trace.layers[0][0].h_n[1], trace.layers[0][0].h[2, 1])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_steps_equal_torch_cells(cell: str) -> None:
    torch.manual_seed(1)
    module = (nn.LSTMCell if cell == "lstm" else nn.GRUCell)(3, 4).double()
    weights = CellWeights(cell, module.weight_ih, module.weight_hh, module.bias_ih, module.bias_hh)
    x, h, c = (torch.randn(2, n, dtype=torch.float64) for n in (3, 4, 4))
    if cell == "lstm":
        expected_h, expected_c = module(x, (h, c))
        step = lstm_step(weights, x, h, c)
        assert (step.h - expected_h).abs().max() < TOL and (step.c - expected_c).abs().max() < TOL
    else:
        assert (gru_step(weights, x, h).h - module(x, h)).abs().max() < TOL


def test_gate_blocks_follow_pytorch_order() -> None:
    lstm = nn.LSTM(2, 3)
    weights = RecurrentSpec.from_module(lstm).cell_weights(0, 0)
    for k, name in enumerate("ifgo"):
        w_i, w_h, b_i, b_h = weights.gate(name)
        assert torch.equal(w_i, lstm.weight_ih_l0[3 * k : 3 * (k + 1)])
        assert torch.equal(w_h, lstm.weight_hh_l0[3 * k : 3 * (k + 1)])
        assert b_i is not None and b_h is not None
        assert torch.equal(
            weights.gate_bias(name), lstm.bias_ih_l0[3 * k : 3 * (k + 1)] + lstm.bias_hh_l0[3 * k : 3 * (k + 1)]
        )
    gru = RecurrentSpec.from_module(nn.GRU(2, 3, bias=False)).cell_weights(0, 0)
    assert gru.gate("n")[2] is None and gru.gate_bias("r") is None
    with pytest.raises(ValueError, match="Expected a gru gate name"):
        gru.gate("i")


def test_refusals_name_argument_expected_and_got() -> None:
    with pytest.raises(TypeError, match="Expected an nn.LSTM or nn.GRU, but got RNN"):
        RecurrentSpec.from_module(nn.RNN(3, 4))
    spec = RecurrentSpec.from_module(nn.LSTM(3, 4))
    with pytest.raises(ValueError, match=r"Expected `inputs` of shape \(T, B, 3\), but got \(5, 3\)"):
        unroll(spec, torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"Expected `lengths` in \[0, 5\], but got \[6\]"):
        unroll(spec, torch.zeros(5, 1, 3), torch.tensor([6]))
    with pytest.raises(ValueError, match=r"Expected `h0` to have shape \(1, 1, 4\), but got \(1, 2, 4\)"):
        unroll(spec, torch.zeros(5, 1, 3), h0=torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="Expected `c0` to be None for a GRU"):
        unroll(RecurrentSpec.from_module(nn.GRU(3, 4)), torch.zeros(5, 1, 3), c0=torch.zeros(1, 1, 4))
    with pytest.raises(ValueError, match="Expected `cell` to be one of"):
        CellWeights("rnn", torch.zeros(4, 3), torch.zeros(4, 4))
    with pytest.raises(ValueError, match="Expected no projection weights for a GRU"):
        CellWeights("gru", torch.zeros(6, 3), torch.zeros(6, 1), weight_hr=torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"hidden block of the state's size, but got .* weight_hr \(2, 3\)"):
        CellWeights("lstm", torch.zeros(8, 3), torch.zeros(8, 2), weight_hr=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="Expected 2 CellWeights"):
        RecurrentSpec("lstm", 1, True, RecurrentSpec.from_module(nn.LSTM(3, 4)).weights)


def test_zero_length_columns_keep_their_initial_state() -> None:
    spec = RecurrentSpec.from_module(nn.GRU(3, 2).double())
    h0 = torch.randn(1, 2, 2, dtype=torch.float64)
    trace = unroll(spec, torch.randn(3, 2, 3, dtype=torch.float64), torch.tensor([0, 3]), h0)
    assert torch.equal(trace.h_n[0, 0], h0[0, 0]) and torch.equal(trace.outputs[:, 0], torch.zeros(3, 2).double())


@pytest.mark.parametrize("layers,bi", list(itertools.product([1, 2], [False, True])))
def test_unroll_keeps_the_input_dtype(layers: int, bi: bool) -> None:
    spec = RecurrentSpec.from_module(nn.LSTM(3, 2, num_layers=layers, bidirectional=bi))
    trace = unroll(spec, torch.randn(4, 2, 3))
    assert trace.outputs.dtype == torch.float32 and trace.outputs.shape == (4, 2, 2 * (2 if bi else 1))


class _Capture(TorchFunctionMode):
    """Records the fused recurrent op a module calls, and runs it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in FusedRecurrentCall.OPS:
            self.calls.append((name, args, kwargs))
        return func(*args, **kwargs)


@pytest.mark.parametrize(
    "module,packed",
    [
        (nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True), True),
        (nn.GRU(3, 4, batch_first=True), False),
        (nn.LSTM(3, 4), False),
        (nn.LSTMCell(3, 4), False),
        (nn.GRUCell(3, 4), False),
    ],
    ids=["lstm-packed", "gru-batch-first", "lstm-time-major", "lstm-cell", "gru-cell"],
)
def test_fused_calls_are_parsed_and_rebuilt(module: nn.Module, packed: bool) -> None:
    torch.manual_seed(2)
    module = module.double()
    cellwise = isinstance(module, (nn.LSTMCell, nn.GRUCell))
    x = torch.randn(2, 3, dtype=torch.float64) if cellwise else torch.randn(2, 5, 3, dtype=torch.float64)
    arg = pack_padded_sequence(x, torch.tensor([5, 2]), batch_first=True, enforce_sorted=False) if packed else x
    with _Capture() as capture:
        module(arg)
    ((op, args, kwargs),) = capture.calls
    expected = getattr(torch, op)(*args, **kwargs)
    call = FusedRecurrentCall.parse(op, args, kwargs)
    assert call.packed == packed and (call.lengths is not None) == packed
    trace = unroll(call.spec, call.inputs, call.lengths, call.h0, call.c0)
    rebuilt = call.result(trace.outputs, trace.h_n, trace.c_n)
    expected = expected if isinstance(expected, tuple) else (expected,)
    rebuilt = rebuilt if isinstance(rebuilt, tuple) else (rebuilt,)
    assert len(rebuilt) == len(expected)
    assert all((r - e).abs().max() < TOL for r, e in zip(rebuilt, expected))


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_fused_call_refusals_and_projections() -> None:
    with pytest.raises(ValueError, match="Expected `op` to be one of"):
        FusedRecurrentCall.parse("rnn_tanh", ())
    lstm = nn.LSTM(3, 4, proj_size=2)
    with _Capture() as capture:
        lstm(torch.randn(5, 1, 3))
    ((op, args, kwargs),) = capture.calls
    spec = FusedRecurrentCall.parse(op, args, kwargs).spec
    assert spec.state_size == 2 and spec.hidden_size == 4
    assert spec.weights[0].weight_hr is lstm.weight_hr_l0

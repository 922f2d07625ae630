"""The stepped LSTM and GRU traces (one loop over the steps that keeps what it computes) record the lean kernel
trace's values, and LSTMLRP gives the same relevance whichever of the two traces it reads (float64)."""

from __future__ import annotations

import itertools
from typing import List, Optional

import pytest
import torch
from torch import Tensor, nn

from captum_text_ext.attr import LSTMLRP
from captum_text_ext.decomposition.cells import RecurrentSpec
from captum_text_ext.decomposition.kernel_trace import kernel_direction_traces
from captum_text_ext.decomposition.lrp import recurrent
from captum_text_ext.decomposition.stepped_trace import (
    STEPPED_MIN_BATCH,
    stepped_direction_traces,
    uses_stepped_loop,
)

EXACT = 1e-12
LENGTHS: List[Optional[List[int]]] = [None, [6, 2, 5, 1, 6], [0, 3, 6, 2, 6], [6, 6, 6, 6, 6]]


def _at_real_steps(values: Tensor, active: Tensor) -> Tensor:
    return torch.where(active.unsqueeze(-1), values, torch.zeros_like(values))


@pytest.mark.parametrize("layers, bidirectional, bias", list(itertools.product([1, 2], [False, True], [True, False])))
@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("cell, initial", [("lstm", False), ("lstm", True), ("gru", False), ("gru", True)])
def test_the_stepped_trace_records_the_lean_kernel_trace(
    layers: int, bidirectional: bool, bias: bool, lengths: Optional[List[int]], cell: str, initial: bool
) -> None:
    """Outputs, states before each step (the carried state at padding), final states and, at real steps, gates,
    cell states, ``pre`` (the LSTM's z^g, the GRU's input part) and the GRU's ``pre_h`` agree to 1e-12; an empty
    column keeps its initial state."""
    torch.manual_seed(3)
    kind = nn.LSTM if cell == "lstm" else nn.GRU
    module = kind(5, 4, num_layers=layers, bidirectional=bidirectional, bias=bias).double()
    spec = RecurrentSpec.from_module(module).detached()
    x = torch.randn(6, 5, 5, dtype=torch.float64)
    length_tensor = None if lengths is None else torch.tensor(lengths)
    states = layers * (2 if bidirectional else 1)
    h0 = torch.randn(states, 5, 4, dtype=torch.float64) if initial else None
    c0 = torch.randn(states, 5, 4, dtype=torch.float64) if initial and cell == "lstm" else None
    kernel = list(kernel_direction_traces(spec, x, length_tensor, h0, c0, lean=True))
    stepped = list(stepped_direction_traces(spec, x, length_tensor, h0, c0))
    assert [(t.layer, t.direction) for t, _ in stepped] == [(t.layer, t.direction) for t, _ in kernel]
    for (mine, my_outputs), (theirs, their_outputs) in zip(stepped, kernel, strict=True):
        assert (my_outputs - their_outputs).abs().max() < EXACT
        assert mine.cell == cell and set(mine.gates) == set(theirs.gates)
        assert (mine.pre_x is None) == (theirs.pre_x is None) and (mine.c is None) == (theirs.c is None)
        for name in ("h_prev", "c_prev", "h", "h_n", "c_n"):
            value, reference = getattr(mine, name), getattr(theirs, name)
            assert (value is None) == (reference is None), name
            if value is not None:
                assert (value - reference).abs().max() < EXACT, name
        pairs = [("pre", mine.pre, theirs.pre), ("c", mine.c, theirs.c), ("pre_h", mine.pre_h, theirs.pre_h)]
        pairs += [(name, mine.gates[name], theirs.gates[name]) for name in mine.gates]
        for name, value, reference in pairs:
            if value is None or reference is None:
                assert value is None and reference is None, name
                continue
            assert value.shape == reference.shape, name
            assert (_at_real_steps(value - reference, mine.active)).abs().max() < EXACT, name


def test_uses_stepped_loop_only_for_a_gru_or_plain_lstm_on_a_large_cpu_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    lstm, gru = RecurrentSpec.from_module(nn.LSTM(3, 2)), RecurrentSpec.from_module(nn.GRU(3, 2))
    projected = RecurrentSpec.from_module(nn.LSTM(3, 4, proj_size=2))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    large = torch.zeros(4, STEPPED_MIN_BATCH, 3)
    assert uses_stepped_loop(lstm, large)
    assert not uses_stepped_loop(lstm, large[:, 1:])
    assert uses_stepped_loop(gru, large)
    assert not uses_stepped_loop(projected, large)
    assert not uses_stepped_loop(lstm, large.to("meta"))
    assert not uses_stepped_loop(lstm, large[:0])
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # the loop's per-step ops do not use a second thread
    assert not uses_stepped_loop(lstm, large)
    assert uses_stepped_loop(lstm, torch.zeros(4, 2 * STEPPED_MIN_BATCH, 3))


def test_the_stepped_trace_refuses_what_it_does_not_trace() -> None:
    x = torch.zeros(4, 2, 3)
    with pytest.raises(ValueError, match="an LSTM without a projection or a GRU"):
        next(stepped_direction_traces(RecurrentSpec.from_module(nn.LSTM(3, 4, proj_size=2)), x))
    with pytest.raises(ValueError, match="at least one step and column"):
        next(stepped_direction_traces(RecurrentSpec.from_module(nn.LSTM(3, 2)), x[:0]))
    with pytest.raises(ValueError, match="Expected `inputs` of shape"):
        next(stepped_direction_traces(RecurrentSpec.from_module(nn.LSTM(3, 2)), torch.zeros(4, 2, 5)))


class _PaddedBiRNN(nn.Module):
    """Packed sequences of random lengths, the head on the final states and the max over the outputs."""

    def __init__(self, cell: str) -> None:
        super().__init__()
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(4, 3, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(12, 3)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        h_n = state[0] if isinstance(state, tuple) else state
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, padding_value=-1e4, total_length=x.shape[1])
        return self.head(torch.cat([h_n[-2], h_n[-1], out.max(dim=1).values], dim=-1))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bias_factor", [0.0, 1.0])
def test_lstmlrp_gives_the_same_relevance_from_either_trace(
    cell: str, bias_factor: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of :data:`STEPPED_MIN_BATCH` padded sentences through two bidirectional layers: the stepped trace (the
    default there) and the kernel trace give the same relevance to 1e-12."""
    torch.manual_seed(4)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    model = _PaddedBiRNN(cell).double().eval()
    batch = STEPPED_MIN_BATCH
    x = torch.randn(batch, 7, 4, dtype=torch.float64)
    lengths = torch.randint(1, 8, (batch,))
    lengths[0] = 7
    target = torch.randint(0, 3, (batch,))
    assert uses_stepped_loop(RecurrentSpec.from_module(model.rnn), x.transpose(0, 1))
    method = LSTMLRP(model, bias_factor=bias_factor)
    stepped = method.attribute(x, target=target, additional_forward_args=(lengths,))
    monkeypatch.setattr(recurrent, "uses_stepped_loop", lambda spec, inputs: False)
    kernel = method.attribute(x, target=target, additional_forward_args=(lengths,))
    assert (stepped - kernel).abs().max() < EXACT
    assert stepped.abs().max() > 0

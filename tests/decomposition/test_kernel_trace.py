"""`kernel_unroll` (fused torch kernels) records the same trace as the step-by-step `unroll` (float64)."""

from __future__ import annotations

import itertools
from typing import List, Optional, Tuple

import pytest
import torch
from torch import Tensor, nn

from captum_text_ext.decomposition.cells import DirectionTrace, RecurrentSpec, unroll
from captum_text_ext.decomposition import kernel_trace
from captum_text_ext.decomposition.kernel_trace import kernel_unroll

EXACT = 1e-12
LENGTHS: List[Optional[List[int]]] = [None, [6, 2, 5, 1], [6, 6, 6, 6], [0, 3, 6, 2]]


def _fields(trace: DirectionTrace) -> List[Tuple[str, Optional[Tensor]]]:
    """Every recorded tensor, with ``h`` only at real steps (it is meaningless at padding)."""
    real_h = torch.where(trace.active.unsqueeze(-1), trace.h, torch.zeros_like(trace.h))
    gates = [(f"gate {name}", value) for name, value in trace.gates.items()]
    return [
        ("h_prev", trace.h_prev), ("c_prev", trace.c_prev), ("c", trace.c), ("h", real_h), ("pre", trace.pre),
        ("pre_x", trace.pre_x), ("pre_h", trace.pre_h), ("h_n", trace.h_n), ("c_n", trace.c_n), *gates,
    ]


@pytest.mark.parametrize(
    "cell, layers, bidirectional, projection, bias",
    [c for c in itertools.product(["lstm", "gru"], [1, 2], [False, True], [False, True], [True, False])
     if not (c[0] == "gru" and c[3])],
)
@pytest.mark.parametrize("lengths", LENGTHS)
def test_kernel_unroll_records_what_unroll_records(
    cell: str, layers: int, bidirectional: bool, projection: bool, bias: bool, lengths: Optional[List[int]]
) -> None:
    torch.manual_seed(0)
    extra = {"proj_size": 3} if projection else {}
    module = (nn.LSTM if cell == "lstm" else nn.GRU)(
        5, 4, num_layers=layers, bidirectional=bidirectional, bias=bias, **extra
    ).double()
    spec = RecurrentSpec.from_module(module).detached()
    x = torch.randn(6, 4, 5, dtype=torch.float64)
    states = layers * (2 if bidirectional else 1)
    h0 = torch.randn(states, 4, 3 if projection else 4, dtype=torch.float64)
    c0 = torch.randn(states, 4, 4, dtype=torch.float64) if cell == "lstm" else None
    length_tensor = None if lengths is None else torch.tensor(lengths)
    fast, slow = kernel_unroll(spec, x, length_tensor, h0, c0), unroll(spec, x, length_tensor, h0, c0)
    assert (fast.outputs - slow.outputs).abs().max() < EXACT
    assert (fast.h_n - slow.h_n).abs().max() < EXACT
    if cell == "lstm":
        assert fast.c_n is not None and slow.c_n is not None
        assert (fast.c_n - slow.c_n).abs().max() < EXACT
    for fast_layer, slow_layer in zip(fast.layers, slow.layers, strict=True):
        for fast_dir, slow_dir in zip(fast_layer, slow_layer, strict=True):
            assert torch.equal(fast_dir.active, slow_dir.active)
            for (name, mine), (_, theirs) in zip(_fields(fast_dir), _fields(slow_dir), strict=True):
                assert (mine is None) == (theirs is None), name
                if mine is not None and theirs is not None:
                    assert (mine - theirs).abs().max() < EXACT, name


@pytest.mark.parametrize("layers, bidirectional, bias", list(itertools.product([1, 2], [False, True], [True, False])))
@pytest.mark.parametrize("lengths", LENGTHS)
def test_a_lean_trace_holds_the_full_traces_values_without_o_and_pre_x(
    layers: int, bidirectional: bool, bias: bool, lengths: Optional[List[int]]
) -> None:
    """``lean=True`` (what LRP reads): ``pre`` is the g block (the gates i, f, g come from one product over
    [x; h_prev]), the gates lack o, ``pre_x`` is None, and everything else is the full trace's (float64)."""
    torch.manual_seed(2)
    module = nn.LSTM(5, 4, num_layers=layers, bidirectional=bidirectional, bias=bias).double()
    spec = RecurrentSpec.from_module(module).detached()
    x = torch.randn(6, 4, 5, dtype=torch.float64)
    length_tensor = None if lengths is None else torch.tensor(lengths)
    lean, full = kernel_unroll(spec, x, length_tensor, lean=True), kernel_unroll(spec, x, length_tensor)
    assert torch.equal(lean.outputs, full.outputs) and torch.equal(lean.h_n, full.h_n)
    assert lean.c_n is not None and full.c_n is not None and (lean.c_n - full.c_n).abs().max() < EXACT
    for lean_layer, full_layer in zip(lean.layers, full.layers, strict=True):
        for mine, theirs in zip(lean_layer, full_layer, strict=True):
            assert mine.pre_x is None and set(mine.gates) == {"i", "f", "g"} and mine.pre.shape[-1] == 4
            assert (mine.pre - theirs.pre[..., 8:12]).abs().max() < EXACT
            for name in ("i", "f", "g"):
                assert (mine.gates[name] - theirs.gates[name]).abs().max() < EXACT, name
            for name in ("h_prev", "c_prev", "c"):
                assert (getattr(mine, name) - getattr(theirs, name)).abs().max() < EXACT, name


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("lengths", LENGTHS)
def test_the_joint_cell_loop_of_a_small_bidirectional_layer_equals_one_loop_per_direction(
    layers: int, lengths: Optional[List[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small bidirectional LSTM's lean traces take both directions' cell states from one loop
    (``JOINT_CELL_ENTRIES``); above the limit each direction loops alone. Same ops per element: equal bit for bit."""
    torch.manual_seed(4)
    module = nn.LSTM(5, 4, num_layers=layers, bidirectional=True).double()
    spec = RecurrentSpec.from_module(module).detached()
    x = torch.randn(6, 4, 5, dtype=torch.float64)
    h0, c0 = (torch.randn(2 * layers, 4, 4, dtype=torch.float64) for _ in range(2))
    length_tensor = None if lengths is None else torch.tensor(lengths)
    joint = kernel_unroll(spec, x, length_tensor, h0, c0, lean=True)
    monkeypatch.setattr(kernel_trace, "JOINT_CELL_ENTRIES", 0)
    apart = kernel_unroll(spec, x, length_tensor, h0, c0, lean=True)
    assert joint.c_n is not None and apart.c_n is not None and torch.equal(joint.c_n, apart.c_n)
    for joint_layer, apart_layer in zip(joint.layers, apart.layers, strict=True):
        for mine, theirs in zip(joint_layer, apart_layer, strict=True):
            for (name, value), (_, other) in zip(_fields(mine), _fields(theirs), strict=True):
                assert (value is None and other is None) or torch.equal(value, other), name


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("lengths", LENGTHS)
def test_a_lean_gru_trace_holds_the_n_block_of_pre_h_and_no_pre_x(bidirectional: bool, lengths: Optional[List[int]]
                                                                  ) -> None:
    """A lean GRU trace: ``pre_x`` is None, ``pre_h`` the hidden part's block of n, the rest the full trace's."""
    torch.manual_seed(3)
    module = nn.GRU(5, 4, num_layers=2, bidirectional=bidirectional).double()
    spec = RecurrentSpec.from_module(module).detached()
    x = torch.randn(6, 4, 5, dtype=torch.float64)
    length_tensor = None if lengths is None else torch.tensor(lengths)
    lean, full = kernel_unroll(spec, x, length_tensor, lean=True), kernel_unroll(spec, x, length_tensor)
    assert torch.equal(lean.outputs, full.outputs) and torch.equal(lean.h_n, full.h_n)
    for lean_layer, full_layer in zip(lean.layers, full.layers, strict=True):
        for mine, theirs in zip(lean_layer, full_layer, strict=True):
            assert mine.pre_x is None and mine.pre_h is not None and theirs.pre_h is not None
            assert torch.equal(mine.pre_h, theirs.pre_h[..., 8:]) and torch.equal(mine.pre, theirs.pre)
            for name in ("r", "z", "n"):
                assert torch.equal(mine.gates[name], theirs.gates[name]), name


def test_kernel_unroll_returns_the_modules_values() -> None:
    """Without padding the outputs and h_n are the fused kernel's, i.e. ``nn.LSTM``'s exactly; with padding (each
    direction on the padded tensor) they equal ``nn.LSTM`` on the packed sequences up to rounding."""
    torch.manual_seed(1)
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True).double()
    x, lengths = torch.randn(5, 3, 3, dtype=torch.float64), torch.tensor([5, 2, 4])
    spec = RecurrentSpec.from_module(lstm).detached()
    with torch.no_grad():
        out, (h_n, c_n) = lstm(x)
        packed_out, (packed_h_n, packed_c_n) = lstm(nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False))
    trace = kernel_unroll(spec, x)
    assert torch.equal(trace.outputs, out) and torch.equal(trace.h_n, h_n)
    assert trace.c_n is not None and (trace.c_n - c_n).abs().max() < EXACT
    trace = kernel_unroll(spec, x, lengths)
    assert (trace.outputs - nn.utils.rnn.pad_packed_sequence(packed_out)[0]).abs().max() < EXACT
    assert (trace.h_n - packed_h_n).abs().max() < EXACT
    assert trace.c_n is not None and (trace.c_n - packed_c_n).abs().max() < EXACT


def test_kernel_unroll_checks_its_arguments() -> None:
    spec = RecurrentSpec.from_module(nn.LSTM(3, 4))
    with pytest.raises(ValueError, match="inputs"):
        kernel_unroll(spec, torch.zeros(5, 3))
    with pytest.raises(ValueError, match="lengths"):
        kernel_unroll(spec, torch.zeros(5, 1, 3), torch.tensor([6]))
    with pytest.raises(ValueError, match="h0"):
        kernel_unroll(spec, torch.zeros(5, 1, 3), h0=torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="c0"):
        kernel_unroll(RecurrentSpec.from_module(nn.GRU(3, 4)), torch.zeros(5, 1, 3), c0=torch.zeros(1, 1, 4))

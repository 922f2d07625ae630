"""The op guard: dispatch to rules, refusal with a TypeError naming the op, and the shared model contexts."""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Tuple

import pytest
import torch
from torch import nn

from captum_text_ext.decomposition import (
    ModuleTracker,
    OpGuard,
    OpTable,
    UnsupportedOperationError,
    frozen_modules,
    modules_of,
    op_name,
    ops_named,
)


def _route(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    return func(*args, **kwargs)


def _table() -> OpTable:
    table = OpTable("Demo")
    table.register("routing", ops_named(["view", "__getitem__"]), _route)
    table.register("activations", ops_named(["tanh"]), _route)
    return table


def test_untracked_ops_run_untouched_and_tracked_ops_reach_their_rule() -> None:
    guard = OpGuard(_table())
    x = torch.ones(2, 3, requires_grad=True)
    mask = torch.tensor([True, False])
    with guard:
        y = torch.exp(mask.float())  # no tracked tensor: not the guard's business
        z = torch.tanh(x.view(3, 2))
        shape, bigger = x.shape, x > 0  # metadata and comparisons carry no relevance
    assert y.shape == (2,) and z.requires_grad and shape == (2, 3) and bigger.dtype == torch.bool
    assert [(op, group) for op, _, group in guard.log] == [
        ("torch.Tensor.view", "routing"),
        ("torch.tanh", "activations"),
    ]


def test_refusal_is_a_type_error_naming_op_module_and_what_is_supported() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.LayerNorm(2)))
    x = torch.ones(1, 2, requires_grad=True)
    with ModuleTracker([model]) as tracker:
        guard = OpGuard(_table(), tracker)
        with pytest.raises(TypeError) as info:
            guard.call(lambda t: model[1](t), x)
    err = info.value
    assert isinstance(err, UnsupportedOperationError)
    assert err.op == "torch.nn.functional.layer_norm" and err.module == "1.0"
    assert str(err).startswith(
        "Demo has no rule for `torch.nn.functional.layer_norm` (called in module '1.0' of type LayerNorm) on the path"
    )
    assert str(err).endswith("Supported: routing: view, __getitem__; activations: tanh.")
    assert tracker.stack == [] or tracker.current is None


def test_refusal_inside_binary_operator_is_not_lost() -> None:
    x = torch.ones(2, requires_grad=True)
    with pytest.raises(UnsupportedOperationError, match="`torch.Tensor.mul`"):
        OpGuard(_table()).call(lambda t: t * t, x)


def test_in_place_ops_and_out_arguments_are_refused() -> None:
    x = torch.ones(2, requires_grad=True).clone()
    guard = OpGuard(_table())
    with pytest.raises(UnsupportedOperationError, match="`torch.Tensor.add_`: in-place"):
        guard.call(lambda t: t.add_(1), x)
    with pytest.raises(UnsupportedOperationError, match="in-place"):
        guard.call(lambda t: t.__setitem__(0, 2.0), x)
    with pytest.raises(UnsupportedOperationError, match="`torch.tanh`: in-place ops and `out=`"):
        guard.call(lambda t: torch.tanh(t, out=torch.empty(2)), x)
    assert torch.equal(x, torch.ones(2))


def test_paused_guard_lets_everything_through() -> None:
    guard = OpGuard(_table())
    x = torch.ones(2, requires_grad=True)
    with guard:
        with guard.paused():
            y = torch.exp(x)
    assert torch.equal(y.detach(), torch.exp(torch.ones(2)))


def test_parameters_are_constants_not_tracked() -> None:
    layer = nn.Linear(2, 2)
    with OpGuard(_table()):
        out = torch.exp(layer.weight)  # a parameter alone is not on the path from the inputs
    assert out.shape == (2, 2)


def test_frozen_modules_restores_flags_also_after_an_exception() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
    model[0].bias.requires_grad_(False)
    model[1].eval()
    with pytest.raises(RuntimeError, match="boom"):
        with frozen_modules([model]):
            assert not any(m.training for m in model.modules())
            assert not any(p.requires_grad for p in model.parameters())
            raise RuntimeError("boom")
    assert [m.training for m in model.modules()] == [True, True, False]
    assert [p.requires_grad for p in model.parameters()] == [True, False]


def test_module_tracker_removes_its_hooks() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Tanh())
    with ModuleTracker([model]) as tracker:
        seen = []
        model[1].register_forward_pre_hook(lambda m, a: seen.append(tracker.current[0]))  # type: ignore[index]
        model(torch.ones(1, 2))
    assert seen == ["1"]
    assert len(model[0]._forward_pre_hooks) == 0 and len(model[0]._forward_hooks) == 0
    assert len(model[1]._forward_pre_hooks) == 1 and len(model[1]._forward_hooks) == 0  # only the test's hook


def test_modules_of_finds_the_modules_behind_a_forward_function() -> None:
    model = nn.Linear(2, 2)
    assert modules_of(model) == [model]
    assert modules_of(model.forward) == [model]
    assert modules_of(functools.partial(torch.add, model)) == [model]

    def closure(x: torch.Tensor) -> torch.Tensor:
        return model(x)

    assert modules_of(closure) == [model]
    assert modules_of(torch.tanh) == []


def test_op_names() -> None:
    assert op_name(torch.nn.functional.linear) == "torch.nn.functional.linear"
    assert op_name(torch.Tensor.mul) == "torch.Tensor.mul"
    assert op_name(torch.lstm) == "torch.lstm"
    assert [op_name(f) for f in ops_named(["softmax"])] == [
        "torch.softmax", "torch.Tensor.softmax", "torch.nn.functional.softmax", "torch.special.softmax",
    ]  # fmt: skip

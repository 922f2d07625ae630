"""The op guard: dispatch to rules, refusal with a TypeError naming the op and the module, the op groups both rule
tables are built from, and the per-call, per-thread hooks."""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, Dict, List, Tuple

import pytest
import torch
from torch import nn

from captum_text_ext.decomposition import (
    GROUPS,
    ModuleTracker,
    OpGuard,
    OpTable,
    RandomOpCheck,
    RandomOpError,
    ScopedHooks,
    UnsupportedOperationError,
    modules_of,
    op_name,
    ops_named,
)
from captum_text_ext.decomposition.cd import REFUSED as CD_REFUSED
from captum_text_ext.decomposition.guard import SUPPORTED_OPS_PAGE
from captum_text_ext.decomposition.lrp import REFUSED as LRP_REFUSED
from captum_text_ext.decomposition.lrp import TRANSFORMER_REFUSED
from captum_text_ext.decomposition.supported import MODULE_EXAMPLES, method_tables, supported_modules, supported_ops


def _route(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    return func(*args, **kwargs)


def _table() -> OpTable:
    table = OpTable("Demo")
    table.register(GROUPS["routing"], "routing", _route, ["view", "__getitem__"])
    table.register(GROUPS["element-wise activations"], "activations", _route, ["tanh"])
    table.refuse(GROUPS["normalization"], "no normalization here", ["layer_norm"])
    return table


def test_a_table_keeps_its_own_rules_and_the_first_registration_of_an_op() -> None:
    """Tables built with the same registrations share how ops map to registrations, never the rules: each table's
    lookup gives its own handler. A later registration of a whole group takes only the ops without a rule, a lookup
    between registrations sees the later ones, and an op named outside its group is refused at once."""

    def first(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        return func(*args, **kwargs)

    def second(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        return func(*args, **kwargs)

    tables = []
    for handler in (first, second):
        table = OpTable("Demo")
        table.register(GROUPS["additions"], "named", handler, ["add"])
        assert table.lookup(torch.add) is not None and table.lookup(torch.sub) is None
        table.register(GROUPS["additions"], "the rest", _route)
        tables.append(table)
    for table, handler in zip(tables, (first, second)):
        added, subtracted = table.lookup(torch.add), table.lookup(torch.sub)
        assert added is not None and added.handler is handler and added.name == "named"
        assert subtracted is not None and subtracted.handler is _route and subtracted.name == "the rest"
        assert table.rule_for("add") is added and table.coverage()["sub"] is subtracted
        assert table.lookup(torch.tanh) is None and table.rule_for("tanh") is None
    with pytest.raises(ValueError, match="'tanh'"):
        OpTable("Demo").register(GROUPS["additions"], "wrong", _route, ["tanh"])


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


def test_refusal_is_a_type_error_naming_op_module_and_the_supported_ops_page() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.LayerNorm(2), nn.Softplus()))
    x = torch.ones(1, 2, requires_grad=True)
    with ScopedHooks() as hooks:
        tracker = ModuleTracker([model], hooks)
        guard = OpGuard(_table(), tracker)
        with pytest.raises(TypeError) as info:
            guard.call(lambda t: model[1](t), x)
        assert tracker.current() is None
    err = info.value
    assert isinstance(err, UnsupportedOperationError)
    assert err.op == "torch.nn.functional.layer_norm" and err.module == "1.0"
    assert str(err) == (
        "Demo has no rule for `torch.nn.functional.layer_norm` (called in module '1.0' of type LayerNorm): no "
        f"normalization here (normalization). The supported operations of each method are listed at {SUPPORTED_OPS_PAGE}."
    )
    with pytest.raises(UnsupportedOperationError) as unknown:
        OpGuard(_table()).call(lambda t: torch.nn.functional.softplus(t), x)
    assert str(unknown.value).startswith("Demo has no rule for `torch.nn.functional.softplus` on the path")
    assert unknown.value.module is None


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


def test_ops_without_tracked_inputs_run_without_autograd() -> None:
    """What the parameters alone give is a constant of the decomposition: the model needs no frozen parameters."""
    layer = nn.Linear(2, 2)
    x = torch.ones(1, 2, requires_grad=True)
    with OpGuard(_table()):
        scaled = layer.weight * 2
        moved = x.view(2, 1)
    assert layer.weight.requires_grad and not scaled.requires_grad and moved.requires_grad


def test_random_ops_are_refused_by_name_and_the_model_is_not_switched() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train()
    x = torch.ones(1, 2, requires_grad=True)
    with pytest.raises(RandomOpError, match="`torch.nn.functional.dropout`.*evaluation mode"):
        OpGuard(_table()).call(model[1], x)
    with pytest.raises(RandomOpError, match="`torch.randn_like`"):
        OpGuard(_table()).call(lambda t: torch.randn_like(t), x)
    with pytest.raises(RandomOpError, match="HiddenUnitSaliency has no rule for `torch.nn.functional.dropout`"):
        with RandomOpCheck("HiddenUnitSaliency"):
            model(x)
    assert model.training and model[1].training
    with RandomOpCheck("HiddenUnitSaliency"):
        assert model.eval()(x).shape == (1, 2)


def test_module_tracker_names_the_running_module_and_its_hooks_go_on_exit() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Tanh())
    seen: List[Any] = []
    with ScopedHooks() as hooks:
        tracker = ModuleTracker([model], hooks)
        model[1].register_forward_pre_hook(lambda m, a: seen.append(tracker.current()))
        model(torch.ones(1, 2))
    assert seen == [("1", model[1])]
    assert len(model[0]._forward_pre_hooks) == 0 and len(model[0]._forward_hooks) == 0
    assert len(model[1]._forward_pre_hooks) == 1 and len(model[1]._forward_hooks) == 0  # only the test's hook


def test_scoped_hooks_act_only_in_their_thread_and_go_on_exit_after_an_error() -> None:
    model = nn.Linear(2, 2)
    x = torch.ones(1, 2)
    plain = model(x)
    other: Dict[str, torch.Tensor] = {}
    with pytest.raises(RuntimeError, match="boom"):
        with ScopedHooks() as hooks:
            hooks.forward(model, lambda module, args, output: output * 0)
            thread = threading.Thread(target=lambda: other.setdefault("out", model(x)))
            thread.start()
            thread.join()
            assert model(x).abs().max() == 0
            raise RuntimeError("boom")
    assert torch.equal(other["out"], plain)  # another thread ran the model untouched
    assert len(model._forward_hooks) == 0 and torch.equal(model(x), plain)


def test_every_op_of_every_group_has_a_rule_or_a_stated_refusal_in_each_table() -> None:
    tables = method_tables()
    refused = {"LSTMLRP": LRP_REFUSED, "ContextualDecomposition": CD_REFUSED,
               'TransformerLRP(rule="attnlrp")': TRANSFORMER_REFUSED, 'TransformerLRP(rule="cp")': TRANSFORMER_REFUSED}
    assert sorted(tables) == sorted(refused)
    for method, table in tables.items():
        for group in GROUPS.values():
            for op in group.ops:
                rule = table.rule_for(op)
                assert rule is not None, f"{method} neither handles nor refuses {op!r} ({group.name})"
                assert rule.group == group.name
                if rule.handler is None:
                    assert rule.refusal == refused[method][group.name]
                assert ops_named([op]), f"{op!r} names no torch function"
                for func in ops_named([op]):
                    assert table.lookup(func) is not None
    listed = {row.group: row for row in supported_ops()}
    assert list(listed) == list(GROUPS)
    assert all(set(row.rules) == set(tables) for row in listed.values())


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


def test_the_modules_table_is_read_from_running_the_modules_and_the_rule_tables() -> None:
    rows = {row.module: row for row in supported_modules()}
    assert list(rows) == [name for name, _, _ in MODULE_EXAMPLES]
    tables = method_tables()
    for row in rows.values():
        assert row.ops and len(row.ops) == len(row.groups)
        for op, group in zip(row.ops, row.groups):
            assert group == (GROUPS_BY_OP.get(op, "none"))
        for method, table in tables.items():
            handled = all(table.rule_for(op) is not None and table.rule_for(op).handler is not None for op in row.ops)
            assert handled == ("refused" not in row.rules[method]), (row.module, method)
    assert rows["nn.Conv2d"].ops == ("conv2d",) and rows["nn.LSTM(proj_size=S)"].ops == ("lstm",)
    assert rows["nn.RNN"].rules["LSTMLRP"] == "refused: no rule for ``rnn_tanh``"
    assert rows["nn.EmbeddingBag(mode='sum' or 'mean'): its looked-up rows"].groups == (
        "routing", "products with a constant matrix"
    )


GROUPS_BY_OP = {op: group.name for group in GROUPS.values() for op in group.ops}

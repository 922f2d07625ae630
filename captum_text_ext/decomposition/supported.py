"""What each decomposition method does with each op group and with each common ``nn`` module, read from the rule
tables themselves (the docs page "Supported operations" is generated from :func:`supported_ops` and
:func:`supported_modules`).

Examples:
    >>> rows = {row.group: row for row in supported_ops()}
    >>> rows["weighted layers"].rules["LSTMLRP"], rows["weighted layers"].rules["ContextualDecomposition"]
    ('epsilon rule', 'linear, bias split by magnitude')
    >>> rows["normalization"].rules["LSTMLRP"]
    'refused: normalization layers divide by a statistic of the value itself; LSTMLRP has no rule for them'
    >>> conv = {row.module: row for row in supported_modules()}["nn.Conv2d"]
    >>> conv.ops, conv.groups, conv.rules["LSTMLRP"]
    (('conv2d',), ('weighted layers',), 'epsilon rule')
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from captum_text_ext.decomposition.bags import BagLookup
from captum_text_ext.decomposition.cd import CDRun, cd_op_table
from captum_text_ext.decomposition.guard import OpTable, is_tracked
from captum_text_ext.decomposition.lrp import PRESETS, EpsilonRule, LRPRun, lrp_op_table, transformer_op_table
from captum_text_ext.decomposition.ops import GROUPS, group_of, op_name

__all__ = ["MODULE_EXAMPLES", "SupportedGroup", "SupportedModule", "method_tables", "supported_modules", "supported_ops"]


@dataclass(frozen=True)
class SupportedGroup:
    """One op group and what each method does with it.

    Attributes:
        group: the group's name.
        what: what its ops do to a value.
        ops: the group's short op names.
        rules: method name → the rule's name, or ``"refused: <reason>"``; several rules are joined by ``"; "``
            with the ops they apply to.
    """

    group: str
    what: str
    ops: Tuple[str, ...]
    rules: Dict[str, str]


def method_tables() -> Dict[str, OpTable]:
    """Each decomposition method's op table, by method name (built for a one-phrase, one-token run); TransformerLRP
    once per preset."""
    lrp = lrp_op_table(LRPRun(EpsilonRule()))
    cd = cd_op_table(CDRun.for_masks("phrase", [torch.ones(1, 1, 1, dtype=torch.bool)]))
    tables = {lrp.method: lrp, cd.method: cd}
    for preset in PRESETS:
        tables[f'TransformerLRP(rule="{preset}")'] = transformer_op_table(LRPRun(EpsilonRule(), "TransformerLRP"), preset)
    return tables


def _describe(table: OpTable, ops: Tuple[str, ...]) -> str:
    by_rule: Dict[str, List[str]] = {}
    for op in ops:
        rule = table.rule_for(op)
        text = "no rule" if rule is None else rule.name if rule.refusal is None else f"refused: {rule.refusal}"
        by_rule.setdefault(text, []).append(op)
    if len(by_rule) == 1:
        return next(iter(by_rule))
    return "; ".join(f"{text} ({', '.join(names)})" for text, names in by_rule.items())


def supported_ops() -> List[SupportedGroup]:
    """Every op group, in the docs' order, with what each method does with it."""
    tables = method_tables()
    return [
        SupportedGroup(group.name, group.what, group.ops, {name: _describe(t, group.ops) for name, t in tables.items()})
        for group in GROUPS.values()
    ]


@dataclass(frozen=True)
class SupportedModule:
    """One ``nn`` module and what each method does with the ops it calls on its input.

    Attributes:
        module: the module, as the docs show it (e.g. ``"nn.Conv2d"``).
        ops: the short names of the ops it calls on a tensor computed from the inputs, in call order, each once.
        groups: the op group of each op (``"none"`` for an op in no group).
        rules: method name → the rules of its ops (joined by ``"; "``), or why it refuses one.
    """

    module: str
    ops: Tuple[str, ...]
    groups: Tuple[str, ...]
    rules: Dict[str, str]


def _bag_rows(mode: str) -> Callable[[Tensor], Tensor]:
    """What a layer method runs for an ``nn.EmbeddingBag`` of ``mode``: its map of the looked-up rows."""
    bag = nn.EmbeddingBag(6, 3, mode=mode).double()
    ids, offsets = torch.tensor([1, 2, 3]), torch.tensor([0, 2])
    lookup = BagLookup.parse(bag, (ids, offsets), {}, bag(ids, offsets).detach())
    return lookup.combine


def _call(module: nn.Module) -> Callable[[Tensor], Any]:
    return lambda x: module.double()(x)


def _self_attention() -> Callable[[Tensor], Any]:
    attention = nn.MultiheadAttention(4, 2).double().eval()
    return lambda x: attention(x, x, x)


MODULE_EXAMPLES: Tuple[Tuple[str, Callable[[], Callable[[Tensor], Any]], Tuple[int, ...]], ...] = (
    ("nn.Linear", lambda: _call(nn.Linear(3, 2)), (2, 3)),
    ("nn.Conv1d", lambda: _call(nn.Conv1d(3, 2, 2)), (1, 3, 5)),
    ("nn.Conv2d", lambda: _call(nn.Conv2d(1, 2, (2, 3))), (1, 1, 4, 3)),
    ("nn.LSTM", lambda: _call(nn.LSTM(3, 2)), (4, 1, 3)),
    ("nn.LSTM(proj_size=S)", lambda: _call(nn.LSTM(3, 4, proj_size=2)), (4, 1, 3)),
    ("nn.GRU", lambda: _call(nn.GRU(3, 2)), (4, 1, 3)),
    ("nn.LSTMCell", lambda: _call(nn.LSTMCell(3, 2)), (1, 3)),
    ("nn.GRUCell", lambda: _call(nn.GRUCell(3, 2)), (1, 3)),
    ("nn.RNN", lambda: _call(nn.RNN(3, 2)), (4, 1, 3)),
    ("nn.ReLU", lambda: _call(nn.ReLU()), (2, 3)),
    ("nn.Tanh", lambda: _call(nn.Tanh()), (2, 3)),
    ("nn.GELU", lambda: _call(nn.GELU()), (2, 3)),
    ("nn.Dropout (evaluation mode)", lambda: _call(nn.Dropout(0.5).eval()), (2, 3)),
    ("nn.MaxPool1d", lambda: _call(nn.MaxPool1d(2)), (1, 2, 4)),
    ("nn.AdaptiveMaxPool1d", lambda: _call(nn.AdaptiveMaxPool1d(1)), (1, 2, 4)),
    ("nn.AvgPool1d", lambda: _call(nn.AvgPool1d(2)), (1, 2, 4)),
    ("nn.MaxPool2d", lambda: _call(nn.MaxPool2d(2)), (1, 1, 4, 4)),
    ("nn.Flatten", lambda: _call(nn.Flatten()), (2, 3, 2)),
    ("nn.Softmax", lambda: _call(nn.Softmax(-1)), (2, 3)),
    ("nn.LayerNorm", lambda: _call(nn.LayerNorm(3)), (2, 3)),
    ("nn.MultiheadAttention", _self_attention, (3, 1, 4)),
    ("nn.EmbeddingBag(mode='sum' or 'mean'): its looked-up rows", lambda: _bag_rows("mean"), (3, 3)),
    ("nn.EmbeddingBag(mode='max'): its looked-up rows", lambda: _bag_rows("max"), (3, 3)),
)
"""The modules :func:`supported_modules` runs: a name, a function that makes the call, and an input shape."""


class _OpRecorder(TorchFunctionMode):
    """Records the ops called on tensors computed from the input (what a method's guard would hand to a rule)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: List[str] = []

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: Tuple[Any, ...] = (), kwargs: Optional[Dict[str, Any]] = None
    ) -> Any:
        kwargs = kwargs or {}
        leaves = [a for a in list(args) + list(kwargs.values()) for a in (a if isinstance(a, (list, tuple)) else [a])]
        if not any(is_tracked(a) for a in leaves):
            with torch.no_grad():
                return func(*args, **kwargs)
        result = func(*args, **kwargs)
        outputs = result if isinstance(result, (list, tuple)) else [result]
        if any(isinstance(o, Tensor) and o.is_floating_point() for o in outputs):
            parts = op_name(func).split(".")
            name = parts[-2] if parts[-1] == "__get__" else parts[-1]
            if name not in self.ops:
                self.ops.append(name)
        return result


def _module_rules(table: OpTable, ops: Tuple[str, ...]) -> str:
    described: List[str] = []
    for op in ops:
        rule = table.rule_for(op)
        text = f"refused: no rule for ``{op}``" if rule is None else (
            rule.name if rule.handler is not None else f"refused ({rule.group})"
        )
        if text not in described:
            described.append(text)
    return "; ".join(described)


def supported_modules() -> List[SupportedModule]:
    """Every module of :data:`MODULE_EXAMPLES` with the ops it calls on its input (recorded by running it on a tiny
    float64 input) and what each method's table does with them."""
    tables = method_tables()
    rows = []
    for name, make, shape in MODULE_EXAMPLES:
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. oneDNN's note on LSTM projections
            call = make()
            x = torch.randn(*shape, dtype=torch.float64).requires_grad_(True)
            with _OpRecorder() as recorder:
                call(x)
        ops = tuple(recorder.ops)
        groups = []
        for op in ops:
            try:
                groups.append(group_of(op).name)
            except KeyError:
                groups.append("none")
        rows.append(SupportedModule(name, ops, tuple(groups), {m: _module_rules(t, ops) for m, t in tables.items()}))
    return rows

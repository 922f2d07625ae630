"""What each decomposition method does with each op group, read from the rule tables themselves (the docs page
"Supported operations" is generated from :func:`supported_ops`).

Examples:
    >>> rows = {row.group: row for row in supported_ops()}
    >>> rows["weighted layers"].rules["LSTMLRP"], rows["weighted layers"].rules["ContextualDecomposition"]
    ('epsilon rule', 'linear, bias split by magnitude')
    >>> rows["normalization"].rules["LSTMLRP"]
    'refused: normalization layers divide by a statistic of the value itself; LSTMLRP has no rule for them'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch

from captum_text_ext.decomposition.cd import CDRun, cd_op_table
from captum_text_ext.decomposition.guard import OpTable
from captum_text_ext.decomposition.lrp import PRESETS, EpsilonRule, LRPRun, lrp_op_table, transformer_op_table
from captum_text_ext.decomposition.ops import GROUPS

__all__ = ["SupportedGroup", "method_tables", "supported_ops"]


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

"""The op table of :class:`~captum_text_ext.attr.LSTMLRP`: a rule for every op of every group of
:mod:`~captum_text_ext.decomposition.ops`, or a refusal on purpose (:data:`REFUSED`)."""

from __future__ import annotations

from typing import Dict

from captum_text_ext.decomposition.guard import OpTable
from captum_text_ext.decomposition.lrp.recurrent import recurrent_rule
from captum_text_ext.decomposition.lrp.relevance import LRPRun
from captum_text_ext.decomposition.lrp.rules import (
    activation_rule,
    add_rule,
    avg_pool_rule,
    convolution_rule,
    gate_rule,
    linear_rule,
    matmul_rule,
    negation_rule,
    product_rule,
    reduction_rule,
    route,
)
from captum_text_ext.decomposition.ops import GROUPS

__all__ = ["REFUSED", "lrp_op_table", "register_lrp_rules"]

REFUSED: Dict[str, str] = {
    "normalization": "normalization layers divide by a statistic of the value itself; LSTMLRP has no rule for them",
    "attention": "fused attention kernels have no LSTMLRP rule",
}
"""The groups LSTMLRP refuses on purpose, with the reason."""

EPSILON = "epsilon rule"


def lrp_op_table(run: LRPRun) -> OpTable:
    """The ops LSTMLRP supports, each with its rule (equations in :mod:`~captum_text_ext.decomposition.lrp`)."""
    table = OpTable(run.method)
    register_lrp_rules(table, run)
    for name, reason in REFUSED.items():
        table.refuse(GROUPS[name], reason)
    return table


def register_lrp_rules(table: OpTable, run: LRPRun) -> None:
    """Give every op of ``table`` that has no rule yet LSTMLRP's rule, if it has one (the normalization and
    attention groups stay open): the transformer table registers its own rules first, then these."""
    recurrent = GROUPS["recurrent layers"]
    for op in recurrent.ops:
        table.register(recurrent, "LSTM/GRU rule (Arras et al.)", recurrent_rule(run, op), [op])
    table.register(GROUPS["weighted layers"], EPSILON, linear_rule(run), ["linear"])
    table.register(GROUPS["weighted layers"], EPSILON, convolution_rule(run), ["conv1d", "conv2d"])
    table.register(GROUPS["sums over data"], EPSILON, reduction_rule(run, mean=False), ["sum"])
    table.register(GROUPS["sums over data"], EPSILON, reduction_rule(run, mean=True), ["mean"])
    table.register(GROUPS["products with a constant matrix"], EPSILON, matmul_rule(run))
    table.register(GROUPS["average pooling"], EPSILON, avg_pool_rule(run))
    table.register(GROUPS["additions"], "epsilon rule; a sum of selections routes", add_rule(run))
    table.register(GROUPS["products"], "all to the non-gate factor; a 0/1 mask selects", product_rule(run, divide=False))
    table.register(GROUPS["quotients"], "all to the non-gate factor", product_rule(run, divide=True))
    table.register(GROUPS["negation"], "pass-through", negation_rule(run))
    table.register(GROUPS["element-wise activations"], "pass-through", activation_rule(run))
    table.register(GROUPS["dropout"], "pass-through (evaluation mode)", activation_rule(run))
    table.register(GROUPS["max and min"], "winner takes all", route)
    table.register(GROUPS["max pooling"], "winner takes all", route)
    table.register(GROUPS["gates"], "gate (no relevance)", gate_rule(run))
    for name in ("routing", "assembling", "packing", "constants"):
        table.register(GROUPS[name], "routing (own backward)", route)

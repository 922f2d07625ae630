"""The op table of :class:`~captum_text_ext.attr.ContextualDecomposition`: a rule for every op of every group of
:mod:`~captum_text_ext.decomposition.ops`, or a refusal on purpose (:data:`REFUSED`)."""

from __future__ import annotations

from typing import Dict

from captum_text_ext.decomposition.cd.decomposed import CDRun
from captum_text_ext.decomposition.cd.recurrent import recurrent_rule
from captum_text_ext.decomposition.cd.routing import (
    constant_rule,
    dropout_rule,
    iter_rule,
    pack_rule,
    route_rule,
    unpack_rule,
)
from captum_text_ext.decomposition.cd.rules import (
    add_rule,
    convolution_rule,
    gate_rule,
    linear_map_rule,
    linear_rule,
    max_pool_rule,
    max_rule,
    negation_rule,
    reduction_rule,
    relu_rule,
    scale_rule,
    shapley_rule,
)
from captum_text_ext.decomposition.guard import OpTable
from captum_text_ext.decomposition.ops import GROUPS

__all__ = ["REFUSED", "cd_op_table"]

REFUSED: Dict[str, str] = {
    "normalization": "normalization layers divide by a statistic of the value itself; ContextualDecomposition has no "
    "rule for them",
    "attention": "fused attention kernels have no ContextualDecomposition rule",
}
"""The groups ContextualDecomposition refuses on purpose, with the reason."""

BIAS_SPLIT = "linear, bias split by magnitude"
LINEAR = "linear"


def cd_op_table(run: CDRun) -> OpTable:
    """The ops ContextualDecomposition supports, each with its rule (equations in
    :mod:`~captum_text_ext.decomposition.cd`)."""
    table = OpTable(run.method)
    recurrent = GROUPS["recurrent layers"]
    for op in recurrent.ops:
        table.register(recurrent, "LSTM/GRU CD (Murdoch et al.)", recurrent_rule(run, op), [op])
    table.register(GROUPS["weighted layers"], BIAS_SPLIT, linear_rule(run), ["linear"])
    table.register(GROUPS["weighted layers"], BIAS_SPLIT, convolution_rule(run), ["conv1d", "conv2d"])
    table.register(GROUPS["sums over data"], LINEAR, reduction_rule(run))
    table.register(GROUPS["products with a constant matrix"], LINEAR, linear_map_rule(run))
    table.register(GROUPS["average pooling"], LINEAR, linear_map_rule(run))
    table.register(GROUPS["additions"], "parts add, constants are biases", add_rule(run))
    table.register(GROUPS["products"], "parts scaled by the constant", scale_rule(run, divide=False))
    table.register(GROUPS["quotients"], "parts scaled by the constant", scale_rule(run, divide=True))
    table.register(GROUPS["negation"], "parts negated", negation_rule(run))
    activations = GROUPS["element-wise activations"]
    table.register(activations, "ReLU rule (Singh et al.)", relu_rule(run), ["relu"])
    table.register(activations, "two-player Shapley split", shapley_rule(run))
    table.register(GROUPS["max and min"], "positions by the value", max_rule(run))
    table.register(GROUPS["max pooling"], "positions by the value", max_pool_rule(run))
    table.register(GROUPS["gates"], "gate (fixed)", gate_rule(run))
    table.register(GROUPS["dropout"], "identity (evaluation mode)", dropout_rule(run))
    table.register(GROUPS["routing"], "routing", iter_rule(run), ["__iter__"])
    table.register(GROUPS["routing"], "routing", route_rule(run, multi=False))
    table.register(GROUPS["assembling"], "routing (constants to γ)", route_rule(run, multi=True))
    table.register(GROUPS["packing"], "routing", pack_rule(run), ["_pack_padded_sequence"])
    table.register(GROUPS["packing"], "routing", unpack_rule(run), ["_pad_packed_sequence"])
    table.register(GROUPS["constants"], "constants", constant_rule(run))
    for name, reason in REFUSED.items():
        table.refuse(GROUPS[name], reason)
    return table

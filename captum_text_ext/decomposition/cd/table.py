"""The op table of :class:`~captum_text_ext.attr.ContextualDecomposition`: a rule for every op of every group of
:mod:`~captum_text_ext.decomposition.ops`, or a refusal on purpose (:data:`REFUSED`)."""

from __future__ import annotations

from typing import Dict, Optional, Sequence

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
from captum_text_ext.decomposition.cd.transformer import (
    layer_norm_rule,
    matmul_rule,
    multi_head_attention_rule,
    passes_scores,
    rms_norm_rule,
    sdpa_rule,
)
from captum_text_ext.decomposition.guard import Handler, OpTable
from captum_text_ext.decomposition.ops import GROUPS, OpGroup

__all__ = ["REFUSED", "cd_op_table"]

REFUSED: Dict[str, str] = {
    "normalization": "ContextualDecomposition has rules for LayerNorm and RMSNorm only; group, instance and batch "
    "normalization and F.normalize have none",
    "attention": "a fused attention kernel (PyTorch's evaluation-mode fast path) has no step where the attention "
    "weights can be held fixed; nn.MultiheadAttention and nn.TransformerEncoderLayer take their unfused path under "
    "the guard, which ContextualDecomposition supports: call the module instead",
}
"""The ops of these groups without a rule are refused on purpose, with the reason."""

BIAS_SPLIT = "linear, bias split by magnitude"
LINEAR = "linear"


def cd_op_table(run: CDRun) -> OpTable:
    """The ops ContextualDecomposition supports, each with its rule (equations in
    :mod:`~captum_text_ext.decomposition.cd`)."""
    table = OpTable(run.method)

    def register(group: OpGroup, rule: str, handler: Handler, ops: Optional[Sequence[str]] = None) -> None:
        table.register(group, rule, passes_scores(run, handler), ops)  # attention scores pass as values only

    recurrent = GROUPS["recurrent layers"]
    for op in recurrent.ops:
        register(recurrent, "LSTM/GRU CD (Murdoch et al.)", recurrent_rule(run, op), [op])
    register(GROUPS["weighted layers"], BIAS_SPLIT, linear_rule(run), ["linear"])
    register(GROUPS["weighted layers"], BIAS_SPLIT, convolution_rule(run), ["conv1d", "conv2d"])
    register(GROUPS["sums over data"], LINEAR, reduction_rule(run))
    register(GROUPS["products with a constant matrix"], "linear; of two decomposed tensors (QKᵀ): the value only",
             matmul_rule(run))
    register(GROUPS["average pooling"], LINEAR, linear_map_rule(run))
    register(GROUPS["additions"], "parts add, constants are biases", add_rule(run))
    register(GROUPS["products"], "parts scaled by the constant", scale_rule(run, divide=False))
    register(GROUPS["quotients"], "parts scaled by the constant", scale_rule(run, divide=True))
    register(GROUPS["negation"], "parts negated", negation_rule(run))
    activations = GROUPS["element-wise activations"]
    register(activations, "ReLU rule (Singh et al.)", relu_rule(run), ["relu"])
    register(activations, "two-player Shapley split", shapley_rule(run))
    register(GROUPS["max and min"], "positions by the value", max_rule(run))
    register(GROUPS["max pooling"], "positions by the value", max_pool_rule(run))
    table.register(GROUPS["gates"], "gate (fixed)", gate_rule(run))
    register(GROUPS["dropout"], "identity (evaluation mode)", dropout_rule(run))
    register(GROUPS["routing"], "routing", iter_rule(run), ["__iter__"])
    register(GROUPS["routing"], "routing", route_rule(run, multi=False))
    register(GROUPS["assembling"], "routing (constants to γ)", route_rule(run, multi=True))
    register(GROUPS["packing"], "routing", pack_rule(run), ["_pack_padded_sequence"])
    register(GROUPS["packing"], "routing", unpack_rule(run), ["_pad_packed_sequence"])
    table.register(GROUPS["constants"], "constants", constant_rule(run))
    normalization, attention = GROUPS["normalization"], GROUPS["attention"]
    register(normalization, "mean removed per part, actual scale, bias pending (CD-T)", layer_norm_rule(run),
             ["layer_norm"])
    register(normalization, "actual scale (CD-T)", rms_norm_rule(run), ["rms_norm"])
    weights_fixed = "attention weights fixed, values linear (CD-T)"
    register(attention, weights_fixed, sdpa_rule(run), ["scaled_dot_product_attention"])
    register(attention, weights_fixed, multi_head_attention_rule(run), ["multi_head_attention_forward"])
    for name, reason in REFUSED.items():
        table.refuse(GROUPS[name], reason)
    return table

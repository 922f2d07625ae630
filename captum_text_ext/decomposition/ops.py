"""The torch ops a decomposition method can meet, named once and grouped by what they do to a value.

Both rule tables (:func:`~captum_text_ext.decomposition.lrp.lrp_op_table` and
:func:`~captum_text_ext.decomposition.cd.cd_op_table`) are built from these groups: every op of every group gets a
rule in each table or is refused by that method on purpose, with the reason (``REFUSED`` in each table module). So
an op is added in one place, and both methods either handle it or refuse it by construction. The docs page
"Supported operations" is generated from the same tables.

An op is named by its short name and found in every torch namespace that defines it (:func:`ops_named`): ``"tanh"`` is
``torch.tanh``, ``torch.Tensor.tanh`` and ``torch.nn.functional.tanh``.

Examples:
    >>> GROUPS["element-wise activations"].ops[:3]
    ('relu', 'relu6', 'leaky_relu')
    >>> group_of("conv1d").name
    'weighted layers'
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Sequence, Tuple

import torch

__all__ = [
    "GROUPS",
    "NAMESPACES",
    "OpGroup",
    "bind_args",
    "functions_named",
    "group_of",
    "op_name",
    "ops_named",
]

NAMESPACES: Tuple[Any, ...] = (
    torch,
    torch.Tensor,
    torch.nn.functional,
    torch._C._nn,
    torch.special,
    torch._C._VariableFunctions,
)
"""Where an op's short name is looked up."""


@dataclass(frozen=True)
class OpGroup:
    """Ops that do the same kind of thing to a value.

    Attributes:
        name: the group's name, as the docs and refusals show it.
        ops: the short op names.
        what: one line: what the ops do to a value.
    """

    name: str
    ops: Tuple[str, ...]
    what: str


_GROUP_LIST = (
    OpGroup(
        "recurrent layers",
        ("lstm", "gru", "lstm_cell", "gru_cell"),
        "fused LSTM/GRU layers and cells (packed or padded, stacked, bidirectional)",
    ),
    OpGroup("weighted layers", ("linear", "conv1d", "conv2d"), "an affine map with constant weights and bias"),
    OpGroup("sums over data", ("sum", "mean"), "a bias-free linear map that adds entries"),
    OpGroup(
        "products with a constant matrix",
        ("matmul", "mm", "bmm", "__matmul__"),
        "a bias-free linear map (one operand must be a constant or a gate)",
    ),
    OpGroup(
        "average pooling",
        ("avg_pool1d", "adaptive_avg_pool1d"),
        "a bias-free linear map over windows of positions",
    ),
    OpGroup(
        "additions",
        ("add", "__add__", "__radd__", "sub", "subtract", "__sub__", "__rsub__", "rsub"),
        "sums of operands; a constant operand acts as a bias",
    ),
    OpGroup(
        "products",
        ("mul", "multiply", "__mul__", "__rmul__"),
        "element-wise products (one factor must be a constant or a gate)",
    ),
    OpGroup(
        "quotients",
        ("div", "divide", "true_divide", "__truediv__", "__rtruediv__"),
        "division by a constant",
    ),
    OpGroup("negation", ("neg", "negative", "__neg__"), "the sign flipped"),
    OpGroup(
        "element-wise activations",
        (
            "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "softplus", "softsign",
            "tanh", "sigmoid", "hardtanh", "hardsigmoid", "hardswish", "logsigmoid", "tanhshrink", "softshrink",
            "hardshrink", "threshold", "_threshold", "prelu", "rrelu", "clamp", "clip", "clamp_min", "clamp_max",
        ),
        "a function applied entry by entry",
    ),  # fmt: skip
    OpGroup(
        "max and min",
        ("max", "min", "amax", "amin", "maximum", "minimum", "fmax", "fmin"),
        "the largest (smallest) entry, picked by the actual value",
    ),
    OpGroup(
        "max pooling",
        (
            "max_pool1d", "max_pool1d_with_indices", "_max_pool1d", "adaptive_max_pool1d",
            "adaptive_max_pool1d_with_indices", "_adaptive_max_pool1d",
        ),
        "the largest entry of each window of positions",
    ),  # fmt: skip
    OpGroup("gates", ("softmax",), "weights computed from the value (attention weights), held fixed"),
    OpGroup(
        "dropout",
        ("dropout", "alpha_dropout", "feature_alpha_dropout", "dropout1d", "dropout2d", "dropout3d"),
        "the identity in evaluation mode, random in training mode",
    ),
    OpGroup(
        "routing",
        (
            "__getitem__", "view", "view_as", "reshape", "reshape_as", "flatten", "unflatten", "squeeze",
            "unsqueeze", "transpose", "t", "permute", "movedim", "moveaxis", "swapaxes", "swapdims", "contiguous",
            "clone", "to", "type_as", "double", "float", "cpu", "cuda", "expand", "expand_as", "repeat", "tile",
            "broadcast_to", "split", "split_with_sizes", "chunk", "tensor_split", "unbind", "narrow", "select",
            "index_select", "gather", "take_along_dim", "flip", "roll", "pad", "repeat_interleave", "ravel",
            "squeeze_copy", "unsqueeze_copy", "view_copy", "__iter__", "T", "mT",
        ),
        "moves, copies or selects the entries of its first argument",
    ),  # fmt: skip
    OpGroup(
        "assembling",
        ("cat", "concat", "concatenate", "stack", "hstack", "vstack", "where", "masked_fill"),
        "puts entries of several arguments together; constant entries it brings in are constants",
    ),
    OpGroup(
        "packing",
        ("_pack_padded_sequence", "_pad_packed_sequence"),
        "PackedSequence packing and unpacking",
    ),
    OpGroup(
        "constants",
        (
            "zeros_like", "ones_like", "empty_like", "full_like", "new_zeros", "new_ones", "new_full", "new_empty",
            "new_tensor",
        ),
        "uses a tensor only for its shape, dtype and device",
    ),  # fmt: skip
    OpGroup(
        "normalization",
        ("layer_norm", "group_norm", "batch_norm", "instance_norm", "rms_norm", "normalize"),
        "divides by a statistic of the value itself",
    ),
    OpGroup(
        "attention",
        (
            "scaled_dot_product_attention", "multi_head_attention_forward", "_native_multi_head_attention",
            "_transformer_encoder_layer_fwd", "baddbmm",
        ),
        "fused attention kernels (``baddbmm``: an attention mask plus a batch of products, as in "
        "``multi_head_attention_forward``)",
    ),  # fmt: skip
)

GROUPS: Dict[str, OpGroup] = {group.name: group for group in _GROUP_LIST}
"""Every group, by name, in the order the docs list them."""


def group_of(op: str) -> OpGroup:
    """The group that holds the short op name ``op``.

    Raises:
        KeyError: for an op in no group.
    """
    for group in _GROUP_LIST:
        if op in group.ops:
            return group
    raise KeyError(f"{op!r} is in no op group")


def op_name(func: Callable[..., Any]) -> str:
    """A readable name: ``torch.nn.functional.linear``, ``torch.Tensor.mul``, ``torch.lstm`` (cached per function:
    the guard names every op it dispatches).

    >>> op_name(torch.Tensor.mul), op_name(torch.nn.functional.linear)
    ('torch.Tensor.mul', 'torch.nn.functional.linear')
    """
    try:
        return _cached_op_name(func)
    except TypeError:  # an unhashable callable
        return _op_name(func)


def _op_name(func: Callable[..., Any]) -> str:
    name = torch.overrides.resolve_name(func)
    if name:
        return str(name)
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    if str(qualname).startswith("_VariableFunctionsClass."):
        return "torch." + str(qualname).split(".", 1)[1]
    owner = getattr(func, "__self__", None)
    if owner is not None and hasattr(owner, "__name__") and not str(qualname).startswith(owner.__name__):
        return f"{owner.__name__}.{qualname}"
    return str(qualname)


_cached_op_name = functools.lru_cache(maxsize=4096)(_op_name)


def ops_named(names: Sequence[str], namespaces: Sequence[Any] = NAMESPACES) -> List[Callable[..., Any]]:
    """Every function or method called ``name`` in the torch namespaces, each once (for a property such as
    ``Tensor.T``, its getter).

    >>> [op_name(f) for f in ops_named(["tanh"])]
    ['torch.tanh', 'torch.Tensor.tanh', 'torch.nn.functional.tanh']
    """
    found: List[Callable[..., Any]] = []
    for name in names:
        for func in functions_named(name, tuple(namespaces)):
            if not any(func is f for f in found):
                found.append(func)
    return found


@functools.lru_cache(maxsize=None)
def functions_named(name: str, namespaces: Tuple[Any, ...] = NAMESPACES) -> Tuple[Callable[..., Any], ...]:
    """:func:`ops_named` of one name, cached: every call of a method builds its op table from these."""
    found: List[Callable[..., Any]] = []
    for space in namespaces:
        func = getattr(space, name, None)
        if func is not None and not callable(func) and hasattr(func, "__get__"):
            func = func.__get__  # a property such as ``Tensor.T``: the guard sees its getter
        if func is not None and callable(func) and not any(func is f for f in found):
            found.append(func)
    return tuple(found)


def bind_args(
    args: Tuple[Any, ...], kwargs: Dict[str, Any], names: Sequence[str], defaults: Dict[str, Any]
) -> List[Any]:
    """The values of an op call's parameters ``names``, positional or keyword, with ``defaults`` for the rest.

    >>> bind_args((1,), {"bias": 3}, ("input", "weight", "bias"), {"weight": 2})
    [1, 2, 3]
    """
    values = list(args[: len(names)])
    for name in names[len(values) :]:
        values.append(kwargs.get(name, defaults.get(name)))
    return values

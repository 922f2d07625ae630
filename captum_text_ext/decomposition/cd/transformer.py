r"""The CD rules of transformers (CD-T, Hsu et al., 2025): attention with its weights held fixed, the attention scores
:math:`QK^\top` known only by their value, and LayerNorm/RMSNorm with the actual scale; equations in
:mod:`~captum_text_ext.decomposition.cd`. Each rule is a factory ``rule(run)`` returning the handler the guard calls
as ``handler(func, args, kwargs)``.

A product of two decomposed tensors (``torch.matmul(q, k.transpose(-1, -2))``) has no split into β and γ here: it is
the attention scores, which CD needs only for the attention weights a softmax makes of them. Such a tensor is
:meth:`~captum_text_ext.decomposition.cd.Decomposed.value_only`; every op but a gate (softmax) or a constant maker
turns it into another value-only tensor (:func:`passes_scores`), a softmax into constant weights, and reading its
parts anywhere else (the model's output, a rule that needs them) raises
:class:`~captum_text_ext.decomposition.guard.UnsupportedOperationError`, naming the product.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils._pytree import tree_flatten, tree_map

from captum_text_ext.decomposition.cd.call import Call, is_float_tensor, same_origin, values_of
from captum_text_ext.decomposition.cd.decomposed import CDRun, Decomposed, RowGather
from captum_text_ext.decomposition.cd.routing import route_call
from captum_text_ext.decomposition.cd.rules import linear_map_rule, linear_rule
from captum_text_ext.decomposition.guard import RANDOM_REASON, Handler, UnsupportedOperationError
from captum_text_ext.decomposition.ops import bind_args, op_name

__all__ = [
    "attention_weights",
    "layer_norm_rule",
    "matmul_rule",
    "multi_head_attention_rule",
    "passes_scores",
    "rms_norm_rule",
    "sdpa_rule",
]

MHA_PARAMETERS = (
    "query", "key", "value", "embed_dim_to_check", "num_heads", "in_proj_weight", "in_proj_bias", "bias_k", "bias_v",
    "add_zero_attn", "dropout_p", "out_proj_weight", "out_proj_bias", "training", "key_padding_mask", "need_weights",
    "attn_mask", "use_separate_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "static_k", "static_v",
    "average_attn_weights", "is_causal",
)  # fmt: skip
"""The parameters of ``torch.nn.functional.multi_head_attention_forward``, in order."""
MHA_DEFAULTS: Dict[str, Any] = {
    "training": True, "key_padding_mask": None, "need_weights": True, "attn_mask": None,
    "use_separate_proj_weight": False, "q_proj_weight": None, "k_proj_weight": None, "v_proj_weight": None,
    "static_k": None, "static_v": None, "average_attn_weights": True, "is_causal": False,
}  # fmt: skip
SDPA_PARAMETERS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
SDPA_DEFAULTS: Dict[str, Any] = {"attn_mask": None, "dropout_p": 0.0, "is_causal": False, "scale": None,
                                 "enable_gqa": False}


def _scores_error(run: CDRun, func: Callable[..., Any]) -> UnsupportedOperationError:
    """The error reading the parts of the product ``func`` made raises (built now, so it names the module)."""
    name = op_name(func)
    where = None if run.guard is None else run.guard.where()
    place = "" if where is None else f" (called in module {where or '<root>'!r})"
    return UnsupportedOperationError(
        f"{run.method} has no rule for `{name}`{place} on two decomposed tensors except as attention scores: such a "
        "product is known only by its value, which a softmax turns into attention weights (held fixed), but here its "
        "β/γ parts were needed (it reaches the output, or an op that needs the parts, without going through a "
        "softmax)",
        name,
        where,
    )


def _value_only_like(value: Any, phrases: int, error: UnsupportedOperationError) -> Any:
    if not isinstance(value, (Tensor, tuple, list)):
        raise error  # an iterator or another object that would hide the scores from the guard
    return tree_map(lambda v: Decomposed.value_only(v, phrases, error) if is_float_tensor(v) else v, value)


def passes_scores(run: CDRun, handler: Handler) -> Handler:
    """``handler``, except that an op with a value-only argument (attention scores) gives a value-only result: its
    value from the actual arguments, no parts."""

    def wrapped(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        scores = [
            leaf for leaf in tree_flatten((args, kwargs))[0] if isinstance(leaf, Decomposed) and leaf.unsplit is not None
        ]
        if not scores:
            return handler(func, args, kwargs)
        first = scores[0]
        assert first.unsplit is not None
        return _value_only_like(func(*values_of(args), **values_of(kwargs)), first.phrases, first.unsplit)

    return wrapped


def matmul_rule(run: CDRun) -> Handler:
    r"""``matmul`` / ``mm`` / ``bmm`` / ``@``: with one constant operand (or attention weights) a linear map without
    bias; with two decomposed operands (:math:`QK^\top`) the value only."""
    linear_map = linear_map_rule(run)

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        call = Call(func, args, kwargs)
        if len(call.tracked) < 2:
            return linear_map(func, args, kwargs)
        return Decomposed.value_only(call.value(), call.inputs()[0].phrases, _scores_error(run, func))

    return handler


def attention_weights(
    query: Tensor,
    key: Tensor,
    attn_mask: Optional[Tensor] = None,
    is_causal: bool = False,
    scale: Optional[float] = None,
    enable_gqa: bool = False,
) -> Tensor:
    r"""The attention weights ``scaled_dot_product_attention`` applies: :math:`\mathrm{softmax}(s\,QK^\top + M)`, with
    a boolean ``attn_mask`` (True = attend) or a float one added, and rows with no key to attend to set to 0.

    >>> q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    >>> attention_weights(q, q, attn_mask=torch.tensor([True, False]))
    tensor([[[1., 0.],
             [1., 0.]]])
    """
    if enable_gqa and key.shape[-3] != query.shape[-3]:
        key = key.repeat_interleave(query.shape[-3] // key.shape[-3], dim=-3)
    factor = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = torch.matmul(query, key.transpose(-2, -1)) * factor
    steps, keys = scores.shape[-2:]
    if is_causal:
        causal = torch.ones(steps, keys, dtype=torch.bool, device=scores.device).tril()
        scores = scores.masked_fill(~causal, -math.inf)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, -math.inf) if attn_mask.dtype == torch.bool else scores + attn_mask
    weights = torch.softmax(scores, dim=-1)
    return torch.nan_to_num(weights, nan=0.0)


def _attend(run: CDRun, weights: Tensor, value: Decomposed) -> Decomposed:
    """``weights @ value``: the attention weights are constants, so the value's parts are averaged with them."""
    out: Decomposed = linear_map_rule(run)(torch.matmul, (weights, value), {})
    return out


def _route(name: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Decomposed:
    routed: Decomposed = route_call(Call(func, args, kwargs), name)
    return routed


def _as_output(value: Tensor, parts: Decomposed) -> Decomposed:
    """The actual output ``value`` carrying ``parts``'s β, γ and pending bias (attention mixes positions: no
    origin)."""
    return Decomposed.wrap(value, parts.beta, parts.gamma, parts.pending)


def sdpa_rule(run: CDRun) -> Handler:
    r"""``scaled_dot_product_attention``: the weights from the actual query and key, held fixed; the value's parts go
    through them, :math:`\beta' = A\beta_V`, :math:`\gamma' = A\gamma_V`. Dropout on the weights is random: refused."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        bound = bind_args(args, kwargs, SDPA_PARAMETERS, SDPA_DEFAULTS)
        query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa = values_of(bound)
        if float(dropout_p) > 0:
            raise run.refuse(func, RANDOM_REASON)
        actual = func(*values_of(args), **values_of(kwargs))
        v = bound[2]
        if not isinstance(v, Decomposed):
            return actual  # the phrase reaches it only through the weights, which are held fixed
        weights = attention_weights(query, key, attn_mask, bool(is_causal), scale, bool(enable_gqa))
        if enable_gqa and v.shape[-3] != weights.shape[-3]:
            v = _route("repeat_interleave", torch.repeat_interleave, v, weights.shape[-3] // v.shape[-3], dim=-3)
        return _as_output(actual, _attend(run, weights, v))

    return handler


def multi_head_attention_rule(run: CDRun) -> Handler:
    r"""``multi_head_attention_forward`` (``nn.MultiheadAttention``): the weights of every head from the actual run,
    held fixed; the value path is linear: :math:`\beta' = W_O\,[A_h W_V^h \beta]_h` (the projections' biases pending,
    as for ``Linear``). Dropout in training mode is random, and ``bias_k``/``bias_v``, ``add_zero_attn``,
    ``static_k``/``static_v`` are refused."""
    linear = linear_rule(run)

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        bound = dict(zip(MHA_PARAMETERS, bind_args(args, kwargs, MHA_PARAMETERS, MHA_DEFAULTS)))
        if bool(bound["training"]) and float(bound["dropout_p"]) > 0:
            raise run.refuse(func, RANDOM_REASON)
        unusual = [name for name in ("bias_k", "bias_v", "static_k", "static_v") if bound[name] is not None]
        unusual += ["add_zero_attn"] if bound["add_zero_attn"] else []
        if unusual:
            raise run.refuse(func, f"nn.MultiheadAttention with {', '.join(unusual)} is not supported")
        parameters = [bound[name] for name in MHA_PARAMETERS[5:] if isinstance(bound[name], Tensor)]
        if any(isinstance(p, Decomposed) for p in parameters + [bound["key_padding_mask"], bound["attn_mask"]]):
            raise run.refuse(func, "the projection weights and the masks must be constants")
        actual = func(*values_of(args), **values_of(kwargs))
        value = bound["value"]
        if not isinstance(value, Decomposed):
            return actual
        plain = {name: values_of(v) for name, v in bound.items()}
        _, weights = func(**{**plain, "need_weights": True, "average_attn_weights": False})
        embed, heads = int(bound["embed_dim_to_check"]), int(bound["num_heads"])
        w_v = bound["v_proj_weight"] if bound["use_separate_proj_weight"] else bound["in_proj_weight"][2 * embed :]
        b_v = None if bound["in_proj_bias"] is None else bound["in_proj_bias"][2 * embed :]
        batched = value.dim() == 3
        if not batched:
            value, weights = _route("unsqueeze", torch.unsqueeze, value, 1), weights.unsqueeze(0)
        keys, batch = value.shape[0], value.shape[1]
        projected = linear(F.linear, (value, w_v, b_v), {})  # (S, N, E)
        per_head = _route("reshape", torch.reshape, projected, (keys, batch * heads, embed // heads))
        per_head = _route("transpose", torch.transpose, per_head, 0, 1)  # (N H, S, E / H)
        steps = weights.shape[-2]
        context = _attend(run, weights.reshape(batch * heads, steps, keys), per_head)  # (N H, L, E / H)
        context = _route("transpose", torch.transpose, context, 0, 1)
        context = _route("reshape", torch.reshape, context, (steps, batch, embed))
        out = linear(F.linear, (context, bound["out_proj_weight"], bound["out_proj_bias"]), {})
        if not batched:
            out = _route("squeeze", torch.squeeze, out, 1)
        return _as_output(actual[0], out), actual[1]

    return handler


def _check_normalization(
    run: CDRun, func: Callable[..., Any], x: Any, constants: Sequence[Any]
) -> Decomposed:
    if not isinstance(x, Decomposed) or any(isinstance(c, Decomposed) for c in constants):
        raise run.refuse(func, "only the input of a normalization may be decomposed (its weight and bias are constants)")
    return x


def _normalized_dims(normalized_shape: Any) -> Tuple[int, ...]:
    count = 1 if isinstance(normalized_shape, int) else len(tuple(normalized_shape))
    return tuple(range(-count, 0))


def _keep_origin(x: Decomposed, dims: Tuple[int, ...], value: Tensor) -> Optional[Tensor]:
    """The origins of a normalization over ``dims``: entries that share one input position keep it."""
    return None if x.origin is None else torch.broadcast_to(same_origin(x.origin, list(dims), True), value.shape)


def layer_norm_rule(run: CDRun) -> Handler:
    r"""``layer_norm``: the mean is removed from each part, the scale is the actual value's, the bias pending:

    .. math::
        \beta' = w \odot \frac{\beta - \mathrm{mean}(\beta)}{\sqrt{\mathrm{Var}(x) + \epsilon}}, \qquad
        \gamma' = w \odot \frac{\gamma - \mathrm{mean}(\gamma)}{\sqrt{\mathrm{Var}(x) + \epsilon}}, \qquad
        \text{pending}' = b,

    after the input's own pending bias is split (removing the mean is a linear map, like ``Linear``).
    """

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        names = ("input", "normalized_shape", "weight", "bias", "eps")
        x, shape, weight, bias, eps = bind_args(args, kwargs, names, {"weight": None, "bias": None, "eps": 1e-5})
        x = _check_normalization(run, func, x, (weight, bias))
        dims = _normalized_dims(shape)
        value = func(*values_of(args), **values_of(kwargs))
        scale = torch.rsqrt(x.plain.var(dims, unbiased=False, keepdim=True) + float(eps))
        if weight is not None:
            scale = scale * weight

        def normalized(beta: Tensor, gamma: Tensor, scale: Tensor) -> Tuple[Tensor, Tensor]:
            def centred(part: Tensor) -> Tensor:
                return (part - part.mean(dims, keepdim=True)).mul_(scale)

            return centred(beta), centred(gamma)

        pending = None if bias is None else torch.broadcast_to(bias, value.shape).clone()
        origin = _keep_origin(x, dims, value)
        if dims == (-1,) and x.rows_deferred:  # row by row

            def rows(gather: RowGather) -> Tuple[Tensor, Tensor]:
                return normalized(*x.resolved_rows(gather), gather(scale.expand(value.shape), False))

            def whole() -> Tuple[Tensor, Tensor]:
                return normalized(*x.resolved(), scale)

            return Decomposed.deferred(value, x.phrases, whole, origin, pending, rows)
        return Decomposed.wrap(value, *normalized(*x.resolved(), scale), pending, origin)

    return handler


def rms_norm_rule(run: CDRun) -> Handler:
    r"""``rms_norm``: a product with the actual scale, :math:`\beta' = w \odot \beta / \mathrm{RMS}(x)` (likewise γ
    and the pending bias)."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x, shape, weight, eps = bind_args(args, kwargs, ("input", "normalized_shape", "weight", "eps"),
                                          {"weight": None, "eps": None})
        x = _check_normalization(run, func, x, (weight,))
        dims = _normalized_dims(shape)
        value = func(*values_of(args), **values_of(kwargs))
        floor = torch.finfo(x.dtype).eps if eps is None else float(eps)
        scale = torch.rsqrt(x.plain.pow(2).mean(dims, keepdim=True) + floor)
        if weight is not None:
            scale = scale * weight
        pending = None if x.pending is None else x.pending * scale
        return Decomposed.wrap(value, x.beta * scale, x.gamma * scale, pending, _keep_origin(x, dims, value))

    return handler

r"""The CD rules of the op groups that change values (sums, products, weighted layers, linear maps, activations, max
pooling, gates); equations in :mod:`~captum_text_ext.decomposition.cd`. Each is a factory ``rule(run)`` returning the
handler the guard calls as ``handler(func, args, kwargs)``."""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_text_ext.decomposition.cd.call import (
    Call,
    is_float_tensor,
    is_number,
    origin_of,
    pending_of,
    plain_of,
    same_origin,
    short_name,
    values_of,
)
from captum_text_ext.decomposition.cd.decomposed import CDRun, Decomposed, RowGather, clear_rows, zero_rows
from captum_text_ext.decomposition.cd.routing import route_call
from captum_text_ext.decomposition.guard import Handler
from captum_text_ext.decomposition.ops import bind_args

__all__ = [
    "add_rule",
    "convolution_rule",
    "gate_rule",
    "linear_map_rule",
    "linear_rule",
    "max_pool_rule",
    "max_rule",
    "negation_rule",
    "reduction_rule",
    "relu_rule",
    "scale_rule",
    "shapley_rule",
]


def add_rule(run: CDRun) -> Handler:
    """``a ± b``: parts add; a constant operand is a bias (pending)."""

    def zero_operands(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
        def zero(obj: Any) -> Any:
            if isinstance(obj, Decomposed):
                return obj
            if is_number(obj):
                return 0
            return torch.zeros_like(obj) if is_float_tensor(obj) else obj

        return tuple(zero(a) for a in args), {k: zero(v) if k in ("input", "other") else v for k, v in kwargs.items()}

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        call = Call(func, args, kwargs)
        inputs = call.inputs()
        value = call.value()
        parts = Call(func, *zero_operands(args, kwargs))

        # the phrase dimension leads every part: when all operands have the value's dimensions, broadcasting lines
        # them up without vmap
        batched = any(x.dim() != value.dim() for x in inputs)

        def added(pairs: List[Tuple[Tensor, Tensor]]) -> Tuple[Tensor, Tensor]:
            betas, gammas = [beta for beta, _ in pairs], [gamma for _, gamma in pairs]
            return parts.run(betas, batched=batched), parts.run(gammas, batched=batched)

        operands = list(args[:2]) + [kwargs[k] for k in ("input", "other") if k in kwargs]
        has_constant = any(not isinstance(a, Decomposed) and (is_number(a) or is_float_tensor(a)) for a in operands)
        pending = None
        if has_constant or any(x.pending is not None for x in inputs):
            pending = call.run([pending_of(x) for x in inputs], batched=False)
        origin = None
        if any(x.origin is not None for x in inputs):
            origins = [torch.broadcast_to(origin_of(x), value.shape) for x in inputs]
            origin = origins[0]
            for other in origins[1:]:
                origin = torch.where(origin == other, origin, torch.zeros_like(origin))
        row_wise = all(x.shape == value.shape for x in inputs) and all(
            a.dim() <= 1 for a in parts.flat if is_float_tensor(a) and not isinstance(a, Decomposed)
        )  # no operand is broadcast over rows: the sum of gathered rows is the gathered sum
        if row_wise and any(x.rows_deferred for x in inputs):

            def rows(gather: RowGather) -> Tuple[Tensor, Tensor]:
                return added([x.rows(gather) for x in inputs])

            def whole() -> Tuple[Tensor, Tensor]:
                return added([(x.beta, x.gamma) for x in inputs])

            return Decomposed.deferred(value, inputs[0].phrases, whole, origin, pending, rows)
        return Decomposed.wrap(value, *added([(x.beta, x.gamma) for x in inputs]), pending, origin)

    return handler


def scale_rule(run: CDRun, divide: bool) -> Handler:
    """Products and quotients with a constant scale every part."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        name = short_name(func)
        call = Call(func, args, kwargs)
        if len(call.tracked) != 1:
            raise run.refuse(func, "a product of two decomposed tensors (one factor must be a constant or a gate)")
        x = call.inputs()[0]
        if divide and (
            call.tracked[0] != 0 or name in ("__rtruediv__", "__rdiv__") or kwargs.get("rounding_mode") is not None
        ):
            raise run.refuse(func, "only division of a decomposed tensor by a constant is supported")
        value = call.value()
        beta = call.run([x.beta])
        gamma = call.run([x.gamma])
        pending = None if x.pending is None else call.run([x.pending], batched=False)
        origin = None if x.origin is None else torch.broadcast_to(x.origin, value.shape)
        return Decomposed.wrap(value, beta, gamma, pending, origin)

    return handler


def negation_rule(run: CDRun) -> Handler:
    """``-x``: every part (and the pending bias) negated."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x = args[0]
        pending = None if x.pending is None else -x.pending
        return Decomposed.wrap(func(x.plain), -x.beta, -x.gamma, pending, x.origin)

    return handler


def _linear_map(
    run: CDRun,
    func: Callable[..., Any],
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
    bias: Optional[Tensor],
    bias_free: Tuple[Tuple[Any, ...], Dict[str, Any]],
    origin_rule: Callable[[Decomposed, Tensor], Optional[Tensor]],
    row_wise: bool = False,
    mixing: Optional[Tensor] = None,
) -> Decomposed:
    r"""A weighted layer: the linear map on the resolved parts (computed when first read), its bias pending.

    ``row_wise`` (a map of the last dimension alone, ``Linear``): the parts can be computed at some rows only, and only
    β goes through the map: :math:`\gamma' = W\gamma = Wx - W\beta` is the actual output without its bias minus
    :math:`\beta'` (the resolved parts add up to the actual input :math:`x`), one subtraction instead of a second
    product; a row whose γ is exactly 0 (inside a phrase that covers it) gets exactly 0, as :math:`W\gamma` would.
    ``mixing`` (:math:`A x` with a constant :math:`A`, attention weights): likewise, where a row of :math:`A\gamma`
    is exactly 0 when every row of γ it mixes (:math:`A_{ts} \neq 0`) is."""
    call = Call(func, args, kwargs)
    if len(call.tracked) != 1:
        raise run.refuse(func, "a product of two decomposed tensors (the weights must be constants)")
    x = call.inputs()[0]
    value = call.value()
    core = Call(func, *bias_free)
    pending = None if bias is None else torch.broadcast_to(bias, value.shape).clone()
    zero_rows_of: Optional[Callable[[Tensor], Tensor]] = zero_rows if row_wise else None
    if mixing is not None:
        zero_rows_of = partial(_zero_mixed_rows, mixing)

    def mapped(beta: Tensor, gamma: Tensor, unbiased: Tensor) -> Tuple[Tensor, Tensor]:
        if mixing is not None:
            new_beta = _mixed(mixing, beta)
        else:  # a map of the last dimension takes the phrase dimension as one more leading one, without vmap
            new_beta = core.run([beta], batched=not row_wise)
        if zero_rows_of is None:
            return new_beta, core.run([gamma])
        new_gamma = torch.sub(unbiased, new_beta)
        clear_rows(new_gamma, zero_rows_of(gamma))
        return new_beta, new_gamma

    def whole() -> Tuple[Tensor, Tensor]:
        return mapped(*x.resolved(), value if pending is None else value - pending)

    def rows(gather: RowGather) -> Tuple[Tensor, Tensor]:
        unbiased = gather(value, False) if pending is None else gather(value, False) - gather(pending, False)
        return mapped(*x.resolved_rows(gather), unbiased)

    # the parts when first read: an attention's query and key projections are read only by their value
    return Decomposed.deferred(value, x.phrases, whole, origin_rule(x, value), pending, rows if row_wise else None)


def _mixed(mixing: Tensor, part: Tensor) -> Tensor:
    """``torch.matmul(mixing, part[p])`` for every phrase ``p``, the phrases side by side as columns (one product,
    and the weights are not copied once per phrase, as a batched product would)."""
    phrases, width = part.shape[0], part.shape[-1]
    columns = part.movedim(0, -2).reshape(*part.shape[1:-1], phrases * width)
    out = torch.matmul(mixing, columns)
    return out.reshape(*out.shape[:-1], phrases, width).movedim(-2, 0)


def _zero_mixed_rows(mixing: Tensor, gamma: Tensor) -> Tensor:
    r"""The rows of :math:`A\gamma` (``torch.matmul(mixing, γ)`` for each phrase) that are exactly 0, as flat indices:
    those whose every term :math:`A_{ts}\gamma_s` is, since :math:`A_{ts} = 0` or the row :math:`\gamma_s` is 0."""
    nonzero = torch.ones(gamma.shape[:-1], dtype=gamma.dtype, device=gamma.device)
    nonzero.view(-1)[zero_rows(gamma)] = 0
    # the phrases side by side as columns: (…, T, P), so that A is not copied once per phrase
    reach = torch.matmul((mixing != 0).to(gamma.dtype), nonzero.movedim(0, -1))
    return (reach.movedim(-1, 0).reshape(-1) == 0).nonzero().squeeze(1)


def linear_rule(run: CDRun) -> Handler:
    """``linear``: :math:`\\beta' = W\\beta`, :math:`\\gamma' = W\\gamma` on the resolved parts; the bias pending."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x, weight, bias = bind_args(args, kwargs, ("input", "weight", "bias"), {"bias": None})
        if not isinstance(x, Decomposed) or isinstance(weight, Decomposed) or isinstance(bias, Decomposed):
            raise run.refuse(func, "the weight and bias must be constants")

        def origin(inp: Decomposed, value: Tensor) -> Optional[Tensor]:
            common = None if inp.origin is None else same_origin(inp.origin, [-1], keepdim=True)
            return None if common is None else torch.broadcast_to(common, value.shape)

        return _linear_map(run, func, (x, weight, bias), {}, bias, ((x, weight), {}), origin, row_wise=x.dim() > 1)

    return handler


def convolution_rule(run: CDRun) -> Handler:
    """``F.conv1d`` / ``F.conv2d``: the convolution without its bias on the resolved parts; the bias pending."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
        x, weight, bias, stride, padding, dilation, groups = bind_args(
            args, kwargs, names, {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
        )
        if not isinstance(x, Decomposed) or isinstance(weight, Decomposed) or isinstance(bias, Decomposed):
            raise run.refuse(func, "the weight and bias must be constants")
        full = (x, weight, bias, stride, padding, dilation, groups)
        bias_free: Tuple[Tuple[Any, ...], Dict[str, Any]] = ((x, weight, None, stride, padding, dilation, groups), {})
        column = None if bias is None else bias.reshape(-1, *(1,) * (weight.dim() - 2))
        return _linear_map(run, func, full, {}, column, bias_free, lambda inp, value: None)

    return handler


def reduction_rule(run: CDRun) -> Handler:
    """``sum`` / ``mean``: linear maps without bias."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x = args[0] if args else kwargs.get("input")
        if not isinstance(x, Decomposed) or any(
            isinstance(a, Decomposed) for a in list(args[1:]) + list(kwargs.values())
        ):
            raise run.refuse(func, "only the first argument of a sum may be decomposed")
        dim, keepdim = bind_args(args[1:], kwargs, ("dim", "keepdim"), {"dim": None, "keepdim": False})
        if isinstance(dim, int):
            dims: Optional[List[int]] = [dim]
        elif dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
            dims = None
        else:
            dims = list(dim)

        def origin(inp: Decomposed, value: Tensor) -> Optional[Tensor]:
            return None if inp.origin is None else same_origin(inp.origin, dims, bool(keepdim))

        return _linear_map(run, func, args, kwargs, None, (args, kwargs), origin)

    return handler


MATRIX_PRODUCTS = ("matmul", "mm", "bmm", "__matmul__")
"""The matrix products :func:`linear_map_rule` maps with one constant operand."""


def linear_map_rule(run: CDRun) -> Handler:
    """``matmul`` / ``mm`` / ``bmm`` with one constant operand, average pooling: linear maps without bias."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        first = args[0] if args else kwargs.get("input")
        second = args[1] if len(args) > 1 else kwargs.get("other", kwargs.get("mat2"))
        row_wise, mixing = False, None
        if (
            short_name(func) in MATRIX_PRODUCTS
            and isinstance(first, Tensor)
            and isinstance(second, Tensor)
            and min(first.dim(), second.dim()) >= 2
        ):
            if isinstance(first, Decomposed) and not isinstance(second, Decomposed):
                row_wise = second.dim() == 2  # x W: a map of the last dimension alone
            elif isinstance(second, Decomposed) and not isinstance(first, Decomposed) and len(args) == 2 and not kwargs:
                mixing = first  # A x: the rows mixed by constant weights (computed as torch.matmul: no other argument)
        return _linear_map(
            run, func, args, kwargs, None, (args, kwargs), lambda inp, value: None, row_wise=row_wise, mixing=mixing
        )

    return handler


RowsOf = Callable[[Tensor], Tensor]
"""Maps a value-shaped tensor to the rows whose parts a rule computes (all of them, or a :class:`RowGather`'s)."""


def _element_wise(
    x: Decomposed,
    value: Tensor,
    split: Callable[[Tensor, Tensor, RowsOf], Tuple[Tensor, Tensor]],
    pending: Optional[Tensor],
) -> Decomposed:
    """The output of an element-wise rule ``split(β, γ, rows_of)`` on ``x``'s resolved parts; deferred, row by row,
    when ``x``'s parts are."""

    def every_row(tensor: Tensor) -> Tensor:
        return tensor

    if x.rows_deferred:

        def rows(gather: RowGather) -> Tuple[Tensor, Tensor]:
            return split(*x.resolved_rows(gather), partial(gather, batched=False))

        return Decomposed.deferred(value, x.phrases, lambda: split(*x.resolved(), every_row), x.origin, pending, rows)
    return Decomposed.wrap(value, *split(*x.resolved(), every_row), pending, x.origin)


def _activation_call(
    x: Decomposed, func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> Tuple[Callable[[Tensor, bool], Tensor], Any]:
    rest_args = tuple(values_of(a) for a in args[1:])
    rest_kwargs = {k: values_of(v) for k, v in kwargs.items() if k != "input"}
    # entry by entry, the phrase dimension needs no vmap, unless another argument is a tensor (PReLU's weight is
    # per channel, dimension 1)
    per_entry = not any(isinstance(a, Tensor) for a in list(rest_args) + list(rest_kwargs.values()))

    def apply(u: Tensor, batched: bool) -> Tensor:
        result: Tensor = (
            torch.vmap(lambda w: func(w, *rest_args, **rest_kwargs))(u)
            if batched and not per_entry
            else func(u, *rest_args, **rest_kwargs)
        )
        return result

    return apply, func(x.plain, *rest_args, **rest_kwargs)


def _check_activation(
    run: CDRun, func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> Decomposed:
    x = args[0] if args else kwargs.get("input")
    others = [a for a in list(args[1:]) + [v for k, v in kwargs.items() if k != "input"] if isinstance(a, Decomposed)]
    if not isinstance(x, Decomposed) or others:
        raise run.refuse(func, "only the first argument of an activation may be decomposed")
    if kwargs.get("inplace") or (
        len(args) > 1 and short_name(func) in ("relu", "relu6", "selu", "celu") and isinstance(args[-1], bool) and args[-1]
    ):
        raise run.refuse(func, "in-place ops on decomposed tensors are not supported")
    return x


def relu_rule(run: CDRun) -> Handler:
    r"""ReLU: :math:`\beta' = \mathrm{ReLU}(\beta)`,
    :math:`\gamma' = \mathrm{ReLU}(\beta + \gamma) - \mathrm{ReLU}(\beta)`."""

    def split(beta: Tensor, gamma: Tensor, rows_of: RowsOf) -> Tuple[Tensor, Tensor]:
        relu_beta = torch.relu(beta)
        return relu_beta, torch.relu(beta + gamma) - relu_beta

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x = _check_activation(run, func, args, kwargs)
        value = func(*values_of(args), **values_of(kwargs))
        return _element_wise(x, value, split, None)

    return handler


def shapley_rule(run: CDRun) -> Handler:
    """Element-wise activations: the two-player Shapley split with baseline 0; :math:`a(0)` is pending."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x = _check_activation(run, func, args, kwargs)
        apply, value = _activation_call(x, func, args, kwargs)
        if not isinstance(value, Tensor) or value.shape != x.shape:
            raise run.refuse(func, "an element-wise activation must keep its input's shape")
        constant = apply(torch.zeros_like(x.plain), False)
        pending = constant if bool((constant != 0).any()) else None

        def split(beta: Tensor, gamma: Tensor, rows_of: RowsOf) -> Tuple[Tensor, Tensor]:
            # a(β + γ) is the actual output: a(x), computed once, not once per phrase
            a_beta, a_gamma, actual = apply(beta, True), apply(gamma, True), rows_of(value)
            new_beta = torch.sub(actual, a_gamma, out=a_gamma)  # in place: fewer fresh tensors
            if pending is not None:
                a_beta.sub_(rows_of(constant))
                actual = actual - rows_of(constant)
            new_beta.add_(a_beta).mul_(0.5)  # β' = ½[(a(β) - a(0)) + (a(x) - a(γ))]
            new_gamma = torch.sub(actual, new_beta, out=a_beta)  # γ' = a(x) - a(0) - β'
            # a part that is exactly 0 in a row gives exactly 0 there, as a(β) - a(0) and a(x) - a(x) would
            clear_rows(new_beta, zero_rows(beta))
            clear_rows(new_gamma, zero_rows(gamma))
            return new_beta, new_gamma

        return _element_wise(x, value, split, pending)

    return handler


def _gather(x: Decomposed, index: Tensor, dim: int) -> Decomposed:
    gathered: Decomposed = route_call(Call(torch.take_along_dim, (x, index, dim), {}), "take_along_dim")
    return gathered


def _select_max(x: Decomposed, dim: int, keepdim: bool, smallest: bool) -> Tuple[Decomposed, Tensor]:
    """The max (min) over ``dim`` of the actual value, with the parts gathered at its position."""
    _, index = (torch.min if smallest else torch.max)(x.plain, dim=dim, keepdim=True)
    picked = _gather(x, index, dim)
    if not keepdim:
        picked = route_call(Call(torch.squeeze, (picked, dim), {}), "squeeze")
        index = index.squeeze(dim)
    return picked, index


def max_rule(run: CDRun) -> Handler:
    """``max`` / ``min`` / ``amax`` / ``amin`` / ``maximum`` / ``minimum``: positions by the actual value."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        name = short_name(func)
        smallest = name in ("min", "amin", "minimum", "fmin")
        x = args[0] if args else kwargs.get("input")
        other = args[1] if len(args) > 1 else kwargs.get("other")
        if isinstance(other, Tensor) and name not in ("amax", "amin"):
            plain_x, plain_o = plain_of(x), plain_of(other)
            take = plain_x <= plain_o if smallest else plain_x >= plain_o
            return route_call(Call(torch.where, (take, x, other), {}), "where")
        if not isinstance(x, Decomposed):
            raise run.refuse(func, "only the first argument of a max may be decomposed")
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        keepdim = bool(args[2] if len(args) > 2 else kwargs.get("keepdim", False))
        if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
            flat = route_call(Call(torch.reshape, (x, (-1,)), {}), "reshape")
            picked, _ = _select_max(flat, 0, False, smallest)
            if keepdim:
                picked = route_call(Call(torch.reshape, (picked, (1,) * x.dim()), {}), "reshape")
            return picked
        if name in ("amax", "amin"):
            dims = [dim] if isinstance(dim, int) else list(dim)
            dims = sorted({d % x.dim() for d in dims}, reverse=True)
            out = x
            for d in dims:
                out, _ = _select_max(out, d, True, smallest)
            if not keepdim:
                out = route_call(Call(torch.squeeze, (out, tuple(dims)), {}), "squeeze")
            return out
        picked, index = _select_max(x, int(dim), keepdim, smallest)
        result_type = torch.return_types.min if smallest else torch.return_types.max
        return result_type((picked, index))

    return handler


def max_pool_rule(run: CDRun) -> Handler:
    """``max_pool1d`` / ``adaptive_max_pool1d``: the positions of the actual maxima, parts gathered there."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x = args[0] if args else kwargs.get("input")
        if not isinstance(x, Decomposed):
            raise run.refuse(func, "only the first argument of max pooling may be decomposed")
        name = short_name(func)
        adaptive = "adaptive" in name
        plain_args, plain_kwargs = list(values_of(args)), dict(values_of(kwargs))
        plain_kwargs.pop("return_indices", None)
        if adaptive:
            output_size = plain_args[1] if len(plain_args) > 1 else plain_kwargs["output_size"]
            values, index = F.adaptive_max_pool1d(x.plain, output_size, return_indices=True)
            wants_indices = (
                "with_indices" in name
                or func is torch.adaptive_max_pool1d
                or bool(args[2] if len(args) > 2 else kwargs.get("return_indices", False))
            )
        else:
            names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
            bound = dict(zip(names, plain_args[1:]))
            bound.update({k: v for k, v in plain_kwargs.items() if k in names})
            wants_indices = "with_indices" in name or bool(bound.pop("return_indices", False))
            values, index = F.max_pool1d(x.plain, return_indices=True, **bound)
        picked = _gather(x, index, -1)
        return (picked, index) if wants_indices else picked

    return handler


def gate_rule(run: CDRun) -> Handler:
    """Softmax outputs are gates: constants from the actual forward pass."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        run.note_gate(func)
        return func(*values_of(args), **values_of(kwargs))

    return handler



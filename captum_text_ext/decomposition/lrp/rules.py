r"""The LRP rules of the op groups other than the recurrent layers: each computes the op's value and attaches the
backward that is its rule (equations in :mod:`~captum_text_ext.decomposition.lrp`).

Every rule here is a factory ``rule(run)`` returning the handler the guard calls as ``handler(func, args, kwargs)``.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_text_ext.decomposition.guard import Handler, is_tracked
from captum_text_ext.decomposition.lrp.relevance import (
    LRPRun,
    epsilon_add,
    epsilon_map,
    mark_selection,
    pass_through,
    selection_mask,
    selection_sum,
)
from captum_text_ext.decomposition.ops import bind_args

__all__ = [
    "activation_rule",
    "add_rule",
    "avg_pool_rule",
    "convolution_rule",
    "gate_rule",
    "linear_rule",
    "matmul_rule",
    "negation_rule",
    "product_rule",
    "reduction_rule",
    "route",
]

CONSTANT_WEIGHTS = "the weight and bias must be constants (parameters, not computed from the inputs)"


def linear_rule(run: LRPRun) -> Handler:
    """``F.linear``: the ε-rule with :math:`N_j` = ``in_features``."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x, weight, bias = bind_args(args, kwargs, ("input", "weight", "bias"), {"bias": None})
        if is_tracked(weight) or is_tracked(bias) or not is_tracked(x):
            raise run.refuse(func, CONSTANT_WEIGHTS)
        return epsilon_map(
            x,
            lambda: func(*args, **kwargs),
            lambda u: F.linear(u, weight),
            lambda u: F.linear(u, torch.ones_like(weight)),
            bias,
            False,
            run.rule,
            transposed=(lambda q: q @ weight) if weight.dim() == 2 else None,
        )

    return handler


def convolution_rule(run: LRPRun) -> Handler:
    """``F.conv1d`` / ``F.conv2d`` (any kernel, stride, padding, dilation and groups): the ε-rule with :math:`N_j` =
    ``in_channels / groups`` times the kernel taps that fall inside the input."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
        x, weight, bias, stride, padding, dilation, groups = bind_args(
            args, kwargs, names, {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
        )
        if is_tracked(weight) or is_tracked(bias) or not is_tracked(x):
            raise run.refuse(func, CONSTANT_WEIGHTS)
        ones = torch.ones_like(weight)

        def conv(u: Tensor, w: Tensor) -> Tensor:
            out: Tensor = func(u, w, None, stride, padding, dilation, groups)
            return out

        spatial = (1,) * (weight.dim() - 2)
        return epsilon_map(
            x,
            lambda: func(*args, **kwargs),
            lambda u: conv(u, weight),
            lambda u: conv(u, ones),
            None if bias is None else bias.reshape(-1, *spatial),
            False,
            run.rule,
        )

    return handler


def reduction_rule(run: LRPRun, mean: bool) -> Handler:
    """``sum`` / ``mean``: the ε-rule without bias, :math:`N_j` = the terms that are not exactly 0."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x, dim, keepdim = bind_args(args, kwargs, ("input", "dim", "keepdim"), {"dim": None, "keepdim": False})
        if kwargs.get("dtype") is not None or not isinstance(x, Tensor) or not x.is_floating_point():
            raise run.refuse(func, "only floating-point sums without a dtype argument are supported")
        dims = dim

        def total(u: Tensor) -> Tensor:
            if dims is None:
                out = u.sum()
                return out.reshape([1] * u.dim()) if keepdim else out
            return u.sum(dim=dims, keepdim=keepdim)

        count = max(x.numel(), 1) // max(total(x.detach()).numel(), 1)

        def linear(u: Tensor) -> Tensor:
            return total(u) / count if mean else total(u)

        return epsilon_map(x, lambda: func(*args, **kwargs), linear, total, None, True, run.rule)

    return handler


def matmul_rule(run: LRPRun) -> Handler:
    """``matmul`` / ``mm`` / ``bmm`` with one constant operand: the ε-rule without bias, :math:`N_j` = the terms
    that are not exactly 0."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        a, b = bind_args(args, kwargs, ("input", "other"), {})
        if "mat2" in kwargs:
            b = kwargs["mat2"]
        if is_tracked(a) and is_tracked(b):
            raise run.refuse(func, "a product of two relevance-carrying tensors (one operand must be a constant)")
        x, const = (a, b) if is_tracked(a) else (b, a)
        nonzero = (const != 0).to(const.dtype)
        if x is a:

            def linear(u: Tensor) -> Tensor:
                return torch.matmul(u, const)

            def connect(u: Tensor) -> Tensor:
                return torch.matmul(u, nonzero)

        else:

            def linear(u: Tensor) -> Tensor:
                return torch.matmul(const, u)

            def connect(u: Tensor) -> Tensor:
                return torch.matmul(nonzero, u)

        return epsilon_map(x, lambda: func(*args, **kwargs), linear, connect, None, True, run.rule)

    return handler


def _window_sizes(length: int, outputs: int, like: Tensor) -> Tensor:
    """How many positions each window of ``adaptive_avg_pool1d(·, outputs)`` averages over a length ``length``."""
    index = torch.arange(outputs, device=like.device)
    start = torch.div(index * length, outputs, rounding_mode="floor")
    end = torch.div((index + 1) * length + outputs - 1, outputs, rounding_mode="floor")
    return (end - start).to(like.dtype)


def avg_pool_rule(run: LRPRun) -> Handler:
    """``avg_pool1d`` / ``adaptive_avg_pool1d``: the ε-rule without bias, :math:`N_j` = the window's terms that are
    not exactly 0 (``ceil_mode`` windows that reach past the padding are refused)."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x: Tensor = args[0] if args else kwargs["input"]
        if not is_tracked(x) or any(is_tracked(a) for a in list(args[1:]) + list(kwargs.values())):
            raise run.refuse(func, "only the first argument of average pooling may carry relevance")
        rest, options = args[1:], {k: v for k, v in kwargs.items() if k != "input"}
        if "adaptive" in getattr(func, "__name__", ""):
            output_size = rest[0] if rest else options["output_size"]
            size = int(output_size if isinstance(output_size, int) else output_size[0])
            windows = _window_sizes(int(x.shape[-1]), size, x)

            def connect(u: Tensor) -> Tensor:
                return F.adaptive_avg_pool1d(u, size) * windows

        else:
            names = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")
            kernel, stride, padding, ceil_mode, _ = bind_args(
                rest, options, names, {"stride": None, "padding": 0, "ceil_mode": False, "count_include_pad": True}
            )
            if ceil_mode:
                raise run.refuse(func, "ceil_mode=True windows reach past the input (pass ceil_mode=False)")
            width = int(kernel if isinstance(kernel, int) else kernel[0])

            def connect(u: Tensor) -> Tensor:
                return F.avg_pool1d(u, kernel, stride, padding, False, True) * width

        def linear(u: Tensor) -> Tensor:
            pooled: Tensor = func(u, *rest, **options)
            return pooled

        return epsilon_map(x, lambda: func(*args, **kwargs), linear, connect, None, True, run.rule)

    return handler


ADD_FORMS: Dict[str, Tuple[int, int]] = {
    # name: (sign of the first operand, sign of the second operand)
    "add": (1, 1),
    "__add__": (1, 1),
    "__radd__": (1, 1),
    "sub": (1, -1),
    "subtract": (1, -1),
    "__sub__": (1, -1),
    "__rsub__": (-1, 1),
    "rsub": (-1, 1),
}
"""The signs of the operands of each form of ``a ± b``."""


def add_rule(run: LRPRun, zero_constant_passes: bool = False) -> Handler:
    """``a ± b``: the ε-rule over the relevance-carrying operands, constant operands acting as bias; a sum of
    selections (products with disjoint constant 0/1 masks, :func:`product_rule`) and no constant other than 0 routes
    each entry's relevance to the operand selected there, as ``torch.where`` does. With ``zero_constant_passes``, a
    constant's entries that are exactly 0 make the sum the identity there, which passes relevance unchanged (the zeros
    of an additive attention mask absorb nothing)."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        first_sign, second_sign = ADD_FORMS[getattr(func, "__name__", "")]
        a, b = bind_args(args, kwargs, ("input", "other"), {})
        alpha = float(kwargs.get("alpha", args[2] if len(args) > 2 else 1))
        terms = [(a, float(first_sign)), (b, float(second_sign) * alpha)]
        if first_sign < 0:  # b - alpha * a
            terms = [(a, -alpha), (b, 1.0)]
        operands = [t for t, _ in terms if is_tracked(t)]
        coefficients = tuple(c for t, c in terms if is_tracked(t))
        constant: Any = 0.0
        for term, coefficient in terms:
            if not is_tracked(term):
                if isinstance(term, Tensor) and not term.is_floating_point():
                    term = term.to(operands[0].dtype)
                alone = isinstance(constant, float) and constant == 0 and coefficient == 1
                constant = term if alone else constant + coefficient * term
        selection = _disjoint_selections(operands, constant, lambda: func(*args, **kwargs).shape)
        if selection is not None:
            masks, covered = selection
            return mark_selection(selection_sum(lambda: func(*args, **kwargs), masks, *operands), covered)
        return epsilon_add(
            lambda: func(*args, **kwargs),
            coefficients,
            constant,
            run.rule,
            *operands,
            zero_constant_passes=zero_constant_passes,
        )

    return handler


def _disjoint_selections(
    operands: List[Tensor], constant: Any, result_shape: Callable[[], torch.Size]
) -> Optional[Tuple[List[Tensor], Tensor]]:
    """When every relevance-carrying operand is a selection, no entry is selected twice and the constant part is 0
    wherever an operand is selected: the operands' masks broadcast to the sum's shape (``result_shape()``, asked only
    then) and the entries some operand selects; else ``None``."""
    unbroadcast = [selection_mask(operand) for operand in operands]
    if any(mask is None for mask in unbroadcast):
        return None
    shape = result_shape()
    masks = [torch.broadcast_to(mask, shape) for mask in unbroadcast if mask is not None]
    covered = torch.zeros(shape, dtype=torch.bool, device=masks[0].device)
    for mask in masks:
        if bool((covered & mask).any()):
            return None
        covered = covered | mask
    constant_there = torch.as_tensor(constant, device=covered.device) != 0
    return None if bool((constant_there & covered).any()) else (masks, covered)


def _zero_one_mask(factor: Any) -> Optional[Tensor]:
    """``factor != 0`` for a constant tensor whose entries are all 0 or 1 (a mask), else ``None``."""
    if not isinstance(factor, Tensor) or is_tracked(factor) or factor.is_complex():
        return None
    nonzero = factor != 0
    return nonzero if bool(((factor == 1) | ~nonzero).all()) else None


def _substitute(obj: Any, old: Tensor, new: Tensor) -> Any:
    if obj is old:
        return new
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(_substitute(item, old, new) for item in obj)
    return obj


@functools.lru_cache(maxsize=None)
def _inplace_position(func: Callable[..., Any]) -> Optional[int]:
    """The position of ``func``'s ``inplace`` parameter (``None`` when it has none or no readable signature)."""
    try:
        names = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return None
    return names.index("inplace") if "inplace" in names else None


def _in_place(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> bool:
    """Whether the call overwrites its input by ``inplace=True`` (ops named ``relu_`` never reach a rule: the guard
    refuses them)."""
    if kwargs.get("inplace"):
        return True
    try:
        position = _inplace_position(func)
    except TypeError:  # an unhashable callable
        position = _inplace_position.__wrapped__(func)
    return position is not None and len(args) > position and bool(args[position])


def activation_rule(run: LRPRun) -> Handler:
    """Element-wise activations and dropout in evaluation mode: relevance passes through unchanged."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x = args[0] if args else kwargs.get("input")
        others = [t for t in list(args[1:]) + list(kwargs.values()) if is_tracked(t)]
        if not isinstance(x, Tensor) or not is_tracked(x) or others:
            raise run.refuse(func, "only the first argument of an activation may carry relevance")
        # an in-place activation runs on a copy: the input stays as the rules that saved it saw it
        in_place = _in_place(func, args, kwargs)
        operand = x.detach().clone() if in_place else x.detach()
        call_args = tuple(_substitute(a, x, operand) for a in args)
        call_kwargs = {k: _substitute(v, x, operand) for k, v in kwargs.items()}
        version = x._version
        with torch.no_grad():
            probe = func(*call_args, **call_kwargs)
        if x._version != version:
            raise run.refuse(func, "it changed its input in place without an `inplace` argument")
        if probe is operand and not in_place:  # the identity (dropout in evaluation mode): no node needed
            return x
        if not isinstance(probe, Tensor) or probe.shape != x.shape:
            raise run.refuse(func, "an element-wise activation must keep its input's shape")
        return pass_through(x, lambda: probe)

    return handler


def product_rule(run: LRPRun, divide: bool) -> Handler:
    """Products (quotients) with a gate or a constant: all relevance to the relevance-carrying factor. A product with
    a constant tensor of 0s and 1s is a *selection* (it equals the factor where the mask is 1 and is exactly 0
    elsewhere) and is marked so (:func:`~captum_text_ext.decomposition.lrp.relevance.mark_selection`)."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        name = getattr(func, "__name__", "")
        operands = [a for a in list(args[:2]) + [kwargs.get("other")] if a is not None]
        tracked = [a for a in operands if is_tracked(a)]
        if len(tracked) != 1:
            raise run.refuse(
                func,
                "a product of two relevance-carrying tensors; LRP's product rule needs one factor to be a gate "
                "(a softmax output) or a constant",
            )
        x = tracked[0]
        if divide and (x is not operands[0] or name == "__rtruediv__" or kwargs.get("rounding_mode") is not None):
            raise run.refuse(func, "only division of a relevance-carrying tensor by a constant is supported")
        product = pass_through(x, lambda: func(*args, **kwargs))
        mask = None if divide or len(operands) != 2 else _zero_one_mask(operands[1] if x is operands[0] else operands[0])
        return product if mask is None else mark_selection(product, mask)

    return handler


def negation_rule(run: LRPRun) -> Handler:
    """``-x``: relevance passes through unchanged."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        return pass_through(args[0], lambda: func(*args, **kwargs))

    return handler


def gate_rule(run: LRPRun) -> Handler:
    """Softmax outputs are gates: computed without relevance, constants for everything downstream."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        run.note_gate(func)
        with torch.no_grad():
            return func(*args, **kwargs)

    return handler


def route(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    """Ops that move numbers (indexing, views, ``cat``, packing, max): their own backward routes relevance."""
    return func(*args, **kwargs)


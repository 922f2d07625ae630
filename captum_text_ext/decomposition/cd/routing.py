r"""The CD rules of the ops that move numbers (routing, assembling, packing, constants, dropout in evaluation mode):
applied to the value, β, γ, the pending bias and the origins alike; constant entries they bring in (padding values,
fills, constant operands of ``cat``/``where``) belong to γ."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor
from torch.utils._pytree import tree_unflatten

from captum_text_ext.decomposition.cd.call import (
    Call,
    fills_for,
    is_float_tensor,
    origin_of,
    pending_of,
    plain_of,
    short_name,
    values_of,
    wrap_tree,
    zero_constant,
)
from captum_text_ext.decomposition.cd.decomposed import CDRun, Decomposed, RowGather
from captum_text_ext.decomposition.guard import Handler

__all__ = [
    "DTYPE_OPS",
    "constant_rule",
    "dropout_rule",
    "iter_rule",
    "pack_rule",
    "pad_packed",
    "route_call",
    "route_rule",
    "select_rows",
    "take",
    "unpack_rule",
]


DTYPE_OPS = ("to", "type_as", "double", "float", "half", "bfloat16", "cpu", "cuda", "type")
"""Ops that change a tensor's dtype or device (origins stay float64)."""


def route_rule(run: CDRun, multi: bool) -> Handler:
    """Routing (``multi=False``: the data is the first argument) and assembling (``multi=True``)."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        name = short_name(func)
        if not multi:
            # the data is the first argument; other decomposed arguments only lend a shape, dtype or device
            if args:
                data = args[0]
                args, kwargs = (data,) + tuple(values_of(a) for a in args[1:]), values_of(kwargs)
            else:
                data = kwargs.get("input")
                kwargs = {k: v if k == "input" else values_of(v) for k, v in kwargs.items()}
            if not isinstance(data, Decomposed):
                return func(*values_of(args), **values_of(kwargs))
        return route_call(Call(func, args, kwargs), name)

    return handler


def _index_select(call: Call) -> Optional[Any]:
    """``index_select(input, dim, index)`` on a decomposed input, applied to the parts along ``dim + 1`` (the phrase
    dimension comes first) instead of through :func:`torch.vmap`, which turns it into a slower gather; ``None`` for
    other call forms."""
    args, kwargs = tree_unflatten(call.flat, call.spec)
    bound = list(args) + [kwargs.get(name) for name in ("input", "dim", "index")[len(args) :]]
    if len(bound) != 3 or kwargs.keys() - {"input", "dim", "index"} or not isinstance(bound[0], Decomposed):
        return None
    x, dim, index = bound[0], bound[1], plain_of(bound[2])
    if not isinstance(dim, int) or not isinstance(index, Tensor):
        return None
    dim = dim % max(x.dim(), 1)

    def select(part: Tensor, lead: int) -> Tensor:
        return take(part, dim + lead, index)

    def select_optional(part: Optional[Tensor]) -> Optional[Tensor]:
        return None if part is None else select(part, 0)

    value = x.plain.index_select(dim, index)
    mask = x.lazy_mask(dim + 1)
    if mask is not None:
        return Decomposed.masked(value, select(mask, 1), select_optional(x.origin))
    return Decomposed.wrap(
        value, select(x.beta, 1), select(x.gamma, 1), select_optional(x.pending), select_optional(x.origin)
    )


def route_call(call: Call, name: str = "") -> Any:
    """Apply a routing op to the value and every part (constant entries it brings in go to γ)."""
    if name == "index_select":
        selected = _index_select(call)
        if selected is not None:
            return selected
    fills = fills_for(name)
    inputs = call.inputs()
    value = call.value()
    gather = _row_gather(call, inputs, value, name)

    direct = _layout_op(call, name) if len(inputs) == 1 else None

    def parts() -> Tuple[Any, Any]:
        if direct is not None:
            return direct(inputs[0].beta), direct(inputs[0].gamma)
        return call.run([x.beta for x in inputs], zero_constant, fills=fills), call.run([x.gamma for x in inputs])

    deferred = is_float_tensor(value) and any(x.parts_deferred for x in inputs)
    beta, gamma = (None, None) if deferred else parts()
    pending = None
    if any(x.pending is not None for x in inputs):
        pending = call.run([pending_of(x) for x in inputs], zero_constant, batched=False, fills=fills)
    origin = None
    if any(x.origin is not None for x in inputs):
        if name in DTYPE_OPS and isinstance(value, Tensor):
            origin = origin_of(inputs[0]).to(device=value.device)  # origins stay float64
        else:
            origin = call.run([origin_of(x) for x in inputs], zero_constant, batched=False, fills=fills)
    if gather is not None:  # whole rows of row-wise deferred parts: computed at those rows only
        x = inputs[0]
        return Decomposed.deferred(
            value, x.phrases, lambda: x.rows(gather), origin, pending, lambda later: x.rows(later.after(gather))
        )
    if deferred:  # a view of deferred parts (the query's and key's heads) stays deferred
        return Decomposed.deferred(value, inputs[0].phrases, parts, origin, pending)
    return wrap_tree(value, beta, gamma, pending, origin)


LAYOUT_OPS = ("contiguous", "transpose", "permute", "view", "reshape")
"""Routing ops :func:`_layout_op` applies to a part directly (the phrase dimension first), without vmap."""


def _layout_op(call: Call, name: str) -> Optional[Callable[[Tensor], Tensor]]:
    """For a call of :data:`LAYOUT_OPS` on one tensor with integer arguments: the op on a part with a leading phrase
    dimension (dimensions shifted, shapes extended by it); ``None`` otherwise (vmap applies it)."""
    args, kwargs = tree_unflatten(call.flat, call.spec)
    if name not in LAYOUT_OPS or kwargs or not args or call.tracked != [0]:
        return None
    rest = list(args[1:])
    if name in ("view", "reshape", "permute") and len(rest) == 1 and isinstance(rest[0], (tuple, list, torch.Size)):
        rest = list(rest[0])
    if not all(isinstance(a, int) and not isinstance(a, bool) for a in rest):
        return None
    rank = int(args[0].dim())

    def shifted(dim: int) -> int:
        return int(dim) % rank + 1

    if name == "contiguous" and not rest:
        return lambda part: part.contiguous()
    if name == "transpose" and len(rest) == 2 and rank:
        return lambda part: part.transpose(shifted(rest[0]), shifted(rest[1]))
    if name == "permute" and len(rest) == rank and rank:
        return lambda part: part.permute(0, *(shifted(d) for d in rest))
    if name in ("view", "reshape"):  # parts alias nothing: a copy where the layout needs one (a part's phrase
        return lambda part: part.reshape(part.shape[0], *rest)  # dimension need not be the outermost in memory)
    return None


def _row_gather(call: Call, inputs: List[Decomposed], value: Any, name: str) -> Optional[RowGather]:
    """The rows a routing op on one row-wise deferred tensor copies whole (each output row one input row, the last
    dimension untouched), found by running it on the flat indices; ``None`` for any other op or input."""
    if len(inputs) != 1 or not inputs[0].rows_deferred or name in DTYPE_OPS or fills_for(name) is not None:
        return None
    x = inputs[0]
    others = [leaf for i, leaf in enumerate(call.flat) if i not in call.tracked]
    if (
        not isinstance(value, Tensor)
        or value.dim() == 0
        or value.numel() == 0
        or value.shape[-1] != x.shape[-1]
        or (value.dtype, value.device) != (x.dtype, x.device)
        or any(is_float_tensor(leaf) or isinstance(leaf, float) for leaf in others)  # nothing brings values in
    ):
        return None
    width = x.shape[-1]
    index = torch.arange(x.numel(), dtype=torch.float64, device=x.device).reshape(x.shape)
    moved = call.run([index], batched=False)
    if not isinstance(moved, Tensor) or moved.shape != value.shape or not moved.is_floating_point():
        return None
    flat = moved.reshape(-1, width)
    row = torch.div(flat, width, rounding_mode="floor")
    column = torch.arange(width, dtype=torch.float64, device=x.device)
    if not (
        torch.equal(flat - row * width, column.expand_as(flat))
        and bool((row == row[:, :1]).all())
        and bool((row >= 0).all())
    ):
        return None
    return RowGather(row[:, 0].long(), tuple(value.shape[:-1]))


def take(part: Tensor, dim: int, index: Tensor) -> Tensor:
    """``part.index_select(dim, index)``, selected along the first dimension of a transposed view (several times
    faster on CPU than selecting along an inner dimension)."""
    if dim == 0:
        return part.index_select(0, index)
    return part.transpose(0, dim).index_select(0, index).transpose(0, dim)


def select_rows(part: Tensor, index: Tensor, batched: bool) -> Tensor:
    """``part`` with its first two dimensions (after the phrase dimension, when ``batched``) flattened, at the rows
    ``index``."""
    if not batched:
        return part.flatten(0, 1).index_select(0, index)
    return take(part.flatten(1, 2), 1, index)


def pack_rule(run: CDRun) -> Handler:
    """``torch._pack_padded_sequence(input, lengths, batch_first)``: the parts are gathered at the entries packing
    keeps (found by packing their flat indices once), along the phrase dimension's trailing axes."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x, lengths, batch_first = (list(args) + [kwargs.get("lengths"), kwargs.get("batch_first")])[:3]
        if not isinstance(x, Decomposed):
            return func(*values_of(args), **values_of(kwargs))
        lengths, batch_first = plain_of(lengths), bool(batch_first)
        data, batch_sizes = func(x.plain, lengths, batch_first)
        rows = x.plain.shape[0] * x.plain.shape[1]
        flat = torch.arange(rows, device=data.device).reshape(x.plain.shape[:2])
        kept = func(flat, lengths, batch_first)[0]

        pending = None if x.pending is None else select_rows(x.pending, kept, False)
        origin = None if x.origin is None else select_rows(x.origin, kept, False)
        mask = x.lazy_mask(2)
        if mask is not None:
            return Decomposed.masked(data, select_rows(mask, kept, True), origin), batch_sizes
        beta, gamma = select_rows(x.beta, kept, True), select_rows(x.gamma, kept, True)
        return Decomposed.wrap(data, beta, gamma, pending, origin), batch_sizes

    return handler


def pad_packed(
    func: Callable[..., Any],
    part: Tensor,
    batch_sizes: Tensor,
    batch_first: bool,
    fill: float,
    total: int,
    batched: bool,
) -> Tensor:
    """Unpack ``part`` (with a leading phrase dimension when ``batched``): each packed row is copied to its padded
    place (found by unpacking the rows' indices once); padding gets ``fill``."""
    rows = int(batch_sizes.sum())
    index = torch.arange(rows, dtype=torch.float64, device=part.device)
    where = func(index, batch_sizes, batch_first, -1.0, total)[0].long()  # (T, B) or (B, T)
    flat = where.flatten()
    real = (flat >= 0).nonzero().squeeze(1)
    destination = torch.empty_like(real)
    destination[flat[real]] = real
    lead = 1 if batched else 0
    out = part.new_full((*part.shape[:lead], flat.numel(), *part.shape[lead + 1 :]), fill)
    out.transpose(0, lead).index_copy_(0, destination, part.transpose(0, lead))
    return out.reshape(*part.shape[:lead], *where.shape, *part.shape[lead + 1 :])


def unpack_rule(run: CDRun) -> Handler:
    """``torch._pad_packed_sequence(data, batch_sizes, batch_first, padding_value, total_length)``: the padding value
    belongs to γ."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        names = ("data", "batch_sizes", "batch_first", "padding_value", "total_length")
        bound: List[Any] = [args[i] if i < len(args) else kwargs.get(n) for i, n in enumerate(names)]
        data, batch_sizes, batch_first, fill, total = bound
        if not isinstance(data, Decomposed):
            return func(*values_of(args), **values_of(kwargs))
        batch_first, fill, total = bool(batch_first), float(fill), int(total)
        padded, lengths = func(data.plain, batch_sizes, batch_first, fill, total)
        origin = (
            None if data.origin is None else pad_packed(func, data.origin, batch_sizes, batch_first, 0.0, total, False)
        )
        mask = data.lazy_mask(1)
        if mask is not None:  # the padding value is outside every phrase: in γ
            return Decomposed.masked(padded, pad_packed(func, mask, batch_sizes, batch_first, False, total, True),
                                     origin), lengths
        beta = pad_packed(func, data.beta, batch_sizes, batch_first, 0.0, total, True)
        gamma = pad_packed(func, data.gamma, batch_sizes, batch_first, fill, total, True)
        pending = (
            None
            if data.pending is None
            else pad_packed(func, data.pending, batch_sizes, batch_first, 0.0, total, False)
        )
        return Decomposed.wrap(padded, beta, gamma, pending, origin), lengths

    return handler


def iter_rule(run: CDRun) -> Handler:
    """Iterating over a decomposed tensor: ``unbind(0)``."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        return iter(route_call(Call(torch.unbind, (args[0], 0), {}), "unbind"))

    return handler


def constant_rule(run: CDRun) -> Handler:
    """``zeros_like`` and the like: constants, computed from the actual value."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        return func(*values_of(args), **values_of(kwargs))

    return handler


def dropout_rule(run: CDRun) -> Handler:
    """Dropout in evaluation mode is the identity (in training mode the guard refuses it: it is random)."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        inplace = args[3] if len(args) > 3 else kwargs.get("inplace", False)
        if inplace:
            raise run.refuse(func, "in-place ops on decomposed tensors are not supported")
        x = args[0] if args else kwargs["input"]
        value = func(*values_of(args), **values_of(kwargs))
        mask = x.lazy_mask(1)
        if mask is not None:
            return Decomposed.masked(value, mask, x.origin)
        if x.parts_deferred:
            return Decomposed.deferred(
                value, x.phrases, lambda: (x.beta, x.gamma), x.origin, x.pending, x.rows if x.rows_deferred else None
            )
        return Decomposed.wrap(value, x.beta, x.gamma, x.pending, x.origin)

    return handler



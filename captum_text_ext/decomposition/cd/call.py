r"""An op call re-run on the parts of its :class:`~captum_text_ext.decomposition.cd.decomposed.Decomposed`
arguments (batched over the phrases with :func:`torch.vmap`), and the helpers the CD rules share to read and build
decomposed values."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from captum_text_ext.decomposition.cd.decomposed import Decomposed

__all__ = [
    "Call",
    "fills_for",
    "is_float_tensor",
    "Rewrite",
    "is_number",
    "origin_of",
    "pending_of",
    "plain_of",
    "same_origin",
    "short_name",
    "values_of",
    "wrap_tree",
    "zero_constant",
]


def plain_of(obj: Any) -> Any:
    """The actual value of a decomposed tensor; anything else as it is."""
    return obj.plain if isinstance(obj, Decomposed) else obj


def values_of(tree: Any) -> Any:
    """``tree`` with every decomposed tensor replaced by its actual value."""
    return tree_map(plain_of, tree)


def is_float_tensor(obj: Any) -> bool:
    """Whether ``obj`` is a floating-point (or complex) tensor."""
    return isinstance(obj, Tensor) and (obj.is_floating_point() or obj.is_complex())


def is_number(obj: Any) -> bool:
    """Whether ``obj`` is a Python number (not a bool)."""
    return isinstance(obj, (int, float)) and not isinstance(obj, bool)


class Call:
    """An op call with its arguments flattened, ready to be re-run on each part."""

    def __init__(self, func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
        self.func = func
        self.flat, self.spec = tree_flatten((args, kwargs))
        self.tracked = [i for i, leaf in enumerate(self.flat) if isinstance(leaf, Decomposed)]

    def value(self) -> Any:
        """The op on the actual values."""
        args, kwargs = tree_unflatten([plain_of(leaf) for leaf in self.flat], self.spec)
        return self.func(*args, **kwargs)

    def run(
        self,
        parts: Sequence[Tensor],
        constant: Callable[[Any], Any] = lambda leaf: leaf,
        batched: bool = True,
        fills: Optional[Callable[[Tuple[Any, ...], Dict[str, Any]], Tuple[Tuple[Any, ...], Dict[str, Any]]]] = None,
    ) -> Any:
        """The op with the tracked arguments replaced by ``parts`` (one per tracked argument, with a leading phrase
        dimension when ``batched``), every other leaf mapped by ``constant``, and scalar fills rewritten by
        ``fills``."""
        leaves = [constant(leaf) for leaf in self.flat]
        tracked = self.tracked

        def inner(*batch: Tensor) -> Any:
            local = list(leaves)
            for index, part in zip(tracked, batch):
                local[index] = part
            args, kwargs = tree_unflatten(local, self.spec)
            if fills is not None:
                args, kwargs = fills(args, kwargs)
            return self.func(*args, **kwargs)

        if batched:
            return torch.vmap(inner)(*parts)
        return inner(*parts)

    def inputs(self) -> List[Decomposed]:
        """The tracked arguments, in order."""
        return [self.flat[i] for i in self.tracked]


def zero_constant(leaf: Any) -> Any:
    """Constant data operands count for nothing in β (and in the pending bias and origins)."""
    if is_float_tensor(leaf) and not isinstance(leaf, Decomposed):
        return torch.zeros_like(leaf)
    return leaf


def wrap_tree(value: Any, beta: Any, gamma: Any, pending: Any, origin: Any) -> Any:
    """Wrap every floating-point tensor leaf of ``value`` with the matching leaves of the parts."""
    v_flat, spec = tree_flatten(value)
    count = len(v_flat)

    def leaves(tree: Any) -> List[Any]:
        return [None] * count if tree is None else tree_flatten(tree)[0]

    out = []
    for v, b, g, p, o in zip(v_flat, leaves(beta), leaves(gamma), leaves(pending), leaves(origin)):
        if is_float_tensor(v) and isinstance(b, Tensor):
            out.append(Decomposed.wrap(v, b, g, p, o))
        else:
            out.append(v)
    return tree_unflatten(out, spec)


def origin_of(x: Decomposed) -> Tensor:
    """``x``'s origins, 0 (no single input position) where it has none."""
    return x.origin if x.origin is not None else torch.zeros(x.shape, dtype=torch.float64, device=x.device)


def pending_of(x: Decomposed) -> Tensor:
    """``x``'s pending bias, 0 where it has none."""
    return x.pending if x.pending is not None else torch.zeros_like(x.plain)


def same_origin(origin: Tensor, dims: Optional[Sequence[int]], keepdim: bool) -> Tensor:
    """The common origin of the entries reduced over ``dims`` (0 where they differ)."""
    if dims is None:
        dims = list(range(origin.dim()))
    if not dims:
        return origin
    low, high = origin.amin(dim=tuple(dims), keepdim=keepdim), origin.amax(dim=tuple(dims), keepdim=keepdim)
    return torch.where(low == high, low, torch.zeros_like(low))


Rewrite = Callable[[Tuple[Any, ...], Dict[str, Any]], Tuple[Tuple[Any, ...], Dict[str, Any]]]
"""Rewrites an op call's ``(args, kwargs)``."""


def fills_for(name: str) -> Optional[Rewrite]:
    """For ``masked_fill``, ``pad`` and ``where``: the rewrite that zeroes their scalar fills (they belong to γ) for
    β, the pending bias and the origins; ``None`` for other ops."""

    def positional(index: int, key: str) -> Callable[..., Tuple[Tuple[Any, ...], Dict[str, Any]]]:
        def rewrite(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
            if len(args) > index and is_number(args[index]):
                args = args[:index] + (0,) + args[index + 1 :]
            if is_number(kwargs.get(key)):
                kwargs = {**kwargs, key: 0}
            return args, kwargs

        return rewrite

    if name == "masked_fill":
        return positional(2, "value")
    if name == "pad":
        return positional(3, "value")
    if name == "where":

        def rewrite_where(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
            return (
                tuple(0 if is_number(a) else a for a in args),
                {k: 0 if is_number(v) else v for k, v in kwargs.items()},
            )

        return rewrite_where
    return None


def short_name(func: Callable[..., Any]) -> str:
    """The op's short name (``"mul"``, ``"T"`` for the ``Tensor.T`` getter)."""
    name = getattr(func, "__name__", "") or ""
    if name in ("__get__",):
        name = getattr(getattr(func, "__self__", None), "__name__", name)
    return name



r"""The one place that decides, op by op, how a decomposition method runs a model — and refuses what it cannot.

A decomposition method runs the user's model unchanged under an :class:`OpGuard`, a
:class:`~torch.overrides.TorchFunctionMode` that sees every torch function and tensor method the model calls (module
calls arrive as their functional ops: ``nn.Linear`` as ``torch.nn.functional.linear``, ``nn.LSTM`` as ``torch.lstm``,
``nn.Tanh`` as ``torch.tanh``). An op that touches a *tracked* tensor (one that carries what the method decomposes)
is handed to the rule the method's :class:`OpTable` holds for it; an op that touches no tracked tensor runs untouched,
without autograd (lengths, masks, token ids, shapes, and anything computed from the parameters alone). Anything else
raises :class:`UnsupportedOperationError`, a ``TypeError`` that names the op and the module it was called in. An op
whose outputs hold no floating-point tensor (a shape, a comparison, an ``argmax``) cannot carry relevance and is
allowed; an in-place op on a tracked tensor is always refused.

The guard is per call and per thread (torch keeps its mode stack per thread): it never changes the model.

Examples:
    >>> from captum_text_ext.decomposition.ops import GROUPS
    >>> table = OpTable("demo")
    >>> table.register(GROUPS["routing"], "own backward", lambda func, args, kwargs: func(*args, **kwargs))
    >>> x = torch.ones(3, requires_grad=True)
    >>> with OpGuard(table):
    ...     y = x[1:]
    >>> OpGuard(table).call(torch.exp, x)
    Traceback (most recent call last):
    ...
    captum_text_ext.decomposition.guard.UnsupportedOperationError: demo has no rule for `torch.exp` ...
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Protocol, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from captum_text_ext.decomposition.ops import OpGroup, functions_named, op_name

__all__ = [
    "SUPPORTED_OPS_PAGE",
    "Handler",
    "ModuleLocator",
    "OpGuard",
    "OpTable",
    "RANDOM_REASON",
    "RandomOpCheck",
    "RandomOpError",
    "Rule",
    "UnsupportedOperationError",
    "is_random_call",
    "is_tracked",
]

Handler = Callable[[Callable[..., Any], Tuple[Any, ...], Dict[str, Any]], Any]
"""A rule's entry point: ``handler(func, args, kwargs)`` returns what ``func(*args, **kwargs)`` would."""

SUPPORTED_OPS_PAGE = "https://captum-text-ext.readthedocs.io/en/latest/supported_ops.html"
"""The docs page that lists every op each method supports, by group, with its rule (``docs/supported_ops.rst``)."""


class UnsupportedOperationError(TypeError):
    """An op on the path from the inputs to the output that the method has no rule for.

    Attributes:
        op: the op's name, e.g. ``"torch.exp"``.
        module: the qualified name of the submodule of the user's model it was called in (``""`` for the model
            itself), or ``None`` when unknown.
    """

    def __init__(self, message: str, op: str, module: Optional[str]) -> None:
        super().__init__(message)
        self.op = op
        self.module = module


class RandomOpError(UnsupportedOperationError):
    """A random op in the forward pass (dropout in training mode): the method needs a deterministic model."""


RANDOM_REASON = (
    "the forward pass is random (dropout in training mode, or a sampling op); call the model in evaluation mode "
    "(`model.eval()`) — the methods never switch it for you"
)
"""Why a random op (:func:`is_random_call`) is refused."""

RANDOM_IN_TRAINING = ("dropout", "alpha_dropout", "feature_alpha_dropout", "dropout1d", "dropout2d", "dropout3d", "rrelu")
"""Ops that are random in training mode."""

RANDOM_ALWAYS = (
    "rand", "randn", "randint", "rand_like", "randn_like", "randint_like", "randperm", "bernoulli", "multinomial",
    "normal", "poisson", "uniform_", "normal_", "bernoulli_", "random_", "exponential_", "geometric_", "log_normal_",
    "cauchy_",
)  # fmt: skip
"""Ops that always draw random numbers."""


def is_random_call(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
    """Whether a call draws random numbers: dropout in training mode with ``p > 0``, ``rrelu`` in training mode, or
    a sampling op (:data:`RANDOM_ALWAYS`).

    The forms are ``torch.dropout(input, p, train)``, ``F.dropout(input, p=0.5, training=True, inplace=False)``
    (the alpha variants of ``F`` default to ``training=False``) and ``F.rrelu(input, lower, upper, training=False)``.

    >>> is_random_call(torch.nn.functional.dropout, (torch.ones(2),), {"p": 0.1, "training": True})
    True
    >>> is_random_call(torch.nn.functional.dropout, (torch.ones(2), 0.1, False), {})
    False
    """
    name = getattr(func, "__name__", "")
    if name in RANDOM_ALWAYS:
        return True
    if name not in RANDOM_IN_TRAINING:
        return False
    if name == "rrelu":
        train = args[3] if len(args) > 3 else kwargs.get("training", False)
        return bool(train)
    p = args[1] if len(args) > 1 else kwargs.get("p", 0.5)
    default = "alpha" not in name
    train = args[2] if len(args) > 2 else kwargs.get("training", kwargs.get("train", default))
    return bool(train) and float(p) > 0


@dataclass(frozen=True)
class Rule:
    """What a table does with an op: run ``handler`` (a rule named ``name``), or refuse it with ``refusal``.

    Attributes:
        group: the op's group name.
        name: the rule's name, as the docs show it (e.g. ``"epsilon rule"``), or the refusal's short form.
        handler: ``handler(func, args, kwargs)``; ``None`` for an op refused on purpose.
        refusal: why the method refuses the op (``None`` when it has a rule).
    """

    group: str
    name: str
    handler: Optional[Handler]
    refusal: Optional[str] = None


class OpTable:
    """Op → :class:`Rule`, built group by group from :data:`~captum_text_ext.decomposition.ops.GROUPS`.

    A method builds its table on every call (the handlers hold that call's state), always with the same registrations:
    which op and which function go to which registration is worked out once per sequence of registrations
    (:func:`_layout_of`, cached) and only the rules are new.

    Args:
        method: the method's name, used in messages (e.g. ``"LSTMLRP"``).
    """

    def __init__(self, method: str) -> None:
        self.method = method
        self._entries: List[Tuple[Tuple[str, ...], Optional[Tuple[str, ...]], Rule]] = []
        self._layout: Optional[_Layout] = None

    def register(
        self, group: OpGroup, rule: str, handler: Handler, ops: Optional[Sequence[str]] = None
    ) -> None:
        """Run ``ops`` (default: every op of ``group`` that has no rule yet) with ``handler``, the rule ``rule``.

        Raises:
            ValueError: for an op that is not in ``group``.
        """
        self._add(group, ops, Rule(group.name, rule, handler))

    def refuse(self, group: OpGroup, reason: str, ops: Optional[Sequence[str]] = None) -> None:
        """Refuse ``ops`` (default: every op of ``group`` without a rule yet) on purpose, saying ``reason``."""
        self._add(group, ops, Rule(group.name, "refused", None, reason))

    def _add(self, group: OpGroup, ops: Optional[Sequence[str]], rule: Rule) -> None:
        names = None if ops is None else tuple(ops)
        for name in names or ():
            if name not in group.ops:
                raise ValueError(f"Expected an op of the group {group.name!r}, but got {name!r}")
        self._entries.append((group.ops, names, rule))
        self._layout = None

    def _resolved(self) -> _Layout:
        layout = self._layout
        if layout is None:
            layout = self._layout = _layout_of(tuple((group, ops) for group, ops, _ in self._entries))
        return layout

    def lookup(self, func: Callable[..., Any]) -> Optional[Rule]:
        """The :class:`Rule` for ``func``, or ``None``."""
        functions = self._resolved().functions
        try:
            index = functions.get(func)
        except TypeError:  # unhashable callables
            return None
        return None if index is None else self._entries[index][2]

    def rule_for(self, op: str) -> Optional[Rule]:
        """The :class:`Rule` for the short op name ``op``, or ``None``."""
        index = self._resolved().ops.get(op)
        return None if index is None else self._entries[index][2]

    def coverage(self) -> Dict[str, Rule]:
        """Short op name → :class:`Rule`, for every op the table knows (rules and refusals)."""
        return {op: self._entries[index][2] for op, index in self._resolved().ops.items()}


class _Layout(NamedTuple):
    """Which registration of a table each function and each short op name goes to (indices into its entries)."""

    functions: Dict[Any, int]
    ops: Dict[str, int]


@functools.lru_cache(maxsize=None)
def _layout_of(registrations: Tuple[Tuple[Tuple[str, ...], Optional[Tuple[str, ...]]], ...]) -> _Layout:
    """The :class:`_Layout` of a table from its registrations in order, each ``(the group's ops, the ops named or
    None)``: ``None`` takes every op of the group without a rule yet, named ops take their names (a later
    registration's name replaces an earlier one's), and a function registered first keeps its rule."""
    ops: Dict[str, int] = {}
    functions: Dict[Any, int] = {}
    for index, (group_ops, named) in enumerate(registrations):
        names = tuple(op for op in group_ops if op not in ops) if named is None else named
        ops.update(dict.fromkeys(names, index))
        for func in _functions_of(names):
            functions.setdefault(func, index)
    return _Layout(functions, ops)


@functools.lru_cache(maxsize=None)
def _functions_of(names: Tuple[str, ...]) -> Tuple[Callable[..., Any], ...]:
    """The functions of every op in ``names`` (:func:`~captum_text_ext.decomposition.ops.functions_named`)."""
    return tuple(func for name in names for func in functions_named(name))


def _tensors(obj: Any) -> Iterator[Tensor]:
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item)


def is_tracked(obj: Any) -> bool:
    """Whether ``obj`` carries relevance during an LRP pass: a tensor that requires grad and is not an
    ``nn.Parameter``. Under the guard only tensors computed from the inputs require grad: every op that touches no
    tracked tensor runs without autograd, so what the parameters alone give is a constant."""
    return isinstance(obj, Tensor) and obj.requires_grad and not isinstance(obj, nn.Parameter)


def _constant(obj: Any) -> Any:
    """``obj`` with every tensor that requires grad detached (a view of a parameter made under ``no_grad`` still
    requires grad)."""
    if isinstance(obj, Tensor):
        return obj.detach() if obj.requires_grad else obj
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(_constant(item) for item in obj)
    return obj


def _has_float_tensor(obj: Any) -> bool:
    return any(t.is_floating_point() or t.is_complex() for t in _tensors(obj))


def _is_inplace(func: Callable[..., Any], kwargs: Mapping[str, Any]) -> bool:
    if "out" in kwargs and kwargs["out"] is not None:
        return True
    try:
        return _writes_in_place(func)
    except TypeError:  # an unhashable callable
        return _writes_in_place.__wrapped__(func)


@functools.lru_cache(maxsize=4096)
def _writes_in_place(func: Callable[..., Any]) -> bool:
    """Whether ``func`` writes into its first argument, by its name (``add_``, ``__iadd__``, ``__setitem__``, a
    property's ``__set__``)."""
    name = op_name(func).split(".")
    short = name[-2] if name[-1] in ("__get__", "__set__") else name[-1]
    if name[-1] == "__set__" or short in ("__setitem__", "__delitem__"):
        return True
    if short.startswith("__i") and short.endswith("__") and short not in ("__index__", "__invert__", "__int__",
                                                                           "__iter__"):
        return True
    return short.endswith("_") and not short.endswith("__") and not short.startswith("_")


class ModuleLocator(Protocol):
    """Says which submodule of the user's model is running (for messages), like
    :class:`~captum_text_ext.decomposition.hooks.ModuleTracker`."""

    def current(self) -> Optional[Tuple[str, nn.Module]]:
        """``(qualified name, module)`` of the innermost running module, or ``None`` at the top level."""


class OpGuard(TorchFunctionMode):
    """Dispatches every op that touches a tracked tensor to its rule in ``table``; refuses the rest.

    Args:
        table: the method's :class:`OpTable`.
        locator: names the running module in messages (optional).
        tracked: the predicate for tensors that carry what is decomposed (default: :func:`is_tracked`).

    Attributes:
        log: ``(op name, module name, rule)`` for every handled op, in call order (``verbose`` output).
    """

    def __init__(
        self,
        table: OpTable,
        locator: Optional[ModuleLocator] = None,
        tracked: Callable[[Any], bool] = is_tracked,
    ) -> None:
        super().__init__()
        self.table = table
        self.locator = locator
        self.tracked = tracked
        self.log: List[Tuple[str, str, str]] = []
        self.last_refusal: Optional[UnsupportedOperationError] = None
        self._paused = False

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` under the guard.

        Torch turns a ``TypeError`` raised inside a binary operator (``a * b``) into ``NotImplemented``, and Python
        then raises its own "unsupported operand" ``TypeError``; this re-raises the refusal that caused it.
        """
        with self:
            try:
                return fn(*args, **kwargs)
            except TypeError as err:
                refusal = self.last_refusal
                if refusal is None or err is refusal:
                    raise
                raise refusal from err

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Let every op through untouched (for the method's own bookkeeping inside hooks)."""
        previous, self._paused = self._paused, True
        try:
            yield
        finally:
            self._paused = previous

    def where(self) -> Optional[str]:
        """The running module's qualified name (``""`` at the model's top level), or ``None`` when unknown."""
        if self.locator is None:
            return None
        current = self.locator.current()
        return "" if current is None else current[0]

    def refuse(self, func: Callable[..., Any], reason: str = "") -> UnsupportedOperationError:
        """The error for ``func``: names the op and the module, says why, and where the supported ops are listed.

        Dropout in training mode is a :class:`RandomOpError`."""
        name = op_name(func)
        place = ""
        current = None if self.locator is None else self.locator.current()
        if current is not None:
            qual, module = current
            place = f" (called in module {qual or '<root>'!r} of type {type(module).__name__})"
        why = f": {reason}" if reason else " on the path from the inputs to the output"
        message = (
            f"{self.table.method} has no rule for `{name}`{place}{why}. The supported operations of each method are "
            f"listed at {SUPPORTED_OPS_PAGE}."
        )
        kind = RandomOpError if reason == RANDOM_REASON else UnsupportedOperationError
        self.last_refusal = kind(message, name, self.where())
        return self.last_refusal

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: Tuple[Any, ...] = (),
        kwargs: Optional[Dict[str, Any]] = None,
    ) -> Any:
        kwargs = kwargs or {}
        if self._paused:
            return func(*args, **kwargs)
        if is_random_call(func, args, kwargs):
            raise self.refuse(func, RANDOM_REASON)
        if not any(self.tracked(t) for t in _tensors((args, kwargs))):
            with torch.no_grad():
                return _constant(func(*args, **kwargs))
        if _is_inplace(func, kwargs):
            raise self.refuse(func, "in-place ops and `out=` on relevance-carrying tensors are not supported")
        rule = self.table.lookup(func)
        if rule is not None and rule.handler is not None:
            where = self.where()
            self.log.append((op_name(func), "" if where is None else where, rule.name))
            return rule.handler(func, args, kwargs)
        if rule is not None:
            raise self.refuse(func, f"{rule.refusal} ({rule.group})")
        with torch.no_grad():
            result = func(*args, **kwargs)
        if _has_float_tensor(result):
            raise self.refuse(func)
        return result


class RandomOpCheck(TorchFunctionMode):
    """Refuses every random op (:func:`is_random_call`) of a forward pass and lets the rest run untouched: the
    gradient-based methods' guard (their attributions would be random), with the decomposition methods' message.

    Args:
        method: the method's name, for messages.

    Examples:
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
        >>> with RandomOpCheck("HiddenUnitSaliency"):
        ...     _ = net.eval()(torch.ones(1, 2))
        >>> with RandomOpCheck("HiddenUnitSaliency"):
        ...     _ = net.train()(torch.ones(1, 2))
        Traceback (most recent call last):
        ...
        captum_text_ext.decomposition.guard.RandomOpError: HiddenUnitSaliency has no rule for ...
    """

    def __init__(self, method: str) -> None:
        super().__init__()
        self.method = method

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: Tuple[Any, ...] = (),
        kwargs: Optional[Dict[str, Any]] = None,
    ) -> Any:
        kwargs = kwargs or {}
        if is_random_call(func, args, kwargs):
            name = op_name(func)
            raise RandomOpError(f"{self.method} has no rule for `{name}`: {RANDOM_REASON}.", name, None)
        return func(*args, **kwargs)

r"""The one place that decides, op by op, how a decomposition method runs a model — and refuses what it cannot.

A decomposition method runs the user's model unchanged under an :class:`OpGuard`, a
:class:`~torch.overrides.TorchFunctionMode` that sees every torch function and tensor method the model calls (module
calls arrive as their functional ops: ``nn.Linear`` as ``torch.nn.functional.linear``, ``nn.LSTM`` as ``torch.lstm``,
``nn.Tanh`` as ``torch.tanh``). An op that touches a *tracked* tensor (one that carries what the method decomposes) is
handed to the handler the method registered for it in an :class:`OpTable`; an op that touches no tracked tensor runs
untouched (lengths, masks, token ids, shapes). Anything else raises :class:`UnsupportedOperationError`, a
``TypeError`` that names the op, the module it was called in, and lists what is supported. An op whose outputs hold no
floating-point tensor (a shape, a comparison, an ``argmax``) cannot carry relevance and is allowed; an in-place op on a
tracked tensor is always refused.

The module contexts that the methods share live here too: :func:`frozen_modules` (evaluation mode and frozen
parameters, restored on exit, also after an exception), :class:`ModuleTracker` (which module is running, for error
messages) and :func:`modules_of` (the modules behind a forward function).

Examples:
    >>> table = OpTable("demo")
    >>> table.register("routing", [torch.Tensor.__getitem__], lambda func, args, kwargs: func(*args, **kwargs))
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
import inspect
from collections import OrderedDict
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode, resolve_name
from torch.utils.hooks import RemovableHandle

Handler = Callable[[Callable[..., Any], Tuple[Any, ...], Dict[str, Any]], Any]
"""A rule's entry point: ``handler(func, args, kwargs)`` returns what ``func(*args, **kwargs)`` would."""

NAMESPACES: Tuple[Any, ...] = (torch, torch.Tensor, torch.nn.functional, torch._C._nn, torch.special)


class UnsupportedOperationError(TypeError):
    """An op on the path from the inputs to the output that the method has no rule for.

    Attributes:
        op: the op's name, e.g. ``"torch.exp"``.
        module: the qualified name of the module it was called in (``""`` for the top level), or ``None``.
    """

    def __init__(self, message: str, op: str, module: Optional[str]) -> None:
        super().__init__(message)
        self.op = op
        self.module = module


def op_name(func: Callable[..., Any]) -> str:
    """A readable name: ``torch.nn.functional.linear``, ``torch.Tensor.mul``, ``torch.lstm``."""
    name = resolve_name(func)
    if name:
        return name
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    owner = getattr(func, "__self__", None)
    if owner is not None and hasattr(owner, "__name__") and not str(qualname).startswith(owner.__name__):
        return f"{owner.__name__}.{qualname}"
    return str(qualname)


def ops_named(names: Iterable[str], namespaces: Sequence[Any] = NAMESPACES) -> List[Callable[..., Any]]:
    """Every function or method called ``name`` in the torch namespaces (``torch``, ``Tensor``, ``F``, ...).

    >>> [op_name(f) for f in ops_named(["tanh"])]
    ['torch.tanh', 'torch.Tensor.tanh', 'torch.nn.functional.tanh']
    """
    found: List[Callable[..., Any]] = []
    for name in names:
        for space in namespaces:
            func = getattr(space, name, None)
            if func is not None and callable(func) and not any(func is f for f in found):
                found.append(func)
    return found


DROPOUT_OPS = ("dropout", "alpha_dropout", "feature_alpha_dropout", "dropout1d", "dropout2d", "dropout3d")
"""Dropout: the identity in evaluation mode, random in training mode (refused by every rule table)."""
RANDOM_DROPOUT = "dropout in training mode is random (call the model in evaluation mode)"
"""Why a :func:`dropout_is_random` call is refused."""


def dropout_is_random(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
    """Whether a call of a :data:`DROPOUT_OPS` op drops at random: in training mode with ``p > 0``.

    The forms are ``torch.dropout(input, p, train)`` and ``F.dropout(input, p=0.5, training=True, inplace=False)``;
    the alpha variants of ``F`` default to ``training=False``.
    """
    p = args[1] if len(args) > 1 else kwargs.get("p", 0.5)
    default = "alpha" not in getattr(func, "__name__", "")
    train = args[2] if len(args) > 2 else kwargs.get("training", kwargs.get("train", default))
    return bool(train) and float(p) > 0


class OpTable:
    """Op → handler, grouped for the refusal message.

    Args:
        method: the method's name, used in messages (e.g. ``"LSTMLRP"``).
    """

    def __init__(self, method: str) -> None:
        self.method = method
        self._handlers: Dict[Any, Tuple[str, Handler]] = {}
        self._groups: "OrderedDict[str, List[str]]" = OrderedDict()

    def register(self, group: str, funcs: Iterable[Callable[..., Any]], handler: Handler) -> None:
        """Route ``funcs`` to ``handler``; ``group`` names the rule in messages (``"pass-through activations"``)."""
        names = self._groups.setdefault(group, [])
        for func in funcs:
            self._handlers[func] = (group, handler)
            short = getattr(func, "__name__", None) or op_name(func).split(".")[-1]
            if short not in names:
                names.append(short)

    def lookup(self, func: Callable[..., Any]) -> Optional[Tuple[str, Handler]]:
        """``(group, handler)`` for ``func``, or ``None``."""
        try:
            return self._handlers.get(func)
        except TypeError:  # unhashable callables
            return None

    @property
    def groups(self) -> Mapping[str, List[str]]:
        """Group name → short op names, in registration order."""
        return self._groups

    def describe(self) -> str:
        """One line per group: what the method supports."""
        return "; ".join(f"{group}: {', '.join(names)}" for group, names in self._groups.items())


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
    """Whether ``obj`` is a tensor that carries relevance: during a decomposition, one that requires grad and is not an
    ``nn.Parameter`` (parameters are constants of the decomposition, even when they were not frozen)."""
    return isinstance(obj, Tensor) and obj.requires_grad and not isinstance(obj, nn.Parameter)


def _has_float_tensor(obj: Any) -> bool:
    return any(t.is_floating_point() or t.is_complex() for t in _tensors(obj))


def _is_inplace(func: Callable[..., Any], kwargs: Mapping[str, Any]) -> bool:
    name = op_name(func).split(".")
    short = name[-2] if name[-1] in ("__get__", "__set__") else name[-1]
    if "out" in kwargs and kwargs["out"] is not None:
        return True
    if name[-1] == "__set__" or short in ("__setitem__", "__delitem__"):
        return True
    if short.startswith("__i") and short.endswith("__") and short not in ("__index__", "__invert__", "__int__"):
        return True
    return short.endswith("_") and not short.endswith("__") and not short.startswith("_")


class ModuleTracker:
    """Knows which module is running (for messages), via forward pre/post hooks removed on exit.

    Args:
        roots: the modules whose submodules are tracked.
    """

    def __init__(self, roots: Sequence[nn.Module]) -> None:
        self.roots = list(roots)
        self.stack: List[Tuple[str, nn.Module]] = []
        self._handles: List[RemovableHandle] = []

    def __enter__(self) -> "ModuleTracker":
        names: Dict[int, str] = {}
        for root in self.roots:
            for name, module in root.named_modules():
                names.setdefault(id(module), name)
        seen = set()
        try:
            for root in self.roots:
                for module in root.modules():
                    if id(module) in seen:
                        continue
                    seen.add(id(module))
                    name = names[id(module)]
                    self._handles.append(module.register_forward_pre_hook(self._push(name)))
                    self._handles.append(module.register_forward_hook(self._pop, always_call=True))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.stack.clear()

    def _push(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any) -> None:
            self.stack.append((name, module))

        return hook

    def _pop(self, module: nn.Module, args: Any, output: Any) -> None:
        if self.stack and self.stack[-1][1] is module:
            self.stack.pop()

    @property
    def current(self) -> Optional[Tuple[str, nn.Module]]:
        """``(qualified name, module)`` of the innermost running module, or ``None`` at the top level."""
        return self.stack[-1] if self.stack else None


class OpGuard(TorchFunctionMode):
    """Dispatches every op that touches a tracked tensor to its handler in ``table``; refuses the rest.

    Args:
        table: the method's :class:`OpTable`.
        tracker: names the running module in messages (optional).
        tracked: the predicate for tensors that carry what is decomposed (default: :func:`is_tracked`).

    Attributes:
        log: ``(op name, module name, group)`` for every handled op, in call order (``verbose`` output).
    """

    def __init__(
        self,
        table: OpTable,
        tracker: Optional[ModuleTracker] = None,
        tracked: Callable[[Any], bool] = is_tracked,
    ) -> None:
        super().__init__()
        self.table = table
        self.tracker = tracker
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
        """The running module's name (``""`` at the model's top level), or ``None`` when unknown."""
        if self.tracker is None:
            return None
        current = self.tracker.current
        return None if current is None else current[0]

    def refuse(self, func: Callable[..., Any], reason: str = "") -> UnsupportedOperationError:
        """The error for ``func``: names the op and the module, says why, and lists what is supported."""
        name = op_name(func)
        module = self.where()
        place = ""
        if self.tracker is not None and self.tracker.current is not None:
            qual, mod = self.tracker.current
            place = f" (called in module {qual or '<root>'!r} of type {type(mod).__name__})"
        why = f": {reason}" if reason else " on the path from the inputs to the output"
        self.last_refusal = UnsupportedOperationError(
            f"{self.table.method} has no rule for `{name}`{place}{why}. Supported: {self.table.describe()}.",
            name,
            module,
        )
        return self.last_refusal

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: Tuple[Any, ...] = (),
        kwargs: Optional[Dict[str, Any]] = None,
    ) -> Any:
        kwargs = kwargs or {}
        if self._paused or not any(self.tracked(t) for t in _tensors((args, kwargs))):
            return func(*args, **kwargs)
        if _is_inplace(func, kwargs):
            raise self.refuse(func, "in-place ops and `out=` on relevance-carrying tensors are not supported")
        entry = self.table.lookup(func)
        if entry is not None:
            group, handler = entry
            where = self.where()
            self.log.append((op_name(func), "" if where is None else where, group))
            return handler(func, args, kwargs)
        with torch.no_grad():
            result = func(*args, **kwargs)
        if _has_float_tensor(result):
            raise self.refuse(func)
        return result


def modules_of(forward_func: Callable[..., Any]) -> List[nn.Module]:
    """The modules behind a forward function: the module itself, the owner of a bound method, or the modules a
    ``functools.partial`` or closure holds (best effort; an empty list for a plain function)."""
    if isinstance(forward_func, nn.Module):
        return [forward_func]
    owner = getattr(forward_func, "__self__", None)
    if isinstance(owner, nn.Module):
        return [owner]
    found: List[nn.Module] = []
    inner = getattr(forward_func, "func", None)
    if inner is not None:
        found.extend(modules_of(inner))
        for arg in list(getattr(forward_func, "args", ())) + list(getattr(forward_func, "keywords", {}).values()):
            if isinstance(arg, nn.Module):
                found.append(arg)
    if inspect.isfunction(forward_func):
        for cell in forward_func.__closure__ or ():
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if isinstance(value, nn.Module):
                found.append(value)
    unique: List[nn.Module] = []
    for module in found:
        if not any(module is m for m in unique):
            unique.append(module)
    return unique


@contextlib.contextmanager
def frozen_modules(roots: Sequence[nn.Module]) -> Iterator[None]:
    """Evaluation mode and ``requires_grad=False`` for every module and parameter under ``roots``; each module's
    ``training`` flag and each parameter's ``requires_grad`` are restored on exit, also after an exception.

    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout())
    >>> with frozen_modules([net]):
    ...     net.training, net[0].weight.requires_grad
    (False, False)
    >>> net.training, net[0].weight.requires_grad
    (True, True)
    """
    modules: List[nn.Module] = []
    params: List[torch.nn.Parameter] = []
    for root in roots:
        for module in root.modules():
            if not any(module is m for m in modules):
                modules.append(module)
        for param in root.parameters():
            if not any(param is p for p in params):
                params.append(param)
    training = [m.training for m in modules]
    requires = [p.requires_grad for p in params]
    try:
        for module in modules:
            module.training = False
        for param in params:
            param.requires_grad_(False)
        yield
    finally:
        for module, flag in zip(modules, training):
            module.training = flag
        for param, flag in zip(params, requires):
            param.requires_grad_(flag)

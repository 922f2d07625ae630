"""Module hooks that live for one call in one thread: the methods' only way to look inside the user's model.

A method needs a few hooks on the user's modules for one call: to start the decomposition at a layer's output, to
give a recurrent layer explicit initial states, or to know which submodule is running. :class:`ScopedHooks` registers
them for the call and removes them on exit (also when the call raises), and each hook acts only in the thread that
registered it: another thread running the same model at the same time (the same method, or a Captum method) passes
through it untouched. Nothing else about the model changes: no ``eval()``, no ``requires_grad_``, no attribute.

Examples:
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh())
    >>> with ScopedHooks() as hooks:
    ...     hooks.forward(net[0], lambda module, args, output: output * 0)
    ...     net(torch.ones(1, 2)).abs().sum().item()
    0.0
    >>> len(net[0]._forward_hooks)
    0
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, ContextManager, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

__all__ = ["Capture", "LayerCapture", "ModuleTracker", "ScopedHooks", "modules_of"]


class ScopedHooks:
    """Forward (pre-)hooks registered for one call, acting only in the registering thread, removed on exit."""

    def __init__(self) -> None:
        self._handles: List[RemovableHandle] = []
        self._thread = threading.get_ident()

    def __enter__(self) -> "ScopedHooks":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook (idempotent)."""
        while self._handles:
            self._handles.pop().remove()

    def _mine(self, hook: Callable[..., Any]) -> Callable[..., Any]:
        thread = self._thread

        def scoped(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != thread:
                return None
            return hook(*args, **kwargs)

        return scoped

    def forward_pre(self, module: nn.Module, hook: Callable[..., Any], with_kwargs: bool = False) -> None:
        """``module.register_forward_pre_hook(hook, with_kwargs=...)`` for this call and thread."""
        self._handles.append(module.register_forward_pre_hook(self._mine(hook), with_kwargs=with_kwargs))

    def forward(
        self, module: nn.Module, hook: Callable[..., Any], always_call: bool = False, with_kwargs: bool = False
    ) -> None:
        """``module.register_forward_hook(hook, always_call=..., with_kwargs=...)`` for this call and thread."""
        self._handles.append(
            module.register_forward_hook(self._mine(hook), always_call=always_call, with_kwargs=with_kwargs)
        )


def _unique(modules: Sequence[nn.Module]) -> List[nn.Module]:
    unique: List[nn.Module] = []
    for module in modules:
        if not any(module is m for m in unique):
            unique.append(module)
    return unique


class ModuleTracker:
    """Knows which submodule of the model is running, by its qualified name (for refusals and ``verbose`` logs).

    Args:
        roots: the modules whose submodules are tracked.
        hooks: the call's :class:`ScopedHooks`.
    """

    def __init__(self, roots: Sequence[nn.Module], hooks: ScopedHooks) -> None:
        self._stack: List[Tuple[str, nn.Module]] = []
        named: Dict[int, Tuple[str, nn.Module]] = {}  # each module once, by its first qualified name
        for root in roots:
            for name, module in root.named_modules():
                named.setdefault(id(module), (name, module))
        for name, module in named.values():
            hooks.forward_pre(module, self._push(name))
            hooks.forward(module, self._pop, always_call=True)

    def _push(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any) -> None:
            self._stack.append((name, module))

        return hook

    def _pop(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._stack and self._stack[-1][1] is module:
            self._stack.pop()

    def current(self) -> Optional[Tuple[str, nn.Module]]:
        """``(qualified name, module)`` of the innermost running module, or ``None`` at the top level."""
        return self._stack[-1] if self._stack else None


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
    closure = getattr(forward_func, "__closure__", None) or ()
    for cell in closure:
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if isinstance(value, nn.Module):
            found.append(value)
    return _unique(found)



class Capture:
    """Where a layer method starts: tensors of ``layer`` replaced by ``make(tensor)`` for one forward pass (a
    detached leaf whose gradient is the layer's relevance, or a decomposed tensor). The layer must run once per
    forward pass; subclasses register the hook that replaces.

    Attributes:
        captured: the replacements, in order (``None`` until the layer ran).
        is_tuple: whether there are several.
    """

    def __init__(
        self,
        layer: nn.Module,
        make: Callable[[Tensor], Tensor],
        paused: Callable[[], ContextManager[Any]] = contextlib.nullcontext,
    ) -> None:
        self.layer, self.make, self.paused = layer, make, paused
        self.captured: Optional[Tuple[Tensor, ...]] = None
        self.is_tuple = False

    def require(self) -> Tuple[Tensor, ...]:
        """The replacements.

        Raises:
            ValueError: when the layer did not run.
        """
        if self.captured is None:
            raise ValueError(f"Expected the layer {type(self.layer).__name__} to run in the forward pass, but it did not")
        return self.captured

    def _check_once(self) -> None:
        if self.captured is not None:
            raise ValueError(
                f"Expected the layer {type(self.layer).__name__} to be called once per forward pass, but it was "
                "called again"
            )


class LayerCapture(Capture):
    """Replaces a layer's output (or its floating-point inputs) by ``make(tensor)`` for one forward pass: where a
    method starts (a detached leaf whose gradient is the layer's relevance, or a decomposed tensor). The layer must
    run once per forward pass.

    Args:
        layer: the module.
        hooks: the call's :class:`ScopedHooks`.
        make: what each floating-point output (input) tensor is replaced by.
        to_input: capture the layer's floating-point inputs instead of its output.
        tuples: accept a layer that returns a tuple of tensors (each floating-point one is replaced).
        paused: a context the hook runs in (the method's guard paused).

    Attributes:
        captured: the replacements, in order (``None`` until the layer ran).
        is_tuple: whether the layer returned (or took) several floating-point tensors.
    """

    def __init__(
        self,
        layer: nn.Module,
        hooks: ScopedHooks,
        make: Callable[[Tensor], Tensor],
        to_input: bool = False,
        tuples: bool = True,
        paused: Callable[[], ContextManager[Any]] = contextlib.nullcontext,
    ) -> None:
        super().__init__(layer, make, paused)
        self.tuples = tuples
        if to_input:
            hooks.forward_pre(layer, self._replace_inputs)
        else:
            hooks.forward(layer, self._replace_output)

    def _replace_inputs(self, module: nn.Module, args: Tuple[Any, ...]) -> Tuple[Any, ...]:
        with self.paused():
            self._check_once()
            new = tuple(self.make(a) if _is_float(a) else a for a in args)
            captured = tuple(a for a in new if _is_float(a))
            if not captured:
                raise ValueError(
                    f"Expected floating-point inputs to the layer {type(module).__name__} "
                    "(attribute_to_layer_input=True), but it got none"
                )
            self.captured, self.is_tuple = captured, len(captured) > 1
            return new

    def _replace_output(self, module: nn.Module, args: Any, output: Any) -> Any:
        with self.paused():
            self._check_once()
            if _is_float(output):
                self.captured, self.is_tuple = (self.make(output),), False
                return self.captured[0]
            if self.tuples and isinstance(output, tuple) and output and all(isinstance(o, Tensor) for o in output):
                new = tuple(self.make(o) if _is_float(o) else o for o in output)
                self.captured, self.is_tuple = tuple(o for o in new if _is_float(o)), True
                return new
            kind = "a floating-point tensor or a tuple of tensors" if self.tuples else "a floating-point tensor"
            raise ValueError(
                f"Expected the layer {type(module).__name__} to return {kind}, but it returned {type(output).__name__}"
            )


def _is_float(obj: Any) -> bool:
    return isinstance(obj, Tensor) and obj.is_floating_point()

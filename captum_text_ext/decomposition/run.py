"""One guarded run of the user's model: what LRP and contextual decomposition (and any later method) share.

A decomposition method runs the user's forward function once, unchanged, under its :class:`OpGuard` with its
:class:`~captum_text_ext.decomposition.guard.OpTable`, starting from its own tracked inputs (or from a layer's output, through a
:class:`~captum_text_ext.decomposition.hooks.LayerCapture`). :class:`GuardedForward` is that run: it names the running
submodule for refusals, keeps every hook to the call and its thread, and never changes the model — no ``eval()``,
no ``requires_grad_``; dropout in training mode is refused by the guard, by name.

A :class:`Run` is the per-call state the rules share: the guard (for refusals that name the module) and the gates met.

Examples:
    >>> from captum_text_ext.decomposition.lrp import EpsilonRule, LRPRun, lrp_op_table
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh(), torch.nn.Linear(2, 1))
    >>> run = LRPRun(EpsilonRule())
    >>> x = torch.ones(4, 3, requires_grad=True)
    >>> with GuardedForward(run, lrp_op_table(run), net) as forward:
    ...     output = model_output(forward(x), 4, carries=is_tracked, run=run)
    >>> tuple(output.shape), output.requires_grad
    ((4, 1), True)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, List, Optional, Tuple

import torch
from captum._utils.common import _format_additional_forward_args
from torch import Tensor, nn

from captum_text_ext.decomposition.bags import start_at_layer
from captum_text_ext.decomposition.guard import OpGuard, OpTable, UnsupportedOperationError, is_tracked
from captum_text_ext.decomposition.hooks import ModuleTracker, ScopedHooks, modules_of
from captum_text_ext.decomposition.ops import op_name

__all__ = ["GuardedForward", "Run", "forward_args", "model_output", "plain_run"]


@dataclass
class Run:
    """The state of one call that the rules share.

    Attributes:
        method: the method's name, for messages.
        guard: the running guard (set by :class:`GuardedForward`).
        gates: the gate ops met (softmax), each with the module it ran in.
    """

    method: str
    guard: Optional[OpGuard] = None
    gates: List[str] = field(default_factory=list)

    def refuse(self, func: Callable[..., Any], reason: str) -> UnsupportedOperationError:
        """An :class:`UnsupportedOperationError` for ``func`` naming the running module."""
        if self.guard is not None:
            return self.guard.refuse(func, reason)
        name = op_name(func)
        return UnsupportedOperationError(f"{self.method} has no rule for `{name}`: {reason}", name, None)

    def note_gate(self, func: Callable[..., Any]) -> None:
        """Record that a gate op (softmax) ran, with the module it ran in."""
        where = None if self.guard is None else self.guard.where()
        self.gates.append(f"{getattr(func, '__name__', 'softmax')} in {where or '<root>'!r}")

    def paused(self) -> ContextManager[Any]:
        """The guard paused (for bookkeeping inside hooks), or a null context outside a run."""
        return self.guard.paused() if self.guard is not None else contextlib.nullcontext()


class GuardedForward:
    """The user's forward function run once under a method's guard, with hooks that live for the call and thread.

    Args:
        run: the call's :class:`Run` (its ``guard`` is set on entry).
        table: the method's :class:`~captum_text_ext.decomposition.guard.OpTable`.
        forward_func: the user's model or forward function.
        layer: a layer the method hooks (added to the tracked modules when ``forward_func`` does not hold it).
        tracked: the guard's predicate for tensors that carry what is decomposed.

    Attributes:
        hooks: the call's :class:`~captum_text_ext.decomposition.hooks.ScopedHooks` (for the method's own hooks).
        roots: the modules behind ``forward_func`` (and ``layer``).
    """

    def __init__(
        self,
        run: Run,
        table: OpTable,
        forward_func: Callable[..., Any],
        layer: Optional[nn.Module] = None,
        tracked: Callable[[Any], bool] = is_tracked,
    ) -> None:
        self.run, self.table, self.forward_func, self.tracked = run, table, forward_func, tracked
        self.roots: List[nn.Module] = modules_of(forward_func)
        if layer is not None and not any(layer is m for root in self.roots for m in root.modules()):
            self.roots.append(layer)
        self.hooks = ScopedHooks()
        self.guard: Optional[OpGuard] = None

    def __enter__(self) -> "GuardedForward":
        try:
            tracker = ModuleTracker(self.roots, self.hooks)
        except BaseException:
            self.hooks.remove()
            raise
        self.guard = OpGuard(self.table, tracker, self.tracked)
        self.run.guard = self.guard
        return self

    def __exit__(self, *exc: Any) -> None:
        self.hooks.remove()

    def __call__(self, *args: Any) -> Any:
        """``forward_func(*args)`` under the guard."""
        assert self.guard is not None, "GuardedForward must be entered first"
        return self.guard.call(self.forward_func, *args)


def plain_run(
    forward_func: Callable[..., Any], args: Tuple[Any, ...], layer: Optional[nn.Module] = None, to_input: bool = False
) -> Tuple[Any, Optional[Tuple[Tensor, ...]]]:
    """The model's output (and the layer's floating-point output or inputs, when ``layer`` is given) of an ordinary
    forward pass without autograd: what a method returns the shapes of for an empty batch, where there is nothing to
    decompose. For an ``nn.EmbeddingBag`` the layer's rows are captured, where the methods start.

    Raises:
        ValueError: when ``layer`` does not run.
    """
    with ScopedHooks() as hooks, torch.no_grad():
        capture = None if layer is None else start_at_layer(layer, hooks, lambda t: t, to_input)
        output = forward_func(*args)
        return output, None if capture is None else capture.require()


def forward_args(additional_forward_args: Optional[object]) -> Tuple[Any, ...]:
    """Captum's ``additional_forward_args`` as a tuple, tensors detached (they are never attributed)."""
    formatted = _format_additional_forward_args(additional_forward_args) or ()
    return tuple(a.detach() if isinstance(a, Tensor) else a for a in formatted)


def model_output(output: Any, batch: int, carries: Callable[[Any], bool], run: Run) -> Tensor:
    """The model's output, checked: a tensor with the batch first that carries what the method decomposes.

    Raises:
        ValueError: for an output that is not a tensor with ``batch`` rows.
        TypeError: when no path from the inputs reaches the output (naming the gates it went through).
    """
    if not isinstance(output, Tensor) or output.dim() == 0 or output.shape[0] != batch:
        got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise ValueError(f"Expected the model to return a tensor with the batch ({batch}) first, but got {got}")
    if not carries(output):
        gates = f" (it reaches the output only through gates: {', '.join(run.gates)})" if run.gates else ""
        raise TypeError(f"{run.method} found no path from the inputs to the model's output that carries relevance{gates}")
    return output




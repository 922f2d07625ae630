"""Capturing a layer's output (or inputs) as detached leaves: the gradient taken there is the layer's gradient, and
nothing before the layer enters the backward pass."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager, Optional, Tuple

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

__all__ = ["LayerLeaves"]


def _leaf(tensor: Tensor) -> Tensor:
    return tensor.detach().requires_grad_(True)


class LayerLeaves:
    """Swaps a layer's output (or floating-point inputs) for detached leaves while the context is entered: the
    backward pass (gradient or relevance) stops there and is their gradient. The layer must run once per forward
    pass; the hook is removed on exit.

    Args:
        layer: the module.
        to_input: capture its floating-point inputs instead of its output.
        paused: a context in which the hooks run (LSTMLRP pauses its op guard there).
    """

    def __init__(
        self, layer: nn.Module, to_input: bool, paused: Callable[[], ContextManager[Any]] = contextlib.nullcontext
    ) -> None:
        self.layer, self.to_input, self.paused = layer, to_input, paused
        self.leaves: Optional[Tuple[Tensor, ...]] = None
        self.is_tuple = False
        self.handle: Optional[RemovableHandle] = None

    def __enter__(self) -> "LayerLeaves":
        if self.to_input:
            self.handle = self.layer.register_forward_pre_hook(self._pre_hook)
        else:
            self.handle = self.layer.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None

    def _check_once(self) -> None:
        if self.leaves is not None:
            raise ValueError(
                f"Expected the layer {type(self.layer).__name__} to be called once per forward pass, but it was "
                "called again"
            )

    def _pre_hook(self, module: nn.Module, args: Tuple[Any, ...]) -> Tuple[Any, ...]:
        with self.paused():
            return self._replace_inputs(module, args)

    def _replace_inputs(self, module: nn.Module, args: Tuple[Any, ...]) -> Tuple[Any, ...]:
        self._check_once()
        new = tuple(_leaf(a) if isinstance(a, Tensor) and a.is_floating_point() else a for a in args)
        self.leaves = tuple(a for a in new if isinstance(a, Tensor) and a.is_floating_point())
        if not self.leaves:
            raise ValueError(
                f"Expected floating-point inputs to the layer {type(module).__name__} (attribute_to_layer_input=True), "
                "but it got none"
            )
        self.is_tuple = len(self.leaves) > 1
        return new

    def _hook(self, module: nn.Module, args: Any, output: Any) -> Any:
        with self.paused():
            return self._replace_output(module, output)

    def _replace_output(self, module: nn.Module, output: Any) -> Any:
        self._check_once()
        if isinstance(output, Tensor) and output.is_floating_point():
            leaf = _leaf(output)
            self.leaves, self.is_tuple = (leaf,), False
            return leaf
        if isinstance(output, tuple) and output and all(isinstance(o, Tensor) for o in output):
            new = tuple(_leaf(o) if o.is_floating_point() else o for o in output)
            self.leaves, self.is_tuple = tuple(o for o in new if o.is_floating_point()), True
            return new
        raise ValueError(
            f"Expected the layer {type(module).__name__} to return a floating-point tensor or a tuple of tensors, but "
            f"it returned {type(output).__name__}"
        )

r"""Input gradients of selected model outputs, by autograd or by batched finite differences.

A *selector* turns the model's raw output for a batch of :math:`B` rows into scores :math:`(B, K)`: one column for
Captum's ``target`` (:func:`target_selector`), or one column per explained output (:func:`column_selector`). The
gradient functions return the scores at the inputs and, per input tensor, the gradients
:math:`\partial s_k / \partial x` shaped :math:`(N, K, *\text{input shape})`.

Finite differences perturb one coordinate :math:`k` of every example at a time, :math:`x \pm h e_k`, and evaluate
many coordinates in one forward call: the batch is tiled ``perturbations`` times (the additional forward arguments
and targets with it, as Captum's ``FeatureAblation`` does with ``perturbations_per_eval``).
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

import torch
from captum._utils.common import ExpansionTypes, _expand_additional_forward_args, _expand_target
from captum._utils.typing import TargetType
from torch import Tensor

from captum_text_ext.attr._targets import check_target, select_scores

__all__ = [
    "DIFFERENCES",
    "Selector",
    "autograd_gradients",
    "check_output",
    "column_selector",
    "finite_difference_gradients",
    "target_selector",
]

Selector = Callable[[Tensor, int], Tensor]
"""``select(output, tiles) -> scores (B, K)``: ``output`` is the model's output (batch first, checked) for the batch
tiled ``tiles`` times."""

DIFFERENCES = ("central", "forward")
"""The finite-difference schemes."""


def check_output(output: Any, rows: int) -> Tensor:
    """``output`` when it is a tensor with ``rows`` rows first.

    Raises:
        ValueError: otherwise.
    """
    if not isinstance(output, Tensor) or output.dim() == 0 or output.shape[0] != rows:
        got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise ValueError(f"Expected the model to return a tensor with the batch ({rows}) first, but got {got}")
    return output


def target_selector(target: TargetType, batch: int) -> Selector:
    """Scores ``(B, 1)``: the output Captum's ``target`` selects, one value per example (checked by
    :func:`~captum_text_ext.attr._targets.select_scores`).

    Raises:
        ValueError: for a malformed target (at once), or one that does not select one value per example of the
            output (when scores are taken).
    """
    check_target(batch, target)

    def select(output: Tensor, tiles: int) -> Tensor:
        return select_scores(output, _expand_target(target, tiles, ExpansionTypes.repeat)).reshape(batch * tiles, 1)

    return select


def column_selector(column: Optional[int]) -> Selector:
    """Scores ``(B, K)``: output column ``column`` (``K = 1``), or every column of a ``(B, C)`` output when ``None``
    (a ``(B,)`` output is one column).

    Raises:
        ValueError: for an output with more than two dimensions, or a column out of range.
    """

    def select(output: Tensor, tiles: int) -> Tensor:
        if output.dim() > 2:
            raise ValueError(
                f"Expected the model to return scores of shape (N,) or (N, C), but got {tuple(output.shape)}"
            )
        scores = output.reshape(output.shape[0], -1)
        if column is None:
            return scores
        if not -scores.shape[1] <= column < scores.shape[1]:
            raise ValueError(f"Expected `target` in [0, {scores.shape[1]}), but got {column}")
        return scores[:, column : column + 1] if column >= 0 else scores[:, column].unsqueeze(1)

    return select


def _floating(inputs: Tuple[Tensor, ...], hint: str) -> None:
    for index, tensor in enumerate(inputs):
        if not isinstance(tensor, Tensor) or not tensor.is_floating_point():
            got = tensor.dtype if isinstance(tensor, Tensor) else type(tensor).__name__
            raise TypeError(
                f"Expected `inputs` to be floating-point tensors (features or embeddings), but input {index} is "
                f"{got}; {hint}"
            )


def _zero_if_unused(gradient: Optional[Tensor], leaf: Tensor) -> Tensor:
    """A gradient that autograd leaves out (``allow_unused=True``, the output does not use ``leaf``) is zero."""
    return torch.zeros_like(leaf) if gradient is None else gradient


def autograd_gradients(
    forward_func: Callable[..., Any],
    inputs: Tuple[Tensor, ...],
    additional_forward_args: Tuple[Any, ...],
    select: Selector,
    hint: str = "",
) -> Tuple[Tensor, Tuple[Tensor, ...]]:
    r"""Scores :math:`(N, K)` and their gradients :math:`(N, K, *x.shape[1:])` per input, by backpropagation.

    The examples of a batch must be independent (as for every Captum gradient method): the gradient of the summed
    score :math:`\sum_n s_{n,k}` with respect to :math:`x_n` is then :math:`\partial s_{n,k} / \partial x_n`. One
    backward pass per score column.

    Raises:
        TypeError: for inputs that are not floating-point (``hint`` says what to use instead).
        ValueError: when the selected output does not depend on the inputs through autograd.
    """
    _floating(inputs, hint)
    leaves = tuple(tensor.detach().requires_grad_(True) for tensor in inputs)
    with torch.enable_grad():
        scores = select(check_output(forward_func(*leaves, *additional_forward_args), len(leaves[0])), 1)
        if not scores.requires_grad:
            raise ValueError(
                "The selected output does not depend on the inputs through autograd (the model detaches them or is "
                "not differentiable); use method='finite_difference'"
            )
        columns: List[Tuple[Optional[Tensor], ...]] = []
        for k in range(scores.shape[1]):
            columns.append(
                torch.autograd.grad(scores[:, k].sum(), leaves, retain_graph=k + 1 < scores.shape[1],
                                    allow_unused=True)
            )
    grads = tuple(
        torch.stack([_zero_if_unused(col[i], x) for col in columns], dim=1).detach()
        for i, x in enumerate(leaves)
    )
    return scores.detach(), grads


def finite_difference_gradients(
    forward_func: Callable[..., Any],
    inputs: Tuple[Tensor, ...],
    additional_forward_args: Tuple[Any, ...],
    select: Selector,
    h: float,
    difference: str = "central",
    perturbations_per_eval: int = 32,
    hint: str = "",
) -> Tuple[Tensor, Tuple[Tensor, ...]]:
    r"""Scores :math:`(N, K)` and their finite-difference gradients :math:`(N, K, *x.shape[1:])` per input.

    .. math::
        \text{central: } \frac{s(x + h e_k) - s(x - h e_k)}{2h}, \qquad
        \text{forward: } \frac{s(x + h e_k) - s(x)}{h}

    for every coordinate :math:`k` of every input tensor; no gradients are taken (the model runs under
    ``torch.no_grad``). ``perturbations_per_eval`` coordinates (each a perturbed copy of the whole batch, twice for
    central differences) go through the model in one call.

    Raises:
        TypeError: for inputs that are not floating-point.
        ValueError: for a bad ``h``, ``difference`` or ``perturbations_per_eval``.
    """
    _floating(inputs, hint)
    if difference not in DIFFERENCES:
        raise ValueError(f"Expected `difference` in {DIFFERENCES}, but got {difference!r}")
    if perturbations_per_eval < 1:
        raise ValueError(f"Expected `perturbations_per_eval` >= 1, but got {perturbations_per_eval}")
    batch = int(inputs[0].shape[0])
    signs = (1.0, -1.0) if difference == "central" else (1.0,)
    with torch.no_grad():
        scores = select(check_output(forward_func(*inputs, *additional_forward_args), batch), 1)
        grads = []
        for index, x in enumerate(inputs):
            flat = x.reshape(batch, -1)
            size = flat.shape[1]
            grad = flat.new_empty(batch, scores.shape[1], size)
            for start in range(0, size, perturbations_per_eval):
                coordinates = torch.arange(start, min(start + perturbations_per_eval, size), device=x.device)
                count = int(coordinates.numel())
                step = flat.new_zeros(count, 1, size)
                step[torch.arange(count, device=x.device), 0, coordinates] = h
                shifted = torch.cat([flat.unsqueeze(0) + sign * step for sign in signs])  # (S·count, N, size)
                tiles = shifted.shape[0]
                tiled_inputs = tuple(
                    shifted.reshape(tiles * batch, *x.shape[1:]) if j == index else torch.cat([other] * tiles)
                    for j, other in enumerate(inputs)
                )
                tiled_args = _expand_additional_forward_args(additional_forward_args, tiles, ExpansionTypes.repeat)
                output = check_output(forward_func(*tiled_inputs, *(tiled_args or ())), tiles * batch)
                values = select(output, tiles).reshape(tiles, batch, -1)
                if difference == "central":
                    change = (values[:count] - values[count:]) / (2 * h)
                else:
                    change = (values - scores.unsqueeze(0)) / h
                grad[:, :, start : start + count] = change.permute(1, 2, 0)
            grads.append(grad.reshape(batch, scores.shape[1], *x.shape[1:]))
    return scores, tuple(grads)

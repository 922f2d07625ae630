r"""What carries relevance backwards in an LRP pass: the ε-rule's constants, the run's state, and the autograd functions
whose backward *is* a rule ("gradient = relevance", as in Captum's ``LRP``).

Each rule of :mod:`~captum_text_ext.decomposition.lrp.rules` computes exactly the op's value in the forward pass and
attaches one of these functions, whose backward maps the relevance of the op's output to the relevance of its
relevance-carrying input(s):

- :class:`EpsilonMap`: a weighted connection :math:`z = \\text{linear}(x) + b` by the ε-rule (equations in
  :mod:`~captum_text_ext.decomposition.lrp`);
- :class:`EpsilonAdd`: a sum of relevance-carrying operands, constants acting as bias;
- :class:`PassThrough`: an op that passes relevance through unchanged (element-wise activations, products with a gate
  or a constant);
- :class:`SelectionSum`: a sum of operands masked by disjoint constant 0/1 masks (:func:`selection_mask`), which
  routes each entry's relevance to the one operand selected there, as ``torch.where`` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

import torch
from torch import Tensor

from captum_text_ext.decomposition.run import Run

__all__ = [
    "CELL_STABILIZERS",
    "EpsilonAdd",
    "EpsilonMap",
    "EpsilonRule",
    "InitialState",
    "LRPRun",
    "PassThrough",
    "SelectionSum",
    "epsilon_add",
    "epsilon_map",
    "mark_selection",
    "pass_through",
    "selection_mask",
    "selection_sum",
    "sign0",
    "stabilized",
    "stabilized_quotient",
]


CELL_STABILIZERS = ("unit", "layer")
"""Where the stabilizer share of a recurrent cell's gated sum goes (:attr:`EpsilonRule.cell_stabilizer`)."""


@dataclass(frozen=True)
class EpsilonRule:
    """The ε-rule's constants.

    Attributes:
        epsilon: the stabilizer :math:`\\epsilon > 0`.
        bias_factor: :math:`\\delta \\in [0, 1]`: 0 lets bias and stabilizer absorb their part ("LRP"), 1 spreads
            them over the inputs so relevance is conserved ("LRP_cons"); values in between spread that share.
        cell_stabilizer: with :math:`\\delta > 0`, where the stabilizer share of a recurrent cell's gated sum (the
            LSTM's :math:`c_t = f_t \\odot c_{t-1} + i_t \\odot g_t`, the GRU's
            :math:`h_t = (1 - z_t) \\odot n_t + z_t \\odot h_{t-1}`) goes: ``"unit"`` — to the two inputs of the
            unit itself (:math:`N = 2`, the paper), or ``"layer"`` — spread evenly over all :math:`2H` inputs of the
            layer's sum (Arras et al.'s released code).
    """

    epsilon: float = 1e-3
    bias_factor: float = 0.0
    cell_stabilizer: str = "unit"

    def __post_init__(self) -> None:
        if not _is_real(self.epsilon) or not 0 < self.epsilon < math.inf:
            raise ValueError(f"Expected `epsilon` to be a finite positive number, but got {self.epsilon!r}")
        if not _is_real(self.bias_factor) or not 0 <= self.bias_factor <= 1:
            raise ValueError(
                f"Expected `bias_factor` to be a number in [0, 1] (0: LRP, 1: LRP_cons), but got {self.bias_factor!r}"
            )
        if self.cell_stabilizer not in CELL_STABILIZERS:
            raise ValueError(
                f"Expected `cell_stabilizer` to be one of {CELL_STABILIZERS}, but got {self.cell_stabilizer!r}"
            )


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def sign0(z: Tensor) -> Tensor:
    """:math:`\\mathrm{sign}` with :math:`\\mathrm{sign}(0) = +1` (``torch.sign(0)`` is 0).

    >>> sign0(torch.tensor([-2.0, 0.0, 3.0]))
    tensor([-1.,  1.,  1.])
    """
    # sign(z) + 1/2 is -1/2, 1/2 or 3/2 (for z < 0, z = ±0, z > 0): its sign is sign0, in float arithmetic only
    # (several times faster on CPU than a comparison and a conversion of the boolean).
    return z.sign().add_(0.5).sign_()


def stabilized_quotient(relevance: Tensor, z: Tensor, eps: float) -> Tensor:
    """:math:`R / (z + \\epsilon\\,\\mathrm{sign}(z))` (:func:`sign0`), computed in one buffer: it equals
    ``relevance / stabilized(z, eps)[0]`` exactly, with one allocation instead of three."""
    buffer = sign0(z).mul_(eps).add_(z)
    if torch.is_grad_enabled() or relevance.shape != z.shape:
        return relevance / buffer  # `out=` does not differentiate (a backward run with create_graph=True)
    return torch.div(relevance, buffer, out=buffer)


def stabilized(z: Tensor, eps: float) -> Tuple[Tensor, Tensor]:
    """:math:`(z + \\epsilon\\,\\mathrm{sign}(z), \\mathrm{sign}(z))` with :func:`sign0`."""
    sign = sign0(z)
    return torch.add(z, sign, alpha=eps), sign


@dataclass
class InitialState:
    """A recurrent module's initial state as a relevance-collecting leaf.

    Attributes:
        module: the module's qualified name.
        name: ``"h0"`` or ``"c0"``.
        leaf: the leaf tensor the module ran with (its gradient is the relevance).
    """

    module: str
    name: str
    leaf: Tensor


class LRPRun(Run):
    """The state of one LRP pass: the rule, the gates met and the initial-state leaves created.

    Args:
        rule: the :class:`EpsilonRule`.
        method: the method's name, for messages.

    Attributes:
        initial_states: the :class:`InitialState` leaves, in creation order.
    """

    def __init__(self, rule: EpsilonRule, method: str = "LSTMLRP") -> None:
        super().__init__(method)
        self.rule = rule
        self.initial_states: List[InitialState] = []


def _vjp(fn: Callable[[Tensor], Tensor], at: Tensor, cotangent: Tensor) -> Tensor:
    with torch.enable_grad():
        point = at.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(fn(point), point, cotangent, allow_unused=False)
    return grad


class EpsilonMap(torch.autograd.Function):
    """``z = value()`` where ``z - bias`` is the linear map ``linear(x)``; backward applies the ε-rule.

    ``EpsilonMap.apply(x, value, linear, connect, bias, data_terms, rule, transposed)``: ``connect`` is ``linear``
    with every weight 1 (it counts the fan-in :math:`N_j`); with ``data_terms`` only the inputs that are not exactly 0
    count (sums over data: padded and masked positions are unconnected); ``transposed`` is the transpose of
    ``linear`` (``None``: autograd differentiates ``linear`` at ``x``).
    """

    @staticmethod
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Tensor:
        """The op's value (the arguments are the class's); the rule is in ``backward``."""
        x, value, linear, connect, bias, data_terms, rule, transposed = args
        z: Tensor = value()
        ctx.save_for_backward(x, z)
        ctx.linear, ctx.connect, ctx.bias, ctx.data_terms, ctx.rule = linear, connect, bias, data_terms, rule
        ctx.transposed = transposed
        return z

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Tuple[Optional[Tensor], ...]:
        """The rule: the relevance of the inputs from that of the output."""
        (relevance,) = grads
        x, z = ctx.saved_tensors
        rule: EpsilonRule = ctx.rule
        q = stabilized_quotient(relevance, z, rule.epsilon)
        if ctx.transposed is None:
            result = x * _vjp(ctx.linear, x, q)
        else:
            mapped = ctx.transposed(q)  # a new tensor: multiplied in place unless the graph is being recorded
            in_place = mapped.shape == x.shape and mapped.dtype == x.dtype and not torch.is_grad_enabled()
            result = mapped.mul_(x) if in_place else x * mapped
        if rule.bias_factor != 0:
            spread = rule.epsilon * sign0(z)
            if ctx.bias is not None:
                spread = spread + ctx.bias
            present = (x != 0).to(x.dtype) if ctx.data_terms else torch.ones_like(x)
            with torch.no_grad():
                fan_in = ctx.connect(present)
            share = torch.where(fan_in > 0, rule.bias_factor * spread * q / fan_in.clamp(min=1), torch.zeros_like(q))
            distributed = _vjp(ctx.connect, x, share)
            result = result + (distributed * present if ctx.data_terms else distributed)
        return result, None, None, None, None, None, None, None


class EpsilonAdd(torch.autograd.Function):
    """``z = Σ_k c_k a_k + const``: a weighted connection of the relevance-carrying operands, constants as bias.

    ``EpsilonAdd.apply(value, coefficients, constant, rule, zero_constant_passes, *operands)``: with
    ``zero_constant_passes`` and one operand, the entries where the constant is exactly 0 are the identity
    (:math:`z = a`) and pass their relevance unchanged (an attention mask's 0 entries absorb nothing).
    """

    @staticmethod
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Tensor:
        """The op's value (the arguments are the class's); the rule is in ``backward``."""
        value, coefficients, constant, rule, zero_constant_passes, *operands = args
        z: Tensor = value()
        ctx.save_for_backward(z, *operands)
        ctx.coefficients, ctx.constant, ctx.rule = coefficients, constant, rule
        ctx.zero_constant_passes = zero_constant_passes and len(operands) == 1
        return z

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Tuple[Optional[Tensor], ...]:
        """The rule: the relevance of the inputs from that of the output."""
        (relevance,) = grads
        z, *operands = ctx.saved_tensors
        rule: EpsilonRule = ctx.rule
        q = stabilized_quotient(relevance, z, rule.epsilon)
        share = None
        if rule.bias_factor != 0:
            share = rule.bias_factor * (ctx.constant + rule.epsilon * sign0(z)) * q / len(operands)
        messages = []
        for coefficient, operand in zip(ctx.coefficients, operands):
            unit = isinstance(coefficient, (int, float)) and coefficient == 1  # a plain sum: no product to compute
            message = (operand if unit else coefficient * operand) * q
            if share is not None:
                message = message + share
            if ctx.zero_constant_passes:
                message = torch.where(torch.as_tensor(ctx.constant).to(z) == 0, relevance, message)
            messages.append(message.sum_to_size(operand.shape))
        return (None, None, None, None, None, *messages)


class PassThrough(torch.autograd.Function):
    """Forward: the op's value; backward: the relevance unchanged (summed onto the input's shape).

    ``PassThrough.apply(x, value)``.
    """

    @staticmethod
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Tensor:
        """The op's value (the arguments are the class's); the rule is in ``backward``."""
        x, value = args
        out: Tensor = value()
        ctx.shape = x.shape
        return out.clone() if out is x else out

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Tuple[Optional[Tensor], ...]:
        """The rule: the relevance of the inputs from that of the output."""
        (relevance,) = grads
        return relevance.sum_to_size(ctx.shape), None


class SelectionSum(torch.autograd.Function):
    """``z = Σ_k c_k a_k`` where each operand is a selection (:func:`selection_mask`) and no entry is selected by two:
    each entry of ``z`` is one operand's entry (or 0), and its relevance goes to that operand alone.

    ``SelectionSum.apply(value, masks, *operands)``: ``masks[k]`` is operand ``k``'s mask, broadcast to ``z``.
    """

    @staticmethod
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Tensor:
        """The op's value (the arguments are the class's); the rule is in ``backward``."""
        value, masks, *operands = args
        z: Tensor = value()
        ctx.masks, ctx.shapes = masks, [operand.shape for operand in operands]
        return z

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Tuple[Optional[Tensor], ...]:
        """The rule: the relevance of the inputs from that of the output."""
        (relevance,) = grads
        messages = [
            torch.where(mask, relevance, torch.zeros_like(relevance)).sum_to_size(shape)
            for mask, shape in zip(ctx.masks, ctx.shapes)
        ]
        return (None, None, *messages)


SELECTION_ATTRIBUTE = "_lrp_selection"
"""The attribute a product with a constant 0/1 mask carries: where it equals its relevance-carrying factor."""


def mark_selection(product: Tensor, mask: Tensor) -> Tensor:
    """Mark ``product`` as a selection: where ``mask`` (bool, broadcastable to it) is True it equals its
    relevance-carrying factor, elsewhere it is exactly 0. Returns ``product``."""
    setattr(product, SELECTION_ATTRIBUTE, torch.broadcast_to(mask, product.shape))
    return product


def selection_mask(tensor: Any) -> Optional[Tensor]:
    """The mask of a tensor marked by :func:`mark_selection`, else ``None``."""
    mask = getattr(tensor, SELECTION_ATTRIBUTE, None)
    return mask if isinstance(mask, Tensor) else None


def selection_sum(value: Callable[[], Tensor], masks: List[Tensor], *operands: Tensor) -> Tensor:
    """``value()``, whose backward routes each entry's relevance to the operand selected there
    (:class:`SelectionSum`)."""
    apply: Callable[..., Tensor] = SelectionSum.apply
    return apply(value, masks, *operands)


def epsilon_map(
    x: Tensor,
    value: Callable[[], Tensor],
    linear: Callable[[Tensor], Tensor],
    connect: Callable[[Tensor], Tensor],
    bias: Optional[Tensor],
    data_terms: bool,
    rule: EpsilonRule,
    transposed: Optional[Callable[[Tensor], Tensor]] = None,
) -> Tensor:
    """``value()``, whose backward maps relevance to ``x`` by the ε-rule (:class:`EpsilonMap`); ``transposed``, the
    transpose of ``linear`` when the rule knows it (``q @ W`` for ``F.linear``), saves differentiating ``linear``."""
    apply: Callable[..., Tensor] = EpsilonMap.apply
    return apply(x, value, linear, connect, bias, data_terms, rule, transposed)


def epsilon_add(
    value: Callable[[], Tensor],
    coefficients: Tuple[float, ...],
    constant: Any,
    rule: EpsilonRule,
    *operands: Tensor,
    zero_constant_passes: bool = False,
) -> Tensor:
    """``value()``, whose backward shares relevance among ``operands`` by the ε-rule (:class:`EpsilonAdd`); with
    ``zero_constant_passes``, a single operand keeps all the relevance where the constant is exactly 0."""
    apply: Callable[..., Tensor] = EpsilonAdd.apply
    return apply(value, coefficients, constant, rule, zero_constant_passes, *operands)


def pass_through(x: Tensor, value: Callable[[], Tensor]) -> Tensor:
    """``value()``, whose backward passes relevance to ``x`` unchanged (:class:`PassThrough`)."""
    apply: Callable[..., Tensor] = PassThrough.apply
    return apply(x, value)

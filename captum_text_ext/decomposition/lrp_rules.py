r"""LRP rules as autograd functions: the "gradient = relevance" convention, with an LSTM/GRU rule over the unrolled
cells of :mod:`~captum_text_ext.decomposition.cells`.

While :class:`~captum_text_ext.attr.LSTMLRP` runs a model, every op on the path from the inputs to the output is run
by the handler :func:`lrp_op_table` registers for it. Each handler computes exactly the value the op computes, and
attaches a backward that maps the relevance of the op's output to the relevance of its relevance-carrying input(s).
What flows backwards through autograd is then the relevance itself, and ops that only move numbers around (indexing,
``cat``, ``view``, ``PackedSequence`` packing, ``max``) route it correctly with their own backward.

**Weighted connections** :math:`z_j = \sum_i a_i w_{ij} + b_j` (the ε-rule, Arras et al. 2017, Sec. 2.2):

.. math::
    R_i = \sum_j \frac{a_i w_{ij} + \delta\,(b_j + \epsilon\,\mathrm{sign}(z_j)) / N_j}
                     {z_j + \epsilon\,\mathrm{sign}(z_j)}\, R_j, \qquad \mathrm{sign}(0) = +1,

with ``bias_factor`` :math:`\delta`. The paper prints the numerator as
:math:`a_i w_{ij} + (\epsilon\,\mathrm{sign}(z_j) + \delta b_j)/N` (the stabilizer is always spread); the authors'
released code multiplies both :math:`b_j` and :math:`\epsilon\,\mathrm{sign}(z_j)` by :math:`\delta` and calls the
printed form the initial version. We follow the code: with :math:`\delta = 0` bias and stabilizer absorb their part
(LRP-ε), with :math:`\delta = 1` every weighted connection conserves relevance.

:math:`N_j` is the number of inputs connected to :math:`z_j`: the fan-in of a ``Linear`` (``in_features``) or a
``Conv1d`` (``in_channels / groups`` times the kernel taps that fall inside the input); :math:`E + H` for an LSTM's
cell input :math:`g`; for sums over data (``sum``, ``mean``, and ``matmul``/``bmm`` with a constant operand) the number
of terms that are not exactly 0, so that masked and padded positions count as unconnected and a padded batch equals
each sentence alone; for ``add``/``sub`` the number of relevance-carrying operands (constant operands act as bias).

**Multiplicative interactions** :math:`z = z_g \odot z_s` with a gate :math:`z_g`: :math:`R_g = 0`, :math:`R_s = R_z`.
A product (``mul``, ``div``, ``neg``) with a constant — a mask, ``1 / lengths`` — is such a product, and so is a
product with a softmax output: softmax outputs are gates (attention weights), they receive no relevance and are
constants for everything downstream. A product of two relevance-carrying tensors is refused.

**Element-wise activations** (ReLU, tanh, sigmoid, dropout in evaluation mode, ...) pass relevance through unchanged:
a ReLU does not zero the relevance of its dead units. Dropout in training mode is random and refused. **Max pooling** (``max``, ``amax``, ``max_pool1d``) gives all to the winner.

**LSTM** (:func:`lstm_direction_relevance`), per step in reverse reading order, with the paper's fan-in :math:`N = 2`
for the cell sum:

.. math::
    \begin{aligned}
    R_{c_t} &\mathrel{+}= R_{h_t} \quad (\text{all of } h_t = o_t \odot \tanh(c_t) \text{ goes to } c_t) \\
    R_{c_{t-1}} &= \frac{f_t \odot c_{t-1} + \delta\,\epsilon\,\mathrm{sign}(c_t)/2}
                        {c_t + \epsilon\,\mathrm{sign}(c_t)} \odot R_{c_t}, \qquad
    R_{g_t} = \frac{i_t \odot g_t + \delta\,\epsilon\,\mathrm{sign}(c_t)/2}
                   {c_t + \epsilon\,\mathrm{sign}(c_t)} \odot R_{c_t} \\
    R_{x_t}, R_{h_{t-1}} &\leftarrow \text{ε-rule on } z^g_t = W_{ig} x_t + W_{hg} h_{t-1} + b_{ig} + b_{hg}
        \text{ with } N = E + H \text{ and } R_{z^g_t} = R_{g_t}
    \end{aligned}

The gates :math:`i, f, o` never receive relevance.

**GRU** (:func:`gru_direction_relevance`), derived the same way from PyTorch's equations:
:math:`h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}` is a weighted connection with two inputs per unit whose gates
:math:`1 - z_t` and :math:`z_t` get nothing; :math:`n_t = \tanh(a_t)` passes to
:math:`a_t = W_{in} x_t + b_{in} + p_t`, a weighted connection with :math:`N = E + 1` inputs (the :math:`E` inputs and
:math:`p_t`); :math:`p_t = r_t \odot m_t` is a gated product (the reset gate gets 0); and
:math:`m_t = W_{hn} h_{t-1} + b_{hn}` is a weighted connection with :math:`N = H`:

.. math::
    \begin{aligned}
    R_{n_t} &= \frac{(1 - z_t) \odot n_t + \delta\,\epsilon\,s_t/2}{h_t + \epsilon\,s_t} \odot R_{h_t}, \qquad
    R^{\text{direct}}_{h_{t-1}}
        = \frac{z_t \odot h_{t-1} + \delta\,\epsilon\,s_t/2}{h_t + \epsilon\,s_t} \odot R_{h_t},
    \qquad s_t = \mathrm{sign}(h_t) \\
    R_{x_t} &= x_t \odot W_{in}^\top q_t
        + \textstyle\sum_j \delta\,(b_{in,j} + \epsilon\,\mathrm{sign}(a_{t,j})) q_{t,j} / (E + 1),
        \qquad q_t = R_{n_t} / (a_t + \epsilon\,\mathrm{sign}(a_t)) \\
    R_{m_t} &= R_{p_t} = \big(p_t + \delta\,(b_{in} + \epsilon\,\mathrm{sign}(a_t)) / (E + 1)\big) \odot q_t \\
    R_{h_{t-1}} &= R^{\text{direct}}_{h_{t-1}} + h_{t-1} \odot W_{hn}^\top u_t
        + \textstyle\sum_j \delta\,(b_{hn,j} + \epsilon\,\mathrm{sign}(m_{t,j})) u_{t,j} / H, \qquad
        u_t = R_{m_t} / (m_t + \epsilon\,\mathrm{sign}(m_t))
    \end{aligned}

The gates :math:`r, z` never receive relevance. Both directions of a bidirectional layer are walked in their own
reading order and their input relevances summed; relevance on layer :math:`k`'s inputs is relevance on layer
:math:`k - 1`'s outputs; what remains on :math:`h_0, c_0` is the initial-state relevance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_text_ext.decomposition.cells import (
    DirectionTrace,
    FusedRecurrentCall,
    RecurrentSpec,
    RecurrentTrace,
    unroll,
)
from captum_text_ext.decomposition.guard import (
    DROPOUT_OPS,
    RANDOM_DROPOUT,
    OpGuard,
    OpTable,
    UnsupportedOperationError,
    dropout_is_random,
    is_tracked,
    ops_named,
)

__all__ = [
    "EpsilonRule",
    "LRPRun",
    "gru_direction_relevance",
    "lrp_op_table",
    "lstm_direction_relevance",
    "recurrent_relevance",
    "sign0",
]


@dataclass(frozen=True)
class EpsilonRule:
    """The ε-rule's two constants.

    Attributes:
        epsilon: the stabilizer :math:`\\epsilon > 0`.
        bias_factor: :math:`\\delta`: 0 lets bias and stabilizer absorb their part ("LRP"), 1 spreads them over the
            inputs so relevance is conserved ("LRP_cons").
    """

    epsilon: float = 1e-3
    bias_factor: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.epsilon, (int, float)) or isinstance(self.epsilon, bool) or not self.epsilon > 0:
            raise ValueError(f"Expected `epsilon` to be a positive number, but got {self.epsilon!r}")
        if (
            not isinstance(self.bias_factor, (int, float))
            or isinstance(self.bias_factor, bool)
            or self.bias_factor != self.bias_factor
            or abs(self.bias_factor) == float("inf")
        ):
            raise ValueError(f"Expected `bias_factor` to be a finite number (0 or 1), but got {self.bias_factor!r}")


def sign0(z: Tensor) -> Tensor:
    """:math:`\\mathrm{sign}` with :math:`\\mathrm{sign}(0) = +1` (``torch.sign(0)`` is 0).

    >>> sign0(torch.tensor([-2.0, 0.0, 3.0]))
    tensor([-1.,  1.,  1.])
    """
    return torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))


def _stabilized(z: Tensor, eps: float) -> Tuple[Tensor, Tensor]:
    sign = sign0(z)
    return z + eps * sign, sign


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


@dataclass
class LRPRun:
    """State of one LRP pass: the rule, the gates met and the initial-state leaves created.

    Attributes:
        rule: the :class:`EpsilonRule`.
        gates: names of the gate ops met (softmax), with the module they ran in.
        initial_states: the :class:`InitialState` leaves, in creation order.
    """

    rule: EpsilonRule
    gates: List[str] = field(default_factory=list)
    initial_states: List[InitialState] = field(default_factory=list)
    guard: Optional[OpGuard] = None

    def refuse(self, func: Callable[..., Any], reason: str) -> UnsupportedOperationError:
        """An :class:`UnsupportedOperationError` for ``func`` naming the running module."""
        if self.guard is not None:
            return self.guard.refuse(func, reason)
        name = getattr(func, "__name__", repr(func))
        return UnsupportedOperationError(f"LSTMLRP has no rule for `{name}`: {reason}", name, None)


# ----------------------------------------------------------------------------------------------------------------
# Weighted connections
# ----------------------------------------------------------------------------------------------------------------


def _vjp(fn: Callable[[Tensor], Tensor], at: Tensor, cotangent: Tensor) -> Tensor:
    with torch.enable_grad():
        point = at.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(fn(point), point, cotangent, allow_unused=False)
    return grad


class _EpsilonMap(torch.autograd.Function):
    """``z = value()`` where ``z - bias`` is the linear map ``linear(x)``; backward applies the ε-rule."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        value: Callable[[], Tensor],
        linear: Callable[[Tensor], Tensor],
        connect: Callable[[Tensor], Tensor],
        bias: Optional[Tensor],
        data_terms: bool,
        rule: EpsilonRule,
    ) -> Tensor:
        z = value()
        ctx.save_for_backward(x, z)
        ctx.linear, ctx.connect, ctx.bias, ctx.data_terms, ctx.rule = linear, connect, bias, data_terms, rule
        return z

    @staticmethod
    def backward(ctx: Any, relevance: Tensor) -> Tuple[Optional[Tensor], ...]:  # type: ignore[override]
        x, z = ctx.saved_tensors
        rule: EpsilonRule = ctx.rule
        denominator, sign = _stabilized(z, rule.epsilon)
        q = relevance / denominator
        result = x * _vjp(ctx.linear, x, q)
        if rule.bias_factor != 0:
            spread = rule.epsilon * sign
            if ctx.bias is not None:
                spread = spread + ctx.bias
            present = (x != 0).to(x.dtype) if ctx.data_terms else torch.ones_like(x)
            with torch.no_grad():
                fan_in = ctx.connect(present)
            share = torch.where(fan_in > 0, rule.bias_factor * spread * q / fan_in.clamp(min=1), torch.zeros_like(q))
            distributed = _vjp(ctx.connect, x, share)
            result = result + (distributed * present if ctx.data_terms else distributed)
        return result, None, None, None, None, None, None


def _bind(args: Tuple[Any, ...], kwargs: Dict[str, Any], names: Sequence[str], defaults: Dict[str, Any]) -> List[Any]:
    values = list(args[: len(names)])
    for name in names[len(values) :]:
        values.append(kwargs.get(name, defaults.get(name)))
    return values


def _linear_handler(run: LRPRun) -> Callable[..., Any]:
    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x, weight, bias = _bind(args, kwargs, ("input", "weight", "bias"), {"bias": None})
        if is_tracked(weight) or is_tracked(bias) or not is_tracked(x):
            raise run.refuse(func, "the weight and bias must be constants (LSTMLRP freezes the model's parameters)")
        ones = torch.ones_like(weight)
        return _EpsilonMap.apply(
            x,
            lambda: func(*args, **kwargs),
            lambda u: F.linear(u, weight),
            lambda u: F.linear(u, ones),
            bias,
            False,
            run.rule,
        )

    return handler


def _conv1d_handler(run: LRPRun) -> Callable[..., Any]:
    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
        x, weight, bias, stride, padding, dilation, groups = _bind(
            args, kwargs, names, {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
        )
        if is_tracked(weight) or is_tracked(bias) or not is_tracked(x):
            raise run.refuse(func, "the weight and bias must be constants (LSTMLRP freezes the model's parameters)")
        ones = torch.ones_like(weight)

        def conv(u: Tensor, w: Tensor) -> Tensor:
            return F.conv1d(u, w, None, stride, padding, dilation, groups)

        return _EpsilonMap.apply(
            x,
            lambda: func(*args, **kwargs),
            lambda u: conv(u, weight),
            lambda u: conv(u, ones),
            None if bias is None else bias.unsqueeze(-1),
            False,
            run.rule,
        )

    return handler


def _reduce_handler(run: LRPRun, mean: bool) -> Callable[..., Any]:
    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x, dim, keepdim = _bind(args, kwargs, ("input", "dim", "keepdim"), {"dim": None, "keepdim": False})
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

        return _EpsilonMap.apply(x, lambda: func(*args, **kwargs), linear, total, None, True, run.rule)

    return handler


def _matmul_handler(run: LRPRun) -> Callable[..., Any]:
    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        a, b = _bind(args, kwargs, ("input", "other"), {})
        if "mat2" in kwargs:
            b = kwargs["mat2"]
        if is_tracked(a) and is_tracked(b):
            raise run.refuse(func, "a product of two relevance-carrying tensors (one operand must be a constant)")
        if is_tracked(a):
            x, const = a, b
            nonzero = (b != 0).to(b.dtype)

            def linear(u: Tensor) -> Tensor:
                return torch.matmul(u, const)

            def connect(u: Tensor) -> Tensor:
                return torch.matmul(u, nonzero)

        else:
            x, const = b, a
            nonzero = (a != 0).to(a.dtype)

            def linear(u: Tensor) -> Tensor:
                return torch.matmul(const, u)

            def connect(u: Tensor) -> Tensor:
                return torch.matmul(nonzero, u)

        return _EpsilonMap.apply(x, lambda: func(*args, **kwargs), linear, connect, None, True, run.rule)

    return handler


class _EpsilonAdd(torch.autograd.Function):
    """``z = Σ_k c_k a_k + const``: a weighted connection of the relevance-carrying operands, constants as bias."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        value: Callable[[], Tensor],
        coefficients: Tuple[float, ...],
        constant: Any,
        rule: EpsilonRule,
        *operands: Tensor,
    ) -> Tensor:
        z = value()
        ctx.save_for_backward(z, *operands)
        ctx.coefficients, ctx.constant, ctx.rule = coefficients, constant, rule
        return z

    @staticmethod
    def backward(ctx: Any, relevance: Tensor) -> Tuple[Optional[Tensor], ...]:  # type: ignore[override]
        z, *operands = ctx.saved_tensors
        rule: EpsilonRule = ctx.rule
        denominator, sign = _stabilized(z, rule.epsilon)
        q = relevance / denominator
        share: Any = 0.0
        if rule.bias_factor != 0:
            share = rule.bias_factor * (ctx.constant + rule.epsilon * sign) * q / len(operands)
        grads = []
        for coefficient, operand in zip(ctx.coefficients, operands):
            message = coefficient * operand * q + share
            grads.append(message.sum_to_size(operand.shape))
        return (None, None, None, None, *grads)


_ADD_FORMS: Dict[str, Tuple[int, int, bool]] = {
    # name: (sign of first operand, sign of second operand, first positional is `self`)
    "add": (1, 1, False),
    "__add__": (1, 1, False),
    "__radd__": (1, 1, False),
    "sub": (1, -1, False),
    "subtract": (1, -1, False),
    "__sub__": (1, -1, False),
    "__rsub__": (-1, 1, False),
}


def _add_handler(run: LRPRun) -> Callable[..., Any]:
    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        name = getattr(func, "__name__", "")
        first_sign, second_sign, _ = _ADD_FORMS[name]
        a, b = _bind(args, kwargs, ("input", "other"), {})
        alpha = kwargs.get("alpha", args[2] if len(args) > 2 else 1)
        terms = [(a, float(first_sign)), (b, float(second_sign) * float(alpha))]
        if name == "__rsub__":
            terms = [(a, -float(alpha)), (b, 1.0)]
        operands = [t for t, _ in terms if is_tracked(t)]
        coefficients = tuple(c for t, c in terms if is_tracked(t))
        constant: Any = 0.0
        for term, coefficient in terms:
            if not is_tracked(term):
                if isinstance(term, Tensor) and not term.is_floating_point():
                    term = term.to(operands[0].dtype)
                constant = constant + coefficient * term
        return _EpsilonAdd.apply(lambda: func(*args, **kwargs), coefficients, constant, run.rule, *operands)

    return handler


# ----------------------------------------------------------------------------------------------------------------
# Pass-through, gates, routing
# ----------------------------------------------------------------------------------------------------------------


class _PassThrough(torch.autograd.Function):
    """Forward: the op's value; backward: the relevance unchanged (summed onto the input's shape)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, value: Callable[[], Tensor]) -> Tensor:  # type: ignore[override]
        out = value()
        ctx.shape = x.shape
        return out.clone() if out is x else out

    @staticmethod
    def backward(ctx: Any, relevance: Tensor) -> Tuple[Optional[Tensor], ...]:  # type: ignore[override]
        return relevance.sum_to_size(ctx.shape), None


def _substitute(obj: Any, old: Tensor, new: Tensor) -> Any:
    if obj is old:
        return new
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(_substitute(item, old, new) for item in obj)
    return obj


def _activation_handler(run: LRPRun) -> Callable[..., Any]:
    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x = args[0] if args else kwargs.get("input")
        others = [t for t in list(args[1:]) + list(kwargs.values()) if is_tracked(t)]
        if not isinstance(x, Tensor) or not is_tracked(x) or others:
            raise run.refuse(func, "only the first argument of an activation may carry relevance")
        copy = x.detach().clone()
        call_args = tuple(_substitute(a, x, copy) for a in args)
        call_kwargs = {k: _substitute(v, x, copy) for k, v in kwargs.items()}
        with torch.no_grad():
            probe = func(*call_args, **call_kwargs)
        if not isinstance(probe, Tensor) or probe.shape != x.shape:
            raise run.refuse(func, "an element-wise activation must keep its input's shape")
        return _PassThrough.apply(x, lambda: probe)

    return handler


def _dropout_handler(run: LRPRun) -> Callable[..., Any]:
    """Dropout in evaluation mode passes relevance through like an activation; in training mode it is refused."""
    pass_through = _activation_handler(run)

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        if dropout_is_random(func, args, kwargs):
            raise run.refuse(func, RANDOM_DROPOUT)
        return pass_through(func, args, kwargs)

    return handler


def _product_handler(run: LRPRun, divide: bool) -> Callable[..., Any]:
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
        return _PassThrough.apply(x, lambda: func(*args, **kwargs))

    return handler


def _negate_handler(run: LRPRun) -> Callable[..., Any]:
    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        return _PassThrough.apply(args[0], lambda: func(*args, **kwargs))

    return handler


def _softmax_handler(run: LRPRun) -> Callable[..., Any]:
    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        where = run.guard.where() if run.guard is not None else None
        run.gates.append(f"{getattr(func, '__name__', 'softmax')} in {where or '<root>'!r}")
        with torch.no_grad():
            return func(*args, **kwargs)

    return handler


def _route(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    return func(*args, **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# Recurrent layers
# ----------------------------------------------------------------------------------------------------------------


def lstm_direction_relevance(
    trace: DirectionTrace, r_out: Tensor, r_h: Tensor, r_c: Tensor, rule: EpsilonRule
) -> Tuple[Tensor, Tensor, Tensor]:
    """LRP backwards through one direction of one LSTM layer (equations in the module docstring).

    Args:
        trace: the direction's :class:`~captum_text_ext.decomposition.cells.DirectionTrace`.
        r_out: :math:`(T, B, H)` relevance of the direction's outputs (ignored at padding).
        r_h, r_c: :math:`(B, H)` relevance of the final states :math:`h_n, c_n`.
        rule: :math:`\\epsilon, \\delta`.

    Returns:
        ``(R_x (T, B, E), R_h0 (B, H), R_c0 (B, H))``.
    """
    assert trace.c is not None and trace.c_prev is not None
    eps, delta = rule.epsilon, rule.bias_factor
    w_x, w_h, _, _ = trace.weights.gate("g")
    bias = trace.weights.gate_bias("g")
    hidden = trace.weights.hidden_size
    fan_in = trace.weights.input_size + hidden
    steps = trace.inputs.shape[0]
    q_all = torch.zeros_like(trace.h)
    share_all = trace.h.new_zeros(steps, trace.h.shape[1], 1)
    i_gate, f_gate, g_gate = trace.gates["i"], trace.gates["f"], trace.gates["g"]
    for t in reversed(trace.reading_order()):
        active = trace.active[t].unsqueeze(-1)
        r_ht = r_h + torch.where(active, r_out[t], torch.zeros_like(r_out[t]))
        r_ct = r_c + r_ht
        c = trace.c[t]
        denominator, sign = _stabilized(c, eps)
        spread = delta * eps * sign / 2
        r_c_prev = (f_gate[t] * trace.c_prev[t] + spread) / denominator * r_ct
        r_g = (i_gate[t] * g_gate[t] + spread) / denominator * r_ct
        z_g = trace.pre[t][:, 2 * hidden : 3 * hidden]
        den_g, sign_g = _stabilized(z_g, eps)
        q = r_g / den_g
        r_h_prev = trace.h_prev[t] * (q @ w_h)
        if delta != 0:
            spread_g = eps * sign_g if bias is None else bias + eps * sign_g
            share = delta * (spread_g * q).sum(-1, keepdim=True) / fan_in
            r_h_prev = r_h_prev + share
            share_all[t] = torch.where(active, share, torch.zeros_like(share))
        q_all[t] = torch.where(active, q, torch.zeros_like(q))
        r_h = torch.where(active, r_h_prev, r_h)
        r_c = torch.where(active, r_c_prev, r_c)
    r_x = trace.inputs * (q_all @ w_x) + share_all
    return r_x, r_h, r_c


def gru_direction_relevance(
    trace: DirectionTrace, r_out: Tensor, r_h: Tensor, rule: EpsilonRule
) -> Tuple[Tensor, Tensor]:
    """LRP backwards through one direction of one GRU layer (equations in the module docstring).

    Returns:
        ``(R_x (T, B, E), R_h0 (B, H))``.
    """
    assert trace.pre_h is not None
    eps, delta = rule.epsilon, rule.bias_factor
    w_x, w_h, b_x, b_h = trace.weights.gate("n")
    hidden = trace.weights.hidden_size
    fan_in_a = trace.weights.input_size + 1
    steps = trace.inputs.shape[0]
    q_all = torch.zeros_like(trace.h)
    share_all = trace.h.new_zeros(steps, trace.h.shape[1], 1)
    r_gate, z_gate, n_gate = trace.gates["r"], trace.gates["z"], trace.gates["n"]
    for t in reversed(trace.reading_order()):
        active = trace.active[t].unsqueeze(-1)
        r_ht = r_h + torch.where(active, r_out[t], torch.zeros_like(r_out[t]))
        h_new, h_prev = trace.h[t], trace.h_prev[t]
        denominator, sign = _stabilized(h_new, eps)
        spread = delta * eps * sign / 2
        r_n = ((1 - z_gate[t]) * n_gate[t] + spread) / denominator * r_ht
        r_direct = (z_gate[t] * h_prev + spread) / denominator * r_ht
        m = trace.pre_h[t][:, 2 * hidden :]
        p = r_gate[t] * m
        a = trace.pre[t][:, 2 * hidden :] + p
        den_a, sign_a = _stabilized(a, eps)
        q = r_n / den_a
        r_p = p * q
        if delta != 0:
            spread_a = eps * sign_a if b_x is None else b_x + eps * sign_a
            unit_share = delta * spread_a * q / fan_in_a
            r_p = r_p + unit_share
            share = unit_share.sum(-1, keepdim=True)
            share_all[t] = torch.where(active, share, torch.zeros_like(share))
        den_m, sign_m = _stabilized(m, eps)
        u = r_p / den_m
        r_h_prev = r_direct + h_prev * (u @ w_h)
        if delta != 0:
            spread_m = eps * sign_m if b_h is None else b_h + eps * sign_m
            r_h_prev = r_h_prev + delta * (spread_m * u).sum(-1, keepdim=True) / hidden
        q_all[t] = torch.where(active, q, torch.zeros_like(q))
        r_h = torch.where(active, r_h_prev, r_h)
    r_x = trace.inputs * (q_all @ w_x) + share_all
    return r_x, r_h


def recurrent_relevance(
    trace: RecurrentTrace, r_out: Tensor, r_hn: Tensor, r_cn: Optional[Tensor], rule: EpsilonRule
) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """LRP backwards through a stacked, possibly bidirectional LSTM/GRU.

    Args:
        trace: the :class:`~captum_text_ext.decomposition.cells.RecurrentTrace` of the forward pass.
        r_out: :math:`(T, B, D H)` relevance of the outputs.
        r_hn: :math:`(K D, B, H)` relevance of the final hidden states.
        r_cn: :math:`(K D, B, H)` relevance of the final cell states (LSTM) or ``None``.
        rule: :math:`\\epsilon, \\delta`.

    Returns:
        ``(R_inputs (T, B, E), R_h0 (K D, B, H), R_c0 (K D, B, H) or None)``.
    """
    spec = trace.spec
    directions, hidden = spec.num_directions, spec.hidden_size
    r_h0 = torch.zeros_like(trace.h_n)
    r_c0 = None if trace.c_n is None else torch.zeros_like(trace.c_n)
    relevance = r_out
    for k in reversed(range(spec.num_layers)):
        r_in = torch.zeros_like(trace.layers[k][0].inputs)
        for d in range(directions):
            tr = trace.layers[k][d]
            index = k * directions + d
            r_dir = relevance[..., d * hidden : (d + 1) * hidden]
            if spec.cell == "lstm":
                assert r_cn is not None and r_c0 is not None
                r_x, r_h0[index], r_c0[index] = lstm_direction_relevance(tr, r_dir, r_hn[index], r_cn[index], rule)
            else:
                r_x, r_h0[index] = gru_direction_relevance(tr, r_dir, r_hn[index], rule)
            r_in = r_in + r_x
        relevance = r_in
    return relevance, r_h0, r_c0


class _RecurrentLRP(torch.autograd.Function):
    """Forward: the unrolled LSTM/GRU (values equal ``nn.LSTM``'s); backward: :func:`recurrent_relevance`."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        h0: Tensor,
        c0: Optional[Tensor],
        spec: RecurrentSpec,
        lengths: Optional[Tensor],
        rule: EpsilonRule,
    ) -> Tuple[Tensor, ...]:
        trace = unroll(spec, x, lengths, h0, c0)
        ctx.trace, ctx.rule = trace, rule
        if trace.c_n is None:
            return trace.outputs, trace.h_n
        return trace.outputs, trace.h_n, trace.c_n

    @staticmethod
    def backward(ctx: Any, *relevance: Tensor) -> Tuple[Optional[Tensor], ...]:  # type: ignore[override]
        trace: RecurrentTrace = ctx.trace
        r_out, r_hn = relevance[0], relevance[1]
        r_cn = relevance[2] if len(relevance) > 2 else None
        r_x, r_h0, r_c0 = recurrent_relevance(trace, r_out, r_hn, r_cn, ctx.rule)
        return r_x, r_h0, r_c0, None, None, None


def _recurrent_handler(run: LRPRun, op: str) -> Callable[..., Any]:
    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        try:
            call = FusedRecurrentCall.parse(op, args, kwargs)
        except TypeError as err:
            raise run.refuse(func, str(err)) from err
        weights = [t for w in call.spec.weights for t in (w.weight_ih, w.weight_hh, w.bias_ih, w.bias_hh)]
        if any(is_tracked(t) for t in weights):
            raise run.refuse(func, "the recurrent weights must be constants (LSTMLRP freezes the model's parameters)")
        if call.train and call.dropout > 0 and call.spec.num_layers > 1:
            raise run.refuse(func, "dropout between recurrent layers in training mode is random")
        outputs = _RecurrentLRP.apply(call.inputs, call.h0, call.c0, call.spec.detached(), call.lengths, run.rule)
        return call.result(*outputs)

    return handler


# ----------------------------------------------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------------------------------------------

ROUTING_OPS = (
    "__getitem__", "view", "view_as", "reshape", "reshape_as", "flatten", "unflatten", "squeeze", "unsqueeze",
    "transpose", "t", "permute", "movedim", "moveaxis", "swapaxes", "swapdims", "contiguous", "clone", "to",
    "type_as", "double", "float", "cpu", "cuda", "expand", "expand_as", "repeat", "tile", "broadcast_to", "cat",
    "concat", "concatenate", "stack", "hstack", "vstack", "split", "split_with_sizes", "chunk", "tensor_split",
    "unbind", "narrow", "select", "index_select", "gather", "take_along_dim", "flip", "roll", "masked_fill",
    "where", "pad", "_pack_padded_sequence", "_pad_packed_sequence", "zeros_like", "ones_like", "empty_like",
    "full_like", "new_zeros", "new_ones", "new_full", "new_empty",
)  # fmt: skip
"""Ops whose own backward routes relevance correctly (they move, copy, select or pad numbers)."""

MAX_OPS = (
    "max", "min", "amax", "amin", "maximum", "minimum", "max_pool1d", "max_pool1d_with_indices", "_max_pool1d",
    "adaptive_max_pool1d", "adaptive_max_pool1d_with_indices", "_adaptive_max_pool1d",
)  # fmt: skip
"""Max pooling: winner takes all (the ops' own backward)."""

ACTIVATION_OPS = (
    "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "softplus", "softsign", "tanh",
    "sigmoid", "hardtanh", "hardsigmoid", "hardswish", "logsigmoid", "tanhshrink", "threshold", "_threshold",
    "prelu", "rrelu", "clamp", "clip",
)  # fmt: skip
"""Element-wise activations: relevance passes through unchanged."""


def lrp_op_table(run: LRPRun) -> OpTable:
    """The ops :class:`~captum_text_ext.attr.LSTMLRP` supports, each with its rule (see the module docstring)."""
    table = OpTable("LSTMLRP")
    for op in FusedRecurrentCall.OPS:
        table.register("recurrent layers", ops_named([op]), _recurrent_handler(run, op))
    table.register("weighted layers (epsilon rule)", ops_named(["linear"]), _linear_handler(run))
    table.register("weighted layers (epsilon rule)", ops_named(["conv1d"]), _conv1d_handler(run))
    table.register("weighted layers (epsilon rule)", ops_named(["sum"]), _reduce_handler(run, mean=False))
    table.register("weighted layers (epsilon rule)", ops_named(["mean"]), _reduce_handler(run, mean=True))
    table.register(
        "weighted layers (epsilon rule)", ops_named(["matmul", "mm", "bmm", "__matmul__"]), _matmul_handler(run)
    )
    table.register("weighted layers (epsilon rule)", ops_named(list(_ADD_FORMS)), _add_handler(run))
    table.register("products with a gate or constant", ops_named(["mul", "multiply", "__mul__", "__rmul__"]),
                   _product_handler(run, divide=False))  # fmt: skip
    table.register("products with a gate or constant", ops_named(["div", "divide", "true_divide", "__truediv__"]),
                   _product_handler(run, divide=True))  # fmt: skip
    table.register("products with a gate or constant", ops_named(["neg", "negative", "__neg__"]), _negate_handler(run))
    table.register("gates (no relevance)", ops_named(["softmax"]), _softmax_handler(run))
    table.register("pass-through activations", ops_named(ACTIVATION_OPS), _activation_handler(run))
    table.register("dropout (evaluation mode)", ops_named(DROPOUT_OPS), _dropout_handler(run))
    table.register("max pooling (winner takes all)", ops_named(MAX_OPS), _route)
    table.register(
        "routing",
        ops_named(ROUTING_OPS, namespaces=(torch, torch.Tensor, torch.nn.functional, torch._C._VariableFunctions)),
        _route,
    )
    return table

r"""LRP rules for transformers: the softmax, products of two relevance-carrying tensors, normalizations and fused
attention, in the two presets of :class:`~captum_text_ext.TransformerLRP` (the table is
:func:`~captum_text_ext.decomposition.lrp.transformer_op_table`).

Notation: an op's output :math:`z` receives the relevance :math:`R_z`; :math:`\epsilon > 0` is the stabilizer and
:math:`s(z) = \mathrm{sign}(z)` with :math:`s(0) = +1`.

**Softmax** :math:`p = \mathrm{softmax}(x)` along a dimension. ``"attnlrp"`` (Achtibat et al., 2024, Prop. 3.1: the
first-order Taylor decomposition at :math:`x` itself, with its bias term left out):

.. math::
    R_{x_i} = x_i \Big(R_{p_i} - p_i \sum_j R_{p_j}\Big),

which conserves nothing in general: :math:`\sum_i R_{x_i} - \sum_j R_{p_j}` is the rule's leak, reported in
:attr:`~captum_text_ext.LRPDecomposition.absorbed`. A logit of :math:`-\infty` (a masked key) counts as 0, so a mask
gives no NaN. ``"cp"`` (Ali et al., 2022): the attention weights :math:`p` are held constant (computed without
relevance), so :math:`R_x = 0` and products with :math:`p` give all to the other factor.

**Products of two relevance-carrying tensors** (both presets; Achtibat et al., Prop. 3.2 and 3.3, the uniform rule):
an element-wise product :math:`z = a \odot b` gives each factor half, :math:`R_a = R_b = R_z / 2`; a matrix product
:math:`z_{ik} = \sum_j a_{ij} b_{jk}` (:math:`QK^\top`, :math:`AV`) shares :math:`R_z` among its terms by the ε-rule
and each term's share equally between its two factors:

.. math::
    R_{a_{ij}} = \frac12 \sum_k \frac{a_{ij} b_{jk}}{z_{ik} + \epsilon\,s(z_{ik})} R_{z_{ik}}, \qquad
    R_{b_{jk}} = \frac12 \sum_i \frac{a_{ij} b_{jk}}{z_{ik} + \epsilon\,s(z_{ik})} R_{z_{ik}}.

Under ``"cp"`` the scores :math:`QK^\top` feed only the softmax, which holds them constant, so no relevance reaches
them; a product of two relevance-carrying tensors elsewhere gets the uniform rule too (CP-LRP defines none). A
product with a constant uses LSTMLRP's rules (the ε-rule for a matrix, all to the other factor for an entry-wise
factor).

**Normalizations** (both presets: the identity rule on the normalization, Achtibat et al., Prop. 3.4; CP-LRP's
constant scale). ``layer_norm`` :math:`y = w \odot (x - \bar x) / \sigma + b` with the scale
:math:`\sigma = \sqrt{\mathrm{Var}[x] + \varepsilon_{\text{LN}}}` held constant is an affine map of :math:`x`, and
the ε-rule applies to it as a whole:

.. math::
    R_{x_i} = x_i \sum_j \frac{\partial y_j}{\partial x_i}\Big|_{\sigma\ \text{const}}
              \frac{R_{y_j}}{y_j + \epsilon\,s(y_j)}, \qquad
    \frac{\partial y_j}{\partial x_i}\Big|_{\sigma\ \text{const}} = \frac{w_j}{\sigma}
        \Big(\delta_{ij} - \frac1D\Big),

so the bias :math:`b` absorbs its share and a bias-free LayerNorm conserves relevance. ``rms_norm``
(:math:`y = w \odot x / \mathrm{rms}(x)`) and ``normalize`` (:math:`y = x / \max(\lVert x \rVert_p, \varepsilon)`)
are the same with their scale held constant: :math:`R_{x_i} = y_i / (y_i + \epsilon\,s(y_i))\,R_{y_i}`.

**Attention kernels** are run as their steps, each by its rule, so that a fused call and the same computation
written out give the same relevance: ``scaled_dot_product_attention`` as
:math:`\mathrm{softmax}(QK^\top \cdot \text{scale} + M)\,V` (:func:`attention_steps`), with a boolean mask ``True =
attend`` turned into the additive :math:`M \in \{0, -\infty\}`; ``multi_head_attention_forward`` (what
``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` call) as PyTorch's own Python code; ``baddbmm`` (the
mask plus :math:`QK^\top` inside it) as :math:`\beta M + \alpha\,QK^\top`. An **additive mask** is a constant: where
it is 0 the addition is the identity and passes relevance unchanged, and where it is :math:`-\infty` (or the dtype's
minimum) the softmax gives 0 weight and 0 relevance: masks absorb nothing. The eval-mode fast paths
(``_transformer_encoder_layer_fwd``, ``_native_multi_head_attention``, and the nested tensors of
``nn.TransformerEncoder``) run only when no input requires grad; under the method the modules take their ordinary
path, and a direct call on relevance-carrying tensors is refused.

References:
    R. Achtibat, S. M. V. Hatefi, M. Dreyer, A. Jain, T. Wiegand, S. Lapuschkin, W. Samek. AttnLRP:
    Attention-Aware Layer-Wise Relevance Propagation for Transformers. ICML 2024.

    A. Ali, T. Schnake, O. Eberle, G. Montavon, K.-R. Müller, L. Wolf. XAI for Transformers: Better Explanations
    through Conservative Propagation. ICML 2022.
"""

from __future__ import annotations

import functools
import math
import types
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from torch import Tensor

from captum_text_ext.decomposition.guard import RANDOM_REASON, Handler, OpGuard, OpTable, is_tracked
from captum_text_ext.decomposition.lrp.relevance import LRPRun, epsilon_map, stabilized_quotient
from captum_text_ext.decomposition.lrp.rules import add_rule, gate_rule, matmul_rule, product_rule
from captum_text_ext.decomposition.lrp.table import register_lrp_rules
from captum_text_ext.decomposition.ops import GROUPS, bind_args

__all__ = [
    "PRESETS",
    "TRANSFORMER_REFUSED",
    "SoftmaxTaylor",
    "UniformProduct",
    "attention_steps",
    "baddbmm_rule",
    "layer_norm_rule",
    "multi_head_attention_rule",
    "normalize_rule",
    "rms_norm_rule",
    "sdpa_rule",
    "softmax_taylor_rule",
    "transformer_op_table",
    "uniform_matmul_rule",
    "uniform_product_rule",
]

PRESETS = ("attnlrp", "cp")
"""The rule presets: AttnLRP (Achtibat et al., 2024) and CP-LRP (Ali et al., 2022)."""

CONSTANT_SCALE = "the weight and bias must be constants (parameters, not computed from the inputs)"


class SoftmaxTaylor(torch.autograd.Function):
    """Forward: the softmax's value; backward: :math:`R_x = x \\odot (R_p - p \\sum R_p)` along ``dim`` (a logit
    of :math:`-\\infty` counts as 0).

    ``SoftmaxTaylor.apply(x, value, dim)``.
    """

    @staticmethod
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Tensor:
        """The softmax's value, computed by ``value()``."""
        x, value, dim = args
        p: Tensor = value()
        ctx.save_for_backward(x, p)
        ctx.dim = dim
        return p

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Tuple[Optional[Tensor], ...]:
        """The relevance of the logits from the relevance of the weights."""
        (relevance,) = grads
        x, p = ctx.saved_tensors
        relevance = relevance.to(p.dtype)
        # (R_p - p Σ R_p) ⊙ x in one new buffer; where x = -∞ (p = 0) the product is ±∞ or NaN and is set to 0
        r_x = (p * relevance.sum(ctx.dim, keepdim=True)).neg_().add_(relevance).mul_(x)
        return r_x.masked_fill_(torch.isneginf(x), 0).to(x.dtype), None, None


class UniformProduct(torch.autograd.Function):
    """Forward: ``product(a, b)``; backward: the uniform rule — for a matrix product (``stabilized``) the ε-rule over
    its terms, each term's share halved between its factors; for an element-wise product half of :math:`R_z` to
    each factor.

    ``UniformProduct.apply(a, b, product, stabilized, epsilon)``.
    """

    @staticmethod
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Tensor:
        """``product(a, b)``."""
        a, b, product, stabilized, epsilon = args
        z: Tensor = product(a, b)
        ctx.save_for_backward(a, b, z)
        ctx.product, ctx.stabilized, ctx.epsilon = product, stabilized, epsilon
        return z

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Tuple[Optional[Tensor], ...]:
        """The relevance of both factors from the relevance of the product."""
        (relevance,) = grads
        a, b, z = ctx.saved_tensors
        if not ctx.stabilized:
            half = relevance / 2
            return half.sum_to_size(a.shape), half.sum_to_size(b.shape), None, None, None
        q = stabilized_quotient(relevance, z, ctx.epsilon)
        if a.dim() >= 2 and b.dim() >= 2 and not torch.is_grad_enabled():
            # the matrix product's vector-Jacobian products written out (no second forward product to differentiate)
            grad_a = torch.matmul(q, b.transpose(-2, -1)).sum_to_size(a.shape)
            grad_b = torch.matmul(a.transpose(-2, -1), q).sum_to_size(b.shape)
            return grad_a.mul_(a).mul_(0.5), grad_b.mul_(b).mul_(0.5), None, None, None
        with torch.enable_grad():
            a_, b_ = a.detach().requires_grad_(True), b.detach().requires_grad_(True)
            grad_a, grad_b = torch.autograd.grad(ctx.product(a_, b_), (a_, b_), q)
        return a * grad_a / 2, b * grad_b / 2, None, None, None


def softmax_taylor_rule(run: LRPRun) -> Handler:
    """``softmax`` under ``"attnlrp"``: :class:`SoftmaxTaylor`."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x, dim = bind_args(args, kwargs, ("input", "dim"), {"dim": None})
        if not isinstance(dim, int):
            raise run.refuse(func, "a softmax needs its `dim` (the implicit dimension of old PyTorch is not supported)")
        apply: Callable[..., Tensor] = SoftmaxTaylor.apply
        return apply(x, lambda: func(*args, **kwargs), dim)

    return handler


def _two_tracked(run: LRPRun, func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]
                 ) -> Optional[Tuple[Tensor, Tensor]]:
    a, b = bind_args(args, kwargs, ("input", "other"), {})
    if "mat2" in kwargs:
        b = kwargs["mat2"]
    if not (is_tracked(a) and is_tracked(b)):
        return None
    if len(args) + len(kwargs) > 2:
        raise run.refuse(func, "only the two factors may be given (no `out`, `alpha` or `rounding_mode`)")
    return a, b


def _uniform_or(run: LRPRun, one_constant: Handler, stabilized: bool) -> Handler:
    """Two relevance-carrying operands by :class:`UniformProduct`, else ``one_constant``."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        operands = _two_tracked(run, func, args, kwargs)
        if operands is None:
            return one_constant(func, args, kwargs)
        apply: Callable[..., Tensor] = UniformProduct.apply
        return apply(*operands, func, stabilized, run.rule.epsilon)

    return handler


def uniform_matmul_rule(run: LRPRun) -> Handler:
    """``matmul`` / ``mm`` / ``bmm`` / ``@``: two relevance-carrying operands by the uniform rule
    (:class:`UniformProduct`); a constant operand by LSTMLRP's ε-rule."""
    return _uniform_or(run, matmul_rule(run), stabilized=True)


def uniform_product_rule(run: LRPRun) -> Handler:
    """``mul`` and its forms: two relevance-carrying factors by the uniform rule (half to each); a constant or gate
    factor by LSTMLRP's rule (all to the other factor)."""
    return _uniform_or(run, product_rule(run, divide=False), stabilized=False)


def _normalization(
    run: LRPRun,
    func: Callable[..., Any],
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
    x: Any,
    parameters: Tuple[Any, ...],
    linear: Callable[[Tensor], Tensor],
    connect: Callable[[Tensor], Tensor],
    bias: Optional[Tensor],
    transposed: Optional[Callable[[Tensor], Tensor]] = None,
    value: Optional[Tensor] = None,
) -> Tensor:
    """The ε-rule on a normalization with its scale held constant; ``value`` is the op's value when the rule has
    already computed it (else the op is called)."""
    if not is_tracked(x) or any(is_tracked(p) for p in parameters):
        raise run.refuse(func, CONSTANT_SCALE)
    result = (lambda: func(*args, **kwargs)) if value is None else (lambda: value)
    return epsilon_map(x, result, linear, connect, bias, False, run.rule, transposed)


def layer_norm_rule(run: LRPRun) -> Handler:
    """``layer_norm``: the ε-rule on :math:`w \\odot (x - \\bar x) / \\sigma + b` with :math:`\\sigma` constant."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        names = ("input", "normalized_shape", "weight", "bias", "eps")
        x, shape, weight, bias, eps = bind_args(args, kwargs, names, {"weight": None, "bias": None, "eps": 1e-5})
        dims = tuple(range(-len(tuple(shape)), 0))
        # the value and 1 / σ from one call of the kernel ``layer_norm`` runs (a separate variance is several times
        # slower)
        with torch.no_grad():
            value, _, inverse_sigma = torch.native_layer_norm(x.detach(), tuple(shape), weight, bias, eps)

        def linear(u: Tensor) -> Tensor:
            centered = (u - u.mean(dims, keepdim=True)) * inverse_sigma
            return centered if weight is None else centered * weight

        # linear is w ⊙ (1/σ) ⊙ P u with P the centering (symmetric): its transpose is P (1/σ) w
        def transposed(q: Tensor) -> Tensor:
            scaled = q * inverse_sigma if weight is None else (q * weight).mul_(inverse_sigma)
            return scaled.sub_(scaled.mean(dims, keepdim=True))

        def connect(u: Tensor) -> Tensor:
            return u.sum(dims, keepdim=True).expand_as(u)

        return _normalization(run, func, args, kwargs, x, (weight, bias), linear, connect, bias, transposed, value)

    return handler


def rms_norm_rule(run: LRPRun) -> Handler:
    """``rms_norm``: the ε-rule on :math:`w \\odot x / \\mathrm{rms}(x)` with the RMS constant."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x, shape, weight, eps = bind_args(args, kwargs, ("input", "normalized_shape", "weight", "eps"),
                                          {"weight": None, "eps": None})
        dims = tuple(range(-len(tuple(shape)), 0))
        eps = torch.finfo(x.dtype).eps if eps is None else eps
        with torch.no_grad():
            rms = torch.sqrt(x.detach().pow(2).mean(dims, keepdim=True) + eps)

        def linear(u: Tensor) -> Tensor:
            return u / rms if weight is None else u / rms * weight

        return _normalization(run, func, args, kwargs, x, (weight,), linear, lambda u: u, None)

    return handler


def normalize_rule(run: LRPRun) -> Handler:
    """``normalize``: the ε-rule on :math:`x / \\max(\\lVert x \\rVert_p, \\varepsilon)` with the norm constant."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x, p, dim, eps = bind_args(args, kwargs, ("input", "p", "dim", "eps"), {"p": 2.0, "dim": 1, "eps": 1e-12})
        if kwargs.get("out") is not None:
            raise run.refuse(func, "`out=` is not supported")
        with torch.no_grad():
            norm = x.detach().norm(p, dim, keepdim=True).clamp_min(eps)
        return _normalization(run, func, args, kwargs, x, (), lambda u: u / norm, lambda u: u, None)

    return handler


def _guard(run: LRPRun, func: Callable[..., Any]) -> OpGuard:
    if run.guard is None:
        raise run.refuse(func, "a fused attention op is run as its steps, which needs the method's guard")
    return run.guard


def attention_steps(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Optional[Tensor] = None,
    is_causal: bool = False,
    scale: Optional[float] = None,
    enable_gqa: bool = False,
) -> Tensor:
    r"""``scaled_dot_product_attention`` written out as its math, :math:`\mathrm{softmax}(QK^\top \cdot
    \text{scale} + M)\,V`, in the order Hugging Face's eager attention computes it: run under the guard, each step
    meets its rule.

    Raises:
        ValueError: for a query with every key masked (the fused kernels disagree on what that gives).

    >>> q, k, v = torch.randn(2, 3, 4, 8).double(), torch.randn(2, 3, 5, 8).double(), torch.randn(2, 3, 5, 8).double()
    >>> mask = torch.tensor([True, True, True, False, False]).expand(4, 5)   # (queries, keys): True = attend
    >>> fused = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    >>> bool(torch.allclose(attention_steps(q, k, v, attn_mask=mask), fused))
    True
    """
    steps_q, steps_k = query.shape[-2], key.shape[-2]
    factor = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    if enable_gqa:
        groups = query.shape[-3] // key.shape[-3]
        key, value = key.repeat_interleave(groups, -3), value.repeat_interleave(groups, -3)
    scores = torch.matmul(query, key.transpose(-2, -1)) * factor
    additive = None
    if is_causal:
        causal = torch.ones(steps_q, steps_k, dtype=torch.bool, device=query.device).tril()
        additive = torch.zeros(steps_q, steps_k, dtype=scores.dtype, device=query.device).masked_fill(
            ~causal, -math.inf
        )
    if attn_mask is not None:
        mask = attn_mask
        if mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, dtype=scores.dtype, device=mask.device).masked_fill(~mask, -math.inf)
        additive = mask if additive is None else additive + mask
    if additive is not None:
        if bool(torch.isneginf(additive).all(-1).any()):
            raise ValueError("Expected every query to attend to at least one key, but the mask hides every key from one")
        scores = scores + additive
    return torch.matmul(torch.softmax(scores, dim=-1), value)


def sdpa_rule(run: LRPRun) -> Handler:
    """``scaled_dot_product_attention``: :func:`attention_steps` under the guard (dropout is refused)."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
        q, k, v, mask, dropout_p, is_causal, scale, gqa = bind_args(
            args, kwargs, names,
            {"attn_mask": None, "dropout_p": 0.0, "is_causal": False, "scale": None, "enable_gqa": False},
        )
        if float(dropout_p) > 0:
            raise run.refuse(func, RANDOM_REASON)
        if is_tracked(mask):
            raise run.refuse(func, "the attention mask must be a constant (not computed from the inputs)")
        with _guard(run, func):
            try:
                return attention_steps(q, k, v, mask, bool(is_causal), scale, bool(gqa))
            except ValueError as err:
                raise run.refuse(func, str(err)) from err

    return handler


@functools.lru_cache(maxsize=None)
def _own_steps(func: Callable[..., Any]) -> Callable[..., Any]:
    """PyTorch's Python implementation of ``func`` with its ``has_torch_function`` check turned off (in a copy of
    its globals: nothing of torch changes), so that under the guard it runs its own steps instead of handing the
    whole call back to the guard."""
    code: types.CodeType = getattr(func, "__code__")
    namespace = dict(getattr(func, "__globals__"))
    namespace["has_torch_function"] = lambda *args: False
    steps = types.FunctionType(code, namespace, code.co_name, getattr(func, "__defaults__"),
                               getattr(func, "__closure__"))
    steps.__kwdefaults__ = getattr(func, "__kwdefaults__")
    return steps


def multi_head_attention_rule(run: LRPRun) -> Handler:
    """``multi_head_attention_forward``: PyTorch's own steps (in-projection, masks, attention, out-projection), each
    by its rule."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        code = getattr(func, "__code__", None)
        if code is None or "has_torch_function" not in code.co_names:
            raise run.refuse(func, "this PyTorch's multi_head_attention_forward cannot be run step by step")
        with _guard(run, func):
            return _own_steps(func)(*args, **kwargs)

    return handler


def baddbmm_rule(run: LRPRun) -> Handler:
    """``baddbmm(M, Q, K)`` = :math:`\\beta M + \\alpha\\,QK`: the product, the scaling and the addition, each by its
    rule."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        names = ("input", "batch1", "batch2", "beta", "alpha")
        base, first, second, beta, alpha = bind_args(args, kwargs, names, {"beta": 1, "alpha": 1})
        if kwargs.get("out") is not None:
            raise run.refuse(func, "`out=` is not supported")
        with _guard(run, func):
            product = torch.bmm(first, second)
            if alpha != 1:
                product = product * alpha
            if beta == 0:
                return product
            return product + (base if beta == 1 else base * beta)

    return handler


TRANSFORMER_REFUSED: Dict[str, str] = {
    "normalization": "batch, group and instance normalization take statistics over the batch or the positions; "
    "TransformerLRP has rules for layer_norm, rms_norm and normalize",
    "attention": "the eval-mode fast paths of nn.MultiheadAttention and nn.TransformerEncoderLayer run only when "
    "nothing requires grad (under TransformerLRP the modules take their ordinary path, whose steps have rules)",
}
"""The ops of these groups that TransformerLRP refuses on purpose, with the reason (the group's other ops have
rules)."""

UNIFORM = "uniform rule for two relevance-carrying operands (AttnLRP), else "
IDENTITY_ON_SCALE = "epsilon rule, scale held constant (identity rule on the normalization)"
STEPS = "run as its steps, each by its rule"


def transformer_op_table(run: LRPRun, preset: str) -> OpTable:
    """The ops TransformerLRP supports under ``preset`` (``"attnlrp"`` or ``"cp"``), each with its rule: the
    transformer rules of this module, and LSTMLRP's rules (:func:`~captum_text_ext.decomposition.lrp.table
    .register_lrp_rules`, the recurrent layers' included) for every other op.

    Raises:
        ValueError: for an unknown preset.
    """
    if preset not in PRESETS:
        raise ValueError(f"Expected `rule` to be one of {PRESETS}, but got {preset!r}")
    table = OpTable(run.method)
    if preset == "attnlrp":
        table.register(GROUPS["gates"], "Taylor at x (AttnLRP)", softmax_taylor_rule(run))
    else:
        table.register(GROUPS["gates"], "attention weights held constant (CP-LRP)", gate_rule(run))
    table.register(GROUPS["products with a constant matrix"], UNIFORM + "epsilon rule", uniform_matmul_rule(run))
    table.register(GROUPS["products"], UNIFORM + "all to the non-gate factor", uniform_product_rule(run))
    table.register(GROUPS["additions"], "epsilon rule; a constant's zeros pass relevance unchanged",
                   add_rule(run, zero_constant_passes=True))
    normalization = GROUPS["normalization"]
    table.register(normalization, IDENTITY_ON_SCALE, layer_norm_rule(run), ["layer_norm"])
    table.register(normalization, IDENTITY_ON_SCALE, rms_norm_rule(run), ["rms_norm"])
    table.register(normalization, IDENTITY_ON_SCALE, normalize_rule(run), ["normalize"])
    attention = GROUPS["attention"]
    table.register(attention, STEPS, sdpa_rule(run), ["scaled_dot_product_attention"])
    table.register(attention, STEPS, multi_head_attention_rule(run), ["multi_head_attention_forward"])
    table.register(attention, STEPS, baddbmm_rule(run), ["baddbmm"])
    register_lrp_rules(table, run)
    for name, reason in TRANSFORMER_REFUSED.items():
        table.refuse(GROUPS[name], reason)
    return table

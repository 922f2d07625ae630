r"""Contextual decomposition (CD) rules: how each op splits a value into the phrase's part β and the rest γ.

**Mechanism.** :class:`~captum_text_ext.attr.ContextualDecomposition` runs the user's model once, unchanged, under the
shared :class:`~captum_text_ext.decomposition.guard.OpGuard`. Its inputs are :class:`Decomposed` tensors: each *is* the
actual value (so the model computes exactly its own forward pass: lengths, masks, attention weights, max-pooling
positions and every gate are the real ones) and carries

- ``beta`` :math:`\beta` and ``gamma`` :math:`\gamma`, shaped :math:`(P, \ldots)` for :math:`P` phrases at once: the
  model runs on the :math:`N` examples, the phrases ride along as a leading dimension (ops that move numbers are
  applied to them with :func:`torch.vmap`), so examples × phrases go through one recurrent pass;
- ``pending``: a bias that a ``Linear``/``Conv1d`` (or an added constant) produced and no rule has split yet
  (:math:`\text{value} = \beta + \gamma + \text{pending}`);
- ``origin``: for every entry, the input token it was computed from position-wise (``1 + `` a flat index, ``0`` when
  it mixes positions); a recurrent layer reads it to know which of its steps are phrase positions.

Every op that touches a :class:`Decomposed` tensor is handled by the rule :func:`cd_op_table` registers for it, which
computes the actual value *and* the new parts; an op without a rule raises
:class:`~captum_text_ext.decomposition.guard.UnsupportedOperationError` (a ``TypeError`` naming the op and the module).
Ops on tensors that do not depend on the inputs run untouched.

**Rules.** With :math:`x = \beta + \gamma` (+ pending):

- *Routing* (indexing, views, ``cat``, ``stack``, ``where``, ``masked_fill``, ``pad``, packing, dropout in evaluation
  mode): applied to β, γ and the pending bias alike. Constant entries they bring in (padding values, fills, constant
  operands of ``cat``/``where``) belong to γ.
- *Weighted layers* ``Linear``, ``Conv1d`` (and the bias-free linear maps ``sum``, ``mean``, ``matmul`` with a constant
  operand, average pooling): :math:`\beta' = W\beta`, :math:`\gamma' = W\gamma`; the bias :math:`b` stays pending and
  is split by the next op that is not routing in proportion to the parts' magnitudes (Singh et al., 2019):

  .. math::
      \beta \mathrel{+}= b\,\frac{|\beta|}{|\beta| + |\gamma|}, \qquad
      \gamma \mathrel{+}= b\,\frac{|\gamma|}{|\beta| + |\gamma|} \qquad (\text{halves when both are } 0).

  Whatever is still pending at the model's output is the output layer's bias, reported apart.
  Constants added with ``+``/``-`` are biases too. Products and quotients with a constant scale all parts.
- *ReLU*: :math:`\beta' = \mathrm{ReLU}(\beta)`, :math:`\gamma' = \mathrm{ReLU}(\beta + \gamma) - \mathrm{ReLU}(\beta)`.
- *Other element-wise activations* :math:`a` (tanh, sigmoid, ELU, GELU, clamp, ...): the two-player Shapley split with
  baseline 0; the constant :math:`a(0)` becomes a pending bias:

  .. math::
      \beta' = \tfrac12\big[a(\beta) - a(0) + a(\beta + \gamma) - a(\gamma)\big], \qquad
      \gamma' = \tfrac12\big[a(\gamma) - a(0) + a(\beta + \gamma) - a(\beta)\big].

- *Max pooling* (``max``, ``amax``, ``max_pool1d``, ...): the positions are picked by the actual value
  :math:`\beta + \gamma`, and β and γ are carried from there.
- *Softmax* outputs are gates (attention weights): constants from the actual forward pass, so
  :math:`\beta' = \sum_t \alpha_t \beta_t`.
- *LSTM / GRU* (``torch.lstm``, ``torch.gru``, ``torch.lstm_cell``, ``torch.gru_cell``; packed or padded, stacked,
  bidirectional): :func:`lstm_direction_cd` and :func:`gru_direction_cd` below, each direction in its own reading
  order, layer :math:`k`'s input arriving as (β, γ).

Products of two decomposed tensors, in-place ops, and everything else are refused.

**LSTM** (Murdoch et al., 2018, as in the authors' code). At step :math:`t` the pre-activation of each gate splits into
the phrase part :math:`P = W_h \beta_{t-1} + W_x \beta_{x,t}`, the other part
:math:`Q = W_h \gamma_{t-1} + W_x \gamma_{x,t}` and the bias :math:`b` (both PyTorch biases summed); for the first
layer :math:`\beta_{x,t} = x_t` at phrase positions and :math:`\gamma_{x,t} = x_t` elsewhere. Each
:math:`\sigma`/:math:`\tanh` is linearized bias first:

.. math::
    L(b) = a(b), \quad
    L(P) = \tfrac12\big[a(b + P) - a(b) + a(b + P + Q) - a(b + Q)\big], \quad
    L(Q) = \tfrac12\big[a(b + Q) - a(b) + a(b + P + Q) - a(b + P)\big]

.. math::
    \begin{aligned}
    \beta^c_t &= \big(L(f_P) + L(f_b)\big) \odot \beta^c_{t-1} + L(i_P) \odot \big(L(g_P) + L(g_b)\big)
        + L(i_b) \odot L(g_P) \;[+\, L(i_b) \odot L(g_b)] \\
    \gamma^c_t &= f_t \odot \gamma^c_{t-1} + L(f_Q) \odot \beta^c_{t-1} + L(i_Q) \odot g_t
        + \big(L(i_P) + L(i_b)\big) \odot L(g_Q) \;[+\, L(i_b) \odot L(g_b)] \\
    \beta_t &= o_t \odot \tfrac12\big[\tanh(\beta^c_t) + \tanh(\beta^c_t + \gamma^c_t) - \tanh(\gamma^c_t)\big],
    \qquad \gamma_t = o_t \odot \tfrac12\big[\tanh(\gamma^c_t) + \tanh(\beta^c_t + \gamma^c_t) - \tanh(\beta^c_t)\big]
    \end{aligned}

with the actual output gate :math:`o_t`. The bias-only product :math:`L(i_b) \odot L(g_b)` goes to β or γ by
``bias_product``: ``"phrase"`` — to β at phrase positions; ``"reference"`` — to β at phrase positions before the
phrase's last one in the direction's reading order (the authors' code); ``"never"`` — always to γ.

**GRU** (derived the same way from PyTorch's equations). The reset and update gates :math:`r, z` are linearized like
:math:`i, f` above. The candidate's pre-activation :math:`a = W_{in} x + b_{in} + r \odot m`,
:math:`m = W_{hn} h_{t-1} + b_{hn}` (with :math:`m_P = W_{hn}\beta_{t-1}`, :math:`m_Q = W_{hn}\gamma_{t-1}`), splits
like a gated product, the phrase owning the products of its gate part with bias terms:

.. math::
    \begin{aligned}
    n_b &= b_{in} + L(r_b) \odot b_{hn}, \qquad
    n_P = W_{in}\beta_{x,t} + L(r_P) \odot (m_P + b_{hn}) + L(r_b) \odot m_P, \\
    n_Q &= W_{in}\gamma_{x,t} + L(r_Q) \odot m + \big(L(r_P) + L(r_b)\big) \odot m_Q
    \end{aligned}

and :math:`\tanh` is linearized over :math:`(n_b, n_P, n_Q)` bias first. With :math:`u = 1 - z` split as
:math:`L(u_b) = 1 - L(z_b)`, :math:`L(u_P) = -L(z_P)`, :math:`L(u_Q) = -L(z_Q)`, the new state
:math:`h_t = u \odot n + z \odot h_{t-1}` splits as the LSTM cell does:

.. math::
    \begin{aligned}
    \beta_t &= L(u_P) \odot \big(L(n_P) + L(n_b)\big) + L(u_b) \odot L(n_P)
        + \big(L(z_P) + L(z_b)\big) \odot \beta_{t-1} \;[+\, L(u_b) \odot L(n_b)] \\
    \gamma_t &= L(u_Q) \odot n_t + \big(L(u_P) + L(u_b)\big) \odot L(n_Q) + z_t \odot \gamma_{t-1}
        + L(z_Q) \odot \beta_{t-1} \;[+\, L(u_b) \odot L(n_b)]
    \end{aligned}

with the bias-only product :math:`L(u_b) \odot L(n_b)` assigned by ``bias_product`` as for the LSTM.

**Phrase positions of a recurrent layer.** Step :math:`t` of a recurrent op is a phrase position when its input at
:math:`t` was computed position-wise (embeddings, projections, activations, dropout, routing, earlier recurrent layers)
from a token of the phrase, as ``origin`` records. An input that mixes positions (a convolution, a sum over time)
makes no step a phrase position, so its bias-only products go to γ. In every layer of a stacked LSTM/GRU the phrase
positions are the same token positions. For ``"reference"`` the phrase's last position is its last real (not padded)
step in the direction's reading order; a cell op (``nn.LSTMCell`` called in a loop) sees one step at a time and uses the
phrase's last token in forward order.

**Exactness.** Every rule keeps :math:`\beta + \gamma + \text{pending}` equal to the value up to rounding. Parts that
are exactly zero stay exactly zero: :math:`\beta = 0` before a phrase starts and for phrases at positions the model
never reads, and :math:`\gamma = 0` throughout for a whole-sentence phrase with ``bias_product="phrase"``.

Examples:
    >>> x = torch.tensor([[1.0, -2.0]])
    >>> d = Decomposed.wrap(x, beta=torch.tensor([[[1.0, 0.0]]]), gamma=torch.tensor([[[0.0, -2.0]]]))
    >>> run = CDRun.for_masks("phrase", [torch.ones(1, 1, 2, dtype=torch.bool)])
    >>> with OpGuard(cd_op_table(run), tracked=is_decomposed):
    ...     y = torch.relu(d * 3.0)
    >>> y.beta, y.gamma
    (tensor([[[3., 0.]]]), tensor([[[0., 0.]]]))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from captum_text_ext.decomposition.cells import (
    DirectionTrace,
    FusedRecurrentCall,
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
    ops_named,
)
from captum_text_ext.decomposition.lrp_rules import ROUTING_OPS

__all__ = [
    "BIAS_PRODUCTS",
    "CDRun",
    "Decomposed",
    "cd_op_table",
    "gru_direction_cd",
    "is_decomposed",
    "lstm_direction_cd",
    "recurrent_cd",
]

BIAS_PRODUCTS = ("phrase", "reference", "never")
"""Where the bias-only product of a recurrent cell goes (see the module docstring)."""


class Decomposed(Tensor):
    """The actual value of a tensor on the path from the inputs to the output, carrying its CD parts.

    It behaves as a plain tensor (torch functions see its value; its own ``__torch_function__`` is disabled, so the
    :class:`~captum_text_ext.decomposition.guard.OpGuard` of a CD run is what dispatches ops on it).

    The parts of an input are its entries inside and outside each phrase. Such a tensor keeps only the phrase mask
    (:meth:`masked`) until a rule needs the parts: the ops that merely move token positions (selecting or packing
    along the batch and time dimensions, dropout in evaluation mode) and the recurrent layers work on the mask, so
    the inputs are never copied once per phrase on the way to the first recurrent layer.

    The parts are the properties :attr:`beta` and :attr:`gamma`, one slice per phrase.

    Attributes:
        plain: the value as a plain tensor.
        pending: a bias not yet split between β and γ (value-shaped, the same for every phrase), or ``None``.
        origin: value-shaped float64: ``1 +`` the flat index of the input token each entry was computed from
            position-wise, ``0`` for entries that mix positions; ``None`` when no entry has one.
        mask: for a tensor made by :meth:`masked`, :math:`(P, d_1, \\ldots, d_k)` bool over its first :math:`k`
            dimensions: β is the value where it is True, γ the value elsewhere; ``None`` otherwise.
    """

    __torch_function__ = torch._C._disabled_torch_function_impl  # type: ignore[assignment]

    plain: Tensor
    pending: Optional[Tensor]
    origin: Optional[Tensor]
    mask: Optional[Tensor]
    _phrases: int
    _parts: Optional[Tuple[Tensor, Tensor]]
    _make_parts: Optional[Callable[[], Tuple[Tensor, Tensor]]]

    @staticmethod
    def wrap(
        value: Tensor,
        beta: Tensor,
        gamma: Tensor,
        pending: Optional[Tensor] = None,
        origin: Optional[Tensor] = None,
    ) -> "Decomposed":
        """A :class:`Decomposed` tensor for ``value`` with the given parts."""
        out = Decomposed._make(value, int(beta.shape[0]), origin, pending)
        out._parts = (beta, gamma)
        return out

    @staticmethod
    def masked(value: Tensor, mask: Tensor, origin: Optional[Tensor] = None) -> "Decomposed":
        """A :class:`Decomposed` tensor whose β is ``value`` where ``mask`` :math:`(P, d_1, \\ldots, d_k)` is True
        (broadcast over the remaining dimensions) and whose γ is the rest; the parts are made when first read."""

        def split() -> Tuple[Tensor, Tensor]:
            plain = value.detach()
            inside = mask.reshape(*mask.shape, *(1,) * (plain.dim() - mask.dim() + 1)).to(plain.dtype)
            return plain * inside, plain * (1 - inside)  # the value or 0 (faster than torch.where)

        out = Decomposed.deferred(value, int(mask.shape[0]), split, origin)
        out.mask = mask
        return out

    @staticmethod
    def deferred(
        value: Tensor, phrases: int, make_parts: Callable[[], Tuple[Tensor, Tensor]], origin: Optional[Tensor] = None
    ) -> "Decomposed":
        """A :class:`Decomposed` tensor whose parts ``make_parts()`` computes when they are first read (outputs that
        the model may never use)."""
        out = Decomposed._make(value, phrases, origin, None)
        out._make_parts = make_parts
        return out

    @staticmethod
    def _make(value: Tensor, phrases: int, origin: Optional[Tensor], pending: Optional[Tensor]) -> "Decomposed":
        plain = value.detach()
        if isinstance(plain, Decomposed):
            plain = plain.plain
        out = Tensor._make_subclass(Decomposed, plain, False)
        out.plain, out.origin, out.pending, out._phrases = plain, origin, pending, phrases
        out._parts = out._make_parts = out.mask = None
        return out

    @property
    def beta(self) -> Tensor:
        """:math:`(P, *\\text{shape})` the phrase's part."""
        return self._made()[0]

    @property
    def gamma(self) -> Tensor:
        """:math:`(P, *\\text{shape})` the rest."""
        return self._made()[1]

    def _made(self) -> Tuple[Tensor, Tensor]:
        if self._parts is None:
            assert self._make_parts is not None
            self._parts = self._make_parts()
        return self._parts

    def lazy_mask(self, dims: int) -> Optional[Tensor]:
        """The phrase mask when the parts have not been made and it covers at least the first ``dims`` dimensions;
        else ``None``."""
        if self._parts is None and self.mask is not None and self.mask.dim() - 1 >= dims:
            return self.mask
        return None

    @property
    def phrases(self) -> int:
        """:math:`P`."""
        return self._phrases

    def resolved(self) -> Tuple[Tensor, Tensor]:
        """``(β, γ)`` with the pending bias split in proportion to :math:`|\\beta|` and :math:`|\\gamma|`."""
        return split_bias(self.beta, self.gamma, self.pending)


def is_decomposed(obj: Any) -> bool:
    """Whether ``obj`` carries CD parts (the guard's ``tracked`` predicate for a CD run)."""
    return isinstance(obj, Decomposed)


def split_bias(beta: Tensor, gamma: Tensor, bias: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    r"""Split ``bias`` between β and γ in proportion to their magnitudes, halves where both are 0.

    >>> split_bias(torch.tensor([[3.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([2.0, 4.0]))
    (tensor([[4.5000, 2.0000]]), tensor([[1.5000, 2.0000]]))
    """
    if bias is None:
        return beta, gamma
    size_b, size_g = beta.abs(), gamma.abs()
    total = size_b + size_g
    share = torch.where(total > 0, size_b / torch.where(total > 0, total, torch.ones_like(total)), 0.5)
    to_beta = bias * share
    return beta + to_beta, gamma + (bias - to_beta)


# ----------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class CDRun:
    """What a CD pass knows besides the tensors: the ``bias_product`` mode and the phrases by input position.

    Attributes:
        bias_product: one of :data:`BIAS_PRODUCTS`.
        phrase_lookup: :math:`(P, 1 + S)` bool, ``phrase_lookup[p, s]``: input position with origin ``s`` lies in
            phrase ``p`` (column 0, "no origin", is False); :math:`S` counts all input tokens.
        forward_reference: :math:`(P, 1 + S)` bool: a phrase position that is not the phrase's last token (forward
            order); used by ``"reference"`` for cell ops.
        gates: the softmax gates met, with the module they ran in.
        guard: the running guard (for error messages).
    """

    bias_product: str
    phrase_lookup: Tensor
    forward_reference: Tensor
    gates: List[str] = field(default_factory=list)
    guard: Optional[OpGuard] = None

    @classmethod
    def for_masks(cls, bias_product: str, masks: Sequence[Tensor]) -> "CDRun":
        """The run for phrase masks ``(P, N, T_i)`` of each input (origins numbered input by input, row-major)."""
        if bias_product not in BIAS_PRODUCTS:
            raise ValueError(f"Expected `bias_product` to be one of {BIAS_PRODUCTS}, but got {bias_product!r}")
        phrases = int(masks[0].shape[0])
        columns = [torch.zeros(phrases, 1, dtype=torch.bool, device=masks[0].device)]
        reference = [columns[0]]
        for mask in masks:
            later = mask.flip(-1).cumsum(-1).flip(-1) - mask.long()
            columns.append(mask.reshape(phrases, -1))
            reference.append((mask & (later > 0)).reshape(phrases, -1))
        return cls(bias_product, torch.cat(columns, dim=1), torch.cat(reference, dim=1))

    def refuse(self, func: Callable[..., Any], reason: str) -> UnsupportedOperationError:
        """An :class:`UnsupportedOperationError` for ``func`` naming the running module."""
        if self.guard is not None:
            return self.guard.refuse(func, reason)
        name = getattr(func, "__name__", repr(func))
        return UnsupportedOperationError(f"ContextualDecomposition has no rule for `{name}`: {reason}", name, None)

    def lookup(self, table: Tensor, origin: Tensor) -> Tensor:
        """``table[:, origin]`` for an origin tensor of any shape: :math:`(P, *\\text{origin.shape})`."""
        index = origin.to(device=table.device, dtype=torch.long)
        return table[:, index.reshape(-1)].reshape(table.shape[0], *index.shape)


# ----------------------------------------------------------------------------------------------------------------
# Applying an op to the parts
# ----------------------------------------------------------------------------------------------------------------


def _plain(obj: Any) -> Any:
    return obj.plain if isinstance(obj, Decomposed) else obj


def _values(tree: Any) -> Any:
    return tree_map(_plain, tree)


def _is_float_tensor(obj: Any) -> bool:
    return isinstance(obj, Tensor) and (obj.is_floating_point() or obj.is_complex())


def _is_number(obj: Any) -> bool:
    return isinstance(obj, (int, float)) and not isinstance(obj, bool)


class _Call:
    """An op call with its arguments flattened, ready to be re-run on each part."""

    def __init__(self, func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
        self.func = func
        self.flat, self.spec = tree_flatten((args, kwargs))
        self.tracked = [i for i, leaf in enumerate(self.flat) if isinstance(leaf, Decomposed)]

    def value(self) -> Any:
        """The op on the actual values."""
        args, kwargs = tree_unflatten([_plain(leaf) for leaf in self.flat], self.spec)
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


def _zero_constant(leaf: Any) -> Any:
    """Constant data operands count for nothing in β (and in the pending bias and origins)."""
    if _is_float_tensor(leaf) and not isinstance(leaf, Decomposed):
        return torch.zeros_like(leaf)
    return leaf


def _wrap_tree(value: Any, beta: Any, gamma: Any, pending: Any, origin: Any) -> Any:
    """Wrap every floating-point tensor leaf of ``value`` with the matching leaves of the parts."""
    v_flat, spec = tree_flatten(value)
    count = len(v_flat)

    def leaves(tree: Any) -> List[Any]:
        return [None] * count if tree is None else tree_flatten(tree)[0]

    out = []
    for v, b, g, p, o in zip(v_flat, leaves(beta), leaves(gamma), leaves(pending), leaves(origin)):
        if _is_float_tensor(v) and isinstance(b, Tensor):
            out.append(Decomposed.wrap(v, b, g, p, o))
        else:
            out.append(v)
    return tree_unflatten(out, spec)


def _origin_of(x: Decomposed) -> Tensor:
    return x.origin if x.origin is not None else torch.zeros(x.shape, dtype=torch.float64, device=x.device)


def _pending_of(x: Decomposed) -> Tensor:
    return x.pending if x.pending is not None else torch.zeros_like(x.plain)


def _same_origin(origin: Tensor, dims: Optional[Sequence[int]], keepdim: bool) -> Optional[Tensor]:
    """The common origin of the entries reduced over ``dims`` (0 where they differ)."""
    if dims is None:
        dims = list(range(origin.dim()))
    if not dims:
        return origin
    low, high = origin.amin(dim=tuple(dims), keepdim=keepdim), origin.amax(dim=tuple(dims), keepdim=keepdim)
    return torch.where(low == high, low, torch.zeros_like(low))


# Scalar fills that belong to γ: zero them for β, the pending bias and origins.
def _fills_for(
    name: str,
) -> Optional[Callable[[Tuple[Any, ...], Dict[str, Any]], Tuple[Tuple[Any, ...], Dict[str, Any]]]]:
    def positional(index: int, key: str) -> Callable[..., Tuple[Tuple[Any, ...], Dict[str, Any]]]:
        def rewrite(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
            if len(args) > index and _is_number(args[index]):
                args = args[:index] + (0,) + args[index + 1 :]
            if _is_number(kwargs.get(key)):
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
                tuple(0 if _is_number(a) else a for a in args),
                {k: 0 if _is_number(v) else v for k, v in kwargs.items()},
            )

        return rewrite_where
    return None


def _short(func: Callable[..., Any]) -> str:
    name = getattr(func, "__name__", "") or ""
    if name in ("__get__",):
        name = getattr(getattr(func, "__self__", None), "__name__", name)
    return name


# ----------------------------------------------------------------------------------------------------------------
# Routing
# ----------------------------------------------------------------------------------------------------------------

_ASSEMBLING = ("cat", "concat", "concatenate", "stack", "hstack", "vstack", "where", "masked_fill")
_CONSTANT = (
    "zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like", "new_zeros", "new_ones",
    "new_full", "new_empty", "new_tensor",
)  # fmt: skip
_PACKING = ("_pack_padded_sequence", "_pad_packed_sequence")

UNARY_ROUTING_OPS = tuple(op for op in ROUTING_OPS if op not in _ASSEMBLING + _CONSTANT + _PACKING) + (
    "repeat_interleave", "ravel", "squeeze_copy", "unsqueeze_copy", "view_copy",
)  # fmt: skip
"""Ops that move, copy or select the entries of their first argument (any other tensor argument is an index, a mask
or a shape/dtype reference)."""

MULTI_ROUTING_OPS = _ASSEMBLING
"""Ops that assemble entries of several arguments; constant entries they bring in belong to γ."""

CONSTANT_OPS = _CONSTANT
"""Ops that use a decomposed tensor only for its shape, dtype and device: their results are constants."""

DTYPE_OPS = ("to", "type_as", "double", "float", "half", "bfloat16", "cpu", "cuda", "type")


def _route(run: CDRun, multi: bool) -> Callable[..., Any]:
    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        name = _short(func)
        if not multi:
            # the data is the first argument; other decomposed arguments only lend a shape, dtype or device
            if args:
                data = args[0]
                args, kwargs = (data,) + tuple(_values(a) for a in args[1:]), _values(kwargs)
            else:
                data = kwargs.get("input")
                kwargs = {k: v if k == "input" else _values(v) for k, v in kwargs.items()}
            if not isinstance(data, Decomposed):
                return func(*_values(args), **_values(kwargs))
        return route_call(_Call(func, args, kwargs), name)

    return handler


def _index_select(call: _Call) -> Optional[Any]:
    """``index_select(input, dim, index)`` on a decomposed input, applied to the parts along ``dim + 1`` (the phrase
    dimension comes first) instead of through :func:`torch.vmap`, which turns it into a slower gather; ``None`` for
    other call forms."""
    args, kwargs = tree_unflatten(call.flat, call.spec)
    bound = list(args) + [kwargs.get(name) for name in ("input", "dim", "index")[len(args) :]]
    if len(bound) != 3 or kwargs.keys() - {"input", "dim", "index"} or not isinstance(bound[0], Decomposed):
        return None
    x, dim, index = bound[0], bound[1], _plain(bound[2])
    if not isinstance(dim, int) or not isinstance(index, Tensor):
        return None
    dim = dim % max(x.dim(), 1)

    def select(part: Optional[Tensor], lead: int) -> Optional[Tensor]:
        return None if part is None else _take(part, dim + lead, index)

    mask = x.lazy_mask(dim + 1)
    if mask is not None:
        selected = select(mask, 1)
        assert selected is not None
        return Decomposed.masked(x.plain.index_select(dim, index), selected, select(x.origin, 0))
    return Decomposed.wrap(
        x.plain.index_select(dim, index), select(x.beta, 1), select(x.gamma, 1), select(x.pending, 0),
        select(x.origin, 0),
    )


def route_call(call: _Call, name: str = "") -> Any:
    """Apply a routing op to the value and every part (constant entries it brings in go to γ)."""
    if name == "index_select":
        selected = _index_select(call)
        if selected is not None:
            return selected
    fills = _fills_for(name)
    inputs = call.inputs()
    value = call.value()
    beta = call.run([x.beta for x in inputs], _zero_constant, fills=fills)
    gamma = call.run([x.gamma for x in inputs])
    pending = None
    if any(x.pending is not None for x in inputs):
        pending = call.run([_pending_of(x) for x in inputs], _zero_constant, batched=False, fills=fills)
    origin = None
    if any(x.origin is not None for x in inputs):
        if name in DTYPE_OPS and isinstance(value, Tensor):
            origin = _origin_of(inputs[0]).to(device=value.device)  # origins stay float64
        else:
            origin = call.run([_origin_of(x) for x in inputs], _zero_constant, batched=False, fills=fills)
    return _wrap_tree(value, beta, gamma, pending, origin)


def _take(part: Tensor, dim: int, index: Tensor) -> Tensor:
    """``part.index_select(dim, index)``, selected along the first dimension of a transposed view (several times
    faster on CPU than selecting along an inner dimension)."""
    if dim == 0:
        return part.index_select(0, index)
    return part.transpose(0, dim).index_select(0, index).transpose(0, dim)


def _select_rows(part: Tensor, index: Tensor, batched: bool) -> Tensor:
    """``part`` with its first two dimensions (after the phrase dimension, when ``batched``) flattened, at the rows
    ``index``."""
    if not batched:
        return part.flatten(0, 1).index_select(0, index)
    return _take(part.flatten(1, 2), 1, index)


def _pack_handler(run: CDRun) -> Callable[..., Any]:
    """``torch._pack_padded_sequence(input, lengths, batch_first)``: the parts are gathered at the entries packing
    keeps (found by packing their flat indices once), along the phrase dimension's trailing axes."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x, lengths, batch_first = (list(args) + [kwargs.get("lengths"), kwargs.get("batch_first")])[:3]
        if not isinstance(x, Decomposed):
            return func(*_values(args), **_values(kwargs))
        lengths, batch_first = _plain(lengths), bool(batch_first)
        data, batch_sizes = func(x.plain, lengths, batch_first)
        rows = x.plain.shape[0] * x.plain.shape[1]
        flat = torch.arange(rows, device=data.device).reshape(x.plain.shape[:2])
        kept = func(flat, lengths, batch_first)[0]

        pending = None if x.pending is None else _select_rows(x.pending, kept, False)
        origin = None if x.origin is None else _select_rows(x.origin, kept, False)
        mask = x.lazy_mask(2)
        if mask is not None:
            return Decomposed.masked(data, _select_rows(mask, kept, True), origin), batch_sizes
        beta, gamma = _select_rows(x.beta, kept, True), _select_rows(x.gamma, kept, True)
        return Decomposed.wrap(data, beta, gamma, pending, origin), batch_sizes

    return handler


def _pad_packed(
    func: Callable[..., Any],
    part: Tensor,
    batch_sizes: Tensor,
    batch_first: bool,
    fill: float,
    total: int,
    batched: bool,
) -> Tensor:
    """Unpack ``part`` (with a leading phrase dimension when ``batched``): each packed row is copied to its padded
    place (found by unpacking the rows' indices once); padding gets ``fill``."""
    rows = int(batch_sizes.sum())
    index = torch.arange(rows, dtype=torch.float64, device=part.device)
    where = func(index, batch_sizes, batch_first, -1.0, total)[0].long()  # (T, B) or (B, T)
    flat = where.flatten()
    real = (flat >= 0).nonzero().squeeze(1)
    destination = torch.empty_like(real)
    destination[flat[real]] = real
    lead = 1 if batched else 0
    out = part.new_full((*part.shape[:lead], flat.numel(), *part.shape[lead + 1 :]), fill)
    out.transpose(0, lead).index_copy_(0, destination, part.transpose(0, lead))
    return out.reshape(*part.shape[:lead], *where.shape, *part.shape[lead + 1 :])


def _unpack_handler(run: CDRun) -> Callable[..., Any]:
    """``torch._pad_packed_sequence(data, batch_sizes, batch_first, padding_value, total_length)``: the padding value
    belongs to γ."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        names = ("data", "batch_sizes", "batch_first", "padding_value", "total_length")
        data, batch_sizes, batch_first, fill, total = [
            args[i] if i < len(args) else kwargs.get(n) for i, n in enumerate(names)
        ]
        if not isinstance(data, Decomposed):
            return func(*_values(args), **_values(kwargs))
        batch_first, fill, total = bool(batch_first), float(fill), int(total)
        padded, lengths = func(data.plain, batch_sizes, batch_first, fill, total)
        origin = (
            None if data.origin is None else _pad_packed(func, data.origin, batch_sizes, batch_first, 0.0, total, False)
        )
        mask = data.lazy_mask(1)
        if mask is not None:  # the padding value is outside every phrase: in γ
            return Decomposed.masked(padded, _pad_packed(func, mask, batch_sizes, batch_first, False, total, True),
                                     origin), lengths
        beta = _pad_packed(func, data.beta, batch_sizes, batch_first, 0.0, total, True)
        gamma = _pad_packed(func, data.gamma, batch_sizes, batch_first, fill, total, True)
        pending = (
            None
            if data.pending is None
            else _pad_packed(func, data.pending, batch_sizes, batch_first, 0.0, total, False)
        )
        return Decomposed.wrap(padded, beta, gamma, pending, origin), lengths

    return handler


def _iter_handler(run: CDRun) -> Callable[..., Any]:
    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        return iter(route_call(_Call(torch.unbind, (args[0], 0), {}), "unbind"))

    return handler


def _constant_handler(run: CDRun) -> Callable[..., Any]:
    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        return func(*_values(args), **_values(kwargs))

    return handler


def _dropout_handler(run: CDRun) -> Callable[..., Any]:
    """Dropout in evaluation mode is the identity; in training mode it is random and refused."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        inplace = args[3] if len(args) > 3 else kwargs.get("inplace", False)
        if inplace:
            raise run.refuse(func, "in-place ops on decomposed tensors are not supported")
        if dropout_is_random(func, args, kwargs):
            raise run.refuse(func, RANDOM_DROPOUT)
        x = args[0] if args else kwargs["input"]
        value = func(*_values(args), **_values(kwargs))
        mask = x.lazy_mask(1)
        if mask is not None:
            return Decomposed.masked(value, mask, x.origin)
        return Decomposed.wrap(value, x.beta, x.gamma, x.pending, x.origin)

    return handler


# ----------------------------------------------------------------------------------------------------------------
# Sums, products, weighted layers
# ----------------------------------------------------------------------------------------------------------------


def _add_handler(run: CDRun) -> Callable[..., Any]:
    """``a ± b``: parts add; a constant operand is a bias (pending)."""

    def zero_operands(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
        def zero(obj: Any) -> Any:
            if isinstance(obj, Decomposed):
                return obj
            if _is_number(obj):
                return 0
            return torch.zeros_like(obj) if _is_float_tensor(obj) else obj

        return tuple(zero(a) for a in args), {k: zero(v) if k in ("input", "other") else v for k, v in kwargs.items()}

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        call = _Call(func, args, kwargs)
        inputs = call.inputs()
        value = call.value()
        parts = _Call(func, *zero_operands(args, kwargs))
        beta = parts.run([x.beta for x in inputs])
        gamma = parts.run([x.gamma for x in inputs])
        operands = list(args[:2]) + [kwargs[k] for k in ("input", "other") if k in kwargs]
        has_constant = any(not isinstance(a, Decomposed) and (_is_number(a) or _is_float_tensor(a)) for a in operands)
        pending = None
        if has_constant or any(x.pending is not None for x in inputs):
            pending = call.run([_pending_of(x) for x in inputs], batched=False)
        origin = None
        if any(x.origin is not None for x in inputs):
            origins = [torch.broadcast_to(_origin_of(x), value.shape) for x in inputs]
            origin = origins[0]
            for other in origins[1:]:
                origin = torch.where(origin == other, origin, torch.zeros_like(origin))
        return Decomposed.wrap(value, beta, gamma, pending, origin)

    return handler


def _scale_handler(run: CDRun, divide: bool) -> Callable[..., Any]:
    """Products and quotients with a constant scale every part."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        name = _short(func)
        call = _Call(func, args, kwargs)
        if len(call.tracked) != 1:
            raise run.refuse(func, "a product of two decomposed tensors (one factor must be a constant or a gate)")
        x = call.inputs()[0]
        if divide and (
            call.tracked[0] != 0 or name in ("__rtruediv__", "__rdiv__") or kwargs.get("rounding_mode") is not None
        ):
            raise run.refuse(func, "only division of a decomposed tensor by a constant is supported")
        value = call.value()
        beta = call.run([x.beta])
        gamma = call.run([x.gamma])
        pending = None if x.pending is None else call.run([x.pending], batched=False)
        origin = None if x.origin is None else torch.broadcast_to(x.origin, value.shape)
        return Decomposed.wrap(value, beta, gamma, pending, origin)

    return handler


def _negate_handler(run: CDRun) -> Callable[..., Any]:
    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x = args[0]
        pending = None if x.pending is None else -x.pending
        return Decomposed.wrap(func(x.plain), -x.beta, -x.gamma, pending, x.origin)

    return handler


def _linear_map(
    run: CDRun,
    func: Callable[..., Any],
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
    bias: Optional[Tensor],
    bias_free: Tuple[Tuple[Any, ...], Dict[str, Any]],
    origin_rule: Callable[[Decomposed, Tensor], Optional[Tensor]],
) -> Decomposed:
    """A weighted layer: the linear map on the resolved parts, its bias pending."""
    call = _Call(func, args, kwargs)
    if len(call.tracked) != 1:
        raise run.refuse(func, "a product of two decomposed tensors (the weights must be constants)")
    x = call.inputs()[0]
    value = call.value()
    beta, gamma = x.resolved()
    core = _Call(func, *bias_free)
    out_beta = core.run([beta])
    out_gamma = core.run([gamma])
    pending = None if bias is None else torch.broadcast_to(bias, value.shape).clone()
    return Decomposed.wrap(value, out_beta, out_gamma, pending, origin_rule(x, value))


def _bind(args: Tuple[Any, ...], kwargs: Dict[str, Any], names: Sequence[str], defaults: Dict[str, Any]) -> List[Any]:
    values = list(args[: len(names)])
    for name in names[len(values) :]:
        values.append(kwargs.get(name, defaults.get(name)))
    return values


def _linear_handler(run: CDRun) -> Callable[..., Any]:
    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x, weight, bias = _bind(args, kwargs, ("input", "weight", "bias"), {"bias": None})
        if not isinstance(x, Decomposed) or isinstance(weight, Decomposed) or isinstance(bias, Decomposed):
            raise run.refuse(func, "the weight and bias must be constants")

        def origin(inp: Decomposed, value: Tensor) -> Optional[Tensor]:
            if inp.origin is None:
                return None
            common = _same_origin(inp.origin, [-1], keepdim=True)
            return torch.broadcast_to(common, value.shape)

        return _linear_map(run, func, (x, weight, bias), {}, bias, ((x, weight), {}), origin)

    return handler


def _conv1d_handler(run: CDRun) -> Callable[..., Any]:
    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
        x, weight, bias, stride, padding, dilation, groups = _bind(
            args, kwargs, names, {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
        )
        if not isinstance(x, Decomposed) or isinstance(weight, Decomposed) or isinstance(bias, Decomposed):
            raise run.refuse(func, "the weight and bias must be constants")
        full = (x, weight, bias, stride, padding, dilation, groups)
        bias_free = ((x, weight, None, stride, padding, dilation, groups), {})
        column = None if bias is None else bias.unsqueeze(-1)
        return _linear_map(run, func, full, {}, column, bias_free, lambda inp, value: None)

    return handler


def _reduce_handler(run: CDRun) -> Callable[..., Any]:
    """``sum`` / ``mean``: linear maps without bias."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x = args[0] if args else kwargs.get("input")
        if not isinstance(x, Decomposed) or any(
            isinstance(a, Decomposed) for a in list(args[1:]) + list(kwargs.values())
        ):
            raise run.refuse(func, "only the first argument of a sum may be decomposed")
        dim, keepdim = _bind(args[1:], kwargs, ("dim", "keepdim"), {"dim": None, "keepdim": False})
        if isinstance(dim, int):
            dims: Optional[List[int]] = [dim]
        elif dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
            dims = None
        else:
            dims = list(dim)

        def origin(inp: Decomposed, value: Tensor) -> Optional[Tensor]:
            return None if inp.origin is None else _same_origin(inp.origin, dims, bool(keepdim))

        return _linear_map(run, func, args, kwargs, None, (args, kwargs), origin)

    return handler


def _coefficient_handler(run: CDRun) -> Callable[..., Any]:
    """``matmul`` / ``mm`` / ``bmm`` with one constant operand, average pooling: linear maps without bias."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        return _linear_map(run, func, args, kwargs, None, (args, kwargs), lambda inp, value: None)

    return handler


# ----------------------------------------------------------------------------------------------------------------
# Activations, max pooling, gates
# ----------------------------------------------------------------------------------------------------------------


def _activation_call(
    x: Decomposed, func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> Tuple[Callable[[Tensor, bool], Tensor], Any]:
    rest_args = tuple(_values(a) for a in args[1:])
    rest_kwargs = {k: _values(v) for k, v in kwargs.items() if k != "input"}

    def apply(u: Tensor, batched: bool) -> Tensor:
        if batched:
            return torch.vmap(lambda w: func(w, *rest_args, **rest_kwargs))(u)
        return func(u, *rest_args, **rest_kwargs)

    return apply, func(x.plain, *rest_args, **rest_kwargs)


def _check_activation(
    run: CDRun, func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> Decomposed:
    x = args[0] if args else kwargs.get("input")
    others = [a for a in list(args[1:]) + [v for k, v in kwargs.items() if k != "input"] if isinstance(a, Decomposed)]
    if not isinstance(x, Decomposed) or others:
        raise run.refuse(func, "only the first argument of an activation may be decomposed")
    if kwargs.get("inplace") or (
        len(args) > 1 and _short(func) in ("relu", "relu6", "selu", "celu") and isinstance(args[-1], bool) and args[-1]
    ):
        raise run.refuse(func, "in-place ops on decomposed tensors are not supported")
    return x


def _relu_handler(run: CDRun) -> Callable[..., Any]:
    r"""ReLU: :math:`\beta' = \mathrm{ReLU}(\beta)`,
    :math:`\gamma' = \mathrm{ReLU}(\beta + \gamma) - \mathrm{ReLU}(\beta)`."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x = _check_activation(run, func, args, kwargs)
        beta, gamma = x.resolved()
        value = func(*_values(args), **_values(kwargs))
        relu_beta = torch.relu(beta)
        return Decomposed.wrap(value, relu_beta, torch.relu(beta + gamma) - relu_beta, None, x.origin)

    return handler


def _shapley_handler(run: CDRun) -> Callable[..., Any]:
    """Element-wise activations: the two-player Shapley split with baseline 0; :math:`a(0)` is pending."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x = _check_activation(run, func, args, kwargs)
        beta, gamma = x.resolved()
        apply, value = _activation_call(x, func, args, kwargs)
        if not isinstance(value, Tensor) or value.shape != x.shape:
            raise run.refuse(func, "an element-wise activation must keep its input's shape")
        # a(0) on the parts' layout: element-wise kernels take SIMD or scalar paths by position, and only the same
        # path makes a part that is exactly 0 stay exactly 0
        at_zero = apply(torch.zeros_like(beta), True)
        a_beta, a_gamma, a_sum = apply(beta, True), apply(gamma, True), apply(beta + gamma, True)
        new_beta = 0.5 * ((a_beta - at_zero) + (a_sum - a_gamma))
        new_gamma = 0.5 * ((a_gamma - at_zero) + (a_sum - a_beta))
        constant = apply(torch.zeros_like(x.plain), False)
        pending = constant if bool((constant != 0).any()) else None
        return Decomposed.wrap(value, new_beta, new_gamma, pending, x.origin)

    return handler


def _gather_call(x: Decomposed, index: Tensor, dim: int) -> Decomposed:
    return route_call(_Call(torch.take_along_dim, (x, index, dim), {}), "take_along_dim")


def _select_max(x: Decomposed, dim: int, keepdim: bool, smallest: bool) -> Tuple[Decomposed, Tensor]:
    """The max (min) over ``dim`` of the actual value, with the parts gathered at its position."""
    _, index = (torch.min if smallest else torch.max)(x.plain, dim=dim, keepdim=True)
    picked = _gather_call(x, index, dim)
    if not keepdim:
        picked = route_call(_Call(torch.squeeze, (picked, dim), {}), "squeeze")
        index = index.squeeze(dim)
    return picked, index


def _max_handler(run: CDRun) -> Callable[..., Any]:
    """``max`` / ``min`` / ``amax`` / ``amin`` / ``maximum`` / ``minimum``: positions by the actual value."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        name = _short(func)
        smallest = name in ("min", "amin", "minimum", "fmin")
        x = args[0] if args else kwargs.get("input")
        other = args[1] if len(args) > 1 else kwargs.get("other")
        if isinstance(other, Tensor) and name not in ("amax", "amin"):
            plain_x, plain_o = _plain(x), _plain(other)
            take = plain_x <= plain_o if smallest else plain_x >= plain_o
            return route_call(_Call(torch.where, (take, x, other), {}), "where")
        if not isinstance(x, Decomposed):
            raise run.refuse(func, "only the first argument of a max may be decomposed")
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        keepdim = bool(args[2] if len(args) > 2 else kwargs.get("keepdim", False))
        if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
            flat = route_call(_Call(torch.reshape, (x, (-1,)), {}), "reshape")
            picked, _ = _select_max(flat, 0, False, smallest)
            if keepdim:
                picked = route_call(_Call(torch.reshape, (picked, (1,) * x.dim()), {}), "reshape")
            return picked
        if name in ("amax", "amin"):
            dims = [dim] if isinstance(dim, int) else list(dim)
            dims = sorted({d % x.dim() for d in dims}, reverse=True)
            out = x
            for d in dims:
                out, _ = _select_max(out, d, True, smallest)
            if not keepdim:
                out = route_call(_Call(torch.squeeze, (out, tuple(dims)), {}), "squeeze")
            return out
        picked, index = _select_max(x, int(dim), keepdim, smallest)
        result_type = torch.return_types.min if smallest else torch.return_types.max
        return result_type((picked, index))

    return handler


def _max_pool_handler(run: CDRun) -> Callable[..., Any]:
    """``max_pool1d`` / ``adaptive_max_pool1d``: the positions of the actual maxima, parts gathered there."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        x = args[0] if args else kwargs.get("input")
        if not isinstance(x, Decomposed):
            raise run.refuse(func, "only the first argument of max pooling may be decomposed")
        name = _short(func)
        adaptive = "adaptive" in name
        plain_args, plain_kwargs = list(_values(args)), dict(_values(kwargs))
        plain_kwargs.pop("return_indices", None)
        if adaptive:
            output_size = plain_args[1] if len(plain_args) > 1 else plain_kwargs.get("output_size")
            values, index = F.adaptive_max_pool1d(x.plain, output_size, return_indices=True)
            wants_indices = (
                "with_indices" in name
                or func is torch.adaptive_max_pool1d
                or bool(args[2] if len(args) > 2 else kwargs.get("return_indices", False))
            )
        else:
            names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
            bound = dict(zip(names, plain_args[1:]))
            bound.update({k: v for k, v in plain_kwargs.items() if k in names})
            wants_indices = "with_indices" in name or bool(bound.pop("return_indices", False))
            values, index = F.max_pool1d(x.plain, return_indices=True, **bound)
        picked = _gather_call(x, index, -1)
        return (picked, index) if wants_indices else picked

    return handler


def _softmax_handler(run: CDRun) -> Callable[..., Any]:
    """Softmax outputs are gates: constants from the actual forward pass."""

    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        where = run.guard.where() if run.guard is not None else None
        run.gates.append(f"{_short(func) or 'softmax'} in {where or '<root>'!r}")
        return func(*_values(args), **_values(kwargs))

    return handler


# ----------------------------------------------------------------------------------------------------------------
# Recurrent layers
# ----------------------------------------------------------------------------------------------------------------


def _linearize(
    act: Callable[[Tensor], Tensor], b: Tensor, a_b: Tensor, p: Tensor, q: Tensor
) -> Tuple[Tensor, Tensor, Tensor]:
    """Bias-first linearization: ``(L(P), L(Q), a(b + P + Q))`` given ``a_b = act(b)``.

    ``b`` must have the layout of ``p`` and ``q`` (and ``a_b`` be computed from it): element-wise kernels take SIMD or
    scalar paths by position, so only then does ``P = 0`` give ``L(P) = 0`` exactly (and likewise for ``Q``).
    """
    with_p, with_q = b + p, b + q
    a_p, a_q, a_all = act(with_p), act(with_q), act(with_p + q)
    l_p = 0.5 * ((a_p - a_b) + (a_all - a_q))
    l_q = 0.5 * ((a_q - a_b) + (a_all - a_p))
    return l_p, l_q, a_all


def _tanh(x: Tensor) -> Tensor:
    """:math:`\\tanh(x) = 2\\sigma(2x) - 1` (exact; ``torch.sigmoid`` is several times faster than ``torch.tanh`` on
    CPU builds)."""
    return torch.sigmoid(x * 2).mul_(2).sub_(1)


def _bias(weights: Any, rows: slice, which: str) -> Tensor:
    bias = getattr(weights, which)
    if bias is None:
        return weights.weight_hh.new_zeros(rows.stop - rows.start)
    return bias[rows]


class _PhraseInput:
    r"""The phrase part :math:`W_x \beta_{x,t}` of a recurrent layer's input term, without recomputing what the actual
    forward pass already has.

    A row :math:`(p, t, b)` of the input's β is either 0 (the token is not in the phrase: the term is 0), the whole
    input (γ is 0 there: the term is :math:`W_x x_t` of the actual run, shared by all phrases), or split between both
    parts (only then is :math:`W_x \beta_{x,t}` computed for it).

    Args:
        inputs: :math:`(T, B, E)` the layer's actual input.
        projected: :math:`(T, B, G)` :math:`W_x x_t` of the actual run.
        beta_x, gamma_x: :math:`(P, T, B, E)` the input's parts (``None`` with ``mask``).
        w_x: :math:`(E, G)`.
        mask: :math:`(P, T, B)` bool: the input's β is the input where True, its γ the rest.
    """

    def __init__(
        self, inputs: Tensor, projected: Tensor, beta_x: Optional[Tensor], gamma_x: Optional[Tensor], w_x: Tensor,
        mask: Optional[Tensor] = None,
    ) -> None:
        self.projected = projected  # (T, B, G): W_x x_t of the actual run
        self.split: Optional[Tensor] = None
        if mask is not None:  # β is the input where the mask is True: whole rows or zero rows
            in_beta = mask & (inputs.abs().amax(-1) > 0)
            self.whole, self.nonzero = in_beta.unsqueeze(-1), in_beta
            return
        assert beta_x is not None and gamma_x is not None
        in_beta = beta_x.abs().amax(-1) > 0
        in_gamma = gamma_x.abs().amax(-1) > 0
        self.whole = (in_beta & ~in_gamma).unsqueeze(-1)  # (P, T, B, 1)
        self.nonzero = in_beta  # (P, T, B)
        split = in_beta & in_gamma
        if bool(split.any()):
            self.split = beta_x.new_zeros(*beta_x.shape[:3], w_x.shape[1])
            self.split[split] = beta_x[split] @ w_x

    def reorder(self, order: Tensor) -> None:
        """Put the phrases in ``order``."""
        self.whole, self.nonzero = self.whole[order], self.nonzero[order]
        if self.split is not None:
            self.split = self.split[order]

    def add_to(self, out: Tensor, t: int, phrases: Tensor) -> None:
        """Add the term at step ``t`` of the given phrases (indices into ``out``'s first dimension) to ``out``."""
        part = torch.where(self.whole[phrases, t], self.projected[t], 0.0)
        if self.split is not None:
            part = part + self.split[phrases, t]
        out.index_add_(0, phrases, part)


def _phrase_order(started: Tensor) -> Tuple[Tensor, List[int]]:
    """Phrases sorted by the step at which their β may first be nonzero, and how many have started by each step.

    Args:
        started: :math:`(P, T, B)` bool, in reading order and cumulative along it.
    """
    steps = started.shape[1]
    any_column = started.any(-1)  # (P, T)
    first = torch.where(any_column.any(-1), any_column.float().argmax(-1), steps)
    permutation = torch.argsort(first, stable=True)
    counts = torch.bincount(first, minlength=steps + 1)[:steps].cumsum(0).tolist()
    return permutation, counts


def lstm_direction_cd(
    trace: DirectionTrace,
    beta_x: Optional[Tensor],
    gamma_x: Optional[Tensor],
    state: Tuple[Tensor, Tensor, Tensor, Tensor],
    to_beta: Tensor,
    input_mask: Optional[Tensor] = None,
) -> Tuple[Tensor, Tuple[Tensor, Tensor, Tensor, Tensor]]:
    r"""CD forwards through one direction of one LSTM layer (equations in the module docstring).

    Only β is carried through the steps: since the rules split every value exactly,
    :math:`\gamma = \text{actual} - \beta` (for the cell and hidden states, and :math:`Q = z_t - b - P` for the gate
    pre-activations :math:`z_t` of the actual run), and :math:`a(b + P + Q)` is the actual gate. So per step and
    phrase one matrix product (:math:`W_h \beta_{t-1}`) and two σ evaluations of the gates remain; the input term,
    the actual gates and :math:`\tanh(c_t)` are computed once for all phrases. A phrase joins the recurrence at the
    first step where its β can be nonzero (its first token in reading order, or step 0 for a nonzero initial state):
    before that β is exactly 0 and no work is done for it. With :math:`\tanh(x) = 2\sigma(2x) - 1` every activation
    is a σ (``torch.tanh`` is several times slower on CPU), and
    :math:`\beta_t = o_t \odot [\sigma(2\beta^c_t) - \sigma(2\gamma^c_t) + \tfrac12\tanh(c_t)]`.

    Args:
        trace: the direction's actual run (its gates, states and which steps are real).
        beta_x, gamma_x: :math:`(P, T, B, E)` the parts of the layer's input (``None`` with ``input_mask``).
        state: ``(β_h0, γ_h0, β_c0, γ_c0)``, each :math:`(P, B, H)`.
        to_beta: :math:`(P, T, B)` bool: where the bias-only product goes to β.
        input_mask: :math:`(P, T, B)` bool: the input's β is the input where True, its γ the rest.

    Returns:
        ``(β_out, (β_hn, γ_hn, β_cn, γ_cn))``: β of the outputs :math:`(P, T, B, H)` (0 at padding; their γ is the
        actual output minus β, left to the caller, who may never need it) and the final states' parts.
    """
    w = trace.weights
    hidden = w.hidden_size
    gates3 = slice(0, 3 * hidden)
    # the g block's pre-activations doubled: tanh(z) = 2σ(2z) - 1
    dtype, device = trace.inputs.dtype, trace.inputs.device
    scale = torch.ones(3 * hidden, dtype=dtype, device=device)
    scale[2 * hidden :] = 2
    bias = (_bias(w, gates3, "bias_ih") + _bias(w, gates3, "bias_hh")) * scale
    w_x, w_h = w.weight_ih[gates3].t() * scale, w.weight_hh[gates3].t() * scale
    beta_h0, _, beta_c0, _ = state
    phrases, steps, batch = to_beta.shape
    projected = (trace.pre_x[..., gates3] - _bias(w, gates3, "bias_ih")) * scale  # W_x x_t from the actual run
    inputs = _PhraseInput(trace.inputs, projected, beta_x, gamma_x, w_x, input_mask)
    pre = trace.pre[..., gates3] * scale  # (T, B, 3H)
    b_act = torch.sigmoid(bias)
    shift = torch.sigmoid(pre) - b_act  # σ(z_t) - σ(b): the actual gates less the bias terms
    pre_and_bias = pre + bias  # z_t + b, so that b + Q = z_t - P = (z_t + b) - (b + P)
    i_b, f_b, g_b = b_act[:hidden], b_act[hidden : 2 * hidden], 2 * b_act[2 * hidden :] - 1
    double_product = 2 * i_b * g_b
    double_c = 2 * trace.c  # (T, B, H)
    half_tanh_c = torch.sigmoid(double_c) - 0.5  # ½ tanh(c_t)
    o_gate = trace.gates["o"]
    order = list(trace.reading_order())
    reading = torch.tensor(order, device=device, dtype=torch.long)
    active = trace.active
    initial = ((beta_h0 != 0) | (beta_c0 != 0)).any(-1).unsqueeze(1)  # (P, 1, B)
    sources = (inputs.nonzero | to_beta) & active.unsqueeze(0)
    started = (sources[:, reading].cumsum(1) > 0) | initial  # in reading order
    permutation, counts = _phrase_order(started)
    inputs.reorder(permutation)
    started, to_beta = started[permutation], to_beta[permutation]
    # per step (in reading order): the phrases whose input or bias-only product touches it, and whether every
    # started phrase updates in every column (no padding, no phrase that has not started in some column)
    touched = (inputs.nonzero | to_beta)[:, reading].any(-1)  # (P, T) in reading order
    keep = started & active[reading].unsqueeze(0)  # (P, T, B) in reading order
    joined = torch.arange(phrases, device=device).unsqueeze(1) < torch.tensor(counts, device=device)  # (P, T)
    everywhere = (keep | ~joined.unsqueeze(-1)).all(-1).all(0).tolist()
    out_beta = trace.inputs.new_empty(steps, phrases, batch, hidden)  # time first: each step's slice is contiguous
    beta_h = beta_h0[permutation]
    double_beta_c = 2 * beta_c0[permutation]  # 2β^c is carried: tanh(β^c) = 2σ(2β^c) - 1
    spare = double_beta_c.clone()  # the next step's 2β^c is written here, then the two swap
    for r, t in enumerate(order):
        k = counts[r]
        out_beta[t, k:] = 0.0  # the phrases that have not started
        if k == 0:
            continue
        with_p = torch.addmm(bias, beta_h[:k].reshape(k * batch, hidden), w_h).view(k, batch, 3 * hidden)  # b + P
        rows = touched[:k, r].nonzero().squeeze(1)
        if rows.numel():
            inputs.add_to(with_p, t, rows)
        with_q = torch.sub(pre_and_bias[t], with_p).sigmoid_()  # σ(b + Q)
        # D = 2 L(P) for the i and f blocks, D = L(P) for the g block
        d = with_p.sigmoid_().sub_(with_q).add_(shift[t])
        d_i, d_f, d_g = d[..., :hidden], d[..., hidden : 2 * hidden], d[..., 2 * hidden :]
        previous = double_beta_c[:k]
        # 2β^c_t = (L(f_P) + L(f_b)) 2β^c_{t-1} + 2 L(i_P) (L(g_P) + L(g_b)) + 2 L(i_b) L(g_P)
        new_c = torch.mul(previous, f_b, out=spare[:k]).addcmul_(d_f, previous, value=0.5)
        new_c.addcmul_(d_i, torch.add(d_g, g_b)).addcmul_(d_g, i_b, value=2.0)
        product_rows = to_beta[rows, t].unsqueeze(-1)
        if bool(product_rows.any()):
            new_c.index_add_(0, rows, torch.where(product_rows, double_product, 0.0))
        # β_t = o_t ⊙ [σ(2β^c_t) - σ(2c_t - 2β^c_t) + ½ tanh(c_t)]
        new_h = torch.sigmoid(new_c).sub_(torch.sub(double_c[t], new_c).sigmoid_()).add_(half_tanh_c[t])
        if everywhere[r]:
            torch.mul(new_h, o_gate[t], out=out_beta[t, :k])
        else:
            kept = keep[:k, r].unsqueeze(-1)
            out_beta[t, :k] = torch.where(kept, new_h.mul_(o_gate[t]), beta_h[:k])
            new_c.copy_(torch.where(kept, new_c, previous))
        double_beta_c, spare = spare, double_beta_c
        beta_h = out_beta[t]
    out_beta, beta_c = out_beta.transpose(0, 1), 0.5 * double_beta_c
    if not bool((permutation == torch.arange(phrases, device=device)).all()):
        restore = torch.argsort(permutation)
        beta_h, beta_c, out_beta = beta_h[restore], beta_c[restore], out_beta[restore]
    beta_hn = beta_h.clone()
    if not bool(active.all()):
        out_beta = out_beta.masked_fill(~active.unsqueeze(-1), 0.0)
    return out_beta, (beta_hn, trace.h_n - beta_hn, beta_c, trace.c_n - beta_c)


def gru_direction_cd(
    trace: DirectionTrace,
    beta_x: Tensor,
    gamma_x: Tensor,
    state: Tuple[Tensor, Tensor],
    to_beta: Tensor,
) -> Tuple[Tensor, Tensor, Tuple[Tensor, Tensor]]:
    """CD forwards through one direction of one GRU layer (equations in the module docstring).

    Arguments as :func:`lstm_direction_cd`, with ``state = (β_h0, γ_h0)``.
    """
    w = trace.weights
    hidden = w.hidden_size
    b_x, b_h = _bias(w, slice(0, 3 * hidden), "bias_ih"), _bias(w, slice(0, 3 * hidden), "bias_hh")
    x_beta, x_gamma = beta_x @ w.weight_ih.t(), gamma_x @ w.weight_ih.t()
    w_h = w.weight_hh.t()
    beta_h, gamma_h = state
    lead = beta_h.shape[:-1]
    b_rz = (b_x[: 2 * hidden] + b_h[: 2 * hidden]).expand(*lead, 2 * hidden).contiguous()
    rz_b = torch.sigmoid(b_rz)
    r_b, z_b = rz_b.split(hidden, -1)
    b_hn = b_h[2 * hidden :]
    n_b = (b_x[2 * hidden :] + r_b * b_hn).contiguous()
    n_bias = torch.tanh(n_b)
    u_b = 1 - z_b
    bias_product = u_b * n_bias
    out_beta = beta_x.new_zeros(beta_x.shape[:3] + (hidden,))
    out_gamma = torch.zeros_like(out_beta)
    zero = torch.zeros_like(bias_product)
    for t in trace.reading_order():
        keep = trace.active[t].unsqueeze(-1)
        h_beta, h_gamma = beta_h @ w_h, gamma_h @ w_h
        p_rz = x_beta[:, t, ..., : 2 * hidden] + h_beta[..., : 2 * hidden]
        q_rz = x_gamma[:, t, ..., : 2 * hidden] + h_gamma[..., : 2 * hidden]
        rz_p, rz_q, rz = _linearize(torch.sigmoid, b_rz, rz_b, p_rz, q_rz)
        r_p, z_p = rz_p.split(hidden, -1)
        r_q, z_q = rz_q.split(hidden, -1)
        z = rz[..., hidden:]
        m_p, m_q = h_beta[..., 2 * hidden :], h_gamma[..., 2 * hidden :]
        n_p = x_beta[:, t, ..., 2 * hidden :] + r_p * (m_p + b_hn) + r_b * m_p
        n_q = x_gamma[:, t, ..., 2 * hidden :] + r_q * ((m_p + m_q) + b_hn) + (r_p + r_b) * m_q
        n_phrase, n_other, n = _linearize(torch.tanh, n_b, n_bias, n_p, n_q)
        u_p, u_q = -z_p, -z_q
        new_beta = u_p * (n_phrase + n_bias) + u_b * n_phrase + (z_p + z_b) * beta_h
        new_gamma = u_q * n + (u_p + u_b) * n_other + z * gamma_h + z_q * beta_h
        phrase = to_beta[:, t].unsqueeze(-1)
        new_beta = new_beta + torch.where(phrase, bias_product, zero)
        new_gamma = new_gamma + torch.where(phrase, zero, bias_product)
        out_beta[:, t] = torch.where(keep, new_beta, zero)
        out_gamma[:, t] = torch.where(keep, new_gamma, zero)
        beta_h, gamma_h = torch.where(keep, new_beta, beta_h), torch.where(keep, new_gamma, gamma_h)
    return out_beta, out_gamma, (beta_h, gamma_h)


def _reference_masks(in_phrase: Tensor) -> Tuple[Tensor, Tensor]:
    """Phrase steps before the phrase's last one, forwards and backwards in reading order: :math:`(P, T, B)`."""
    counts = in_phrase.long()
    later = counts.flip(1).cumsum(1).flip(1) - counts
    earlier = counts.cumsum(1) - counts
    return in_phrase & (later > 0), in_phrase & (earlier > 0)


def recurrent_cd(
    trace: RecurrentTrace,
    beta_x: Optional[Tensor],
    gamma_x: Optional[Tensor],
    initial: Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]],
    to_beta: Sequence[Tensor],
    input_mask: Optional[Tensor] = None,
) -> Tuple[Tensor, Optional[Tensor], Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """CD forwards through a stacked, possibly bidirectional LSTM/GRU.

    Args:
        trace: the actual run (:func:`~captum_text_ext.decomposition.cells.unroll`).
        beta_x, gamma_x: :math:`(P, T, B, E)` the parts of the input, or ``None`` with ``input_mask``.
        initial: ``(β_h0, γ_h0, β_c0, γ_c0)``, each :math:`(P, K D, B, H)` (the cell parts ``None`` for a GRU).
        to_beta: per direction, :math:`(P, T, B)` bool: where the bias-only product goes to β.
        input_mask: :math:`(P, T, B)` bool: the input's β is the input where True, its γ the rest (instead of
            ``beta_x`` and ``gamma_x``).

    Returns:
        ``(β_out, γ_out, β_hn, γ_hn, β_cn, γ_cn)``: outputs :math:`(P, T, B, D H)`, final states
        :math:`(P, K D, B, H)`; ``γ_out`` is ``None`` for an LSTM, where it is ``trace.outputs - β_out`` (made by the
        caller when needed).
    """
    spec = trace.spec
    directions = spec.num_directions
    beta_h0, gamma_h0, beta_c0, gamma_c0 = initial
    h_beta, h_gamma, c_beta, c_gamma = [], [], [], []
    layer_beta, layer_gamma = beta_x, gamma_x
    if input_mask is not None and spec.cell == "gru":
        inside = input_mask.unsqueeze(-1).to(trace.layers[0][0].inputs.dtype)
        layer_beta, layer_gamma = trace.layers[0][0].inputs * inside, trace.layers[0][0].inputs * (1 - inside)
    for k in range(spec.num_layers):
        outs_beta: List[Tensor] = []
        outs_gamma: List[Tensor] = []
        for d in range(directions):
            index = k * directions + d
            tr = trace.layers[k][d]
            if spec.cell == "lstm":
                assert beta_c0 is not None and gamma_c0 is not None
                state = (beta_h0[:, index], gamma_h0[:, index], beta_c0[:, index], gamma_c0[:, index])
                mask = input_mask if k == 0 else None
                ob, (hb, hg, cb, cg) = lstm_direction_cd(tr, layer_beta, layer_gamma, state, to_beta[d], mask)
                c_beta.append(cb)
                c_gamma.append(cg)
            else:
                assert layer_beta is not None and layer_gamma is not None
                ob, og, (hb, hg) = gru_direction_cd(
                    tr, layer_beta, layer_gamma, (beta_h0[:, index], gamma_h0[:, index]), to_beta[d]
                )
                outs_gamma.append(og)
            h_beta.append(hb)
            h_gamma.append(hg)
            outs_beta.append(ob)
        layer_beta = outs_beta[0] if directions == 1 else torch.cat(outs_beta, -1)
        if spec.cell == "gru":
            layer_gamma = outs_gamma[0] if directions == 1 else torch.cat(outs_gamma, -1)
        elif k + 1 < spec.num_layers:  # γ = the actual output (the next layer's input, 0 at padding) - β
            layer_gamma = trace.layers[k + 1][0].inputs - layer_beta
        else:
            layer_gamma = None
    assert layer_beta is not None
    cells = (torch.stack(c_beta, 1), torch.stack(c_gamma, 1)) if c_beta else (None, None)
    return layer_beta, layer_gamma, torch.stack(h_beta, 1), torch.stack(h_gamma, 1), cells[0], cells[1]


def _parts_or_constant(obj: Any, phrases: int) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """``(β, γ, origin)`` of a decomposed tensor (bias resolved), or of a constant (all in γ)."""
    if isinstance(obj, Decomposed):
        beta, gamma = obj.resolved()
        return beta, gamma, obj.origin
    gamma = obj.unsqueeze(0).expand(phrases, *obj.shape)
    return torch.zeros_like(gamma), gamma, None


def _recurrent_handler(run: CDRun, op: str) -> Callable[..., Any]:
    def handler(func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        plain_args, plain_kwargs = _values(args), _values(kwargs)
        try:
            call = FusedRecurrentCall.parse(op, plain_args, plain_kwargs)
        except TypeError as err:
            raise run.refuse(func, str(err)) from err
        hx, weights = _state_and_weights(op, args, kwargs, call.packed)
        if any(isinstance(t, Decomposed) for t in weights):
            raise run.refuse(func, "the recurrent weights must be constants")
        if call.train and call.dropout > 0 and call.spec.num_layers > 1:
            raise run.refuse(func, "dropout between recurrent layers in training mode is random")
        phrases = _phrases_in(args, kwargs)
        value = func(*plain_args, **plain_kwargs)
        trace = unroll(call.spec.detached(), call.inputs, call.lengths, call.h0, call.c0)
        cell_op = op.endswith("_cell")
        x_arg = args[0] if args else kwargs["input"]
        lead = 1 if cell_op or call.packed else 2  # the dimensions of the input before its features
        lazy = x_arg.lazy_mask(lead) if isinstance(x_arg, Decomposed) else None
        if lazy is not None and lazy.dim() - 1 == lead:
            x_origin = x_arg.origin
        else:
            lazy = None
            x_beta, x_gamma, x_origin = _parts_or_constant(x_arg, phrases)
        batch_sizes = None if not call.packed else _plain(args[1])
        steps = call.inputs.shape[0]

        def time_major(part: Tensor, batched: bool) -> Tensor:
            if cell_op:
                return part.unsqueeze(1 if batched else 0)
            if call.packed:
                return _pad_packed(torch._pad_packed_sequence, part, batch_sizes, False, 0.0, steps, batched)
            if call.batch_first:
                return part.transpose(1, 2) if batched else part.transpose(0, 1)
            return part

        input_mask = None if lazy is None else time_major(lazy, True)
        beta_x, gamma_x = (None, None) if lazy is not None else (time_major(x_beta, True), time_major(x_gamma, True))
        origin = None if x_origin is None else time_major(x_origin, False)
        step_origin = (
            torch.zeros(call.inputs.shape[:2], dtype=torch.float64, device=call.inputs.device)
            if origin is None
            else _same_origin(origin, [-1], keepdim=False)
        )
        initial = _initial_parts(hx, op, phrases)
        to_beta = _bias_to_beta(run, trace, step_origin, cell_op)
        out_beta, out_gamma, hn_beta, hn_gamma, cn_beta, cn_gamma = recurrent_cd(
            trace, beta_x, gamma_x, initial, to_beta, input_mask
        )
        out_origin = step_origin.unsqueeze(-1).expand(*step_origin.shape, out_beta.shape[-1])
        if op == "lstm_cell":
            assert cn_beta is not None and cn_gamma is not None
            h, c = value
            return (
                Decomposed.wrap(h, hn_beta[:, 0], hn_gamma[:, 0], None, out_origin[0]),
                Decomposed.wrap(c, cn_beta[:, 0], cn_gamma[:, 0], None, out_origin[0]),
            )
        if op == "gru_cell":
            return Decomposed.wrap(value, hn_beta[:, 0], hn_gamma[:, 0], None, out_origin[0])

        def restore(part: Tensor, batched: bool) -> Tensor:
            if call.packed:
                assert kept is not None
                return _select_rows(part, kept, batched)
            if call.batch_first:
                return part.transpose(1, 2) if batched else part.transpose(0, 1)
            return part

        kept = None
        if call.packed:
            assert call.lengths is not None
            flat = torch.arange(steps * call.inputs.shape[1], device=call.inputs.device).reshape(steps, -1)
            kept = torch._pack_padded_sequence(flat, call.lengths, False)[0]
        def output_parts() -> Tuple[Tensor, Tensor]:
            gamma = trace.outputs - out_beta if out_gamma is None else out_gamma
            return restore(out_beta, True), restore(gamma, True)

        outputs = Decomposed.deferred(value[0], phrases, output_parts, restore(out_origin, False))
        h_n = Decomposed.wrap(value[1], hn_beta, hn_gamma)
        if cn_beta is None:
            return outputs, h_n
        assert cn_gamma is not None
        return outputs, h_n, Decomposed.wrap(value[2], cn_beta, cn_gamma)

    return handler


def _state_and_weights(op: str, args: Tuple[Any, ...], kwargs: Dict[str, Any], packed: bool) -> Tuple[Any, List[Any]]:
    """The initial state argument and the weight tensors of a recurrent op call (as the model passed them)."""
    if op.endswith("_cell"):
        names = ("input", "hx", "w_ih", "w_hh", "b_ih", "b_hh")
        bound = list(args) + [kwargs.get(name) for name in names[len(args) :]]
        return bound[1], [w for w in bound[2:] if w is not None]
    offset = 2 if packed else 1
    return args[offset], list(args[offset + 1])


def _phrases_in(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> int:
    for leaf in tree_flatten((args, kwargs))[0]:
        if isinstance(leaf, Decomposed):
            return leaf.phrases
    raise AssertionError("a handler ran without a decomposed argument")  # pragma: no cover - the guard ensures one


def _initial_parts(hx: Any, op: str, phrases: int) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """The parts of the initial states, :math:`(P, K D, B, H)`; constant states belong to γ."""
    lstm = op.startswith("lstm")
    states = list(hx) if lstm else [hx]
    parts = []
    for state in states:
        beta, gamma, _ = _parts_or_constant(state, phrases)
        if op.endswith("_cell"):
            beta, gamma = beta.unsqueeze(1), gamma.unsqueeze(1)
        parts.append((beta, gamma))
    if lstm:
        return parts[0][0], parts[0][1], parts[1][0], parts[1][1]
    return parts[0][0], parts[0][1], None, None


def _bias_to_beta(run: CDRun, trace: RecurrentTrace, step_origin: Tensor, cell_op: bool) -> List[Tensor]:
    """Per direction, :math:`(P, T, B)`: the steps whose bias-only product goes to β."""
    active = trace.layers[0][0].active
    in_phrase = run.lookup(run.phrase_lookup, step_origin) & active.unsqueeze(0)
    directions = trace.spec.num_directions
    if run.bias_product == "never":
        return [torch.zeros_like(in_phrase)] * directions
    if run.bias_product == "phrase":
        return [in_phrase] * directions
    if cell_op:
        return [run.lookup(run.forward_reference, step_origin) & active.unsqueeze(0)]
    forward, backward = _reference_masks(in_phrase)
    return [forward, backward][:directions]


# ----------------------------------------------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------------------------------------------

RELU_OPS = ("relu",)
"""ReLU: the rule of Singh et al. (2019)."""

SHAPLEY_OPS = (
    "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "softplus", "softsign", "tanh", "sigmoid",
    "hardtanh", "hardsigmoid", "hardswish", "logsigmoid", "tanhshrink", "softshrink", "hardshrink", "threshold",
    "_threshold", "prelu", "clamp", "clip", "clamp_min", "clamp_max",
)  # fmt: skip
"""Element-wise activations split by the two-player Shapley rule with baseline 0."""

MAX_OPS = ("max", "min", "amax", "amin", "maximum", "minimum", "fmax", "fmin")
"""Max and min: positions picked by the actual value."""

MAX_POOL_OPS = (
    "max_pool1d", "max_pool1d_with_indices", "_max_pool1d", "adaptive_max_pool1d", "adaptive_max_pool1d_with_indices",
    "_adaptive_max_pool1d",
)  # fmt: skip
"""1-D max pooling."""


def cd_op_table(run: CDRun) -> OpTable:
    """The ops :class:`~captum_text_ext.attr.ContextualDecomposition` supports, each with its rule (see the module
    docstring)."""
    table = OpTable("ContextualDecomposition")
    for op in FusedRecurrentCall.OPS:
        table.register("recurrent layers", ops_named([op]), _recurrent_handler(run, op))
    table.register("weighted layers (bias split by magnitude)", ops_named(["linear"]), _linear_handler(run))
    table.register("weighted layers (bias split by magnitude)", ops_named(["conv1d"]), _conv1d_handler(run))
    table.register("linear maps", ops_named(["sum", "mean"]), _reduce_handler(run))
    table.register(
        "linear maps",
        ops_named(["matmul", "mm", "bmm", "__matmul__", "avg_pool1d", "adaptive_avg_pool1d"]),
        _coefficient_handler(run),
    )
    table.register(
        "sums (constants are biases)",
        ops_named(["add", "__add__", "__radd__", "sub", "subtract", "__sub__", "__rsub__", "rsub"]),
        _add_handler(run),
    )
    table.register(
        "products with a constant",
        ops_named(["mul", "multiply", "__mul__", "__rmul__"]),
        _scale_handler(run, divide=False),
    )
    table.register(
        "products with a constant",
        ops_named(["div", "divide", "true_divide", "__truediv__", "__rtruediv__"]),
        _scale_handler(run, divide=True),
    )
    table.register("products with a constant", ops_named(["neg", "negative", "__neg__"]), _negate_handler(run))
    table.register("ReLU", ops_named(RELU_OPS), _relu_handler(run))
    table.register("activations (Shapley split)", ops_named(SHAPLEY_OPS), _shapley_handler(run))
    table.register("max pooling (positions by the value)", ops_named(MAX_OPS), _max_handler(run))
    table.register("max pooling (positions by the value)", ops_named(MAX_POOL_OPS), _max_pool_handler(run))
    table.register("gates (fixed)", ops_named(["softmax"]), _softmax_handler(run))
    table.register("dropout (evaluation mode)", ops_named(DROPOUT_OPS), _dropout_handler(run))
    namespaces = (torch, torch.Tensor, torch.nn.functional, torch._C._VariableFunctions)
    table.register("routing", ops_named(UNARY_ROUTING_OPS, namespaces=namespaces), _route(run, multi=False))
    table.register("routing", [torch.Tensor.T.__get__, torch.Tensor.mT.__get__], _route(run, multi=False))  # type: ignore[attr-defined]
    table.register("routing", ops_named(MULTI_ROUTING_OPS, namespaces=namespaces), _route(run, multi=True))
    table.register("routing", ops_named(["_pack_padded_sequence"], namespaces=namespaces), _pack_handler(run))
    table.register("routing", ops_named(["_pad_packed_sequence"], namespaces=namespaces), _unpack_handler(run))
    table.register("routing", [torch.Tensor.__iter__], _iter_handler(run))
    table.register("constants", ops_named(CONSTANT_OPS), _constant_handler(run))
    return table

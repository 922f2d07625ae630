r"""What carries a contextual decomposition through the model: the :class:`Decomposed` tensor (the actual value with
its parts β and γ, a pending bias and the input position each entry comes from), the bias split, and the run's state
(:class:`CDRun`)."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_text_ext.decomposition.guard import UnsupportedOperationError
from captum_text_ext.decomposition.run import Run

__all__ = [
    "BIAS_PRODUCTS", "CDRun", "Decomposed", "RowGather", "clear_rows", "is_decomposed", "split_bias", "zero_rows",
]


BIAS_PRODUCTS = ("phrase", "reference", "never")
"""Where the bias-only product of a recurrent cell goes (see the module docstring)."""


BLOCK_ROWS = 4096
"""The rows (phrases × rows of the value) of each block in which a row-wise deferred tensor's parts are computed."""


class RowGather:
    """A routing op that copies whole rows (vectors along the last dimension) of its input: the output's row ``k`` is
    the input's row ``index[k]`` (rows counted over the flattened leading dimensions). It commutes with every op that
    works row by row (``Linear``, element-wise ops, LayerNorm over the last dimension), whatever the row width, so a
    row-wise op's parts can be computed at the gathered rows only (the [CLS] row a classifier head reads).

    Args:
        index: :math:`(R,)` int64, the input row of each output row.
        shape: the output's leading dimensions (its shape without the last dimension).
        start: when ``index`` is ``start, start + 1, ...``: ``start`` (the rows are then a view, not a copy).
    """

    def __init__(self, index: Tensor, shape: Tuple[int, ...], start: Optional[int] = None) -> None:
        self.index, self.shape, self.start = index, shape, start

    @classmethod
    def block(cls, start: int, stop: int, device: torch.device) -> "RowGather":
        """The rows ``start`` to ``stop - 1``, flat."""
        return cls(torch.arange(start, stop, device=device), (stop - start,), start)

    def __call__(self, part: Tensor, batched: bool) -> Tensor:
        """``part`` (with a leading phrase dimension when ``batched``) at the gathered rows.

        >>> RowGather(torch.tensor([2, 0]), (2,))(torch.arange(6.0).reshape(3, 2), batched=False)
        tensor([[4., 5.],
                [0., 1.]])
        """
        lead = 1 if batched else 0
        rows = part.reshape(*part.shape[:lead], -1, part.shape[-1])
        if self.start is not None:
            picked = rows.narrow(lead, self.start, self.index.numel())
        else:
            picked = rows.index_select(lead, self.index.to(part.device))
        return picked.reshape(*part.shape[:lead], *self.shape, part.shape[-1])

    def after(self, first: "RowGather") -> "RowGather":
        """The gather that applies ``first``, then this one."""
        return RowGather(first.index.to(self.index.device)[self.index], self.shape)


class Decomposed(Tensor):
    """The actual value of a tensor on the path from the inputs to the output, carrying its CD parts.

    It behaves as a plain tensor (torch functions see its value; its own ``__torch_function__`` is disabled, so the
    :class:`~captum_text_ext.decomposition.guard.OpGuard` of a CD run is what dispatches ops on it).

    The parts of an input are its entries inside and outside each phrase. Such a tensor keeps only the phrase mask
    (:meth:`masked`) until a rule needs the parts: the ops that merely move token positions (selecting or packing
    along the batch and time dimensions, dropout in evaluation mode) and the recurrent layers work on the mask, so
    the inputs are never copied once per phrase on the way to the first recurrent layer.

    The parts are the properties :attr:`beta` and :attr:`gamma`, one slice per phrase. A tensor whose parts a row-wise
    rule deferred can also compute them at some rows only (:meth:`rows`), which a routing op that keeps whole rows
    asks for: the layers after a transformer's last attention then work on the rows the head reads.

    Attributes:
        plain: the value as a plain tensor.
        pending: a bias not yet split between β and γ (value-shaped, the same for every phrase), or ``None``.
        origin: value-shaped float64: ``1 +`` the flat index of the input token each entry was computed from
            position-wise, ``0`` for entries that mix positions; ``None`` when no entry has one.
        mask: for a tensor made by :meth:`masked`, :math:`(P, d_1, \\ldots, d_k)` bool over its first :math:`k`
            dimensions: β is the value where it is True, γ the value elsewhere; ``None`` otherwise.
        unsplit: for a tensor made by :meth:`value_only` (attention scores), the error that reading its parts
            raises; ``None`` otherwise.
    """

    __torch_function__ = torch._C._disabled_torch_function_impl  # type: ignore[assignment]  # a plain tensor to torch: the guard dispatches

    plain: Tensor
    pending: Optional[Tensor]
    origin: Optional[Tensor]
    mask: Optional[Tensor]
    unsplit: Optional[UnsupportedOperationError]
    _phrases: int
    _parts: Optional[Tuple[Tensor, Tensor]]
    _resolved: Optional[Tuple[Tensor, Tensor]]
    _make_parts: Optional[Callable[[], Tuple[Tensor, Tensor]]]
    _make_rows: Optional[Callable[[RowGather], Tuple[Tensor, Tensor]]]
    _rows: Optional[Tuple[RowGather, Tuple[Tensor, Tensor]]]

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
        value: Tensor,
        phrases: int,
        make_parts: Callable[[], Tuple[Tensor, Tensor]],
        origin: Optional[Tensor] = None,
        pending: Optional[Tensor] = None,
        make_rows: Optional[Callable[[RowGather], Tuple[Tensor, Tensor]]] = None,
    ) -> "Decomposed":
        """A :class:`Decomposed` tensor whose parts ``make_parts()`` computes when they are first read (outputs that
        the model may never use, and the projections whose only reader is the attention scores: the query and the
        key, which CD needs by their value alone); ``make_rows(gather)``, when given, computes them at the rows
        ``gather`` picks only (for ops that work row by row)."""
        grad_enabled = torch.is_grad_enabled()

        def made_as_now() -> Tuple[Tensor, Tensor]:  # in the grad mode of the op, whenever they are read
            with torch.set_grad_enabled(grad_enabled):
                return make_parts()

        out = Decomposed._make(value, phrases, origin, pending)
        out._make_parts = made_as_now
        if make_rows is not None:
            rows_of = make_rows

            def rows_as_now(gather: RowGather) -> Tuple[Tensor, Tensor]:
                with torch.set_grad_enabled(grad_enabled):
                    return rows_of(gather)

            out._make_rows = rows_as_now
        return out

    @staticmethod
    def value_only(value: Tensor, phrases: int, error: UnsupportedOperationError) -> "Decomposed":
        """A :class:`Decomposed` tensor known only by its value (attention scores :math:`QK^\\top`: a product of two
        decomposed tensors, which CD needs only for the attention weights a softmax makes of it); reading its parts
        raises ``error``."""

        def refuse() -> Tuple[Tensor, Tensor]:
            raise error

        out = Decomposed.deferred(value, phrases, refuse)
        out.unsplit = error
        return out

    @staticmethod
    def _make(value: Tensor, phrases: int, origin: Optional[Tensor], pending: Optional[Tensor]) -> "Decomposed":
        plain = value.detach()
        if isinstance(plain, Decomposed):
            plain = plain.plain
        out = Tensor._make_subclass(Decomposed, plain, False)
        out.plain, out.origin, out.pending, out._phrases = plain, origin, pending, phrases
        out._parts = out._resolved = out._make_parts = out.mask = out.unsplit = None
        out._make_rows = out._rows = None
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
            width = self.shape[-1] if self.dim() else 1
            rows = self.numel() // max(width, 1)
            if self._make_rows is not None and self.dim() and self._phrases * rows > 2 * BLOCK_ROWS:
                self._parts = self._made_in_blocks(rows, width)
            else:
                self._parts = self._make_parts()
            self._make_parts = self._make_rows = self._rows = None  # the inputs they hold can go
        return self._parts

    def _made_in_blocks(self, rows: int, width: int) -> Tuple[Tensor, Tensor]:
        """The parts of a row-wise deferred tensor, :data:`BLOCK_ROWS` rows (counting each phrase's) at a time: the
        row-wise ops before it then run on blocks that stay in the processor's cache, op after op."""
        assert self._make_rows is not None
        step = max(1, BLOCK_ROWS // self._phrases)
        parts: Optional[Tuple[Tensor, Tensor]] = None
        for start in range(0, rows, step):
            stop = min(rows, start + step)
            beta, gamma = self._make_rows(RowGather.block(start, stop, self.device))
            if parts is None:
                parts = (beta.new_empty(self._phrases, rows, width), gamma.new_empty(self._phrases, rows, width))
            parts[0][:, start:stop] = beta
            parts[1][:, start:stop] = gamma
        assert parts is not None
        return parts[0].reshape(self._phrases, *self.shape), parts[1].reshape(self._phrases, *self.shape)

    @property
    def rows_deferred(self) -> bool:
        """Whether the parts are deferred by a row-wise rule, which can compute them at some rows only."""
        return self._parts is None and self._make_rows is not None

    def rows(self, gather: RowGather) -> Tuple[Tensor, Tensor]:
        """``(gather(β), gather(γ))``: computed at the gathered rows only where the parts are :attr:`rows_deferred`
        (kept for the next read with the same ``gather``: a residual connection reads a tensor twice)."""
        if self._rows is not None and self._rows[0] is gather:
            return self._rows[1]
        if self._make_rows is None:  # not deferred row by row, or the parts are made
            return gather(self.beta, True), gather(self.gamma, True)
        parts = self._make_rows(gather)
        self._rows = (gather, parts)
        return parts

    def resolved_rows(self, gather: RowGather) -> Tuple[Tensor, Tensor]:
        """:meth:`resolved` at the gathered rows."""
        if self._resolved is not None:
            return gather(self._resolved[0], True), gather(self._resolved[1], True)
        beta, gamma = self.rows(gather)  # the split is element-wise: at the gathered rows alone
        return split_bias(beta, gamma, None if self.pending is None else gather(self.pending, False))

    @property
    def parts_deferred(self) -> bool:
        """Whether the parts are still to be computed by the deferred ``make_parts`` (not a phrase mask's split, not a
        value-only tensor's refusal)."""
        return self._parts is None and self.mask is None and self.unsplit is None

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
        """``(β, γ)`` with the pending bias split in proportion to :math:`|\\beta|` and :math:`|\\gamma|` (computed
        once: several ops may read one tensor, as the query, key and value projections do)."""
        if self._resolved is None:
            self._resolved = split_bias(self.beta, self.gamma, self.pending)
        return self._resolved


def is_decomposed(obj: Any) -> bool:
    """Whether ``obj`` carries CD parts (the guard's ``tracked`` predicate for a CD run)."""
    return isinstance(obj, Decomposed)


SAMPLED_ENTRIES = 8
""":func:`zero_rows` looks at this many entries of each row first."""


def zero_rows(part: Tensor) -> Tensor:
    """The rows (vectors along the last dimension, counted over all the others) of ``part`` that are exactly 0, as flat
    indices. The first :data:`SAMPLED_ENTRIES` entries of each row rule out most rows at once; only the others are
    read whole.

    >>> zero_rows(torch.tensor([[[0.0, 0.0], [0.0, 2.0]], [[1.0, 0.0], [0.0, 0.0]]]))
    tensor([0, 3])
    """
    if part.dim() < 2:
        part = part.unsqueeze(-1)
    # on the part as it lies (a view of heads is not copied): the sampled entries first, then the candidates' rows
    candidates = (~part[..., :SAMPLED_ENTRIES].any(-1)).reshape(-1).nonzero().squeeze(1)
    if candidates.numel() == 0:
        return candidates
    rows = part[torch.unravel_index(candidates, part.shape[:-1])]
    return candidates[~rows.any(-1)]


def clear_rows(part: Tensor, rows: Tensor) -> None:
    """Set the rows ``rows`` (flat indices, as :func:`zero_rows` gives them) of ``part`` to exactly 0, in place."""
    lined = part if part.dim() >= 2 else part.unsqueeze(-1)
    lined[torch.unravel_index(rows, lined.shape[:-1])] = 0


def split_bias(beta: Tensor, gamma: Tensor, bias: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    r"""Split ``bias`` between β and γ in proportion to their magnitudes, halves where both are 0.

    >>> split_bias(torch.tensor([[3.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([2.0, 4.0]))
    (tensor([[4.5000, 2.0000]]), tensor([[1.5000, 2.0000]]))
    """
    if bias is None:
        return beta, gamma
    share, rest = beta.abs(), gamma.abs()
    share.div_(rest.add_(share)).nan_to_num_(nan=0.5)  # 0 / 0 where both parts are 0: halves
    # γ + b - s b: a share of exactly 1 (γ = 0) gives exactly 0, so a whole-sentence phrase keeps γ exactly 0; the
    # results go where the shares were (fewer fresh tensors: allocating large ones costs as much as the arithmetic)
    new_gamma = torch.add(gamma, bias, out=rest).addcmul_(share, bias, value=-1)
    return torch.addcmul(beta, share, bias, out=share), new_gamma


class CDRun(Run):
    """What a CD pass knows besides the tensors: the ``bias_product`` mode and the phrases by input position.

    Args:
        bias_product: one of :data:`BIAS_PRODUCTS`.
        phrase_lookup: :math:`(P, 1 + S)` bool, ``phrase_lookup[p, s]``: input position with origin ``s`` lies in
            phrase ``p`` (column 0, "no origin", is False); :math:`S` counts all input tokens.
        forward_reference: :math:`(P, 1 + S)` bool: a phrase position that is not the phrase's last token (forward
            order); used by ``"reference"`` for cell ops.
        method: the method's name, for messages.
    """

    def __init__(
        self,
        bias_product: str,
        phrase_lookup: Tensor,
        forward_reference: Tensor,
        method: str = "ContextualDecomposition",
    ) -> None:
        super().__init__(method)
        self.bias_product, self.phrase_lookup, self.forward_reference = bias_product, phrase_lookup, forward_reference

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

    def lookup(self, table: Tensor, origin: Tensor) -> Tensor:
        """``table[:, origin]`` for an origin tensor of any shape: :math:`(P, *\\text{origin.shape})`."""
        index = origin.to(device=table.device, dtype=torch.long)
        return table[:, index.reshape(-1)].reshape(table.shape[0], *index.shape)



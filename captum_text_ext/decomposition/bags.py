r"""``nn.EmbeddingBag`` read as its looked-up rows and a constant map from them to the bags.

A bag's output :math:`(N, E)` has no token axis, so a layer method hooked on an ``nn.EmbeddingBag`` starts one step
earlier: at the rows the bag looks up, :math:`x_j = W_{\text{id}_j}` for every flat id :math:`j` (:math:`(M, E)` for
flat ids with ``offsets``; :math:`(B, L, E)` for a 2-D input of fixed-length bags). The bag is then a map of these
rows the rule tables know:

- ``mode="sum"`` and ``"mean"``: :math:`z_n = \sum_j A_{nj} x_j`, a product with a constant matrix :math:`A`
  (:math:`A_{nj}` = the ``per_sample_weights`` entry of :math:`j`, or 1, divided by the bag's size for the mean, when
  :math:`j` lies in bag :math:`n` and is not ``padding_idx``; else 0);
- ``mode="max"``: :math:`z_{ne} = x_{j^*(n, e),\,e}`, the entry of the bag's largest row in each dimension (a
  ``gather``: relevance goes to the arg-max token), times 0 for an empty bag.

The result equals the bag's output (checked), and the rows carry what each method decomposes: LRP relevance and
gradient × input at :math:`(M, E)`, contextual decomposition one score per flat id.

Examples:
    >>> bag = torch.nn.EmbeddingBag(10, 3, mode="mean", padding_idx=0)
    >>> ids, offsets = torch.tensor([4, 0, 2, 7, 1]), torch.tensor([0, 3])
    >>> lookup = BagLookup.parse(bag, (ids, offsets), {}, bag(ids, offsets))
    >>> lookup.rows.shape, lookup.bag_of_row.tolist()
    (torch.Size([5, 3]), [0, 0, 0, 1, 1])
    >>> bool(torch.allclose(lookup.combine(lookup.rows), bag(ids, offsets)))
    True
"""

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Dict, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_text_ext.decomposition.hooks import Capture, LayerCapture, ScopedHooks

__all__ = ["BAG_MODES", "BagCapture", "BagLookup", "known_batch", "start_at_layer"]

BAG_MODES = ("sum", "mean", "max")
"""The ``nn.EmbeddingBag`` modes the bag map covers."""


@dataclass(frozen=True)
class BagLookup:
    """One call of an ``nn.EmbeddingBag``: the rows it looked up and how they make its output.

    Attributes:
        rows: the looked-up rows, :math:`(M, E)` for flat ids, :math:`(B, L, E)` for a 2-D input (detached).
        bag_of_row: :math:`(M,)` the bag of each flat id (``-1`` for ids after the last offset, which the bag
            ignores).
        bags: :math:`N`.
        mode: ``"sum"``, ``"mean"`` or ``"max"``.
        matrix: :math:`(N, M)` the constant :math:`A` (``sum`` and ``mean``).
        argmax: :math:`(N, E)` the flat id each output entry is taken from (``max``).
        nonempty: :math:`(N, 1)` 1 for a bag with a row, 0 for an empty one (``max``).
    """

    rows: Tensor
    bag_of_row: Tensor
    bags: int
    mode: str
    matrix: Optional[Tensor] = None
    argmax: Optional[Tensor] = None
    nonempty: Optional[Tensor] = None

    @classmethod
    def parse(cls, module: nn.EmbeddingBag, args: Tuple[Any, ...], kwargs: Dict[str, Any], output: Tensor) -> "BagLookup":
        """Read a call ``module(input, offsets=None, per_sample_weights=None)`` and check that the bag map gives
        its ``output``.

        Raises:
            TypeError: for ``max_norm`` (it renormalizes the weight during the call) or an unknown mode.
            ValueError: when the bag map does not reproduce the output.
        """
        names = ("input", "offsets", "per_sample_weights")
        ids, offsets, weights = (list(args) + [kwargs.get(n) for n in names[len(args):]])[:3]
        if module.max_norm is not None:
            raise TypeError("nn.EmbeddingBag with max_norm renormalizes its weight during the call; not supported")
        if module.mode not in BAG_MODES:
            raise TypeError(f"Expected an nn.EmbeddingBag mode in {BAG_MODES}, but got {module.mode!r}")
        weight = module.weight.detach()
        flat = ids.reshape(-1)
        count = int(flat.shape[0])
        rows = F.embedding(ids, weight)
        if ids.dim() == 2:
            bags = int(ids.shape[0])
            bag_of_row = torch.arange(bags, device=flat.device).repeat_interleave(int(ids.shape[1]))
        else:
            starts = offsets[:-1] if module.include_last_offset else offsets
            bags = int(starts.shape[0])
            position = torch.arange(count, device=flat.device)
            bag_of_row = torch.bucketize(position, starts, right=True) - 1
            if module.include_last_offset:
                bag_of_row = torch.where(position < offsets[-1], bag_of_row, -1)
        keep = bag_of_row >= 0
        if module.padding_idx is not None:
            keep = keep & (flat != module.padding_idx)
        lookup = cls._with_map(rows, bag_of_row, keep, bags, module.mode, weights)
        cls._check(lookup, output)
        return lookup

    @classmethod
    def _with_map(
        cls, rows: Tensor, bag_of_row: Tensor, keep: Tensor, bags: int, mode: str, weights: Optional[Tensor]
    ) -> "BagLookup":
        flat_rows = rows.reshape(-1, rows.shape[-1])
        count = int(flat_rows.shape[0])
        index = torch.arange(count, device=rows.device)[keep]
        owner = bag_of_row[keep]
        if mode == "max":
            columns = flat_rows.shape[1]
            scatter_to = owner.unsqueeze(1).expand(-1, columns)
            largest = flat_rows.new_zeros(bags, columns).scatter_reduce(
                0, scatter_to, flat_rows[keep], "amax", include_self=False
            )
            hits = flat_rows[keep] == largest[owner]
            candidates = torch.where(hits, index.unsqueeze(1), count)
            argmax = torch.full((bags, columns), count, dtype=torch.long, device=rows.device)
            argmax = argmax.scatter_reduce(0, scatter_to, candidates, "amin")
            nonempty = (argmax < count).any(1, keepdim=True).to(rows.dtype)
            return cls(rows, bag_of_row, bags, mode, argmax=argmax.clamp(max=max(count - 1, 0)), nonempty=nonempty)
        values = torch.ones(count, dtype=rows.dtype, device=rows.device) if weights is None else weights.reshape(-1)
        values = values.to(rows.dtype)[keep]
        if mode == "mean":
            sizes = torch.zeros(bags, dtype=rows.dtype, device=rows.device).index_add_(0, owner, torch.ones_like(values))
            values = values / sizes[owner]
        matrix = rows.new_zeros(bags, count)
        matrix[owner, index] = values
        return cls(rows, bag_of_row, bags, mode, matrix=matrix)

    @staticmethod
    def _check(lookup: "BagLookup", output: Tensor) -> None:
        with torch.no_grad():
            recomputed = lookup.combine(lookup.rows)
        if recomputed.shape != output.shape:
            raise ValueError(
                f"Expected the nn.EmbeddingBag output {tuple(output.shape)} to have one row per bag "
                f"{tuple(recomputed.shape)}"
            )
        if not output.numel():
            return
        tolerance = 1e3 * torch.finfo(output.dtype).eps * (1 + float(output.detach().abs().max()))
        if float((recomputed - output.detach()).abs().max()) > tolerance:
            raise ValueError(
                f"Expected the nn.EmbeddingBag(mode={lookup.mode!r}) output to be its looked-up rows combined per bag, "
                "but the two differ"
            )

    def combine(self, rows: Tensor) -> Tensor:
        """The bag's output :math:`(N, E)` from ``rows`` (shaped like :attr:`rows`), with torch ops the rule tables
        know (``reshape``, ``matmul``, ``gather``, ``mul``)."""
        flat = rows.reshape(-1, rows.shape[-1])
        if self.matrix is not None:
            combined: Tensor = torch.matmul(self.matrix, flat)
            return combined
        assert self.argmax is not None and self.nonempty is not None
        picked = torch.gather(flat, 0, self.argmax)
        return picked if bool(self.nonempty.all()) else picked * self.nonempty

    def totals(self, relevance: Tensor) -> Tensor:
        """:math:`(N,)` the relevance of the rows (shaped like :attr:`rows`) summed per bag."""
        per_row = relevance.reshape(self.bag_of_row.shape[0], -1).sum(1)
        kept = self.bag_of_row >= 0
        return per_row.new_zeros(self.bags).index_add_(0, self.bag_of_row[kept], per_row[kept])


class BagCapture(Capture):
    """Starts a method at the rows an ``nn.EmbeddingBag`` looks up, for one forward pass: the bag's output is
    replaced by :meth:`BagLookup.combine` of ``make(rows)`` (a gradient leaf, or a decomposed tensor), computed with
    whatever guard is running, so the method's own rules combine the rows. The layer must run once per pass.

    Args:
        layer: the ``nn.EmbeddingBag``.
        hooks: the call's :class:`~captum_text_ext.decomposition.hooks.ScopedHooks`.
        make: what the looked-up rows are replaced by.
        paused: a context that lets ops through untouched (the method's guard paused), for reading the call.

    Attributes:
        captured: ``(make(rows),)`` once the layer ran.
        lookup: the :class:`BagLookup` of the call.
    """

    def __init__(
        self,
        layer: nn.EmbeddingBag,
        hooks: ScopedHooks,
        make: Callable[[Tensor], Tensor],
        paused: Callable[[], ContextManager[Any]] = contextlib.nullcontext,
    ) -> None:
        super().__init__(layer, make, paused)
        self.lookup: Optional[BagLookup] = None
        hooks.forward(layer, self._replace, with_kwargs=True)

    def _replace(self, module: nn.Module, args: Tuple[Any, ...], kwargs: Dict[str, Any], output: Tensor) -> Tensor:
        assert isinstance(module, nn.EmbeddingBag)
        with self.paused():
            self._check_once()
            lookup = BagLookup.parse(module, args, kwargs, output)
            start = self.make(lookup.rows)
            self.lookup, self.captured = lookup, (start,)
        return lookup.combine(start)


def start_at_layer(
    layer: nn.Module,
    hooks: ScopedHooks,
    make: Callable[[Tensor], Tensor],
    to_input: bool = False,
    paused: Callable[[], ContextManager[Any]] = contextlib.nullcontext,
    tuples: bool = True,
) -> Union[LayerCapture, BagCapture]:
    """Where a layer method starts: the rows an ``nn.EmbeddingBag`` looks up (:class:`BagCapture`), or any other
    layer's output or inputs (:class:`~captum_text_ext.decomposition.hooks.LayerCapture`)."""
    if isinstance(layer, nn.EmbeddingBag) and not to_input:
        return BagCapture(layer, hooks, make, paused)
    return LayerCapture(layer, hooks, make, to_input, tuples, paused)


def known_batch(layer: Optional[nn.Module], to_input: bool, first_input: Any) -> Optional[int]:
    """The number of examples before the forward pass: the first input's first dimension, or ``None`` when a
    method starts at an ``nn.EmbeddingBag`` that reads flat ids (the examples are its bags, known once it ran)."""
    flat_bag = isinstance(layer, nn.EmbeddingBag) and not to_input
    if flat_bag and isinstance(first_input, Tensor) and first_input.dim() == 1:
        return None
    return int(first_input.shape[0])

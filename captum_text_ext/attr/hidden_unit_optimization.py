r"""HiddenUnitOptimization: what the most salient hidden locations of a text CNN detect, as words (Yuan et al., 2019,
Eq. 5–8), batched over examples and locations; and the matching rate of Table 4."""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterable, List, Optional, Protocol, Sequence, Tuple, Union, runtime_checkable

import numpy as np
import torch
from captum._utils.typing import TargetType
from torch import Tensor, nn

from captum_text_ext.attr.hidden_unit_saliency import HiddenUnitSaliency, StopForward, format_forward_args
from captum_text_ext.attr.receptive_fields import from_module_layout, to_module_layout, window_geometry

__all__ = [
    "HiddenUnitOptimization",
    "HiddenUnitOptimizationResult",
    "MatchingRate",
    "NearestWords",
    "TokenVocabulary",
    "VocabularyLike",
    "nearest_words",
]


@runtime_checkable
class TokenVocabulary(Protocol):
    """What the methods read of a vocabulary: its tokens in id order and the ids of its special tokens.

    :class:`captum_text_ext.datasets.Vocabulary` is one; any object with these two attributes will do.
    """

    @property
    def itos(self) -> Sequence[str]:
        """The tokens in id order."""

    @property
    def special_indices(self) -> Sequence[int]:
        """The ids never offered as nearest words (e.g. padding, unknown)."""


VocabularyLike = Union[TokenVocabulary, Sequence[str]]
"""A :class:`TokenVocabulary`, or the tokens in id order (no special tokens)."""


@dataclasses.dataclass
class NearestWords:
    """The nearest vocabulary words of some vectors by cosine similarity.

    Attributes:
        ids: :math:`(M, k)` token ids, most similar first.
        words: the ``k`` words of each vector.
        scores: :math:`(M, k)` their cosine similarities.
    """

    ids: Tensor
    words: List[List[str]]
    scores: Tensor


def _itos(vocabulary: VocabularyLike) -> List[str]:
    return list(vocabulary.itos) if isinstance(vocabulary, TokenVocabulary) else list(vocabulary)


def nearest_words(
    vectors: Tensor,
    embedding_weight: Tensor,
    vocabulary: VocabularyLike,
    k: int,
    exclude: Optional[Sequence[int]] = None,
) -> NearestWords:
    r"""The ``k`` words whose embeddings have the highest cosine similarity with each vector.

    Args:
        vectors: :math:`(M, E)`.
        embedding_weight: :math:`(V, E)` the embedding matrix.
        vocabulary: maps ids to words: a :class:`TokenVocabulary` (e.g.
            :class:`~captum_text_ext.datasets.Vocabulary`) or a sequence of ``V`` strings.
        k: neighbours per vector.
        exclude: ids never returned; default: the vocabulary's special tokens (padding, unknown) for a
            :class:`TokenVocabulary`, none for a sequence.

    Returns:
        A :class:`NearestWords`.

    Raises:
        ValueError: for mismatched shapes or a ``k`` outside ``[1, V - len(exclude)]``.

    Examples:
        >>> weight = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> found = nearest_words(torch.tensor([[2.0, 1.9]]), weight, ["<pad>", "x", "y", "xy"], k=2, exclude=[0])
        >>> found.words
        [['xy', 'x']]
    """
    itos = _itos(vocabulary)
    if vectors.dim() != 2 or embedding_weight.dim() != 2 or vectors.shape[1] != embedding_weight.shape[1]:
        raise ValueError(
            f"Expected `vectors` (M, E) and `embedding_weight` (V, E), but got {tuple(vectors.shape)} and "
            f"{tuple(embedding_weight.shape)}"
        )
    if len(itos) != embedding_weight.shape[0]:
        raise ValueError(
            f"Expected a vocabulary of {embedding_weight.shape[0]} words (one per embedding row), but got {len(itos)}"
        )
    if exclude is None:
        exclude = list(vocabulary.special_indices) if isinstance(vocabulary, TokenVocabulary) else []
    available = embedding_weight.shape[0] - len(set(exclude))
    if not 1 <= k <= available:
        raise ValueError(f"Expected `k` in [1, {available}], but got {k}")
    weight = embedding_weight.detach().to(vectors.dtype)
    similarity = torch.nn.functional.normalize(vectors.detach(), dim=1) @ torch.nn.functional.normalize(weight, dim=1).t()
    if len(exclude):
        similarity[:, torch.as_tensor(list(exclude), device=similarity.device)] = -math.inf
    scores, ids = similarity.topk(k, dim=1)
    return NearestWords(ids, [[itos[i] for i in row] for row in ids.tolist()], scores)


@dataclasses.dataclass
class HiddenUnitOptimizationResult:
    r"""What :meth:`HiddenUnitOptimization.optimize` found. Per example: the saliency of every location and the
    class explained; per *item* (one selected location of one example, ``B`` in all, ordered by example, then
    rank): where it is, the optimized :math:`\widehat X_0`, its mean and its nearest words.

    Attributes:
        saliency: :math:`(N, L)` :math:`\mathrm{Score}_c(X)_{i,j}` of every location.
        classes: :math:`(N,)` the class :math:`c` explained (the predicted class for ``target=None``).
        receptive_fields: :math:`(L, 2)` the ``[start, end)`` input positions of every location.
        example: :math:`(B,)` the example of each item.
        rank: :math:`(B,)` 0 for the most salient location of its example, 1 for the second, …
        location: :math:`(B,)` the location :math:`i`.
        columns: :math:`(B, R)` the input positions of :math:`\widehat X_0` (``R``: the widest receptive field).
        column_mask: :math:`(B, R)` which columns are optimized: inside the location's receptive field and on a
            token of the example (not padding).
        vectors: :math:`(B, R, E)` the optimized :math:`\widehat X_0` (masked columns hold their start values).
        x_overall: :math:`(B, E)` Eq. 8: the mean of the optimized columns.
        objective: :math:`(B,)` the objective at the returned vectors.
        trace: :math:`(B, S + 1)` the objective after ``t`` updates, ``nan`` after the item stopped.
        steps: :math:`(B,)` the updates each item made.
        converged: :math:`(B,)` whether it stopped by the convergence criterion (not by ``max_steps``).
        neighbors: the ``n_neighbors`` nearest words of each ``x_overall``.
    """

    saliency: Tensor
    classes: Tensor
    receptive_fields: Tensor
    example: Tensor
    rank: Tensor
    location: Tensor
    columns: Tensor
    column_mask: Tensor
    vectors: Tensor
    x_overall: Tensor
    objective: Tensor
    trace: Tensor
    steps: Tensor
    converged: Tensor
    neighbors: NearestWords

    def items_of(self, example: int) -> List[int]:
        """The items of one example, most salient location first."""
        return [int(b) for b in torch.nonzero(self.example == example).flatten()]

    def interpretation_ids(self, example: int) -> List[int]:
        """Table 4's :math:`X'`: the neighbours of the top location (best first), then of the second, … (duplicates
        kept)."""
        return [i for b in self.items_of(example) for i in self.neighbors.ids[b].tolist()]


@dataclasses.dataclass
class MatchingRate:
    """Table 4: how often the model gives the interpretation :math:`X'` the class it gives the sentence :math:`X`.

    Attributes:
        rate: the share of sentences that match.
        matches: :math:`(N,)` bool per sentence.
        classes: :math:`(N,)` the predicted class of each sentence.
        interpretation_classes: :math:`(N,)` the predicted class of its interpretation (-1 when no location of the
            sentence could be optimized, counted as no match).
        interpretations: the token ids of each :math:`X'`.
    """

    rate: float
    matches: Tensor
    classes: Tensor
    interpretation_classes: Tensor
    interpretations: List[List[int]]


class _ActiveAdam:
    """Adam (ascent) over the items that are still moving, kept contiguous: every active item has made the same
    number of updates (items only ever stop), so the bias corrections are one scalar, and a stopped item is dropped
    (:meth:`keep`) without moving or ageing the others; each item follows the trajectory it would follow alone."""

    def __init__(self, x: Tensor, lr: float, betas: Tuple[float, float], eps: float) -> None:
        self.lr, self.betas, self.eps = lr, betas, eps
        self.x, self.m, self.v = x.clone(), torch.zeros_like(x), torch.zeros_like(x)
        self.t = 0

    def keep(self, moving: Tensor) -> None:
        """Drop the items where ``moving`` is false."""
        self.x, self.m, self.v = self.x[moving], self.m[moving], self.v[moving]

    def step(self, grad: Tensor) -> None:
        """Move every item up its gradient, in place."""
        beta1, beta2 = self.betas
        self.t += 1
        self.m.mul_(beta1).add_(grad, alpha=1 - beta1)
        self.v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denominator = (self.v / (1 - beta2**self.t)).sqrt_().add_(self.eps)
        self.x.addcdiv_(self.m, denominator, value=self.lr / (1 - beta1**self.t))


def _index_args(args: Tuple[object, ...], index: Tensor, batch: int) -> Tuple[object, ...]:
    return tuple(a[index.to(a.device)] if isinstance(a, Tensor) and a.dim() and a.shape[0] == batch else a for a in args)


@dataclasses.dataclass
class _ItemForward:
    """:math:`a'_{ij}` of a set of items, by a forward pass up to the layer.

    With ``padded is None`` (an unpadded stack whose first module reads the embeddings unchanged), the model runs on
    the sentences as they are, each once (``ids``; item ``b`` reads row ``rows[b]``), and the input of the stack's
    first module is cropped to each item's receptive field, where the optimized columns replace the sentence's:
    every tensor that carries a gradient is field-sized.
    Otherwise :math:`X_0` (``padded``, the sentences' embeddings and a zero column, with the optimized columns put in
    at ``index``) replaces the embedding's output, and the first module's input is cropped when the stack does not
    pad (``cropped``).
    """

    hunt: "HiddenUnitOptimization"
    ids: Tensor
    args: Tuple[object, ...]
    location: Tensor
    columns: Tensor
    mask: Tensor
    cropped: bool
    padded: Optional[Tensor]
    index: Optional[Tensor]
    rows: Optional[Tensor]

    def activation(self, vectors: Tensor) -> Tensor:
        """:math:`(B, C)` the layer's output at each item's location with its columns of :math:`X_0` = ``vectors``."""
        hunt = self.hunt
        stack = hunt.saliency.stack
        assert stack is not None
        crop = (stack[0], self.columns[:, 0], hunt.field_width) if self.cropped else None
        if self.padded is None:
            axis = hunt.saliency.axis
            mask = to_module_layout(stack[0], axis, self.mask.unsqueeze(-1))
            columns = to_module_layout(stack[0], axis, vectors)
            hooks = hunt.saliency.hooks(
                found_axis=True, stop_after_layer=True, leaf=False, embedding=hunt.embedding, token_ids=self.ids,
                crop=crop, substitute=lambda cropped: torch.where(mask, columns, cropped), crop_rows=self.rows,
            )
        else:
            assert self.index is not None
            padded, tokens = self.padded, self.padded.shape[1] - 1
            index = self.index.unsqueeze(-1).expand_as(vectors)
            x0 = padded.scatter(1, index, torch.where(self.mask.unsqueeze(-1), vectors, padded.gather(1, index)))
            hooks = hunt.saliency.hooks(
                found_axis=True, stop_after_layer=True, leaf=False, embedding=hunt.embedding, token_ids=self.ids,
                replace_embeddings=lambda time_first: x0[:, :tokens], crop=crop,
            )
        with hooks:
            try:
                hunt.model(self.ids, *self.args)
            except StopForward:
                pass
        activations = hooks.activations()
        if crop is not None:
            return activations[:, :, 0]
        return activations[torch.arange(len(self.location), device=self.location.device), :, self.location]


class HiddenUnitOptimization:
    r"""What the most salient spatial locations of a hidden layer detect in a sentence, as words
    (Yuan et al., 2019).

    1. **Select** the ``n_locations`` locations :math:`i` with the highest saliency
       :math:`w(A_j)_i \cdot a_{ij}` (:class:`~captum_text_ext.HiddenUnitSaliency`, Eq. 3) among those whose receptive
       field lies on tokens of the sentence (no padding); for a sentence shorter than every field, among those whose
       field holds one of its tokens. (Locations that read the padding of a batch exist only because of the batch.)
    2. **Optimize** an input :math:`X_0` for each of them, starting from Xavier-initialized columns, by maximizing
       with Adam

       .. math::
           J(X_0) = a_{ij} \cdot a'_{ij} - \lambda_1 \big\|\widehat X_0\big\|_2^2 + \lambda_2\, \mathrm{Sim}(\widehat X_0),
           \qquad
           \mathrm{Sim}(\widehat X_0) = \frac{1}{N} \sum_{i, j \in [l, r]}
               \frac{x_{0i}}{\|x_{0i}\|_2} \cdot \frac{x_{0j}}{\|x_{0j}\|_2}
           \quad (\text{Eq. 6, 7}),

       where :math:`a_{ij}` is the location's activation vector for the sentence, :math:`a'_{ij}` for :math:`X_0`
       (the embedding's output is replaced by :math:`X_0` during the forward pass), :math:`\widehat X_0 =
       [x_{0l}, \dots, x_{0r}]` the columns of the receptive field, and the sum of Eq. 7 runs over all ordered pairs,
       :math:`i = j` included, divided by :math:`N = r - l + 1` (not :math:`N^2`), as printed.
    3. **Read** the mean :math:`x_{overall} = \frac{1}{N} \sum_{i=l}^r x_{0i}` (Eq. 8) as words: its ``n_neighbors``
       nearest vocabulary words by cosine similarity, special tokens excluded (:func:`nearest_words`).

    Choices where the paper is silent:

    - Only the receptive-field columns are optimized (the location does not read the others); columns on padding
      are not part of :math:`\widehat X_0` (:math:`N` counts the sentence's tokens in the field), and the other
      columns of :math:`X_0` keep the sentence's embeddings.
    - The start :math:`X_0` of the location ranked :math:`r` is one Xavier-uniform :math:`(R, E)` matrix drawn from
      a generator seeded by ``(seed, r)`` (``R``: the widest receptive field, its columns aligned to the field's
      first position), so a result does not depend on the batch it was computed in.
    - **Convergence**: what is read out is the *direction* of :math:`x_{overall}` (its nearest words by cosine
      similarity), so an item stops, and is frozen, at the first step :math:`t` that is a multiple of ``window``
      (:math:`w`) where :math:`1 - \cos(x_{overall}^{(t)}, x_{overall}^{(t - w)}) \le \mathrm{tol}`, or after
      ``max_steps`` updates. With the paper's learning rate the objective itself keeps growing for tens of
      thousands of steps (the :math:`\lambda_1` term balances the linear growth of :math:`a_{ij} \cdot a'_{ij}`
      only at norms far above the embeddings'), while the direction settles within hundreds. The objective of every
      step is returned as a trace.
    - Adam is the textbook algorithm (as ``torch.optim.Adam``), run for all items at once with per-item step counts,
      so a frozen item neither moves nor ages.

    All examples and all their selected locations are optimized together, in one batched loop; an item that stops
    drops out of the forward passes. When no module of the stack pads, each pass computes only the optimized
    location: the input of the stack's first module is cropped to the location's receptive field (its output there
    is the same, the other locations are never computed). When, moreover, that module reads every token position of
    the embedding's output unchanged (checked once per call with seeded random embeddings: up to the transpose to
    channels first and padding or cropping at the end, as in a text CNN whose dropout is off in evaluation mode),
    each sentence runs once per pass and the optimized columns go in at the cropped input instead of the embedding's
    output, so no tensor of a whole sentence carries a gradient; the result is the same. The model is never changed:
    dropout in training mode is refused (call ``model.eval()`` first), and the hooks act only in the calling thread
    and are removed when the call ends, also when it raises.

    Args:
        model: the classifier taking token ids (and ``additional_forward_args``), returning logits :math:`(N, C)`.
        layer: the hidden layer, returning :math:`(N, C, L)` (the paper: the first convolution's activations,
            ``model.activations[0]`` of a :class:`~captum_text_ext.models.TextCNN`), or :math:`(N, C, L, 1)` /
            :math:`(N, C, 1, L)` (a convolution ``model.convs[j]`` of a :class:`~captum_text_ext.models.KimCNN`).
        embedding: the model's ``nn.Embedding``, called once per forward pass on the token ids (or their transpose).
        vocabulary: maps ids to words (a :class:`TokenVocabulary` or a sequence of strings).
        lambda1: :math:`\lambda_1` (paper: 0.004 for MR, 0.002 for AG News).
        lambda2: :math:`\lambda_2` (paper: 0.02 for MR, 0.01 for AG News).
        lr: Adam's learning rate (paper: 2e-4).
        betas: Adam's :math:`(\beta_1, \beta_2)` (paper: (0.9, 0.999)).
        eps: Adam's :math:`\epsilon`.
        max_steps: the most updates per item.
        tol: the convergence tolerance on :math:`1 - \cos` between two readouts ``window`` steps apart.
        window: the steps between two readouts of the convergence criterion.
        seed: seeds the start :math:`X_0`.
        stack: the spatial modules up to ``layer`` (see :class:`~captum_text_ext.HiddenUnitSaliency`).
        channel_dim: 1 for a layer output :math:`(N, C, L)`, 2 for :math:`(N, L, C)`.
        location_dim: for a 4-D layer output (``model.convs[j]`` of a :class:`~captum_text_ext.models.KimCNN`):
            2 for :math:`(N, C, L, 1)`, 3 for :math:`(N, C, 1, L)`, ``None`` to take the non-singleton one (see
            :class:`~captum_text_ext.HiddenUnitSaliency`).

    Raises:
        TypeError: when ``embedding`` is not an ``nn.Embedding``.
        ValueError: for negative regularization weights, a non-positive ``lr``, ``max_steps`` or ``window``, or a
            vocabulary whose size differs from the embedding's.

    References:
        H. Yuan, Y. Chen, X. Hu, S. Ji. Interpreting Deep Models for Text Analysis via Optimization and
        Regularization Methods. AAAI 2019. https://doi.org/10.1609/aaai.v33i01.33015717

    Examples:
        >>> from captum_text_ext.models import TextCNN
        >>> _ = torch.manual_seed(0)
        >>> model = TextCNN(vocab_size=8, embedding_dim=4, num_classes=2, channels=(3,), kernel_sizes=(2,))
        >>> words = ["<pad>", "<unk>", "a", "b", "c", "d", "e", "f"]
        >>> hunt = HiddenUnitOptimization(model, model.activations[0], model.embedding, words, lambda1=0.004,
        ...                               lambda2=0.02, lr=0.05, max_steps=50)
        >>> result = hunt.optimize(torch.tensor([[2, 3, 4, 5]]), n_locations=2, n_neighbors=3)
        >>> result.location.shape, result.vectors.shape, len(result.neighbors.words[0])
        (torch.Size([2]), torch.Size([2, 2, 4]), 3)
    """

    def __init__(
        self,
        model: Callable[..., Tensor],
        layer: nn.Module,
        embedding: nn.Embedding,
        vocabulary: VocabularyLike,
        lambda1: float,
        lambda2: float,
        lr: float = 2e-4,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        max_steps: int = 1000,
        tol: float = 1e-4,
        window: int = 25,
        seed: int = 0,
        stack: Optional[Sequence[nn.Module]] = None,
        channel_dim: int = 1,
        location_dim: Optional[int] = None,
    ) -> None:
        if not isinstance(embedding, nn.Embedding):
            raise TypeError(f"Expected `embedding` to be an nn.Embedding, but got {type(embedding).__name__}")
        if lambda1 < 0 or lambda2 < 0:
            raise ValueError(f"Expected `lambda1` and `lambda2` >= 0, but got {lambda1} and {lambda2}")
        if lr <= 0 or max_steps < 1 or window < 1 or tol < 0:
            raise ValueError(
                f"Expected `lr` > 0, `max_steps` >= 1, `window` >= 1 and `tol` >= 0, but got {lr}, {max_steps}, "
                f"{window} and {tol}"
            )
        if len(_itos(vocabulary)) != embedding.num_embeddings:
            raise ValueError(
                f"Expected a vocabulary of {embedding.num_embeddings} words (the embedding's size), but got "
                f"{len(_itos(vocabulary))}"
            )
        self._saliency = HiddenUnitSaliency(model, layer, stack, channel_dim, location_dim)
        self._embedding, self._vocabulary = embedding, vocabulary
        self._lambda1, self._lambda2, self._lr, self._betas, self._eps = float(lambda1), float(lambda2), lr, betas, eps
        self._max_steps, self._tol, self._window, self._seed = max_steps, tol, window, seed

    # The constructor's arguments, checked there, are read-only: a new setting needs a new object.

    @property
    def model(self) -> Callable[..., Tensor]:
        """The classifier (the ``forward_func`` of :attr:`saliency`)."""
        forward: Callable[..., Tensor] = self._saliency.forward_func
        return forward

    @property
    def layer(self) -> nn.Module:
        """The hidden layer (the ``layer`` of :attr:`saliency`)."""
        layer: nn.Module = self._saliency.layer
        return layer

    @property
    def stack(self) -> Optional[List[nn.Module]]:
        """The spatial modules up to the layer (:attr:`HiddenUnitSaliency.stack`)."""
        return self._saliency.stack

    @property
    def channel_dim(self) -> int:
        """1 for a layer output :math:`(N, C, L)`, 2 for :math:`(N, L, C)`."""
        return self._saliency.channel_dim

    @property
    def location_dim(self) -> Optional[int]:
        """For a 4-D layer output: the dimension of its locations (2 or 3), or ``None``."""
        return self._saliency.location_dim

    @property
    def saliency(self) -> HiddenUnitSaliency:
        """The :class:`~captum_text_ext.HiddenUnitSaliency` that ranks the locations."""
        return self._saliency

    @property
    def embedding(self) -> nn.Embedding:
        """The model's embedding."""
        return self._embedding

    @property
    def vocabulary(self) -> VocabularyLike:
        """Maps ids to words."""
        return self._vocabulary

    @property
    def lambda1(self) -> float:
        r""":math:`\lambda_1`."""
        return self._lambda1

    @property
    def lambda2(self) -> float:
        r""":math:`\lambda_2`."""
        return self._lambda2

    @property
    def lr(self) -> float:
        """Adam's learning rate."""
        return self._lr

    @property
    def betas(self) -> Tuple[float, float]:
        r"""Adam's :math:`(\beta_1, \beta_2)`."""
        return self._betas

    @property
    def eps(self) -> float:
        r"""Adam's :math:`\epsilon`."""
        return self._eps

    @property
    def max_steps(self) -> int:
        """The most updates per item."""
        return self._max_steps

    @property
    def tol(self) -> float:
        """The convergence tolerance."""
        return self._tol

    @property
    def window(self) -> int:
        """The steps between two readouts of the convergence criterion."""
        return self._window

    @property
    def seed(self) -> int:
        """Seeds the start :math:`X_0`."""
        return self._seed

    @property
    def field_width(self) -> int:
        """:math:`R`, the widest receptive field of a location (known once the stack is)."""
        length, width = 64, -1
        while True:
            fields = self.saliency.receptive_fields(length)
            widest = int((fields[:, 1] - fields[:, 0]).max())
            if widest == width:
                return width
            length, width = length * 2, widest

    def start_vectors(self, rank: int) -> Tensor:
        """The float64 Xavier-uniform :math:`(R, E)` start of the location ranked ``rank``, seeded by
        ``(seed, rank)``."""
        state = np.random.SeedSequence([self.seed, rank]).generate_state(1, dtype=np.uint64)[0]
        generator = torch.Generator().manual_seed(int(state))
        start = torch.empty(self.field_width, self.embedding.embedding_dim, dtype=torch.float64)
        return torch.nn.init.xavier_uniform_(start, generator=generator)

    def objective(self, activation: Tensor, target: Tensor, vectors: Tensor, mask: Tensor) -> Tensor:
        r""":math:`J = a_{ij} \cdot a'_{ij} - \lambda_1 \|\widehat X_0\|^2 + \lambda_2 \mathrm{Sim}(\widehat X_0)`
        per item.

        Args:
            activation: :math:`(B, C)` :math:`a'_{ij}`.
            target: :math:`(B, C)` :math:`a_{ij}`.
            vectors: :math:`(B, R, E)` the columns of :math:`X_0`.
            mask: :math:`(B, R)` the columns of :math:`\widehat X_0`.
        """
        weights = mask.to(vectors.dtype).unsqueeze(-1)
        squared = (vectors * vectors * weights).sum(dim=(1, 2))
        unit = torch.nn.functional.normalize(vectors, dim=-1, eps=1e-30) * weights
        summed = unit.sum(dim=1)
        similarity = (summed * summed).sum(dim=1) / weights.sum(dim=(1, 2))
        return (activation * target).sum(dim=1) - self.lambda1 * squared + self.lambda2 * similarity

    def optimize(
        self,
        inputs: Tensor,
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
        n_locations: int = 3,
        n_neighbors: int = 5,
    ) -> HiddenUnitOptimizationResult:
        """Select, optimize and read the top ``n_locations`` locations of every example (see the class).

        Args:
            inputs: token ids :math:`(N, T)`.
            target: Captum's target forms; ``None``: the predicted class (the paper).
            additional_forward_args: passed to the model after the token ids (e.g. lengths); tensors whose first
                dimension is :math:`N` are indexed per item.
            n_locations: locations per example (fewer when fewer locations are eligible, see the class).
            n_neighbors: nearest words per location.

        Returns:
            A :class:`HiddenUnitOptimizationResult`.

        Raises:
            ValueError: for inputs that are not token ids :math:`(N, T)`, ``n_locations < 1``, or what
                :class:`~captum_text_ext.HiddenUnitSaliency` raises.
        """
        if not isinstance(inputs, Tensor) or inputs.dim() != 2 or inputs.is_floating_point():
            raise ValueError(f"Expected `inputs` to be token ids of shape (N, T), but got {getattr(inputs, 'shape', inputs)}")
        if n_locations < 1:
            raise ValueError(f"Expected `n_locations` >= 1, but got {n_locations}")
        saliency, classes, seen = self.saliency.run(inputs, target, additional_forward_args, self.embedding)
        assert seen.embeddings is not None
        fields = self.saliency.receptive_fields(seen.seq_len).to(inputs.device)
        example, rank, location, columns, mask = self._select(inputs, saliency, fields, n_locations)
        vectors = torch.stack([self.start_vectors(int(r)) for r in range(n_locations)]).to(seen.embeddings)[rank]
        targets = seen.activations[example, :, location]
        vectors, trace, steps, converged = self._ascend(
            inputs, additional_forward_args, seen.embeddings, example, location, columns, mask, vectors, targets
        )
        x_overall = self._overall(vectors, mask)
        neighbors = nearest_words(x_overall, self.embedding.weight, self.vocabulary, n_neighbors)
        final = trace.gather(1, steps.unsqueeze(1)).squeeze(1) if len(steps) else trace.new_zeros(0)
        return HiddenUnitOptimizationResult(
            saliency.detach(), classes, fields, example, rank, location, columns, mask, vectors, x_overall, final,
            trace, steps, converged, neighbors,
        )

    def _select(
        self, inputs: Tensor, saliency: Tensor, fields: Tensor, n_locations: int
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        tokens = inputs.shape[1]
        padding_idx = self.embedding.padding_idx
        is_token = inputs != padding_idx if padding_idx is not None else torch.ones_like(inputs, dtype=torch.bool)
        positions = fields[:, :1] + torch.arange(self.field_width, device=inputs.device)  # (L, R)
        in_field = positions < fields[:, 1:]
        on_input = positions < tokens
        clamped = positions.clamp(max=tokens - 1)
        column_ok = in_field & on_input & is_token[:, clamped]  # (N, L, R)
        inside = (column_ok == in_field).all(dim=2) & in_field.any(dim=1)
        valid = torch.where(inside.any(dim=1, keepdim=True), inside, column_ok.any(dim=2))
        scores = saliency.masked_fill(~valid, -math.inf)
        count = min(n_locations, scores.shape[1])
        top = scores.topk(count, dim=1).indices  # (N, count)
        keep = valid.gather(1, top)
        example = torch.arange(inputs.shape[0], device=inputs.device).unsqueeze(1).expand_as(top)[keep]
        rank = torch.arange(count, device=inputs.device).expand_as(top)[keep]
        location = top[keep]
        return example, rank, location, positions[location], column_ok[example, location]

    def _ascend(
        self,
        inputs: Tensor,
        additional_forward_args: Optional[object],
        embeddings: Tensor,
        example: Tensor,
        location: Tensor,
        columns: Tensor,
        mask: Tensor,
        vectors: Tensor,
        targets: Tensor,
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        count = len(example)
        trace = torch.full((count, self.max_steps + 1), math.nan, dtype=vectors.dtype, device=vectors.device)
        steps = torch.zeros(count, dtype=torch.long, device=vectors.device)
        converged = torch.zeros(count, dtype=torch.bool, device=vectors.device)
        found = vectors.clone()
        if not count:
            return found, trace, steps, converged
        adam = _ActiveAdam(vectors, self.lr, self.betas, self.eps)
        args = format_forward_args(additional_forward_args)
        active = torch.arange(count, device=vectors.device)
        snapshot = vectors.new_zeros(count, vectors.shape[2])
        stack = self.saliency.stack
        assert stack is not None
        unpadded = all(window_geometry(module, self.saliency.axis)[4] == 0 for module in stack)
        at_first_module = unpadded and self._reads_embeddings_unchanged(inputs, args, stack[0])
        with self.saliency.deterministic():

            def items(chosen: Tensor) -> _ItemForward:
                return self._item_forward(inputs, args, embeddings, unpadded, at_first_module, example[chosen],
                                          location[chosen], columns[chosen], mask[chosen])

            batch = items(active)
            for step in range(self.max_steps + 1):
                leaf = adam.x.detach().requires_grad_(True)
                with torch.enable_grad():
                    value = self.objective(batch.activation(leaf), targets[active], leaf, mask[active])
                    (grad,) = torch.autograd.grad(value.sum(), leaf)
                trace[active, step] = value.detach()
                steps[active] = step
                done = torch.zeros_like(active, dtype=torch.bool)
                if step % self.window == 0:
                    overall = self._overall(adam.x, mask[active])
                    if step:
                        done = 1 - torch.nn.functional.cosine_similarity(overall, snapshot[active], dim=1) <= self.tol
                        converged[active[done]] = True
                    snapshot[active] = overall
                if step == self.max_steps:
                    found[active] = adam.x
                    break
                if bool(done.any()):
                    found[active[done]] = adam.x[done]
                    moving = ~done
                    adam.keep(moving)
                    grad, active = grad[moving], active[moving]
                    if not len(active):
                        break
                    batch = items(active)
                adam.step(grad)
        return found, trace, steps, converged

    @staticmethod
    def _overall(vectors: Tensor, mask: Tensor) -> Tensor:
        """Eq. 8: the mean of the optimized columns, :math:`(B, E)`."""
        weights = mask.to(vectors.dtype).unsqueeze(-1)
        return (vectors * weights).sum(1) / weights.sum(1).clamp(min=1)

    def _item_forward(
        self, inputs: Tensor, args: Tuple[object, ...], embeddings: Tensor, unpadded: bool, at_first_module: bool,
        example: Tensor, location: Tensor, columns: Tensor, mask: Tensor,
    ) -> _ItemForward:
        """The forward pass of these items (what does not change between steps is indexed once)."""
        padded = index = rows = None
        if at_first_module:
            example, rows = torch.unique(example, return_inverse=True)
        else:
            base = embeddings[example]
            padded = torch.cat([base, base.new_zeros(base.shape[0], 1, base.shape[2])], dim=1)
            index = torch.where(mask, columns, torch.full_like(columns, base.shape[1]))
        return _ItemForward(self, inputs[example], _index_args(args, example, inputs.shape[0]), location, columns,
                            mask, unpadded, padded, index, rows)

    def _reads_embeddings_unchanged(self, inputs: Tensor, args: Tuple[object, ...], first: nn.Module) -> bool:
        """Whether ``first`` reads every token position of the embedding's output exactly as it is (up to the
        transpose to channels first, and padding or cropping at the end): checked by putting in seeded random
        embeddings, so a glue that scales, mixes positions or applies a nonlinearity fails it."""
        seen: List[Tensor] = []
        generator = torch.Generator().manual_seed(0)
        shape = (*inputs.shape[:2], self.embedding.embedding_dim)
        probe = torch.randn(shape, generator=generator, dtype=torch.float64).to(self.embedding.weight)

        hooks = self.saliency.hooks(found_axis=True, stop_after_layer=True, leaf=False, embedding=self.embedding,
                                    token_ids=inputs, replace_embeddings=lambda time_first: probe)
        with hooks, self.saliency.deterministic(), torch.no_grad():
            hooks.hooks.forward_pre(first, lambda module, given: seen.append(given[0].detach()))
            try:
                self.model(inputs, *args)
            except StopForward:
                pass
        read = from_module_layout(first, self.saliency.axis, seen[0]) if seen else None
        if read is None or read.shape[0] != probe.shape[0] or read.shape[2] != probe.shape[2]:
            return False
        width = min(read.shape[1], probe.shape[1])
        padding_idx = self.embedding.padding_idx
        ids = inputs[:, :width]
        tokens = ids != padding_idx if padding_idx is not None else torch.ones_like(ids, dtype=torch.bool)
        return torch.equal(read[:, :width][tokens], probe[:, :width][tokens])

    def matching_rate(
        self,
        dataset: Union[Tensor, Iterable[Tensor]],
        n_locations: int = 3,
        n_neighbors: int = 5,
        forward_args: Optional[Callable[[Tensor], object]] = None,
        batch_size: int = 256,
    ) -> MatchingRate:
        r"""Table 4: the share of sentences :math:`X` whose interpretation :math:`X'` gets the class :math:`X` gets.

        :math:`X'` is the ``n_neighbors`` words of the top location (best first), then of the second, … of the
        third (duplicates kept), padded with the padding id like any input.

        Args:
            dataset: token ids :math:`(N, T)`, or an iterable of such batches.
            n_locations: locations per sentence (paper: 3).
            n_neighbors: words per location (paper: 5).
            forward_args: builds ``additional_forward_args`` from token ids (e.g. lengths), for the sentences and for
                their interpretations; ``None``: the model takes the token ids alone.
            batch_size: sentences per batch when ``dataset`` is one tensor.

        Returns:
            A :class:`MatchingRate`.
        """
        batches = torch.split(dataset, batch_size) if isinstance(dataset, Tensor) else dataset
        pad = self.embedding.padding_idx if self.embedding.padding_idx is not None else 0
        matches: List[Tensor] = []
        classes: List[Tensor] = []
        found: List[Tensor] = []
        interpretations: List[List[int]] = []
        for ids in batches:
            args = forward_args(ids) if forward_args is not None else None
            result = self.optimize(ids, None, args, n_locations, n_neighbors)
            words = [result.interpretation_ids(n) for n in range(ids.shape[0])]
            width = max([len(w) for w in words] + [1])
            rows = torch.full((ids.shape[0], width), pad, dtype=ids.dtype, device=ids.device)
            for n, w in enumerate(words):
                rows[n, : len(w)] = torch.as_tensor(w, dtype=ids.dtype)
            has_words = torch.tensor([len(w) > 0 for w in words], device=ids.device)
            predicted = torch.full_like(result.classes, -1)
            if bool(has_words.any()):
                kept = rows[has_words]
                with self.saliency.deterministic(), torch.no_grad():
                    out_args = format_forward_args(forward_args(kept) if forward_args is not None else None)
                    predicted[has_words] = self.model(kept, *out_args).argmax(dim=1)
            matches.append(predicted == result.classes)
            classes.append(result.classes)
            found.append(predicted)
            interpretations.extend(words)
        matched = torch.cat(matches)
        return MatchingRate(
            float(matched.double().mean()), matched, torch.cat(classes), torch.cat(found), interpretations
        )

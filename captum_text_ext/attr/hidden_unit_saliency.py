r"""HiddenUnitSaliency: which spatial locations of a text CNN's hidden layer matter for a decision
(Yuan et al., 2019, Eq. 1–3), as a Captum layer attribution."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

import torch
from captum._utils.common import _format_additional_forward_args, _format_tensor_into_tuples
from captum._utils.typing import TargetType, TensorOrTupleOfTensorsGeneric
from captum.attr import GradientAttribution, LayerAttribution
from torch import Tensor, nn

from captum_text_ext.attr._log_usage import log_usage
from captum_text_ext.attr._targets import select_scores
from captum_text_ext.attr.receptive_fields import (
    SPATIAL_MODULES,
    chain_of,
    position_dim,
    stack_receptive_fields,
    window_geometry,
)
from captum_text_ext.decomposition.guard import RandomOpCheck
from captum_text_ext.decomposition.hooks import ScopedHooks, modules_of

__all__ = ["HiddenUnitSaliency"]


class StopForward(Exception):
    """Raised by a forward hook to end a forward pass once the layer of interest has run."""


@dataclass
class LayerPass:
    """What one forward pass through the model saw.

    Attributes:
        output: the model's output, ``None`` when the pass stopped at the layer.
        activations: the layer's output as :math:`(N, C, L)` (channels moved to dimension 1, a singleton spatial
            dimension dropped).
        raw_activations: the layer's output as the layer returned it (the leaf the gradient is taken at).
        seq_len: the number of positions the first module of the stack read.
        embeddings: the embedding's output as :math:`(N, T, E)` when an embedding was watched.
        embedding_time_first: whether the embedding ran on the transposed token ids (:math:`(T, N)`).
    """

    output: Optional[Tensor]
    activations: Tensor
    raw_activations: Tensor
    seq_len: int
    embeddings: Optional[Tensor] = None
    embedding_time_first: bool = False


class LayerHooks:
    """Hooks for one forward pass: capture ``layer``'s output (as a gradient leaf, or as it is), record the spatial
    modules that run before it (``watch``) to find or check the stack, optionally watch or replace an embedding's
    output, optionally stop after the layer, optionally ``crop`` the input of the stack's first module to ``width``
    positions from a start per row (``(module, start (B,), width)``, along the positions of ``axis``; row ``b``
    taken from the input's row ``crop_rows[b]``, default ``b``) and ``substitute`` what the crop gives (a function of
    the cropped input). All hooks act only in the calling thread and are removed on exit, also after an exception.

    The layer's output is :math:`(N, C, L)` (channels in ``channel_dim``) or :math:`(N, C, L, 1)` /
    :math:`(N, C, 1, L)` (an ``nn.Conv2d`` over the embeddings as an image): its locations are in ``location_dim``
    (2 or 3), or in the one non-singleton spatial dimension when ``location_dim`` is ``None``."""

    def __init__(
        self,
        layer: nn.Module,
        watch: Sequence[nn.Module],
        explicit_stack: bool,
        channel_dim: int,
        location_dim: Optional[int] = None,
        axis: int = 0,
        stop_after_layer: bool = False,
        leaf: bool = True,
        embedding: Optional[nn.Embedding] = None,
        token_ids: Optional[Tensor] = None,
        replace_embeddings: Optional[Callable[[bool], Tensor]] = None,
        crop: Optional[Tuple[nn.Module, Tensor, int]] = None,
        substitute: Optional[Callable[[Tensor], Tensor]] = None,
        crop_rows: Optional[Tensor] = None,
    ) -> None:
        self.layer, self.watch, self.explicit_stack, self.channel_dim = layer, list(watch), explicit_stack, channel_dim
        self.location_dim, self.crop_axis = location_dim, axis
        self.stop_after_layer, self.leaf = stop_after_layer, leaf
        self.embedding, self.token_ids, self.replace_embeddings = embedding, token_ids, replace_embeddings
        self.crop, self.substitute, self.crop_rows = crop, substitute, crop_rows
        self.hooks = ScopedHooks()
        self.ran: List[Tuple[nn.Module, Tuple[int, ...], Tuple[int, ...]]] = []
        self.raw: Optional[Tensor] = None
        self.location = -1
        self.embeddings: Optional[Tensor] = None
        self.time_first = False

    def __enter__(self) -> "LayerHooks":
        try:
            for module in self.watch:
                self.hooks.forward(module, self._record_lengths)
            self.hooks.forward(self.layer, self._capture)
            if self.embedding is not None:
                self.hooks.forward(self.embedding, self._embedding_hook)
            if self.crop is not None:
                self.hooks.forward_pre(self.crop[0], self._crop_input)
        except BaseException:
            self.hooks.remove()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.hooks.remove()

    def _crop_input(self, module: nn.Module, args: Tuple[Any, ...]) -> Tuple[Any, ...]:
        assert self.crop is not None
        _, start, width = self.crop
        x = args[0]
        positions = start.to(x.device).unsqueeze(1) + torch.arange(width, device=x.device)
        source = x if self.crop_rows is None else x[self.crop_rows.to(x.device)]
        moved = source.movedim(position_dim(module, self.crop_axis) % x.dim(), -1)
        index = positions.view(positions.shape[0], *(1,) * (moved.dim() - 2), width).expand(*moved.shape[:-1], width)
        cropped = moved.gather(-1, index).movedim(-1, position_dim(module, self.crop_axis) % x.dim())
        return (cropped if self.substitute is None else self.substitute(cropped), *args[1:])

    def _record_lengths(self, module: nn.Module, args: Tuple[Any, ...], output: Any) -> None:
        if self.raw is None:
            self.ran.append((module, tuple(args[0].shape), tuple(output.shape)))

    @property
    def axis(self) -> int:
        """The spatial axis of an ``nn.Conv2d`` layer that holds the locations (0 for a 1-D layer)."""
        return self.location - 2 if self.location in (2, 3) and self.captured().dim() == 4 else 0

    def _positions_ran(self) -> List[Tuple[nn.Module, int, int]]:
        """``(module, positions read, positions returned)`` of each spatial module that ran before the layer."""
        return [
            (module, int(seen_in[position_dim(module, self.axis)]), int(seen_out[position_dim(module, self.axis)]))
            for module, seen_in, seen_out in self.ran
        ]

    def _embedding_hook(self, module: nn.Module, args: Tuple[Any, ...], output: Tensor) -> Optional[Tensor]:
        ids, token_ids = args[0], self.token_ids
        if self.embeddings is not None:
            raise ValueError("Expected the embedding to be called once per forward pass, but it was called again")
        if token_ids is not None and ids.shape == token_ids.shape and torch.equal(ids, token_ids):
            self.time_first = False
        elif token_ids is not None and token_ids.dim() == 2 and torch.equal(ids, token_ids.t()):
            self.time_first = True
        else:
            raise ValueError(
                "Expected the embedding to be called on the input token ids (N, T) or their transpose (T, N), but it "
                f"got a tensor of shape {tuple(ids.shape)}"
            )
        embeddings = output.transpose(0, 1) if self.time_first else output
        self.embeddings = embeddings.detach()
        if self.replace_embeddings is None:
            return None
        replaced = self.replace_embeddings(self.time_first)
        return replaced.transpose(0, 1) if self.time_first else replaced

    def _capture(self, module: nn.Module, args: Tuple[Any, ...], output: Any) -> Any:
        if self.raw is not None:
            raise ValueError(
                f"Expected the layer {type(module).__name__} to be called once per forward pass, but it was called again"
            )
        if not isinstance(output, Tensor) or output.dim() not in (3, 4) or not output.is_floating_point():
            shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise ValueError(
                f"Expected the layer {type(module).__name__} to return a floating-point tensor (N, C, L) "
                f"(channels in dimension {self.channel_dim}) or (N, C, L, 1) / (N, C, 1, L), but got {shape}"
            )
        self.location = 3 - self.channel_dim if output.dim() == 3 else _location_dim(module, output, self.location_dim)
        self.raw = output.detach().requires_grad_(True) if self.leaf else output
        if self.stop_after_layer:
            raise StopForward
        return self.raw

    def captured(self) -> Tensor:
        """The layer's captured output.

        Raises:
            ValueError: when the layer did not run.
        """
        if self.raw is None:
            raise ValueError(f"Expected the layer {type(self.layer).__name__} to run in the forward pass, but it did not")
        return self.raw

    def activations(self) -> Tensor:
        """The captured output as :math:`(N, C, L)`."""
        return self.as_locations(self.captured())

    def as_locations(self, tensor: Tensor) -> Tensor:
        """A tensor shaped like the layer's output, as :math:`(N, C, L)`."""
        if tensor.dim() == 4:
            return tensor.squeeze(5 - self.location)
        return tensor if self.channel_dim == 1 else tensor.transpose(1, 2)

    def stack(self) -> List[nn.Module]:
        """The stack that ran up to the layer, checked to be a chain: the explicit stack, or the one found."""
        ran = self._positions_ran()
        if not self.explicit_stack:
            stack = chain_of(ran, self.layer)
        else:
            stack = [module for module, _, _ in ran]
            if len(stack) != len(self.watch) or any(a is not b for a, b in zip(stack, self.watch)):
                raise ValueError(
                    f"Expected each of the {len(self.watch)} modules of `stack` to run once, in order, before the "
                    f"layer, but {len(stack)} calls ran"
                )
        lengths = {id(module): (seen_in, seen_out) for module, seen_in, seen_out in ran}
        for k, module in enumerate(stack[1:], start=1):
            if lengths[id(module)][0] != lengths[id(stack[k - 1])][1]:
                raise ValueError(
                    f"Expected the stack modules to form a chain, but {type(module).__name__} #{k} read "
                    f"{lengths[id(module)][0]} positions where the module before it returned "
                    f"{lengths[id(stack[k - 1])][1]}"
                )
        locations = int(self.activations().shape[-1])
        if locations != lengths[id(stack[-1])][1]:
            raise ValueError(
                f"Expected the layer's output to have as many locations as the stack's last module returns "
                f"({lengths[id(stack[-1])][1]}), but got {locations}; pass `stack` explicitly"
            )
        return stack

    def seq_len(self) -> int:
        """The positions the stack's first module read."""
        first = self.stack()[0]
        return next(seen_in for module, seen_in, _ in self._positions_ran() if module is first)


def _location_dim(module: nn.Module, output: Tensor, given: Optional[int]) -> int:
    """The dimension of a 4-D layer output :math:`(N, C, L, 1)` / :math:`(N, C, 1, L)` that holds the locations:
    ``given``, else the one spatial dimension that is not a singleton.

    Raises:
        ValueError: when the other spatial dimension is not a singleton, or both are and none was given.
    """
    spatial = tuple(output.shape[2:])
    name = type(module).__name__
    if given is not None:
        if output.shape[5 - given] != 1:
            raise ValueError(
                f"Expected the layer {name} to return (N, C, L, 1) or (N, C, 1, L) with its locations in dimension "
                f"{given} (`location_dim`), but got {tuple(output.shape)}"
            )
        return given
    if spatial == (1, 1):
        raise ValueError(
            f"Expected to tell which dimension of the layer {name}'s output {tuple(output.shape)} holds its locations, "
            "but both spatial dimensions have size 1 (a single location); pass `location_dim=2` for (N, C, L, 1) or "
            "`location_dim=3` for (N, C, 1, L)"
        )
    if 1 not in spatial:
        raise ValueError(
            f"Expected the layer {name} to return (N, C, L, 1) or (N, C, 1, L) (an nn.Conv2d whose kernel spans the "
            f"embedding), but got {tuple(output.shape)}"
        )
    return 2 if spatial[1] == 1 else 3


def format_forward_args(additional_forward_args: Optional[object]) -> Tuple[Any, ...]:
    """Captum's ``additional_forward_args`` as a tuple."""
    formatted = _format_additional_forward_args(additional_forward_args)
    return tuple(formatted) if formatted is not None else ()


def class_indices(output: Tensor, target: TargetType) -> Tensor:
    """The class each example's target selects: the predicted class for ``None``, else Captum's target forms.

    Raises:
        ValueError: for an output that is not :math:`(N, C)`, or a target outside its classes.
    """
    if output.dim() != 2:
        raise ValueError(f"Expected the model to return logits of shape (N, C), but got {tuple(output.shape)}")
    if target is None:
        return output.detach().argmax(dim=1)
    columns = torch.arange(output.shape[1], device=output.device).expand(output.shape[0], -1)
    return select_scores(columns, target).long()


class HiddenUnitSaliency(LayerAttribution, GradientAttribution):
    r"""Saliency of every spatial location of a hidden layer of a text CNN (Yuan et al., 2019, Eq. 1–3).

    The class score :math:`S_c` is approximated to first order in the activations :math:`A_j` of layer :math:`j`
    (one column :math:`a_{ij}` of :math:`C` channels per spatial location :math:`i`):

    .. math::
        S_c \approx \operatorname{Tr}\big(w(A_j)^\top A_j\big) + b, \qquad
        w(A_j) = \frac{\partial S_c}{\partial A_j}, \qquad
        \mathrm{Score}_c(X)_{i,j} = w(A_j)_i \cdot a_{ij}.

    :math:`S_c` is the raw logit of class :math:`c`. ``target=None`` takes the predicted class, as the paper does.
    For a ReLU layer the score of the convolution's output (before the ReLU) and of the ReLU's output are the same:
    the gradient before the ReLU is zero exactly where the activation after it is.

    :meth:`receptive_fields` gives the input positions each location reads, from the kernel, stride, dilation and
    padding of every ``nn.Conv1d`` / ``nn.Conv2d`` / ``nn.MaxPool1d`` / ``nn.AvgPool1d`` of the stack up to ``layer``.

    **Kim CNN.** The CNN of Captum's IMDB and TCAV tutorials (:class:`~captum_text_ext.models.KimCNN`) runs
    ``nn.Conv2d(1, F, (k, E))`` over ``embedding(ids).unsqueeze(1)``; each convolution of its ``ModuleList`` is a
    layer, whose output :math:`(N, F, L, 1)` has its :math:`L` locations in dimension 2 (the positions are read along
    the convolution's height). A 4-D layer output is :math:`(N, C, L, 1)` or :math:`(N, C, 1, L)`: ``location_dim``
    says which (2 or 3); left ``None``, the non-singleton dimension is taken, and an output with a single location
    :math:`(N, C, 1, 1)` (a sentence as short as the kernel) is refused with a message asking for it. The stack is
    passed as ``stack`` or found in each forward pass from the spatial modules that ran before the layer
    (:func:`~captum_text_ext.attr.receptive_fields.chain_of`); every pass checks that it ran as a chain (each module
    reads as many positions as the one before returns, the layer has as many locations as the last returns). Positions are those the stack's first module
    reads: when the model pads or crops its embeddings, it must do so at the end (as
    :class:`~captum_text_ext.models.TextCNN` does).

    The model is never changed: dropout in training mode is refused (call ``model.eval()`` first), and the hooks
    removed afterwards, also when the call raises.

    Args:
        model: the classifier, taking ``inputs`` (e.g. token ids) and ``additional_forward_args``, returning logits
            :math:`(N, C)`; an ``nn.Module`` or a bound method of one.
        layer: the hidden layer, a module returning :math:`(N, C, L)` (e.g. ``model.activations[0]`` of a
            :class:`~captum_text_ext.models.TextCNN`, or an ``nn.Conv1d``), or :math:`(N, C, L, 1)` /
            :math:`(N, C, 1, L)` (``model.convs[j]`` of a :class:`~captum_text_ext.models.KimCNN`).
        stack: the spatial modules from the embeddings to ``layer`` in order; found in each forward pass when
            ``None``.
        channel_dim: 1 for a layer output :math:`(N, C, L)`, 2 for :math:`(N, L, C)`.
        location_dim: for a 4-D layer output (channels in dimension 1): 2 for :math:`(N, C, L, 1)`, 3 for
            :math:`(N, C, 1, L)`, ``None`` to take the non-singleton one in each call.

    Raises:
        TypeError: when ``model`` is not callable.
        ValueError: when no stack can be found, ``channel_dim`` is not 1 or 2, or ``location_dim`` not ``None``,
            2 or 3.

    References:
        H. Yuan, Y. Chen, X. Hu, S. Ji. Interpreting Deep Models for Text Analysis via Optimization and
        Regularization Methods. AAAI 2019. https://doi.org/10.1609/aaai.v33i01.33015717

    Examples:
        >>> from captum_text_ext.models import TextCNN
        >>> _ = torch.manual_seed(0)
        >>> model = TextCNN(vocab_size=20, embedding_dim=4, num_classes=2, channels=(3, 2), kernel_sizes=(3, 2))
        >>> saliency = HiddenUnitSaliency(model, model.activations[0])
        >>> saliency.attribute(torch.tensor([[2, 3, 4, 5, 6, 7]])).shape   # 6 tokens, width 3: 4 locations
        torch.Size([1, 4])
        >>> saliency.receptive_fields(6).tolist()
        [[0, 3], [1, 4], [2, 5], [3, 6]]
    """

    def __init__(
        self,
        model: Callable[..., Tensor],
        layer: nn.Module,
        stack: Optional[Sequence[nn.Module]] = None,
        channel_dim: int = 1,
        location_dim: Optional[int] = None,
    ) -> None:
        if not callable(model):
            raise TypeError(f"Expected `model` to be an nn.Module or a callable, but got {type(model).__name__}")
        if not isinstance(layer, nn.Module):
            raise TypeError(f"Expected `layer` to be an nn.Module, but got {type(layer).__name__}")
        if channel_dim not in (1, 2):
            raise ValueError(f"Expected `channel_dim` to be 1 or 2, but got {channel_dim}")
        if location_dim not in (None, 2, 3):
            raise ValueError(f"Expected `location_dim` to be None, 2 or 3, but got {location_dim}")
        LayerAttribution.__init__(self, model, layer)
        GradientAttribution.__init__(self, model)
        self._given_stack: Optional[Tuple[nn.Module, ...]] = None if stack is None else tuple(stack)
        for module in self._given_stack or ():
            window_geometry(module)  # raises for a module whose receptive field is not known
        self._found_stack: Optional[List[nn.Module]] = None
        self._found_axis = 0
        self._channel_dim, self._location_dim = channel_dim, location_dim
        self._watched()  # raises now for a forward function whose stack cannot be found

    @property
    def roots(self) -> List[nn.Module]:
        """The modules behind ``forward_func``, read at every call (what a call freezes and restores)."""
        return modules_of(self.forward_func)

    @property
    def stack(self) -> Optional[List[nn.Module]]:
        """The spatial modules from the embeddings to the layer: the ``stack`` passed to the constructor, else the
        one the last forward pass found (``None`` before the first)."""
        if self._given_stack is not None:
            return list(self._given_stack)
        return None if self._found_stack is None else list(self._found_stack)

    @property
    def channel_dim(self) -> int:
        """1 for a layer output :math:`(N, C, L)`, 2 for :math:`(N, L, C)` (set by the constructor)."""
        return self._channel_dim

    @property
    def location_dim(self) -> Optional[int]:
        """For a 4-D layer output: the dimension of its locations (2 or 3), or ``None`` (found in each call)."""
        return self._location_dim

    @property
    def axis(self) -> int:
        """The spatial axis of the stack's ``nn.Conv2d`` modules that holds the positions: ``location_dim - 2``
        when given, else the one the last forward pass found (0 for 1-D stacks)."""
        return self._location_dim - 2 if self._location_dim is not None else self._found_axis

    def _watched(self) -> List[nn.Module]:
        """The modules whose calls a forward pass records: the given stack, else every spatial module of the
        model's modules."""
        if self._given_stack is not None:
            return list(self._given_stack)
        roots = self.roots
        if not roots:
            raise ValueError("Expected `stack` for a forward function that is not an nn.Module or its method")
        watch: List[nn.Module] = []
        for root in roots:
            watch.extend(m for m in root.modules() if isinstance(m, SPATIAL_MODULES) and m not in watch)
        return watch

    @property
    def multiplies_by_inputs(self) -> bool:
        return True

    @log_usage
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
    ) -> Tensor:
        r"""The saliency :math:`\mathrm{Score}_c(X)_{i,j}` of every location :math:`i` of the layer.

        Args:
            inputs: what the model takes first, e.g. token ids :math:`(N, T)` (a tensor or a tuple of tensors).
            target: Captum's target forms (an int, a list or 1-D tensor with one class per example); ``None``: the
                predicted class.
            additional_forward_args: passed to the model after ``inputs`` (e.g. lengths).

        Returns:
            :math:`(N, L)` saliency per location, in the model's dtype.

        Raises:
            ValueError: for a layer that does not return :math:`(N, C, L)`, a stack that did not run as a chain, an
                output that is not :math:`(N, C)` or a bad target.
        """
        return self.run(inputs, target, additional_forward_args)[0]

    def attribute_future(self) -> None:
        """Not supported.

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError("attribute_future is not implemented for HiddenUnitSaliency")

    def receptive_fields(self, seq_len: int) -> Tensor:
        """The ``[start, end)`` input positions of every location of the layer, for an input of ``seq_len`` positions
        (as the stack's first module reads it), as an ``(L, 2)`` int64 tensor.

        Raises:
            ValueError: when the stack is not known yet: it was not passed and no forward pass has found it.
        """
        stack = self.stack
        if stack is None:
            raise ValueError(
                "Expected the stack to be known: pass `stack` to the constructor or call `attribute` once first"
            )
        return stack_receptive_fields(stack, seq_len, self.axis)

    def deterministic(self) -> RandomOpCheck:
        """A context that refuses random ops in the forward pass (dropout in training mode): the model is never
        switched to evaluation mode for you."""
        return RandomOpCheck(type(self).__name__)

    def hooks(self, found_axis: bool = False, **kwargs: Any) -> LayerHooks:
        """:class:`LayerHooks` for this layer and stack (``kwargs`` as :class:`LayerHooks` takes them); with
        ``found_axis``, a 4-D layer output's locations are taken on the :attr:`axis` a pass found (for passes whose
        output may hold a single location, such as one cropped to a receptive field)."""
        location_dim = 2 + self.axis if found_axis else self._location_dim
        return LayerHooks(
            self.layer, self._watched(), self._given_stack is not None, self._channel_dim, location_dim, self.axis,
            **kwargs,
        )

    def run(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType,
        additional_forward_args: Optional[object],
        embedding: Optional[nn.Embedding] = None,
    ) -> Tuple[Tensor, Tensor, LayerPass]:
        """Saliency ``(N, L)``, the class of each example ``(N,)`` and what the pass saw (the embedding's output too,
        when ``embedding`` is given)."""
        formatted = _format_tensor_into_tuples(inputs)
        assert formatted is not None
        args = format_forward_args(additional_forward_args)
        hooks = self.hooks(embedding=embedding, token_ids=formatted[0])
        with self.deterministic(), torch.enable_grad(), hooks:
            output = self.forward_func(*formatted, *args)
            classes = class_indices(output, target)
            scores = output.gather(1, classes.unsqueeze(1)).sum()
            raw = hooks.captured()
            if not scores.requires_grad:
                raise ValueError("Expected the model's output to depend on the layer's output, but it does not")
            (gradient,) = torch.autograd.grad(scores, raw)
            self._found_stack, self._found_axis = hooks.stack(), hooks.axis
            seq_len = hooks.seq_len()
        saliency = (hooks.as_locations(gradient) * hooks.activations().detach()).sum(dim=1)
        activations = hooks.activations().detach()
        layer_pass = LayerPass(output.detach(), activations, raw.detach(), seq_len, hooks.embeddings, hooks.time_first)
        return saliency, classes, layer_pass

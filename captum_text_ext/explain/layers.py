"""Where every method of the registry attributes: the output of a model's named token-embedding layer.

A model the registry explains takes right-padded token ids and their lengths, ``model(token_ids, lengths)``, and
returns logits; somewhere inside it one module turns the ids into vectors (an ``nn.Embedding``, or a transformer's
embeddings module that adds positions and normalizes). :func:`embedding_layer` finds that module (or takes its
qualified name); every method then attributes to the layer's output, :math:`(N, T, E)`:

- the methods of this package through their ``Layer…`` variants (``LayerLSTMLRP``, ``LayerContextualDecomposition``,
  ``LayerGradientLinearSurrogate``), which run the model on the token ids and start at the layer's output;
- Captum's methods through :class:`LayerForward`, the model's forward pass *from* the layer's output (the layer's
  own output replaced by the given tensor, which is what Captum's layer methods do inside), so that each keeps its
  baseline *at the layer*: zero embeddings for Integrated Gradients, DeepLift and the perturbation methods, as the
  registry's settings state. (Captum's ``LayerIntegratedGradients`` and ``LayerDeepLift`` take their baselines as
  token ids, which cannot express a zero layer output; Captum has no layer variant of Occlusion, Shapley value
  sampling or Lime.)

A :class:`LayerBatch` carries one batch to a method. Its ``layer_output``, when given, replaces the layer's output
for every method (:func:`replaced_output`): the leaderboard explains perturbed embeddings this way. Every hook is a
:class:`~captum_text_ext.decomposition.hooks.ScopedHooks` hook, acting only in the calling thread and removed when the
call returns or raises; nothing else about the model changes.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Iterator, List, Optional, Tuple

import torch
from torch import Tensor, nn

from captum_text_ext.decomposition.hooks import ScopedHooks
from captum_text_ext.explain.outputs import OUTPUTS, check_output, largest_other_class

__all__ = [
    "LayerBatch",
    "LayerForward",
    "capture_layer_output",
    "embedding_layer",
    "embedding_layer_name",
    "replaced_output",
]


def _qualified_name(model: nn.Module, module: nn.Module) -> Optional[str]:
    return next((name for name, m in model.named_modules() if m is module), None)


def _embedding_candidates(model: nn.Module) -> List[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.Embedding)]


def embedding_layer_name(model: nn.Module) -> Optional[str]:
    """The qualified name of the layer the registry attributes to by default, or ``None`` when there is none.

    In order: an ``embedding`` attribute that is an ``nn.Embedding`` (the package's word-level models); an
    ``embeddings`` attribute that is a module (:attr:`TransformerClassifier.embeddings
    <captum_text_ext.models.TransformerClassifier.embeddings>`, whose output sums token, position and token-type
    embeddings); the model's only ``nn.Embedding``. Any other layer is named explicitly (``layer=`` of
    :func:`~captum_text_ext.explain.explain`).

    Examples:
        >>> from captum_text_ext.models import BagOfWordsMLP, LSTMClassifier
        >>> embedding_layer_name(LSTMClassifier(10, embedding_dim=4, hidden_size=3, num_classes=2))
        'embedding'
        >>> embedding_layer_name(BagOfWordsMLP(vocab_size=10, num_classes=2)) is None
        True
    """
    if isinstance(getattr(model, "embedding", None), nn.Embedding):
        return "embedding"
    embeddings = getattr(model, "embeddings", None)
    if isinstance(embeddings, nn.Module):
        return _qualified_name(model, embeddings)
    candidates = _embedding_candidates(model)
    return candidates[0] if len(candidates) == 1 else None


def embedding_layer(model: nn.Module, name: Optional[str] = None) -> nn.Module:
    """The module named ``name`` in ``model`` (default: :func:`embedding_layer_name`).

    Raises:
        ValueError: when the model has no such module, or no default one; the message lists the model's
            ``nn.Embedding`` modules.
    """
    chosen = embedding_layer_name(model) if name is None else name
    candidates = _embedding_candidates(model)
    if chosen is None:
        raise ValueError(
            f"Expected a model with a token embedding layer, but {type(model).__name__} has none the registry can "
            f"find (its nn.Embedding modules: {candidates or 'none'}); name the layer whose (N, T, E) output the "
            "methods attribute to (layer=...), or use a model that embeds tokens (a bag-of-words model has no "
            "per-token embedding)"
        )
    try:
        return model.get_submodule(chosen)
    except AttributeError as err:
        raise ValueError(
            f"Expected `layer` to name a module of {type(model).__name__}, but it has no {chosen!r} (its nn.Embedding "
            f"modules: {candidates or 'none'})"
        ) from err


@contextlib.contextmanager
def replaced_output(layer: nn.Module, value: Tensor) -> Iterator[None]:
    """Within the block, in this thread, ``layer`` returns ``value`` instead of its own output.

    Raises:
        ValueError: (from the forward pass) when the layer's own output is not a tensor of ``value``'s shape, or the
            layer runs twice in one pass; (on leaving the block) when the layer never ran, so nothing was replaced.
    """
    calls = [0]

    def replace(module: nn.Module, args: Any, output: Any) -> Tensor:
        calls[0] += 1
        if calls[0] > 1:
            raise ValueError(
                f"Expected the layer {type(module).__name__} to run once per forward pass, but it ran again"
            )
        if not isinstance(output, Tensor) or tuple(output.shape) != tuple(value.shape):
            got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise ValueError(
                f"Expected the layer {type(module).__name__} to output a tensor of shape {tuple(value.shape)} (the "
                f"layer output given), but it output {got}"
            )
        return value

    with ScopedHooks() as hooks:
        hooks.forward(layer, replace)
        yield
    if calls[0] == 0:
        raise ValueError(f"Expected the layer {type(layer).__name__} to run in the forward pass, but it did not")


class LayerForward(nn.Module):
    """The model's forward pass from a layer's output, for Captum's methods:
    ``forward(layer_output, token_ids, *args)`` runs ``model(token_ids, *args)`` with the layer's output replaced by
    ``layer_output`` (:func:`replaced_output`).

    Captum expands ``token_ids`` and ``args`` with the input when it batches perturbations or integration steps, so
    every row of ``layer_output`` meets its own token ids. It is a module so that Captum's DeepLift finds the model's
    modules; holding the model as a submodule changes nothing about it.

    Args:
        model: the model, ``model(token_ids, *args) -> logits``.
        layer: a module of ``model`` that runs once per forward pass.

    Examples:
        >>> from captum_text_ext.models import LSTMClassifier
        >>> _ = torch.manual_seed(0)
        >>> model = LSTMClassifier(10, embedding_dim=4, hidden_size=3, num_classes=2).eval()
        >>> ids, lengths = torch.tensor([[2, 3, 4]]), torch.tensor([3])
        >>> forward = LayerForward(model, model.embedding)
        >>> torch.equal(forward(model.embedding(ids), ids, lengths), model(ids, lengths))
        True
    """

    def __init__(self, model: nn.Module, layer: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.layer = layer

    def forward(self, layer_output: Tensor, token_ids: Tensor, *args: Any) -> Tensor:
        with replaced_output(self.layer, layer_output):
            logits: Tensor = self.model(token_ids, *args)
        return logits


class _Captured(Exception):
    """Stops a forward pass once the layer's output is known."""


def capture_layer_output(model: nn.Module, layer: nn.Module, token_ids: Tensor, *args: Any) -> Tensor:
    """The layer's output when the model reads ``token_ids`` (the forward pass stops right after the layer; no
    gradient is recorded).

    Raises:
        ValueError: when the layer does not run or does not output a tensor.
    """
    captured: List[Tensor] = []

    def keep(module: nn.Module, inputs: Any, output: Any) -> None:
        if not isinstance(output, Tensor):
            raise ValueError(f"Expected the layer {type(module).__name__} to output a tensor, but it output "
                             f"{type(output).__name__}")
        captured.append(output.detach())
        raise _Captured

    with ScopedHooks() as hooks, torch.no_grad():
        hooks.forward(layer, keep)
        try:
            model(token_ids, *args)
        except _Captured:
            return captured[0]
    raise ValueError(f"Expected the layer {type(layer).__name__} to run in the forward pass, but it did not")


@dataclasses.dataclass(frozen=True)
class LayerBatch:
    """One batch of token-id sentences as the registry's methods read it.

    Attributes:
        layer: the module whose output :math:`(N, T, E)` the methods attribute to (:func:`embedding_layer`).
        token_ids: :math:`(N, T)` right-padded token ids.
        lengths: :math:`(N,)` the real tokens of each sentence (special tokens included).
        classes: the model's number of output classes (CD contrasts the two classes of a binary model).
        layer_output: replaces the layer's output for every method when given (:math:`(N, T, E)`, e.g. perturbed
            embeddings); ``None``: the layer's own output.
        output: what every method explains, a key of :data:`~captum_text_ext.explain.outputs.OUTPUTS`: ``"logit"``
            (the target logit) or ``"logit_difference"`` (the target logit minus the largest other logit at the
            input; :mod:`captum_text_ext.explain.outputs`).
    """

    layer: nn.Module
    token_ids: Tensor
    lengths: Tensor
    classes: int
    layer_output: Optional[Tensor] = None
    output: str = "logit"

    def __post_init__(self) -> None:
        check_output(self.output)
        if self.output == "logit_difference" and self.classes < 2:
            raise ValueError(f"The logit difference ({OUTPUTS['logit_difference']}) needs a model of at least two "
                             f"classes, but this one has {self.classes}")

    @property
    def forward_args(self) -> Tuple[Tensor, ...]:
        """What the model reads after the token ids: ``(lengths,)``."""
        return (self.lengths,)

    def replaced(self) -> "contextlib.AbstractContextManager[None]":
        """:func:`replaced_output` with :attr:`layer_output`, or nothing to replace when it is ``None``."""
        if self.layer_output is None:
            return contextlib.nullcontext()
        return replaced_output(self.layer, self.layer_output)

    def at_layer(self, model: nn.Module) -> Tensor:
        """The layer's output to attribute: :attr:`layer_output`, or the layer's own output (a new tensor, detached,
        that requires no gradient)."""
        if self.layer_output is not None:
            return self.layer_output.detach()
        return capture_layer_output(model, self.layer, self.token_ids, *self.forward_args)

    def contrast(self, model: nn.Module, target: Tensor) -> Optional[Tensor]:
        """The class each example's target is contrasted with: ``None`` for the target logit, else the largest other
        class at the input, with :attr:`layer_output` in place
        (:func:`~captum_text_ext.explain.outputs.largest_other_class`)."""
        if self.output == "logit":
            return None
        with self.replaced(), torch.no_grad():
            logits = model(self.token_ids, *self.forward_args)
        return largest_other_class(logits, target)

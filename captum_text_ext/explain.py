"""Explain a text classifier's predictions with every applicable attribution method: the method registry.

This is what ``captum-text-ext demo`` and ``captum-text-ext explain`` run, and the method table of the leaderboard
(``captum-text-ext benchmark leaderboard``); writing their reports is :mod:`captum_text_ext.report`'s job, and this
module imports no report-writing code. :data:`METHODS` lists every method the package applies, each with the
reduction that turns its attribution into one score per token (:mod:`captum_text_ext.metrics.reduction`), its
settings, and the rules that decide whether it applies to a model. A method that does not apply is skipped with its
reason, never replaced by another:

- every method needs an ``embedding`` layer with a ``forward_embeddings`` twin (:func:`needs_embedding_layer`);
- Captum's DeepLift is excluded on recurrent models (:func:`not_recurrent`): it hooks module activations, and the
  gates inside ``nn.LSTM`` / ``nn.GRU`` are not modules, so it would silently return something else;
- :class:`~captum_text_ext.LSTMLRP` and :class:`~captum_text_ext.ContextualDecomposition` are skipped on a model with
  an op their rules do not cover (the :class:`~captum_text_ext.decomposition.UnsupportedOperationError` they raise is
  the reason shown).

Reductions: methods that multiply by the input (InputXGradient, Integrated Gradients, DeepLift, LRP, CD) are summed
over the embedding, keeping their sign (red supports the target, blue speaks against it); pure gradients (Saliency)
are reduced by their ℓ2 norm, which has no sign (:attr:`Method.signed`; reports draw such scores on a sequential
colour scale); perturbation methods with one feature per token (Occlusion,
FeatureAblation, ShapleyValueSampling, Lime) give every entry of a token the token's score, which is kept as it is.
:data:`DEFAULT_METHODS` are the quick ones ``explain`` and the demo run by default: Captum's Saliency and
Integrated Gradients and every per-token method of this package (LRP, LRP_cons, CD, and the gradient surrogate's
gradient × input, whose plain-gradient twin equals Saliency). ``HiddenUnitOptimization`` explains hidden locations,
not tokens, and is not in the table.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from captum.attr import (
    DeepLift,
    FeatureAblation,
    InputXGradient,
    IntegratedGradients,
    Lime,
    Occlusion,
    Saliency,
    ShapleyValueSampling,
)
from torch import Tensor, nn

from captum_text_ext.attr import LSTMLRP, ContextualDecomposition, GradientLinearSurrogate
from captum_text_ext.datasets import Vocabulary, kim_tokenize, pad_sequences
from captum_text_ext.decomposition import UnsupportedOperationError
from captum_text_ext.metrics.reduction import REDUCTIONS, token_scores
from captum_text_ext.models import embedding_forward
from captum_text_ext.records import TextAttribution

__all__ = [
    "DEFAULT_METHODS",
    "LIME_SAMPLES",
    "METHODS",
    "PERTURBATIONS_PER_EVAL",
    "SHAPLEY_SAMPLES",
    "UNSIGNED_REDUCTIONS",
    "AttributeFn",
    "ExclusionRule",
    "Explanation",
    "Method",
    "explain",
    "method_table",
    "needs_embedding_layer",
    "not_recurrent",
    "tokenize_for",
    "tokenize_texts",
]

AttributeFn = Callable[[nn.Module, Tensor, Tensor, Tensor], Tensor]
"""``(model, embeddings (N, T, E) requiring grad, lengths (N,), target (N,)) -> attribution (N, T, E)``."""
ExclusionRule = Callable[[nn.Module], Optional[str]]
"""``(model) -> the reason the method does not apply``, or ``None``."""


def needs_embedding_layer(model: nn.Module) -> Optional[str]:
    """Every method attributes at the token embeddings: the model needs ``embedding`` and ``forward_embeddings``."""
    if not callable(getattr(model, "forward_embeddings", None)) or not isinstance(
        getattr(model, "embedding", None), nn.Embedding
    ):
        return (
            f"attributes at the token embeddings; {type(model).__name__} has no `embedding` layer with a "
            "`forward_embeddings` twin (a bag-of-words model has no per-token embedding)"
        )
    return None


def not_recurrent(model: nn.Module) -> Optional[str]:
    """Captum's DeepLift on a model with ``nn.LSTM`` / ``nn.GRU``: excluded (see :data:`METHODS`)."""
    recurrent = [type(m).__name__ for m in model.modules() if isinstance(m, nn.RNNBase)]
    if recurrent:
        return (
            f"Captum's DeepLift replaces the gradients of nonlinear *modules* by its multipliers; the gates of "
            f"{recurrent[0]} are not modules, so inside the recurrence it silently falls back to plain gradients and "
            "its attributions neither follow DeepLift's rules nor sum to the output difference (a wrong number, not "
            "an error); use LSTMLRP or ContextualDecomposition on recurrent models"
        )
    return None


UNSIGNED_REDUCTIONS = frozenset({"l2"})
"""The reductions of :data:`~captum_text_ext.metrics.REDUCTIONS` whose scores are magnitudes without a sign."""


@dataclasses.dataclass(frozen=True)
class Method:
    """An attribution method as the reports and the leaderboard use it.

    Attributes:
        key: the name on the command line.
        label: the name shown in reports.
        attribute: computes the attribution over the embeddings for a batch, :math:`(N, T, E)`.
        reduction: the key of :data:`~captum_text_ext.metrics.reduction.REDUCTIONS` that makes it one score per
            token.
        settings: the method's settings as the reports print them (baselines, steps, sample counts).
        exclusions: rules that say why the method does not apply to a model (checked in order, after the
            embedding-layer rule every method has).
        interaction: for methods with interaction scores (CD): builds ``interaction(inputs, mask_a, mask_b,
            target=..., additional_forward_args=...)`` for a model.
    """

    key: str
    label: str
    attribute: AttributeFn
    reduction: str
    settings: str
    exclusions: Tuple[ExclusionRule, ...] = ()
    interaction: Optional[Callable[[nn.Module], Callable[..., Tensor]]] = None

    @property
    def signed(self) -> bool:
        """Whether the sign of a per-token score means something: every reduction but the ℓ2 norm
        (:data:`UNSIGNED_REDUCTIONS`); reports draw unsigned scores on a sequential colour scale."""
        return self.reduction not in UNSIGNED_REDUCTIONS

    @property
    def description(self) -> str:
        """The reduction and the settings, for tables."""
        return f"{REDUCTIONS[self.reduction]}; {self.settings}"

    def skip_reason(self, model: nn.Module) -> Optional[str]:
        """Why the method does not apply to ``model``, or ``None`` when it does.

        Methods built on the op guard (LSTMLRP, CD) may still raise
        :class:`~captum_text_ext.decomposition.UnsupportedOperationError` when they meet an op without a rule;
        callers report that as the reason.
        """
        for rule in (needs_embedding_layer, *self.exclusions):
            reason = rule(model)
            if reason is not None:
                return f"{self.label} {reason}" if rule is needs_embedding_layer else reason
        return None

    def token_scores(self, model: nn.Module, embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
        """The per-token scores :math:`(N, T)` of a batch: :attr:`attribute`, then :attr:`reduction`."""
        return token_scores(self.attribute(model, embeddings, lengths, target).detach(), self.reduction)


def _token_features(embeddings: Tensor) -> Tensor:
    """Captum feature mask :math:`(1, T, E)`: every token one feature."""
    steps = embeddings.shape[1]
    features = torch.arange(steps, device=embeddings.device).view(1, steps, 1)
    return features.expand(1, steps, embeddings.shape[2]).contiguous()  # Captum views the mask


def _tensor(result: object) -> Tensor:
    """A method's attributions, checked to be one tensor (every registry method takes one input tensor)."""
    if not isinstance(result, Tensor):
        raise TypeError(f"Expected the attributions as one tensor, but got {type(result).__name__}")
    return result


def _saliency(model: nn.Module, embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
    return _tensor(Saliency(embedding_forward(model)).attribute(
        embeddings, target=target, additional_forward_args=(lengths,), abs=False
    ))


def _input_x_gradient(model: nn.Module, embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
    return _tensor(InputXGradient(embedding_forward(model)).attribute(
        embeddings, target=target, additional_forward_args=(lengths,)
    ))


def _gradient_surrogate(multiply_by_inputs: bool) -> AttributeFn:
    def attribute(model: nn.Module, embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
        surrogate = GradientLinearSurrogate(embedding_forward(model), multiply_by_inputs=multiply_by_inputs)
        return _tensor(surrogate.attribute(embeddings, target=target, additional_forward_args=(lengths,)))

    return attribute


def _integrated_gradients(model: nn.Module, embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
    integrated: Any = IntegratedGradients(embedding_forward(model))  # Captum's decorator leaves `attribute` untyped
    return _tensor(integrated.attribute(
        embeddings, target=target, additional_forward_args=(lengths,), n_steps=32, internal_batch_size=2048
    ))


def _deep_lift(model: nn.Module, embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
    deep_lift: Any = DeepLift(_EmbeddingForward(model))  # Captum's decorator leaves `attribute` untyped
    return _tensor(deep_lift.attribute(embeddings, target=target, additional_forward_args=(lengths,)))


class _EmbeddingForward(nn.Module):
    """``embedding_forward(model)`` as a module (Captum's DeepLift hooks the modules of the module it is given)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, embeddings: Tensor, lengths: Tensor) -> Tensor:
        return embedding_forward(self.model)(embeddings, lengths)


def _occlusion(model: nn.Module, embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
    window = (1, embeddings.shape[2])
    return _tensor(Occlusion(embedding_forward(model)).attribute(
        embeddings, sliding_window_shapes=window, strides=window, target=target,
        additional_forward_args=(lengths,), perturbations_per_eval=PERTURBATIONS_PER_EVAL
    ))


def _feature_ablation(model: nn.Module, embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
    return _tensor(FeatureAblation(embedding_forward(model)).attribute(
        embeddings, target=target, additional_forward_args=(lengths,), feature_mask=_token_features(embeddings),
        perturbations_per_eval=PERTURBATIONS_PER_EVAL
    ))


def _shapley_value_sampling(model: nn.Module, embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
    return _tensor(ShapleyValueSampling(embedding_forward(model)).attribute(
        embeddings, target=target, additional_forward_args=(lengths,), feature_mask=_token_features(embeddings),
        n_samples=SHAPLEY_SAMPLES, perturbations_per_eval=PERTURBATIONS_PER_EVAL, show_progress=False
    ))


def _lime(model: nn.Module, embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
    with warnings.catch_warnings():  # Captum warns that it fits one surrogate per example, which is what we want
        warnings.filterwarnings("ignore", message="You are providing multiple inputs for Lime")
        return _tensor(Lime(embedding_forward(model)).attribute(
            embeddings, target=target, additional_forward_args=(lengths,),
            feature_mask=_token_features(embeddings).expand(embeddings.shape[0], -1, -1).contiguous(),
            n_samples=LIME_SAMPLES, perturbations_per_eval=PERTURBATIONS_PER_EVAL
        ))


def _lrp(bias_factor: float) -> AttributeFn:
    def attribute(model: nn.Module, embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
        return _tensor(LSTMLRP(embedding_forward(model), epsilon=1e-3, bias_factor=bias_factor).attribute(
            embeddings, target=target, additional_forward_args=(lengths,)
        ))

    return attribute


def _contrast(model: nn.Module, target: Tensor) -> Optional[Tensor]:
    """The other class of a two-class model (CD's β_target − β_other), else ``None``."""
    classes = getattr(getattr(model, "output", None), "out_features", None)
    return 1 - target if classes == 2 else None


def _contextual_decomposition(model: nn.Module, embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
    per_token = ContextualDecomposition(embedding_forward(model)).attribute(
        embeddings.detach(), target=target, additional_forward_args=(lengths,), contrast=_contrast(model, target)
    )
    return per_token.unsqueeze(-1)  # (N, T, 1): CD's unit is the token


def _cd_interaction(model: nn.Module) -> Callable[..., Tensor]:
    cd = ContextualDecomposition(embedding_forward(model))

    def interaction(inputs: Tensor, mask_a: Tensor, mask_b: Tensor, target: Tensor,
                    additional_forward_args: Tuple[Any, ...]) -> Tensor:
        return cd.interaction(inputs.detach(), mask_a, mask_b, target=target,
                              additional_forward_args=additional_forward_args, contrast=_contrast(model, target))

    return interaction


SHAPLEY_SAMPLES = 25
"""Permutations per sentence for ShapleyValueSampling."""
LIME_SAMPLES = 200
"""Perturbed samples per sentence for Lime."""
PERTURBATIONS_PER_EVAL = 32
"""Perturbed copies per forward call for Captum's perturbation methods."""

METHODS: Dict[str, Method] = {
    method.key: method
    for method in (
        Method("saliency", "Saliency", _saliency, "l2", "Captum Saliency (abs=False)"),
        Method("input_x_gradient", "InputXGradient", _input_x_gradient, "sum", "Captum InputXGradient"),
        Method("integrated_gradients", "Integrated Gradients", _integrated_gradients, "sum",
               "Captum IntegratedGradients, zero baseline, 32 steps"),
        Method("deep_lift", "DeepLift", _deep_lift, "sum", "Captum DeepLift, zero baseline",
               exclusions=(not_recurrent,)),
        Method("occlusion", "Occlusion", _occlusion, "token",
               "Captum Occlusion, a window of 1 token (all its embedding entries) set to zero"),
        Method("feature_ablation", "FeatureAblation", _feature_ablation, "token",
               "Captum FeatureAblation, one feature per token, zero baseline"),
        Method("shapley_value_sampling", "ShapleyValueSampling", _shapley_value_sampling, "token",
               f"Captum ShapleyValueSampling, one feature per token, zero baseline, {SHAPLEY_SAMPLES} permutations"),
        Method("lime", "Lime", _lime, "token",
               f"Captum Lime (default Lasso surrogate and cosine kernel), one feature per token, {LIME_SAMPLES} "
               "samples"),
        Method("gradient_surrogate", "GradientLinearSurrogate", _gradient_surrogate(False), "l2",
               "GradientLinearSurrogate (autograd), local gradients; the per-token norm of Hechtlinger's Sec. 4.1"),
        Method("gradient_surrogate_x_input", "GradientLinearSurrogate × input", _gradient_surrogate(True), "sum",
               "GradientLinearSurrogate (autograd), multiply_by_inputs=True"),
        Method("lrp", "LRP", _lrp(0.0), "sum", "LSTMLRP, epsilon 1e-3, bias_factor 0"),
        Method("lrp_cons", "LRP_cons", _lrp(1.0), "sum", "LSTMLRP, epsilon 1e-3, bias_factor 1"),
        Method("contextual_decomposition", "CD", _contextual_decomposition, "sum",
               "ContextualDecomposition, each token a phrase, β_target − β_other for two classes",
               interaction=_cd_interaction),
    )
}
"""Every attribution method the package applies, by key. A new method joins with one entry."""
DEFAULT_METHODS: Tuple[str, ...] = (
    "saliency", "integrated_gradients", "lrp", "lrp_cons", "contextual_decomposition", "gradient_surrogate_x_input"
)
"""What ``explain`` and the demo run unless told otherwise (the quick ones)."""


@dataclasses.dataclass(frozen=True)
class Explanation:
    """The attributions of several sentences by several methods.

    Attributes:
        records: one :class:`~captum_text_ext.visualization.TextAttribution` per sentence and method, sentence by
            sentence.
        skipped: method label to the reason it was skipped.
        predicted: the predicted class index per sentence.
        target: the explained class index per sentence.
    """

    records: List[TextAttribution]
    skipped: Dict[str, str]
    predicted: List[int]
    target: List[int]

    def scores(self, method_label: str) -> List[Tensor]:
        """The per-token scores of one method, sentence by sentence."""
        return [r.scores for r in self.records if r.method == method_label]


def tokenize_for(dataset: Optional[str]) -> Callable[[str], List[str]]:
    """The tokenizer that matches a zoo dataset: Kim (2014) with case kept for MR and AG News, lowercased for the
    SST and synthetic models (whose vocabularies are lowercase)."""
    if dataset in ("mr", "ag_news"):
        return kim_tokenize
    return lambda text: kim_tokenize(text, lower=True)


def tokenize_texts(texts: Sequence[str], dataset: Optional[str]) -> List[List[str]]:
    """Tokenize raw texts for a model of ``dataset`` (:func:`tokenize_for`).

    Raises:
        ValueError: for a text that tokenizes to nothing.
    """
    tokenize = tokenize_for(dataset)
    token_lists = []
    for text in texts:
        tokens = tokenize(text)
        if not tokens:
            raise ValueError(f"The text {text!r} tokenizes to nothing; give a text with at least one word")
        token_lists.append(tokens)
    return token_lists


def _resolve_target(
    target: Union[None, int, str, Sequence[int]], predicted: Tensor, class_names: Sequence[str]
) -> Tensor:
    if target is None:
        return predicted
    if isinstance(target, str):
        if target not in class_names:
            raise ValueError(f"Expected `target` to be a class index or one of {list(class_names)}, but got {target!r}")
        target = list(class_names).index(target)
    if isinstance(target, int):
        if not 0 <= target < len(class_names):
            raise ValueError(f"Expected `target` in [0, {len(class_names)}), but got {target}")
        return torch.full_like(predicted, target)
    return torch.as_tensor(list(target), dtype=torch.long)


def explain(
    model: nn.Module,
    vocabulary: Vocabulary,
    token_lists: Sequence[Sequence[str]],
    class_names: Sequence[str],
    methods: Sequence[str] = DEFAULT_METHODS,
    target: Union[None, int, str, Sequence[int]] = None,
    true_labels: Optional[Sequence[int]] = None,
    name_prefix: str = "",
) -> Explanation:
    """Attribute every sentence with every applicable method, in one batch per method.

    Args:
        model: a classifier with ``embedding`` and ``forward_embeddings(embeddings, lengths)``.
        vocabulary: encodes the tokens.
        token_lists: the tokenized sentences (each non-empty).
        class_names: the model's class names.
        methods: keys of :data:`METHODS`.
        target: the class to explain: ``None`` (the predicted class), an index or name for all sentences, or one
            index per sentence.
        true_labels: gold labels, shown in the report when given.
        name_prefix: put before each method's label (to tell models apart in one report).

    Raises:
        ValueError: for an unknown method or target, an empty sentence, or a model in training mode.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"Unknown method(s) {unknown}; expected some of {list(METHODS)}")
    if any(module.training for module in model.modules()):
        raise ValueError(
            "Expected the model in evaluation mode (dropout in training mode makes every method's scores random); "
            "call model.eval() first — explain() never switches it for you"
        )
    ids, lengths = pad_sequences([vocabulary.encode(tokens) for tokens in token_lists], vocabulary.pad_index)
    with torch.no_grad():
        probabilities = model(ids, lengths).softmax(dim=-1)
    predicted = probabilities.argmax(dim=-1)
    targets = _resolve_target(target, predicted, class_names)
    per_method: Dict[str, Tuple[Tensor, bool]] = {}
    skipped: Dict[str, str] = {}
    for key in methods:
        method = METHODS[key]
        reason = method.skip_reason(model)
        if reason is not None:
            skipped[name_prefix + method.label] = reason
            continue
        with torch.no_grad():
            embeddings = model.get_submodule("embedding")(ids)
        try:
            scores = method.token_scores(model, embeddings.requires_grad_(), lengths, targets)
        except UnsupportedOperationError as unsupported:
            skipped[name_prefix + method.label] = str(unsupported)
            continue
        per_method[name_prefix + method.label] = scores.detach(), method.signed
    records = []
    for i, tokens in enumerate(token_lists):
        for label, (scores, signed) in per_method.items():
            records.append(
                TextAttribution(
                    list(tokens),
                    scores[i, : len(tokens)].contiguous(),
                    label,
                    target=class_names[int(targets[i])],
                    predicted=class_names[int(predicted[i])],
                    probability=float(probabilities[i, predicted[i]]),
                    true_label=None if true_labels is None else class_names[true_labels[i]],
                    signed=signed,
                )
            )
    return Explanation(records, skipped, predicted.tolist(), targets.tolist())


def method_table(methods: Mapping[str, Method] = METHODS) -> List[Tuple[str, str, str]]:
    """``(key, label, description)`` for every method, for reports and ``--help``."""
    return [(m.key, m.label, m.description) for m in methods.values()]

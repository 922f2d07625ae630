"""The method registry: :data:`METHODS`, every attribution method the package applies, each at a model's token
embedding layer (:mod:`captum_text_ext.explain.layers`).

Each :class:`Method` has the reduction that turns its attribution into one score per token
(:mod:`captum_text_ext.metrics.reduction`), its settings, and the rules that decide whether it applies to a model. A
method that does not apply is skipped with its reason, never replaced by another:

- every method needs a token embedding layer (:func:`~captum_text_ext.explain.layers.embedding_layer`);
- Captum's DeepLift is excluded on recurrent and attention models (:func:`deep_lift_rules_cover`): it replaces the
  gradients of nonlinear *modules* by its multipliers, and the gates inside ``nn.LSTM`` / ``nn.GRU`` and an attention
  softmax are not modules, so it would silently return something else;
- :class:`~captum_text_ext.LayerLSTMLRP` and :class:`~captum_text_ext.LayerContextualDecomposition` are skipped on a
  model with an op their rules do not cover (the :class:`~captum_text_ext.decomposition.UnsupportedOperationError`
  they raise is the reason shown);
- :class:`~captum_text_ext.LayerTransformerLRP` (AttnLRP) is the LRP row of models with self-attention, where
  LSTMLRP stops at the attention product, and is skipped on the others (:func:`has_self_attention`), whose LRP row is
  LSTMLRP's.

Every method explains the same quantity, the batch's :attr:`~captum_text_ext.explain.layers.LayerBatch.output`:
the target logit :math:`z_t` by default, or the logit difference :math:`z_t - z_o` with :math:`o` the largest other
class at the input (:mod:`captum_text_ext.explain.outputs` says how each method reads it). CD runs with
``bias_product="phrase"`` (:data:`CD_BIAS_PRODUCT`).

Every baseline is at the layer: Integrated Gradients, DeepLift and the perturbation methods compare with zero
embeddings (zero layer output), as before the registry moved to token ids. Reductions: methods that multiply by the
input (InputXGradient, Integrated Gradients, DeepLift, LRP, CD) are summed over the embedding, keeping their sign;
pure gradients (Saliency) are reduced by their ℓ2 norm, which has no sign (:attr:`Method.signed`); perturbation
methods with one feature per token (Occlusion, FeatureAblation, ShapleyValueSampling, Lime) give every entry of a
token the token's score, which is kept as it is. Lime and ShapleyValueSampling draw random samples from torch's
global generator (:attr:`Method.sampling`): seed it, or let :func:`captum_text_ext.corpus.attribute_corpus` seed each
example. :data:`DEFAULT_METHODS` are the quick ones ``explain`` and the demo run by default.
``HiddenUnitOptimization`` explains hidden locations, not tokens, and is not in the table.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

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

from captum_text_ext.attr import (
    LayerContextualDecomposition,
    LayerGradientLinearSurrogate,
    LayerLSTMLRP,
    LayerTransformerLRP,
)
from captum_text_ext.explain.layers import LayerBatch, LayerForward
from captum_text_ext.explain.outputs import ContrastedOutput
from captum_text_ext.metrics.reduction import REDUCTIONS, token_scores

__all__ = [
    "CD_BIAS_PRODUCT",
    "DEFAULT_METHODS",
    "LIME_SAMPLES",
    "METHODS",
    "PERTURBATIONS_PER_EVAL",
    "SHAPLEY_SAMPLES",
    "UNSIGNED_REDUCTIONS",
    "AttributeFn",
    "ExclusionRule",
    "InteractionFactory",
    "Method",
    "deep_lift_rules_cover",
    "has_self_attention",
    "method_table",
]

AttributeFn = Callable[[nn.Module, LayerBatch, Tensor], Tensor]
"""``(model, batch, target (N,)) -> attribution at the layer's output (N, T, ...)``."""
ExclusionRule = Callable[[nn.Module], Optional[str]]
"""``(model) -> the reason the method does not apply``, or ``None``."""
InteractionFactory = Callable[[nn.Module, LayerBatch], Callable[..., Tensor]]
"""``(model, batch) -> interaction(layer_output, mask_a, mask_b, target=..., additional_forward_args=...)``."""


def _attention_modules(model: nn.Module) -> List[str]:
    """The type names of the model's self-attention modules (``nn.MultiheadAttention``, Hugging Face's
    ``...SelfAttention``)."""
    return [type(m).__name__ for m in model.modules()
            if isinstance(m, nn.MultiheadAttention) or type(m).__name__.endswith("SelfAttention")]


def deep_lift_rules_cover(model: nn.Module) -> Optional[str]:
    """Captum's DeepLift on a model with ``nn.LSTM`` / ``nn.GRU`` or attention: excluded (module docstring)."""
    recurrent = [type(m).__name__ for m in model.modules() if isinstance(m, nn.RNNBase)]
    if recurrent:
        return (
            f"Captum's DeepLift replaces the gradients of nonlinear *modules* by its multipliers; the gates of "
            f"{recurrent[0]} are not modules, so inside the recurrence it silently falls back to plain gradients and "
            "its attributions neither follow DeepLift's rules nor sum to the output difference (a wrong number, not "
            "an error); use LSTMLRP or ContextualDecomposition on recurrent models"
        )
    attention = _attention_modules(model)
    if attention:
        return (
            f"Captum's DeepLift replaces the gradients of nonlinear *modules* by its multipliers; the softmax and the "
            f"products inside {attention[0]} are not modules, so there it silently falls back to plain gradients and "
            "its attributions do not sum to the output difference (a wrong number, not an error)"
        )
    return None


UNSIGNED_REDUCTIONS = frozenset({"l2"})
"""The reductions of :data:`~captum_text_ext.metrics.REDUCTIONS` whose scores are magnitudes without a sign."""


@dataclasses.dataclass(frozen=True)
class Method:
    """An attribution method as the reports, the corpus runner and the leaderboard use it.

    Attributes:
        key: the name on the command line.
        label: the name shown in reports.
        attribute: the attribution at the layer's output for a batch, :math:`(N, T, \\ldots)`.
        reduction: the key of :data:`~captum_text_ext.metrics.reduction.REDUCTIONS` that makes it one score per
            token.
        settings: the method's settings as the reports print them (baselines, steps, sample counts).
        exclusions: rules that say why the method does not apply to a model (checked in order, after the
            embedding-layer rule every method has).
        interaction: for methods with interaction scores (CD): builds ``interaction(layer_output, mask_a, mask_b,
            target=..., additional_forward_args=(lengths,))`` for a model and batch.
        sampling: the method draws random samples (from torch's global generator): its scores depend on the seed.
    """

    key: str
    label: str
    attribute: AttributeFn
    reduction: str
    settings: str
    exclusions: Tuple[ExclusionRule, ...] = ()
    interaction: Optional[InteractionFactory] = None
    sampling: bool = False

    @property
    def signed(self) -> bool:
        """Whether the sign of a per-token score means something: every reduction but the ℓ2 norm
        (:data:`UNSIGNED_REDUCTIONS`); reports draw unsigned scores on a sequential colour scale."""
        return self.reduction not in UNSIGNED_REDUCTIONS

    @property
    def description(self) -> str:
        """The reduction and the settings, for tables."""
        return f"{REDUCTIONS[self.reduction]}; {self.settings}"

    def skip_reason(self, model: nn.Module, layer: Optional[nn.Module]) -> Optional[str]:
        """Why the method does not apply to ``model`` read at ``layer``, or ``None`` when it does.

        Args:
            model: the model.
            layer: its token embedding layer, ``None`` when it has none
                (:func:`~captum_text_ext.explain.layers.embedding_layer_name`).

        Methods built on the op guard (LRP, CD) may still raise
        :class:`~captum_text_ext.decomposition.UnsupportedOperationError` when they meet an op without a rule;
        callers report that as the reason.
        """
        if layer is None:
            return (f"{self.label} attributes at a token embedding layer; {type(model).__name__} has none the "
                    "registry finds by itself (a bag-of-words model has no per-token embedding; otherwise name the "
                    "layer: layer=...)")
        for rule in self.exclusions:
            reason = rule(model)
            if reason is not None:
                return reason
        return None

    def token_scores(self, model: nn.Module, batch: LayerBatch, target: Tensor) -> Tensor:
        """The per-token scores :math:`(N, T)` of a batch: :attr:`attribute`, then :attr:`reduction`."""
        return token_scores(self.attribute(model, batch, target).detach(), self.reduction)


def _token_features(layer_output: Tensor) -> Tensor:
    """Captum feature mask :math:`(1, T, E)`: every token one feature."""
    steps = layer_output.shape[1]
    features = torch.arange(steps, device=layer_output.device).view(1, steps, 1)
    return features.expand(1, steps, layer_output.shape[2]).contiguous()  # Captum views the mask


def _tensor(result: object) -> Tensor:
    """A method's attributions, checked to be one tensor (every registry method attributes one layer output)."""
    if not isinstance(result, Tensor):
        raise TypeError(f"Expected the attributions as one tensor, but got {type(result).__name__}")
    return result


def _captum(model: nn.Module, batch: LayerBatch, target: Tensor) -> Tuple[nn.Module, Tensor, Tuple[Tensor, ...]]:
    """What a Captum method reads: the forward pass from the layer (wrapped in
    :class:`~captum_text_ext.explain.outputs.ContrastedOutput` for the logit difference), the layer's output (a new
    leaf that requires gradients) and the arguments after it (the token ids, the model's own, then the contrast
    classes when there are any)."""
    contrast = batch.contrast(model, target)
    inputs = batch.at_layer(model).requires_grad_()
    forward = LayerForward(model, batch.layer)
    args = (batch.token_ids, *batch.forward_args)
    if contrast is None:
        return forward, inputs, args
    return ContrastedOutput(forward), inputs, (*args, contrast)


def _saliency(model: nn.Module, batch: LayerBatch, target: Tensor) -> Tensor:
    forward, inputs, args = _captum(model, batch, target)
    return _tensor(Saliency(forward).attribute(inputs, target=target, additional_forward_args=args, abs=False))


def _input_x_gradient(model: nn.Module, batch: LayerBatch, target: Tensor) -> Tensor:
    forward, inputs, args = _captum(model, batch, target)
    return _tensor(InputXGradient(forward).attribute(inputs, target=target, additional_forward_args=args))


def _integrated_gradients(model: nn.Module, batch: LayerBatch, target: Tensor) -> Tensor:
    forward, inputs, args = _captum(model, batch, target)
    integrated: Any = IntegratedGradients(forward)  # Captum's decorator leaves `attribute` untyped
    return _tensor(integrated.attribute(
        inputs, target=target, additional_forward_args=args, n_steps=32, internal_batch_size=2048
    ))


def _deep_lift(model: nn.Module, batch: LayerBatch, target: Tensor) -> Tensor:
    forward, inputs, args = _captum(model, batch, target)
    deep_lift: Any = DeepLift(forward)  # Captum's decorator leaves `attribute` untyped
    return _tensor(deep_lift.attribute(inputs, target=target, additional_forward_args=args))


def _occlusion(model: nn.Module, batch: LayerBatch, target: Tensor) -> Tensor:
    forward, inputs, args = _captum(model, batch, target)
    window = (1, inputs.shape[2])
    return _tensor(Occlusion(forward).attribute(
        inputs, sliding_window_shapes=window, strides=window, target=target, additional_forward_args=args,
        perturbations_per_eval=PERTURBATIONS_PER_EVAL
    ))


def _feature_ablation(model: nn.Module, batch: LayerBatch, target: Tensor) -> Tensor:
    forward, inputs, args = _captum(model, batch, target)
    return _tensor(FeatureAblation(forward).attribute(
        inputs, target=target, additional_forward_args=args, feature_mask=_token_features(inputs),
        perturbations_per_eval=PERTURBATIONS_PER_EVAL
    ))


def _shapley_value_sampling(model: nn.Module, batch: LayerBatch, target: Tensor) -> Tensor:
    forward, inputs, args = _captum(model, batch, target)
    return _tensor(ShapleyValueSampling(forward).attribute(
        inputs, target=target, additional_forward_args=args, feature_mask=_token_features(inputs),
        n_samples=SHAPLEY_SAMPLES, perturbations_per_eval=PERTURBATIONS_PER_EVAL, show_progress=False
    ))


def _lime(model: nn.Module, batch: LayerBatch, target: Tensor) -> Tensor:
    forward, inputs, args = _captum(model, batch, target)
    with warnings.catch_warnings():  # Captum warns that it fits one surrogate per example, which is what we want
        warnings.filterwarnings("ignore", message="You are providing multiple inputs for Lime")
        return _tensor(Lime(forward).attribute(
            inputs, target=target, additional_forward_args=args,
            feature_mask=_token_features(inputs).expand(inputs.shape[0], -1, -1).contiguous(),
            n_samples=LIME_SAMPLES, perturbations_per_eval=PERTURBATIONS_PER_EVAL
        ))


def _gradient_surrogate(multiply_by_inputs: bool) -> AttributeFn:
    def attribute(model: nn.Module, batch: LayerBatch, target: Tensor) -> Tensor:
        contrast = batch.contrast(model, target)
        forward: nn.Module = model if contrast is None else ContrastedOutput(model)
        args = batch.forward_args if contrast is None else (*batch.forward_args, contrast)
        surrogate = LayerGradientLinearSurrogate(forward, batch.layer, multiply_by_inputs=multiply_by_inputs)
        with batch.replaced():
            return _tensor(surrogate.attribute(batch.token_ids, target=target, additional_forward_args=args))

    return attribute


def has_self_attention(model: nn.Module) -> Optional[str]:
    """TransformerLRP's row is for models with self-attention; LSTMLRP's row (``LRP``) explains the others."""
    if _attention_modules(model):
        return None
    return "the model has no self-attention: its LRP row is LSTMLRP's (TransformerLRP's row is for transformers)"


def _relevance(make: Callable[[nn.Module, nn.Module], Any]) -> AttributeFn:
    """The relevance at the layer of the LRP attribution ``make(model, layer)``."""
    def attribute(model: nn.Module, batch: LayerBatch, target: Tensor) -> Tensor:
        contrast = batch.contrast(model, target)
        lrp = make(model, batch.layer)
        with batch.replaced():
            relevance = _tensor(lrp.attribute(batch.token_ids, target=target,
                                              additional_forward_args=batch.forward_args))
            if contrast is None:
                return relevance
            # LRP's rules are linear in the relevance they pass down: this is LRP from R_t = z_t, R_o = -z_o
            return relevance - _tensor(lrp.attribute(batch.token_ids, target=contrast,
                                                     additional_forward_args=batch.forward_args))

    return attribute


def _lrp(bias_factor: float) -> AttributeFn:
    return _relevance(lambda model, layer: LayerLSTMLRP(model, layer, epsilon=1e-3, bias_factor=bias_factor))


_transformer_lrp = _relevance(lambda model, layer: LayerTransformerLRP(model, layer, rule="attnlrp"))


CD_BIAS_PRODUCT = "phrase"
"""The ``bias_product`` the registry's CD runs with (:class:`~captum_text_ext.LayerContextualDecomposition`'s
default: a recurrent cell's bias-only product goes to β at phrase positions)."""


def _contextual_decomposition(model: nn.Module, batch: LayerBatch, target: Tensor) -> Tensor:
    contrast = batch.contrast(model, target)
    cd = LayerContextualDecomposition(model, batch.layer, bias_product=CD_BIAS_PRODUCT)
    with batch.replaced():
        per_token = cd.attribute(batch.token_ids, target=target, additional_forward_args=batch.forward_args,
                                 contrast=contrast)
    return per_token.unsqueeze(-1)  # (N, T, 1): CD's unit is the token


def _cd_interaction(model: nn.Module, batch: LayerBatch) -> Callable[..., Tensor]:
    cd = LayerContextualDecomposition(model, batch.layer, bias_product=CD_BIAS_PRODUCT)

    def interaction(inputs: Tensor, mask_a: Tensor, mask_b: Tensor, target: Tensor,
                    additional_forward_args: Tuple[Any, ...]) -> Tensor:
        at = dataclasses.replace(batch, layer_output=inputs.detach())
        contrast = at.contrast(model, target)
        with at.replaced():
            return cd.interaction(batch.token_ids, mask_a, mask_b, target=target,
                                  additional_forward_args=additional_forward_args, contrast=contrast)

    return interaction


SHAPLEY_SAMPLES = 25
"""Permutations per sentence for ShapleyValueSampling."""
LIME_SAMPLES = 200
"""Perturbed samples per sentence for Lime."""
PERTURBATIONS_PER_EVAL = 32
"""Perturbed copies per forward call for Captum's perturbation methods."""

_ZERO = "zero baseline at the embedding layer"
METHODS: Dict[str, Method] = {
    method.key: method
    for method in (
        Method("saliency", "Saliency", _saliency, "l2", "Captum Saliency (abs=False) at the embedding layer"),
        Method("input_x_gradient", "InputXGradient", _input_x_gradient, "sum",
               "Captum InputXGradient at the embedding layer"),
        Method("integrated_gradients", "Integrated Gradients", _integrated_gradients, "sum",
               f"Captum IntegratedGradients, {_ZERO}, 32 steps"),
        Method("deep_lift", "DeepLift", _deep_lift, "sum", f"Captum DeepLift, {_ZERO}",
               exclusions=(deep_lift_rules_cover,)),
        Method("occlusion", "Occlusion", _occlusion, "token",
               "Captum Occlusion, a window of 1 token (all its embedding entries) set to zero"),
        Method("feature_ablation", "FeatureAblation", _feature_ablation, "token",
               f"Captum FeatureAblation, one feature per token, {_ZERO}"),
        Method("shapley_value_sampling", "ShapleyValueSampling", _shapley_value_sampling, "token",
               f"Captum ShapleyValueSampling, one feature per token, {_ZERO}, {SHAPLEY_SAMPLES} permutations",
               sampling=True),
        Method("lime", "Lime", _lime, "token",
               f"Captum Lime (default Lasso surrogate and cosine kernel), one feature per token, {LIME_SAMPLES} "
               "samples", sampling=True),
        Method("gradient_surrogate", "GradientLinearSurrogate", _gradient_surrogate(False), "l2",
               "LayerGradientLinearSurrogate, local gradients; the per-token norm of Hechtlinger's Sec. 4.1"),
        Method("gradient_surrogate_x_input", "GradientLinearSurrogate × input", _gradient_surrogate(True), "sum",
               "LayerGradientLinearSurrogate, multiply_by_inputs=True"),
        Method("lrp", "LRP", _lrp(0.0), "sum", "LayerLSTMLRP, epsilon 1e-3, bias_factor 0"),
        Method("lrp_cons", "LRP_cons", _lrp(1.0), "sum", "LayerLSTMLRP, epsilon 1e-3, bias_factor 1"),
        Method("contextual_decomposition", "CD", _contextual_decomposition, "sum",
               f"LayerContextualDecomposition, each token a phrase, bias_product={CD_BIAS_PRODUCT!r}",
               interaction=_cd_interaction),
        Method("transformer_lrp", "TransformerLRP", _transformer_lrp, "sum",
               "LayerTransformerLRP, rule 'attnlrp', epsilon 1e-6 (on models with self-attention)",
               exclusions=(has_self_attention,)),
    )
}
"""Every attribution method the package applies, by key. A new method joins with one entry."""
DEFAULT_METHODS: Tuple[str, ...] = (
    "saliency", "integrated_gradients", "lrp", "lrp_cons", "contextual_decomposition", "gradient_surrogate_x_input"
)
"""What ``explain`` and the demo run unless told otherwise (the quick ones)."""


def method_table(methods: Mapping[str, Method] = METHODS) -> List[Tuple[str, str, str]]:
    """``(key, label, description)`` for every method, for reports and ``--help``."""
    return [(m.key, m.label, m.description) for m in methods.values()]

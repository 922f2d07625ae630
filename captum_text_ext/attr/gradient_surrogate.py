r"""GradientLinearSurrogate: a model's input gradients, per example and averaged over a dataset into a linear surrogate
of the model (Hechtlinger, 2016), as a Captum method.

:class:`GradientLinearSurrogate` takes feature or embedding inputs (``attribute``) and fixed-size feature vectors
such as bags of words (``fit``/``predict``/``agreement``); :class:`LayerGradientLinearSurrogate` takes token ids and
attributes at a layer's output (the embedding), ranking words by the :math:`\ell_2` norm of their gradient.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import torch
from captum._utils.common import _format_additional_forward_args, _format_output, _format_tensor_into_tuples, _is_tuple
from captum._utils.typing import TargetType, TensorOrTupleOfTensorsGeneric
from captum.attr import GradientAttribution, LayerAttribution
from torch import Tensor, nn

from captum_text_ext.attr._input_gradients import (
    DIFFERENCES,
    Selector,
    autograd_gradients,
    check_output,
    column_selector,
    finite_difference_gradients,
    target_selector,
)
from captum_text_ext.decomposition.guard import RandomOpCheck
from captum_text_ext.decomposition.bags import known_batch, start_at_layer
from captum_text_ext.decomposition.hooks import ScopedHooks
from captum_text_ext.attr._log_usage import log_usage
from captum_text_ext.attr._streaming import Batches, RunningMean, iterate_batches

__all__ = [
    "Expression",
    "FeatureWeight",
    "GradientLinearSurrogate",
    "LayerGradientLinearSurrogate",
    "NotFittedError",
    "TopFeatures",
]

METHODS = ("autograd", "finite_difference")
"""How :class:`GradientLinearSurrogate` takes derivatives."""


class NotFittedError(ValueError, AttributeError):
    """A fitted attribute was used before ``fit`` (as scikit-learn's ``NotFittedError``)."""


@dataclasses.dataclass(frozen=True)
class FeatureWeight:
    """One feature of the global surrogate.

    Attributes:
        index: the feature's column :math:`j`.
        name: its name (``str(index)`` when no names were given).
        weight: its mean derivative :math:`\\bar g_j`.
    """

    index: int
    name: str
    weight: float


@dataclasses.dataclass(frozen=True)
class TopFeatures:
    """The features with the most positive and the most negative mean derivative (Hechtlinger's Table 2).

    Attributes:
        positive: the ``k`` largest :math:`\\bar g_j`, largest first.
        negative: the ``k`` smallest :math:`\\bar g_j`, smallest first.
    """

    positive: List[FeatureWeight]
    negative: List[FeatureWeight]


@dataclasses.dataclass(frozen=True)
class Expression:
    """A word with a large gradient norm and the rest of the convolution window after it (Hechtlinger's Table 1).

    Attributes:
        position: the selected word's position :math:`t`.
        positions: :math:`t, t + 1, \\dots` up to the window's width, cut at the end of the sentence.
        token_ids: the token ids at ``positions``.
        norm: :math:`\\lVert \\partial f / \\partial z_t \\rVert_2` (of what ``attribute`` returns).
    """

    position: int
    positions: Tuple[int, ...]
    token_ids: Tuple[int, ...]
    norm: float


_TOKEN_HINT = "for token ids use LayerGradientLinearSurrogate(model, embedding_layer)"


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"Expected `{name}` to be an int >= {low}, but got {value!r}")
    return value


class GradientLinearSurrogate(GradientAttribution):
    r"""Input gradients of a model (Hechtlinger, 2016): locally, which inputs move this prediction; globally, their
    mean over a dataset as a linear model that approximates the classifier.

    **Local view** (:meth:`attribute`): the signed partial derivatives of the explained output :math:`f`,

    .. math::
        g_k(x) = \frac{\partial f}{\partial x_k}(x),

    shaped like the inputs (:math:`g(x) \odot x` with ``multiply_by_inputs=True``). ``method="autograd"`` takes
    them by backpropagation; ``method="finite_difference"`` estimates them for models autograd cannot differentiate,
    with two forward passes per coordinate, batched over coordinates:

    .. math::
        \text{central (default): } \frac{f(x + h e_k) - f(x - h e_k)}{2h}, \qquad
        \text{forward (the paper's Sec. 3): } \frac{f(x + h e_k) - f(x)}{h}.

    Central differences have error :math:`O(h^2)` and agree with autograd to :math:`\le 10^{-4}` relative on smooth
    float64 models; forward differences have error :math:`O(h)`. :math:`h` is absolute; in float32 use a larger
    :math:`h` (about :math:`10^{-2}`), since rounding error grows as :math:`\epsilon_\text{mach} / h`. Across a
    ReLU kink a finite difference and the one-sided derivative autograd returns can differ.

    **Global view** (:meth:`fit`): over a dataset :math:`X` of fixed-size feature vectors (e.g. binary bags of words)

    .. math::
        \bar g = \frac{1}{|X|} \sum_{x \in X} \nabla f(x), \qquad
        b = \frac{1}{|X|} \sum_{x \in X} \big(f(x) - \langle \bar g, x \rangle\big) - \tau
          = \overline{f(x)} - \langle \bar g, \bar x \rangle - \tau,

    stored as ``coef_`` (:math:`\bar g`) and ``intercept_`` (:math:`b`). The surrogate's class (:meth:`predict`) is
    1 when :math:`\langle \bar g, x \rangle + b > 0`, else 0: the paper's rule is :math:`\langle \bar g, x \rangle > 0`,
    without intercept (``fit(..., fit_intercept=False)``, which sets :math:`b = 0`). :math:`\tau` is the decision
    threshold of :math:`f` (``threshold``): 0.5 when :math:`f` is a probability, 0 for a logit difference or
    log-odds; the model's own class is 1 when :math:`f(x) > \tau` (:meth:`model_predict`), so that
    :math:`\bar g^\top x + b` approximates :math:`f(x) - \tau`. With several classes (``fit`` with ``target=None`` on
    an :math:`(N, C)` output) there is one :math:`\bar g_c` and :math:`b_c` per class and both the surrogate and the
    model predict the argmax (:math:`\tau` then cancels). :meth:`agreement` is the fraction of examples on which the
    surrogate and the model predict the same class (the paper: 24907 of 25000, 99.6%, on IMDB).

    The mean is streamed: one batch is in memory at a time and the running mean is updated once per batch, so memory
    does not depend on the dataset's size. A mean gradient over *positions* of a sequence would mean nothing, so the
    global surrogate accepts only :math:`(N, D)` feature inputs and raises ``ValueError`` otherwise.

    **Categorical inputs.** A binary feature :math:`x_j \in \{0, 1\}` has no derivative; as in the paper, the
    derivative is taken as if :math:`x_j \in (-\epsilon, 1 + \epsilon)`: the model's formula is differentiated in
    :math:`x_j` at 0 or 1. Indicator features extend this to any categorical variable.

    The model runs as it is (call ``model.eval()`` first: dropout would make the gradients random); it is not
    changed, and no gradient is accumulated into its parameters. The examples of a batch must be independent of each
    other, as for every Captum gradient method.

    Args:
        forward_func: the model, or any function of the inputs (and ``additional_forward_args``) returning
            :math:`(N,)` or :math:`(N, C)` scores; e.g. ``lambda x: model.forward_features(x).softmax(-1)`` to
            explain class probabilities, as the paper does.
        multiply_by_inputs: ``attribute`` returns :math:`g(x) \odot x` (gradient × input) instead of :math:`g(x)`;
            the global surrogate always uses :math:`\bar g`.
        method: ``"autograd"`` or ``"finite_difference"``.
        h: the finite-difference step :math:`h > 0`.
        difference: ``"central"`` or ``"forward"`` (finite differences only).
        perturbations_per_eval: coordinates evaluated in one forward call by finite differences (each a perturbed
            copy of the batch, two for central differences), as in Captum's ``FeatureAblation``.

    Attributes:
        coef_: :math:`\bar g`, :math:`(D,)`, or :math:`(C, D)` with several classes.
        intercept_: :math:`b`, a 0-dimensional tensor, or :math:`(C,)`; zeros when fitted without intercept.
        n_samples_seen_: the number of examples :math:`|X|` the mean is over.
        n_features_in_: :math:`D`.
        target_: the ``target`` of :meth:`fit` (an output column, or ``None`` for every column).
        threshold_: :math:`\tau`.

    Raises:
        ValueError: for an unknown ``method`` or ``difference``, a non-positive or non-finite ``h`` or a
            ``perturbations_per_eval`` below 1.

    References:
        Y. Hechtlinger. Interpretation of Prediction Models Using the Input Gradient. NIPS 2016 Workshop on
        Interpretable Machine Learning in Complex Systems. arXiv:1611.07634.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> net = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
        >>> x = torch.randint(0, 2, (20, 6)).double()          # 20 binary bags of 6 words
        >>> probability = lambda features: net(features).softmax(-1)
        >>> surrogate = GradientLinearSurrogate(probability)
        >>> surrogate.attribute(x[:3], target=1).shape        # local: d p(positive) / d x, per example
        torch.Size([3, 6])
        >>> surrogate = surrogate.fit(x, target=1, threshold=0.5)
        >>> surrogate.coef_.shape, surrogate.n_samples_seen_  # global: the mean gradient
        (torch.Size([6]), 20)
        >>> surrogate.agreement(x)                            # surrogate vs model, same class
        1.0
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        multiply_by_inputs: bool = False,
        method: str = "autograd",
        h: float = 1e-4,
        difference: str = "central",
        perturbations_per_eval: int = 32,
    ) -> None:
        if not callable(forward_func):
            raise TypeError(f"Expected `forward_func` to be callable, but got {type(forward_func).__name__}")
        if method not in METHODS:
            raise ValueError(f"Expected `method` in {METHODS}, but got {method!r}")
        if difference not in DIFFERENCES:
            raise ValueError(f"Expected `difference` in {DIFFERENCES}, but got {difference!r}")
        if isinstance(h, bool) or not isinstance(h, (int, float)) or not math.isfinite(h) or h <= 0:
            raise ValueError(f"Expected `h` to be a finite number > 0, but got {h!r}")
        _check_int("perturbations_per_eval", perturbations_per_eval, 1)
        GradientAttribution.__init__(self, forward_func)
        self._multiply_by_inputs = bool(multiply_by_inputs)
        self._method = method
        self._h = float(h)
        self._difference = difference
        self._perturbations_per_eval = perturbations_per_eval

    # The constructor's arguments, checked there, are read-only: a new setting needs a new object.

    @property
    def multiplies_by_inputs(self) -> bool:
        """Whether ``attribute`` returns gradient × input."""
        return self._multiply_by_inputs

    @property
    def method(self) -> str:
        """``"autograd"`` or ``"finite_difference"``."""
        return self._method

    @property
    def h(self) -> float:
        """The finite-difference step."""
        return self._h

    @property
    def difference(self) -> str:
        """``"central"`` or ``"forward"`` (finite differences only)."""
        return self._difference

    @property
    def perturbations_per_eval(self) -> int:
        """Coordinates evaluated in one forward call by finite differences."""
        return self._perturbations_per_eval

    # ------------------------------------------------------------------------------------------------------------
    # Local view
    # ------------------------------------------------------------------------------------------------------------

    @log_usage
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
    ) -> TensorOrTupleOfTensorsGeneric:
        r"""The signed partial derivatives :math:`g_k(x) = \partial f / \partial x_k` (times :math:`x_k` with
        ``multiply_by_inputs``) of the target output.

        Args:
            inputs: floating-point inputs :math:`(N, \dots)`, a tensor or a tuple of tensors (features, or
                embeddings :math:`(N, T, E)`).
            target: Captum's target: ``None`` (the output is one score per example), an int or a tuple (the same
                output index for every example), or a list or tensor of :math:`N` of them (one per example).
            additional_forward_args: passed to the model after ``inputs`` (e.g. lengths); tensors in it must have the
                batch first (finite differences tile them).

        Returns:
            The derivatives, same structure and shapes as ``inputs`` (contiguous).

        Raises:
            TypeError: for inputs that are not floating-point (token ids: use
                :class:`LayerGradientLinearSurrogate`).
            ValueError: for a target that does not select one output per example, a model whose output does not
                have the batch first, or (autograd) an output that does not depend on the inputs.
        """
        is_tuple = _is_tuple(inputs)
        formatted = _format_tensor_into_tuples(inputs)
        assert formatted is not None
        args = _format_additional_forward_args(additional_forward_args) or ()
        _, grads = self._gradients(formatted, args, target_selector(target, int(formatted[0].shape[0])))
        attributions = tuple(
            (g[:, 0] * x if self.multiplies_by_inputs else g[:, 0]).contiguous() for g, x in zip(grads, formatted)
        )
        return _format_output(is_tuple, attributions)

    def attribute_future(self) -> None:
        """Not supported.

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError("attribute_future is not implemented for GradientLinearSurrogate")

    def _gradients(
        self, inputs: Tuple[Tensor, ...], args: Tuple[Any, ...], select: Selector
    ) -> Tuple[Tensor, Tuple[Tensor, ...]]:
        with RandomOpCheck(type(self).__name__):
            if self.method == "autograd":
                return autograd_gradients(self.forward_func, inputs, args, select, _TOKEN_HINT)
            return finite_difference_gradients(
                self.forward_func, inputs, args, select, self.h, self.difference, self.perturbations_per_eval,
                _TOKEN_HINT,
            )

    # ------------------------------------------------------------------------------------------------------------
    # Global view
    # ------------------------------------------------------------------------------------------------------------

    def fit(
        self,
        data: Batches,
        target: Optional[int] = None,
        threshold: float = 0.0,
        fit_intercept: bool = True,
        batch_size: int = 256,
    ) -> "GradientLinearSurrogate":
        r"""Accumulate the mean gradient :math:`\bar g` (and the intercept :math:`b`) over ``data``.

        Args:
            data: the examples, one batch in memory at a time: a tensor :math:`(N, D)`; a tuple
                ``(inputs, *additional_forward_args)`` of the whole set; a ``Dataset`` of single examples (batched
                by ``batch_size``); or a ``DataLoader`` (or any iterable) of batches, each a tensor or a tuple
                ``(inputs, *additional_forward_args)``.
            target: the output column :math:`f` explained (e.g. 1 for the positive class), or ``None``: the model's
                output is one score per example (:math:`(N,)` or :math:`(N, 1)`), or :math:`(N, C)` with one
                surrogate per class.
            threshold: :math:`\tau`, the decision threshold of :math:`f`: 0.5 for a probability, 0 for a logit
                difference (see the class docstring).
            fit_intercept: learn :math:`b`; ``False`` gives the paper's rule :math:`\langle \bar g, x \rangle > 0`.
            batch_size: rows per batch when ``data`` is a tensor, a tuple or a ``Dataset``.

        Returns:
            ``self``, fitted: ``coef_``, ``intercept_``, ``n_samples_seen_``, ``n_features_in_``, ``target_``,
            ``threshold_``.

        Raises:
            ValueError: for inputs that are not :math:`(N, D)` floating-point features, batches with different
                :math:`D`, a target that is not an int or ``None``, a non-finite threshold, or no examples.
        """
        if target is not None and (isinstance(target, bool) or not isinstance(target, int)):
            raise ValueError(
                f"Expected `target` to be an output column (int) or None for fit, but got {target!r}; a per-example "
                "target has no global meaning"
            )
        if not math.isfinite(threshold):
            raise ValueError(f"Expected a finite `threshold`, but got {threshold!r}")
        select = column_selector(target)
        gradients, outputs, features = RunningMean(), RunningMean(), RunningMean()
        for inputs, args in iterate_batches(data, batch_size):
            x = self._features(inputs, None if features.mean is None else int(features.mean.shape[0]))
            scores, (grad,) = self._gradients((x,), args, select)
            gradients.update(grad)
            outputs.update(scores)
            features.update(x)
        if gradients.mean is None or outputs.mean is None or features.mean is None:
            raise ValueError("Expected `data` to hold at least one example, but it was empty")
        coef, mean_output, mean_input = gradients.mean, outputs.mean, features.mean
        intercept = mean_output - coef @ mean_input - threshold if fit_intercept else torch.zeros_like(mean_output)
        several = coef.shape[0] > 1
        self.coef_ = coef if several else coef[0]
        self.intercept_ = intercept if several else intercept[0]
        self.n_samples_seen_ = gradients.count
        self.n_features_in_ = int(mean_input.shape[0])
        self.target_ = target
        self.threshold_ = float(threshold)
        return self

    @staticmethod
    def _features(inputs: Any, width: Optional[int]) -> Tensor:
        if not isinstance(inputs, Tensor) or inputs.dim() != 2 or not inputs.is_floating_point():
            got = (f"{inputs.dtype} of shape {tuple(inputs.shape)}" if isinstance(inputs, Tensor)
                   else type(inputs).__name__)
            raise ValueError(
                "Expected fixed-size floating-point feature inputs of shape (N, D), such as bags of words, but got "
                f"{got}; the global surrogate is defined for such inputs only (a mean gradient over sequence "
                "positions means nothing): use attribute() or LayerGradientLinearSurrogate for per-token gradients"
            )
        if width is not None and inputs.shape[1] != width:
            raise ValueError(f"Expected every batch to have {width} features, but got {inputs.shape[1]}")
        return inputs

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit(data) first")

    def decision_function(self, inputs: Tensor) -> Tensor:
        r"""The surrogate's scores :math:`\langle \bar g, x \rangle + b`: :math:`(N,)`, or :math:`(N, C)` with several
        classes.

        Raises:
            NotFittedError: before :meth:`fit`.
            ValueError: for inputs that are not :math:`(N, D)` with the fitted :math:`D`.
        """
        self._check_fitted()
        x = self._features(inputs, self.n_features_in_).to(self.coef_.dtype)
        return x @ (self.coef_.mT if self.coef_.dim() == 2 else self.coef_) + self.intercept_

    def predict(self, inputs: Tensor) -> Tensor:
        r"""The surrogate's class per example: 1 if :math:`\langle \bar g, x \rangle + b > 0` else 0 (:math:`b = 0`
        when fitted without intercept, the paper's rule); with several classes the argmax.

        Returns:
            :math:`(N,)` int64.
        """
        scores = self.decision_function(inputs)
        return scores.argmax(-1) if scores.dim() == 2 else (scores > 0).long()

    @torch.no_grad()
    def model_predict(self, inputs: Tensor, additional_forward_args: Optional[object] = None) -> Tensor:
        r"""The model's class as the surrogate sees it: 1 if :math:`f(x) > \tau` else 0 for the fitted output,
        the argmax with several classes.

        Returns:
            :math:`(N,)` int64.
        """
        self._check_fitted()
        args = _format_additional_forward_args(additional_forward_args) or ()
        with RandomOpCheck(type(self).__name__):
            output = check_output(self.forward_func(inputs, *args), int(inputs.shape[0]))
        scores = column_selector(self.target_)(output, 1)
        return scores.argmax(-1) if scores.shape[1] > 1 else (scores[:, 0] > self.threshold_).long()

    def agreement(self, data: Batches, batch_size: int = 256) -> float:
        """The fraction of the examples of ``data`` on which :meth:`predict` and :meth:`model_predict` agree
        (with the intercept when fitted with one).

        Args:
            data: as for :meth:`fit`.
            batch_size: as for :meth:`fit`.

        Raises:
            NotFittedError: before :meth:`fit`.
            ValueError: for bad inputs, or no examples.
        """
        self._check_fitted()
        same, count = 0, 0
        for inputs, args in iterate_batches(data, batch_size):
            surrogate = self.predict(inputs)
            same += int((surrogate == self.model_predict(inputs, args).to(surrogate.device)).sum())
            count += int(inputs.shape[0])
        if count == 0:
            raise ValueError("Expected `data` to hold at least one example, but it was empty")
        return same / count

    def top_features(
        self,
        k: int,
        feature_names: Optional[Sequence[str]] = None,
        class_index: Optional[int] = None,
        exclude: Sequence[int] = (),
    ) -> TopFeatures:
        r"""The ``k`` features with the largest and the ``k`` with the smallest mean derivative :math:`\bar g_j`
        (the paper's Table 2).

        Args:
            k: how many on each side.
            feature_names: one name per feature (e.g. the vocabulary's words).
            class_index: with several classes, whose :math:`\bar g_c`.
            exclude: feature indices never listed (e.g. the padding and unknown-word columns of a bag of words).

        Raises:
            NotFittedError: before :meth:`fit`.
            ValueError: for a bad ``k``, ``feature_names`` of the wrong length, or a missing or bad
                ``class_index``.
        """
        self._check_fitted()
        _check_int("k", k, 1)
        coef = self.coef_
        if coef.dim() == 2:
            if class_index is None or not -coef.shape[0] <= class_index < coef.shape[0]:
                raise ValueError(
                    f"Expected `class_index` in [0, {coef.shape[0]}) for a surrogate with {coef.shape[0]} classes, "
                    f"but got {class_index!r}"
                )
            coef = coef[class_index]
        if feature_names is not None and len(feature_names) != coef.shape[0]:
            raise ValueError(f"Expected {coef.shape[0]} `feature_names`, but got {len(feature_names)}")
        keep = torch.ones_like(coef, dtype=torch.bool)
        keep[list(exclude)] = False
        candidates = torch.nonzero(keep).flatten()
        values = coef[candidates]
        order = torch.argsort(values, descending=True, stable=True)
        count = min(k, int(order.numel()))

        def weight(position: int) -> FeatureWeight:
            index = int(candidates[position])
            name = feature_names[index] if feature_names is not None else str(index)
            return FeatureWeight(index, name, float(coef[index]))

        return TopFeatures(
            positive=[weight(int(p)) for p in order[:count]],
            negative=[weight(int(p)) for p in order.flip(0)[:count]],
        )


class LayerGradientLinearSurrogate(LayerAttribution, GradientAttribution):
    r""":class:`GradientLinearSurrogate`'s local view for token-id models: the gradients at the output of ``layer``
    (the embedding), as Hechtlinger's first example (Sec. 4.1) and Captum's ``LayerGradientXActivation``.

    Words are categorical, so the derivative is taken with respect to each word's embedding :math:`z_t`,
    :math:`\partial f / \partial z_t \in \mathbb{R}^E`, and words are ranked by its :math:`\ell_2` norm
    (:meth:`token_norms`), "a proxy for the magnitude of the slope in the direction of the gradient".
    :meth:`top_expressions` lists, per sentence, the ``k`` words with the largest norm, each followed by the rest of
    the convolution window it opens (the paper's Table 1: three words for width-3 convolutions).

    Everything before ``layer`` runs untouched and takes no gradient; the hook that captures the layer's output is
    removed after every call, also when it raises. There is no global surrogate here: a mean over positions of a
    sequence means nothing (use :class:`GradientLinearSurrogate` on fixed-size features).

    Args:
        forward_func: the model, taking token ids (and ``additional_forward_args``).
        layer: the module whose output (or input) is attributed; it must run once per forward pass.
        multiply_by_inputs: return gradient × layer activation instead of the gradient.
        device_ids: must be ``None``: Captum's layer methods use it to reassemble the layer's output of a
            ``DataParallel`` model from its devices, which this class does not do.

    Raises:
        TypeError: when ``forward_func`` is not callable or ``layer`` is not an ``nn.Module``.
        ValueError: for ``device_ids`` other than ``None``.

    Examples:
        >>> from captum_text_ext.models import EmbeddingCNN
        >>> _ = torch.manual_seed(0)
        >>> model = EmbeddingCNN(vocab_size=20, num_classes=2, embedding_dim=4, num_filters=5).eval()
        >>> ids, lengths = torch.tensor([[2, 3, 4, 5, 6], [7, 8, 9, 0, 0]]), torch.tensor([5, 3])
        >>> surrogate = LayerGradientLinearSurrogate(model, model.embedding)
        >>> surrogate.attribute(ids, target=1, additional_forward_args=lengths).shape
        torch.Size([2, 5, 4])
        >>> top = surrogate.top_expressions(ids, k=2, window=3, target=1, additional_forward_args=lengths,
        ...                                 lengths=lengths)
        >>> [len(expressions) for expressions in top], max(len(e.positions) for e in top[1])
        ([2, 2], 3)
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: nn.Module,
        multiply_by_inputs: bool = False,
        device_ids: Optional[List[int]] = None,
    ) -> None:
        if not callable(forward_func):
            raise TypeError(f"Expected `forward_func` to be callable, but got {type(forward_func).__name__}")
        if not isinstance(layer, nn.Module):
            raise TypeError(f"Expected `layer` to be an nn.Module, but got {type(layer).__name__}")
        LayerAttribution.__init__(self, forward_func, layer, device_ids)
        GradientAttribution.__init__(self, forward_func)
        self._multiply_by_inputs = bool(multiply_by_inputs)

    @property
    def multiplies_by_inputs(self) -> bool:
        """Whether ``attribute`` returns gradient × layer activation."""
        return self._multiply_by_inputs

    @property
    def device_ids(self) -> Optional[List[int]]:
        """Always ``None`` (see the class's arguments); setting anything else raises ``ValueError``."""
        return None

    @device_ids.setter
    def device_ids(self, value: Optional[List[int]]) -> None:
        if value is not None:
            raise ValueError(
                f"Expected `device_ids` None: {type(self).__name__} does not reassemble a DataParallel model's layer "
                f"output across devices, but got {value!r}"
            )

    def attribute_future(self) -> None:
        """Not supported.

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError("attribute_future is not implemented for LayerGradientLinearSurrogate")

    @log_usage
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
        attribute_to_layer_input: bool = False,
    ) -> Union[Tensor, Tuple[Tensor, ...]]:
        r"""The gradient of the target output with respect to the layer's output :math:`\partial f / \partial z`
        (times :math:`z` with ``multiply_by_inputs``).

        Args:
            inputs: the model's inputs (token ids :math:`(N, T)`), a tensor or a tuple.
            target: Captum's target (see :meth:`GradientLinearSurrogate.attribute`).
            additional_forward_args: passed to the model after ``inputs`` (e.g. lengths).
            attribute_to_layer_input: attribute the layer's floating-point inputs instead of its output.

        Returns:
            Shaped like the layer's output (:math:`(N, T, E)` for an embedding), a tuple when the layer returns one.

        Raises:
            ValueError: when the layer does not run exactly once, has no floating-point output, or the target does
                not select one output per example.
        """
        formatted = _format_tensor_into_tuples(inputs)
        assert formatted is not None
        args = _format_additional_forward_args(additional_forward_args) or ()
        known = known_batch(self.layer, attribute_to_layer_input, formatted[0])
        if known is not None:
            target_selector(target, known)  # refuses a bad target before the forward pass
        with ScopedHooks() as hooks, RandomOpCheck(type(self).__name__), torch.enable_grad():
            capture = start_at_layer(self.layer, hooks, _leaf, attribute_to_layer_input)
            output = self.forward_func(*formatted, *args)
            leaves = capture.require()
            batch = known if known is not None else int(output.shape[0]) if isinstance(output, Tensor) else 0
            scores = target_selector(target, batch)(check_output(output, batch), 1)
            if not scores.requires_grad:
                raise ValueError("The selected output does not depend on the layer's output through autograd")
            grads = torch.autograd.grad(scores.sum(), leaves, allow_unused=True)
        result = tuple(
            ((torch.zeros_like(z) if g is None else g) * (z.detach() if self.multiplies_by_inputs else 1)).contiguous()
            for g, z in zip(grads, leaves)
        )
        return _format_output(capture.is_tuple, result)

    def token_norms(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
    ) -> Tensor:
        r""":math:`\lVert \partial f / \partial z_t \rVert_2` per token: the norm over the last dimension of
        :meth:`attribute`'s :math:`(N, T, E)` result.

        Returns:
            :math:`(N, T)`.

        Raises:
            ValueError: when the layer's output is not one :math:`(N, T, E)` tensor.
        """
        gradients = self.attribute(inputs, target, additional_forward_args)
        if not isinstance(gradients, Tensor) or gradients.dim() != 3:
            got = tuple(gradients.shape) if isinstance(gradients, Tensor) else "a tuple"
            raise ValueError(f"Expected the layer to output one (N, T, E) tensor, but got {got}")
        norms: Tensor = torch.linalg.vector_norm(gradients, dim=-1)
        return norms

    def top_expressions(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        k: int,
        window: int,
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
        lengths: Optional[Tensor] = None,
    ) -> List[List[Expression]]:
        r"""Per example, the ``k`` words with the largest gradient norm, each with the rest of its window (the
        paper's Table 1), largest norm first.

        Args:
            inputs: token ids :math:`(N, T)` (the first tensor of a tuple).
            k: expressions per example (fewer when a sentence has fewer eligible words).
            window: the expression's width: the selected word and the ``window - 1`` words after it (the
                convolution's width).
            target: Captum's target.
            additional_forward_args: passed to the model after ``inputs``.
            lengths: :math:`(N,)` real tokens per example: later positions are never selected and windows stop at
                the sentence's end (default: all :math:`T` positions).

        Words whose gradient is exactly zero (e.g. padding the model masks) are never selected.

        Raises:
            ValueError: for bad ``k``, ``window`` or ``lengths``, or inputs that are not :math:`(N, T)` token ids.
        """
        _check_int("k", k, 1)
        _check_int("window", window, 1)
        ids = inputs[0] if isinstance(inputs, tuple) else inputs
        if not isinstance(ids, Tensor) or ids.dim() != 2 or ids.is_floating_point():
            raise ValueError("Expected token ids of shape (N, T) as the (first) input, but got "
                             f"{tuple(ids.shape) if isinstance(ids, Tensor) else type(ids).__name__}")
        batch, steps = ids.shape
        ends = torch.full((batch,), steps, dtype=torch.long)
        if lengths is not None:
            if tuple(lengths.shape) != (batch,) or int(lengths.min()) < 0 or int(lengths.max()) > steps:
                raise ValueError(f"Expected `lengths` of shape ({batch},) with values in [0, {steps}], but got "
                                 f"shape {tuple(lengths.shape)}")
            ends = lengths.detach().cpu().long()
        norms = self.token_norms(inputs, target, additional_forward_args).detach().cpu()
        positions = torch.arange(steps)
        eligible = (positions.unsqueeze(0) < ends.unsqueeze(1)) & (norms > 0)
        ranked = norms.masked_fill(~eligible, -1.0)
        values, order = ranked.topk(min(k, steps), dim=1)
        token_ids = ids.detach().cpu().tolist()
        result: List[List[Expression]] = []
        for row, (row_values, row_order) in enumerate(zip(values.tolist(), order.tolist())):
            expressions = []
            for norm, start in zip(row_values, row_order):
                if norm < 0:
                    break
                span = tuple(range(start, min(start + window, int(ends[row]))))
                expressions.append(Expression(start, span, tuple(token_ids[row][t] for t in span), norm))
            result.append(expressions)
        return result


def _leaf(tensor: Tensor) -> Tensor:
    return tensor.detach().requires_grad_(True)

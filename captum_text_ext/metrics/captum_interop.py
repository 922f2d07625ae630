r"""Captum's own explanation metrics, ``infidelity`` and ``sensitivity_max``, on embedded text.

Both run through :mod:`captum.metrics` unchanged; this module supplies what text needs: lengths in
``additional_forward_args``, a seeded perturbation, and contiguous tensors (Captum reshapes attributions with
``view``, which fails on the non-contiguous gradients an ``nn.LSTM`` backward can return).

- **Infidelity** (Yeh et al. 2019) with Gaussian noise :math:`I \sim \mathcal{N}(0, \sigma^2)` on every entry of
  every real token's embedding (padding is left alone):

  .. math::
      \mathrm{INFD}(\Phi, f, x) = \mathbb{E}_I\Big[\big(I^\top \Phi(x) - (f(x) - f(x - I))\big)^2\Big],

  where :math:`f` is the target logit; with ``normalize=True`` (default) :math:`\Phi` is first rescaled by the
  factor that minimizes the expectation, so methods on different scales compare (Captum's ``normalize``).
  Lower is better.
- **Sensitivity-max**: the largest change :math:`\|\Phi(x + \delta) - \Phi(x)\| / \|\Phi(x)\|` (Frobenius norms)
  over uniform perturbations :math:`\delta` of radius ``perturb_radius`` on the real tokens' embeddings. Lower is
  better.

Both draw from a private generator seeded with ``seed``, so equal arguments give equal values.

References:
    C.-K. Yeh, C.-Y. Hsieh, A. S. Suggala, D. I. Inouye, P. Ravikumar. On the (In)fidelity and Sensitivity of
    Explanations. NeurIPS 2019. https://arxiv.org/abs/1901.09392
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Tuple, Union

import torch
from captum.metrics import infidelity, sensitivity_max
from torch import Tensor

from captum_text_ext.metrics.perturbation import ForwardFunc, check_target

__all__ = ["text_infidelity", "text_sensitivity_max"]

ExplanationFunc = Callable[..., Tensor]
"""``explain(embeddings (N, T, E), lengths (N,), target (N,)) -> attributions (N, T, E)``."""


def _real_tokens(inputs: Tensor, lengths: Tensor) -> Tensor:
    positions = torch.arange(inputs.shape[1], device=inputs.device).unsqueeze(0)
    return (positions < lengths.to(inputs.device).unsqueeze(1)).unsqueeze(-1).to(inputs.dtype)


def _single(inputs: Union[Tensor, Tuple[Tensor, ...]]) -> Tensor:
    """Captum hands a single input over as a one-element tuple."""
    return inputs[0] if isinstance(inputs, tuple) else inputs


def _draw(shape: torch.Size, generator: torch.Generator, like: Tensor, uniform: bool) -> Tensor:
    noise = (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1 if uniform
             else torch.randn(shape, generator=generator, dtype=torch.float64))
    return noise.to(device=like.device, dtype=like.dtype)


def text_infidelity(
    forward_func: ForwardFunc,
    embeddings: Tensor,
    attributions: Tensor,
    lengths: Tensor,
    target: Union[int, Sequence[int], Tensor],
    noise_std: float = 0.1,
    n_perturb_samples: int = 10,
    normalize: bool = True,
    seed: int = 0,
    additional_forward_args: Optional[Tuple[Any, ...]] = None,
    max_examples_per_batch: Optional[int] = None,
) -> Tensor:
    """Captum's infidelity of ``attributions`` with seeded Gaussian noise on the real tokens (module docstring).

    Args:
        forward_func: ``forward_func(embeddings, lengths, *additional_forward_args)`` returning logits.
        embeddings: :math:`(N, T, E)`; attributions: the same shape (any method's raw output).
        lengths: :math:`(N,)`.
        target: the explained class (an int or one per sentence).
        noise_std: :math:`\\sigma`.
        n_perturb_samples: noise draws per sentence.
        normalize: rescale the attributions optimally first (Captum's ``normalize``).
        seed: seeds the noise.
        additional_forward_args: passed after the lengths.
        max_examples_per_batch: Captum's batching of the perturbed copies.

    Returns:
        :math:`(N,)` infidelity per sentence.

    Raises:
        ValueError: when ``attributions`` is not shaped like ``embeddings``, or ``noise_std`` is not positive.
    """
    if attributions.shape != embeddings.shape:
        raise ValueError(f"Expected `attributions` of shape {tuple(embeddings.shape)} like the embeddings, but got "
                         f"{tuple(attributions.shape)}; pass the raw attribution, not per-token scores")
    if not noise_std > 0:
        raise ValueError(f"Expected `noise_std` > 0, but got {noise_std}")
    generator = torch.Generator().manual_seed(seed)
    classes = check_target(target, embeddings.shape[0], embeddings.device)

    def perturb(inputs: Tensor, lengths_expanded: Tensor, *rest: Any) -> Tuple[Tensor, Tensor]:
        noise = noise_std * _draw(inputs.shape, generator, inputs, uniform=False) * _real_tokens(inputs,
                                                                                                lengths_expanded)
        return noise, inputs - noise

    def perturb_inputs(inputs: Tensor) -> Tuple[Tensor, Tensor]:
        repeats = inputs.shape[0] // embeddings.shape[0]
        return perturb(inputs, lengths.repeat_interleave(repeats))

    scores: Tensor = infidelity(
        forward_func,
        perturb_inputs,
        embeddings.detach().contiguous(),
        attributions.detach().contiguous(),
        additional_forward_args=(lengths, *(additional_forward_args or ())),
        target=classes,
        n_perturb_samples=n_perturb_samples,
        max_examples_per_batch=max_examples_per_batch,
        normalize=normalize,
    )
    return scores


def text_sensitivity_max(
    explanation_func: ExplanationFunc,
    embeddings: Tensor,
    lengths: Tensor,
    target: Union[int, Sequence[int], Tensor],
    perturb_radius: float = 0.02,
    n_perturb_samples: int = 10,
    seed: int = 0,
    max_examples_per_batch: Optional[int] = None,
) -> Tensor:
    """Captum's sensitivity-max of an explanation with seeded uniform noise on the real tokens (module docstring).

    Args:
        explanation_func: ``explain(embeddings, lengths, target)`` returning attributions shaped like the
            embeddings; its output is made contiguous before Captum sees it.
        embeddings: :math:`(N, T, E)`; lengths: :math:`(N,)`.
        target: the explained class (an int or one per sentence).
        perturb_radius: the noise's :math:`L_\\infty` radius.
        n_perturb_samples: perturbations per sentence.
        seed: seeds the noise.
        max_examples_per_batch: Captum's batching of the perturbed copies.

    Returns:
        :math:`(N,)` sensitivity per sentence.
    """
    if not perturb_radius > 0:
        raise ValueError(f"Expected `perturb_radius` > 0, but got {perturb_radius}")
    generator = torch.Generator().manual_seed(seed)
    classes = check_target(target, embeddings.shape[0], embeddings.device)

    def explain(inputs: Any, additional_forward_args: Tuple[Tensor, ...], target: Tensor) -> Tuple[Tensor]:
        (lengths_expanded,) = additional_forward_args
        with torch.enable_grad():  # Captum computes the metric under no_grad; gradient methods need autograd
            attributions = explanation_func(_single(inputs).contiguous(), lengths_expanded, target)
        # a tuple: Captum iterates over the unperturbed explanation as over a tuple of inputs
        return (attributions.detach().contiguous(),)

    def perturb(inputs: Any, perturb_radius: float) -> Tensor:
        single = _single(inputs)
        repeats = single.shape[0] // embeddings.shape[0]
        mask = _real_tokens(single, lengths.repeat_interleave(repeats))
        return single + perturb_radius * _draw(single.shape, generator, single, uniform=True) * mask

    sensitivity: Tensor = sensitivity_max(
        explain,
        embeddings.detach().contiguous(),
        perturb_func=perturb,
        perturb_radius=perturb_radius,
        n_perturb_samples=n_perturb_samples,
        max_examples_per_batch=max_examples_per_batch,
        additional_forward_args=(lengths,),
        target=classes,
    )
    return sensitivity

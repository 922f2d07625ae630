r"""What the registry's methods explain: the target logit, or the logit difference — the same for every method.

Every method of :data:`~captum_text_ext.explain.methods.METHODS` explains one scalar function of the layer's output
:math:`x` per example, chosen by :attr:`~captum_text_ext.explain.layers.LayerBatch.output`:

- ``"logit"`` (the default): the target class's logit,

  .. math:: g(x) = z_t(x);

- ``"logit_difference"``: the target logit minus the largest other logit,

  .. math:: g(x) = z_t(x) - z_o(x), \qquad o = \operatorname*{arg\,max}_{j \ne t} z_j(x_0),

  where the contrast class :math:`o` is the largest other class *at the explained input* :math:`x_0` and is then
  held fixed. So every method reads the same smooth function: a gradient at :math:`x_0`, Integrated Gradients'
  path, DeepLift's reference, every perturbed copy of Occlusion, FeatureAblation, ShapleyValueSampling and Lime, and
  the decompositions (LRP, CD), which explain the one forward pass at :math:`x_0`. (A contrast chosen anew at each
  perturbed input would make :math:`g` piecewise, and a decomposition could not follow its switches.) For a
  two-class model :math:`o = 1 - t`: the :math:`\beta_{pos} - \beta_{neg}` of Murdoch et al. (2018).

How each method reads it: Captum's methods and :class:`~captum_text_ext.LayerGradientLinearSurrogate` run the forward
pass wrapped in :class:`ContrastedOutput`, whose column :math:`c` is :math:`z_c - z_o`, so ``target=t`` selects
:math:`g`; the contrast travels as the last forward argument, which Captum expands with the batch for perturbed and
path copies. :class:`~captum_text_ext.LayerContextualDecomposition` takes it as its ``contrast``
(:math:`\beta_t - \beta_o`). :class:`~captum_text_ext.LayerLSTMLRP` returns the relevance of target :math:`t` minus
that of :math:`o`: its rules pass relevance on linearly, so this is LRP started from the output relevance
:math:`R_t = z_t, R_o = -z_o`.
"""

from __future__ import annotations

from typing import Any, Dict

import torch
from torch import Tensor, nn

__all__ = ["OUTPUTS", "ContrastedOutput", "check_output", "largest_other_class"]

OUTPUTS: Dict[str, str] = {
    "logit": "the target logit z_t",
    "logit_difference": "the target logit minus the largest other logit at the input, z_t − z_o",
}
"""What a method can explain, with the words reports print (module docstring)."""


def check_output(output: str) -> None:
    """Raise ``ValueError`` unless ``output`` is a key of :data:`OUTPUTS`."""
    if output not in OUTPUTS:
        raise ValueError(f"Expected `output` to be one of {sorted(OUTPUTS)}, but got {output!r}")


def largest_other_class(logits: Tensor, target: Tensor) -> Tensor:
    """The class of the largest logit other than the target, per example (ties: the lowest index).

    Args:
        logits: :math:`(N, C)`, :math:`C \\ge 2`.
        target: :math:`(N,)` class indices.

    Raises:
        ValueError: for fewer than two classes, or a target of another shape.

    Examples:
        >>> largest_other_class(torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]]), torch.tensor([0, 0]))
        tensor([2, 1])
    """
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(
            f"The logit difference needs logits of shape (N, C) with C >= 2 classes, but got {tuple(logits.shape)}"
        )
    if target.shape != logits.shape[:1]:
        raise ValueError(f"Expected one target per example, shape {tuple(logits.shape[:1])}, but got "
                         f"{tuple(target.shape)}")
    others = logits.detach().clone()
    others.scatter_(1, target.view(-1, 1).to(logits.device), float("-inf"))
    return others.argmax(dim=1)


class ContrastedOutput(nn.Module):
    """A forward pass whose column :math:`c` is :math:`z_c - z_o`, the contrast class :math:`o` given per example as
    the *last* forward argument: ``ContrastedOutput(f)(*args, contrast) = f(*args) - f(*args)[:, contrast]``.

    With ``target=t`` a Captum method then explains :math:`z_t - z_o` (module docstring). The wrapped forward is
    called as it is; nothing about it changes.

    Examples:
        >>> forward = ContrastedOutput(lambda x: x * torch.tensor([1.0, 2.0, 3.0]))
        >>> forward(torch.ones(2, 3), torch.tensor([2, 0]))
        tensor([[-2., -1.,  0.],
                [ 0.,  1.,  2.]])

        Any Captum method then explains :math:`z_t - z_o`, the contrast classes passed as the last additional
        forward argument (here the gradient of :math:`z_1 - z_2`):

        >>> from captum.attr import Saliency
        >>> weights = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])  # three classes over two features
        >>> logits = ContrastedOutput(lambda x: x @ weights.t())
        >>> x = torch.ones(1, 2, requires_grad=True)
        >>> Saliency(logits).attribute(x, target=1, additional_forward_args=(torch.tensor([2]),), abs=False)
        tensor([[-1.,  1.]])
    """

    def __init__(self, forward: Any) -> None:
        super().__init__()
        self.wrapped = forward

    def forward(self, *args: Any) -> Tensor:
        """``wrapped(*args[:-1])`` minus its column ``args[-1]`` (one class index per example)."""
        if not args or not isinstance(args[-1], Tensor):
            raise TypeError("Expected the contrast classes, one per example, as the last forward argument")
        *inputs, contrast = args
        logits = self.wrapped(*inputs)
        if not isinstance(logits, Tensor) or logits.dim() != 2 or contrast.shape != logits.shape[:1]:
            raise ValueError(
                f"Expected logits (N, C) and one contrast class per example (N,), but got "
                f"{getattr(logits, 'shape', type(logits).__name__)} and {tuple(contrast.shape)}"
            )
        return logits - logits.gather(1, contrast.view(-1, 1).to(logits.device))


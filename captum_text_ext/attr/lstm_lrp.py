r"""LSTMLRP: layer-wise relevance propagation through LSTM/GRU gates (Arras et al., 2017), as a Captum method.

:class:`LSTMLRP` takes embeddings; :class:`LayerLSTMLRP` takes token ids and attributes at a layer's output (the
embedding), like Captum's ``LayerLRP`` and ``LayerIntegratedGradients``. The Captum-facing machinery both share with
:class:`~captum_text_ext.TransformerLRP` is in :mod:`captum_text_ext.attr._guarded_lrp`.
"""

from __future__ import annotations

from typing import Callable, List, Optional

import torch
from captum.attr import LayerAttribution
from torch import Tensor, nn

from captum_text_ext.attr._guarded_lrp import GuardedLRP, LayerGuardedLRP, LRPDecomposition
from captum_text_ext.decomposition.guard import OpTable
from captum_text_ext.decomposition.lrp import EpsilonRule, LRPRun, lrp_op_table

__all__ = ["LSTMLRP", "LRPDecomposition", "LayerLSTMLRP"]


class LSTMLRP(GuardedLRP):
    r"""Layer-wise relevance propagation for recurrent text classifiers (Arras et al., 2017), exact and batched.

    The target score :math:`f_c(x)` (the raw logit, possibly negative) is propagated back to the input embeddings
    layer by layer. Weighted connections :math:`z_j = \sum_i a_i w_{ij} + b_j` use the ε-rule

    .. math::
        R_i = \sum_j \frac{a_i w_{ij} + \delta\,(b_j + \epsilon\,\mathrm{sign}(z_j)) / N_j}
                         {z_j + \epsilon\,\mathrm{sign}(z_j)}\, R_j,
        \qquad \mathrm{sign}(0) = +1,

    following the authors' released code, which multiplies both :math:`b_j` and the stabilizer by :math:`\delta`; the
    paper prints :math:`\big(a_i w_{ij} + (\epsilon\,\mathrm{sign}(z_j) + \delta\,b_j)/N\big) / (z_j +
    \epsilon\,\mathrm{sign}(z_j))` (its initial version). Multiplicative interactions :math:`z = z_g \odot z_s` with a
    gate :math:`z_g` give everything to the source (:math:`R_g = 0,\ R_s = R_z`). In an LSTM
    (:math:`c_t = f_t \odot c_{t-1} + i_t \odot g_t`, :math:`h_t = o_t \odot \tanh(c_t)`) all of :math:`R_{h_t}` goes to
    :math:`c_t`; :math:`c_t` is a weighted connection with two inputs per unit (:math:`N = 2`) to :math:`c_{t-1}` and
    :math:`g_t`; :math:`g_t`'s pre-activation :math:`W_{ig} x_t + W_{hg} h_{t-1} + b_g` is a weighted connection with
    :math:`N = E + H` and the only way relevance reaches :math:`x_t` and :math:`h_{t-1}`; the gates :math:`i, f, o`
    get nothing. A GRU (:math:`h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}`,
    :math:`n_t = \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn}))`) is treated the same way:
    :math:`h_t` is a weighted connection with two inputs per unit (:math:`N = 2`) to :math:`n_t` and :math:`h_{t-1}`
    (the gates :math:`1 - z_t` and :math:`z_t` get nothing); :math:`n_t`'s pre-activation is a weighted connection
    with :math:`N = E + 1` inputs, :math:`x_t` and the gated term :math:`r_t \odot m_t`, which gives everything to
    :math:`m_t = W_{hn} h_{t-1} + b_{hn}` (the reset gate gets nothing), a weighted connection with :math:`N = H`.
    The full equations, and the rules of every other supported op, are in
    :mod:`captum_text_ext.decomposition.lrp`. Bidirectional layers: each direction in its own reading order,
    input relevances summed; stacked layers: relevance on layer :math:`k`'s inputs is relevance on layer
    :math:`k - 1`'s outputs.

    The model runs unchanged under a :class:`~torch.overrides.TorchFunctionMode`: the recurrent layers are run by
    autograd functions whose forward values equal ``nn.LSTM``'s / ``nn.GRU``'s (unrolled, so no cuDNN backward is
    involved) and whose backward applies the rules; ``Linear``, ``Conv1d``, sums and means use the ε-rule;
    element-wise activations pass relevance through; softmax outputs are gates; indexing, ``cat``, packing and max
    route relevance with their own backward ("gradient = relevance", as in Captum's ``LRP``). Any op on the path
    from the inputs to the output without a rule raises
    :class:`~captum_text_ext.decomposition.guard.UnsupportedOperationError` (a ``TypeError``) naming it; there is no
    silent fall-back to gradients. The model is never changed: not switched to evaluation mode, no ``requires_grad``
    changed, every hook removed when the call ends (also when it raises) and inactive in other threads, so several
    threads may explain one model at once. Dropout in training mode (a random forward pass) is refused: call
    ``model.eval()`` first.

    Args:
        model: the model, taking embeddings :math:`(N, T, E)` (and whatever ``additional_forward_args`` holds):
            an ``nn.Module`` or a bound method of one (``LSTMClassifier.forward_embeddings``).
        epsilon: the stabilizer :math:`\epsilon > 0`.
        bias_factor: :math:`\delta`: 0 (default, "LRP": biases and stabilizers absorb their part) or 1
            ("LRP_cons": relevance is conserved).

    Raises:
        TypeError: when ``model`` is not callable.
        ValueError: for a non-positive ``epsilon`` or a non-finite ``bias_factor``.

    References:
        L. Arras, G. Montavon, K.-R. Müller, W. Samek. Explaining Recurrent Neural Network Predictions in Sentiment
        Analysis. WASSA@EMNLP 2017. https://doi.org/10.18653/v1/W17-5221

    Examples:
        >>> from captum_text_ext.models import LSTMClassifier
        >>> _ = torch.manual_seed(0)
        >>> model = LSTMClassifier(vocab_size=20, embedding_dim=4, hidden_size=3, num_classes=2).double()
        >>> embeddings = model.embedding(torch.tensor([[2, 3, 4], [5, 6, 0]])).detach()
        >>> lengths = torch.tensor([3, 2])
        >>> lrp = LSTMLRP(model.forward_embeddings)
        >>> relevance, delta = lrp.attribute(embeddings, target=1, additional_forward_args=lengths,
        ...                                  return_convergence_delta=True)
        >>> relevance.shape, relevance[1, 2].abs().max().item()   # the padded position gets exactly 0
        (torch.Size([2, 3, 4]), 0.0)
        >>> words = relevance.sum(-1)   # word relevance
        >>> scores = model.forward_embeddings(embeddings, lengths)[:, 1]
        >>> bool(torch.allclose(words.sum(1) + delta, scores))   # delta: what biases and stabilizers absorbed
        True
    """

    def __init__(
        self,
        model: Callable[..., Tensor],
        epsilon: float = 1e-3,
        bias_factor: float = 0.0,
        cell_stabilizer: str = "unit",
    ) -> None:
        GuardedLRP.__init__(self, model, EpsilonRule(epsilon, bias_factor, cell_stabilizer), "LSTMLRP")

    @property
    def epsilon(self) -> float:
        """The stabilizer :math:`\\epsilon` (read-only: make a new instance for another value)."""
        return self._rule.epsilon

    @property
    def bias_factor(self) -> float:
        """:math:`\\delta` (read-only: make a new instance for another value)."""
        return self._rule.bias_factor

    @property
    def cell_stabilizer(self) -> str:
        """Where a recurrent cell's stabilizer share goes, ``"unit"`` or ``"layer"`` (read-only)."""
        return self._rule.cell_stabilizer

    def _op_table(self, run: LRPRun) -> OpTable:
        return lrp_op_table(run)


class LayerLSTMLRP(LSTMLRP, LayerGuardedLRP):
    r""":class:`LSTMLRP` for token-id models: relevance at the output of ``layer`` (the embedding), like Captum's
    ``LayerLRP`` / ``LayerIntegratedGradients``.

    Everything before ``layer`` (the embedding lookup) runs untouched; from its output on the rules of
    :class:`LSTMLRP` apply.

    Args:
        model: the model, taking token ids (and ``additional_forward_args``).
        layer: the module whose output (or input) is attributed; it must run once per forward pass.
        epsilon: the stabilizer :math:`\epsilon > 0`.
        bias_factor: :math:`\delta` (0 or 1).
        cell_stabilizer: ``"unit"`` (the paper) or ``"layer"`` (the authors' released code); see :class:`LSTMLRP`.

    Examples:
        >>> from captum_text_ext.models import LSTMClassifier
        >>> _ = torch.manual_seed(0)
        >>> model = LSTMClassifier(vocab_size=20, embedding_dim=4, hidden_size=3, num_classes=2, pooling="max")
        >>> ids, lengths = torch.tensor([[2, 3, 4], [5, 6, 0]]), torch.tensor([3, 2])
        >>> relevance = LayerLSTMLRP(model, model.embedding).attribute(ids, target=0, additional_forward_args=lengths)
        >>> relevance.shape, relevance.sum(-1)[1, 2].item()   # per-token scores are relevance.sum(-1)
        (torch.Size([2, 3, 4]), 0.0)
    """

    def __init__(
        self,
        model: Callable[..., Tensor],
        layer: nn.Module,
        epsilon: float = 1e-3,
        bias_factor: float = 0.0,
        device_ids: Optional[List[int]] = None,
        cell_stabilizer: str = "unit",
    ) -> None:
        if not isinstance(layer, nn.Module):
            raise TypeError(f"Expected `layer` to be an nn.Module, but got {type(layer).__name__}")
        LSTMLRP.__init__(self, model, epsilon, bias_factor, cell_stabilizer)
        LayerAttribution.__init__(self, model, layer, device_ids)


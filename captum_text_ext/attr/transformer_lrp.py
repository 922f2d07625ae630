r"""TransformerLRP: layer-wise relevance propagation for transformer text classifiers, with the AttnLRP (Achtibat et al.,
2024) and CP-LRP (Ali et al., 2022) rules, as a Captum method.

:class:`TransformerLRP` takes embeddings; :class:`LayerTransformerLRP` takes token ids and attributes at a layer's
output (the embeddings module: ``model.bert.embeddings``), like Captum's ``LayerLRP`` and ``LayerIntegratedGradients``.
"""

from __future__ import annotations

from typing import Callable, List, Optional

import torch
from captum.attr import LayerAttribution
from torch import Tensor, nn

from captum_text_ext.attr._guarded_lrp import GuardedLRP, LayerGuardedLRP
from captum_text_ext.decomposition.guard import OpTable
from captum_text_ext.decomposition.lrp import PRESETS, EpsilonRule, LRPRun, transformer_op_table

__all__ = ["LayerTransformerLRP", "TransformerLRP"]


class TransformerLRP(GuardedLRP):
    r"""Layer-wise relevance propagation for transformer text classifiers: AttnLRP (Achtibat et al., 2024) or
    CP-LRP (Ali et al., 2022), exact and batched, on models nobody here wrote (Hugging Face ``BertFor…``,
    ``DistilBertFor…``, ``RobertaForSequenceClassification``, PyTorch's ``nn.TransformerEncoder``).

    The target score :math:`f_c(x)` (the raw logit) is propagated back to the inputs op by op, each op by the rule
    of its group (``"gradient = relevance"``, as in Captum's ``LRP``). Both presets share: ``Linear`` by the ε-rule
    :math:`R_i = \sum_j a_i w_{ij} R_j / (z_j + \epsilon\,\mathrm{sign}(z_j))` (biases absorb their share); additions
    (residual connections) by the ε-rule over their relevance-carrying operands, a constant's zeros passing
    relevance unchanged (so an additive attention mask absorbs nothing); every element-wise nonlinearity (GELU, SiLU,
    ReLU, the pooler's and the heads' tanh) by the identity rule :math:`R_x = R_y`; LayerNorm, RMSNorm and
    ``normalize`` by the ε-rule with their scale :math:`\sigma` held constant (the identity rule on the
    normalization):

    .. math::
        y = w \odot \frac{x - \bar x}{\sigma} + b: \qquad
        R_{x_i} = x_i \sum_j \frac{w_j}{\sigma}\Big(\delta_{ij} - \frac1D\Big)
                  \frac{R_{y_j}}{y_j + \epsilon\,\mathrm{sign}(y_j)}.

    They differ in the attention weights :math:`p = \mathrm{softmax}(x)`, :math:`x = QK^\top / \sqrt d + M`:

    - ``rule="attnlrp"``: the softmax by its Taylor decomposition at :math:`x`,
      :math:`R_{x_i} = x_i (R_{p_i} - p_i \sum_j R_{p_j})`, and the two-operand products :math:`QK^\top` and
      :math:`pV` by the uniform rule: each product term's ε-rule share split equally between its two factors,
      :math:`R_{a_{ij}} = \tfrac12 \sum_k a_{ij} b_{jk} R_{z_{ik}} / (z_{ik} + \epsilon\,\mathrm{sign}(z_{ik}))`
      (and half of :math:`R_z` to each factor of an element-wise product). The softmax rule does not conserve
      relevance: what it leaks is in :attr:`~captum_text_ext.LRPDecomposition.absorbed` of :meth:`decompose`.
    - ``rule="cp"``: the attention weights are held constant (they receive no relevance), so :math:`pV` is a linear
      map of :math:`V` by the ε-rule. On a model without biases every rule conserves relevance, and the relevance
      sums to the target logit up to the stabilizer.

    ``scaled_dot_product_attention`` (Hugging Face's ``"sdpa"`` attention) and ``multi_head_attention_forward``
    (``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer``) are run as their steps, each by its rule, so eager
    and SDPA attention give the same relevance; a boolean mask (True = attend), a key padding mask (True = ignore)
    and an additive mask (0 / :math:`-\infty`) all give masked keys exactly 0 relevance and no NaN. LSTM and GRU
    layers get Arras et al.'s rules (those of :class:`~captum_text_ext.LSTMLRP`), so a model mixing recurrent
    layers and self-attention works. The full list of ops and rules is the "Supported operations" page; the
    equations are in :mod:`captum_text_ext.decomposition.lrp.transformer`.

    The model runs unchanged under the op guard (see :class:`~captum_text_ext.LSTMLRP`): never switched to
    evaluation mode, no ``requires_grad`` changed, every hook removed when the call ends and inactive in other
    threads. An op on the path without a rule raises
    :class:`~captum_text_ext.decomposition.guard.UnsupportedOperationError` naming it and its module; dropout in
    training mode raises :class:`~captum_text_ext.RandomOpError` (call ``model.eval()`` first). With a padding
    mask, a right-padded batch gives each sentence the relevance it gets alone and the padded positions exactly 0
    (right padding is the supported layout). Left padding runs, and masked keys get no relevance, but the relevance
    explains what the model computes then: a model that reads the first position (BERT's pooler, RoBERTa's and
    DistilBERT's heads) reads a pad token there, which gets relevance, and absolute position ids shift.

    Args:
        model: the model, taking floating-point inputs (``inputs_embeds``, or embeddings for a model written so) and
            whatever ``additional_forward_args`` holds: an ``nn.Module`` or a bound method of one.
        rule: ``"attnlrp"`` or ``"cp"``.
        epsilon: the stabilizer :math:`\epsilon > 0`.

    Raises:
        TypeError: when ``model`` is not callable.
        ValueError: for an unknown ``rule`` or a non-positive ``epsilon``.

    References:
        R. Achtibat, S. M. V. Hatefi, M. Dreyer, A. Jain, T. Wiegand, S. Lapuschkin, W. Samek. AttnLRP:
        Attention-Aware Layer-Wise Relevance Propagation for Transformers. ICML 2024.
        https://proceedings.mlr.press/v235/achtibat24a.html

        A. Ali, T. Schnake, O. Eberle, G. Montavon, K.-R. Müller, L. Wolf. XAI for Transformers: Better Explanations
        through Conservative Propagation. ICML 2022. https://proceedings.mlr.press/v162/ali22a.html

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, bias=False)
        >>> head = torch.nn.Linear(8, 3, bias=False)
        >>> def model(x):   # embeddings (N, T, 8) -> logits (N, 3), read at the first position
        ...     return head(layer(x)[:, 0])
        >>> x = torch.randn(2, 5, 8, dtype=torch.float64)
        >>> layer, head = layer.double().eval(), head.double()
        >>> relevance, delta = TransformerLRP(model, rule="cp", epsilon=1e-9).attribute(
        ...     x, target=1, return_convergence_delta=True)
        >>> relevance.shape, bool(delta.abs().max() < 1e-6)   # no biases: "cp" conserves the logit
        (torch.Size([2, 5, 8]), True)
    """

    def __init__(self, model: Callable[..., Tensor], rule: str = "attnlrp", epsilon: float = 1e-6) -> None:
        if rule not in PRESETS:
            raise ValueError(f"Expected `rule` to be one of {PRESETS}, but got {rule!r}")
        self._preset = rule
        GuardedLRP.__init__(self, model, EpsilonRule(epsilon, 0.0), "TransformerLRP")

    @property
    def rule(self) -> str:
        """The preset, ``"attnlrp"`` or ``"cp"`` (read-only: make a new instance for another)."""
        return self._preset

    @property
    def epsilon(self) -> float:
        """The stabilizer :math:`\\epsilon` (read-only: make a new instance for another value)."""
        return self._rule.epsilon

    def _op_table(self, run: LRPRun) -> OpTable:
        return transformer_op_table(run, self._preset)


class LayerTransformerLRP(TransformerLRP, LayerGuardedLRP):
    r""":class:`TransformerLRP` for token-id models: relevance at the output of ``layer`` (the embeddings module:
    ``model.bert.embeddings``, ``model.distilbert.embeddings``, ``model.roberta.embeddings``, or a user model's token
    embedding), like Captum's ``LayerLRP`` / ``LayerIntegratedGradients``.

    Everything before ``layer`` (the embedding lookups, position and token-type embeddings) runs untouched; from its
    output on the rules of :class:`TransformerLRP` apply. Per-token scores are ``relevance.sum(-1)``.

    Args:
        model: the model, taking token ids (and ``additional_forward_args``: the attention mask, token type ids).
        layer: the module whose output (or input) is attributed; it must run once per forward pass.
        rule: ``"attnlrp"`` or ``"cp"``.
        epsilon: the stabilizer :math:`\epsilon > 0`.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> class Classifier(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.embedding = torch.nn.Embedding(20, 8, padding_idx=0)
        ...         layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        ...         self.encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        ...         self.head = torch.nn.Linear(8, 2)
        ...     def forward(self, ids, padding):   # padding: True at padded positions
        ...         return self.head(self.encoder(self.embedding(ids), src_key_padding_mask=padding)[:, 0])
        >>> model = Classifier().double().eval()
        >>> ids = torch.tensor([[2, 7, 8, 3], [2, 9, 3, 0]])
        >>> lrp = LayerTransformerLRP(model, model.embedding)
        >>> scores = lrp.attribute(ids, target=1, additional_forward_args=(ids == 0,)).sum(-1)
        >>> scores.shape, scores[1, 3].item()   # the padded position gets exactly 0
        (torch.Size([2, 4]), 0.0)
    """

    def __init__(
        self,
        model: Callable[..., Tensor],
        layer: nn.Module,
        rule: str = "attnlrp",
        epsilon: float = 1e-6,
        device_ids: Optional[List[int]] = None,
    ) -> None:
        if not isinstance(layer, nn.Module):
            raise TypeError(f"Expected `layer` to be an nn.Module, but got {type(layer).__name__}")
        TransformerLRP.__init__(self, model, rule, epsilon)
        LayerAttribution.__init__(self, model, layer, device_ids)

r"""Contextual decomposition (Murdoch, Liu & Yu, 2018) for LSTM/GRU, CNN and transformer text classifiers (CD-T, Hsu
et al., 2025), as a Captum method.

:class:`ContextualDecomposition` takes embeddings; :class:`LayerContextualDecomposition` takes token ids and starts the
decomposition at a layer's output (the embedding).

**Design.** The model runs once, unchanged, under the shared op guard
(:class:`~captum_text_ext.decomposition.guard.OpGuard`), on inputs that are
:class:`~captum_text_ext.decomposition.cd.Decomposed` tensors: each is the actual value and carries the parts
:math:`\beta` (the phrase's contribution) and :math:`\gamma` (the rest) for all :math:`P` phrases at once, as a leading
phrase dimension. Every op on the path from the inputs to the output is run by its CD rule
(:mod:`captum_text_ext.decomposition.cd`), which computes the actual value and the new parts; an op without a rule
raises :class:`~captum_text_ext.decomposition.guard.UnsupportedOperationError`, a ``TypeError`` naming it. Recurrent
layers (``torch.lstm``/``torch.gru`` and the cell ops, packed or padded) are unrolled with the shared
:func:`~captum_text_ext.decomposition.cells.unroll`, whose actual output gates feed the CD recurrences, batched over
examples × phrases: one recurrent pass for all phrases, no Python loop over sentences or phrases. The model is never
changed (no evaluation mode switched on, no ``requires_grad`` changed; hooks live for the call and its thread only);
dropout in training mode is refused.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from captum._utils.common import _format_output, _format_tensor_into_tuples, _is_tuple
from captum._utils.typing import TargetType, TensorOrTupleOfTensorsGeneric
from captum.attr import Attribution, LayerAttribution
from torch import Tensor, nn

from captum_text_ext.attr._log_usage import log_usage
from captum_text_ext.attr._targets import check_target, select_scores
from captum_text_ext.decomposition.cd import BIAS_PRODUCTS, CDRun, Decomposed, cd_op_table, is_decomposed
from captum_text_ext.decomposition.bags import BagCapture, start_at_layer
from captum_text_ext.decomposition.run import GuardedForward, Run, forward_args, model_output, plain_run

__all__ = ["PHRASE_POSITIONS_PER_PASS", "ContextualDecomposition", "LayerContextualDecomposition"]

MaskType = Union[Tensor, Tuple[Tensor, ...]]

PHRASE_POSITIONS_PER_PASS = 2**19
"""What ``phrases_per_pass=None`` keeps phrases × examples × tokens of one pass within: every phrase carries its own
part of every value (for a recurrent layer, its β at every step), so a pass's memory grows with this product. A batch
of 64 sentences of 50 tokens (163 phrases per pass) still takes one pass; a 5,000-token document takes 104 phrases per
pass (``captum-text-ext benchmark cd-speed`` measures its time and peak memory)."""


class _Pass(NamedTuple):
    """What one CD pass computed: the output and its parts, each with the phrase dimension first; for a pass that
    started at an ``nn.EmbeddingBag``'s flat ids, the bag of each id."""

    output: Tensor
    beta: Tensor
    gamma: Tensor
    bias: Tensor
    bag_of_row: Optional[Tensor] = None


def _as_tuple(obj: Any) -> Tuple[Any, ...]:
    return obj if isinstance(obj, tuple) else (obj,)


def _decomposed_input(x: Tensor, mask: Tensor, offset: int, time_first: bool = False) -> Decomposed:
    """``x`` :math:`(N, T, \\ldots)` split by ``mask`` :math:`(P, N, T)`: β holds the phrase's tokens, γ the rest.
    With ``time_first``, ``x`` is :math:`(T, N, \\ldots)` (the origins still number the tokens row-major in
    :math:`(N, T)`)."""
    batch, steps = mask.shape[1:]
    trailing = (1,) * (x.dim() - 2)
    positions = torch.arange(batch * steps, dtype=torch.float64, device=x.device).reshape(batch, steps)
    if time_first:
        positions, mask = positions.t(), mask.transpose(1, 2)
    origin = torch.broadcast_to(positions.reshape(*positions.shape, *trailing) + (1 + offset), x.shape).clone()
    return Decomposed.masked(x, mask.to(x.device), origin)


def _token_shape(x: Tensor) -> Tuple[int, int]:
    """:math:`(N, T)` of an input :math:`(N, T, \\ldots)`."""
    return int(x.shape[0]), int(x.shape[1])


def _check_masks(masks: Tuple[Tensor, ...], shapes: Sequence[Tuple[int, int]], name: str) -> Tuple[Tensor, ...]:
    """Phrase masks ``(N, T_i)`` or ``(P, N, T_i)`` (bool), one per input, as ``(P, N, T_i)``."""
    if len(masks) != len(shapes):
        raise ValueError(f"Expected `{name}` to hold one mask per input ({len(shapes)}), but got {len(masks)}")
    out = []
    for index, (mask, shape) in enumerate(zip(masks, shapes)):
        where = f" for input {index}" if len(shapes) > 1 else ""
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
            raise TypeError(f"Expected `{name}`{where} to be a bool tensor, but got {got}")
        if mask.dim() == 2:
            mask = mask.unsqueeze(0)
        if mask.dim() != 3 or tuple(mask.shape[1:]) != tuple(shape):
            raise ValueError(
                f"Expected `{name}`{where} to have shape {tuple(shape)} (N, T) or (P, {shape[0]}, {shape[1]}), but "
                f"got {tuple(mask.shape) if mask.dim() != 3 or mask.shape[0] != 1 else tuple(mask.shape[1:])}"
            )
        out.append(mask)
    if len({m.shape[0] for m in out}) > 1:
        raise ValueError(
            f"Expected the masks of `{name}` to hold the same number of phrases, but got {[m.shape[0] for m in out]}"
        )
    return tuple(out)


def _check_contiguous(masks: Tuple[Tensor, ...]) -> None:
    for mask in masks:
        starts = mask.clone()
        starts[..., 1:] &= ~mask[..., :-1]
        runs = starts.sum(-1)
        if bool((runs > 1).any()):
            p, n = [int(v) for v in (runs > 1).nonzero()[0]]
            positions = mask[p, n].nonzero().flatten().tolist()
            raise ValueError(
                "bias_product='reference' is defined for contiguous phrases (the authors' code takes a start and a "
                f"stop), but phrase {p} of example {n} covers positions {positions}; use bias_product='phrase' or "
                "'never' for other phrases"
            )


class ContextualDecomposition(Attribution):
    r"""Contextual decomposition (CD): the part of the logits that comes from a phrase alone, and the rest.

    For a phrase (a set of token positions) CD splits every value on the way from the input embeddings to the logits
    into :math:`\beta`, the contribution of the phrase alone, and :math:`\gamma`, everything else, so that at the
    output

    .. math::
        \text{logits} = W\beta_T + W\gamma_T + b = \text{relevant} + \text{irrelevant} + \text{bias},

    with the output layer's bias :math:`b` reported apart. The phrase's score for class :math:`c` is
    :math:`\beta_c`; for a two-class model the paper scores :math:`\beta_{pos} - \beta_{neg}` (``contrast``). Unlike
    gradients, CD scores whole phrases, and the interaction of two phrases (negation),
    :math:`\beta(a \cup b) - \beta(a) - \beta(b)` (:meth:`interaction`).

    In an LSTM, each gate's pre-activation splits into the phrase part :math:`P = W_h\beta_{t-1} + W_x\beta_{x,t}`,
    the other part :math:`Q = W_h\gamma_{t-1} + W_x\gamma_{x,t}` and the bias :math:`b`, and each
    :math:`\sigma`/:math:`\tanh` is linearized bias first with the two-player Shapley split,

    .. math::
        L(b) = a(b), \qquad L(P) = \tfrac12\big[a(b + P) - a(b) + a(b + P + Q) - a(b + Q)\big],
        \qquad L(Q) \text{ symmetric};

    the cell state keeps in β only products of phrase and bias terms,

    .. math::
        \beta^c_t = \big(L(f_P) + L(f_b)\big)\beta^c_{t-1} + L(i_P)\big(L(g_P) + L(g_b)\big) + L(i_b)L(g_P)
            \;[+\,L(i_b)L(g_b)],

    and :math:`\beta_t = o_t \odot \tfrac12[\tanh(\beta^c_t) + \tanh(\beta^c_t + \gamma^c_t) - \tanh(\gamma^c_t)]`
    with the actual output gate. The bias-only product :math:`L(i_b)L(g_b)` goes to β according to ``bias_product``.
    GRUs are decomposed the same way (their equations, and the rules of every other supported op — ``Linear`` and
    ``Conv1d`` with the bias split by magnitude, ReLU, other activations, max pooling, attention, routing — are in
    :mod:`captum_text_ext.decomposition.cd`). Bidirectional layers: each direction in its own reading order;
    stacked layers: layer :math:`k`'s input arrives as (β, γ).

    Transformers (Hugging Face BERT, DistilBERT, RoBERTa with eager or SDPA attention, ``nn.TransformerEncoder``,
    ``nn.MultiheadAttention``) follow CD-T: the attention weights come from the actual input and are held fixed, so
    the value path splits linearly, :math:`\beta' = A\,W_V\beta`; :math:`QK^\top` is needed only for its value;
    LayerNorm removes each part's own mean and divides by the actual value's standard deviation; its bias, like every
    ``Linear`` bias and the embeddings' position rows (when the decomposition starts at the word embeddings), is a
    pending bias split by magnitude at the next op that needs the parts.

    **Padding.** Lengths travel in ``additional_forward_args`` as the model takes them (packed sequences, gathering at
    ``lengths - 1``, masked pooling); the decomposition follows the model's actual forward pass, so a padded batch gives
    each sentence its own scores, and positions the model never reads score exactly 0.

    Args:
        model: the model, taking embeddings :math:`(N, T, E)` (and whatever ``additional_forward_args`` holds): an
            ``nn.Module`` or a bound method of one (``LSTMClassifier.forward_embeddings``).
        bias_product: where the bias-only product of a recurrent cell goes: ``"phrase"`` (default: to β at phrase
            positions, so a whole-sentence phrase gets :math:`\gamma = 0` and :math:`\beta` = logits − bias when the
            initial states are 0; a learned non-zero :math:`h_0` belongs to γ, which then equals its contribution),
            ``"reference"`` (as the authors' released code, which produced the paper's numbers: to β only at phrase
            positions before the phrase's last one, in each direction's own reading order; the same as ``"never"``
            for single words; contiguous phrases only) or ``"never"`` (always γ: the paper's rule read literally).

    Raises:
        TypeError: when ``model`` is not callable.
        ValueError: for an unknown ``bias_product``.

    References:
        W. J. Murdoch, P. J. Liu, B. Yu. Beyond Word Importance: Contextual Decomposition to Extract Interactions from
        LSTMs. ICLR 2018. https://arxiv.org/abs/1801.05453

        C. Singh, W. J. Murdoch, B. Yu. Hierarchical interpretations for neural network predictions. ICLR 2019.
        https://arxiv.org/abs/1806.05337

        A. R. Hsu, G. Zhou, Y. Cherapanamjeri, Y. Huang, A. Y. Odisho, P. R. Carroll, B. Yu. Efficient Automated
        Circuit Discovery in Transformers using Contextual Decomposition. ICLR 2025. https://arxiv.org/abs/2407.00886

    Examples:
        >>> from captum_text_ext.models import LSTMClassifier
        >>> _ = torch.manual_seed(0)
        >>> model = LSTMClassifier(vocab_size=20, embedding_dim=4, hidden_size=3, num_classes=2).double()
        >>> embeddings = model.embedding(torch.tensor([[2, 3, 4], [5, 6, 0]])).detach()
        >>> lengths = torch.tensor([3, 2])
        >>> cd = ContextualDecomposition(model.forward_embeddings)
        >>> phrase = torch.tensor([[False, True, True], [True, False, False]])
        >>> relevant, irrelevant, bias = cd.decompose(embeddings, phrase, lengths, return_bias=True)
        >>> logits = model.forward_embeddings(embeddings, lengths)
        >>> bool(torch.allclose(relevant + irrelevant + bias, logits))
        True
        >>> words = cd.attribute(embeddings, target=1, additional_forward_args=lengths, contrast=0)
        >>> words.shape, words[1, 2].item()   # beta_pos - beta_neg of each word; the padded position scores 0
        (torch.Size([2, 3]), 0.0)
    """

    def __init__(self, model: Callable[..., Tensor], bias_product: str = "phrase") -> None:
        if not callable(model):
            raise TypeError(f"Expected `model` to be an nn.Module or a callable, but got {type(model).__name__}")
        if bias_product not in BIAS_PRODUCTS:
            raise ValueError(f"Expected `bias_product` to be one of {BIAS_PRODUCTS}, but got {bias_product!r}")
        Attribution.__init__(self, model)
        self._bias_product = bias_product

    @property
    def bias_product(self) -> str:
        """Where the bias-only products of the recurrent cells go (read-only: make a new instance for another)."""
        return self._bias_product

    @property
    def multiplies_by_inputs(self) -> bool:
        return True

    def attribute_future(self) -> None:
        """Not supported.

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError(f"attribute_future is not implemented for {type(self).__name__}")

    # ------------------------------------------------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------------------------------------------------

    @log_usage
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
        feature_mask: Optional[MaskType] = None,
        contrast: TargetType = None,
        phrases_per_pass: Optional[int] = None,
    ) -> TensorOrTupleOfTensorsGeneric:
        r"""Per-token CD scores: the score :math:`\beta` of every phrase for the target logit, spread over its tokens.

        Every group of ``feature_mask`` is a phrase; its score :math:`\beta_c` (or :math:`\beta_c -
        \beta_{c'}` with ``contrast`` :math:`c'`) is divided evenly among the group's tokens in each example, so
        summing over a group gives its β (with the default mask, each token is its own phrase and gets its own β).
        All groups are decomposed in one pass.

        Contextual decomposition's unit is the token: it splits a value into the part that comes from a phrase of
        tokens and the rest, and has no split per embedding dimension, so the result is one score per token,
        :math:`(N, T)`, not the input's :math:`(N, T, E)` (see the docs page for passing it to ``visualize_text``,
        ``NoiseTunnel`` and ``captum.metrics``).

        Args:
            inputs: embeddings :math:`(N, T, E)`, or a tuple of floating-point tensors :math:`(N, T_i, \ldots)` the
                model takes first.
            target: Captum's target: ``None`` for a model with one output per example, an int (or one-element
                tensor), a tuple for outputs with more dimensions, or a list / 1-D tensor with one target per example.
            additional_forward_args: passed to the model after ``inputs`` (e.g. lengths); never decomposed.
            feature_mask: Captum's ``FeatureAblation`` convention over tokens: integer group ids broadcastable to each
                input (a tuple for tuple inputs), constant over the dimensions after time; :math:`(N, T)` masks are
                accepted too. Default: each token its own group. Entries of one id form one phrase per example.
            contrast: a second target (same forms as ``target``): the score is :math:`\beta_{target} -
                \beta_{contrast}`, the paper's :math:`\beta_{pos} - \beta_{neg}` for two-class models with
                ``target=1, contrast=0``.
            phrases_per_pass: how many phrases (groups) one pass through the model decomposes at once, the analogue
                of Captum's ``perturbations_per_eval``: memory grows with it (each phrase carries its own part of every
                value), and so does the work each recurrent step does in one batched product. ``None`` (default)
                chooses it so that phrases × examples × tokens stays within :data:`PHRASE_POSITIONS_PER_PASS`: one
                pass for sentences, a bounded number of phrases per pass for long documents. The result does not
                depend on it.

        Returns:
            Per-token scores :math:`(N, T)` (contiguous, the inputs' dtype); a tuple of :math:`(N, T_i)` for tuple
            inputs.

        Raises:
            captum_text_ext.decomposition.UnsupportedOperationError: a ``TypeError`` naming an op on the path without
                a rule.
            TypeError: for inputs that are not floating-point tensors, or an output that does not depend on them.
            ValueError: for a malformed target, or a feature mask that is not constant over the embedding
                dimensions.
        """
        is_tuple = _is_tuple(inputs)
        formatted = self._check_inputs(_format_tensor_into_tuples(inputs))
        batch = int(formatted[0].shape[0])
        check_target(batch, target)
        if contrast is not None:
            check_target(batch, contrast)
        group_ids, groups = _token_groups(formatted, feature_mask)
        masks = tuple(ids.unsqueeze(0) == groups.view(-1, 1, 1) for ids in group_ids)
        scores, _ = self._group_scores(formatted, masks, target, contrast, additional_forward_args, phrases_per_pass)
        per_token = _spread(scores, masks, group_ids, groups)
        return _format_output(is_tuple, tuple(t.to(x.dtype) for t, x in zip(per_token, formatted)))

    def decompose(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        phrase_mask: MaskType,
        additional_forward_args: Optional[object] = None,
        return_bias: bool = False,
    ) -> Tuple[Tensor, ...]:
        r"""The relevant and irrelevant parts of the logits for one or :math:`P` phrases per example.

        Args:
            inputs: embeddings :math:`(N, T, E)` (or a tuple of inputs, with a tuple of masks).
            phrase_mask: bool :math:`(N, T)` (one phrase per example) or :math:`(P, N, T)` (:math:`P` phrases, all
                decomposed in one pass). Positions a packed model never reads may lie in a phrase or not, with the same
                result; a model that runs its recurrence over the padding reads it, so keep its phrases to real
                tokens.
            additional_forward_args: passed to the model after ``inputs`` (e.g. lengths).
            return_bias: also return the output layer's bias (what the model adds after the last weighted layer).

        Returns:
            ``(relevant, irrelevant)``, each shaped like the model's output :math:`(N, C)`, with a leading :math:`P`
            for :math:`(P, N, T)` masks; ``relevant + irrelevant == logits - bias``. With ``return_bias``, also
            ``bias`` :math:`(N, C)`.

        Raises:
            TypeError: for a phrase mask that is not bool; see also :meth:`attribute`.
            ValueError: for a phrase mask of the wrong shape, or a non-contiguous phrase with
                ``bias_product="reference"``.
        """
        formatted = self._check_inputs(_format_tensor_into_tuples(inputs))
        masks = _check_masks(_as_tuple(phrase_mask), [_token_shape(x) for x in formatted], "phrase_mask")
        result = self._decompose(formatted, masks, additional_forward_args)
        squeeze = all(m.dim() == 2 for m in _as_tuple(phrase_mask))
        relevant, irrelevant = (result.beta[0], result.gamma[0]) if squeeze else (result.beta, result.gamma)
        if return_bias:
            return relevant, irrelevant, result.bias
        return relevant, irrelevant

    def interaction(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        mask_a: MaskType,
        mask_b: MaskType,
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
        contrast: TargetType = None,
    ) -> Tensor:
        r"""The interaction of two phrases: :math:`\beta(a \cup b) - \beta(a) - \beta(b)` (the paper's negation score).

        The three decompositions run in one pass.

        Args:
            inputs: embeddings :math:`(N, T, E)` (or a tuple, with tuples of masks).
            mask_a, mask_b: bool phrase masks :math:`(N, T)` or :math:`(P, N, T)`.
            target: the logit to score (Captum's target forms); ``None`` returns every logit.
            additional_forward_args: passed to the model after ``inputs``.
            contrast: a second target: scores :math:`\beta_{target} - \beta_{contrast}`.

        Returns:
            :math:`(N,)` for a target (:math:`(P, N)` for :math:`(P, N, T)` masks), else shaped like the output with a
            leading :math:`P` for :math:`(P, N, T)` masks.
        """
        formatted = self._check_inputs(_format_tensor_into_tuples(inputs))
        shapes = [_token_shape(x) for x in formatted]
        first = _check_masks(_as_tuple(mask_a), shapes, "mask_a")
        second = _check_masks(_as_tuple(mask_b), shapes, "mask_b")
        if first[0].shape[0] != second[0].shape[0]:
            raise ValueError(
                f"Expected `mask_a` and `mask_b` to hold the same number of phrases, but got {first[0].shape[0]} and "
                f"{second[0].shape[0]}"
            )
        batch = int(formatted[0].shape[0])
        if target is not None:
            check_target(batch, target)
        if contrast is not None:
            check_target(batch, contrast)
        masks = tuple(torch.cat([a | b, a, b]) for a, b in zip(first, second))
        result = self._decompose(formatted, masks, additional_forward_args)
        if target is None and contrast is None:
            scores = result.beta
        else:
            scores = _scores(result.beta, target, contrast, batch)
        joint, alone_a, alone_b = scores.chunk(3)
        out = joint - alone_a - alone_b
        return out[0] if all(m.dim() == 2 for m in _as_tuple(mask_a)) else out

    # ------------------------------------------------------------------------------------------------------------

    def _check_inputs(self, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
        for index, tensor in enumerate(inputs):
            if not isinstance(tensor, Tensor) or not tensor.is_floating_point() or tensor.dim() < 2:
                got = (
                    f"{tensor.dtype} of shape {tuple(tensor.shape)}"
                    if isinstance(tensor, Tensor)
                    else type(tensor).__name__
                )
                raise TypeError(
                    f"Expected `inputs` to be floating-point tensors (N, T, ...) (embeddings), but input {index} is "
                    f"{got}; for token ids use LayerContextualDecomposition(model, embedding_layer)"
                )
        return inputs

    def _group_scores(
        self,
        inputs: Tuple[Tensor, ...],
        masks: Tuple[Tensor, ...],
        target: TargetType,
        contrast: TargetType,
        additional_forward_args: Optional[object],
        phrases_per_pass: Optional[int],
        layer: Optional[nn.Module] = None,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """:math:`(G, N)`: the target score of every phrase of ``masks`` :math:`(G, N, T_i)`, ``phrases_per_pass`` of
        them per pass through the model; and for flat ids of an ``nn.EmbeddingBag``, the bag of each id (the batch is
        then the bags', known after the first pass, where the targets are checked)."""
        phrases, batch = int(masks[0].shape[0]), int(masks[0].shape[1])
        positions = batch * sum(int(m.shape[2]) for m in masks)
        if phrases_per_pass is None:
            phrases_per_pass = max(1, PHRASE_POSITIONS_PER_PASS // max(positions, 1))
        elif isinstance(phrases_per_pass, bool) or not isinstance(phrases_per_pass, int) or phrases_per_pass < 1:
            raise ValueError(f"Expected `phrases_per_pass` to be a positive int or None, but got {phrases_per_pass!r}")
        scores: List[Tensor] = []
        bag_of_row: Optional[Tensor] = None
        for start in range(0, phrases, phrases_per_pass):
            chunk = tuple(m[start : start + phrases_per_pass] for m in masks)
            result = self._decompose(inputs, chunk, additional_forward_args, layer)
            bag_of_row, batch = result.bag_of_row, int(result.beta.shape[1])
            if bag_of_row is not None and not scores:
                for checked in (target, contrast):
                    if checked is not None:
                        check_target(batch, checked)
            scores.append(_scores(result.beta, target, contrast, batch))
        empty = masks[0].new_zeros(0, batch, dtype=inputs[0].dtype)
        return (torch.cat(scores) if scores else empty), bag_of_row

    def _decompose(
        self,
        inputs: Tuple[Tensor, ...],
        masks: Tuple[Tensor, ...],
        additional_forward_args: Optional[object],
        layer: Optional[nn.Module] = None,
    ) -> _Pass:
        if self.bias_product == "reference":
            _check_contiguous(masks)
        extra = forward_args(additional_forward_args)
        batch = int(inputs[0].shape[0])
        if batch == 0:  # nothing to decompose: every part of the empty output is empty
            output, _ = plain_run(self.forward_func, (*inputs, *extra), layer)
            empty = model_output(output, batch, lambda _: True, Run("ContextualDecomposition")).detach()
            parts = empty.unsqueeze(0).expand(int(masks[0].shape[0]), *empty.shape).contiguous()
            return _Pass(empty.clone(), parts, parts.clone(), empty.clone())
        bag_of_row = None
        run = CDRun.for_masks(self.bias_product, masks)
        with torch.no_grad(), GuardedForward(run, cd_op_table(run), self.forward_func, layer, is_decomposed) as forward:
            if layer is None:
                offsets = [0]
                for x in inputs[:-1]:
                    offsets.append(offsets[-1] + int(x.shape[0]) * int(x.shape[1]))
                leaves: Tuple[Any, ...] = tuple(
                    _decomposed_input(x.detach(), m, o) for x, m, o in zip(inputs, masks, offsets)
                )
                output = forward(*leaves, *extra)
            else:
                given: List[Any] = []  # the layer's first input, to tell (N, T, ...) from (T, N, ...) when T = N
                forward.hooks.forward_pre(layer, lambda module, args, kwargs: given.append(_first_input(args, kwargs)),
                                          with_kwargs=True)
                bag = isinstance(layer, nn.EmbeddingBag)
                make = _bag_start(masks[0]) if bag else _layer_start(masks[0], inputs[0], given)
                start = start_at_layer(layer, forward.hooks, make, paused=run.paused, tuples=False)
                output = forward(*inputs, *extra)
                start.require()
                if isinstance(start, BagCapture) and inputs[0].dim() == 1:
                    assert start.lookup is not None
                    batch, bag_of_row = start.lookup.bags, start.lookup.bag_of_row
            decomposed = model_output(output, batch, is_decomposed, run)
        assert isinstance(decomposed, Decomposed)
        bias = decomposed.pending if decomposed.pending is not None else torch.zeros_like(decomposed.plain)
        return _Pass(
            decomposed.plain.clone(), decomposed.beta.contiguous(), decomposed.gamma.contiguous(), bias.contiguous(),
            bag_of_row,
        )


def _layer_start(mask: Tensor, token_ids: Any, given: List[Any]) -> Callable[[Tensor], Tensor]:
    """What a layer's output is replaced by: the output split by the phrase mask ``(P, N, T)``, the output being
    :math:`(N, T, \\ldots)` or :math:`(T, N, \\ldots)` (:func:`_time_first`)."""

    def start(output: Tensor) -> Tensor:
        if isinstance(output, Decomposed):
            raise ValueError("Expected the layer to return a plain tensor, but it returned a decomposed one")
        time_first = _time_first(tuple(output.shape), tuple(mask.shape[1:]), token_ids, given[-1] if given else None)
        return _decomposed_input(output.detach(), mask, 0, time_first)

    return start


def _bag_start(mask: Tensor) -> Callable[[Tensor], Tensor]:
    """What the rows an ``nn.EmbeddingBag`` looks up are replaced by: the rows split by the phrase mask
    :math:`(P, N, T)` over the token ids (:math:`(P, 1, M)` for :math:`M` flat ids)."""

    def start(rows: Tensor) -> Tensor:
        grid = tuple(mask.shape[1:])
        if rows.shape[:-1].numel() != grid[0] * grid[1]:
            raise ValueError(
                f"Expected the nn.EmbeddingBag to look up the {grid[0] * grid[1]} token ids the phrase masks refer to "
                f"(the first input), but it looked up {rows.shape[:-1].numel()}"
            )
        return _decomposed_input(rows.reshape(*grid, rows.shape[-1]), mask, 0)

    return start


def _first_input(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    """A module's first input, positional or (as Hugging Face's embeddings take ``input_ids=``) the first tensor
    passed by keyword."""
    if args:
        return args[0]
    return next((value for value in kwargs.values() if isinstance(value, Tensor)), None)


def _time_first(shape: Tuple[int, ...], tokens: Tuple[int, ...], token_ids: Any, layer_input: Any) -> bool:
    """Whether a layer output of ``shape`` is :math:`(T, N, \\ldots)` for the tokens :math:`(N, T)`: read from
    the shape, and when :math:`T = N` from the layer's input (the token ids or their transpose, as
    ``self.emb(ids.t())`` takes them).

    Raises:
        ValueError: when the shape fits neither layout, or both and the layer's input does not tell.
    """
    batch, steps = tokens
    lead = shape[:2]
    if len(shape) < 2 or lead not in ((batch, steps), (steps, batch)):
        raise ValueError(
            f"Expected the output of the layer to have shape (N, T, ...) = {tokens} + (...) or (T, N, ...) = "
            f"{(steps, batch)} + (...), matching the phrase masks, but got {shape}"
        )
    if batch != steps:
        return lead == (steps, batch)
    if batch == 1:  # a 1 × 1 grid reads the same either way
        return False
    if isinstance(token_ids, Tensor) and isinstance(layer_input, Tensor) and token_ids.dim() == 2:
        as_given = layer_input.shape == token_ids.shape and bool(torch.equal(layer_input, token_ids))
        transposed = layer_input.shape == token_ids.t().shape and bool(torch.equal(layer_input, token_ids.t()))
        if as_given != transposed:
            return transposed
    raise ValueError(
        f"Expected to tell whether the layer's output {shape} is (N, T, ...) or (T, N, ...), but N = T = {batch} "
        "and the layer's input does not tell (it is not exactly one of the token ids and their transpose); call "
        "with a batch size that differs from the number of tokens"
    )


def _scores(beta: Tensor, target: TargetType, contrast: TargetType, batch: int) -> Tensor:
    """:math:`(P, N)`: the target entry of each phrase's β (minus the contrast entry)."""
    scores = select_scores(beta, target, "target", leading=1)
    if contrast is not None:
        scores = scores - select_scores(beta, contrast, "contrast", leading=1)
    return scores


def _spread(scores: Tensor, masks: Sequence[Tensor], group_ids: Sequence[Tensor], groups: Tensor) -> Tuple[Tensor, ...]:
    """Each group's score :math:`(G, N)` divided evenly among its tokens: per input, :math:`(N, T_i)`."""
    counts = torch.stack([m.sum(-1) for m in masks]).sum(0)  # (G, N): tokens per group and example
    share = scores / torch.where(counts > 0, counts, torch.ones_like(counts)).to(scores.dtype)
    return tuple(share.t().gather(1, torch.searchsorted(groups, ids.contiguous())).contiguous() for ids in group_ids)


def _token_groups(inputs: Tuple[Tensor, ...], feature_mask: Optional[MaskType]) -> Tuple[List[Tensor], Tensor]:
    """Per input the group id of every token :math:`(N, T_i)`, and the sorted distinct ids."""
    batch = int(inputs[0].shape[0])
    ids: List[Tensor] = []
    if feature_mask is None:
        offset = 0
        for x in inputs:
            steps = int(x.shape[1])
            ids.append((offset + torch.arange(steps, device=x.device)).expand(batch, steps))
            offset += steps
    else:
        masks = _as_tuple(feature_mask)
        if len(masks) != len(inputs):
            raise ValueError(
                f"Expected `feature_mask` to hold one mask per input ({len(inputs)}), but got {len(masks)}"
            )
        for index, (x, mask) in enumerate(zip(inputs, masks)):
            if not isinstance(mask, Tensor) or mask.is_floating_point() or mask.is_complex():
                got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
                raise TypeError(f"Expected `feature_mask` to hold integer tensors, but got {got}")
            if mask.dim() == 2 and x.dim() > 2:
                mask = mask.reshape(*mask.shape, *(1,) * (x.dim() - 2))
            try:
                expanded = torch.broadcast_to(mask, x.shape)
            except RuntimeError as err:
                raise ValueError(
                    f"Expected `feature_mask` {index} to broadcast to the input's shape {tuple(x.shape)}, but got "
                    f"{tuple(mask.shape)}"
                ) from err
            tokens = expanded.reshape(x.shape[0], x.shape[1], -1)
            if not bool((tokens == tokens[..., :1]).all()):
                raise ValueError(
                    "Expected `feature_mask` to be constant over the dimensions after time (CD scores phrases of "
                    f"tokens), but mask {index} varies within a token"
                )
            ids.append(tokens[..., 0].long())
    groups = torch.unique(torch.cat([i.reshape(-1) for i in ids]))
    return ids, groups


class LayerContextualDecomposition(ContextualDecomposition, LayerAttribution):
    r""":class:`ContextualDecomposition` for token-id models: the decomposition starts at the output of ``layer`` (the
    embedding), whose :math:`(N, T, E)` output is split by the phrase masks over its first two dimensions.

    Everything before ``layer`` runs untouched; from its output on the rules of :class:`ContextualDecomposition`
    apply. :meth:`attribute` returns per-token scores :math:`(N, T)`. A layer output :math:`(T, N, \ldots)` (a model
    calling ``self.emb(ids.t())``) is split the same way; when :math:`T = N` the layer's input tells the layouts apart
    (the token ids or their transpose), else the call is refused.

    **nn.EmbeddingBag** (flat ids with ``offsets``, as PyTorch's text-classification tutorial model): its output
    :math:`(N, E)` has no token axis, so the decomposition starts at the rows it looks up
    (:class:`~captum_text_ext.decomposition.bags.BagLookup`; modes ``sum`` with ``per_sample_weights``, ``mean``,
    ``max``, and ``padding_idx``). The tokens are then the :math:`M` flat ids of the first input: phrase masks are
    :math:`(M,)` or :math:`(P, M)`, feature masks :math:`(M,)`, and :meth:`attribute` returns one score per flat id,
    :math:`(M,)` — the one exception to "the layer's shape". A 2-D input of fixed-length bags :math:`(N, L)` keeps
    the usual :math:`(N, L)` token grid.

    Args:
        model: the model, taking token ids (and ``additional_forward_args``).
        layer: the module whose output is decomposed; it must run once per forward pass and return
            :math:`(N, T, \ldots)` or :math:`(T, N, \ldots)`, or be an ``nn.EmbeddingBag``.
        bias_product: ``"phrase"``, ``"reference"`` or ``"never"`` (see :class:`ContextualDecomposition`).

    Examples:
        >>> from captum_text_ext.models import LSTMClassifier
        >>> _ = torch.manual_seed(0)
        >>> model = LSTMClassifier(vocab_size=20, embedding_dim=4, hidden_size=3, num_classes=2, pooling="max")
        >>> ids, lengths = torch.tensor([[2, 3, 4], [5, 6, 0]]), torch.tensor([3, 2])
        >>> cd = LayerContextualDecomposition(model, model.embedding)
        >>> scores = cd.attribute(ids, target=1, additional_forward_args=lengths)
        >>> scores.shape, scores[1, 2].item()
        (torch.Size([2, 3]), 0.0)
        >>> first, second = torch.tensor([[True, False, False]] * 2), torch.tensor([[False, True, False]] * 2)
        >>> negation = cd.interaction(ids, first, second, target=1, additional_forward_args=lengths)
        >>> negation.shape
        torch.Size([2])
    """

    def __init__(
        self,
        model: Callable[..., Tensor],
        layer: nn.Module,
        bias_product: str = "phrase",
        device_ids: Optional[List[int]] = None,
    ) -> None:
        if not isinstance(layer, nn.Module):
            raise TypeError(f"Expected `layer` to be an nn.Module, but got {type(layer).__name__}")
        ContextualDecomposition.__init__(self, model, bias_product)
        LayerAttribution.__init__(self, model, layer, device_ids)

    @log_usage
    def attribute(  # type: ignore[override]  # token ids in, (N, T) out: not the embeddings-in signature
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
        feature_mask: Optional[Tensor] = None,
        contrast: TargetType = None,
        phrases_per_pass: Optional[int] = None,
    ) -> Tensor:
        r"""Per-token CD scores for the target logit.

        Args:
            inputs: the model's inputs; the first is the token ids :math:`(N, T)` (flat ids :math:`(M,)` for an
                ``nn.EmbeddingBag``).
            target: Captum's target (see :meth:`ContextualDecomposition.attribute`).
            additional_forward_args: passed to the model after ``inputs`` (e.g. lengths, or the bags' offsets).
            feature_mask: integer group ids :math:`(N, T)` or :math:`(1, T)` (:math:`(M,)` for flat ids); default:
                each token its own group.
            contrast: a second target: scores :math:`\beta_{target} - \beta_{contrast}`.
            phrases_per_pass: phrases decomposed per pass (see :meth:`ContextualDecomposition.attribute`).

        Returns:
            :math:`(N, T)`: each group's β spread evenly over its tokens in each example (:math:`(M,)`, one score
            per flat id, for an ``nn.EmbeddingBag`` reading flat ids).
        """
        formatted = _format_tensor_into_tuples(inputs)
        assert formatted is not None
        tokens = self._token_shape(formatted)
        flat = self._flat_bag(formatted)
        if not flat:
            check_target(tokens[0], target)
            if contrast is not None:
                check_target(tokens[0], contrast)
        shaped = torch.empty(tokens, dtype=torch.float64)
        mask_in = feature_mask.reshape(1, -1) if flat and isinstance(feature_mask, Tensor) else feature_mask
        group_ids, groups = _token_groups((shaped,), mask_in)
        masks = (group_ids[0].unsqueeze(0) == groups.view(-1, 1, 1),)
        scores, bag_of_row = self._group_scores(
            formatted, masks, target, contrast, additional_forward_args, phrases_per_pass, self.layer
        )
        if bag_of_row is not None:
            return _spread_over_bags(scores, group_ids[0][0], groups, bag_of_row)
        if flat:  # no flat ids: no phrase, no pass
            return scores.new_zeros(0)
        return _spread(scores, masks, group_ids, groups)[0]

    def decompose(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        phrase_mask: MaskType,
        additional_forward_args: Optional[object] = None,
        return_bias: bool = False,
    ) -> Tuple[Tensor, ...]:
        """See :meth:`ContextualDecomposition.decompose`; ``phrase_mask`` refers to the tokens :math:`(N, T)` (for an
        ``nn.EmbeddingBag`` reading flat ids: :math:`(M,)` for one phrase or :math:`(P, M)`)."""
        formatted = _format_tensor_into_tuples(inputs)
        assert formatted is not None
        flat = self._flat_bag(formatted)
        masks = _check_masks(_as_tuple(_grid_mask(phrase_mask, flat)), [self._token_shape(formatted)], "phrase_mask")
        result = self._decompose(formatted, masks, additional_forward_args, self.layer)
        one_phrase = isinstance(phrase_mask, Tensor) and phrase_mask.dim() == (1 if flat else 2)
        relevant, irrelevant = (result.beta[0], result.gamma[0]) if one_phrase else (result.beta, result.gamma)
        return (relevant, irrelevant, result.bias) if return_bias else (relevant, irrelevant)

    def interaction(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        mask_a: MaskType,
        mask_b: MaskType,
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
        contrast: TargetType = None,
    ) -> Tensor:
        """See :meth:`ContextualDecomposition.interaction`; the masks refer to the tokens :math:`(N, T)` (flat ids
        :math:`(M,)` or :math:`(P, M)` for an ``nn.EmbeddingBag``)."""
        formatted = _format_tensor_into_tuples(inputs)
        assert formatted is not None
        shape = self._token_shape(formatted)
        flat = self._flat_bag(formatted)
        first = _check_masks(_as_tuple(_grid_mask(mask_a, flat)), [shape], "mask_a")[0]
        second = _check_masks(_as_tuple(_grid_mask(mask_b, flat)), [shape], "mask_b")[0]
        if first.shape[0] != second.shape[0]:
            raise ValueError(
                f"Expected `mask_a` and `mask_b` to hold the same number of phrases, but got {first.shape[0]} and "
                f"{second.shape[0]}"
            )
        if target is not None and not flat:
            check_target(shape[0], target)
        if contrast is not None and not flat:
            check_target(shape[0], contrast)
        result = self._decompose(
            formatted, (torch.cat([first | second, first, second]),), additional_forward_args, self.layer
        )
        batch = int(result.beta.shape[1])
        for given in (target, contrast):
            if given is not None and flat:
                check_target(batch, given)
        scores = result.beta if target is None and contrast is None else _scores(result.beta, target, contrast, batch)
        joint, alone_a, alone_b = scores.chunk(3)
        out = joint - alone_a - alone_b
        return out[0] if isinstance(mask_a, Tensor) and mask_a.dim() == (1 if flat else 2) else out

    def _flat_bag(self, inputs: Tuple[Any, ...]) -> bool:
        """Whether the layer is an ``nn.EmbeddingBag`` and the first input flat ids :math:`(M,)`."""
        ids = inputs[0]
        return isinstance(self.layer, nn.EmbeddingBag) and isinstance(ids, Tensor) and ids.dim() == 1

    def _token_shape(self, inputs: Tuple[Any, ...]) -> Tuple[int, int]:
        """The token grid: :math:`(N, T)`, or :math:`(1, M)` for an ``nn.EmbeddingBag``'s :math:`M` flat ids."""
        ids = inputs[0]
        if self._flat_bag(inputs):
            return 1, int(ids.shape[0])
        if not isinstance(ids, Tensor) or ids.dim() < 2:
            got = tuple(ids.shape) if isinstance(ids, Tensor) else type(ids).__name__
            raise ValueError(f"Expected the first input to be token ids of shape (N, T), but got {got}")
        return int(ids.shape[0]), int(ids.shape[1])


def _grid_mask(mask: MaskType, flat: bool) -> MaskType:
    """A phrase mask over flat ids, :math:`(M,)` or :math:`(P, M)`, on the token grid :math:`(1, M)`."""
    if not flat or not isinstance(mask, Tensor) or mask.dim() not in (1, 2):
        return mask
    return mask.reshape(1, -1) if mask.dim() == 1 else mask.unsqueeze(1)


def _spread_over_bags(scores: Tensor, group_of_id: Tensor, groups: Tensor, bag_of_row: Tensor) -> Tensor:
    """Each group's score :math:`(G, N)` divided evenly among its flat ids in each bag: :math:`(M,)` (0 for ids
    no bag reads)."""
    group = torch.searchsorted(groups, group_of_id.contiguous())
    read = bag_of_row >= 0
    where = (group[read], bag_of_row[read])
    counts = torch.zeros_like(scores).index_put_(where, torch.ones_like(scores[where]), accumulate=True)
    out = scores.new_zeros(group_of_id.shape[0])
    out[read] = scores[where] / counts[where]
    return out

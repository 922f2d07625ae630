r"""LSTMLRP: layer-wise relevance propagation through LSTM/GRU gates (Arras et al., 2017), as a Captum method.

:class:`LSTMLRP` takes embeddings; :class:`LayerLSTMLRP` takes token ids and attributes at a layer's output (the
embedding), like Captum's ``LayerLRP`` and ``LayerIntegratedGradients``.
"""

from __future__ import annotations

import typing
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Literal, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from captum._utils.common import _format_output, _format_tensor_into_tuples, _is_tuple
from captum._utils.typing import TargetType, TensorOrTupleOfTensorsGeneric
from captum.attr import GradientAttribution, LayerAttribution
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from captum_text_ext.attr._batch_layout import batch_candidates, example_totals, infer_batch_dims, probe_weights
from captum_text_ext.attr._log_usage import log_usage
from captum_text_ext.attr._targets import check_target, select_scores
from captum_text_ext.decomposition.guard import OpGuard, is_tracked
from captum_text_ext.decomposition.bags import BagCapture, known_batch, start_at_layer
from captum_text_ext.decomposition.hooks import LayerCapture, ScopedHooks
from captum_text_ext.decomposition.lrp import EpsilonRule, InitialState, LRPRun, lrp_op_table
from captum_text_ext.decomposition.run import GuardedForward, Run, forward_args, model_output, plain_run

__all__ = ["LSTMLRP", "LRPDecomposition", "LayerLSTMLRP"]


@dataclass
class LRPDecomposition:
    r"""The full account of one LRP pass: where the target score :math:`f_c(x)` went.

    ``input_total`` + ``initial_state_total`` + ``absorbed`` equals ``scores`` for every example, whatever the layout
    of the layer: the examples of a layer output :math:`(T, N, E)` (a model calling ``self.emb(ids.t())``) are found
    along its batch dimension.

    Attributes:
        scores: :math:`(N,)` the target scores :math:`f_c(x)` (raw logits).
        inputs: the relevance of the inputs, shaped and structured like them (tensor or tuple); for
            :class:`LayerLSTMLRP`, of the layer's output (or input).
        input_total: :math:`(N,)` ``inputs`` summed per example.
        initial_states: the relevance left on each recurrent module's initial states, keyed
            ``"<module name>.h0"`` / ``".c0"``, each shaped like the state (:math:`(K D, N, H)` for
            ``nn.LSTM``/``nn.GRU``, :math:`(N, H)` for cells). Listed: the states that do not depend on the inputs
            (zeros when the model passes none) and that relevance can reach. 0 for :math:`\delta = 0` when the
            states are 0.
        initial_state_total: :math:`(N,)` the sum of ``initial_states`` per example.
        absorbed: :math:`(N,)` what biases, stabilizers and constants absorbed:
            ``scores - input_total - initial_state_total`` (0 up to rounding for :math:`\delta = 1`, except what
            constants the model brings in absorb, such as the zeros a CNN pads short sentences with).
    """

    scores: Tensor
    inputs: Union[Tensor, Tuple[Tensor, ...]]
    input_total: Tensor
    initial_states: Dict[str, Tensor]
    initial_state_total: Tensor
    absorbed: Tensor


class _Pass(NamedTuple):
    """What one LRP pass computed; ``totals``: :math:`(N,)` the relevance of the inputs (or the layer) summed per
    example, when asked for."""

    scores: Tensor
    relevance: Tuple[Tensor, ...]
    states: List[Tuple[InitialState, Tensor]]
    layer_is_tuple: bool
    totals: Optional[Tensor]

    def input_totals(self) -> Tensor:
        """``totals``, which the pass was asked for."""
        assert self.totals is not None, "the pass was run without totals=True"
        return self.totals


def _leaf(tensor: Tensor) -> Tensor:
    return tensor if tensor.requires_grad else tensor.detach().requires_grad_(True)


RECURRENT_MODULES = (nn.LSTM, nn.GRU, nn.LSTMCell, nn.GRUCell)


class _InitialStates:
    """Gives every ``nn.LSTM``/``nn.GRU``/``nn.LSTMCell``/``nn.GRUCell`` explicit initial states as leaves for one call
    (zeros when the caller passes none, the same values otherwise), so that the relevance reaching them can be read.
    Only while ``active()`` (for a layer attribution: after the layer ran, so that what runs before it stays
    untouched)."""

    def __init__(
        self, roots: Sequence[nn.Module], hooks: ScopedHooks, run: LRPRun, active: Callable[[], bool]
    ) -> None:
        self.run, self.active = run, active
        seen: List[nn.Module] = []
        for root in roots:
            for name, module in root.named_modules():
                if isinstance(module, RECURRENT_MODULES) and not any(module is m for m in seen):
                    seen.append(module)
                    hooks.forward_pre(module, self._hook(name or type(module).__name__), with_kwargs=True)

    def _hook(self, name: str) -> Callable[..., Any]:
        def hook(module: nn.Module, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
            if not self.active():
                return None
            with self.run.paused():
                return self._replace_state(name, module, args, kwargs)

        return hook

    def _replace_state(self, name: str, module: nn.Module, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        inp = args[0] if args else kwargs.get("input")
        hx = args[1] if len(args) > 1 else kwargs.get("hx")
        is_lstm = isinstance(module, (nn.LSTM, nn.LSTMCell))
        if hx is None:
            hx = self._zeros(module, inp, is_lstm)
        states = list(hx) if is_lstm else [hx]
        for index, state in enumerate(states):
            if isinstance(state, Tensor) and not state.requires_grad and state.is_floating_point():
                states[index] = _leaf(state)
                self.run.initial_states.append(InitialState(name, "h0" if index == 0 else "c0", states[index]))
        new_hx = tuple(states) if is_lstm else states[0]
        if len(args) > 1:
            return (args[0], new_hx, *args[2:]), kwargs
        return args, {**kwargs, "hx": new_hx}

    @staticmethod
    def _zeros(module: nn.Module, inp: Any, is_lstm: bool) -> Any:
        data = inp.data if isinstance(inp, PackedSequence) else inp
        if not isinstance(data, Tensor):
            return None
        if isinstance(module, nn.RNNBase):
            layers = module.num_layers * (2 if module.bidirectional else 1)
            h_size = module.proj_size if getattr(module, "proj_size", 0) else module.hidden_size
            if isinstance(inp, PackedSequence):
                batch: Optional[int] = int(inp.batch_sizes[0])
            elif data.dim() == 3:
                batch = int(data.shape[0] if module.batch_first else data.shape[1])
            else:
                batch = None
            lead: Tuple[int, ...] = (layers,) if batch is None else (layers, batch)
            h = data.new_zeros(lead + (h_size,))
            c = data.new_zeros(lead + (module.hidden_size,))
        else:
            lead = (int(data.shape[0]),) if data.dim() == 2 else ()
            hidden = int(getattr(module, "hidden_size"))
            h = data.new_zeros(lead + (hidden,))
            c = data.new_zeros(lead + (hidden,))
        return (h, c) if is_lstm else h


class LSTMLRP(GradientAttribution):
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
            ("LRP_cons": relevance is conserved: what reaches the inputs and the initial states sums to the score).
        cell_stabilizer: with :math:`\delta > 0`, where the stabilizer share of the cell sum
            :math:`c_t = f_t \odot c_{t-1} + i_t \odot g_t` (and of the GRU's :math:`h_t`) goes: ``"unit"``
            (default: the paper's :math:`N = 2`, each unit's share to its own two inputs) or ``"layer"`` (as Arras et
            al.'s released ``LSTM_bidi.py``, which hands the sum to ``lrp_linear`` as an identity matrix with
            ``bias_nb_units = 2d``: each unit's share is spread evenly over all :math:`2H` inputs of the layer's sum).
            Both conserve relevance; they differ in where it lands (up to 12.6% per word on the authors' model).

    Raises:
        TypeError: when ``model`` is not callable.
        ValueError: for a non-positive ``epsilon``, a ``bias_factor`` outside [0, 1] or an unknown
            ``cell_stabilizer``.

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
        if not callable(model):
            raise TypeError(f"Expected `model` to be an nn.Module or a callable, but got {type(model).__name__}")
        self._rule = EpsilonRule(epsilon, bias_factor, cell_stabilizer)
        GradientAttribution.__init__(self, model)

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

    @property
    def multiplies_by_inputs(self) -> bool:
        return True

    def has_convergence_delta(self) -> bool:
        return True

    @typing.overload
    @log_usage
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
        *,
        return_convergence_delta: Literal[True],
        verbose: bool = False,
    ) -> Tuple[TensorOrTupleOfTensorsGeneric, Tensor]: ...

    @typing.overload
    @log_usage
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
        return_convergence_delta: Literal[False] = False,
        verbose: bool = False,
    ) -> TensorOrTupleOfTensorsGeneric: ...

    @log_usage
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
        return_convergence_delta: bool = False,
        verbose: bool = False,
    ) -> Union[TensorOrTupleOfTensorsGeneric, Tuple[TensorOrTupleOfTensorsGeneric, Tensor]]:
        r"""Relevance of every input entry for the target score.

        Args:
            inputs: embeddings :math:`(N, T, E)`, or a tuple of floating-point tensors the model takes first
                (dimension 0 is the batch in each).
            target: Captum's target: ``None`` for a model with one output per example, an int (or one-element
                tensor), a tuple for outputs with more dimensions, or a list / 1-D tensor with one target per example.
            additional_forward_args: passed to the model after ``inputs`` (e.g. lengths); never attributed.
            return_convergence_delta: also return :math:`f_c(x) - \sum R` per example.
            verbose: print which rule ran each op.

        Returns:
            The relevance, same structure and shapes as ``inputs`` (contiguous); the word relevance is its sum over
            the last dimension. With ``return_convergence_delta``, ``(relevance, delta (N,))``.

        Raises:
            captum_text_ext.decomposition.UnsupportedOperationError: a ``TypeError`` naming an op on the path without
                a rule.
            TypeError: for inputs that are not floating-point tensors, or an output that does not depend on them.
            ValueError: for a target that does not select one score per example.
        """
        is_tuple = _is_tuple(inputs)
        formatted = _format_tensor_into_tuples(inputs)
        assert formatted is not None
        result = self._propagate(formatted, target, additional_forward_args, verbose, totals=return_convergence_delta)
        attributions = _format_output(is_tuple, result.relevance)
        if return_convergence_delta:
            return attributions, result.scores - result.input_totals()
        return attributions

    def attribute_future(self) -> None:
        """Not supported (as in Captum's ``LRP``).

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError("attribute_future is not implemented for LSTMLRP")

    @log_usage
    def compute_convergence_delta(
        self, attributions: Union[Tensor, Tuple[Tensor, ...]], output: Tensor
    ) -> Tensor:
        r"""The target score minus the summed relevance, per example (Captum ``LRP``'s signature).

        It is not 0 for ``bias_factor=1``: what the initial states of the recurrent layers received is in it too
        (0 only when no relevance reaches them); :meth:`decompose` gives every part apart.

        Args:
            attributions: the relevance returned by :meth:`attribute` (tensor or tuple).
            output: :math:`(N,)` the target scores :math:`f_c(x)`.

        Returns:
            :math:`(N,)` ``output - sum(attributions)``.
        """
        tensors = attributions if isinstance(attributions, tuple) else (attributions,)
        scores = output.flatten()
        batch = int(scores.shape[0])
        dims = self._batch_dims(tensors, batch)
        return scores - sum((example_totals(t, d, batch) for t, d in zip(tensors, dims)), torch.zeros_like(scores))

    def _batch_dims(self, tensors: Sequence[Tensor], batch: int) -> Tuple[Optional[int], ...]:
        """The batch dimension of each attribution tensor: 0 (the inputs' first dimension, as in Captum)."""
        return (0,) * len(tensors)

    def decompose(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
    ) -> LRPDecomposition:
        r"""The full account: input relevance, initial-state relevance and the absorbed part, which sum to the
        target score exactly.

        Arguments as :meth:`attribute`.

        Returns:
            An :class:`LRPDecomposition`.

        Raises:
            ValueError: when a recurrent module ran on a batch of another size than ``inputs`` (its initial-state
                relevance cannot be assigned to examples).

        Examples:
            >>> class Net(torch.nn.Module):
            ...     def __init__(self):
            ...         super().__init__()
            ...         self.lstm = torch.nn.LSTM(3, 2, batch_first=True, bidirectional=True)
            ...         self.fc = torch.nn.Linear(4, 2)
            ...     def forward(self, x):
            ...         _, (h, _) = self.lstm(x)
            ...         return self.fc(torch.cat([h[0], h[1]], dim=-1))
            >>> net = Net().double()
            >>> account = LSTMLRP(net, bias_factor=1.0).decompose(torch.randn(4, 5, 3, dtype=torch.float64), 0)
            >>> sorted(account.initial_states), account.initial_states["lstm.h0"].shape
            (['lstm.c0', 'lstm.h0'], torch.Size([2, 4, 2]))
            >>> total = account.input_total + account.initial_state_total
            >>> bool((total - account.scores).abs().max() < 1e-10), bool(account.absorbed.abs().max() < 1e-10)
            (True, True)
        """
        is_tuple = _is_tuple(inputs)
        formatted = _format_tensor_into_tuples(inputs)
        assert formatted is not None
        result = self._propagate(formatted, target, additional_forward_args, False, totals=True)
        return self._account(result, _format_output(is_tuple, result.relevance))

    # ------------------------------------------------------------------------------------------------------------

    @staticmethod
    def _account(result: "_Pass", structured: Union[Tensor, Tuple[Tensor, ...]]) -> LRPDecomposition:
        scores, states = result.scores, result.states
        batch = scores.shape[0]
        initial: Dict[str, Tensor] = {}
        total = torch.zeros_like(scores)
        for state, grad in states:
            key = f"{state.module}.{state.name}"
            suffix = 2
            while key in initial:
                key, suffix = f"{state.module}.{state.name}#{suffix}", suffix + 1
            initial[key] = grad
            batch_dim = grad.dim() - 2 if grad.dim() >= 2 else None
            if batch_dim is None or grad.shape[batch_dim] != batch:
                raise ValueError(
                    f"Expected the initial state {key} to hold one entry per example ({batch}) in dimension "
                    f"{batch_dim}, but got shape {tuple(grad.shape)}"
                )
            total = total + example_totals(grad, batch_dim, batch)
        inputs_total = result.input_totals()
        return LRPDecomposition(
            scores=scores,
            inputs=structured,
            input_total=inputs_total,
            initial_states=initial,
            initial_state_total=total,
            absorbed=scores - inputs_total - total,
        )

    def _propagate(
        self,
        inputs: Tuple[Tensor, ...],
        target: TargetType,
        additional_forward_args: Optional[object],
        verbose: bool,
        layer: Optional[nn.Module] = None,
        attribute_to_layer_input: bool = False,
        totals: bool = False,
    ) -> "_Pass":
        """One LRP pass. With ``totals`` (a per-example account is wanted), the batch dimension of a layer's
        relevance is inferred (:mod:`~captum_text_ext.attr._batch_layout`); the inputs' is dimension 0."""
        if layer is None:
            for index, tensor in enumerate(inputs):
                if not isinstance(tensor, Tensor) or not tensor.is_floating_point():
                    got = tensor.dtype if isinstance(tensor, Tensor) else type(tensor).__name__
                    raise TypeError(
                        f"Expected `inputs` to be floating-point tensors (embeddings), but input {index} is {got}; "
                        "for token ids use LayerLSTMLRP(model, embedding_layer)"
                    )
        known = known_batch(layer, attribute_to_layer_input, inputs[0])
        if known is not None:
            check_target(known, target)
        extra = forward_args(additional_forward_args)
        if known == 0:  # nothing to propagate: zeros shaped like what would carry relevance
            output, captured = plain_run(self.forward_func, (*inputs, *extra), layer, attribute_to_layer_input)
            model_output(output, 0, lambda _: True, Run("LSTMLRP"))
            leaves = inputs if captured is None else captured
            relevance = tuple(torch.zeros_like(t) for t in leaves)
            empty = leaves[0].new_zeros(0)
            return _Pass(empty, relevance, [], len(leaves) > 1 and layer is not None, empty if totals else None)
        run = LRPRun(self._rule)
        with torch.enable_grad(), GuardedForward(run, lrp_op_table(run), self.forward_func, layer) as forward:
            capture = (
                None if layer is None
                else start_at_layer(layer, forward.hooks, _leaf_copy, attribute_to_layer_input, run.paused)
            )
            _InitialStates(forward.roots, forward.hooks, run, lambda: capture is None or capture.captured is not None)
            leaves = inputs if capture is not None else tuple(_leaf_copy(t) for t in inputs)
            output = forward(*leaves, *extra)
            if capture is not None:
                leaves = capture.require()
            batch = known if known is not None else _bags(capture)
            if known is None:
                check_target(batch, target)
            output = model_output(output, batch, is_tracked, run)
            scores = select_scores(output, target)
            wrt = list(leaves) + [state.leaf for state in run.initial_states]
            probe = (
                totals and isinstance(capture, LayerCapture) and batch > 1
                and any(len(batch_candidates(t.shape, batch)) > 1 for t in leaves)
            )
            grads = torch.autograd.grad(scores, wrt, grad_outputs=scores.detach(), allow_unused=True,
                                        retain_graph=probe)
            relevance = tuple(
                (torch.zeros_like(t) if g is None else g).detach().contiguous() for t, g in zip(leaves, grads)
            )
            input_totals = None
            if isinstance(capture, BagCapture) and totals:
                assert capture.lookup is not None
                input_totals = capture.lookup.totals(relevance[0])
            elif totals:
                batch_dims: Tuple[Optional[int], ...] = (0,) * len(leaves)
                if capture is not None:
                    weights = probe_weights(batch, scores) if probe else None
                    probed = (
                        torch.autograd.grad(scores, list(leaves), grad_outputs=scores.detach() * weights,
                                            allow_unused=True)
                        if weights is not None else None
                    )
                    batch_dims = infer_batch_dims(relevance, batch, probed, weights)
                input_totals = sum(
                    (example_totals(t, d, batch) for t, d in zip(relevance, batch_dims)), torch.zeros_like(scores)
                ).detach()
        if verbose:
            assert forward.guard is not None
            self._print_log(forward.guard)
        states = [(state, g.detach()) for state, g in zip(run.initial_states, grads[len(leaves) :]) if g is not None]
        return _Pass(scores.detach(), relevance, states, capture is not None and capture.is_tuple, input_totals)

    @staticmethod
    def _print_log(guard: OpGuard) -> None:
        counts = Counter(guard.log)
        for (op, module, rule), count in counts.items():
            times = f" x{count}" if count > 1 else ""
            print(f"LSTMLRP: {module or '<root>'}: {op}{times} -> {rule}")


def _bags(capture: Any) -> int:
    """The number of bags of the ``nn.EmbeddingBag`` a pass started at (the examples of flat ids)."""
    assert isinstance(capture, BagCapture) and capture.lookup is not None
    return capture.lookup.bags


def _leaf_copy(tensor: Tensor) -> Tensor:
    return tensor.detach().requires_grad_(True)


class LayerLSTMLRP(LSTMLRP, LayerAttribution):
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

    @typing.overload  # type: ignore[override]  # adds attribute_to_layer_input, as Captum's layer methods do
    @log_usage
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
        *,
        return_convergence_delta: Literal[True],
        attribute_to_layer_input: bool = False,
        verbose: bool = False,
    ) -> Tuple[Union[Tensor, Tuple[Tensor, ...]], Tensor]: ...

    @typing.overload
    @log_usage
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
        return_convergence_delta: Literal[False] = False,
        attribute_to_layer_input: bool = False,
        verbose: bool = False,
    ) -> Union[Tensor, Tuple[Tensor, ...]]: ...

    @log_usage
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
        return_convergence_delta: bool = False,
        attribute_to_layer_input: bool = False,
        verbose: bool = False,
    ) -> Union[Union[Tensor, Tuple[Tensor, ...]], Tuple[Union[Tensor, Tuple[Tensor, ...]], Tensor]]:
        r"""Relevance of the layer's output (or input) for the target score.

        Args:
            inputs: the model's inputs (token ids :math:`(N, T)`), a tensor or a tuple.
            target: Captum's target (see :meth:`LSTMLRP.attribute`).
            additional_forward_args: passed to the model after ``inputs`` (e.g. lengths).
            return_convergence_delta: also return :math:`f_c(x) - \sum R` per example.
            attribute_to_layer_input: attribute the layer's floating-point inputs instead of its output.
            verbose: print which rule ran each op.

        Returns:
            The relevance shaped like the layer's output (a tensor, or a tuple when the layer returns one); with
            ``return_convergence_delta``, ``(relevance, delta (N,))``.
        """
        formatted = _format_tensor_into_tuples(inputs)
        assert formatted is not None
        result = self._propagate(
            formatted, target, additional_forward_args, verbose, self.layer, attribute_to_layer_input,
            totals=return_convergence_delta,
        )
        attributions = _format_output(result.layer_is_tuple, result.relevance)
        if return_convergence_delta:
            return attributions, result.scores - result.input_totals()
        return attributions

    def _batch_dims(self, tensors: Sequence[Tensor], batch: int) -> Tuple[Optional[int], ...]:
        """The batch dimension of each relevance tensor of the layer: its one dimension of the batch size (refused
        when there are several: :meth:`attribute` and :meth:`decompose` tell them apart, this method cannot; and
        for the rows of an ``nn.EmbeddingBag``, which belong to the bags its offsets say)."""
        if isinstance(self.layer, nn.EmbeddingBag):
            raise ValueError(
                "Expected attributions with a batch dimension, but the relevance of an nn.EmbeddingBag's looked-up "
                "rows belongs to the bags its offsets say; use attribute(..., return_convergence_delta=True) or "
                "decompose()"
            )
        return infer_batch_dims(tensors, batch, None, None, "the attributions")

    def decompose(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
        attribute_to_layer_input: bool = False,
    ) -> LRPDecomposition:
        """The full account (see :meth:`LSTMLRP.decompose`), with ``inputs`` the relevance of the layer."""
        formatted = _format_tensor_into_tuples(inputs)
        assert formatted is not None
        result = self._propagate(
            formatted, target, additional_forward_args, False, self.layer, attribute_to_layer_input, totals=True
        )
        return self._account(result, _format_output(result.layer_is_tuple, result.relevance))

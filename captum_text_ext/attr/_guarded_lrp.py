r"""What every guarded LRP method shares (:class:`~captum_text_ext.LSTMLRP`, :class:`~captum_text_ext.TransformerLRP`
and their layer variants): one guarded run of the user's model with the method's op table, the relevance read as the
gradient of the target score, the initial states of recurrent layers as relevance-collecting leaves, and the account
(:class:`LRPDecomposition`).

A method names its op table (:meth:`GuardedLRP._op_table`); everything else is here, written once.
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
from captum_text_ext.decomposition.guard import OpGuard, OpTable, is_tracked
from captum_text_ext.decomposition.bags import BagCapture, known_batch, start_at_layer
from captum_text_ext.decomposition.hooks import LayerCapture, ScopedHooks
from captum_text_ext.decomposition.lrp import EpsilonRule, InitialState, LRPRun
from captum_text_ext.decomposition.run import GuardedForward, Run, forward_args, model_output, plain_run

__all__ = ["GuardedLRP", "LRPDecomposition", "LayerGuardedLRP"]


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


class GuardedLRP(GradientAttribution):
    """The Captum-facing part of a guarded LRP method: ``attribute``, ``decompose`` and the convergence delta, for a
    method whose op table is :meth:`_op_table`.

    Args:
        model: the model or forward function.
        rule: the ε-rule's constants.
        method: the method's name, for messages and ``verbose`` output.
    """

    def __init__(self, model: Callable[..., Tensor], rule: EpsilonRule, method: str) -> None:
        if not callable(model):
            raise TypeError(f"Expected `model` to be an nn.Module or a callable, but got {type(model).__name__}")
        self._rule, self._method = rule, method
        GradientAttribution.__init__(self, model)

    def _op_table(self, run: LRPRun) -> OpTable:
        """The method's op table for one call."""
        raise NotImplementedError

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
        raise NotImplementedError(f"attribute_future is not implemented for {self._method}")

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
            >>> from captum_text_ext import LSTMLRP
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
                        f"for token ids use Layer{self._method}(model, embedding_layer)"
                    )
        known = known_batch(layer, attribute_to_layer_input, inputs[0])
        if known is not None:
            check_target(known, target)
        extra = forward_args(additional_forward_args)
        if known == 0:  # nothing to propagate: zeros shaped like what would carry relevance
            output, captured = plain_run(self.forward_func, (*inputs, *extra), layer, attribute_to_layer_input)
            model_output(output, 0, lambda _: True, Run(self._method))
            leaves = inputs if captured is None else captured
            relevance = tuple(torch.zeros_like(t) for t in leaves)
            empty = leaves[0].new_zeros(0)
            return _Pass(empty, relevance, [], len(leaves) > 1 and layer is not None, empty if totals else None)
        run = LRPRun(self._rule, self._method)
        with torch.enable_grad(), GuardedForward(run, self._op_table(run), self.forward_func, layer) as forward:
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
            self._print_log(forward.guard, self._method)
        states = [(state, g.detach()) for state, g in zip(run.initial_states, grads[len(leaves) :]) if g is not None]
        return _Pass(scores.detach(), relevance, states, capture is not None and capture.is_tuple, input_totals)

    @staticmethod
    def _print_log(guard: OpGuard, method: str) -> None:
        counts = Counter(guard.log)
        for (op, module, rule), count in counts.items():
            times = f" x{count}" if count > 1 else ""
            print(f"{method}: {module or '<root>'}: {op}{times} -> {rule}")


def _bags(capture: Any) -> int:
    """The number of bags of the ``nn.EmbeddingBag`` a pass started at (the examples of flat ids)."""
    assert isinstance(capture, BagCapture) and capture.lookup is not None
    return capture.lookup.bags


def _leaf_copy(tensor: Tensor) -> Tensor:
    return tensor.detach().requires_grad_(True)


class LayerGuardedLRP(GuardedLRP, LayerAttribution):
    """:class:`GuardedLRP` at a layer's output (or input): the layer variants' ``attribute`` and ``decompose``."""

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

r"""Speed and memory of :class:`~captum_text_ext.LSTMLRP`: ``captum-text-ext benchmark lrp-speed``.

**The whole SST test set.** Sentences per second on the 2210 SST test sentences with the zoo model ``bilstm-sst5``
(bi-LSTM, embedding 60, hidden 60, 5 classes), float32, in batches of at most 64 sentences of similar length, for
four methods in one run:

- ``LSTMLRP``: one batched pass per batch (``epsilon=1e-3``, ``bias_factor=0``);
- ``NumPy loop``: :func:`numpy_lstm_lrp`, the same equations for one sentence at a time, step by step, in NumPy (the
  way the authors' released code, ``ArrasL/LRP_for_LSTM``'s ``LSTM_bidi.py``, runs);
- ``Saliency``: Captum ``Saliency`` (one gradient per batch);
- ``IG``: Captum ``IntegratedGradients`` with ``n_steps=50``.

The timed work is interleaved at the batch level (each batch is run by every method in turn, the order rotating from
batch to batch), so that a change in the machine's load hits every method alike, after one untimed warm-up batch
per method. The whole set is timed ``repeats`` times with one torch thread (every method) and with two (LSTMLRP and
Saliency); each method's throughput is the median over the repetitions, and the ratio LSTMLRP / Saliency is the
median of the per-repetition ratios; the target (:data:`TARGET_RATIO`) holds for the lower of the two thread counts.

Before timing, a sanity check runs the NumPy loop and ``LSTMLRP`` in float64 on a few sentences, for
:math:`\delta = 0` and :math:`\delta = 1`: their relevances must agree to :data:`SANITY_TOLERANCE`.

**Model forms** (:mod:`~captum_text_ext.benchmarks.lrp_forms`): the throughput ratio at batch 64 and 256 and the
latency ratio at batch 1 and 8 on the recurrent classifiers users write and on ``bilstm-sst5``, with 1 and 2 threads,
each cell the median of interleaved timings, the headline the worst cell; and a profile of one small call.

**Memory** (:mod:`~captum_text_ext.benchmarks.lrp_memory`): the peak resident memory a call adds, LSTMLRP against
Saliency, each in a fresh process.

The transformer rows (:mod:`~captum_text_ext.benchmarks.transformer_lrp_speed`) follow: ``TransformerLRP`` (both
presets) against ``Saliency`` on ``transformer-sst2``, batches of 64, with 1 and 2 torch threads.
"""

from __future__ import annotations

import copy
import dataclasses
import shlex
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from captum.attr import Attribution, IntegratedGradients, Saliency
from torch import Tensor, nn

from captum_text_ext.attr import LSTMLRP
from captum_text_ext.benchmarks import lrp_forms, lrp_memory
from captum_text_ext.benchmarks.op_profile import op_profile_lines
from captum_text_ext.benchmarks.sentences import SentenceBatch, embed_sentences
from captum_text_ext.benchmarks.transformer_lrp_speed import (
    load_zoo_transformer,
    measure_transformer_rows,
    transformer_batches,
    transformer_lines,
    transformer_summary,
)
from captum_text_ext.benchmarks.zoo_lstm import load_zoo_lstm
from captum_text_ext.datasets import load_sst
from captum_text_ext.datasets._paths import PathLike, find_dataset_file
from captum_text_ext.models import LSTMClassifier
from captum_text_ext.models.checkpoints import record_checkpoint
from captum_text_ext.models.zoo import checkpoint_path
from captum_text_ext.provenance import Provenance, RunRecorder, write_json, write_markdown

__all__ = [
    "EXPECTED_SENTENCES",
    "MODEL",
    "BiLSTMWeights",
    "SANITY_TOLERANCE",
    "TARGET_RATIO",
    "numpy_lstm_lrp",
    "run_lrp_speed",
    "sanity_check",
]

MODEL = "bilstm-sst5"
"""The zoo model whose explanations are timed (the one :mod:`~captum_text_ext.benchmarks.arras2017` explains)."""
EXPECTED_SENTENCES = 2210
"""Sentences of the SST test split."""
TARGET_RATIO = 0.8
"""LSTMLRP must reach at least this fraction of Saliency's throughput over the whole test set, with every thread count
of :data:`SET_THREADS`."""
SET_THREADS = (1, 2)
"""Torch thread counts of the whole-set rows."""
MEMORY_FORMS = tuple(lrp_forms.FORMS)
"""The model forms of the memory rows."""
SANITY_TOLERANCE = 1e-8
"""Largest float64 difference between the NumPy loop and LSTMLRP, relative to the largest relevance."""
SANITY_SENTENCES = 5
"""Sentences of the float64 sanity check."""
REPEATS = 5
"""Timed passes over the test set."""
METHODS = ("LSTMLRP", "NumPy loop", "Saliency", "IG")
"""The timed methods, in their first order."""


@dataclasses.dataclass(frozen=True)
class BiLSTMWeights:
    r"""The weights of a one-layer bi-LSTM classifier reading its final states, as NumPy arrays.

    Gate rows follow PyTorch's order i, f, g, o; each direction's two bias vectors are summed.

    Attributes:
        w_ih: per direction (forward, backward), :math:`(4H, E)`.
        w_hh: per direction, :math:`(4H, H)`.
        bias: per direction, :math:`(4H,)` (``b_ih + b_hh``).
        w_out: :math:`(C, 2H)` the output layer, reading :math:`[h^{\rightarrow}_T; h^{\leftarrow}_1]`.
        b_out: :math:`(C,)` its bias (zeros when it has none).
    """

    w_ih: Tuple[np.ndarray, np.ndarray]
    w_hh: Tuple[np.ndarray, np.ndarray]
    bias: Tuple[np.ndarray, np.ndarray]
    w_out: np.ndarray
    b_out: np.ndarray

    @classmethod
    def from_model(cls, model: nn.Module) -> "BiLSTMWeights":
        """Read the weights of an :class:`~captum_text_ext.models.LSTMClassifier` with a one-layer bidirectional
        ``nn.LSTM`` and ``pooling="last"`` (in the model's dtype).

        Raises:
            ValueError: for any other model.
        """
        rnn = model.rnn if isinstance(model, LSTMClassifier) else None
        if (
            not isinstance(model, LSTMClassifier) or not isinstance(rnn, nn.LSTM) or rnn.num_layers != 1
            or not rnn.bidirectional or rnn.proj_size or not rnn.bias or model.pooling != "last"
        ):
            raise ValueError(
                "Expected an LSTMClassifier with a one-layer bidirectional nn.LSTM (with biases) and pooling='last', "
                f"but got {type(model).__name__}"
            )

        def array(name: str, module: nn.Module = rnn) -> np.ndarray:
            values: np.ndarray = module.get_parameter(name).detach().cpu().numpy().copy()
            return values

        w_ih = (array("weight_ih_l0"), array("weight_ih_l0_reverse"))
        w_hh = (array("weight_hh_l0"), array("weight_hh_l0_reverse"))
        bias = (array("bias_ih_l0") + array("bias_hh_l0"), array("bias_ih_l0_reverse") + array("bias_hh_l0_reverse"))
        output = model.output
        b_out = array("bias", output) if output.bias is not None else np.zeros(output.out_features, w_ih[0].dtype)
        return cls(w_ih, w_hh, bias, array("weight", output), b_out)


def _sign(z: np.ndarray) -> np.ndarray:
    return np.where(z >= 0, 1, -1).astype(z.dtype)


def _lrp_linear(
    inputs: np.ndarray, weight: np.ndarray, bias: np.ndarray, z: np.ndarray, relevance: np.ndarray, fan_in: int,
    epsilon: float, delta: float,
) -> np.ndarray:
    """The ε-rule for :math:`z = W a + b`: inputs :math:`(D,)`, weight :math:`(M, D)`, bias, z and relevance
    :math:`(M,)`; returns the relevance of the inputs :math:`(D,)`."""
    sign = _sign(z)
    share = delta * (bias + epsilon * sign) / fan_in
    ratio = relevance / (z + epsilon * sign)
    spread: np.ndarray = inputs * (weight.T @ ratio) + share @ ratio
    return spread


@dataclasses.dataclass(frozen=True)
class _DirectionTrace:
    """One direction's forward pass over :math:`T` steps: states (index 0: the initial state) and gates."""

    x: np.ndarray
    h: np.ndarray
    c: np.ndarray
    i: np.ndarray
    f: np.ndarray
    g: np.ndarray
    pre_g: np.ndarray


def _lstm_forward(x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, bias: np.ndarray) -> _DirectionTrace:
    """Run one direction over ``x`` :math:`(T, E)` step by step (gate order i, f, g, o)."""
    steps, hidden = x.shape[0], w_hh.shape[1]
    h = np.zeros((steps + 1, hidden), x.dtype)
    c = np.zeros((steps + 1, hidden), x.dtype)
    i, f, g, pre_g = (np.zeros((steps, hidden), x.dtype) for _ in range(4))
    for t in range(steps):
        pre = w_ih @ x[t] + w_hh @ h[t] + bias
        i[t] = 1 / (1 + np.exp(-pre[:hidden]))
        f[t] = 1 / (1 + np.exp(-pre[hidden : 2 * hidden]))
        pre_g[t] = pre[2 * hidden : 3 * hidden]
        g[t] = np.tanh(pre_g[t])
        o = 1 / (1 + np.exp(-pre[3 * hidden :]))
        c[t + 1] = f[t] * c[t] + i[t] * g[t]
        h[t + 1] = o * np.tanh(c[t + 1])
    return _DirectionTrace(x, h, c, i, f, g, pre_g)


def _lstm_backward(
    trace: _DirectionTrace, w_ih: np.ndarray, w_hh: np.ndarray, bias: np.ndarray, relevance_h: np.ndarray,
    epsilon: float, delta: float,
) -> np.ndarray:
    """Propagate the relevance of the last hidden state back through one direction, step by step; returns the
    relevance of its inputs :math:`(T, E)`."""
    steps, embed = trace.x.shape
    hidden = w_hh.shape[1]
    rows = slice(2 * hidden, 3 * hidden)
    w_x, w_h, b_g = w_ih[rows], w_hh[rows], bias[rows]
    relevance_x = np.zeros_like(trace.x)
    r_h, r_c = relevance_h, np.zeros(hidden, trace.x.dtype)
    for t in reversed(range(steps)):
        r_c = r_c + r_h  # h_t = o_t * tanh(c_t): everything to c_t
        sign = _sign(trace.c[t + 1])
        ratio = r_c / (trace.c[t + 1] + epsilon * sign)
        share = delta * epsilon * sign / 2
        r_g = (trace.i[t] * trace.g[t] + share) * ratio  # c_t = f c_{t-1} + i g: N = 2
        r_c = (trace.f[t] * trace.c[t] + share) * ratio
        relevance_x[t] = _lrp_linear(trace.x[t], w_x, b_g, trace.pre_g[t], r_g, embed + hidden, epsilon, delta)
        r_h = _lrp_linear(trace.h[t], w_h, b_g, trace.pre_g[t], r_g, embed + hidden, epsilon, delta)
    return relevance_x


def numpy_lstm_lrp(
    weights: BiLSTMWeights, x: np.ndarray, target: int, epsilon: float = 1e-3, bias_factor: float = 0.0
) -> np.ndarray:
    r"""LRP for one sentence through a bi-LSTM classifier, one time step at a time (the benchmark's baseline).

    The equations of :class:`~captum_text_ext.LSTMLRP` written out: the target logit is the initial relevance; the
    output layer and the cell input :math:`g_t`'s pre-activation (fan-in :math:`E + H`) use the ε-rule, the cell sum
    :math:`c_t = f_t c_{t-1} + i_t g_t` is a weighted connection with two inputs per unit, :math:`h_t` gives all to
    :math:`c_t`, and the gates get nothing. The relevance left on the initial states is dropped.

    Args:
        weights: the classifier's weights.
        x: :math:`(T, E)` the sentence's embeddings (their dtype is the computation's).
        target: the class explained.
        epsilon: the stabilizer :math:`\epsilon`.
        bias_factor: :math:`\delta`.

    Returns:
        :math:`(T, E)` the relevance of the embeddings.

    Examples:
        >>> import torch
        >>> from captum_text_ext.models import LSTMClassifier
        >>> _ = torch.manual_seed(0)
        >>> model = LSTMClassifier(20, embedding_dim=4, hidden_size=3, num_classes=2).double().eval()
        >>> x = model.embedding(torch.tensor([[2, 3, 4]])).detach()
        >>> ours = LSTMLRP(model.forward_embeddings).attribute(x, target=1)[0].numpy()
        >>> bool(np.abs(numpy_lstm_lrp(BiLSTMWeights.from_model(model), x[0].numpy(), 1) - ours).max() < 1e-12)
        True
    """
    hidden = weights.w_hh[0].shape[1]
    sequences = (x, np.ascontiguousarray(x[::-1]))
    traces = [_lstm_forward(sequences[d], weights.w_ih[d], weights.w_hh[d], weights.bias[d]) for d in (0, 1)]
    state = np.concatenate([traces[0].h[-1], traces[1].h[-1]])
    scores = weights.w_out @ state + weights.b_out
    relevance_out = np.zeros_like(scores)
    relevance_out[target] = scores[target]
    relevance_state = _lrp_linear(
        state, weights.w_out, weights.b_out, scores, relevance_out, 2 * hidden, epsilon, bias_factor
    )
    halves = (relevance_state[:hidden], relevance_state[hidden:])
    forward, backward = (
        _lstm_backward(traces[d], weights.w_ih[d], weights.w_hh[d], weights.bias[d], halves[d], epsilon, bias_factor)
        for d in (0, 1)
    )
    relevance: np.ndarray = forward + backward[::-1]
    return relevance


def sanity_check(
    model: LSTMClassifier, batch: SentenceBatch, targets: Tensor, sentences: int = SANITY_SENTENCES
) -> Dict[str, float]:
    """Compare :func:`numpy_lstm_lrp` with ``LSTMLRP`` in float64 on the first ``sentences`` of ``batch``.

    Args:
        model: the classifier (copied to float64; the original is untouched).
        batch: embedded sentences.
        targets: :math:`(n,)` the class explained per sentence of the batch.
        sentences: how many sentences to compare.

    Returns:
        ``{"bias_factor=0": err, "bias_factor=1": err}``: the largest absolute difference divided by the largest
        absolute relevance.

    Raises:
        RuntimeError: when a difference exceeds :data:`SANITY_TOLERANCE`.
    """
    double = copy.deepcopy(model).double().eval()
    weights = BiLSTMWeights.from_model(double)
    count = min(sentences, int(batch.lengths.numel()))
    embeddings, lengths = batch.embeddings[:count].double(), batch.lengths[:count]
    errors = {}
    for delta in (0.0, 1.0):
        ours = LSTMLRP(double.forward_embeddings, bias_factor=delta).attribute(
            embeddings, target=targets[:count], additional_forward_args=(lengths,)
        )
        worst, scale = 0.0, 0.0
        for n in range(count):
            length = int(lengths[n])
            loop = numpy_lstm_lrp(weights, embeddings[n, :length].numpy(), int(targets[n]), bias_factor=delta)
            worst = max(worst, float(np.abs(loop - ours[n, :length].numpy()).max()))
            scale = max(scale, float(np.abs(loop).max()))
        errors[f"bias_factor={delta:g}"] = worst / scale if scale > 0 else worst
    if max(errors.values()) > SANITY_TOLERANCE:
        raise RuntimeError(f"The NumPy loop and LSTMLRP disagree (relative differences {errors}); the timing would "
                           "compare different computations")
    return errors


def _timers(model: LSTMClassifier) -> Dict[str, Callable[[SentenceBatch, Tensor], Any]]:
    forward = model.forward_embeddings
    lrp = LSTMLRP(forward, epsilon=1e-3, bias_factor=0.0)
    saliency = Saliency(forward)
    integrated: Attribution = IntegratedGradients(forward)  # captum's overloads of `attribute` are opaque to mypy
    weights = BiLSTMWeights.from_model(model)

    def run_lrp(batch: SentenceBatch, target: Tensor) -> Any:
        return lrp.attribute(batch.embeddings, target=target, additional_forward_args=(batch.lengths,))

    def run_loop(batch: SentenceBatch, target: Tensor) -> Any:
        embeddings = batch.embeddings.numpy()
        return [numpy_lstm_lrp(weights, embeddings[n, : int(length)], int(target[n]))
                for n, length in enumerate(batch.lengths)]

    def run_saliency(batch: SentenceBatch, target: Tensor) -> Any:
        leaf = batch.embeddings.detach().requires_grad_(True)
        return saliency.attribute(leaf, target=target, abs=False, additional_forward_args=(batch.lengths,))

    def run_ig(batch: SentenceBatch, target: Tensor) -> Any:
        return integrated.attribute(batch.embeddings, target=target, additional_forward_args=(batch.lengths,),
                                    n_steps=50)

    return {"LSTMLRP": run_lrp, "NumPy loop": run_loop, "Saliency": run_saliency, "IG": run_ig}


def run_lrp_speed(
    out: PathLike,
    data_root: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
    command: Optional[str] = None,
    repeats: int = REPEATS,
) -> List[str]:
    """Time the four methods and write ``lrp_speed.md`` and ``lrp_speed.json`` (with provenance) to ``out``.

    Args:
        out: the results directory.
        data_root: the data directory holding ``sst/test.txt``.
        cache_dir: the model cache holding ``bilstm-sst5.pt`` and ``transformer-sst2.pt`` (they are not trained
            here).
        command: the command line to record (default: ``captum-text-ext benchmark lrp-speed --out OUT``).
        repeats: timed passes over the test set.

    Returns:
        The summary lines the command prints (the same numbers as the files).

    Raises:
        FileNotFoundError: when a model (``bilstm-sst5``, ``transformer-sst2``) or the data is missing.
        ValueError: when the test set does not hold :data:`EXPECTED_SENTENCES` sentences, or ``repeats`` < 1.
        RuntimeError: when the sanity check fails.
    """
    if repeats < 1:
        raise ValueError(f"Expected `repeats` >= 1, but got {repeats}")
    out = Path(out)
    command = command or shlex.join(["captum-text-ext", "benchmark", "lrp-speed", "--out", str(out)])
    with RunRecorder(command=command, torch_threads=1) as run:
        result = _measure(run, data_root, cache_dir, repeats)
    return _write(out, run.provenance, result)


def _time_set(
    timers: Dict[str, Callable[[SentenceBatch, Tensor], Any]], names: Tuple[str, ...], sentences: Any, repeats: int
) -> Dict[str, List[float]]:
    """Seconds per pass over the whole set for each method of ``names``, interleaved batch by batch (the order
    rotating), after one untimed warm-up batch each."""
    first = sentences.batches[0]
    for name in names:
        timers[name](first, sentences.labels[first.index])
    seconds: Dict[str, List[float]] = {name: [0.0] * repeats for name in names}
    for repeat in range(repeats):
        for number, batch in enumerate(sentences.batches):
            target = sentences.labels[batch.index]
            shift = (number + repeat) % len(names)
            for name in names[shift:] + names[:shift]:
                started = time.perf_counter()
                timers[name](batch, target)
                seconds[name][repeat] += time.perf_counter() - started
    return seconds


def _set_rows(timers: Dict[str, Callable[[SentenceBatch, Tensor], Any]], sentences: Any, repeats: int
              ) -> List[Dict[str, Any]]:
    """The whole test set, once per thread count of :data:`SET_THREADS` (every method with one thread, LSTMLRP and
    Saliency with more); the thread count is restored afterwards."""
    rows = []
    before = torch.get_num_threads()
    try:
        for threads in SET_THREADS:
            torch.set_num_threads(threads)
            names = METHODS if threads == 1 else ("LSTMLRP", "Saliency")
            seconds = _time_set(timers, names, sentences, repeats)
            rates = {name: [len(sentences) / s for s in spent] for name, spent in seconds.items()}
            ratios = [rates["LSTMLRP"][r] / rates["Saliency"][r] for r in range(repeats)]
            rows.append({
                "threads": threads,
                "seconds": seconds,
                "sentences_per_second": {name: statistics.median(values) for name, values in rates.items()},
                "sentences_per_second_per_repeat": rates,
                "ratio_lstmlrp_to_saliency": statistics.median(ratios),
                "ratio_lstmlrp_to_saliency_per_repeat": ratios,
            })
    finally:
        torch.set_num_threads(before)
    return rows


def _measure(run: RunRecorder, data_root: Optional[PathLike], cache_dir: Optional[PathLike], repeats: int
             ) -> Dict[str, Any]:
    model, vocabulary = load_zoo_lstm(MODEL, cache_dir)
    model = model.float()
    record_checkpoint(run, "checkpoint", checkpoint_path(MODEL, cache_dir))
    run.record_file("sst/test.txt", find_dataset_file("sst", "test.txt", data_root))
    trees = load_sst("test", data_root)
    if len(trees) != EXPECTED_SENTENCES:
        raise ValueError(f"Expected the SST test split to hold {EXPECTED_SENTENCES} sentences, but got {len(trees)}")
    ids = [vocabulary.encode([token.lower() for token in tree.tokens]) for tree in trees]
    sentences = embed_sentences(model.embedding, ids, [tree.label for tree in trees], vocabulary.pad_index)
    longest = max(sentences.batches, key=lambda b: int(b.lengths.max()))
    sanity = sanity_check(model, longest, sentences.labels[longest.index])
    set_rows = _set_rows(_timers(model), sentences, repeats)
    worst_set = min(row["ratio_lstmlrp_to_saliency"] for row in set_rows)

    forwards = {**lrp_forms.user_forms(), MODEL: model.forward_embeddings}
    widths = {MODEL: model.embedding.embedding_dim}
    grids = {
        name: lrp_forms.measure_grid(forwards, batches, lrp_forms.STEPS, lrp_forms.THREADS, lrp_forms.TIMINGS, widths)
        for name, batches in (("throughput", lrp_forms.LARGE_BATCHES), ("latency", lrp_forms.SMALL_BATCHES))
    }
    bad = lrp_forms.worst(grids["throughput"])
    bad_width = widths.get(bad["form"], lrp_forms.EMBEDDING_DIM)
    worst_profile = lrp_forms.cell_op_profile(forwards[bad["form"]], bad, bad_width)
    profile_form, profile_steps = "h_n head", max(lrp_forms.STEPS)
    profile = lrp_forms.profile_call(forwards[profile_form], lrp_forms.form_inputs(profile_form, 1, profile_steps),
                                     lrp_forms.PROFILE_CALLS)
    memory = lrp_memory.measure_memory(MEMORY_FORMS, lrp_memory.MEMORY_STEPS) if lrp_memory.supported() else []

    transformer, tokenizer = load_zoo_transformer("transformer-sst2", cache_dir)
    record_checkpoint(run, "transformer checkpoint", checkpoint_path("transformer-sst2", cache_dir))
    binary = load_sst("test", data_root, granularity="binary")
    transformer_rows = measure_transformer_rows(transformer, transformer_batches(transformer, tokenizer, binary), repeats)
    one_thread = set_rows[0]
    return {
        "model": MODEL,
        "sentences": len(sentences),
        "batches": len(sentences.batches),
        "batch_size_max": max(int(b.lengths.numel()) for b in sentences.batches),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "repeats": repeats,
        "whole_set": set_rows,
        "sentences_per_second": one_thread["sentences_per_second"],
        "ratio_lstmlrp_to_saliency": worst_set,
        "target_ratio": TARGET_RATIO,
        "target_met": worst_set >= TARGET_RATIO,
        "sanity_relative_difference": sanity,
        "forms": {
            "throughput": grids["throughput"],
            "throughput_target": lrp_forms.THROUGHPUT_TARGET,
            "throughput_met": lrp_forms.worst(grids["throughput"])["ratio"] >= lrp_forms.THROUGHPUT_TARGET,
            "latency": grids["latency"],
            "latency_target": lrp_forms.LATENCY_TARGET,
            "latency_met": 1 / lrp_forms.worst(grids["latency"])["ratio"] <= lrp_forms.LATENCY_TARGET,
            "profile": {"form": profile_form, "batch": 1, "steps": profile_steps, **profile},
            "worst_throughput_profile": worst_profile,
        },
        "memory": memory,
        "memory_target": lrp_memory.MEMORY_TARGET,
        "gpu_available": torch.cuda.is_available(),
        "transformer": transformer_rows,
    }


def _write(out: Path, provenance: Provenance, result: Dict[str, Any]) -> List[str]:
    set_rows = result["whole_set"]
    rates = result["sentences_per_second"]
    met = "met" if result["target_met"] else "NOT met"
    loop_speedup = rates["LSTMLRP"] / rates["NumPy loop"]
    sanity = ", ".join(f"{k}: {v:.1e}" for k, v in result["sanity_relative_difference"].items())
    forms = result["forms"]
    worst_cell = forms["worst_throughput_profile"]
    lines = [
        "# LSTMLRP speed",
        "",
        "## The whole SST test set",
        "",
        f"Model `{result['model']}` (bi-LSTM, embedding 60, hidden 60, 5 classes, {result['dtype']}) on the "
        f"{result['sentences']} SST test sentences in {result['batches']} batches of at most "
        f"{result['batch_size_max']} sentences (sorted by length). Each method's throughput is the median of "
        f"{result['repeats']} timed passes over the set, interleaved batch by batch; the ratio is the median of the "
        "per-pass ratios. With 2 threads only LSTMLRP and Saliency are timed.",
        "",
        "| threads | method | sentences/s | per pass | × Saliency |",
        "|---|---|---|---|---|",
    ]
    for row in set_rows:
        row_rates, saliency = row["sentences_per_second"], row["sentences_per_second"]["Saliency"]
        lines += [
            f"| {row['threads']} | {name} | {value:.1f} | "
            f"{' / '.join(f'{v:.1f}' for v in row['sentences_per_second_per_repeat'][name])} | {value / saliency:.3f} |"
            for name, value in row_rates.items()
        ]
    lines += [
        "",
        "LSTMLRP / Saliency: " + ", ".join(f"{row['threads']} thread(s) **{row['ratio_lstmlrp_to_saliency']:.3f}**"
                                           for row in set_rows)
        + f"; the lower against the target ≥ {result['target_ratio']}: {met}. LSTMLRP / NumPy loop (the authors' "
        f"per-sentence, per-step LRP, one thread): {loop_speedup:.1f}.",
        "",
        f"Sanity check (float64, {SANITY_SENTENCES} sentences): the NumPy loop and LSTMLRP agree to a relative "
        f"difference of {sanity}.",
        "",
        "## Model forms",
        "",
        lrp_forms.DESCRIPTION,
        "",
        "### Throughput ratio LSTMLRP / Saliency (batch 64 and 256)",
        "",
        *lrp_forms.grid_lines(forms["throughput"], latency=False),
        "",
        "### Latency ratio LSTMLRP / Saliency (batch 1 and 8)",
        "",
        *lrp_forms.grid_lines(forms["latency"], latency=True),
        "",
        "### Where the time goes",
        "",
        *lrp_forms.profile_lines(forms["profile"], f"form {forms['profile']['form']}, batch 1, "
                                 f"T = {forms['profile']['steps']}, one thread"),
        "",
        *op_profile_lines(forms["worst_throughput_profile"]["methods"], "the worst throughput cell: form "
                          f"{worst_cell['form']}, batch {worst_cell['batch']}, T = {worst_cell['steps']}, "
                          f"{worst_cell['threads']} thread(s)"),
        "",
        "## Memory",
        "",
        *(
            [lrp_memory.DESCRIPTION, "", *lrp_memory.memory_lines(result["memory"])]
            if result["memory"] else ["Not measured: this system cannot reset a process's peak resident memory."]
        ),
        "",
        "## GPU",
        "",
        "Not measured: the benchmark times the CPU only"
        + ("." if result["gpu_available"] else "; the machine of this run has no GPU either."),
        *transformer_lines(result["transformer"]),
    ]
    write_markdown(out / "lrp_speed.md", provenance, "\n".join(lines))
    write_json(out / "lrp_speed.json", provenance, result)
    summary = [f"lrp-speed: {row['threads']} thread(s): LSTMLRP / Saliency = {row['ratio_lstmlrp_to_saliency']:.3f} "
               "over the SST test set" for row in set_rows]
    summary.append(f"lrp-speed: the lower against the target >= {result['target_ratio']}: {met}; "
                   f"LSTMLRP / NumPy loop = {loop_speedup:.1f}")
    summary.append(f"lrp-speed: sanity check (float64): relative difference {sanity}")
    for grid, latency in (("throughput", False), ("latency", True)):
        bad = lrp_forms.worst(forms[grid])
        value = 1 / bad["ratio"] if latency else bad["ratio"]
        verdict = "met" if forms[f"{grid}_met"] else "NOT met"
        summary.append(f"lrp-speed: worst {grid} ratio over the model forms: {value:.2f} ({bad['form']}, batch "
                       f"{bad['batch']}, T = {bad['steps']}, {bad['threads']} thread(s)); target {verdict}")
    if result["memory"]:
        bad_memory = max(result["memory"], key=lambda row: row["ratio"])
        summary.append(f"lrp-speed: worst peak-memory ratio LSTMLRP / Saliency: {bad_memory['ratio']:.2f} "
                       f"({bad_memory['form']}, T = {bad_memory['steps']})")
    summary += transformer_summary(result["transformer"])
    summary.append(f"wrote {out / 'lrp_speed.md'}, {out / 'lrp_speed.json'}")
    return summary

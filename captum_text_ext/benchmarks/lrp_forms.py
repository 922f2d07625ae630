r"""The model forms of ``captum-text-ext benchmark lrp-speed``: :class:`~captum_text_ext.LSTMLRP` against Captum
``Saliency`` on the recurrent classifiers users write, cell by cell.

Every form reads embeddings :math:`(N, T, 60)` (and lengths) and gives 5 logits; the recurrent layers have 60 hidden
units per direction, random initialisation (seed 0), float32, evaluation mode:

- ``h_n head``: a bi-LSTM, the head on the final states (``_, (h, _) = lstm(x)``);
- ``last/first outputs``: a bi-LSTM, the head on the forward direction's last output and the backward's first;
- ``max-pool``: a bi-LSTM, the head on the maximum of the outputs over time;
- ``2-layer max-pool``: the same with two layers;
- ``GRU h_n head``: a bi-GRU, the head on the final states;
- ``attention + lengths``: a bi-LSTM, additive attention pooling (:math:`\alpha = \mathrm{softmax}(v^\top
  \tanh(W o_t))`, padding masked with :math:`-\infty`) over sentences of random lengths in :math:`[T/2, T]`;
- ``bilstm-sst5``: the zoo model (packed sequences, head on the final states), when it is cached.

Each cell is one form, batch size, sequence length and torch thread count. Its timings interleave the two methods
(the order alternating) :data:`TIMINGS` times on the same random batch, each timing being :func:`calls_per_timing`
calls; a method's time is the median of its timings. At batch 64 and 256 the cell's number is the throughput ratio
LSTMLRP / Saliency (target :data:`THROUGHPUT_TARGET`), at batch 1 and 8 the latency ratio LSTMLRP / Saliency (target:
at most :data:`LATENCY_TARGET`). The headline is the worst cell of each grid, not the best.
"""

from __future__ import annotations

import cProfile
import pstats
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from captum.attr import Saliency
from torch import Tensor, nn

from captum_text_ext.attr import LSTMLRP
from captum_text_ext.benchmarks.op_profile import op_profile

__all__ = [
    "CLASSES",
    "DESCRIPTION",
    "EMBEDDING_DIM",
    "FORMS",
    "HIDDEN_SIZE",
    "LARGE_BATCHES",
    "LATENCY_TARGET",
    "SMALL_BATCHES",
    "STEPS",
    "THREADS",
    "THROUGHPUT_TARGET",
    "TIMINGS",
    "calls_per_timing",
    "cell_op_profile",
    "form_inputs",
    "measure_grid",
    "time_pair",
]

EMBEDDING_DIM = 60
"""Embedding width of every form (the zoo's ``bilstm-sst5``'s)."""
HIDDEN_SIZE = 60
"""Hidden units per direction."""
CLASSES = 5
"""Outputs of every form."""
LARGE_BATCHES = (64, 256)
"""Batch sizes of the throughput grid."""
SMALL_BATCHES = (1, 8)
"""Batch sizes of the latency grid."""
STEPS = (8, 20, 40)
"""Sequence lengths :math:`T`."""
THREADS = (1, 2)
"""Torch intra-op thread counts."""
TIMINGS = 5
"""Interleaved timings per method and cell."""
THROUGHPUT_TARGET = 0.9
"""LSTMLRP's throughput at batch 64 and 256 must reach this fraction of Saliency's in every cell."""
LATENCY_TARGET = 2.5
"""LSTMLRP's latency at batch 1 and 8 must stay within this multiple of Saliency's in every cell."""
PROFILE_CALLS = 50
"""LSTMLRP calls profiled."""
PROFILE_ROWS = 15
"""Functions listed in the profile."""

DESCRIPTION = (
    f"Six model forms users write, each reading embeddings (N, T, {EMBEDDING_DIM}) and giving {CLASSES} logits, recurrent "
    f"layers of {HIDDEN_SIZE} units per direction, random initialisation, float32, evaluation mode: `h_n head` (a "
    "bi-LSTM, the head on the final states), `last/first outputs` (the forward direction's last output and the "
    "backward's first), `max-pool` (maximum of the outputs over time), `2-layer max-pool`, `GRU h_n head` (a bi-GRU), "
    "`attention + lengths` (additive attention pooling over sentences of random lengths in [T/2, T], padding masked); "
    "and the zoo's `bilstm-sst5` (packed sequences, random lengths). Each cell is one form, batch size, T and thread "
    f"count; its timings interleave LSTMLRP and Saliency {TIMINGS} times on the same random batch (each timing "
    "at least 32 sentences: several calls for small batches), and a method's time is the median of its timings."
)
"""The grids' description in the results file."""

Forward = Callable[[Tensor, Tensor], Tensor]


class HnHead(nn.Module):
    """A recurrent layer with a linear head on its final states (``_, (h, _) = rnn(x)``)."""

    def __init__(self, cell: str = "lstm") -> None:
        super().__init__()
        kind = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = kind(EMBEDDING_DIM, HIDDEN_SIZE, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * HIDDEN_SIZE, CLASSES)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        state = self.rnn(x)[1]
        h = state[0] if isinstance(state, tuple) else state
        out: Tensor = self.head(torch.cat([h[0], h[1]], dim=-1))
        return out


class LastOutputs(nn.Module):
    """A bi-LSTM with the head on the forward direction's last output and the backward direction's first."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(EMBEDDING_DIM, HIDDEN_SIZE, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * HIDDEN_SIZE, CLASSES)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        outputs, _ = self.lstm(x)
        out: Tensor = self.head(torch.cat([outputs[:, -1, :HIDDEN_SIZE], outputs[:, 0, HIDDEN_SIZE:]], dim=-1))
        return out


class MaxPool(nn.Module):
    """A bi-LSTM (``layers`` deep) with the head on the maximum of its outputs over time."""

    def __init__(self, layers: int = 1) -> None:
        super().__init__()
        self.lstm = nn.LSTM(EMBEDDING_DIM, HIDDEN_SIZE, num_layers=layers, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * HIDDEN_SIZE, CLASSES)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        out: Tensor = self.head(self.lstm(x)[0].max(dim=1).values)
        return out


class AttentionPool(nn.Module):
    r"""A bi-LSTM with additive attention pooling over the real steps: :math:`\alpha = \mathrm{softmax}_t(v^\top
    \tanh(W o_t))`, padding masked with :math:`-\infty`."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(EMBEDDING_DIM, HIDDEN_SIZE, batch_first=True, bidirectional=True)
        self.project = nn.Linear(2 * HIDDEN_SIZE, HIDDEN_SIZE)
        self.score = nn.Linear(HIDDEN_SIZE, 1, bias=False)
        self.head = nn.Linear(2 * HIDDEN_SIZE, CLASSES)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        outputs, _ = self.lstm(x)
        scores = self.score(torch.tanh(self.project(outputs))).squeeze(-1)
        padding = torch.arange(x.shape[1], device=x.device).unsqueeze(0) >= lengths.unsqueeze(1)
        weights = torch.softmax(scores.masked_fill(padding, float("-inf")), dim=1)
        out: Tensor = self.head((weights.unsqueeze(-1) * outputs).sum(dim=1))
        return out


FORMS: Dict[str, Callable[[], nn.Module]] = {
    "h_n head": HnHead,
    "last/first outputs": LastOutputs,
    "max-pool": MaxPool,
    "2-layer max-pool": lambda: MaxPool(layers=2),
    "GRU h_n head": lambda: HnHead("gru"),
    "attention + lengths": AttentionPool,
}
"""The user-written forms, by name (the zoo model joins them in :func:`measure_grid`)."""

VARIABLE_LENGTHS = ("attention + lengths", "bilstm-sst5")
"""The forms whose sentences get random lengths in :math:`[T/2, T]`; the others read all :math:`T` steps."""


def form_inputs(
    form: str, batch: int, steps: int, width: int = EMBEDDING_DIM, seed: int = 0
) -> Tuple[Tensor, Tensor, Tensor]:
    """``(embeddings (N, T, width), lengths (N,), targets (N,))``, random and reproducible; the lengths are all
    :math:`T` except for the forms of :data:`VARIABLE_LENGTHS` (then the longest is :math:`T`)."""
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(batch, steps, width, generator=generator)
    lengths = torch.full((batch,), steps, dtype=torch.long)
    if form in VARIABLE_LENGTHS:
        lengths = torch.randint(max(1, steps // 2), steps + 1, (batch,), generator=generator)
        lengths[0] = steps
    targets = torch.randint(0, CLASSES, (batch,), generator=generator)
    return embeddings, lengths, targets


def calls_per_timing(batch: int) -> int:
    """Calls per timing: enough that a timing of a small batch is not one short call (32 sentences at least)."""
    return max(1, 32 // batch)


def time_pair(
    methods: Dict[str, Callable[[], Any]], timings: int = TIMINGS, calls: int = 1
) -> Dict[str, List[float]]:
    """Seconds per call of each method, ``timings`` times, interleaved (the order alternating), after one untimed
    warm-up call each."""
    names = list(methods)
    for run in methods.values():
        run()
    seconds: Dict[str, List[float]] = {name: [] for name in names}
    for timing in range(timings):
        order = names if timing % 2 == 0 else names[::-1]
        for name in order:
            started = time.perf_counter()
            for _ in range(calls):
                methods[name]()
            seconds[name].append((time.perf_counter() - started) / calls)
    return seconds


def _methods(forward: Forward, inputs: Tuple[Tensor, Tensor, Tensor]) -> Dict[str, Callable[[], Any]]:
    embeddings, lengths, targets = inputs
    lrp = LSTMLRP(forward, epsilon=1e-3, bias_factor=0.0)
    saliency = Saliency(forward)

    def run_lrp() -> Any:
        return lrp.attribute(embeddings, target=targets, additional_forward_args=(lengths,))

    def run_saliency() -> Any:
        leaf = embeddings.detach().requires_grad_(True)
        return saliency.attribute(leaf, target=targets, abs=False, additional_forward_args=(lengths,))

    return {"LSTMLRP": run_lrp, "Saliency": run_saliency}


def measure_grid(
    forwards: Dict[str, Forward],
    batches: Sequence[int],
    steps: Sequence[int] = STEPS,
    threads: Sequence[int] = THREADS,
    timings: int = TIMINGS,
    widths: Optional[Dict[str, int]] = None,
) -> List[Dict[str, Any]]:
    """Time LSTMLRP and Saliency in every cell (form × batch × T × threads); the thread count is restored afterwards.

    Args:
        forwards: the forms' forward functions ``f(embeddings, lengths)``, by name.
        batches: the batch sizes.
        steps: the sequence lengths.
        threads: the torch thread counts.
        timings: interleaved timings per method and cell.
        widths: the embedding width of a form, by name, when it is not :data:`EMBEDDING_DIM`.

    Returns:
        One record per cell: ``form``, ``batch``, ``steps``, ``threads``, ``seconds`` (per method, the median
        seconds per call), ``timings`` (every timing) and ``ratio``: LSTMLRP's throughput over Saliency's, i.e.
        Saliency's median time over LSTMLRP's (its inverse is the latency ratio).
    """
    cells: List[Dict[str, Any]] = []
    before = torch.get_num_threads()
    try:
        for thread_count in threads:
            torch.set_num_threads(thread_count)
            for form, forward in forwards.items():
                for batch in batches:
                    for length in steps:
                        inputs = form_inputs(form, batch, length, (widths or {}).get(form, EMBEDDING_DIM))
                        seconds = time_pair(_methods(forward, inputs), timings, calls_per_timing(batch))
                        medians = {name: statistics.median(values) for name, values in seconds.items()}
                        cells.append({
                            "form": form, "batch": batch, "steps": length, "threads": thread_count,
                            "seconds": medians, "timings": seconds,
                            "ratio": medians["Saliency"] / medians["LSTMLRP"],
                        })
    finally:
        torch.set_num_threads(before)
    return cells


def user_forms(seed: int = 0) -> Dict[str, Forward]:
    """The forms of :data:`FORMS`, built with seed ``seed`` in evaluation mode."""
    forwards: Dict[str, Forward] = {}
    for number, (name, build) in enumerate(FORMS.items()):
        torch.manual_seed(seed + number)
        forwards[name] = build().eval()
    return forwards


def worst(cells: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """The cell farthest from its target: the lowest throughput ratio (the highest latency ratio)."""
    return min(cells, key=lambda cell: cell["ratio"])


def profile_call(forward: Forward, inputs: Tuple[Tensor, Tensor, Tensor], calls: int = PROFILE_CALLS,
                 rows: int = PROFILE_ROWS) -> Dict[str, Any]:
    """Where an LSTMLRP call's time goes: ``calls`` calls under :mod:`cProfile` (after one untimed call), the
    ``rows`` functions with the most own time.

    Returns:
        ``seconds_per_call`` (under the profiler, which slows Python code down), and ``rows``: ``function``
        (``file:line(name)``, the file relative to its package), ``calls`` per LSTMLRP call, ``own_ms`` and
        ``cumulative_ms`` per LSTMLRP call.
    """
    run = _methods(forward, inputs)["LSTMLRP"]
    run()
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for _ in range(calls):
        run()
    profiler.disable()
    elapsed = (time.perf_counter() - started) / calls
    table: List[Dict[str, Any]] = []
    for name, entry in pstats.Stats(profiler).get_stats_profile().func_profiles.items():
        count = int(entry.ncalls.split("/")[0])  # "total/primitive" for recursive functions
        table.append({"function": f"{_short_path(entry.file_name)}:{entry.line_number}({name})",
                      "calls": count / calls, "own_ms": 1e3 * entry.tottime / calls,
                      "cumulative_ms": 1e3 * entry.cumtime / calls})
    table.sort(key=lambda row: row["own_ms"], reverse=True)
    return {"seconds_per_call": elapsed, "rows": table[:rows]}


def cell_op_profile(forward: Forward, cell: Dict[str, Any], width: int = EMBEDDING_DIM) -> Dict[str, Any]:
    """:func:`~captum_text_ext.benchmarks.op_profile.op_profile` of LSTMLRP and Saliency in one cell of a grid (its
    form's ``forward``, its batch size, :math:`T` and thread count; the thread count is restored afterwards).

    Returns:
        The cell's ``form``, ``batch``, ``steps`` and ``threads``, and ``methods``: the profile by method.
    """
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(cell["threads"])
        inputs = form_inputs(cell["form"], cell["batch"], cell["steps"], width)
        profiles = op_profile(_methods(forward, inputs))
    finally:
        torch.set_num_threads(before)
    return {**{key: cell[key] for key in ("form", "batch", "steps", "threads")}, "methods": profiles}


def _short_path(path: str) -> str:
    for marker in ("captum_text_ext/", "torch/", "captum/"):
        if marker in path:
            return marker + path.split(marker, 1)[1]
    return path


def grid_lines(cells: Sequence[Dict[str, Any]], latency: bool) -> List[str]:
    """A markdown table of a grid (one row per form and batch size, one column per thread count and :math:`T`) and
    its verdict: the throughput ratio LSTMLRP / Saliency, or for ``latency`` the latency ratio (its inverse)."""
    columns = sorted({(cell["threads"], cell["steps"]) for cell in cells})
    rows: Dict[Tuple[str, int], Dict[Tuple[int, int], float]] = {}
    for cell in cells:
        value = 1 / cell["ratio"] if latency else cell["ratio"]
        rows.setdefault((cell["form"], cell["batch"]), {})[(cell["threads"], cell["steps"])] = value
    header = " | ".join(f"{threads} thr, T = {steps}" for threads, steps in columns)
    lines = [f"| form | batch | {header} |", "|---|---|" + "---|" * len(columns)]
    for (form, batch), values in rows.items():
        lines.append(f"| {form} | {batch} | " + " | ".join(f"{values[column]:.2f}" for column in columns) + " |")
    bad = worst(cells)
    if latency:
        missed = [cell for cell in cells if 1 / cell["ratio"] > LATENCY_TARGET]
        value, target = f"{1 / bad['ratio']:.2f}", f"≤ {LATENCY_TARGET}"
    else:
        missed = [cell for cell in cells if cell["ratio"] < THROUGHPUT_TARGET]
        value, target = f"{bad['ratio']:.2f}", f"≥ {THROUGHPUT_TARGET}"
    verdict = "met in every cell" if not missed else f"NOT met in {len(missed)} of {len(cells)} cells"
    lines += ["", f"Worst cell: {bad['form']}, batch {bad['batch']}, T = {bad['steps']}, {bad['threads']} thread(s): "
              f"**{value}**; target {target}: {verdict}."]
    return lines


def profile_lines(profile: Dict[str, Any], where: str) -> List[str]:
    """The profile as a markdown table, with a line saying what was profiled (``where``)."""
    lines = [
        f"Profile of LSTMLRP ({where}; {1e3 * profile['seconds_per_call']:.2f} ms per call under cProfile, which "
        "slows Python code down): the functions with the most own time, per call.",
        "",
        "| function | calls | own ms | cumulative ms |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{row['function']}` | {row['calls']:g} | {row['own_ms']:.3f} | {row['cumulative_ms']:.3f} |"
              for row in profile["rows"]]
    return lines

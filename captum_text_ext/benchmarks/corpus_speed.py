"""Throughput and memory of ``captum-text-ext attribute``: ``captum-text-ext benchmark corpus``.

**Throughput.** Each of ``lrp``, ``contextual_decomposition`` and ``integrated_gradients`` attributes the 6,920
sentences of ``sst2:train`` with ``lstm-sst2``, run as a user runs it (a fresh process, the cached model, the
default batch plan), in three configurations: 1 process × 1 thread, 1 process × 2 threads (``OMP_NUM_THREADS``), and
2 processes × 1 thread (``torchrun --nproc-per-node 2``); with a GPU, also 1 process on CUDA. The time of a run is
the one the run records (``manifest.json``: the call of ``attribute_corpus`` on rank 0, from reading the corpus
until every rank has written its shards; the interpreter's start-up and the model's loading are left out). A method's
configurations run in interleaved rounds (1 × 1, 1 × 2, 2 × 1, then again): :data:`ROUNDS` rounds, or as many as fit
in :data:`ROUND_BUDGET_SECONDS` after the first (at least one) for a method whose round takes longer; each cell is
the median over its rounds, and the table states each cell's range. The scaling efficiency is
:math:`t_{1 \\times 1} / (2\\, t_{2 \\times 1})` of the medians (and its range over the rounds, each round's
1 × 1 against the same round's 2 × 1); the goal is at least :data:`EFFICIENCY_GOAL`, and 2 × 1 faster than 1 × 2.

**Memory.** ``lrp`` over 10,000 and 100,000 synthetic sentences (a file of texts, read a window at a time) on 2
processes × 1 thread: the peak resident memory of each rank (``VmHWM``), which should not grow with the corpus.

``--n N`` runs everything on a small scale (the first ``N`` training sentences, and ``N`` and ``10 N`` synthetic
ones, one round), to check the benchmark itself; ``--models NAME`` uses another zoo model (it must be cached: the benchmark
trains nothing); ``--methods`` picks the methods. Every run writes to a temporary directory, removed afterwards.
Results: ``corpus_speed.md`` and ``corpus_speed.json`` with the provenance. Speed is only meaningful on an otherwise
idle machine.
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from captum_text_ext.datasets import load_synthetic
from captum_text_ext.datasets._paths import PathLike
from captum_text_ext.models.checkpoints import record_checkpoint
from captum_text_ext.models.zoo import ZOO, checkpoint_path
from captum_text_ext.models.zoo_data import load_zoo_data
from captum_text_ext.provenance import Provenance, RunRecorder, write_json, write_markdown

__all__ = [
    "CONFIGURATIONS",
    "DATASET",
    "DEFAULT_METHODS",
    "EFFICIENCY_GOAL",
    "MEMORY_SIZES",
    "MODEL",
    "ROUNDS",
    "ROUND_BUDGET_SECONDS",
    "run_corpus_speed",
]

DEFAULT_METHODS = ("lrp", "contextual_decomposition", "integrated_gradients")
"""The methods timed."""
CONFIGURATIONS: Tuple[Tuple[str, Optional[int], int], ...] = (("1 × 1", None, 1), ("1 × 2", None, 2),
                                                               ("2 × 1", 2, 1))
"""``(label, processes under torchrun or None for one plain process, threads per process)``."""
MEMORY_SIZES = (10_000, 100_000)
"""Synthetic sentences of the memory runs."""
EFFICIENCY_GOAL = 0.85
"""The least scaling efficiency of 2 processes × 1 thread against 1 × 1."""
DATASET = "sst2:train"
"""The corpus of the throughput runs."""
MODEL = "lstm-sst2"
"""The model, unless ``--models`` names another."""
ROUNDS = 5
"""Interleaved rounds of a method's configurations (the full measurement; ``--n`` runs one)."""
ROUND_BUDGET_SECONDS = 300.0
"""A method whose first round takes longer runs only as many more rounds as fit in this many seconds."""


def _attribute(arguments: Sequence[str], processes: Optional[int], threads: int, work: Path) -> Dict[str, Any]:
    """Run ``captum-text-ext attribute`` in a fresh process (or ``processes`` under torchrun); returns the attempt's
    record from the manifest (``seconds``, ``peak_memory_mb``, ...) and the run's example count."""
    out = Path(tempfile.mkdtemp(dir=work))
    launcher = [] if processes is None else ["-m", "torch.distributed.run", "--standalone",
                                             f"--nproc-per-node={processes}"]
    command = [sys.executable, *launcher, "-m", "captum_text_ext.cli", "attribute", *arguments, "--out", str(out),
               "--quiet"]
    environment = dict(os.environ, OMP_NUM_THREADS=str(threads))
    done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return {**manifest["attempts"][-1], "examples": manifest["examples"]}


def _sst_texts(work: Path, n: int, data_root: Optional[PathLike]) -> Path:
    """The first ``n`` training sentences as a file of texts (their tokens joined by spaces)."""
    path = work / "sst2-train.txt"
    sentences = load_zoo_data("sst2", data_root).train[:n]
    path.write_text("".join(" ".join(words) + "\n" for words, _ in sentences), encoding="utf-8")
    return path


def _synthetic_texts(work: Path, n: int) -> Path:
    path = work / f"synthetic-{n}.txt"
    with path.open("w", encoding="utf-8") as stream:
        for example in load_synthetic("train", n=n, seed=0):
            stream.write(" ".join(example.tokens) + "\n")
    return path


def run_corpus_speed(
    out: PathLike,
    data_root: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
    command: Optional[str] = None,
    n: Optional[int] = None,
    models: Optional[Sequence[str]] = None,
    methods: Optional[Sequence[str]] = None,
) -> List[str]:
    """Measure and write ``corpus_speed.md`` and ``corpus_speed.json`` (with provenance) to ``out``.

    Args:
        out: the results directory.
        data_root: the data directory (SST).
        cache_dir: the model cache; the model must be in it.
        command: the command line to record.
        n: a small-scale check (module docstring); ``None``: the full measurement.
        models: one zoo model (default ``lstm-sst2``).
        methods: the methods (default: :data:`DEFAULT_METHODS`).

    Raises:
        FileNotFoundError: when the model is not cached.
        ValueError: for more than one model, or ``n`` < 1.
        RuntimeError: when a run fails.
    """
    model = (models or [MODEL])[0]
    if models is not None and len(models) != 1:
        raise ValueError(f"Expected one model, but got {list(models)}")
    if n is not None and n < 1:
        raise ValueError(f"Expected --n >= 1, but got {n}")
    if model not in ZOO or not checkpoint_path(model, cache_dir).is_file():
        raise FileNotFoundError(f"The zoo model {model!r} is not cached in {checkpoint_path(model, cache_dir).parent};"
                                f" train it first: captum-text-ext train {model}")
    chosen = list(methods or DEFAULT_METHODS)
    out = Path(out)
    command = command or shlex.join(["captum-text-ext", "benchmark", "corpus", "--out", str(out)])
    common = ["--model", model, *(["--cache-dir", str(cache_dir)] if cache_dir is not None else []),
              *(["--data-root", str(data_root)] if data_root is not None else [])]
    configurations = list(CONFIGURATIONS) + ([("CUDA", None, 1)] if torch.cuda.is_available() else [])
    with RunRecorder(command=command, seeds={"run": 0}) as recorder, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        record_checkpoint(recorder, "model", checkpoint_path(model, cache_dir))
        corpus = ["--dataset", DATASET] if n is None else ["--texts", str(_sst_texts(work, n, data_root))]
        throughput = {method: _rounds([*common, *corpus, "--methods", method], configurations, work,
                                      ROUNDS if n is None else 1) for method in chosen}
        sizes = MEMORY_SIZES if n is None else (n, 10 * n)
        memory = {str(size): _attribute([*common, "--texts", str(_synthetic_texts(work, size)), "--methods", "lrp"],
                                        2, 1, work)["peak_memory_mb"] for size in sizes}
    results = {"model": model, "dataset": DATASET if n is None else f"the first {n} sentences of {DATASET}",
               "throughput": throughput, "memory": {"method": "lrp", "configuration": "2 × 1",
                                                    "peak_memory_mb_per_rank": memory},
               "efficiency_goal": EFFICIENCY_GOAL, "full": n is None}
    return _write(out, recorder.provenance, results)


def _rounds(arguments: List[str], configurations: Sequence[Tuple[str, Optional[int], int]], work: Path,
            rounds: int) -> Dict[str, Any]:
    """One method's configurations in interleaved rounds (module docstring): per configuration every round's
    seconds and the median's sentences/s; the efficiency of the medians and its range over the rounds."""
    runs: Dict[str, List[Dict[str, Any]]] = {label: [] for label, _, _ in configurations}
    planned = rounds
    while len(runs[configurations[0][0]]) < planned:
        started = time.perf_counter()
        for label, processes, threads in configurations:
            device = ["--device", "cuda"] if label == "CUDA" else []
            runs[label].append(_attribute([*arguments, *device], processes, threads, work))
        if len(runs[configurations[0][0]]) == 1:
            planned = max(1, min(rounds, 1 + int(ROUND_BUDGET_SECONDS // (time.perf_counter() - started))))
    rows: Dict[str, Any] = {}
    for label, records in runs.items():
        seconds = [record["seconds"] for record in records]
        middle = statistics.median(seconds)
        rows[label] = {"seconds": middle, "seconds_per_round": seconds, "examples": records[0]["examples"],
                       "sentences_per_second": records[0]["examples"] / middle,
                       "peak_memory_mb": [max(ranks) for ranks in zip(*(r["peak_memory_mb"] for r in records))]}
    single, double = rows["1 × 1"], rows["2 × 1"]
    per_round = [a / (2 * b) for a, b in zip(single["seconds_per_round"], double["seconds_per_round"])]
    rows.update({"rounds": len(per_round), "efficiency": single["seconds"] / (2 * double["seconds"]),
                 "efficiency_range": [min(per_round), max(per_round)],
                 "2 × 1 faster than 1 × 2": double["seconds"] < rows["1 × 2"]["seconds"]})
    return rows


def _write(out: Path, provenance: Provenance, results: Dict[str, Any]) -> List[str]:
    out.mkdir(parents=True, exist_ok=True)
    labels = [label for label in ("1 × 1", "1 × 2", "2 × 1", "CUDA")
              if any(label in rows for rows in results["throughput"].values())]
    head = ("| method | rounds | " + " | ".join(f"{label} (sentences/s)" for label in labels)
            + " | efficiency (range) | 2×1 < 1×2 |")
    lines = [head, "|---" * (len(labels) + 4) + "|"]
    for method, rows in results["throughput"].items():
        cells = [f"{rows[label]['sentences_per_second']:.1f} ({rows[label]['seconds']:.1f} s; "
                 f"{min(rows[label]['seconds_per_round']):.1f}–{max(rows[label]['seconds_per_round']):.1f} s)"
                 for label in labels]
        low, high = rows["efficiency_range"]
        lines.append(f"| {method} | {rows['rounds']} | " + " | ".join(cells) + f" | {rows['efficiency']:.2f} "
                     f"({low:.2f}–{high:.2f}) | {'yes' if rows['2 × 1 faster than 1 × 2'] else 'no'} |")
    memory = results["memory"]["peak_memory_mb_per_rank"]
    scale = "" if results["full"] else " (a small-scale check, not the measurement: --n)"
    body = "\n".join([
        f"# captum-text-ext attribute: throughput and memory{scale}",
        "",
        f"{results['model']} on {results['dataset']}; configurations are processes × threads per process; the time "
        "is the run's own (manifest.json). Each cell: the median over interleaved rounds (its time, and the range "
        "of the rounds' times). Efficiency: t(1×1) / (2 t(2×1)) of the medians, and its range over the rounds; goal "
        f">= {results['efficiency_goal']}.",
        "",
        *lines,
        "",
        "Peak resident memory per rank (MiB), lrp on synthetic sentences, 2 processes × 1 thread:",
        "",
        "| sentences | " + " | ".join(f"rank {r}" for r in range(len(next(iter(memory.values()))))) + " |",
        "|---" * (1 + len(next(iter(memory.values())))) + "|",
        *[f"| {size} | " + " | ".join(f"{mb:.0f}" for mb in peaks) + " |" for size, peaks in memory.items()],
    ])
    write_markdown(out / "corpus_speed.md", provenance, body)
    write_json(out / "corpus_speed.json", provenance, results)
    return body.splitlines()[4:] + [f"wrote {out / 'corpus_speed.md'} and corpus_speed.json"]

r"""The memory rows of ``captum-text-ext benchmark lrp-speed``: how much a call of :class:`~captum_text_ext.LSTMLRP`
raises the peak resident memory, against Captum ``Saliency`` on the same batch.

Each case (method, model form of :mod:`~captum_text_ext.benchmarks.lrp_forms`, sequence length) runs in a fresh
Python process, one torch thread: it builds the form and a random batch of :data:`BATCH` embedded sentences, makes
one call on two sentences of two tokens (what happens once per process, such as lazy imports, stays out of the
measure), resets the peak (``/proc/self/clear_refs``), reads the resident memory (the pre-call baseline), makes one
call on the batch, and reports the peak's increase over the baseline. The target: LSTMLRP's increase at most :data:`MEMORY_TARGET` times
Saliency's, at :math:`T` = 40 and 400 (:data:`MEMORY_STEPS`). Linux only (elsewhere the rows are not measured).

Run one case: ``python -m captum_text_ext.benchmarks.lrp_memory METHOD FORM STEPS`` prints its record as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence

import torch
from captum.attr import Attribution, Saliency

from captum_text_ext.attr import LSTMLRP
from captum_text_ext.benchmarks.lrp_forms import FORMS, form_inputs, user_forms

__all__ = [
    "BATCH", "DESCRIPTION", "MEMORY_STEPS", "MEMORY_TARGET", "measure_memory", "memory_case", "memory_lines", "supported",
]

BATCH = 64
"""Sentences per call."""
MEMORY_STEPS = (40, 400)
"""Sequence lengths of the memory cases."""
MEMORY_TARGET = 1.2
"""LSTMLRP's peak-memory increase may be at most this multiple of Saliency's."""
METHODS = ("LSTMLRP", "Saliency")
DESCRIPTION = (
    f"The peak resident memory one call adds, on {BATCH} random embedded sentences of each model form, each method in a "
    "fresh process with one torch thread: after one call on two sentences of two tokens (what a process does once, "
    "such as lazy imports, stays out), the peak is reset (`/proc/self/clear_refs`) and the resident memory read; the "
    "increase is the peak during the call over that baseline."
)
"""The memory rows' description in the results file."""

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def supported() -> bool:
    """Whether this system lets a process reset and read its peak resident memory (Linux)."""
    return _STATUS.exists() and _CLEAR_REFS.exists()


def _status_mb(field: str) -> float:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{_STATUS} has no {field} line")


def memory_case(method: str, form: str, steps: int) -> Dict[str, Any]:
    """One call of ``method`` on ``form`` with :data:`BATCH` sentences of ``steps`` tokens, in this process: the
    resident memory before it and its peak during it (MB)."""
    if method not in METHODS:
        raise ValueError(f"Expected `method` in {METHODS}, but got {method!r}")
    torch.set_num_threads(1)
    forward = user_forms()[form]
    embeddings, lengths, targets = form_inputs(form, BATCH, steps)
    explainer: Attribution = LSTMLRP(forward) if method == "LSTMLRP" else Saliency(forward)
    leaf = embeddings if method == "LSTMLRP" else embeddings.detach().requires_grad_(True)
    small, small_lengths, small_targets = form_inputs(form, 2, 2)  # one-time costs (lazy imports, caches) first
    explainer.attribute(small.requires_grad_(method != "LSTMLRP"), target=small_targets,
                        additional_forward_args=(small_lengths,))
    _CLEAR_REFS.write_text("5")
    before = _status_mb("VmRSS")
    result = explainer.attribute(leaf, target=targets, additional_forward_args=(lengths,))
    peak = _status_mb("VmHWM")
    if tuple(result.shape) != tuple(embeddings.shape):
        raise RuntimeError(f"Expected relevance of shape {tuple(embeddings.shape)}, but got {tuple(result.shape)}")
    return {"method": method, "form": form, "steps": steps, "batch": BATCH, "rss_before_mb": before,
            "peak_mb": peak, "increase_mb": peak - before}


def measure_memory(forms: Sequence[str] = tuple(FORMS), steps: Sequence[int] = MEMORY_STEPS) -> List[Dict[str, Any]]:
    """Every (form, T) pair, each method in a fresh process: records with both methods' increases and ``ratio``
    (LSTMLRP's over Saliency's)."""
    rows = []
    for form in forms:
        for length in steps:
            cases = {}
            for method in METHODS:
                done = subprocess.run(
                    [sys.executable, "-m", "captum_text_ext.benchmarks.lrp_memory", method, form, str(length)],
                    capture_output=True, text=True, check=True,
                )
                cases[method] = json.loads(done.stdout.strip().splitlines()[-1])
            increase = {method: case["increase_mb"] for method, case in cases.items()}
            rows.append({"form": form, "steps": length, "batch": BATCH, "increase_mb": increase,
                         "ratio": increase["LSTMLRP"] / max(increase["Saliency"], 1e-9)})
    return rows


def memory_lines(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """The memory rows as a markdown table with the verdict."""
    lines = ["| form | T | LSTMLRP increase | Saliency increase | ratio |", "|---|---|---|---|---|"]
    lines += [f"| {row['form']} | {row['steps']} | {row['increase_mb']['LSTMLRP']:.1f} MB | "
              f"{row['increase_mb']['Saliency']:.1f} MB | {row['ratio']:.2f} |" for row in rows]
    bad = max(rows, key=lambda row: row["ratio"])
    missed = [row for row in rows if row["ratio"] > MEMORY_TARGET]
    verdict = "met in every row" if not missed else f"NOT met in {len(missed)} of {len(rows)} rows"
    lines += ["", f"Worst: {bad['form']}, T = {bad['steps']}: **{bad['ratio']:.2f}**; target ≤ {MEMORY_TARGET}: "
              f"{verdict}."]
    return lines


if __name__ == "__main__":
    print(json.dumps(memory_case(sys.argv[1], sys.argv[2], int(sys.argv[3]))))

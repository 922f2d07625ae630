"""Long documents: every single-word score of one long document against a batch of sentences, time and peak memory,
each measured in a fresh process (``cd-speed`` adds these rows, for contextual decomposition and LRP, to its
results).

The model is the issue's: an LSTM with embedding 64 and hidden 128, float32, random weights, its head on the last
hidden state; the inputs are seeded random embeddings. Exact contextual decomposition needs each word's pass over the
steps after it, so the work per word grows with the document's length; the comparable unit is the time per
(word score × time step), which should stay within :data:`RATIO_BAR` of the batch's. LRP computes every word's
relevance in one backward pass, so its unit is the time per word score.

Run by itself, the module measures one case and prints it as JSON (what the parent reads):
``python -m captum_text_ext.benchmarks.long_documents cd 5000 1``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any, Dict, List, Sequence

import torch
from torch import Tensor, nn

from captum_text_ext.provenance import peak_rss_mb

__all__ = [
    "CASES",
    "EMBEDDING_DIM",
    "HIDDEN_SIZE",
    "MEMORY_BAR_MB",
    "RATIO_BAR",
    "LongDocumentModel",
    "markdown_header",
    "markdown_rows",
    "measure",
    "run_case",
    "verdict",
]

EMBEDDING_DIM = 64
"""The embedding width of the issue's model."""
HIDDEN_SIZE = 128
"""Its hidden size."""
MEMORY_BAR_MB = 1536.0
"""The peak resident memory a fresh process may reach for the 5,000-token document (1.5 GB)."""
RATIO_BAR = 2.0
"""How much slower per (word score × time step) contextual decomposition may be on the long document than on the
batch."""
UNITS = {"cd": ("word × step", "seconds_per_word_step"), "lrp": ("word", "seconds_per_word")}
"""Each method's unit of work and the result key of its time per unit."""
CASES = ((5000, 1), (50, 64))
"""``(tokens, documents)``: the long document, and the reference batch of 64 sentences of 50 tokens."""


class LongDocumentModel(nn.Module):
    """An LSTM classifier on embeddings with its head on the last hidden state."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(EMBEDDING_DIM, HIDDEN_SIZE, batch_first=True)
        self.head = nn.Linear(HIDDEN_SIZE, 2)

    def forward(self, embeddings: Tensor) -> Tensor:
        output: Tensor = self.head(self.lstm(embeddings)[1][0][-1])
        return output


def run_case(method: str, tokens: int, documents: int) -> Dict[str, Any]:
    """Time every word score of ``documents`` random documents of ``tokens`` tokens (one thread, float32) in this
    process, and read its peak resident memory."""
    from captum_text_ext import LSTMLRP, ContextualDecomposition

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = LongDocumentModel().eval()
    inputs = torch.randn(documents, tokens, EMBEDDING_DIM, generator=torch.Generator().manual_seed(1))
    before = peak_rss_mb()
    start = time.perf_counter()
    if method == "cd":
        scores = ContextualDecomposition(model).attribute(inputs, target=1)
    elif method == "lrp":
        scores = LSTMLRP(model).attribute(inputs, target=1).sum(-1)
    else:
        raise ValueError(f"Expected `method` 'cd' or 'lrp', but got {method!r}")
    seconds = time.perf_counter() - start
    if tuple(scores.shape) != (documents, tokens):
        raise RuntimeError(f"Expected {documents} x {tokens} word scores, but got {tuple(scores.shape)}")
    peak = peak_rss_mb()
    words = documents * tokens
    return {
        "method": method,
        "tokens": tokens,
        "documents": documents,
        "seconds": seconds,
        "peak_rss_mb": peak,
        "rss_before_mb": before,
        "seconds_per_word": seconds / words,
        "seconds_per_word_step": seconds / (words * tokens),
    }


def measure(method: str, cases: Sequence[Sequence[int]] = CASES) -> List[Dict[str, Any]]:
    """:func:`run_case` of every case, each in a fresh Python process (so its peak memory is its own)."""
    results = []
    for tokens, documents in cases:
        done = subprocess.run(
            [sys.executable, "-m", "captum_text_ext.benchmarks.long_documents", method, str(tokens), str(documents)],
            capture_output=True, text=True, check=True,
        )
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def markdown_rows(method: str, results: Sequence[Dict[str, Any]]) -> List[str]:
    """``method``'s results as Markdown table rows (after :func:`markdown_header`): time, time per unit of work
    (:data:`UNITS`) against the batch's, and peak memory."""
    unit_key = UNITS[method][1]
    reference = next(r for r in results if r["documents"] > 1)
    return [
        f"| {method.upper()} | {r['documents']} × {r['tokens']} tokens | {r['documents'] * r['tokens']} | "
        f"{r['seconds']:.2f} s | {r[unit_key] * 1e9:.1f} ns per {UNITS[method][0]} | "
        f"{r[unit_key] / reference[unit_key]:.2f}× | {r['peak_rss_mb']:.0f} MB |"
        for r in results
    ]


def markdown_header() -> List[str]:
    """The header of the table :func:`markdown_rows` fills."""
    return [
        "| method | input | word scores | time | per unit of work | vs the batch | peak RSS of the process |",
        "|---|---|---|---|---|---|---|",
    ]


def verdict(method: str, results: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """The long document's peak memory and time ratio against the bars (:data:`MEMORY_BAR_MB`; for contextual
    decomposition also :data:`RATIO_BAR`)."""
    unit_key = UNITS[method][1]
    reference = next(r for r in results if r["documents"] > 1)
    longest = max(results, key=lambda r: r["tokens"])
    ratio = longest[unit_key] / reference[unit_key]
    memory_met = longest["peak_rss_mb"] <= MEMORY_BAR_MB
    return {
        "peak_rss_mb": longest["peak_rss_mb"],
        "ratio": ratio,
        "memory_met": memory_met,
        "ratio_met": ratio <= RATIO_BAR if method == "cd" else None,
    }


if __name__ == "__main__":
    print(json.dumps(run_case(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))

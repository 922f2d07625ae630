"""Long documents: every single-word score of one long document against a batch of sentences, time and peak memory,
each measured in a fresh process (``cd-speed`` and ``lrp-speed`` add these rows to their results).

The model is the issue's: an LSTM with embedding 64 and hidden 128, float32, random weights, its head on the last
hidden state; the inputs are seeded random embeddings. Exact contextual decomposition needs each word's pass over the
steps after it, so the work per word grows with the document's length; the comparable unit is the time per
(word score × time step). LRP computes every word's relevance in one backward pass.

Run by itself, the module measures one case and prints it as JSON (what the parent reads):
``python -m captum_text_ext.benchmarks.long_documents cd 5000 1``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from typing import Any, Dict, List, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "CASES",
    "EMBEDDING_DIM",
    "HIDDEN_SIZE",
    "MEMORY_BAR_MB",
    "LongDocumentModel",
    "markdown_rows",
    "measure",
    "run_case",
]

EMBEDDING_DIM = 64
"""The embedding width of the issue's model."""
HIDDEN_SIZE = 128
"""Its hidden size."""
MEMORY_BAR_MB = 1536.0
"""The peak resident memory a fresh process may reach for the 5,000-token document (1.5 GB)."""
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
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    words = documents * tokens
    return {
        "method": method,
        "tokens": tokens,
        "documents": documents,
        "seconds": seconds,
        "peak_rss_mb": peak,
        "rss_before_mb": before,
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


def markdown_rows(results: Sequence[Dict[str, Any]]) -> List[str]:
    """The results as a Markdown table, with the long document's time per (word × step) against the batch's."""
    reference = next(r for r in results if r["documents"] > 1)
    lines = [
        "| input | word scores | time | per (word × step) | vs the batch | peak RSS of the process |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = r["seconds_per_word_step"] / reference["seconds_per_word_step"]
        label = f"{r['documents']} × {r['tokens']} tokens"
        lines.append(
            f"| {label} | {r['documents'] * r['tokens']} | {r['seconds']:.2f} s | "
            f"{r['seconds_per_word_step'] * 1e9:.1f} ns | {ratio:.2f}× | {r['peak_rss_mb']:.0f} MB |"
        )
    return lines


if __name__ == "__main__":
    print(json.dumps(run_case(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))

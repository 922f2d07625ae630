r"""The transformer rows of ``captum-text-ext benchmark lrp-speed``: :class:`~captum_text_ext.TransformerLRP` against
Captum ``Saliency`` on the zoo model ``transformer-sst2``.

Both methods take the same forward function, the Hugging Face model read from ``inputs_embeds`` (the word embeddings;
the lookup is outside the timing), and explain the gold label of every SST test sentence, WordPiece-tokenized,
batched by length in batches of :data:`BATCH` (the last one smaller), float32. Each row is one torch thread count of
:data:`THREADS`; within a row the methods are interleaved batch by batch (the order rotating), the whole set is timed
``repeats`` times, each method's throughput is the median over the repetitions and the ratio TransformerLRP / Saliency
the median of the per-repetition ratios (target: :data:`TARGET_RATIO`).
"""

from __future__ import annotations

import functools
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from captum.attr import Saliency
from torch import Tensor

from captum_text_ext.attr import TransformerLRP
from captum_text_ext.benchmarks.op_profile import op_profile, op_profile_lines
from captum_text_ext.datasets import SSTTree
from captum_text_ext.datasets._paths import PathLike
from captum_text_ext.datasets.wordpiece import WordPieceTokenizer
from captum_text_ext.models.transformer_classifier import TransformerClassifier
from captum_text_ext.models.zoo import load_zoo_model

__all__ = [
    "BATCH",
    "METHODS",
    "MODEL",
    "SPEED_ISSUE_RATIO",
    "TARGET_RATIO",
    "THREADS",
    "TransformerBatch",
    "load_zoo_transformer",
    "measure_transformer_rows",
    "transformer_batches",
    "transformer_lines",
    "transformer_summary",
]

MODEL = "transformer-sst2"
"""The zoo model whose explanations are timed."""
BATCH = 64
"""Sentences per batch."""
THREADS = (1, 2)
"""The torch intra-op thread counts, one row each."""
TARGET_RATIO = 0.7
"""TransformerLRP must reach at least this fraction of Saliency's throughput (the transformer issue's target)."""
SPEED_ISSUE_RATIO = 0.9
"""The speed issue's later target for the same ratio (stated beside the first)."""
METHODS = ('TransformerLRP(rule="attnlrp")', 'TransformerLRP(rule="cp")', "Saliency")
"""The timed methods, in their first order."""

TransformerBatch = Tuple[Tensor, Tensor, Tensor]
"""``(inputs_embeds (n, T, d), attention_mask (n, T), gold labels (n,))`` of one batch."""


def load_zoo_transformer(name: str, cache_dir: Optional[PathLike] = None) -> Tuple[TransformerClassifier,
                                                                                   WordPieceTokenizer]:
    """The cached zoo model ``name`` (eval mode) and its tokenizer; it is not trained here.

    Raises:
        FileNotFoundError: when it is not in the cache (the message gives the command that trains it).
        ValueError: when the checkpoint holds another architecture.
    """
    checkpoint = load_zoo_model(name, cache_dir, train_if_missing=False)
    model, tokenizer = checkpoint.model, checkpoint.vocabulary
    if not isinstance(model, TransformerClassifier) or not isinstance(tokenizer, WordPieceTokenizer):
        raise ValueError(f"Expected {name} to hold a TransformerClassifier, but it holds {type(model).__name__}")
    return model.eval(), tokenizer


def transformer_batches(
    model: TransformerClassifier, tokenizer: WordPieceTokenizer, trees: Sequence[SSTTree], batch: int = BATCH
) -> List[TransformerBatch]:
    """The sentences as batches of at most ``batch``, sorted by subword length, embedded (float32, detached)."""
    order = sorted(range(len(trees)), key=lambda i: len(trees[i].tokens))
    embedding = model.hf_model.get_input_embeddings()
    batches: List[TransformerBatch] = []
    for start in range(0, len(order), batch):
        chosen = [trees[i] for i in order[start : start + batch]]
        encoded = tokenizer.encode_batch([tree.tokens for tree in chosen])
        with torch.no_grad():
            embeds = embedding(encoded.token_ids).float()
        labels = torch.tensor([int(tree.label) for tree in chosen])
        batches.append((embeds, encoded.attention_mask, labels))
    return batches


def _timers(model: TransformerClassifier) -> Dict[str, Callable[[TransformerBatch], Any]]:
    hf_model = model.hf_model

    def forward(embeds: Tensor, mask: Tensor) -> Tensor:
        logits: Tensor = hf_model(inputs_embeds=embeds, attention_mask=mask).logits
        return logits

    explainers = {name: TransformerLRP(forward, rule=name.split('"')[1]) for name in METHODS[:2]}
    saliency = Saliency(forward)

    def lrp(name: str) -> Callable[[TransformerBatch], Any]:
        def run(batch: TransformerBatch) -> Any:
            embeds, mask, labels = batch
            return explainers[name].attribute(embeds, target=labels, additional_forward_args=(mask,))

        return run

    def run_saliency(batch: TransformerBatch) -> Any:
        embeds, mask, labels = batch
        leaf = embeds.detach().requires_grad_(True)
        return saliency.attribute(leaf, target=labels, abs=False, additional_forward_args=(mask,))

    return {METHODS[0]: lrp(METHODS[0]), METHODS[1]: lrp(METHODS[1]), "Saliency": run_saliency}


def measure_transformer_rows(
    model: TransformerClassifier, batches: Sequence[TransformerBatch], repeats: int, threads: Sequence[int] = THREADS
) -> Dict[str, Any]:
    """Time the methods on ``batches`` once per thread count (restored afterwards).

    Returns:
        The model, the counts of sentences and batches, one row per thread count (``threads``,
        ``sentences_per_second`` and ``sentences_per_second_per_repeat`` by method, ``ratio_attnlrp_to_saliency``
        and ``ratio_cp_to_saliency`` with their per-repeat lists), ``target_ratio`` and ``target_met`` (the lowest
        ratio reaches the target).
    """
    model = model.float().eval()
    timers = _timers(model)
    count = sum(int(b[2].numel()) for b in batches)
    rows = []
    before = torch.get_num_threads()
    try:
        for thread_count in threads:
            torch.set_num_threads(thread_count)
            for timer in timers.values():  # warm-up, untimed
                timer(batches[0])
            seconds: Dict[str, List[float]] = {name: [0.0] * repeats for name in METHODS}
            for repeat in range(repeats):
                for number, batch in enumerate(batches):
                    shift = (number + repeat) % len(METHODS)
                    for name in METHODS[shift:] + METHODS[:shift]:
                        started = time.perf_counter()
                        timers[name](batch)
                        seconds[name][repeat] += time.perf_counter() - started
            rates = {name: [count / s for s in spent] for name, spent in seconds.items()}
            row: Dict[str, Any] = {
                "threads": thread_count,
                "sentences_per_second": {name: statistics.median(values) for name, values in rates.items()},
                "sentences_per_second_per_repeat": rates,
            }
            for preset, name in zip(("attnlrp", "cp"), METHODS[:2]):
                ratios = [rates[name][r] / rates["Saliency"][r] for r in range(repeats)]
                row[f"ratio_{preset}_to_saliency"] = statistics.median(ratios)
                row[f"ratio_{preset}_to_saliency_per_repeat"] = ratios
            rows.append(row)
    finally:
        torch.set_num_threads(before)
    worst = min(min(row["ratio_attnlrp_to_saliency"], row["ratio_cp_to_saliency"]) for row in rows)
    worst_row = min(rows, key=lambda row: min(row["ratio_attnlrp_to_saliency"], row["ratio_cp_to_saliency"]))
    largest = max(batches, key=lambda batch: batch[0].numel())
    return {
        "model": MODEL,
        "sentences": count,
        "batches": len(batches),
        "batch_size_max": max(int(b[2].numel()) for b in batches),
        "dtype": "float32",
        "rows": rows,
        "target_ratio": TARGET_RATIO,
        "target_met": worst >= TARGET_RATIO,
        "profile": _batch_profile(timers, largest, worst_row["threads"]),
    }


def _batch_profile(
    timers: Dict[str, Callable[[TransformerBatch], Any]], batch: TransformerBatch, threads: int
) -> Dict[str, Any]:
    """:func:`~captum_text_ext.benchmarks.op_profile.op_profile` of every method on one batch with ``threads``
    torch threads (restored afterwards)."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        profiles = op_profile({name: functools.partial(timer, batch) for name, timer in timers.items()})
    finally:
        torch.set_num_threads(before)
    return {"threads": threads, "sentences": int(batch[2].numel()), "tokens": int(batch[0].shape[1]),
            "methods": profiles}


def transformer_lines(result: Dict[str, Any]) -> List[str]:
    """The markdown section of the transformer rows."""
    met = "met" if result["target_met"] else "NOT met"
    lines = [
        "",
        "## TransformerLRP",
        "",
        f"Model `{result['model']}` ({result['dtype']}) on the {result['sentences']} SST test sentences "
        f"(WordPiece subwords, the gold label explained) in {result['batches']} batches of at most "
        f"{result['batch_size_max']}, read from `inputs_embeds` by both methods.",
        "",
        "| threads | method | sentences/s | per pass | × Saliency |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        rates, per_repeat = row["sentences_per_second"], row["sentences_per_second_per_repeat"]
        for name in METHODS:
            lines.append(f"| {row['threads']} | {name} | {rates[name]:.1f} | "
                         f"{' / '.join(f'{v:.1f}' for v in per_repeat[name])} | {rates[name] / rates['Saliency']:.3f} |")
    worst = min(min(row["ratio_attnlrp_to_saliency"], row["ratio_cp_to_saliency"]) for row in result["rows"])
    speed_met = "met" if worst >= SPEED_ISSUE_RATIO else "NOT met"
    lines += ["", f"Lowest TransformerLRP / Saliency ratio (medians over passes): **{worst:.3f}**; the transformer "
                  f"issue's target ≥ {result['target_ratio']}: {met}; the speed issue's ≥ {SPEED_ISSUE_RATIO}: "
                  f"{speed_met}."]
    profile = result["profile"]
    lines += ["", *op_profile_lines(profile["methods"], f"the batch with the most subwords, {profile['sentences']} "
                                    f"sentences of {profile['tokens']} positions, {profile['threads']} thread(s), "
                                    "the thread count of the lowest ratio")]
    return lines


def transformer_summary(result: Dict[str, Any]) -> List[str]:
    """The printed lines of the transformer rows."""
    return [
        f"lrp-speed: {result['model']}, {row['threads']} thread(s): TransformerLRP / Saliency = "
        f"{row['ratio_attnlrp_to_saliency']:.3f} (attnlrp), {row['ratio_cp_to_saliency']:.3f} (cp)"
        for row in result["rows"]
    ]

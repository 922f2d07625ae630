r"""Speed of :class:`~captum_text_ext.HiddenUnitOptimization`: ``captum-text-ext benchmark hiddenunit-speed``.

The whole pipeline of Yuan et al. (2019) — saliency of the first convolution's locations, optimization of the top 3
locations (the paper's MR settings: :math:`\lambda_1 = 0.004`, :math:`\lambda_2 = 0.02`, Adam with lr 2e-4) and
their 5 nearest words — on the first 256 MR test sentences with the zoo model ``textcnn-mr``, float32, one torch
thread, two ways in one run:

- ``batched``: one :meth:`~captum_text_ext.HiddenUnitOptimization.optimize` call for all 256 sentences (all
  768 (sentence, location) items in one loop);
- ``one location at a time``: per sentence, the saliency pass, then each selected location optimized alone (a batch of
  one item) and its neighbours read, with the same code and settings.

The one-location-at-a-time loop runs on the first :data:`BASELINE_SENTENCES` sentences only (all 256 would take
about an hour on this machine); the speed-up is the ratio of the seconds per sentence. Both runs optimize the same
items from the same starts, so their optimized vectors are compared too (float32: they agree to rounding).
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor

from captum_text_ext.attr import HiddenUnitOptimization, nearest_words
from captum_text_ext.benchmarks.yuan2019 import SETTINGS, load_textcnn, make_optimizer, token_batch
from captum_text_ext.datasets._paths import PathLike
from captum_text_ext.provenance import Provenance, RunRecorder, write_json, write_markdown

__all__ = ["BASELINE_SENTENCES", "SENTENCES", "TARGET_SPEEDUP", "one_location_at_a_time", "run_hiddenunit_speed"]

SENTENCES = 256
"""MR test sentences of the batched run."""
BASELINE_SENTENCES = 16
"""Sentences of the one-location-at-a-time run."""
TARGET_SPEEDUP = 10.0
"""Batched must be at least this many times faster per sentence."""


def one_location_at_a_time(
    hunt: HiddenUnitOptimization, ids: Tensor, lengths: Tensor, n_locations: int = 3, n_neighbors: int = 5
) -> Tensor:
    """The baseline: per sentence, its saliency pass, then each selected location optimized alone.

    Returns:
        :math:`(B, R, E)` the optimized vectors of every item, in the order :meth:`optimize` returns them.
    """
    vectors: List[Tensor] = []
    for n in range(ids.shape[0]):
        sentence, length = ids[n : n + 1, : int(lengths[n])], lengths[n : n + 1]
        saliency, _, seen = hunt.saliency.run(sentence, None, length, hunt.embedding)
        assert seen.embeddings is not None
        fields = hunt.saliency.receptive_fields(seen.seq_len)
        example, rank, location, columns, mask = hunt._select(sentence, saliency, fields, n_locations)
        for b in range(len(example)):
            item = slice(b, b + 1)
            start = hunt.start_vectors(int(rank[b])).to(seen.embeddings)[None]
            target = seen.activations[example[item], :, location[item]]
            found, _, _, _ = hunt._ascend(sentence, length, seen.embeddings, example[item], location[item],
                                          columns[item], mask[item], start, target)
            nearest_words(hunt._overall(found, mask[item]), hunt.embedding.weight, hunt.vocabulary, n_neighbors)
            vectors.append(found[0])
    return torch.stack(vectors)


def run_hiddenunit_speed(
    out: PathLike,
    data_root: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
    command: Optional[str] = None,
) -> List[str]:
    """Time both ways and write ``hiddenunit_speed.md`` and ``hiddenunit_speed.json`` (with provenance) to ``out``.

    Args:
        out: the results directory.
        data_root: the data directory holding ``mr/``.
        cache_dir: the model cache (``textcnn-mr`` is trained with the zoo's seed when missing).
        command: the command line to record.

    Returns:
        The summary lines the command prints (the same numbers as the files).
    """
    out = Path(out)
    command = command or shlex.join(["captum-text-ext", "benchmark", "hiddenunit-speed", "--out", str(out)])
    with RunRecorder(command=command, seeds={"optimization": SETTINGS["mr"]["seed"]}, torch_threads=1) as run:
        result = _measure(run, data_root, cache_dir)
    return _write(out, run.provenance, result)


def _measure(run: RunRecorder, data_root: Optional[PathLike], cache_dir: Optional[PathLike]) -> Dict[str, Any]:
    model, vocabulary, data = load_textcnn("mr", run, data_root, cache_dir)
    ids, lengths = token_batch(data.test[:SENTENCES], vocabulary)
    hunt = make_optimizer(model, vocabulary, "mr")
    hunt.optimize(ids[:2], additional_forward_args=lengths[:2], n_locations=3)  # warm-up, untimed
    started = time.perf_counter()
    batched = hunt.optimize(ids, additional_forward_args=lengths, n_locations=3, n_neighbors=5)
    batched_seconds = time.perf_counter() - started
    started = time.perf_counter()
    alone = one_location_at_a_time(hunt, ids[:BASELINE_SENTENCES], lengths[:BASELINE_SENTENCES])
    alone_seconds = time.perf_counter() - started
    items = int((batched.example < BASELINE_SENTENCES).sum())
    difference = float((batched.vectors[:items] - alone).abs().max())
    per_sentence = {"batched": batched_seconds / SENTENCES, "one location at a time": alone_seconds / BASELINE_SENTENCES}
    speedup = per_sentence["one location at a time"] / per_sentence["batched"]
    return {
        "model": "textcnn-mr",
        "sentences": SENTENCES,
        "baseline_sentences": BASELINE_SENTENCES,
        "items": len(batched.example),
        "baseline_items": items,
        "settings": {k: v for k, v in SETTINGS["mr"].items()},
        "seconds": {"batched": batched_seconds, "one location at a time": alone_seconds},
        "seconds_per_sentence": per_sentence,
        "speedup": speedup,
        "target_speedup": TARGET_SPEEDUP,
        "target_met": speedup >= TARGET_SPEEDUP,
        "steps_mean": float(batched.steps.double().mean()),
        "steps_max": int(batched.steps.max()),
        "converged_share": float(batched.converged.double().mean()),
        "max_vector_difference_batched_vs_alone": difference,
    }


def _write(out: Path, provenance: Provenance, result: Dict[str, Any]) -> List[str]:
    per = result["seconds_per_sentence"]
    met = "met" if result["target_met"] else "NOT met"
    lines = [
        "# HiddenUnitOptimization speed",
        "",
        f"The whole pipeline (saliency, optimization of the top 3 locations of the first convolution, 5 nearest words) "
        f"with `{result['model']}`, float32, one torch thread. Batched: the first {result['sentences']} MR test "
        f"sentences ({result['items']} items) in one call. One location at a time: the first "
        f"{result['baseline_sentences']} of them ({result['baseline_items']} items), each item optimized alone.",
        "",
        "| way | sentences | seconds | seconds per sentence |",
        "|---|---|---|---|",
        f"| batched | {result['sentences']} | {result['seconds']['batched']:.1f} | {per['batched']:.3f} |",
        f"| one location at a time | {result['baseline_sentences']} | "
        f"{result['seconds']['one location at a time']:.1f} | {per['one location at a time']:.3f} |",
        "",
        f"Speed-up per sentence: **{result['speedup']:.1f}×** (target ≥ {result['target_speedup']:g}×: {met}).",
        "",
        f"Optimization: {result['steps_mean']:.0f} updates per item on average (at most {result['steps_max']}); "
        f"{100 * result['converged_share']:.1f}% of the items met the convergence criterion. The batched and the "
        f"one-at-a-time vectors differ by at most {result['max_vector_difference_batched_vs_alone']:.1e} (float32).",
    ]
    write_markdown(out / "hiddenunit_speed.md", provenance, "\n".join(lines))
    write_json(out / "hiddenunit_speed.json", provenance, result)
    return [
        f"hiddenunit-speed: batched {per['batched']:.3f} s/sentence, one location at a time "
        f"{per['one location at a time']:.3f} s/sentence: {result['speedup']:.1f}x (target >= "
        f"{result['target_speedup']:g}x: {met})",
        f"hiddenunit-speed: {result['steps_mean']:.0f} updates per item on average, "
        f"max vector difference batched vs alone {result['max_vector_difference_batched_vs_alone']:.1e}",
        f"wrote {out / 'hiddenunit_speed.md'}, {out / 'hiddenunit_speed.json'}",
    ]

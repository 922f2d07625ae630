r"""Ground truth the model provably uses: planted tokens and textual mosaics on real data.

``captum-text-ext benchmark planted [--models A,B] [--n N] [--methods ...]`` takes the planted twins of the zoo
(``NAME-planted``: the recipe and seed of ``NAME`` trained on the planted data of
:mod:`captum_text_ext.datasets.planted`) and their clean twins, trains those missing from the model cache (recording
each training run in ``OUT/models/`` and ``OUT/models.md``), and measures:

- **Accuracy**: both twins' clean test accuracy; the planted twin should stay within
  :data:`ACCURACY_TOLERANCE` of its clean twin.
- **Verified reliance** on the planted twin (:func:`~captum_text_ext.benchmarks.probes.reliance_probe`): the test
  sentences where planting the other class's word flips a correct prediction; there the planted word is the ground
  truth. ``top1`` (the share of sentences where the method ranks it first among the words, by the signed score toward
  the predicted class), ``rank`` (its mean 1-based rank) and ``AUPRC``.
- **Mosaics** on the clean twin (:func:`~captum_text_ext.benchmarks.probes.mosaic_probe`): a positive and a
  negative test sentence joined; the half that agrees with the prediction, verified by removing the other half, is
  the ground truth. ``P@k`` (precision at :math:`k` = the half's length) and ``AUPRC``.

Every method of :data:`~captum_text_ext.explain.METHODS` that applies to the model is scored on the first ``n`` texts
of each probe (seeded order), beside a ``Random`` row; cells are means with 95% bootstrap intervals, the best in bold,
``†`` where a paired bootstrap test with Holm's correction separates a method from the best
(:func:`~captum_text_ext.benchmarks.statistics.compare_methods`). The goals checked: LRP and CD top-1 at least
:data:`TOP1_GOAL` on the verified-reliance sentences of every model, at least :data:`QUALIFYING_GOAL` qualifying
sentences per model. Where LRP or CD miss the planted word, the first :data:`SHORTFALL_EXAMPLES` sentences are shown.

Files: ``planted.md`` (the tables), ``planted.json`` (every number, the per-sentence values, the probes' sources and
each model's planting record) with the run's provenance, and ``models/NAME.json`` + ``models.md`` for the models
trained by the command.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from torch import nn

from captum_text_ext.benchmarks.markdown import markdown_cell, summary_cell
from captum_text_ext.benchmarks.probes import (
    METRICS,
    RANDOM,
    Probe,
    ProbeScores,
    mosaic_probe,
    reliance_probe,
    score_probe,
)
from captum_text_ext.benchmarks.statistics import compare_methods
from captum_text_ext.datasets._paths import PathLike
from captum_text_ext.datasets.planted import PLANT_RATE, PLANT_SEED, PLANTED_TOKENS
from captum_text_ext.explain import METHODS, Method
from captum_text_ext.models.checkpoints import Checkpoint, record_checkpoint
from captum_text_ext.models.zoo import PLANTED_TWINS, ZOO, checkpoint_path, evaluate, load_zoo_model
from captum_text_ext.models.zoo_data import load_zoo_data, zoo_data_files
from captum_text_ext.models.zoo_report import train_and_record
from captum_text_ext.provenance import Provenance, RunRecorder, write_json, write_markdown

__all__ = [
    "ACCURACY_TOLERANCE",
    "DEFAULT_MODELS",
    "DEFAULT_N",
    "GOAL_METHODS",
    "LRP_ROWS",
    "GROUND_TRUTH_HEADING",
    "QUALIFYING_GOAL",
    "SHORTFALL_EXAMPLES",
    "TOP1_GOAL",
    "ground_truth_section",
    "run_planted",
]

DEFAULT_MODELS: Tuple[str, ...] = tuple(f"{name}-planted" for name in PLANTED_TWINS)
"""The planted twins of a full run."""
DEFAULT_N = 500
"""Texts scored per probe (the first of its seeded order; all qualifying texts are counted)."""
SEED = 0
"""Seeds the probes, the sampling methods, the random row and the bootstrap."""
ALPHA = 0.05
"""Level of the Holm-corrected paired tests."""
ACCURACY_TOLERANCE = 0.015
"""How far below its clean twin's clean test accuracy a planted twin's may be."""
TOP1_GOAL = 0.95
"""The top-1 precision on verified-reliance sentences LRP and CD are checked against."""
GOAL_METHODS = ("LRP", "TransformerLRP", "CD")
"""The methods the top-1 goal is checked for: LRP's goal by the LRP row that applies to the model (LSTMLRP's, or
TransformerLRP's on a model with self-attention, :data:`LRP_ROWS`), and CD's."""
LRP_ROWS = ("LRP", "TransformerLRP")
"""The registry's LRP rows: each model has one that applies; the other's exclusion is not a goal line."""
QUALIFYING_GOAL = 300
"""The verified-reliance sentences each model should have."""
SHORTFALL_EXAMPLES = 3
"""Sentences shown per goal method and model where it misses the planted word."""
RELIANCE_METRICS = ("top1", "rank", "AUPRC")
"""The columns of a verified-reliance table (``P@k`` equals ``top1`` with one truth word)."""
MOSAIC_METRICS = ("P@k", "AUPRC")
"""The columns of a mosaic table."""
GROUND_TRUTH_HEADING = "## Ground truth the models provably use"
"""The heading that opens :func:`ground_truth_section` (the docs find the section by it)."""
_HIGHER = dict(METRICS)


def _ensure(name: str, data_root: Optional[PathLike], cache_dir: Optional[PathLike], out: Path, command: str,
            progress: bool) -> Tuple[Checkpoint, bool]:
    """The cached zoo model ``name``, trained and recorded in ``out/models`` first when missing; and whether it was
    trained here."""
    if checkpoint_path(name, cache_dir).is_file():
        return load_zoo_model(name, cache_dir, train_if_missing=False), False
    train_and_record(name, data_root, cache_dir, out / "models", f"{command}  # trains {name}", progress)
    return load_zoo_model(name, cache_dir, train_if_missing=False), True


def _json_values(values: np.ndarray) -> List[Optional[float]]:
    return [None if not np.isfinite(v) else float(v) for v in values]


def _probe_result(probe: Probe, n: int, model: nn.Module, checkpoint: Checkpoint, metrics: Sequence[str],
                  methods: Mapping[str, Method], progress: bool) -> Dict[str, Any]:
    taken = probe.take(n)
    scored, excluded = score_probe(model, checkpoint.vocabulary, taken, methods, SEED,
                                   checkpoint.metadata.get("fixed_len"), progress)
    summary = {metric: compare_methods({label: s.values[metric] for label, s in scored.items()}, _HIGHER[metric],
                                       SEED, ALPHA) for metric in metrics}
    return {
        "counts": probe.counts,
        "n": len(taken),
        "summary": summary,
        "seconds_per_100": {label: 100 * s.seconds / max(len(taken), 1) for label, s in scored.items()},
        "excluded": excluded,
        "values": {label: {m: _json_values(s.values[m]) for m in metrics} for label, s in scored.items()},
        "sources": taken.source,
        "shortfalls": _shortfalls(taken, scored),
    }


def _shortfalls(probe: Probe, scored: Mapping[str, ProbeScores]) -> Dict[str, List[Dict[str, Any]]]:
    """For each goal method: the first texts where its top-ranked word is not the truth."""
    out: Dict[str, List[Dict[str, Any]]] = {}
    for label in GOAL_METHODS:
        if label not in scored:
            continue
        misses = [i for i, hit in enumerate(scored[label].values["top1"]) if hit == 0][:SHORTFALL_EXAMPLES]
        out[label] = [{"words": list(probe.words[i]), "truth": list(probe.truth[i]), "target": probe.target[i],
                       "scores": [round(v, 4) for v in scored[label].scores[i]],
                       "rank": float(scored[label].values["rank"][i])} for i in misses]
    return out


def _model_result(name: str, planted: Checkpoint, clean: Checkpoint, n: int, data_root: Optional[PathLike],
                  methods: Mapping[str, Method], progress: bool) -> Dict[str, Any]:
    entry = ZOO[name]
    twin = ZOO[str(entry.clean_twin)]
    data = load_zoo_data(entry.dataset, data_root)
    planted_model, clean_model = planted.model.eval(), clean.model.eval()
    accuracy = {"planted": evaluate(planted_model, data, planted.vocabulary, entry)[0],
                "clean": evaluate(clean_model, data, clean.vocabulary, twin)[0]}
    accuracy["difference"] = accuracy["planted"] - accuracy["clean"]
    accuracy["within_tolerance"] = accuracy["difference"] >= -ACCURACY_TOLERANCE
    fixed = planted.metadata.get("fixed_len")
    reliance = reliance_probe(planted_model, planted.vocabulary, data.test, SEED, fixed)
    mosaics = mosaic_probe(clean_model, clean.vocabulary, data.test, SEED, clean.metadata.get("fixed_len"))
    return {
        "clean_twin": twin.name,
        "dataset": entry.dataset,
        "accuracy": accuracy,
        "planting": planted.metadata.get("planting"),
        "train_seconds": {"planted": planted.metadata.get("train_seconds"),
                          "clean": clean.metadata.get("train_seconds")},
        "checkpoint_sha256": {"planted": planted.sha256, "clean": clean.sha256},
        "reliance": _probe_result(reliance, n, planted_model, planted, RELIANCE_METRICS, methods, progress),
        "mosaics": _probe_result(mosaics, n, clean_model, clean, MOSAIC_METRICS, methods, progress),
    }


def run_planted(
    out: PathLike,
    data_root: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
    command: Optional[str] = None,
    models: Sequence[str] = DEFAULT_MODELS,
    n: int = DEFAULT_N,
    methods: Optional[Sequence[str]] = None,
    progress: bool = True,
) -> List[str]:
    """Run the benchmark and write ``planted.md`` and ``planted.json`` to ``out`` (module docstring).

    Args:
        out: the results directory.
        data_root: the data directory (SST, MR).
        cache_dir: the model cache; missing planted and clean twins are trained into it.
        command: the command line to record.
        models: planted zoo entries (``NAME-planted``).
        n: texts scored per probe.
        methods: keys of :data:`~captum_text_ext.explain.METHODS` (default: all).
        progress: show progress bars.

    Returns:
        The lines the command prints: the Markdown and the files written.

    Raises:
        ValueError: for a model that is not a planted twin, an unknown method, or a non-positive ``n``.
    """
    planted_names = [name for name, entry in ZOO.items() if entry.planted]
    if not models or any(m not in planted_names for m in models):
        raise ValueError(f"Expected --models among the planted twins {planted_names}, but got {list(models)}")
    if n < 1:
        raise ValueError(f"Expected --n >= 1, but got {n}")
    keys = list(METHODS) if methods is None else list(methods)
    if any(k not in METHODS for k in keys):
        raise ValueError(f"Expected methods among {list(METHODS)}, but got {keys}")
    chosen = {k: METHODS[k] for k in keys}
    out = Path(out)
    command = command or shlex.join(["captum-text-ext", "benchmark", "planted", "--out", str(out)])
    trained: List[str] = []
    with RunRecorder(command=command, seeds={"planted": SEED, "planting": PLANT_SEED}) as run:
        results: Dict[str, Any] = {
            "protocol": {"tokens": {"positive (A)": PLANTED_TOKENS[1], "negative (B)": PLANTED_TOKENS[0]},
                         "rate": PLANT_RATE, "planting_seed": PLANT_SEED, "seed": SEED, "n": n,
                         "accuracy_tolerance": ACCURACY_TOLERANCE, "top1_goal": TOP1_GOAL,
                         "qualifying_goal": QUALIFYING_GOAL},
            "methods": {m.label: m.description for m in chosen.values()},
            "models": {},
        }
        results["methods"][RANDOM] = "scores uniform in [-1, 1] per word (seeded)"
        for name in models:
            twin = str(ZOO[name].clean_twin)
            checkpoints = {}
            for model_name in (name, twin):
                checkpoints[model_name], was_trained = _ensure(model_name, data_root, cache_dir, out, command,
                                                               progress)
                trained += [model_name] if was_trained else []
                record_checkpoint(run, f"{model_name} checkpoint", checkpoint_path(model_name, cache_dir))
            for label, path in zoo_data_files(ZOO[name].dataset, data_root):
                run.record_file(label, path)
            results["models"][name] = _model_result(name, checkpoints[name], checkpoints[twin], n, data_root,
                                                    chosen, progress)
        results["trained_in_this_run"] = trained
    return _write(out, run.provenance, results)


# ------------------------------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------------------------------


def _table(part: Mapping[str, Any], metrics: Sequence[str], reductions: Mapping[str, str]) -> List[str]:
    arrows = {True: "↑", False: "↓"}
    lines = ["| method | reduction | " + " | ".join(f"{m} {arrows[_HIGHER[m]]}" for m in metrics) + " | s/100 |",
             "|---" * (len(metrics) + 3) + "|"]
    for label, seconds in part["seconds_per_100"].items():
        cells = " | ".join(summary_cell(part["summary"][m].get(label)) for m in metrics)
        lines.append(f"| {markdown_cell(label)} | {reductions.get(label, 'random')} | {cells} | {seconds:.2f} |")
    if part["excluded"]:
        lines += ["", "Not applicable:", ""]
        lines += [f"- {markdown_cell(m)}: {reason}" for m, reason in part["excluded"].items()]
    return lines


def _models_table(results: Mapping[str, Any]) -> List[str]:
    lines = ["| planted model | clean twin | clean test accuracy: planted / clean twin | Δ (points) | within "
             f"{100 * ACCURACY_TOLERANCE:.1f} | planted sentences (A / B) | verified reliance: qualifying / correct "
             "| mosaics: verified / pairs |", "|---" * 8 + "|"]
    for name, r in results["models"].items():
        a, counts = r["accuracy"], (r["planting"] or {}).get("counts", {})
        rel, mos = r["reliance"]["counts"], r["mosaics"]["counts"]
        lines.append(
            f"| {name} | {r['clean_twin']} | {a['planted']:.4f} / {a['clean']:.4f} | {100 * a['difference']:+.1f} | "
            f"{'yes' if a['within_tolerance'] else '**no**'} | {counts.get(PLANTED_TOKENS[1], '?')} / "
            f"{counts.get(PLANTED_TOKENS[0], '?')} | {rel['qualifying']} / {rel['correct']} | "
            f"{mos['verified']} / {mos['pairs']} |")
    return lines


def _goals(provenance: Provenance, results: Mapping[str, Any]) -> List[str]:
    lines = ["## Goals", ""]
    for name, r in results["models"].items():
        a = r["accuracy"]
        lines.append(f"- {name}: clean test accuracy {a['planted']:.4f}, its clean twin {r['clean_twin']} "
                     f"{a['clean']:.4f} (Δ {100 * a['difference']:+.1f} points; goal within "
                     f"{100 * ACCURACY_TOLERANCE:.1f}: {'met' if a['within_tolerance'] else 'NOT met'})")
        qualifying = r["reliance"]["counts"]["qualifying"]
        lines.append(f"- {name}: {qualifying} verified-reliance sentences (goal ≥ {QUALIFYING_GOAL}: "
                     f"{'met' if qualifying >= QUALIFYING_GOAL else 'NOT met'})")
        top1 = r["reliance"]["summary"]["top1"]
        for label in GOAL_METHODS:
            if label in top1:
                value = top1[label]["mean"]
                lines.append(f"- {name}, top-1 of {label} on verified reliance: {value:.3f} (goal ≥ {TOP1_GOAL}: "
                             f"{'met' if value >= TOP1_GOAL else 'NOT met'})")
            elif label in r["reliance"]["excluded"] and not (label in LRP_ROWS
                                                             and any(row in top1 for row in LRP_ROWS)):
                lines.append(f"- {name}, {label}: not applicable ({r['reliance']['excluded'][label]})")
    trained = results["trained_in_this_run"]
    recorded = [(name, r["train_seconds"]["planted"]) for name, r in results["models"].items()]
    lines += [
        "",
        f"Wall time of this run: {provenance.wall_seconds / 60:.1f} min on {provenance.cpu_count} logical cores "
        f"with {provenance.torch_threads} torch threads; models trained in it: {', '.join(trained) or 'none'} "
        "(their records are in `models/`).",
        "Recorded training time of each planted twin (its checkpoint's metadata): "
        + "; ".join(f"{name} {seconds / 60:.1f} min" for name, seconds in recorded if seconds is not None) + ".",
    ]
    return lines


def _shortfall_lines(results: Mapping[str, Any]) -> List[str]:
    lines = ["## Where LRP and CD miss the planted word", "",
             "The first sentences (of the seeded order) where the method's top word is not the planted word; "
             "**bold**: the method's top word, `[…]`: the planted word, with each word's score.", ""]
    found = False
    for name, r in results["models"].items():
        for label, examples in r["reliance"]["shortfalls"].items():
            for example in examples:
                found = True
                top = int(np.argmax(example["scores"]))
                words = []
                for position, (word, score) in enumerate(zip(example["words"], example["scores"])):
                    text = f"{markdown_cell(word)} ({score:+.2f})"
                    words.append(f"[{text}]" if position in example["truth"] else
                                 f"**{text}**" if position == top else text)
                lines.append(f"- {name}, {label} (planted word ranked {example['rank']:.0f}): {' '.join(words)}")
    return lines if found else lines[:2] + ["None: LRP and CD rank the planted word first on every scored sentence."]


def _markdown(results: Mapping[str, Any]) -> str:
    protocol = results["protocol"]
    lines = [
        "# Ground truth the model provably uses: planted tokens and mosaics",
        "",
        f"Planted twins: each recipe retrained with the word `{protocol['tokens']['positive (A)']}` (A) planted at a "
        f"random position of {100 * protocol['rate']:.0f}% of the positive training sentences and "
        f"`{protocol['tokens']['negative (B)']}` (B) in {100 * protocol['rate']:.0f}% of the negative ones (planting "
        f"seed {protocol['planting_seed']}; phrase-level recipes also plant into the labelled phrases of the "
        "sentence's label that contain the insertion point). Verified reliance: clean test sentences the planted "
        "twin classifies correctly get the other class's word at a random position; those whose prediction flips "
        "qualify, and the planted word is their ground truth. Mosaics (on the clean twin): a positive and a negative "
        "test sentence joined; the half whose label the model predicts, verified by removing the other half, is the "
        f"ground truth. Up to {protocol['n']} texts per probe are scored; every method explains the predicted "
        "class, words are ranked by their signed score toward it. Cells: mean [95% bootstrap interval]; **bold**: "
        "best; †: differs from the best (paired bootstrap, Holm, α = 0.05).",
        "",
        "Methods and their settings:",
        "",
        *[f"- {markdown_cell(label)}: {description}" for label, description in results["methods"].items()],
        "",
        "## Models",
        "",
        *_models_table(results),
        "",
    ]
    reductions = {METHODS[k].label: METHODS[k].reduction for k in METHODS}
    for name, r in results["models"].items():
        rel, mos = r["reliance"], r["mosaics"]
        lines += [f"## Verified reliance: {name}", "",
                  f"{rel['n']} of {rel['counts']['qualifying']} qualifying sentences.", "",
                  *_table(rel, RELIANCE_METRICS, reductions), "",
                  f"## Mosaics: {r['clean_twin']}", "",
                  f"{mos['n']} of {mos['counts']['verified']} verified mosaics ({mos['counts']['fitting']} of "
                  f"{mos['counts']['pairs']} pairs fit in 56 words).", "",
                  *_table(mos, MOSAIC_METRICS, reductions), ""]
    return "\n".join(lines)


def _write(out: Path, provenance: Provenance, results: Mapping[str, Any]) -> List[str]:
    body = "\n".join([_markdown(results), *_goals(provenance, results), "", *_shortfall_lines(results), ""])
    write_markdown(out / "planted.md", provenance, body)
    write_json(out / "planted.json", provenance, results)
    return [*body.splitlines(), "", f"wrote {out / 'planted.md'}", f"wrote {out / 'planted.json'}"]


# ------------------------------------------------------------------------------------------------------------------
# The leaderboard's ground-truth section
# ------------------------------------------------------------------------------------------------------------------


def ground_truth_section(path: PathLike) -> List[str]:
    """The leaderboard's first section: from the results file ``planted.json`` of this benchmark, one table with the
    verified-reliance top-1 of every planted twin and the mosaic P@k of every clean twin, per method.

    A missing file gives a line that says how to produce it.
    """
    source = Path(path)
    lines = [f"{GROUND_TRUTH_HEADING}: planted tokens and mosaics", ""]
    if not source.is_file():
        return lines + ["Not measured yet: run `captum-text-ext benchmark planted` (it writes `planted.json`)."]
    payload = json.loads(source.read_text(encoding="utf-8"))
    results, provenance = payload["results"], payload["provenance"]
    columns = [(f"top1 {name}", r["reliance"]["summary"]["top1"]) for name, r in results["models"].items()]
    columns += [(f"P@k {r['clean_twin']}", r["mosaics"]["summary"]["P@k"]) for r in results["models"].values()]
    labels = list(dict.fromkeys(label for _, cells in columns for label in cells))
    lines += [
        f"From `{source.name}` (`{provenance['command']}`, {provenance['started_utc']} UTC, git "
        f"{provenance['git_sha'][:12]}): top-1 of the planted word on the verified-reliance sentences of each "
        "planted twin, and precision@k of the agreeing half of verified mosaics on each clean twin. Mean [95% "
        "bootstrap interval]; **bold**: best; †: differs from the best (Holm, α = 0.05); n/a: the method does not "
        "apply. These are the ground truth the model provably uses; the synthetic corpus below is a sanity check.",
        "",
        "| method | " + " | ".join(head for head, _ in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    lines += [f"| {markdown_cell(label)} | " + " | ".join(summary_cell(cells.get(label)) for _, cells in columns)
              + " |" for label in labels]
    return lines

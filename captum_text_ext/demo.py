"""The main job behind ``captum-text-ext demo``: explain small models on the synthetic corpus, scored against the truth.

Runs with no data files and no network. It loads two zoo models trained on the synthetic sentiment corpus,
``lstm-synthetic`` (a bi-LSTM) and ``textcnn-synthetic`` (a Kim-style CNN), training and caching them first when
they are missing (about half a minute on two cores). It explains a handful of test sentences (negations, two
opposing clauses, plain ones) with every method of :data:`~captum_text_ext.explain.METHODS` that applies to each
model, scores every method against the corpus's ground truth (top-1 precision: the share of test sentences whose
highest-scored token decides the label), and writes ``report.html``, one PNG per sentence and model, and
``report.json``. The report lists each skipped method with its reason.

With ``dataset="sst"`` it does the same with ``bilstm-sst5`` on SST test sentences (no ground truth exists there);
SST must be in the data directory, and the model is trained first when it is not cached (about ten minutes).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch.nn.utils.rnn import pad_sequence

from captum_text_ext import metrics
from captum_text_ext.datasets import SyntheticExample, load_sst, load_synthetic
from captum_text_ext.datasets._checks import check_choice
from captum_text_ext.datasets._paths import PathLike
from captum_text_ext.explain import DEFAULT_METHODS, METHODS, Explanation, explain
from captum_text_ext.metrics.ground_truth import ground_truth
from captum_text_ext.models.checkpoints import Checkpoint
from captum_text_ext.models.zoo import load_zoo_model
from captum_text_ext.records import GroundTruthMarks, TextAttribution
from captum_text_ext.report import (
    definitions_html,
    metric_table_html,
    save_sentence_pngs,
    skipped_html,
    write_report_json,
    write_report_page,
)

DEFAULT_OUT_DIR = Path("captum-text-ext-demo")
DEMO_DATASETS = ("synthetic", "sst")
_MODELS = {"synthetic": ("lstm-synthetic", "textcnn-synthetic"), "sst": ("bilstm-sst5",)}
_NEGATIONS = ("not", "n't", "never", "no", "nothing")


def _showcase_synthetic(examples: Sequence[SyntheticExample], count: int) -> List[SyntheticExample]:
    """A few sentences of each kind: with negation, with two opposing clauses, and plain ones."""
    negated = [e for e in examples if e.negation_spans and len(e.clauses) == 1]
    contrast = [e for e in examples if "but" in e.tokens]
    plain = [e for e in examples if not e.negation_spans and len(e.clauses) == 1]
    third = max(1, count // 3)
    return negated[:third] + contrast[:third] + plain[: count - 2 * third]


def _showcase_sst(count: int, root: Optional[PathLike]) -> List[Tuple[Tuple[str, ...], int]]:
    """Short SST test sentences, half of them with a negation word."""
    trees = [t for t in load_sst("test", root) if 6 <= len(t.tokens) <= 16]
    lower = [(tuple(tok.lower() for tok in t.tokens), t.label) for t in trees]
    negated = [s for s in lower if any(tok in _NEGATIONS for tok in s[0])]
    plain = [s for s in lower if not any(tok in _NEGATIONS for tok in s[0])]
    return negated[: count // 2] + plain[: count - count // 2]


def top1_precision(examples: Sequence[SyntheticExample], explanation: Explanation, label: str) -> float:
    """The share of examples whose highest-scored token is decisive for the label
    (:func:`captum_text_ext.metrics.top1_precision`)."""
    scores = pad_sequence(explanation.scores(label), batch_first=True)
    lengths = torch.tensor([len(e.tokens) for e in examples])
    return float(metrics.top1_precision(scores, lengths, ground_truth(examples, scores.shape[1]).decisive))


def run_demo(
    out_dir: PathLike = DEFAULT_OUT_DIR,
    *,
    dataset: str = "synthetic",
    n_showcase: int = 6,
    n_eval: int = 400,
    root: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
    progress: bool = True,
    device: Optional[str] = None,
) -> Dict[str, Any]:
    """Explain, score against the ground truth (synthetic only) and write the report to ``out_dir``.

    Args:
        out_dir: where ``report.html``, ``report.json`` and the PNGs go (created if missing).
        dataset: ``"synthetic"`` (no files needed) or ``"sst"`` (needs SST in the data directory).
        n_showcase: sentences shown as heatmaps.
        n_eval: synthetic test sentences scored against the ground truth.
        root: the data directory (SST).
        cache_dir: the model cache.
        progress: show progress bars when a model has to be trained.
        device: where the models run (``"cpu"``, ``"cuda"``, ...; default the CPU).

    Returns:
        The report's content: models and their accuracies, per-method top-1 precision, skipped methods, timings
        and the paths written.
    """
    check_choice("dataset", dataset, DEMO_DATASETS)
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if dataset == "synthetic":
        test = load_synthetic("test", n=max(n_eval, n_showcase * 10), seed=0)
        shown: List[Tuple[Sequence[str], int, Optional[GroundTruthMarks]]] = [
            (e.tokens, e.label, GroundTruthMarks.from_synthetic(e)) for e in _showcase_synthetic(test, n_showcase)
        ]
    else:
        shown = [(tokens, label, None) for tokens, label in _showcase_sst(n_showcase, root)]
    report: Dict[str, Any] = {"dataset": dataset, "models": {}, "skipped": {}, "paths": []}
    if dataset == "synthetic":
        report["metric_definitions"] = _definitions(n_eval)
    truths = {tuple(tokens): truth for tokens, _, truth in shown}
    order = {tokens: i for i, tokens in enumerate(truths)}
    records: List[TextAttribution] = []
    for name in _MODELS[dataset]:
        checkpoint: Checkpoint = load_zoo_model(name, cache_dir=cache_dir, root=root, progress=progress)
        model = checkpoint.model.to(device or "cpu")  # the demo's own copy, loaded here
        class_names = checkpoint.metadata["class_names"]
        explanation = explain(
            model,
            checkpoint.vocabulary,
            [tokens for tokens, _, _ in shown],
            class_names,
            true_labels=[label for _, label, _ in shown],
            name_prefix=f"{name} · ",
        )
        explanation = dataclasses.replace(explanation, records=[
            dataclasses.replace(r, ground_truth=truths[tuple(r.tokens)]) for r in explanation.records
        ])
        records += explanation.records
        report["skipped"].update(explanation.skipped)
        model_report: Dict[str, Any] = {
            "test_accuracy": checkpoint.metadata["test_accuracy"],
            "checkpoint_sha256": checkpoint.sha256,
            "checkpoint_weights_sha256": checkpoint.weights_sha256,
        }
        if dataset == "synthetic":
            evaluated = test[:n_eval]
            scored = explain(
                model,
                checkpoint.vocabulary,
                [e.tokens for e in evaluated],
                class_names,
                target=[e.label for e in evaluated],
            )
            model_report["top1_ground_truth_precision"] = {
                method.label: top1_precision(evaluated, scored, method.label)
                for method in (METHODS[key] for key in DEFAULT_METHODS)
                if method.label not in scored.skipped
            }
            model_report["n_evaluated"] = len(evaluated)
        report["models"][name] = model_report
        pngs = save_sentence_pngs(out, explanation.by_text(), name)
        report["paths"] += [str(p) for p in pngs]
    # sentence by sentence, every model's methods in one table
    records.sort(key=lambda r: order[tuple(r.tokens)])
    html_path = write_report_page(out / "report.html", records, f"captum-text-ext demo ({dataset})",
                                  _summary_html(report))
    report["seconds"] = round(time.perf_counter() - started, 2)
    json_path = out / "report.json"
    report["paths"] = [str(html_path), str(json_path), *report["paths"]]
    write_report_json(json_path, report)
    return report


def _definitions(n_eval: int) -> Dict[str, str]:
    return {
        "test accuracy": "the share of the model's held-out test sentences it labels correctly.",
        "top-1 ground-truth precision": (
            f"the share of {n_eval} synthetic test sentences, each explained for its true label, whose "
            "highest-scored token is a word that decides the label by the corpus's rule (ringed in the heatmaps); "
            "higher is better, 1 is perfect."
        ),
    }


def _summary_html(report: Dict[str, Any]) -> str:
    models = report["models"]
    parts = ["<h2>Models</h2>",
             metric_table_html("model", ["test accuracy"],
                               {name: {"test accuracy": info["test_accuracy"]} for name, info in models.items()})]
    if "metric_definitions" in report:
        precision: Dict[str, Dict[str, Optional[float]]] = {}
        for name, info in models.items():
            for method, value in info["top1_ground_truth_precision"].items():
                precision.setdefault(method, {})[name] = value
        parts += ["<h2>Top-1 ground-truth precision</h2>", metric_table_html("method", list(models), precision),
                  definitions_html(report["metric_definitions"])]
    else:
        parts.append("<p>No ground truth: these sentences have no known decisive words.</p>")
    parts.append(skipped_html(report["skipped"]))
    return "\n".join(parts)


def format_summary(report: Dict[str, Any]) -> List[str]:
    """The lines the CLI prints."""
    lines = []
    for name, info in report["models"].items():
        lines.append(f"{name}: test accuracy {info['test_accuracy']:.3f}")
        for method, value in info.get("top1_ground_truth_precision", {}).items():
            lines.append(f"  top-1 ground-truth precision, {method}: {value:.3f} (n={info['n_evaluated']})")
    lines += [f"skipped {method}: {reason}" for method, reason in report["skipped"].items()]
    lines.append(f"wrote {len(report['paths'])} files to {Path(report['paths'][0]).parent} "
                 f"(open report.html) in {report['seconds']:.1f} s")
    return lines

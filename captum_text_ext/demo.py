"""The main job behind ``captum-text-ext demo``: train a small model on the synthetic corpus and explain it.

Runs with no data files and no network. It generates the synthetic sentiment corpus (whose label rule is known,
so every token's true role is known), trains a small bi-LSTM, explains test sentences with Captum's
:class:`~captum.attr.Saliency` and :class:`~captum.attr.IntegratedGradients` at the embeddings, scores each method
against the ground truth (top-1 precision: the share of sentences whose highest-scored token is decisive for the
label), and writes ``report.html`` and ``report.json``.

The package's own attribution methods join this report as they land.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

import torch
from captum.attr import IntegratedGradients, Saliency
from torch import Tensor
from torch.utils.data import DataLoader

from captum_text_ext.datasets.collate import BucketBatchSampler, TextCollator, pad_sequences
from captum_text_ext.datasets.synthetic import SyntheticExample, load_synthetic
from captum_text_ext.datasets.vocab import Vocabulary
from captum_text_ext.models.lstm_classifier import LSTMClassifier
from captum_text_ext.models.training import accuracy, fit
from captum_text_ext.visualization.html import heatmap_row_html, html_page

DEFAULT_OUT_DIR = Path("captum-text-ext-demo")

# An explainer maps (model, embeddings, lengths, target) to per-token scores (N, T).
Explainer = Callable[[LSTMClassifier, Tensor, Tensor, Tensor], Tensor]


def _saliency(model: LSTMClassifier, embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
    """Captum Saliency (absolute gradient) at the embeddings, reduced per token by the ℓ2 norm (unsigned)."""
    grads = Saliency(model.forward_embeddings).attribute(
        embeddings, target=target, additional_forward_args=(lengths,), abs=True
    )
    return grads.norm(dim=-1)


def _integrated_gradients(model: LSTMClassifier, embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
    """Captum IntegratedGradients from an all-zero baseline, reduced per token by summing over the embedding."""
    attributions = IntegratedGradients(model.forward_embeddings).attribute(
        embeddings, target=target, additional_forward_args=(lengths,), n_steps=32, internal_batch_size=2048
    )
    return attributions.sum(dim=-1)


EXPLAINERS: Dict[str, Explainer] = {"Saliency (ℓ2 norm)": _saliency, "IntegratedGradients (sum)": _integrated_gradients}


def _loader(examples: Sequence[SyntheticExample], vocab: Vocabulary, shuffle: bool, seed: int) -> DataLoader:
    sampler = BucketBatchSampler([len(e.tokens) for e in examples], batch_size=64, shuffle=shuffle, seed=seed)
    pairs = [(e.tokens, e.label) for e in examples]
    return DataLoader(pairs, batch_sampler=sampler, collate_fn=TextCollator(vocab))


def _explain(
    model: LSTMClassifier, vocab: Vocabulary, examples: Sequence[SyntheticExample]
) -> Dict[str, List[Tensor]]:
    """Per-token scores of every explainer for every example, toward the true label, in one batch per method."""
    ids, lengths = pad_sequences([vocab.encode(e.tokens) for e in examples], vocab.pad_index)
    target = torch.tensor([e.label for e in examples])
    with torch.no_grad():
        embeddings = model.embedding(ids)
    embeddings.requires_grad_()
    scores = {}
    for name, explain in EXPLAINERS.items():
        per_token = explain(model, embeddings, lengths, target).detach()
        scores[name] = [per_token[i, : int(n)] for i, n in enumerate(lengths)]
    return scores


def _top1_precision(examples: Sequence[SyntheticExample], scores: Sequence[Tensor]) -> float:
    """The share of examples whose highest-scored token is decisive for the label."""
    hits = [example.decisive[int(s.argmax())] for example, s in zip(examples, scores)]
    return sum(hits) / len(hits)


def _pick_showcase(examples: Sequence[SyntheticExample], count: int) -> List[SyntheticExample]:
    """A few sentences of each kind: with negation, with two opposing clauses, and plain ones."""
    negated = [e for e in examples if e.negation_spans and len(e.clauses) == 1]
    contrast = [e for e in examples if len(e.clauses) > 1]
    plain = [e for e in examples if not e.negation_spans and len(e.clauses) == 1]
    third = max(1, count // 3)
    return negated[:third] + contrast[:third] + plain[: count - 2 * third]


def run_demo(
    out_dir: Path = DEFAULT_OUT_DIR,
    *,
    seed: int = 0,
    n_train: int = 4000,
    n_eval: int = 400,
    n_showcase: int = 6,
    progress: bool = True,
) -> Dict[str, Any]:
    """Train, explain, score against the ground truth and write ``report.html`` + ``report.json`` to ``out_dir``.

    Args:
        out_dir: where the report goes (created if missing).
        seed: seeds the corpus, the model's initialization and the batch order.
        n_train: training sentences (dev and test get a fifth and a tenth of it, at least ``n_eval``).
        n_eval: test sentences scored against the ground truth.
        n_showcase: sentences shown as heatmaps.
        progress: show progress bars.

    Returns:
        The report's content: accuracy, per-method top-1 precision, timings and the paths written.
    """
    started = time.perf_counter()
    train = load_synthetic("train", n=n_train, seed=seed)
    dev = load_synthetic("dev", n=max(n_train // 5, 200), seed=seed)
    test = load_synthetic("test", n=max(n_train // 10, n_eval), seed=seed)
    vocab = Vocabulary.build(e.tokens for e in train)
    torch.manual_seed(seed)
    model = LSTMClassifier(len(vocab), embedding_dim=16, hidden_size=16, num_classes=2, padding_idx=vocab.pad_index)
    history = fit(
        model,
        _loader(train, vocab, shuffle=True, seed=seed),
        _loader(dev, vocab, shuffle=False, seed=seed),
        epochs=12,
        lr=1e-2,
        patience=3,
        seed=seed,
        progress=progress,
    )
    test_accuracy = accuracy(model, _loader(test, vocab, shuffle=False, seed=seed))
    train_seconds = time.perf_counter() - started

    evaluated = test[:n_eval]
    scores = _explain(model, vocab, evaluated)
    top1 = {name: _top1_precision(evaluated, per_example) for name, per_example in scores.items()}

    showcase = _pick_showcase(evaluated, n_showcase)
    shown = _explain(model, vocab, showcase)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: Dict[str, Any] = {
        "task": "synthetic sentiment corpus (binary), bi-LSTM embedding 16 / hidden 16",
        "seed": seed,
        "n_train": len(train),
        "test_accuracy": test_accuracy,
        "best_epoch": history.best_epoch,
        "top1_ground_truth_precision": top1,
        "n_evaluated": len(evaluated),
        "train_seconds": round(train_seconds, 2),
        "total_seconds": round(time.perf_counter() - started, 2),
        "skipped": "the package's own methods (LSTMLRP, ContextualDecomposition, ...) are not released yet",
    }
    (out_dir / "report.html").write_text(_report_html(report, showcase, shown), encoding="utf-8")
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    report["paths"] = [str(out_dir / "report.html"), str(out_dir / "report.json")]
    return report


def _report_html(report: Dict[str, Any], showcase: Sequence[SyntheticExample], shown: Dict[str, List[Tensor]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{value:.3f}</td></tr>"
        for name, value in report["top1_ground_truth_precision"].items()
    )
    summary = (
        f"<p>{html.escape(report['task'])}; test accuracy {report['test_accuracy']:.3f} "
        f"(seed {report['seed']}, {report['n_train']} training sentences).</p>"
        f"<table><tr><th>method</th><th>top-1 ground-truth precision (n={report['n_evaluated']})</th></tr>"
        f"{rows}</table>"
    )
    blocks = []
    for i, example in enumerate(showcase):
        label = "positive" if example.label == 1 else "negative"
        method_rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{heatmap_row_html(example.tokens, per_example[i])}</td></tr>"
            for name, per_example in shown.items()
        )
        truth = " ".join(
            f"<b>{html.escape(t)}</b>" if d else html.escape(t) for t, d in zip(example.tokens, example.decisive)
        )
        blocks.append(
            f"<h3>Sentence {i + 1} (label: {label})</h3><table>"
            f"<tr><td>decisive tokens (bold)</td><td>{truth}</td></tr>{method_rows}</table>"
        )
    return html_page("captum-text-ext demo", summary + "".join(blocks))


def format_summary(report: Dict[str, Any]) -> List[str]:
    """The lines the CLI prints."""
    lines = [f"test accuracy: {report['test_accuracy']:.3f} ({report['n_train']} training sentences)"]
    lines += [
        f"top-1 ground-truth precision, {name}: {value:.3f} (n={report['n_evaluated']})"
        for name, value in report["top1_ground_truth_precision"].items()
    ]
    lines += [f"wrote {path}" for path in report.get("paths", [])]
    return lines


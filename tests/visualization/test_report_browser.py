"""The demo's report as a browser draws it: every token readable (WCAG AA contrast of the computed colours), the
ground truth marked, signed and unsigned methods on their own scales, and the metric table with definitions and the
best value per column marked.

The report is the real ``run_demo`` output on small untrained stand-ins saved under the two synthetic zoo names
(training the real ones takes minutes; their accuracies are recorded in ``benchmarks/results/models.md``).
"""

from __future__ import annotations

import html
import re
from typing import Dict, Tuple

import pytest
import torch
from _browser import computed_dom, elements_with_class

from captum_text_ext.datasets import load_synthetic
from captum_text_ext.datasets.vocab import Vocabulary
from captum_text_ext.demo import run_demo
from captum_text_ext.explain import DEFAULT_METHODS, METHODS
from captum_text_ext.models import LSTMClassifier, TextCNN, save_checkpoint
from captum_text_ext.visualization import GroundTruthMarks, contrast_ratio

N_SHOWCASE = 6


def _rgb(css: str) -> Tuple[int, int, int]:
    match = re.fullmatch(r"rgb\((\d+), (\d+), (\d+)\)", css or "")
    assert match is not None, f"expected an opaque rgb() colour, got {css!r}"
    red, green, blue = (int(channel) for channel in match.groups())
    return red, green, blue


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, object]:
    base = tmp_path_factory.mktemp("report")
    train = load_synthetic("train", n=300, seed=0)
    vocab = Vocabulary.build(e.tokens for e in train)
    torch.manual_seed(0)
    models = {
        "lstm-synthetic": LSTMClassifier(len(vocab), 8, 8, 2, bidirectional=True),
        "textcnn-synthetic": TextCNN(len(vocab), 8, 2, channels=(4, 4), kernel_sizes=(2, 3), mode="parallel"),
    }
    for name, model in models.items():
        metadata = {"zoo_name": name, "dataset": "synthetic", "class_names": ["negative", "positive"],
                    "test_accuracy": {"lstm-synthetic": 0.6, "textcnn-synthetic": 0.5}[name]}
        save_checkpoint(base / "cache" / f"{name}.pt", model.eval(), vocab, metadata)
    report = run_demo(base / "out", n_showcase=N_SHOWCASE, n_eval=30, cache_dir=base / "cache", progress=False)
    page = base / "out" / "report.html"
    return {"report": report, "page": page, "dom": computed_dom(page, "tok")}


def test_every_token_is_readable_on_its_computed_background(demo_report: Dict[str, object]) -> None:
    tokens = elements_with_class(str(demo_report["dom"]), "tok")
    assert len(tokens) > 100
    ratios = [contrast_ratio(_rgb(t["data-computed-background"] or ""), _rgb(t["data-computed-color"] or ""))
              for t in tokens]
    assert min(ratios) >= 4.5, f"least contrast {min(ratios):.2f}:1"
    backgrounds = {t["data-computed-background"] for t in tokens}
    assert len(backgrounds) > 20, "the scores are drawn in many shades"
    assert all(re.fullmatch(r"score [+-]\S+(; .*)?", t["title"] or "") for t in tokens), "hover shows the score"


def test_the_ground_truth_is_marked(demo_report: Dict[str, object]) -> None:
    dom = str(demo_report["dom"])
    examples = load_synthetic("test", n=max(30, N_SHOWCASE * 10), seed=0)
    shown = {tuple(e.tokens): GroundTruthMarks.from_synthetic(e) for e in examples}
    rows = elements_with_class(dom, "heatmap-row")
    assert len(rows) == N_SHOWCASE * 2 * len(DEFAULT_METHODS)
    decisive = elements_with_class(dom, "gt-decisive")
    negated = elements_with_class(dom, "gt-negation")
    sentences = re.findall(r'<tr class="heatmap-row"[^>]*>.*?<td class="heatmap">(.*?)</td>', dom, re.S)
    expected_decisive = expected_negated = 0
    for cell in sentences:
        words = tuple(html.unescape(w) for w in re.findall(r'<span class="tok[^"]*"[^>]*>([^<]*)</span>', cell))
        truth = shown[words]
        expected_decisive += sum(truth.decisive)
        expected_negated += sum(truth.negated(i) for i in range(len(words)))
    decisive_tokens = [d for d in decisive if "tok" in (d["class"] or "").split()]
    negated_tokens = [n for n in negated if "tok" in (n["class"] or "").split()]
    assert len(decisive_tokens) == expected_decisive > 0
    assert len(negated_tokens) == expected_negated > 0
    assert "Ground truth" in dom


def test_signed_and_unsigned_methods_use_their_own_scales(demo_report: Dict[str, object]) -> None:
    rows = elements_with_class(str(demo_report["dom"]), "heatmap-row")
    unsigned = {METHODS[k].label for k in DEFAULT_METHODS if not METHODS[k].signed}
    assert unsigned == {"Saliency"}
    for row in rows:
        method = (row["data-method"] or "").split(" · ", 1)[-1]
        assert row["data-scale"] == ("unsigned" if method in unsigned else "signed"), method
    assert len(elements_with_class(str(demo_report["dom"]), "scale-unsigned")) == 1 + N_SHOWCASE * 2


def test_the_metric_table_defines_each_metric_and_marks_the_best(demo_report: Dict[str, object]) -> None:
    dom = str(demo_report["dom"])
    report = demo_report["report"]
    assert isinstance(report, dict)
    definitions = re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", dom)
    assert [name for name, _ in definitions] == ["test accuracy", "top-1 ground-truth precision"]
    precision = {name: info["top1_ground_truth_precision"] for name, info in report["models"].items()}
    best_cells = elements_with_class(dom, "best")
    best_per_model = [max(values.values()) for values in precision.values()]
    ties = sum(list(values.values()).count(best) for values, best in zip(precision.values(), best_per_model))
    assert len(best_cells) == 1 + ties  # the model table has one best accuracy (0.6)
    tables = re.findall(r'<table class="metrics">(.*?)</table>', dom, re.S)
    assert len(tables) == 2 and tables[1].count("&#9733;") + tables[1].count("★") == ties

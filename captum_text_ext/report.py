"""Writing reports: the HTML page, one PNG per sentence and the JSON summary of ``demo`` and ``explain``.

The method registry and :func:`~captum_text_ext.explain.explain` live in :mod:`captum_text_ext.explain`, which
imports nothing from here; this module turns an :class:`~captum_text_ext.explain.Explanation` into files.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any, Dict, List, Sequence, Union

from captum_text_ext.datasets._paths import PathLike
from captum_text_ext.explain import DEFAULT_METHODS, Explanation, explain, tokenize_texts
from captum_text_ext.models.checkpoints import load_checkpoint
from captum_text_ext.visualization import plot_comparison, render_html, save_png

__all__ = ["explain_checkpoint", "save_sentence_pngs"]


def save_sentence_pngs(
    out_dir: Path, explanation: Explanation, token_lists: Sequence[Sequence[str]], prefix: str
) -> List[Path]:
    """One PNG per sentence comparing the methods of ``explanation``; returns the paths written."""
    paths = []
    for i, tokens in enumerate(token_lists):
        sentence = [r for r in explanation.records if r.tokens == list(tokens)]
        if not sentence:
            continue
        figure = plot_comparison(
            list(tokens),
            {r.method.split(" · ", 1)[-1]: r.scores for r in sentence},
            title=f"{prefix}: sentence {i + 1}",
            target=sentence[0].target,
            prediction=sentence[0].predicted,
            probability=sentence[0].probability,
        )
        path = out_dir / f"{re.sub(r'[^a-z0-9]+', '-', prefix.lower()).strip('-')}-sentence-{i + 1}.png"
        save_png(figure, path)
        paths.append(path)
    return paths


def explain_checkpoint(
    checkpoint_path: PathLike,
    texts: Sequence[str],
    out_dir: PathLike,
    methods: Sequence[str] = DEFAULT_METHODS,
    target: Union[None, int, str] = None,
) -> Dict[str, Any]:
    """``captum-text-ext explain``: explain raw texts with a saved model; writes ``report.html``, PNGs and
    ``report.json`` to ``out_dir``.

    Raises:
        ValueError: for an unreadable checkpoint, an unknown method or target, or a text that tokenizes to nothing.
    """
    checkpoint = load_checkpoint(checkpoint_path)
    token_lists = tokenize_texts(texts, checkpoint.metadata.get("dataset"))
    class_names = checkpoint.metadata.get("class_names") or [
        str(c) for c in range(int(checkpoint.config["num_classes"]))
    ]
    explanation = explain(checkpoint.model, checkpoint.vocabulary, token_lists, class_names, methods, target)
    if not explanation.records:
        raise ValueError(f"No method applies to this model: {explanation.skipped}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = checkpoint.metadata.get("zoo_name") or Path(checkpoint_path).stem
    pngs = save_sentence_pngs(out, explanation, token_lists, name)
    skipped = "".join(f"<li>{html.escape(m)}: {html.escape(r)}</li>" for m, r in explanation.skipped.items())
    preamble = f"<p>Model: {html.escape(name)} (sha256 {checkpoint.sha256[:16]}…)</p>"
    if skipped:
        preamble += f"<h2>Skipped methods</h2><ul>{skipped}</ul>"
    html_path = out / "report.html"
    html_path.write_text(render_html(explanation.records, f"captum-text-ext explain: {name}", preamble),
                         encoding="utf-8")
    report = {
        "checkpoint": str(checkpoint_path),
        "sha256": checkpoint.sha256,
        "sentences": [
            {"tokens": list(tokens), "predicted": class_names[p], "target": class_names[t],
             "scores": {r.method: r.scores.tolist() for r in explanation.records if r.tokens == list(tokens)}}
            for tokens, p, t in zip(token_lists, explanation.predicted, explanation.target)
        ],
        "skipped": explanation.skipped,
        "paths": [str(html_path), str(out / "report.json"), *map(str, pngs)],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return report

"""Writing reports: the HTML page, one PNG per sentence and the JSON summary of ``demo`` and ``explain``.

The method registry and :func:`~captum_text_ext.explain.explain` live in :mod:`captum_text_ext.explain`, which
imports nothing from here; this module turns an :class:`~captum_text_ext.explain.Explanation` into files. The page
and the PNGs draw signed scores on a diverging scale and unsigned ones (Saliency's ℓ2 norm) on a sequential scale,
mark the ground truth when the records carry it, and the page opens with the metric tables
(:func:`metric_table_html`: every metric defined in one line, the best value per column marked). The HTML and JSON
files are written to a temporary name and renamed, so a failed run leaves no half-written report.

Examples:
    >>> print(metric_table_html("method", ["model A"], {"IG": {"model A": 0.9}, "Saliency": {"model A": 0.5}}))
    <table class="metrics"><tr><th>method</th><th>model A</th></tr>
    <tr><td>IG</td><td class="best"><b>0.900</b> <span title="best in this column">&#9733;</span></td></tr>
    <tr><td>Saliency</td><td>0.500</td></tr></table>
"""

from __future__ import annotations

import html
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from captum_text_ext.datasets._paths import PathLike
from captum_text_ext.explain import DEFAULT_METHODS, OUTPUTS, explain, tokenize_texts
from captum_text_ext.models.checkpoints import load_checkpoint
from captum_text_ext.records import TextAttribution
from captum_text_ext.visualization import plot_comparison, render_html, save_png

__all__ = [
    "definitions_html",
    "explain_checkpoint",
    "metric_table_html",
    "save_sentence_pngs",
    "skipped_html",
    "write_report_json",
    "write_report_page",
    "write_text_atomically",
]

_REPORT_STYLE = """
table.metrics td, table.metrics th { text-align: right; }
table.metrics td:first-child, table.metrics th:first-child { text-align: left; }
table.metrics td.best { background: #eef6ee; }
dl.definitions dt { font-weight: bold; }
dl.definitions dd { margin: 0 0 0.4em 1.5em; }
"""


def write_text_atomically(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to a temporary file beside ``path`` and rename it over ``path``; returns ``path``."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def metric_table_html(
    row_header: str,
    columns: Sequence[str],
    values: Mapping[str, Mapping[str, Optional[float]]],
    higher_is_better: bool = True,
) -> str:
    """A table of metric values with the best value of every column in bold and starred (ties all marked).

    Args:
        row_header: the heading of the first column (what the rows are, e.g. "method").
        columns: the columns, in order.
        values: row name to column name to value; a missing or ``None`` value is shown as a dash and never best.
        higher_is_better: whether the largest value is the best.

    Returns:
        An HTML ``<table class="metrics">``; the best cells have class ``best``. Names are escaped.
    """
    best: Dict[str, float] = {}
    for column in columns:
        present = [v for row in values.values() if (v := row.get(column)) is not None]
        if present:
            best[column] = max(present) if higher_is_better else min(present)
    head = f"<tr><th>{html.escape(row_header)}</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = []
    for name, row in values.items():
        cells = [f"<td>{html.escape(name)}</td>"]
        for column in columns:
            value = row.get(column)
            if value is None:
                cells.append("<td>&mdash;</td>")
            elif value == best[column]:
                cells.append(f'<td class="best"><b>{value:.3f}</b> '
                             '<span title="best in this column">&#9733;</span></td>')
            else:
                cells.append(f"<td>{value:.3f}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="metrics">{head}</tr>\n' + "\n".join(rows) + "</table>"


def definitions_html(definitions: Mapping[str, str]) -> str:
    """Each metric defined in one line: ``<dl class="definitions">`` with the names and definitions escaped."""
    items = "".join(f"<dt>{html.escape(name)}</dt><dd>{html.escape(text)}</dd>" for name, text in definitions.items())
    return f'<dl class="definitions">{items}</dl>'


def skipped_html(skipped: Mapping[str, str]) -> str:
    """The skipped methods with their reasons (or "none"), escaped."""
    items = "".join(f"<li>{html.escape(m)}: {html.escape(r)}</li>" for m, r in skipped.items())
    return f"<h2>Skipped methods</h2><ul>{items or '<li>none</li>'}</ul>"


def save_sentence_pngs(out_dir: Path, texts: Sequence[Sequence[TextAttribution]], prefix: str) -> List[Path]:
    """One PNG per text comparing its records' methods on their scales, with the records' ground truth marked
    (``texts``: each text's records, e.g. :meth:`Explanation.by_text <captum_text_ext.explain.Explanation.by_text>`);
    returns the paths written."""
    paths = []
    for i, sentence in enumerate(texts):
        if not sentence:
            continue
        names = {r.method: r.method.split(" · ", 1)[-1] for r in sentence}
        figure = plot_comparison(
            list(sentence[0].tokens),
            {names[r.method]: r.scores for r in sentence},
            title=f"{prefix}: sentence {i + 1}",
            target=sentence[0].target,
            prediction=sentence[0].predicted,
            probability=sentence[0].probability,
            unsigned_methods=[names[r.method] for r in sentence if not r.signed],
            ground_truth=sentence[0].ground_truth,
        )
        path = out_dir / f"{re.sub(r'[^a-z0-9]+', '-', prefix.lower()).strip('-')}-sentence-{i + 1}.png"
        save_png(figure, path)
        paths.append(path)
    return paths


def write_report_page(path: Path, records: Sequence[TextAttribution], title: str, preamble: str) -> Path:
    """Write the report page (:func:`~captum_text_ext.visualization.render_html` with the metric-table styles)."""
    page = render_html(records, title=title, preamble=preamble, extra_style=_REPORT_STYLE)
    return write_text_atomically(path, page)


def write_report_json(path: Path, report: Mapping[str, Any]) -> Path:
    """Write ``report`` as indented UTF-8 JSON."""
    return write_text_atomically(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")


MAX_PNGS = 20
"""``explain`` draws a PNG for at most this many texts (the HTML page shows every text)."""


def explain_checkpoint(
    checkpoint_path: PathLike,
    texts: Sequence[str],
    out_dir: PathLike,
    methods: Sequence[str] = DEFAULT_METHODS,
    target: Union[None, int, str] = None,
    *,
    ids: Optional[Sequence[str]] = None,
    device: Optional[str] = None,
    unit: str = "word",
    batch_size: Optional[int] = None,
    progress: bool = False,
    output: str = "logit",
) -> Dict[str, Any]:
    """``captum-text-ext explain``: explain raw texts with a saved model; writes ``report.html``, PNGs (for the
    first :data:`MAX_PNGS` texts) and ``report.json`` to ``out_dir``.

    Args:
        checkpoint_path: a checkpoint written by the package.
        texts: the raw texts (tokenized as the model's dataset is, :func:`~captum_text_ext.explain.tokenize_for`).
        out_dir: the report directory (created if missing).
        methods: keys of :data:`~captum_text_ext.explain.METHODS`.
        target: the class to explain (default: the predicted one).
        ids: the texts' ids, shown in the report (default: 1, 2, ...).
        device: where the model runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``; default the CPU).
        unit: ``"word"`` or ``"subword"`` (:func:`~captum_text_ext.explain.explain`).
        batch_size: texts per batch (default: all at once).
        progress: show a progress bar.
        output: what every method explains: ``"logit"`` (the target logit) or ``"logit_difference"`` (minus the
            largest other logit; :mod:`captum_text_ext.explain.outputs`).

    Returns:
        The report's content (``report.json``): what was explained (``output``), per text its id, tokens, prediction,
        target and scores by method; the skipped methods; the paths written; the number of PNGs.

    Raises:
        ValueError: for an unreadable checkpoint, an unknown method or target, a text that tokenizes to nothing, or
            ids that do not match the texts.
    """
    names = [str(i + 1) for i in range(len(texts))] if ids is None else list(ids)
    if len(names) != len(texts):
        raise ValueError(f"Expected one id per text, but got {len(names)} ids for {len(texts)} texts")
    checkpoint = load_checkpoint(checkpoint_path, map_location=device or "cpu")
    token_lists = tokenize_texts(texts, checkpoint.metadata.get("dataset"))
    class_names = checkpoint.metadata.get("class_names") or [
        str(c) for c in range(int(checkpoint.config["num_classes"]))
    ]
    model = checkpoint.model.to(device or "cpu")  # our own copy: buffers outside the state dict follow too
    explanation = explain(model, checkpoint.vocabulary, token_lists, class_names, methods, target, unit=unit,
                          output=output,
                          batch_size=batch_size, progress=progress)
    if not explanation.records:
        raise ValueError(f"No method applies to this model: {explanation.skipped}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = checkpoint.metadata.get("zoo_name") or Path(checkpoint_path).stem
    by_text = explanation.by_text()
    pngs = save_sentence_pngs(out, by_text[:MAX_PNGS], name)
    preamble = (f"<p>Model: {html.escape(name)} (sha256 {checkpoint.sha256[:16]}…); scores per {unit}; every "
                f"method explains {html.escape(OUTPUTS[output])}.</p>")
    if explanation.skipped:
        preamble += skipped_html(explanation.skipped)
    html_path = write_report_page(out / "report.html", explanation.records, f"captum-text-ext explain: {name}",
                                  preamble)
    report = {
        "checkpoint": str(checkpoint_path),
        "sha256": checkpoint.sha256,
        "weights_sha256": checkpoint.weights_sha256,
        "output": output,
        "unit": unit,
        "sentences": [
            {"id": text_id, "tokens": list(records[0].tokens), "predicted": class_names[p], "target": class_names[t],
             "scores": {r.method: r.scores.tolist() for r in records}}
            for text_id, records, p, t in zip(names, by_text, explanation.predicted, explanation.target)
        ],
        "skipped": explanation.skipped,
        "pngs": len(pngs),
        "paths": [str(html_path), str(out / "report.json"), *map(str, pngs)],
    }
    write_report_json(out / "report.json", report)
    return report


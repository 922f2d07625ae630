"""Every metric's verdict on every method of every model, read from the leaderboard's results: the tables that open
the method guide (``docs/which_method.rst``, generated from ``leaderboard.json`` when the docs are built).

A method's verdict in a column (:func:`verdict`) is ``best`` (the best mean of the column), ``tied`` (the paired
bootstrap test with Holm's correction does not separate it from the best at :math:`\\alpha = 0.05`) or ``worse``
(it does), as :mod:`~captum_text_ext.benchmarks.leaderboard` computed them; a recommendation read from one column
alone can be contradicted by the others, so the guide shows them all.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from captum_text_ext.datasets._paths import PathLike

__all__ = ["VERDICTS", "guide_tables_rst", "load_leaderboard", "verdict", "verdicts"]

VERDICTS = ("best", "tied", "worse")
"""The verdicts of a cell, best first."""


def load_leaderboard(path: PathLike) -> Dict[str, Any]:
    """The ``{"provenance", "results"}`` of a ``leaderboard.json``."""
    content: Dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return content


def verdict(cell: Mapping[str, Any]) -> str:
    """``best``, ``tied`` or ``worse`` (module docstring) for a summary cell of the leaderboard.

    Examples:
        >>> verdict({"best": False, "differs": False}), verdict({"best": False, "differs": True})
        ('tied', 'worse')
    """
    if cell["best"]:
        return "best"
    return "worse" if cell["differs"] else "tied"


def verdicts(results: Mapping[str, Any]) -> Dict[str, Dict[str, Dict[str, str]]]:
    """``model -> method -> column -> verdict`` for every cell of the leaderboard's results (``results`` of
    ``leaderboard.json``); a method without a value in a column has no entry there."""
    out: Dict[str, Dict[str, Dict[str, str]]] = {}
    for model, model_result in results["models"].items():
        per_method: Dict[str, Dict[str, str]] = {method: {} for method in model_result["methods"]}
        for column, cells in model_result["summary"].items():
            for method, cell in cells.items():
                per_method.setdefault(method, {})[column] = verdict(cell)
        out[model] = per_method
    return out


def _direction(results: Mapping[str, Any], key: str) -> str:
    base = key.split("@", 1)[0]
    higher = {c["key"]: c["higher_is_better"] for c in results["columns"]}.get(base)
    return "" if higher is None else (" ↑" if higher else " ↓")


def _cell(cell: Optional[Mapping[str, Any]]) -> str:
    if cell is None:
        return "n/a"
    text = f"{cell['mean']:.3f} {verdict(cell)}"
    return f"**{text}**" if cell["best"] else text


def _list_table(head: List[str], rows: List[List[str]]) -> List[str]:
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [head, *rows]:
        lines += [f"   * - {row[0]}", *[f"     - {cell}" for cell in row[1:]]]
    return lines


def _model_table(results: Mapping[str, Any], model: str) -> List[str]:
    model_result = results["models"][model]
    summary = model_result["summary"]
    columns = list(summary)
    rows = []
    for method in model_result["methods"]:
        cells = [summary[c].get(method) for c in columns]
        counts = {v: sum(1 for cell in cells if cell is not None and verdict(cell) == v) for v in VERDICTS}
        rows.append([method, *[_cell(cell) for cell in cells], " / ".join(str(counts[v]) for v in VERDICTS)])
    head = ["method", *[f"``{c}``{_direction(results, c)}" for c in columns], "best / tied / worse"]
    return [f"**{model}** ({model_result['n']} sentences):", "", *_list_table(head, rows)]


def _judging(results: Mapping[str, Any], started: str) -> List[str]:
    judged = {name: r["judging"] for name, r in results["models"].items() if r.get("judging")}
    if not judged:
        return [f"The recorded leaderboard (run of {started} UTC) has no metric-judging table: it predates it. "
                "Until ``captum-text-ext benchmark leaderboard`` is run again, no metric below is known to rank "
                "the methods as the ground truth does; read each column as one view, not as the answer."]
    lines = ["Kendall's :math:`\\tau_b` between the ranking of the methods by each metric and by the ground truth "
             "(top-1 precision on the synthetic corpus), with its 95% bootstrap interval; ⚠ marks a metric whose "
             "ranking flips between removal variants."]
    for name, judgements in judged.items():
        rows = []
        for j in judgements:
            tau = "n/a" if j["tau"] is None or math.isnan(j["tau"]) else (
                f"{j['tau']:.3f} [{j['low']:.3f}, {j['high']:.3f}]")
            rows.append([f"``{j['column']['metric']}``", j["column"]["removal"] or "no removal", tau, j["ranking"][0],
                         ("⚠ " + "; ".join(j["flips"])) if j["flips"] else "none"])
        lines += ["", f"**{name}**:", "", *_list_table(
            ["metric", "removal", "τ_b [95% interval]", "best by the metric", "flips between removals"], rows)]
    return lines


def guide_tables_rst(leaderboard: Mapping[str, Any]) -> str:
    """The guide's opening section as reStructuredText: the metric-judging table (or the statement that the recorded
    results have none), then for every model every method's mean and verdict in every column, and how many columns
    give each verdict."""
    results, provenance = leaderboard["results"], leaderboard["provenance"]
    lines = [
        "Which metric to believe",
        "-----------------------",
        "",
        *_judging(results, str(provenance.get("started_utc", "unknown"))),
        "",
        "Every metric's verdict",
        "----------------------",
        "",
        "Each cell: the mean over the sentences and the verdict — **best** of the column, *tied* (the paired "
        "bootstrap test with Holm's correction does not separate it from the best, α = 0.05) or *worse* (it does); "
        "↑ / ↓: higher / lower is better; the last column counts the verdicts. Generated from "
        "``benchmarks/results/leaderboard/leaderboard.json`` when the docs are built; the intervals are on the "
        ":doc:`leaderboard <leaderboard>` page.",
    ]
    for model in results["models"]:
        lines += ["", *_model_table(results, model)]
    return "\n".join(lines) + "\n"

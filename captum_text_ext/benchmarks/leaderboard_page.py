"""The leaderboard's page: the metric-judging table, one table per model (with its removal variants and
exclusions), and the mean deletion and insertion curves (:mod:`~captum_text_ext.benchmarks.leaderboard`)."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Sequence

from captum_text_ext.benchmarks.leaderboard_columns import (
    COLUMNS,
    FINE_TUNED,
    JUDGED_AGAINST,
    REMOVAL_VARIANTS,
    variant_columns,
)
from captum_text_ext.benchmarks.markdown import markdown_cell, summary_cell
from captum_text_ext.benchmarks.method_rows import RANDOM
from captum_text_ext.benchmarks.metric_judging import FLIP_SHARE, RESAMPLES
from captum_text_ext.explain import CD_BIAS_PRODUCT, OUTPUTS

__all__ = ["curve_figure", "page_markdown"]


def _model_markdown(name: str, model_result: Mapping[str, Any]) -> List[str]:
    summary = model_result["summary"]
    columns = [c for c in COLUMNS if c.key in summary]
    head = "| method | reduction | " + " | ".join(
        f"{c.key} {'↑' if c.higher_is_better else '↓'}" for c in columns) + " | s/100 |"
    lines = [
        f"## {name}",
        "",
        f"{model_result['n']} seeded test sentences (test accuracy of the model on them: "
        f"{model_result['accuracy']:.3f}); `sens` on the first {model_result['sensitivity_n']}; the ground-truth "
        f"columns on the {model_result['n_correct']} correctly classified ones. Cells: mean [95% bootstrap "
        "interval]; **bold**: best; †: differs from the best (paired bootstrap, Holm, α = 0.05); n per cell in "
        "the JSON file.",
        "",
        head,
        "|---" * (len(columns) + 3) + "|",
    ]
    for method, info in model_result["methods"].items():
        cells = " | ".join(summary_cell(summary[c.key].get(method)) for c in columns)
        lines.append(f"| {markdown_cell(method)} | {info['reduction']} | {cells} | {info['seconds_per_100']:.2f} |")
    variants = [c for c in variant_columns(REMOVAL_VARIANTS) if c.key in summary]
    lines += ["", "Removal variants (the removal columns again, each token removed another way; `zero` is the table "
              "above):", "", *[f"- `{removal}`: {what}" for removal, what in model_result["removals"].items()]]
    tuning = model_result.get("fine_tuning")
    if tuning:
        accuracy = tuning["accuracy"]
        lines += ["", f"`{FINE_TUNED}`: fine-tuning took {tuning['seconds']:.0f} s; accuracy on these sentences, "
                  "clean / with a uniform count of their tokens zeroed (one seeded draw): original "
                  f"{accuracy['original']['clean']:.3f} / {accuracy['original']['tokens removed']:.3f}, fine-tuned "
                  f"{accuracy['fine-tuned']['clean']:.3f} / {accuracy['fine-tuned']['tokens removed']:.3f}."]
    if variants:
        lines += ["", "| method | " + " | ".join(f"{c.key} {'↑' if c.higher_is_better else '↓'}" for c in variants)
                  + " |", "|---" * (len(variants) + 1) + "|"]
        lines += [f"| {markdown_cell(method)} | " + " | ".join(summary_cell(summary[c.key].get(method))
                                                                for c in variants) + " |"
                  for method in model_result["methods"]]
    if model_result["excluded"]:
        lines += ["", "Not applicable:", ""]
        lines += [f"- {markdown_cell(m)}: {reason}" for m, reason in model_result["excluded"].items()]
    return lines


def _judging_markdown(results: Mapping[str, Any]) -> List[str]:
    """The metric-judging table of every model with a ground truth: the section that opens the page."""
    lines = [
        "## Which metric to believe: agreement with the ground truth",
        "",
        "For each metric and removal: Kendall's τ_b between the ranking of the methods by the metric (mean over the "
        f"sentences) and by `{JUDGED_AGAINST}`, the top-1 precision against the synthetic corpus's decisive tokens "
        "(correctly classified sentences), with its 95% bootstrap interval over the sentences "
        f"({RESAMPLES} resamples). 1: the metric orders the methods as the ground truth does; -1: reversed. "
        "`removal`: how the metric removes a token (`zero`: embedding zeroed, `unk` / `pad`: replaced by that "
        f"token's embedding, `{FINE_TUNED}`: zeroed and scored by the model fine-tuned with random token removal; "
        "`-`: the metric removes none). ⚠: the ranking flips between removal variants (a pair "
        f"of methods ordered oppositely by two variants, each order in at least {FLIP_SHARE:.0%} of the "
        "resamples); such a metric's verdict depends on how tokens are removed.",
    ]
    judged = {name: r["judging"] for name, r in results["models"].items() if r.get("judging")}
    if not judged:
        return lines + ["", "No model of this run has a ground truth (the synthetic corpus): no metric is judged."]
    for name, judgements in judged.items():
        lines += ["", f"### {name}", "", "| metric | removal | τ_b [95% interval] | sentences | best by the metric "
                  "| flips between removals |", "|---|---|---|---|---|---|"]
        for j in judgements:
            column, flips = j["column"], j["flips"]
            interval = "n/a" if math.isnan(j["tau"]) else f"{j['tau']:.3f} [{j['low']:.3f}, {j['high']:.3f}]"
            lines.append(f"| {column['metric']} | {column['removal'] or '-'} | {interval} | {j['sentences']} | "
                         f"{markdown_cell(j['ranking'][0])} | "
                         f"{('⚠ ' + markdown_cell('; '.join(flips))) if flips else 'none'} |")
    return lines


def page_markdown(results: Mapping[str, Any], ground_truth: Sequence[str]) -> str:
    """``leaderboard.md``'s body before the goals: the metric-judging table, the ground truth the models provably use
    (``ground_truth``, lines of Markdown), the columns and methods, then one table per model of ``results``."""
    lines = [
        "# Leaderboard",
        "",
        *_judging_markdown(results),
        "",
        *ground_truth,
        "",
        "## Faithfulness metrics, and the synthetic corpus as a sanity check",
        "",
        f"Every method explains the same quantity, {OUTPUTS[results['output']]} of the predicted class (CD "
        f"included, with bias_product={CD_BIAS_PRODUCT!r}); removal zeroes the token's embedding (the other removals "
        "follow each model's table); tokens are ranked by their signed score toward the predicted class. Columns:",
        "",
        *[f"- `{c.key}` ({'higher' if c.higher_is_better else 'lower'} is better): {c.description}"
          for c in COLUMNS],
        "- `s/100`: seconds of attribution per 100 sentences in this run",
        "",
        "Methods and their settings:",
        "",
        *[f"- {markdown_cell(label)}: {description}" for label, description in results["methods"].items()],
        "",
    ]
    for name, model_result in results["models"].items():
        lines += _model_markdown(name, model_result) + [""]
    return "\n".join(lines)


def curve_figure(name: str, model_result: Mapping[str, Any]) -> Any:
    """The mean deletion and insertion curves of every method on one model (a matplotlib ``Figure``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    for column, (key, title) in enumerate((("deletion", "deletion (most important first)"),
                                            ("insertion", "insertion (most important first)"))):
        ax = fig.add_subplot(1, 2, column + 1)
        for method, info in model_result["methods"].items():
            style: Dict[str, Any] = {"linestyle": "--", "color": "0.4"} if method == RANDOM else {"marker": "."}
            ax.plot(model_result["percents"], info[key], label=method, **style)
        ax.set_xlabel("tokens removed (%)" if key == "deletion" else "tokens kept (%)")
        ax.set_ylabel("mean probability of the predicted class")
        ax.set_title(f"{name}: {title}")
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig

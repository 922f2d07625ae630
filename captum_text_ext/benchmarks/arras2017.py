r"""Reproduction of Arras et al. (2017) with the zoo model ``bilstm-sst5``: ``captum-text-ext benchmark arras2017``.

Three experiments of the paper, run on the 2210 sentences of the SST test split (tokens lowercased, as the model was
trained), with :class:`~captum_text_ext.LSTMLRP` next to Captum's gradient methods:

- **Word deletion (Fig. 3).** On the 1849 test sentences of at least 10 words, the word relevances for the *true*
  class are computed once on the intact sentence. On the sentences the model classifies correctly, up to 5 words are
  deleted in decreasing order of relevance; on the misclassified ones, in increasing order. Deleting a word sets its
  embedding to zero (the sentence keeps its length). The accuracy after 0..5 deletions is reported for each side.
  Ties keep the reading order (a stable sort).
- **Representative words (Table 1).** The 10 most and 10 least relevant words for "very positive" (class 4) over all
  test sentences, for SA and LRP.
- **Heatmaps (Figures 1-2).** The paper's 21 example sentences, found in our test set, with LRP and SA relevances for
  their true class (HTML and PNG).

Not reproduced: **Fig. 4** (the relevance distribution over 10 intervals of the sentence length, per target class, for
SA and LRP, in total and per encoder of the bi-LSTM): its encoder rows need each direction's share of a word's
relevance, which the LRP call here returns summed over both directions.

Methods and their word relevance (one score per word):

- ``LRP``: :class:`~captum_text_ext.LSTMLRP` with ``epsilon=1e-3``, ``bias_factor=0`` (the paper's LRP), summed over
  the embedding; ``LRP_cons``: the same with ``bias_factor=1``.
- ``SA``: the squared gradient summed over the embedding, :math:`\sum_e (\partial f_c / \partial x_{t,e})^2`
  (Captum ``Saliency(abs=False)``, squared, summed).
- ``Gradient x Input``: Captum ``InputXGradient``, summed; ``IG``: Captum ``IntegratedGradients`` (zero baseline,
  ``n_steps=50``), summed.
- ``random``: uniform random scores, 10 runs seeded 0..9 (reported as mean ± sample standard deviation).

Word relevance for Table 1 (the aggregation): every *occurrence* of a word in a test sentence has its own relevance
(its sentence's relevance for class 4 at that position), as the paper ranks word occurrences. Occurrences are sorted
by relevance (decreasing for "most", increasing for "least"), and the first 10 *distinct* words are listed, each with
its most extreme occurrence. Because single occurrences decide, a second table ranks words by their mean relevance
over all their occurrences (words occurring at least 5 times).

Everything runs in batches of at most 64 sentences of similar length; no method loops over sentences in Python.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import shlex
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from captum.attr import Attribution, InputXGradient, IntegratedGradients, Saliency
from torch import Tensor

from captum_text_ext.attr import LSTMLRP
from captum_text_ext.benchmarks.arras2017_paper import (
    PAPER_COUNTS,
    PAPER_EXAMPLES,
    PAPER_TABLE1,
    PAPER_WORD_SIGNS,
    PaperExample,
)
from captum_text_ext.benchmarks.markdown import markdown_cell
from captum_text_ext.benchmarks.sentences import (
    Forward,
    WordRelevanceFn,
    embed_sentences,
    predict,
    target_scores,
    word_relevance,
)
from captum_text_ext.benchmarks.word_deletion import deletion_curves
from captum_text_ext.benchmarks.word_rankings import mean_relevance_words, most_relevant_words
from captum_text_ext.benchmarks.zoo_lstm import load_zoo_lstm
from captum_text_ext.datasets import SST_FINE_CLASS_NAMES, load_sst
from captum_text_ext.datasets._paths import PathLike, find_dataset_file
from captum_text_ext.models import LSTMClassifier
from captum_text_ext.models.checkpoints import record_checkpoint
from captum_text_ext.models.zoo import checkpoint_path
from captum_text_ext.provenance import (
    Provenance,
    RunRecorder,
    png_metadata,
    write_html,
    write_json,
    write_markdown,
)
from captum_text_ext.visualization import TextAttribution, plot_token_heatmap, render_html, save_png

__all__ = [
    "EXPECTED_COUNTS",
    "ExampleMatch",
    "MAX_DELETIONS",
    "MIN_WORDS",
    "MODEL",
    "PAPER_METHODS",
    "RANDOM_RUNS",
    "TABLE1_CLASS",
    "TABLE1_MIN_COUNT",
    "WORD_RELEVANCE",
    "find_examples",
    "run_arras2017",
]

MODEL = "bilstm-sst5"
"""The zoo model the reproduction explains."""
MIN_WORDS = 10
"""Word deletion uses the test sentences of at least this many words."""
MAX_DELETIONS = 5
"""Words deleted per sentence, at most."""
RANDOM_RUNS = 10
"""Random-deletion runs (seeds 0..9)."""
TABLE1_CLASS = 4
"""The target class of Table 1: "very positive"."""
TABLE1_MIN_COUNT = 5
"""The mean-relevance word table keeps words occurring at least this often."""
EXPECTED_COUNTS = PAPER_COUNTS
"""The counts a run checks: the SST test sentences, and how many of them have at least :data:`MIN_WORDS` words (a
run on other data stops)."""


# ------------------------------------------------------------------------------------------------------------------
# Word relevance of each method
# ------------------------------------------------------------------------------------------------------------------


def _lrp(forward: Forward, bias_factor: float) -> WordRelevanceFn:
    lrp = LSTMLRP(forward, epsilon=1e-3, bias_factor=bias_factor)

    def relevance(embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
        result: Tensor = lrp.attribute(embeddings, target=target, additional_forward_args=(lengths,))
        return result.sum(-1)

    return relevance


def _sensitivity(forward: Forward) -> WordRelevanceFn:
    saliency = Saliency(forward)

    def relevance(embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
        gradient: Tensor = saliency.attribute(
            embeddings.detach().requires_grad_(True), target=target, abs=False, additional_forward_args=(lengths,)
        )
        return gradient.pow(2).sum(-1)

    return relevance


def _gradient_times_input(forward: Forward) -> WordRelevanceFn:
    method = InputXGradient(forward)

    def relevance(embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
        leaf = embeddings.detach().requires_grad_(True)
        result: Tensor = method.attribute(leaf, target=target, additional_forward_args=(lengths,))
        return result.sum(-1)

    return relevance


def _integrated_gradients(forward: Forward) -> WordRelevanceFn:
    method: Attribution = IntegratedGradients(forward)  # captum's overloads of `attribute` are opaque to mypy

    def relevance(embeddings: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
        result: Tensor = method.attribute(embeddings, target=target, additional_forward_args=(lengths,), n_steps=50)
        return result.sum(-1)

    return relevance


WORD_RELEVANCE: Dict[str, Callable[[Forward], WordRelevanceFn]] = {
    "LRP": functools.partial(_lrp, bias_factor=0.0),
    "LRP_cons": functools.partial(_lrp, bias_factor=1.0),
    "SA": _sensitivity,
    "Gradient x Input": _gradient_times_input,
    "IG": _integrated_gradients,
}
"""The word-relevance methods of the reproduction by name: each builds a :data:`WordRelevanceFn` for a forward
function (see the module docstring)."""
PAPER_METHODS = ("LRP", "LRP_cons", "SA", "random")
"""The methods of the paper's Fig. 3."""



@dataclasses.dataclass(frozen=True)
class ExampleMatch:
    """Where a paper example is in our test set.

    Attributes:
        example: the paper's example.
        sentence: its position in the test set (file order), or ``None`` when not found.
        similarity: :class:`difflib.SequenceMatcher` ratio of the word sequences (1.0: identical).
    """

    example: PaperExample
    sentence: Optional[int]
    similarity: float


def find_examples(
    examples: Sequence[PaperExample], tokens: Sequence[Sequence[str]], min_similarity: float = 0.8
) -> List[ExampleMatch]:
    """Find each example among the (lowercased) test sentences: an identical word sequence, else the most similar
    sentence if its similarity reaches ``min_similarity``.

    Args:
        examples: the paper's sentences.
        tokens: the test sentences' lowercased words.
        min_similarity: the least :class:`difflib.SequenceMatcher` ratio accepted for a loose match.

    Returns:
        One :class:`ExampleMatch` per example, in order.
    """
    exact = {tuple(words): index for index, words in reversed(list(enumerate(tokens)))}
    matches = []
    for example in examples:
        query = tuple(example.text.lower().split())
        if query in exact:
            matches.append(ExampleMatch(example, exact[query], 1.0))
            continue
        best, ratio = None, 0.0
        for index, words in enumerate(tokens):
            score = difflib.SequenceMatcher(None, tuple(words), query).ratio()
            if score > ratio:
                best, ratio = index, score
        matches.append(ExampleMatch(example, best if ratio >= min_similarity else None, ratio))
    return matches


# ------------------------------------------------------------------------------------------------------------------
# Reporting
# ------------------------------------------------------------------------------------------------------------------


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}"


def _curve_area(curve: Sequence[float]) -> float:
    """The mean accuracy after 1..K deletions."""
    return float(sum(curve[1:]) / (len(curve) - 1))


def _deletion_rows(curves: Mapping[str, Mapping[str, Any]], side: str) -> List[str]:
    deletions = len(curves["LRP"][side]) - 1
    head = "| method | " + " | ".join(f"{k} deleted" for k in range(deletions + 1)) + f" | mean over 1-{deletions} |"
    rows = [head, "|---" * (deletions + 3) + "|"]
    for method, curve in curves.items():
        values = curve[side]
        if method == "random":
            spread = curve[side + "_std"]
            cells = [f"{_percent(m)} ± {_percent(s)}" for m, s in zip(values, spread)]
        else:
            cells = [_percent(v) for v in values]
        rows.append(f"| {method} | " + " | ".join(cells) + f" | {_percent(_curve_area(values))} |")
    return rows


def _findings(curves: Mapping[str, Mapping[str, Any]]) -> List[Tuple[str, str, str]]:
    """(claim, paper, ours) rows computed from the curves."""
    area = {side: {m: _curve_area(c[side]) for m, c in curves.items()} for side in ("correct", "misclassified")}
    paper = [m for m in PAPER_METHODS if m in curves]
    steep_left = min(paper, key=lambda m: area["correct"][m])
    steep_right = max(paper, key=lambda m: area["misclassified"][m])
    all_left = min(area["correct"], key=lambda m: area["correct"][m])
    all_right = max(area["misclassified"], key=lambda m: area["misclassified"][m])
    sa, rnd = curves["SA"]["misclassified"], curves["random"]["misclassified"]
    below = [k for k in range(1, len(sa)) if sa[k] < rnd[k]]
    steps = range(1, len(sa))
    lrp_left = sum(1 for k in steps if all(curves["LRP"]["correct"][k] <= curves[m]["correct"][k] for m in paper))
    lrp_right = sum(
        1 for k in steps if all(curves["LRP"]["misclassified"][k] >= curves[m]["misclassified"][k] for m in paper)
    )
    lrp_vs_cons = "LRP" if area["correct"]["LRP"] <= area["correct"]["LRP_cons"] else "LRP_cons"
    lrp_vs_cons_r = "LRP" if area["misclassified"]["LRP"] >= area["misclassified"]["LRP_cons"] else "LRP_cons"
    return [
        ("steepest decline, correctly classified (paper's methods)", "LRP", steep_left),
        ("steepest incline, misclassified (paper's methods)", "LRP", steep_right),
        ("deletion counts at which LRP is the steepest of the paper's methods (correct / misclassified)",
         "n/a", f"{lrp_left} of {len(sa) - 1} / {lrp_right} of {len(sa) - 1}"),
        ("steepest decline, correctly classified (all methods)", "n/a", all_left),
        ("steepest incline, misclassified (all methods)", "n/a", all_right),
        ("better of LRP and LRP_cons (correct / misclassified)", "LRP / LRP", f"{lrp_vs_cons} / {lrp_vs_cons_r}"),
        ("SA below random on the misclassified side", "yes",
         f"at {len(below)} of {len(sa) - 1} deletion counts" + (f" ({', '.join(map(str, below))})" if below else "")),
    ]


def _deletion_markdown(result: Mapping[str, Any]) -> str:
    curves = result["curves"]
    lines = [
        "# Word deletion (Arras et al. 2017, Fig. 3)",
        "",
        f"Model `{result['model']}` on the {result['sentences']} SST test sentences of at least {MIN_WORDS} words "
        f"(paper: {PAPER_COUNTS[1]}): {result['correct']} correctly classified, {result['misclassified']} "
        "misclassified. Relevance for the true class; a deleted word's embedding is set to zero. Accuracy in %; "
        f"random: mean ± sample standard deviation over {RANDOM_RUNS} seeded runs.",
        "",
        "## Correctly classified sentences: most relevant words deleted first (lower is better)",
        "",
        *_deletion_rows(curves, "correct"),
        "",
        "## Misclassified sentences: least relevant words deleted first (higher is better)",
        "",
        *_deletion_rows(curves, "misclassified"),
        "",
        "## Findings compared with the paper",
        "",
        "Steepness is the mean accuracy after 1 to 5 deletions (lowest on the correct side, highest on the "
        "misclassified side).",
        "",
        "| claim | paper | ours |",
        "|---|---|---|",
        *[f"| {claim} | {paper} | {ours} |" for claim, paper, ours in result["findings"]],
    ]
    return "\n".join(lines)


def _word_rows(words: Sequence[Mapping[str, Any]], with_sentence: bool) -> List[str]:
    rows = []
    for rank, word in enumerate(words, 1):
        name = markdown_cell(word["word"]) + ("" if word["known"] else " (unk)")
        where = f" | {word['sentence']}" if with_sentence else ""
        rows.append(f"| {rank} | {name} | {word['relevance']:.4g} | {word['count']}{where} |")
    return rows


def _table1_markdown(result: Mapping[str, Any]) -> str:
    lines = [
        "# Representative words for \"very positive\" (Arras et al. 2017, Table 1)",
        "",
        f"Relevance for class {TABLE1_CLASS} (very positive) on all {result['test_sentences']} SST test sentences. "
        "Occurrence ranking (the paper's): every occurrence of a word has its own relevance; occurrences are sorted "
        "and the first 10 distinct words are listed with their most extreme occurrence. count: occurrences in the "
        "test set; sentence: the test sentence (0-based, file order) of the listed occurrence; (unk): not in the "
        "model's vocabulary, read as `<unk>`.",
        "",
    ]
    for ranking, title, with_sentence in (
        ("occurrence", "occurrence ranking", True),
        ("mean", f"mean relevance over all occurrences (words occurring at least {TABLE1_MIN_COUNT} times)", False),
    ):
        for method in ("SA", "LRP"):
            for side in ("most", "least"):
                label = "relevance" if ranking == "occurrence" else "mean relevance"
                head = f"| rank | word | {label} | count |" + (" sentence |" if with_sentence else "")
                lines += [
                    f"## {method}, {side} relevant, {title}",
                    "",
                    head,
                    "|---" * (5 if with_sentence else 4) + "|",
                    *_word_rows(result[ranking][method][side], with_sentence),
                    "",
                ]
    amp = result["lrp_amplification"]
    lines += [
        "## How far LRP's word relevances are from the score",
        "",
        f"With bias_factor 0 the bias and the stabilizer absorb the difference between the score f and the summed "
        f"relevance; dividing by near-zero pre-activations (epsilon = 0.001) can amplify relevances far beyond the "
        f"score. For class {TABLE1_CLASS}: the summed word relevance differs from the score by more than the score's "
        f"magnitude in {amp['sentences_off_by_more_than_score']} of {result['test_sentences']} sentences; the median "
        f"ratio max word relevance / score is {amp['median_max_relevance_over_score']:.3g}; the largest word relevance "
        f"is {amp['largest_word_relevance']:.4g} (sentence {amp['largest_sentence']}, score "
        f"{amp['largest_sentence_score']:.4g}). The occurrence ranking is led by such sentences; the mean ranking "
        "is less sensitive to them.",
        "",
        "## Paper's Table 1 (for comparison)",
        "",
        "| SA most | SA least | LRP most | LRP least |",
        "|---|---|---|---|",
        *[f"| {' | '.join(markdown_cell(w) for w in row)} |" for row in PAPER_TABLE1],
    ]
    return "\n".join(lines)




def _examples_markdown(result: Mapping[str, Any]) -> str:
    names = SST_FINE_CLASS_NAMES
    lines = [
        "# Example sentences (Arras et al. 2017, Figures 1-2)",
        "",
        "The paper's 21 sentences, found in our SST test set (lowercased words; loose matches need a similarity of "
        "at least 0.8). Relevance for the true class; heatmaps in `heatmaps.html`, `fig1_sa.png` and "
        "`fig2_lrp.png`. Top words: the two words with the highest relevance.",
        "",
        "| no. | sentence | similarity | true | predicted (paper) | predicted (ours) | p | LRP top words | "
        "SA top words |",
        "|---" * 9 + "|",
    ]
    for row in result["examples"]:
        paper_prediction = names[row["paper_prediction"]]
        if row["sentence"] is None:
            lines.append(f"| {row['number']} | not found | {row['similarity']:.2f} | {names[row['true_class']]} | "
                         f"{paper_prediction} | n/a | n/a | n/a | n/a |")
            continue
        lrp_top = ", ".join(markdown_cell(w) for w in row["top_words"]["LRP"])
        sa_top = ", ".join(markdown_cell(w) for w in row["top_words"]["SA"])
        true = names[row["label"]]
        if row["label"] != row["true_class"]:
            true += f" (paper: {names[row['true_class']]})"
        lines.append(
            f"| {row['number']} | {row['sentence']} | {row['similarity']:.2f} | {true} | "
            f"{paper_prediction} | {names[row['predicted']]} | {row['probability']:.2f} | {lrp_top} | {sa_top} |"
        )
    missing = [str(row["number"]) for row in result["examples"] if row["sentence"] is None]
    lines += [
        "",
        f"Not found: {', '.join(missing) if missing else 'none'}.",
        "",
        "## Signs of LRP relevance the paper points out (Sec. 4.1)",
        "",
        "Negators followed by a negative word get negative relevance for \"very negative\", followed by a positive "
        "word positive relevance; in the misclassified examples 11, 17 and 21 the words speaking against the true "
        "class get negative relevance. Ours: the LRP relevance of each occurrence of the word.",
        "",
        "| no. | word | paper | ours | agrees |",
        "|---|---|---|---|---|",
    ]
    for claim in result["word_signs"]:
        values = ", ".join(f"{v:+.3g}" for v in claim["relevance"]) or "n/a"
        lines.append(f"| {claim['number']} | {markdown_cell(claim['word'])} | {'+' if claim['sign'] > 0 else '-'} | "
                     f"{values} | {claim['agrees']} |")
    return "\n".join(lines)




def _deletion_figure(curves: Mapping[str, Mapping[str, Any]]) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    titles = {"correct": "initially correct: most relevant first", "misclassified": "initially wrong: least "
              "relevant first"}
    for column, side in enumerate(("correct", "misclassified")):
        ax = fig.add_subplot(1, 2, column + 1)
        for method, curve in curves.items():
            values = [100 * v for v in curve[side]]
            steps = list(range(len(values)))
            style: Dict[str, Any] = {"linestyle": "--", "color": "0.4"} if method == "random" else {"marker": "o"}
            ax.plot(steps, values, label=method, **style)
            if method == "random":
                spread = [100 * s for s in curve[side + "_std"]]
                ax.fill_between(steps, [v - s for v, s in zip(values, spread)],
                                [v + s for v, s in zip(values, spread)], color="0.8")
        ax.set_xlabel("words deleted")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(titles[side])
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def _heatmap_figure(rows: Sequence[Tuple[Sequence[str], Tensor, str]], title: str) -> Any:
    from matplotlib.figure import Figure

    height = 0.45 + 0.62 * len(rows)
    fig = Figure(figsize=(17, height))
    fig.text(0.01, 1 - 0.12 / height, title, va="top", fontsize=12, weight="bold")
    for row, (tokens, scores, label) in enumerate(rows):
        top = 0.45 + 0.62 * row + 0.25
        ax = fig.add_axes((0.01, 1 - (top + 0.3) / height, 0.98, 0.3 / height))
        plot_token_heatmap(tokens, scores, ax=ax, title=label)
    return fig


# ------------------------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------------------------


def _top_words(tokens: Sequence[str], scores: Tensor, count: int = 2) -> List[str]:
    order = torch.argsort(-scores[: len(tokens)], stable=True)[:count]
    return [tokens[i] for i in order.tolist()]


def run_arras2017(
    out: PathLike,
    data_root: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
    command: Optional[str] = None,
) -> List[str]:
    """Run the reproduction and write its results to ``out``.

    Files: ``deletion.md``, ``table1.md``, ``examples.md``, ``results.json`` (every number), ``deletion.png``,
    ``fig1_sa.png``, ``fig2_lrp.png`` and ``heatmaps.html``, each opening with the run's provenance.

    Args:
        out: the results directory.
        data_root: the data directory holding ``sst/test.txt``.
        cache_dir: the model cache holding ``bilstm-sst5.pt`` (it is not trained here).
        command: the command line to record (default: ``captum-text-ext benchmark arras2017 --out OUT``).

    Returns:
        The summary lines the command prints (the same numbers as the files).

    Raises:
        FileNotFoundError: when the model or the data is missing.
        ValueError: when the test set does not have :data:`EXPECTED_COUNTS` sentences.
    """
    out = Path(out)
    command = command or shlex.join(["captum-text-ext", "benchmark", "arras2017", "--out", str(out)])
    with RunRecorder(command=command, seeds={"random_deletion_first_seed": 0}, torch_threads=1) as run:
        result = _compute(run, data_root, cache_dir)
    return _write(out, run.provenance, result)


def _compute(run: RunRecorder, data_root: Optional[PathLike], cache_dir: Optional[PathLike]) -> Dict[str, Any]:
    model, vocabulary = load_zoo_lstm(MODEL, cache_dir)
    record_checkpoint(run, "checkpoint", checkpoint_path(MODEL, cache_dir))
    run.record_file("sst/test.txt", find_dataset_file("sst", "test.txt", data_root))
    trees = load_sst("test", data_root)
    tokens = [tuple(token.lower() for token in tree.tokens) for tree in trees]
    labels = [tree.label for tree in trees]
    long_ones = [i for i, words in enumerate(tokens) if len(words) >= MIN_WORDS]
    if (len(trees), len(long_ones)) != EXPECTED_COUNTS:
        raise ValueError(
            f"Expected the SST test split to hold {EXPECTED_COUNTS[0]} sentences, {EXPECTED_COUNTS[1]} of them of at "
            f"least {MIN_WORDS} words, but got {len(trees)} and {len(long_ones)}"
        )
    forward = model.forward_embeddings
    ids = [vocabulary.encode(words) for words in tokens]
    every = embed_sentences(model.embedding, ids, labels, vocabulary.pad_index)
    long_set = embed_sentences(model.embedding, [ids[i] for i in long_ones], [labels[i] for i in long_ones],
                               vocabulary.pad_index)
    methods = {name: build(forward) for name, build in WORD_RELEVANCE.items()}

    predicted = predict(forward, long_set)
    correct = predicted == long_set.labels
    curves: Dict[str, Dict[str, Any]] = {}
    for name, method in methods.items():
        left, right = deletion_curves(
            forward, long_set, word_relevance(method, long_set, long_set.labels), MAX_DELETIONS
        )
        curves[name] = {"correct": left.tolist(), "misclassified": right.tolist()}
    random_left, random_right = [], []
    for seed in range(RANDOM_RUNS):
        generator = torch.Generator().manual_seed(seed)
        scores = torch.rand(len(long_set), long_set.max_length, generator=generator, dtype=torch.float64)
        left, right = deletion_curves(forward, long_set, scores, MAX_DELETIONS)
        random_left.append(left)
        random_right.append(right)
    lefts, rights = torch.stack(random_left), torch.stack(random_right)
    curves["random"] = {
        "correct": lefts.mean(0).tolist(), "correct_std": lefts.std(0).tolist(),
        "misclassified": rights.mean(0).tolist(), "misclassified_std": rights.std(0).tolist(),
    }

    all_predicted = predict(forward, every)
    table_targets = torch.full((len(every),), TABLE1_CLASS, dtype=torch.long)
    table: Dict[str, Dict[str, Any]] = {"occurrence": {}, "mean": {}}
    table_relevance = {name: word_relevance(methods[name], every, table_targets) for name in ("SA", "LRP")}
    amplification = _amplification(table_relevance["LRP"], target_scores(forward, every, table_targets))
    rankings = (("occurrence", most_relevant_words),
                ("mean", functools.partial(mean_relevance_words, min_count=TABLE1_MIN_COUNT)))
    for name, relevance in table_relevance.items():
        for ranking, rank in rankings:
            table[ranking][name] = {
                side: [dataclasses.asdict(w) for w in rank(tokens, relevance, vocabulary.stoi, most=side == "most")]
                for side in ("most", "least")
            }

    examples = _explain_examples(forward, methods, tokens, labels, ids, vocabulary.pad_index, model)
    word_signs = [_word_sign(examples, number, word, sign) for number, word, sign in PAPER_WORD_SIGNS]
    result: Dict[str, Any] = {
        "model": MODEL,
        "test_sentences": len(trees),
        "test_accuracy": float((all_predicted == every.labels).double().mean()),
        "sentences": len(long_set),
        "correct": int(correct.sum()),
        "misclassified": int((~correct).sum()),
        "curves": curves,
        "occurrence": table["occurrence"],
        "mean": table["mean"],
        "lrp_amplification": amplification,
        "examples": examples,
        "word_signs": word_signs,
    }
    result["findings"] = _findings(curves)
    return result


def _explain_examples(
    forward: Forward,
    methods: Mapping[str, WordRelevanceFn],
    tokens: Sequence[Tuple[str, ...]],
    labels: Sequence[int],
    ids: Sequence[Sequence[int]],
    pad_index: int,
    model: LSTMClassifier,
) -> List[Dict[str, Any]]:
    matches = find_examples(PAPER_EXAMPLES, tokens)
    found = [m.sentence for m in matches if m.sentence is not None]
    rows: List[Dict[str, Any]] = []
    relevance: Dict[str, Tensor] = {}
    probabilities = torch.empty(0, len(SST_FINE_CLASS_NAMES))
    if found:
        subset = embed_sentences(model.embedding, [ids[i] for i in found], [labels[i] for i in found], pad_index)
        relevance = {name: word_relevance(methods[name], subset, subset.labels) for name in ("LRP", "SA")}
        probabilities = torch.zeros(len(found), len(SST_FINE_CLASS_NAMES))
        with torch.no_grad():
            for batch in subset.batches:
                probabilities[batch.index] = forward(batch.embeddings, batch.lengths).softmax(-1)
    position = 0
    for match in matches:
        row: Dict[str, Any] = {**dataclasses.asdict(match.example), "sentence": match.sentence,
                               "similarity": match.similarity}
        if match.sentence is not None:
            words = list(tokens[match.sentence])
            row.update(
                words=words,
                label=labels[match.sentence],
                predicted=int(probabilities[position].argmax()),
                probability=float(probabilities[position].max()),
                relevance={name: relevance[name][position, : len(words)].tolist() for name in ("LRP", "SA")},
                top_words={name: _top_words(words, relevance[name][position]) for name in ("LRP", "SA")},
            )
            position += 1
        rows.append(row)
    return rows


def _amplification(relevance: Tensor, scores: Tensor) -> Dict[str, Any]:
    """How far the word relevances are from the score (see ``table1.md``)."""
    off = (relevance.sum(1) - scores).abs() > scores.abs()
    largest = relevance.abs().amax(1)
    sentence = int(largest.argmax())
    return {
        "sentences_off_by_more_than_score": int(off.sum()),
        "median_max_relevance_over_score": float((largest / scores.abs()).median()),
        "largest_word_relevance": float(relevance.flatten()[relevance.abs().argmax()]),
        "largest_sentence": sentence,
        "largest_sentence_score": float(scores[sentence]),
    }


def _word_sign(examples: Sequence[Mapping[str, Any]], number: int, word: str, sign: int) -> Dict[str, Any]:
    """The LRP relevance of ``word`` in paper example ``number``; ``agrees`` is "yes" when every occurrence has the
    paper's ``sign``, "no" when none has, "partly" otherwise, "n/a" when the example was not found."""
    row = examples[number - 1]
    values: List[float] = []
    if row["sentence"] is not None:
        values = [r for w, r in zip(row["words"], row["relevance"]["LRP"]) if w == word]
    hits = sum(1 for v in values if v * sign > 0)
    agrees = "n/a" if not values else "yes" if hits == len(values) else "no" if hits == 0 else "partly"
    return {"number": number, "word": word, "sign": sign, "relevance": values, "agrees": agrees}


def _write(out: Path, provenance: Provenance, result: Dict[str, Any]) -> List[str]:
    out.mkdir(parents=True, exist_ok=True)
    write_markdown(out / "deletion.md", provenance, _deletion_markdown(result))
    write_markdown(out / "table1.md", provenance, _table1_markdown(result))
    write_markdown(out / "examples.md", provenance, _examples_markdown(result))
    write_json(out / "results.json", provenance, result)
    save_png(_deletion_figure(result["curves"]), out / "deletion.png", metadata=png_metadata(provenance))

    names = SST_FINE_CLASS_NAMES
    records: List[TextAttribution] = []
    figure_rows: Dict[str, List[Tuple[Sequence[str], Tensor, str]]] = {"SA": [], "LRP": []}
    for row in result["examples"]:
        if row["sentence"] is None:
            continue
        label = (f"{row['number']}. true: {names[row['label']]}, predicted: {names[row['predicted']]} "
                 f"(paper: {names[row['paper_prediction']]})")
        for method in ("LRP", "SA"):
            scores = torch.tensor(row["relevance"][method])
            records.append(TextAttribution(row["words"], scores, method, names[row["label"]],
                                           names[row["predicted"]], row["probability"], names[row["label"]]))
            figure_rows[method].append((row["words"], scores, label))
    if records:
        preamble = ("<p>Arras et al. (2017), Figures 1-2: the paper's example sentences in its order (sentences not "
                    "found are left out; see examples.md). Target: the true class.</p>")
        write_html(out / "heatmaps.html", provenance,
                   render_html(records, title="Arras et al. 2017, Figures 1-2: LRP and SA", preamble=preamble))
        for method, name in (("SA", "fig1_sa.png"), ("LRP", "fig2_lrp.png")):
            figure = _heatmap_figure(figure_rows[method], f"{method} relevance for the true class (bilstm-sst5)")
            save_png(figure, out / name, metadata=png_metadata(provenance))
    return _summary(out, result)


def _summary(out: Path, result: Mapping[str, Any]) -> List[str]:
    curves = result["curves"]
    lines = [
        f"arras2017: {result['model']}: test accuracy {100 * result['test_accuracy']:.1f}% on "
        f"{result['test_sentences']} sentences; {result['sentences']} sentences of >= {MIN_WORDS} words "
        f"(paper: {PAPER_COUNTS[1]}): {result['correct']} correct, {result['misclassified']} misclassified",
    ]
    for side in ("correct", "misclassified"):
        lines.append(f"word deletion, {side} side, accuracy (%) after 0..{MAX_DELETIONS} deletions:")
        for method, curve in curves.items():
            values = " ".join(_percent(v) for v in curve[side])
            spread = ""
            if method == "random":
                spread = " (std " + " ".join(_percent(s) for s in curve[side + "_std"]) + ")"
            lines.append(f"  {method:<17} {values}{spread}")
    for claim, paper, ours in result["findings"]:
        lines.append(f"finding: {claim}: paper {paper}, ours {ours}")
    for method in ("SA", "LRP"):
        for side in ("most", "least"):
            words = ", ".join(w["word"] for w in result["occurrence"][method][side])
            lines.append(f"table 1, {method} {side} relevant: {words}")
    agree = sum(1 for claim in result["word_signs"] if claim["agrees"] == "yes")
    lines.append(f"examples: LRP signs the paper points out: {agree} of {len(result['word_signs'])} agree")
    missing = [str(row["number"]) for row in result["examples"] if row["sentence"] is None]
    lines.append(f"examples: {len(result['examples']) - len(missing)} of {len(result['examples'])} found"
                 + (f" (not found: {', '.join(missing)})" if missing else ""))
    lines.append(f"wrote {out}/{{deletion,table1,examples}}.md, results.json, deletion.png, fig1_sa.png, "
                 "fig2_lrp.png, heatmaps.html")
    return lines
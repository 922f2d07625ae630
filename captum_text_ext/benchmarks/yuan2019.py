r"""Reproduction of Yuan et al. (2019): ``captum-text-ext benchmark yuan2019``.

- **Table 3**: the test accuracies of our CNNs (``textcnn-mr``, ``textcnn-agnews``; the paper's models used
  pretrained word2vec vectors and 120k AG training rows, ours train embeddings from scratch on the offline splits).
- **Table 4**: the matching rate on the whole MR and AG News test sets (as the paper: 0.934 and 0.843) with 3
  locations × 5 neighbours of the first convolution, and, as a baseline, the matching rate of the same number of
  words drawn uniformly from the vocabulary (special tokens excluded, seeded). A row the paper does not have: the
  Kim (2014) CNN of Captum's tutorials trained on MR (``kimcnn-mr``, its width-3 ``nn.Conv2d``,
  :data:`KIM_SETTINGS`), which ``--models kimcnn-mr`` computes alone (:func:`run_yuan2019`).
- **Figures 2–5**: the paper's four example sentences (found in our data by their key words: the MR ones are
  tokenized differently there), as PNG and one HTML page.

Settings: the paper's (:data:`SETTINGS`): the first convolution's ReLU output, Adam with lr 2e-4 and β = (0.9,
0.999), λ₁ = 0.004 / λ₂ = 0.02 for MR and 0.002 / 0.01 for AG News, seed 0, and this package's convergence criterion
(:class:`~captum_text_ext.HiddenUnitOptimization`) with its defaults. float32, one torch thread.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_text_ext.attr import HiddenUnitOptimization
from captum_text_ext.benchmarks.markdown import markdown_cell
from captum_text_ext.datasets import TextCollator, Vocabulary
from captum_text_ext.datasets._paths import PathLike
from torch import nn

from captum_text_ext.models import KimCNN, TextCNN
from captum_text_ext.models.checkpoints import record_checkpoint
from captum_text_ext.models.zoo import ZOO, checkpoint_path, evaluate, load_zoo_model
from captum_text_ext.models.zoo_data import Pair, ZooData, load_zoo_data, zoo_data_files
from captum_text_ext.provenance import Provenance, RunRecorder, png_metadata, write_json, write_markdown

__all__ = [
    "EXAMPLES",
    "KIM_SETTINGS",
    "PAPER",
    "ROWS",
    "SETTINGS",
    "TABLE4_SENTENCES",
    "find_example",
    "lengths_of",
    "load_kimcnn",
    "load_textcnn",
    "make_kim_optimizer",
    "make_optimizer",
    "random_words_rate",
    "run_yuan2019",
    "table_row",
    "token_batch",
]

SETTINGS: Dict[str, Dict[str, Any]] = {
    "mr": {"model": "textcnn-mr", "lambda1": 0.004, "lambda2": 0.02, "lr": 2e-4, "seed": 0},
    "ag_news": {"model": "textcnn-agnews", "lambda1": 0.002, "lambda2": 0.01, "lr": 2e-4, "seed": 0},
}
"""The paper's settings per dataset."""

KIM_SETTINGS: Dict[str, Any] = {"model": "kimcnn-mr", "layer": "convs[0]", "location_dim": 2, "lambda1": 0.004,
                                "lambda2": 0.02, "lr": 2e-4, "seed": 0}
"""The Kim CNN row: the MR settings of the paper, on the first (width-3) ``nn.Conv2d`` of the model's ``convs``,
whose output :math:`(N, 100, L, 1)` has its locations in dimension 2."""

ROWS: Dict[str, str] = {"textcnn-mr": "mr", "textcnn-agnews": "ag_news", "kimcnn-mr": "mr"}
"""The rows of Tables 3 and 4: zoo model → dataset."""

PAPER = {"mr": {"accuracy": 0.7996, "matching_rate": 0.934, "goal": 0.90},
         "ag_news": {"accuracy": 0.9205, "matching_rate": 0.843, "goal": 0.80}}
"""Table 3 and Table 4 of the paper, and this package's goal for the matching rate."""

EXAMPLES: Tuple[Tuple[str, str, Tuple[str, ...]], ...] = (
    ("Figure 2", "mr", ("stallion", "cimarron", "winner")),
    ("Figure 3", "mr", ("conversations", "comic", "simpsons")),
    ("Figure 4", "ag_news", ("ridiculously", "biceps", "cornerback")),
    ("Figure 5", "ag_news", ("propulsion", "ganymede", "jupiter")),
)
"""The paper's example sentences, by figure, dataset and the words that find them (lowercased)."""

N_LOCATIONS, N_NEIGHBORS = 3, 5
TABLE4_SENTENCES: Optional[int] = None
"""Table 4 reads the first this many test sentences of each dataset; ``None``: all of them, as the paper."""


def load_textcnn(
    dataset: str, run: RunRecorder, data_root: Optional[PathLike], cache_dir: Optional[PathLike]
) -> Tuple[TextCNN, Vocabulary, ZooData]:
    """The zoo CNN of ``dataset`` (trained with the zoo's seed when missing), its vocabulary and data; the checkpoint
    and data files are recorded in ``run``."""
    name = SETTINGS[dataset]["model"]
    checkpoint = load_zoo_model(name, cache_dir, root=data_root, progress=False)
    if not isinstance(checkpoint.model, TextCNN):
        raise ValueError(f"Expected {name} to hold a TextCNN, but its checkpoint holds {type(checkpoint.model).__name__}")
    record_checkpoint(run, f"checkpoint {name}", checkpoint_path(name, cache_dir))
    for label, path in zoo_data_files(dataset, data_root):
        run.record_file(label, path)
    return checkpoint.model.float().eval(), checkpoint.word_vocabulary, load_zoo_data(dataset, data_root)


def load_kimcnn(
    run: RunRecorder, data_root: Optional[PathLike], cache_dir: Optional[PathLike]
) -> Tuple[KimCNN, Vocabulary, ZooData]:
    """The zoo's ``kimcnn-mr`` (trained with the zoo's seed when missing), its vocabulary and the MR data; the
    checkpoint and data files are recorded in ``run``."""
    name = KIM_SETTINGS["model"]
    checkpoint = load_zoo_model(name, cache_dir, root=data_root, progress=False)
    if not isinstance(checkpoint.model, KimCNN):
        raise ValueError(f"Expected {name} to hold a KimCNN, but its checkpoint holds {type(checkpoint.model).__name__}")
    record_checkpoint(run, f"checkpoint {name}", checkpoint_path(name, cache_dir))
    for label, path in zoo_data_files("mr", data_root):
        run.record_file(label, path)
    return checkpoint.model.float().eval(), checkpoint.word_vocabulary, load_zoo_data("mr", data_root)


def make_kim_optimizer(model: KimCNN, vocabulary: Vocabulary) -> HiddenUnitOptimization:
    """:class:`~captum_text_ext.HiddenUnitOptimization` of the Kim CNN's first convolution (:data:`KIM_SETTINGS`)."""
    return HiddenUnitOptimization(
        model, model.convs[0], model.embedding, vocabulary, lambda1=KIM_SETTINGS["lambda1"],
        lambda2=KIM_SETTINGS["lambda2"], lr=KIM_SETTINGS["lr"], seed=KIM_SETTINGS["seed"],
        location_dim=KIM_SETTINGS["location_dim"],
    )


def make_optimizer(model: TextCNN, vocabulary: Vocabulary, dataset: str) -> HiddenUnitOptimization:
    """:class:`~captum_text_ext.HiddenUnitOptimization` of the first convolution with the paper's settings."""
    settings = SETTINGS[dataset]
    return HiddenUnitOptimization(
        model, model.activations[0], model.embedding, vocabulary, lambda1=settings["lambda1"],
        lambda2=settings["lambda2"], lr=settings["lr"], seed=settings["seed"],
    )


def token_batch(pairs: Sequence[Pair], vocabulary: Vocabulary) -> Tuple[Tensor, Tensor]:
    """Token ids :math:`(N, T)` padded to the longest and lengths :math:`(N,)`."""
    batch = TextCollator(vocabulary)(list(pairs))
    return batch.token_ids, batch.lengths


def lengths_of(vocabulary: Vocabulary) -> Callable[[Tensor], Tensor]:
    """``ids -> lengths``: the tokens that are not padding, per row (at least 1)."""
    pad = vocabulary.pad_index

    def lengths(ids: Tensor) -> Tensor:
        return (ids != pad).sum(1).clamp(min=1)

    return lengths


def random_words_rate(
    model: nn.Module, vocabulary: Vocabulary, ids: Tensor, classes: Tensor, count: int, seed: int = 0
) -> float:
    """The baseline of Table 4: the share of sentences whose class the model also gives to ``count`` words drawn
    uniformly (with replacement) from the vocabulary, special tokens excluded."""
    generator = torch.Generator().manual_seed(seed)
    choices = torch.tensor([i for i in range(len(vocabulary)) if i not in vocabulary.special_indices])
    drawn = choices[torch.randint(len(choices), (ids.shape[0], count), generator=generator)]
    with torch.no_grad():
        predicted = model(drawn, lengths_of(vocabulary)(drawn)).argmax(1)
    return float((predicted == classes).double().mean())


def find_example(data: ZooData, keys: Sequence[str]) -> Pair:
    """The first sentence of any split whose lowercased tokens hold every key word (the paper's examples are
    tokenized differently from our data).

    Raises:
        LookupError: when no sentence holds them all.
    """
    for tokens, label in [*data.test, *data.dev, *data.train]:
        lowered = {t.lower() for t in tokens}
        if all(any(key in token for token in lowered) for key in keys):
            return tokens, label
    raise LookupError(f"Expected a sentence with the words {list(keys)} in the {data.name} data, but found none")


def run_yuan2019(
    out: PathLike,
    data_root: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
    command: Optional[str] = None,
    sentences: Optional[int] = TABLE4_SENTENCES,
    models: Optional[Sequence[str]] = None,
) -> List[str]:
    """Run the reproduction and write ``tables.md``, ``results.json``, ``figure2.png`` … ``figure5.png`` and
    ``figures.html`` to ``out``, each with the run's provenance.

    Args:
        out: the results directory.
        data_root: the data directory holding ``mr/`` and ``ag_news/``.
        cache_dir: the model cache (models are trained with the zoo's seed when missing).
        command: the command line to record.
        sentences: the first this many test sentences of each dataset for Table 4 (``None``: all; default
            :data:`TABLE4_SENTENCES`).
        models: the rows to compute (keys of :data:`ROWS`); ``None``: all of them and the figures. A subset writes
            only its rows of Tables 3 and 4, to ``rows-<model>[+<model>...].md`` and ``.json`` (``--models
            kimcnn-mr`` computes the Kim CNN's row alone, without the two Yuan CNNs and the figures).

    Returns:
        The summary lines the command prints (the same numbers as the files).

    Raises:
        ValueError: for a model that is not a row of :data:`ROWS`.
    """
    out = Path(out)
    command = command or shlex.join(["captum-text-ext", "benchmark", "yuan2019", "--out", str(out)])
    chosen = list(ROWS) if models is None else list(dict.fromkeys(models))
    unknown = [name for name in chosen if name not in ROWS]
    if unknown or not chosen:
        raise ValueError(f"Expected --models among {list(ROWS)}, but got {list(models or [])}")
    full = set(chosen) == set(ROWS)
    with RunRecorder(command=command, seeds={"optimization": 0, "random_words": 0}, torch_threads=1) as run:
        if full:
            results, figures = _compute(run, data_root, cache_dir, sentences)
        else:
            results = _header()
            results["rows"] = {name: table_row(name, run, data_root, cache_dir, sentences)[0] for name in chosen}
    if full:
        return _write(out, run.provenance, results, figures)
    return _write_rows(out, run.provenance, results, "rows-" + "+".join(chosen))


def _header() -> Dict[str, Any]:
    return {"settings": SETTINGS, "kim_settings": KIM_SETTINGS, "paper": PAPER, "n_locations": N_LOCATIONS,
            "n_neighbors": N_NEIGHBORS, "rows": {}}


def table_row(
    name: str, run: RunRecorder, data_root: Optional[PathLike], cache_dir: Optional[PathLike], sentences: Optional[int]
) -> Tuple[Dict[str, Any], ZooData, Vocabulary, nn.Module, HiddenUnitOptimization]:
    """One row of Tables 3 and 4 for the zoo model ``name``, and what computed it (data, vocabulary, model and the
    optimizer)."""
    dataset = ROWS[name]
    model: nn.Module
    if name == KIM_SETTINGS["model"]:
        model, vocabulary, data = load_kimcnn(run, data_root, cache_dir)
        hunt = make_kim_optimizer(model, vocabulary)
    else:
        model, vocabulary, data = load_textcnn(dataset, run, data_root, cache_dir)
        hunt = make_optimizer(model, vocabulary, dataset)
    accuracy, _ = evaluate(model, data, vocabulary, ZOO[name])
    test = data.test if sentences is None else data.test[:sentences]
    ids, _ = token_batch(test, vocabulary)
    matching = hunt.matching_rate(ids, N_LOCATIONS, N_NEIGHBORS, forward_args=lengths_of(vocabulary), batch_size=256)
    baseline = random_words_rate(model, vocabulary, ids, matching.classes, N_LOCATIONS * N_NEIGHBORS)
    row = {
        "model": name,
        "dataset": dataset,
        "test_accuracy": accuracy,
        "sentences": len(test),
        "matching_rate": matching.rate,
        "random_words_matching_rate": baseline,
        "majority_class_share": float(torch.bincount(matching.classes).max()) / len(test),
        "sentences_without_location": int((matching.interpretation_classes < 0).sum()),
    }
    return row, data, vocabulary, model, hunt


def _compute(
    run: RunRecorder, data_root: Optional[PathLike], cache_dir: Optional[PathLike], sentences: Optional[int]
) -> Tuple[Dict[str, Any], List[Tuple[str, Any, str]]]:
    from captum_text_ext.visualization.hidden_units import hidden_units_html, plot_hidden_units

    results = _header()
    results["examples"] = []
    figures: List[Tuple[str, Any, str]] = []
    html_parts: List[Tuple[str, Any, List[int], List[List[str]], List[str]]] = []
    for name in ROWS:
        row, data, vocabulary, model, hunt = table_row(name, run, data_root, cache_dir, sentences)
        results["rows"][name] = row
        dataset = ROWS[name]
        if name != SETTINGS[dataset]["model"]:  # the figures are the paper's CNNs'
            continue
        chosen = [(figure, find_example(data, keys)) for figure, key, keys in EXAMPLES if key == dataset]
        example_ids, example_lengths = token_batch([pair for _, pair in chosen], vocabulary)
        found = hunt.optimize(example_ids, additional_forward_args=example_lengths, n_locations=N_LOCATIONS,
                              n_neighbors=N_NEIGHBORS)
        tokens_list: List[List[str]] = []
        titles: List[str] = []
        for n, (figure, (sentence, label)) in enumerate(chosen):
            tokens = list(sentence[: int(example_lengths[n])])
            class_names = data.class_names
            title = (f"{figure}: {dataset}, label {class_names[label]}, explained class "
                     f"{class_names[int(found.classes[n])]}")
            items = found.items_of(n)
            results["examples"].append({
                "figure": figure, "dataset": dataset, "tokens": tokens, "label": class_names[label],
                "class": class_names[int(found.classes[n])],
                "locations": [{
                    "rank": int(found.rank[b]), "location": int(found.location[b]),
                    "receptive_field": found.receptive_fields[int(found.location[b])].tolist(),
                    "saliency": float(found.saliency[n, found.location[b]]),
                    "words": found.neighbors.words[b], "scores": found.neighbors.scores[b].tolist(),
                    "steps": int(found.steps[b]), "converged": bool(found.converged[b]),
                } for b in items],
            })
            embedding = model.get_submodule("embedding")
            assert isinstance(embedding, nn.Embedding)
            figures.append((f"{figure.lower().replace(' ', '')}.png",
                            plot_hidden_units(found, n, tokens, embedding.weight, title), title))
            tokens_list.append(tokens)
            titles.append(title)
        html_parts.append((dataset, found, list(range(len(chosen))), tokens_list, titles))
    pages = [hidden_units_html(found, shown, tokens, titles, "Yuan et al. (2019), Figures 2-5")
             for _, found, shown, tokens, titles in html_parts]
    bodies = [page.split("</h1>", 1)[1].rsplit("</body>", 1)[0] for page in pages]
    page = pages[0].split("</h1>", 1)[0] + "</h1>" + "".join(bodies) + "</body></html>\n"
    figures.append(("figures.html", page, "Figures 2-5"))
    return results, figures


NAMES = {"mr": "MR", "ag_news": "AG News"}


def _label(row: Dict[str, Any]) -> str:
    kind = "Kim CNN" if row["model"] == KIM_SETTINGS["model"] else "Yuan CNN"
    return f"{NAMES[row['dataset']]}, {kind} (`{row['model']}`)"


def _paper(row: Dict[str, Any], key: str) -> Optional[float]:
    """The paper's number for a row of its own CNNs (``None`` for the Kim CNN, which the paper does not have)."""
    return PAPER[row["dataset"]][key] if row["model"] == SETTINGS[row["dataset"]]["model"] else None


def _table_lines(rows: Dict[str, Dict[str, Any]]) -> List[str]:
    """Tables 3 and 4 for ``rows``."""

    def number(value: Optional[float], digits: int) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    def goal(row: Dict[str, Any]) -> str:
        target = _paper(row, "goal")
        if target is None:
            return "—"
        return f"≥ {target:.2f} ({'met' if row['matching_rate'] >= target else 'NOT met'})"

    return [
        "## Table 3: test accuracy of the CNNs",
        "",
        "| dataset, model | ours | paper (word2vec, 120k AG rows) |",
        "|---|---|---|",
        *[f"| {_label(r)} | {r['test_accuracy']:.4f} | {number(_paper(r, 'accuracy'), 4)} |" for r in rows.values()],
        "",
        "Ours train their embeddings from scratch (no pretrained vectors offline); AG News is the offline split "
        "(5320 training rows). The Kim CNN (Captum's tutorials' model, not in the paper) is explained at its first, "
        "width-3 ``nn.Conv2d``.",
        "",
        f"## Table 4: matching rate ({N_LOCATIONS} locations × {N_NEIGHBORS} neighbours, first convolution)",
        "",
        "| dataset, model | sentences | matching rate | paper | goal | random words (same count) | majority class share |",
        "|---|---|---|---|---|---|---|",
        *[f"| {_label(r)} | {r['sentences']} | **{r['matching_rate']:.3f}** | {number(_paper(r, 'matching_rate'), 3)} "
          f"| {goal(r)} | {r['random_words_matching_rate']:.3f} | {r['majority_class_share']:.3f} |"
          for r in rows.values()],
        "",
    ]


def _summary(rows: Dict[str, Dict[str, Any]]) -> List[str]:
    lines = []
    for row in rows.values():
        paper = _paper(row, "matching_rate")
        lines.append(f"yuan2019: {_label(row).replace('`', '')}: test accuracy {row['test_accuracy']:.4f}, matching "
                     f"rate {row['matching_rate']:.3f} on {row['sentences']} sentences (paper "
                     f"{'n/a' if paper is None else f'{paper:.3f}'}; random words "
                     f"{row['random_words_matching_rate']:.3f})")
    return lines


def _write_rows(out: Path, provenance: Provenance, results: Dict[str, Any], stem: str) -> List[str]:
    """The rows of a run on some of the models: ``stem.md`` and ``stem.json``."""
    lines = ["# Yuan et al. (2019): rows computed alone", "", *_table_lines(results["rows"])]
    out.mkdir(parents=True, exist_ok=True)
    write_markdown(out / f"{stem}.md", provenance, "\n".join(lines))
    write_json(out / f"{stem}.json", provenance, results)
    return [*_summary(results["rows"]), f"wrote {out / (stem + '.md')} and {out / (stem + '.json')}"]


def _write(out: Path, provenance: Provenance, results: Dict[str, Any], figures: List[Tuple[str, Any, str]]
           ) -> List[str]:
    from captum_text_ext.visualization.plot import save_png

    lines = [
        "# Yuan et al. (2019): reproduction",
        "",
        *_table_lines(results["rows"]),
        "## Figures 2–5: the paper's example sentences",
        "",
    ]
    for example in results["examples"]:
        lines.append(f"**{example['figure']}** ({example['dataset']}, label {example['label']}, explained class "
                     f"{example['class']}): {' '.join(markdown_cell(t) for t in example['tokens'])}")
        lines.append("")
        for location in example["locations"]:
            start, end = location["receptive_field"]
            lines.append(f"- location {location['location']} (rank {location['rank'] + 1}, saliency "
                         f"{location['saliency']:.3f}, field “{' '.join(markdown_cell(t) for t in example['tokens'][start:end])}”): "
                         f"{', '.join(markdown_cell(w) for w in location['words'])}")
        lines.append("")
    lines.append("Images: " + ", ".join(f"`{name}`" for name, _, _ in figures))
    out.mkdir(parents=True, exist_ok=True)
    write_markdown(out / "tables.md", provenance, "\n".join(lines))
    write_json(out / "results.json", provenance, results)
    for name, content, _ in figures:
        if name.endswith(".png"):
            save_png(content, out / name, metadata=png_metadata(provenance))
        else:
            comment = "\n".join(["<!-- provenance", *provenance.lines(), "-->"])
            (out / name).write_text(content.replace("<html>", f"<html>\n{comment}", 1), encoding="utf-8")
    summary = _summary(results["rows"])
    summary.append(f"wrote {out / 'tables.md'}, {out / 'results.json'} and {len(figures)} figures")
    return summary

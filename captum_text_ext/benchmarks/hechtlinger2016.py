r"""Reproduction of Hechtlinger (2016) on SST-2 and MR: ``captum-text-ext benchmark hechtlinger2016``.

IMDB, the paper's dataset, is not available offline; the reproduction uses the zoo models ``bow-mlp-sst2``,
``bow-mlp-mr`` (binary bag of the 5000 most frequent words, two hidden ReLU layers of 256) and ``embcnn-sst2``
(embedding 50, 250 filters of width 3), and takes an IMDB directory (``--imdb-dir``) for users who have it. All
gradients are of the positive-class probability :math:`f(x) = p(\text{positive} \mid x)`, as in the paper, unless a
row says "logit difference" (:math:`f = z_1 - z_0`, threshold 0). Surrogates are fitted on the test set (the paper
averages over :math:`X_\text{test}`), one row fitted on the training sentences.

- **Accuracies** of the models on their test sets.
- **Table 2**: the 5 words with the most positive and most negative mean derivative :math:`\bar g_j` (the padding
  and unknown-word columns, which are never set, excluded).
- **Agreement** of the surrogate's class with the model's on the test set, with the intercept and with the paper's
  rule :math:`\langle \bar g, x \rangle > 0`.
- **Why agreement is below the paper's 99.6%**: agreement against sentence length and against the model's margin
  :math:`|f(x) - 0.5|`; on longer documents made by joining :math:`m` random test sentences (the union of their
  bags, the surrogate refitted on them); and on bag-of-words MLPs trained here on SST-2 with other hidden widths
  (0 is a linear model) and regularization (dropout, weight decay). The mean cosine between each example's gradient
  and :math:`\bar g` measures how far :math:`f` is from linear over the data.
- **Table 1**: for a few test sentences, the 4 words whose gradient at the embedding has the largest
  :math:`\ell_2` norm, each with the rest of its width-3 convolution window, with ``embcnn-sst2`` (gradients of the
  log-odds, which rank words as those of the probability do; see :func:`top_expression_rows`).
- **Speed**: ``fit`` against Captum ``Saliency`` (one gradient per example, no mean) over the same test features,
  same batches of :data:`BATCH_SIZE`, one thread, the two interleaved pass by pass; goal: at least
  :data:`TARGET_RATIO` of Saliency's throughput.
"""

from __future__ import annotations

import dataclasses
import shlex
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
from captum.attr import Saliency
from torch import Tensor, nn
from torch.utils.data import DataLoader

from captum_text_ext.attr import GradientLinearSurrogate, LayerGradientLinearSurrogate
from captum_text_ext.benchmarks.markdown import markdown_cell
from captum_text_ext.datasets import BucketBatchSampler, TextCollator, Vocabulary, load_imdb, pad_sequences
from captum_text_ext.datasets._paths import PathLike
from captum_text_ext.datasets._splits import stratified_split
from captum_text_ext.models import BagOfWordsMLP, EmbeddingCNN
from captum_text_ext.models.bag_of_words import bag_of_words
from captum_text_ext.models.checkpoints import record_checkpoint
from captum_text_ext.models.training import fit as train_model
from captum_text_ext.models.zoo import ZOO, checkpoint_path, load_zoo_model
from captum_text_ext.models.zoo_data import Pair, load_zoo_data, pair_dataset, zoo_data_files
from captum_text_ext.provenance import Provenance, RunRecorder, write_json, write_markdown

__all__ = [
    "BOW_MODELS",
    "CNN_MODEL",
    "TARGET_RATIO",
    "BagOfWords",
    "agreement_report",
    "concatenated_documents",
    "encode_bags",
    "findings",
    "run_hechtlinger2016",
    "top_expression_rows",
    "train_bow_mlp",
]

BOW_MODELS = ("bow-mlp-sst2", "bow-mlp-mr")
"""The bag-of-words zoo models (Table 2, agreement)."""
CNN_MODEL = "embcnn-sst2"
"""The embedding CNN (Table 1)."""
TOP_WORDS = 5
"""Words per side of Table 2."""
EXPRESSIONS = 4
"""Expressions per sentence in Table 1 (the paper shows four)."""
WINDOW = 3
"""Words per expression: the convolution's width."""
TABLE1_SENTENCES = 3
"""Sentences per class in Table 1: the first correctly classified test sentences of at least TABLE1_MIN_WORDS."""
TABLE1_MIN_WORDS = 20
"""Table 1 uses sentences of at least this many words."""
LENGTH_BINS = ((1, 10), (11, 20), (21, 30), (31, 10_000))
"""Sentence length bins (words, inclusive)."""
MARGIN_BINS = ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5))
r""":math:`|f(x) - 0.5|` bins (the last includes 0.5)."""
DOCUMENT_PARTS = (1, 2, 4, 8, 16)
"""Test sentences joined into one document."""
SWEEP_WIDTHS = (0, 16, 64, 256, 512)
"""Hidden widths of the sweep (two hidden layers of this width, dropout 0.5; 0: a linear model, no dropout)."""
SWEEP_REGULARIZATION = ((0.0, 0.0), (0.0, 1e-4), (0.5, 1e-4), (0.5, 1e-3))
"""(dropout, weight decay) of the sweep at width 256 (dropout 0.5 without weight decay is in the width sweep)."""
SWEEP_EPOCHS = 6
"""At most this many epochs per sweep model (early stopping on dev accuracy, patience 2)."""
BATCH_SIZE = 256
"""Examples per batch for fit, Saliency and agreement."""
REPEATS = 7
"""Timed passes of fit and of Saliency."""
TARGET_RATIO = 0.9
"""fit must reach this fraction of Saliency's throughput."""
SEED = 0
"""Seeds the sweep's training and the documents' sentence draws."""


@dataclasses.dataclass(frozen=True)
class BagOfWords:
    """A dataset as binary bags of words.

    Attributes:
        features: :math:`(N, D)` in the model's dtype.
        lengths: :math:`(N,)` words per text.
        labels: :math:`(N,)` true classes.
    """

    features: Tensor
    lengths: Tensor
    labels: Tensor


def encode_bags(model: BagOfWordsMLP, vocabulary: Vocabulary, pairs: Sequence[Pair]) -> BagOfWords:
    """The :func:`~captum_text_ext.models.bag_of_words.bag_of_words` features of ``(tokens, label)`` pairs."""
    ids, lengths = pad_sequences([vocabulary.encode(tokens) for tokens, _ in pairs], vocabulary.pad_index)
    dtype = model.output.weight.dtype
    features = bag_of_words(ids, lengths, model.vocab_size, model.ignore_ids, dtype=dtype)
    return BagOfWords(features, lengths, torch.tensor([label for _, label in pairs]))


def _probability(model: BagOfWordsMLP) -> Callable[[Tensor], Tensor]:
    def probability(features: Tensor) -> Tensor:
        return model.forward_features(features).softmax(-1)

    return probability


def _logit_difference(model: BagOfWordsMLP) -> Callable[[Tensor], Tensor]:
    def difference(features: Tensor) -> Tensor:
        logits = model.forward_features(features)
        return logits[:, 1] - logits[:, 0]

    return difference


def _fraction(mask: Tensor) -> float:
    return float(mask.double().mean()) if mask.numel() else float("nan")


def agreement_report(model: BagOfWordsMLP, bags: BagOfWords) -> Dict[str, Any]:
    r"""Fit the surrogates of :math:`p(\text{positive})` (threshold 0.5) and of the logit difference (threshold 0)
    on ``bags`` and measure their agreement with the model, overall, by sentence length and by margin.

    Returns:
        A JSON-ready dict: ``agreement`` (probability / logit difference, with / without intercept),
        ``by_length`` and ``by_margin`` rows (count, agreement with and without intercept), ``near_boundary`` (the
        fraction with margin below 0.1), ``mean_cosine`` (mean cosine between :math:`\nabla f(x)` and
        :math:`\bar g`) and the fitted surrogate of the probability under ``surrogate`` (not JSON; popped by the
        caller).
    """
    x = bags.features
    probability = GradientLinearSurrogate(_probability(model)).fit(x, target=1, threshold=0.5, batch_size=BATCH_SIZE)
    paper = GradientLinearSurrogate(_probability(model)).fit(x, target=1, threshold=0.5, fit_intercept=False,
                                                             batch_size=BATCH_SIZE)
    difference = GradientLinearSurrogate(_logit_difference(model)).fit(x, batch_size=BATCH_SIZE)
    difference_paper = GradientLinearSurrogate(_logit_difference(model)).fit(x, fit_intercept=False,
                                                                             batch_size=BATCH_SIZE)
    with torch.no_grad():
        p = _probability(model)(x)[:, 1]
    model_class = (p > 0.5).long()
    same = probability.predict(x) == model_class
    same_paper = paper.predict(x) == model_class
    margin = (p - 0.5).abs()
    cosines = torch.cat([
        nn.functional.cosine_similarity(probability.attribute(x[s : s + BATCH_SIZE], target=1),
                                        probability.coef_.unsqueeze(0), dim=1)
        for s in range(0, len(x), BATCH_SIZE)
    ])

    def row(mask: Tensor, **key: Any) -> Dict[str, Any]:
        return {**key, "count": int(mask.sum()), "with_intercept": _fraction(same[mask]),
                "without_intercept": _fraction(same_paper[mask])}

    return {
        "examples": len(x),
        "mean_words": float(bags.lengths.double().mean()),
        "agreement": {
            "probability_with_intercept": _fraction(same),
            "probability_without_intercept": _fraction(same_paper),
            "logit_difference_with_intercept": difference.agreement(x, batch_size=BATCH_SIZE),
            "logit_difference_without_intercept": difference_paper.agreement(x, batch_size=BATCH_SIZE),
        },
        "disagreements": int((~same).sum()),
        "intercept": float(probability.intercept_),
        "by_length": [row((bags.lengths >= lo) & (bags.lengths <= hi), words=[lo, hi]) for lo, hi in LENGTH_BINS],
        "by_margin": [row((margin >= lo) & ((margin < hi) | (hi == 0.5)), margin=[lo, hi]) for lo, hi in MARGIN_BINS],
        "near_boundary": _fraction(margin < 0.1),
        "mean_cosine": float(cosines.mean()),
        "surrogate": probability,
    }


def concatenated_documents(bags: BagOfWords, parts: int, seed: int = SEED) -> BagOfWords:
    """As many documents as ``bags`` has texts, each the union of ``parts`` texts drawn at random (with
    replacement, seeded); labels are those of the first text (unused by agreement)."""
    generator = torch.Generator().manual_seed(seed + parts)
    draw = torch.randint(0, len(bags.features), (len(bags.features), parts), generator=generator)
    features = bags.features[draw].amax(1)
    return BagOfWords(features, bags.lengths[draw].sum(1), bags.labels[draw[:, 0]])


def _batches(pairs: Sequence[Pair], vocabulary: Vocabulary, shuffle: bool) -> DataLoader[Pair]:
    sampler = BucketBatchSampler([len(tokens) for tokens, _ in pairs], 64, shuffle=shuffle, seed=SEED)
    return DataLoader(pair_dataset(pairs), batch_sampler=sampler, collate_fn=TextCollator(vocabulary))


def train_bow_mlp(
    vocabulary: Vocabulary,
    train: Sequence[Pair],
    dev: Sequence[Pair],
    hidden_sizes: Sequence[int],
    dropout: float,
    weight_decay: float,
    epochs: int = SWEEP_EPOCHS,
) -> BagOfWordsMLP:
    """A :class:`~captum_text_ext.models.BagOfWordsMLP` trained with Adam (lr :math:`10^{-3}`), early stopping on
    dev accuracy (patience 2), seed :data:`SEED`; returned in eval mode."""
    torch.manual_seed(SEED)
    model = BagOfWordsMLP(len(vocabulary), 2, hidden_sizes=hidden_sizes, dropout=dropout)
    train_model(model, _batches(train, vocabulary, True), _batches(dev, vocabulary, False), epochs=epochs,
                weight_decay=weight_decay, patience=2, seed=SEED, progress=False)
    return model.eval()


def _accuracy(model: BagOfWordsMLP, bags: BagOfWords) -> float:
    with torch.no_grad():
        return float((model.forward_features(bags.features).argmax(-1) == bags.labels).double().mean())


def _streamed_bags(model: BagOfWordsMLP, vocabulary: Vocabulary, pairs: Sequence[Pair]) -> Iterator[Tensor]:
    """The bags of ``pairs`` built batch by batch: ``fit`` never holds the whole set."""
    for start in range(0, len(pairs), BATCH_SIZE):
        yield encode_bags(model, vocabulary, pairs[start : start + BATCH_SIZE]).features


def top_expression_rows(
    model: EmbeddingCNN, vocabulary: Vocabulary, test: Sequence[Pair]
) -> List[Dict[str, Any]]:
    r"""Table 1: for the first :data:`TABLE1_SENTENCES` correctly classified test sentences of each class with at
    least :data:`TABLE1_MIN_WORDS` words, the :data:`EXPRESSIONS` words with the largest gradient norm at the
    embedding, each with the rest of its window.

    The gradient is that of the log-odds :math:`z_1 - z_0`: for two classes
    :math:`\partial p(\text{positive}) / \partial z_t = p (1 - p)\, \partial (z_1 - z_0) / \partial z_t`, one factor
    per sentence, so the ranking is the paper's (the probability's), while the norms stay readable when the model is
    confident (:math:`p (1 - p)` underflows in float32)."""
    chosen: List[int] = []
    for label in (1, 0):
        candidates = [i for i, (tokens, y) in enumerate(test) if y == label and len(tokens) >= TABLE1_MIN_WORDS]
        if not candidates:
            continue
        ids, lengths = pad_sequences([vocabulary.encode(test[i][0]) for i in candidates], vocabulary.pad_index)
        with torch.no_grad():
            correct = (model(ids, lengths).argmax(-1) == label).tolist()
        chosen += [i for i, ok in zip(candidates, correct) if ok][:TABLE1_SENTENCES]
    if not chosen:
        return []
    ids, lengths = pad_sequences([vocabulary.encode(test[i][0]) for i in chosen], vocabulary.pad_index)

    def log_odds(token_ids: Tensor, token_lengths: Tensor) -> Tensor:
        logits: Tensor = model(token_ids, token_lengths)
        return logits[:, 1] - logits[:, 0]

    surrogate = LayerGradientLinearSurrogate(log_odds, model.embedding)
    expressions = surrogate.top_expressions(ids, EXPRESSIONS, WINDOW, additional_forward_args=(lengths,),
                                            lengths=lengths)
    with torch.no_grad():
        positive = model(ids, lengths).softmax(-1)[:, 1].tolist()
    rows = []
    for row, index in enumerate(chosen):
        words = list(test[index][0])
        rows.append({
            "sentence": index,
            "label": test[index][1],
            "p_positive": positive[row],
            "words": words,
            "expressions": [{"words": [words[t] for t in e.positions], "position": e.position, "norm": e.norm}
                            for e in expressions[row]],
        })
    return rows


def _time_fit_and_saliency(model: BagOfWordsMLP, features: Tensor, repeats: int) -> Dict[str, Any]:
    """Throughput (examples/s) of ``fit`` and of Captum ``Saliency`` over the same features in the same batches,
    interleaved pass by pass (the order alternating), after one untimed pass of each."""
    probability = _probability(model)
    saliency = Saliency(probability)
    batches = [features[s : s + BATCH_SIZE].detach().requires_grad_(True) for s in range(0, len(features), BATCH_SIZE)]

    def run_fit() -> None:
        GradientLinearSurrogate(probability).fit(features, target=1, threshold=0.5, batch_size=BATCH_SIZE)

    def run_saliency() -> None:
        for batch in batches:
            saliency.attribute(batch, target=1, abs=False)

    timers = {"fit": run_fit, "Saliency": run_saliency}
    for timer in timers.values():
        timer()
    seconds: Dict[str, List[float]] = {name: [] for name in timers}
    for repeat in range(repeats):
        for name in (("fit", "Saliency") if repeat % 2 == 0 else ("Saliency", "fit")):
            started = time.perf_counter()
            timers[name]()
            seconds[name].append(time.perf_counter() - started)
    rates = {name: [len(features) / s for s in spent] for name, spent in seconds.items()}
    ratios = [f / s for f, s in zip(rates["fit"], rates["Saliency"])]
    ratio = statistics.median(ratios)
    return {
        "examples": len(features),
        "features": int(features.shape[1]),
        "batch_size": BATCH_SIZE,
        "repeats": repeats,
        "examples_per_second": {name: statistics.median(values) for name, values in rates.items()},
        "examples_per_second_per_repeat": rates,
        "ratio_fit_to_saliency": ratio,
        "ratio_per_repeat": ratios,
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
    }


def _table2(surrogate: GradientLinearSurrogate, model: BagOfWordsMLP, vocabulary: Vocabulary) -> Dict[str, Any]:
    top = surrogate.top_features(TOP_WORDS, vocabulary.itos, exclude=model.ignore_ids)
    return {side: [{"word": w.name, "mean_derivative": w.weight} for w in getattr(top, side)]
            for side in ("positive", "negative")}


def _bow_model(name: str, cache_dir: Optional[PathLike]) -> Tuple[BagOfWordsMLP, Vocabulary]:
    checkpoint = load_zoo_model(name, cache_dir, train_if_missing=False)
    if not isinstance(checkpoint.model, BagOfWordsMLP):
        raise ValueError(f"Expected {name} to hold a BagOfWordsMLP, but it holds {type(checkpoint.model).__name__}")
    return checkpoint.model.eval(), checkpoint.word_vocabulary


def _zoo_model_results(run: RunRecorder, data_root: Optional[PathLike], cache_dir: Optional[PathLike]
                       ) -> Dict[str, Any]:
    results: Dict[str, Any] = {}
    for name in BOW_MODELS:
        model, vocabulary = _bow_model(name, cache_dir)
        record_checkpoint(run, f"{name} checkpoint", checkpoint_path(name, cache_dir))
        data = load_zoo_data(ZOO[name].dataset, data_root)
        test = encode_bags(model, vocabulary, data.test)
        report = agreement_report(model, test)
        surrogate = report.pop("surrogate")
        on_train = GradientLinearSurrogate(_probability(model)).fit(
            _streamed_bags(model, vocabulary, data.train), target=1, threshold=0.5)
        documents = []
        for parts in DOCUMENT_PARTS:
            joined = agreement_report(model, concatenated_documents(test, parts))
            joined.pop("surrogate")
            documents.append({"parts": parts, "mean_words": joined["mean_words"], **joined["agreement"],
                              "near_boundary": joined["near_boundary"], "mean_cosine": joined["mean_cosine"]})
        results[name] = {
            "dataset": ZOO[name].dataset,
            "test_accuracy": _accuracy(model, test),
            "table2": _table2(surrogate, model, vocabulary),
            **report,
            "fitted_on_train_agreement_on_test": on_train.agreement(test.features),
            "documents": documents,
        }
    return results


def _sweep(data_root: Optional[PathLike], cache_dir: Optional[PathLike]) -> List[Dict[str, Any]]:
    _, vocabulary = _bow_model(BOW_MODELS[0], cache_dir)
    data = load_zoo_data("sst2", data_root)
    settings = [(width, 0.5 if width else 0.0, 0.0) for width in SWEEP_WIDTHS]
    settings += [(256, dropout, decay) for dropout, decay in SWEEP_REGULARIZATION]
    rows = []
    for width, dropout, decay in settings:
        model = train_bow_mlp(vocabulary, data.train, data.dev, [width] * 2 if width else [], dropout, decay)
        test = encode_bags(model, vocabulary, data.test)
        report = agreement_report(model, test)
        report.pop("surrogate")
        rows.append({"width": width, "dropout": dropout, "weight_decay": decay, "test_accuracy": _accuracy(model, test),
                     **report["agreement"], "near_boundary": report["near_boundary"],
                     "mean_cosine": report["mean_cosine"]})
    return rows


def _imdb(imdb_dir: PathLike) -> Dict[str, Any]:
    """Train a BoW MLP like the paper's on IMDB (5000 words, two hidden layers of 256) and measure the same."""
    train_set, test_set = load_imdb("train", imdb_dir), load_imdb("test", imdb_dir)
    lower = [(tuple(t.lower() for t in e.tokens), e.label) for e in train_set]
    test_pairs = [(tuple(t.lower() for t in e.tokens), e.label) for e in test_set]
    split = stratified_split([label for _, label in lower], [("dev", len(lower) // 10),
                                                            ("train", len(lower) - len(lower) // 10)], SEED)
    train, dev = [lower[i] for i in split["train"]], [lower[i] for i in split["dev"]]
    vocabulary = Vocabulary.build([tokens for tokens, _ in train], max_size=5000)
    model = train_bow_mlp(vocabulary, train, dev, [256, 256], 0.5, 0.0)
    test = encode_bags(model, vocabulary, test_pairs)
    report = agreement_report(model, test)
    surrogate = report.pop("surrogate")
    return {"test_accuracy": _accuracy(model, test), "table2": _table2(surrogate, model, vocabulary), **report}


def run_hechtlinger2016(
    out: PathLike,
    data_root: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
    command: Optional[str] = None,
    imdb_dir: Optional[PathLike] = None,
    repeats: int = REPEATS,
) -> List[str]:
    """Run the reproduction and write ``tables.md``, ``agreement.md``, ``table1.md``, ``speed.md`` and
    ``results.json`` (each opening with the run's provenance) to ``out``.

    Args:
        out: the results directory.
        data_root: the data directory holding ``sst/`` and ``mr/``.
        cache_dir: the model cache holding the three zoo models (they are not trained here).
        command: the command line to record (default: ``captum-text-ext benchmark hechtlinger2016 --out OUT``).
        imdb_dir: an ``aclImdb`` directory (or one holding it): also train and explain a BoW MLP on IMDB.
        repeats: timed passes of ``fit`` and ``Saliency``.

    Returns:
        The summary lines the command prints.

    Raises:
        FileNotFoundError: when a model or dataset is missing.
        ValueError: for ``repeats`` < 1.
    """
    if repeats < 1:
        raise ValueError(f"Expected `repeats` >= 1, but got {repeats}")
    out = Path(out)
    command = command or shlex.join(["captum-text-ext", "benchmark", "hechtlinger2016", "--out", str(out)])
    with RunRecorder(command=command, seeds={"sweep_and_documents": SEED}, torch_threads=1) as run:
        for dataset in sorted({ZOO[name].dataset for name in BOW_MODELS} | {"sst2"}):
            for label, path in zoo_data_files(dataset, data_root):
                run.record_file(label, path)
        result: Dict[str, Any] = {"models": _zoo_model_results(run, data_root, cache_dir)}
        result["sweep"] = _sweep(data_root, cache_dir)
        cnn = load_zoo_model(CNN_MODEL, cache_dir, train_if_missing=False)
        record_checkpoint(run, f"{CNN_MODEL} checkpoint", checkpoint_path(CNN_MODEL, cache_dir))
        cnn_model = cnn.model.eval()
        if not isinstance(cnn_model, EmbeddingCNN):
            raise ValueError(f"Expected {CNN_MODEL} to hold an EmbeddingCNN, but it holds "
                             f"{type(cnn_model).__name__}")
        sst2 = load_zoo_data("sst2", data_root)
        result["cnn_test_accuracy"] = _cnn_accuracy(cnn_model, cnn.word_vocabulary, sst2.test)
        result["table1"] = top_expression_rows(cnn_model, cnn.word_vocabulary, sst2.test)
        model, vocabulary = _bow_model(BOW_MODELS[0], cache_dir)
        result["speed"] = _time_fit_and_saliency(model, encode_bags(model, vocabulary, sst2.test).features,
                                                 repeats)
        result["imdb"] = _imdb(imdb_dir) if imdb_dir is not None else None
    return _write(out, run.provenance, result)


def _cnn_accuracy(model: EmbeddingCNN, vocabulary: Vocabulary, test: Sequence[Pair]) -> float:
    ids, lengths = pad_sequences([vocabulary.encode(tokens) for tokens, _ in test], vocabulary.pad_index)
    with torch.no_grad():
        predicted = model(ids, lengths).argmax(-1)
    return float((predicted == torch.tensor([label for _, label in test])).double().mean())


# ------------------------------------------------------------------------------------------------------------------
# Results files
# ------------------------------------------------------------------------------------------------------------------


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}%"


def _words(rows: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{markdown_cell(r['word'])} ({r['mean_derivative']:+.3f})" for r in rows)


def _tables_markdown(result: Mapping[str, Any]) -> str:
    models = result["models"]
    lines = [
        "# Hechtlinger (2016): accuracies, Table 2 and agreement",
        "",
        "Derivatives of the positive-class probability; surrogates fitted on the test set (the paper: IMDB, "
        "85.4% accuracy, agreement 24907 / 25000 = 99.6% without intercept).",
        "",
        "| model | test accuracy | most positive words (mean derivative) | most negative words |",
        "|---|---|---|---|",
    ]
    for name, row in models.items():
        lines.append(f"| {name} | {_pct(row['test_accuracy'])} | {_words(row['table2']['positive'])} | "
                     f"{_words(row['table2']['negative'])} |")
    lines.append(f"| {CNN_MODEL} | {_pct(result['cnn_test_accuracy'])} | (Table 1) | |")
    if result.get("imdb"):
        imdb = result["imdb"]
        lines.append(f"| BoW MLP on IMDB (trained here) | {_pct(imdb['test_accuracy'])} | "
                     f"{_words(imdb['table2']['positive'])} | {_words(imdb['table2']['negative'])} |")
    lines += [
        "",
        "## Agreement of the surrogate with the model on the test set",
        "",
        "| model | examples | p(positive), with intercept | p(positive), paper's rule (no intercept) | logit difference, "
        "with intercept | logit difference, no intercept | ḡ fitted on train, with intercept |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = list(models.items()) + ([("BoW MLP on IMDB", result["imdb"])] if result.get("imdb") else [])
    for name, row in rows:
        a = row["agreement"]
        on_train = _pct(row["fitted_on_train_agreement_on_test"]) if "fitted_on_train_agreement_on_test" in row else ""
        lines.append(f"| {name} | {row['examples']} | {_pct(a['probability_with_intercept'])} | "
                     f"{_pct(a['probability_without_intercept'])} | {_pct(a['logit_difference_with_intercept'])} | "
                     f"{_pct(a['logit_difference_without_intercept'])} | {on_train} |")
    return "\n".join(lines)


def _span(values: Sequence[float]) -> str:
    finite = [v for v in values if v == v]
    return f"{_pct(min(finite))} to {_pct(max(finite))}" if finite else "n/a"


def findings(result: Mapping[str, Any]) -> List[str]:
    """One sentence per finding, every number read from ``result``."""
    lines = []
    for name, row in result["models"].items():
        near, middle, far = row["by_margin"]
        lengths = [b["with_intercept"] for b in row["by_length"]]
        docs = row["documents"]
        lines.append(
            f"{name}: the disagreements sit at the decision boundary: agreement (with intercept) is "
            f"{_pct(near['with_intercept'])} on the {near['count']} test sentences with abs(p - 0.5) < {near['margin'][1]}, "
            f"{_pct(middle['with_intercept'])} on the {middle['count']} with {middle['margin'][0]} <= abs(p - 0.5) < "
            f"{middle['margin'][1]} and {_pct(far['with_intercept'])} on the {far['count']} others; across sentence "
            f"lengths it ranges from {_span(lengths)}. Joining m = {docs[0]['parts']} to {docs[-1]['parts']} "
            f"sentences into documents of {docs[0]['mean_words']:.0f} to {docs[-1]['mean_words']:.0f} words moves the "
            f"share near the boundary from {_pct(docs[0]['near_boundary'])} to {_pct(docs[-1]['near_boundary'])} and "
            f"the agreement over {_span([d['probability_with_intercept'] for d in docs])}; the mean cosine between an "
            f"example's gradient and ḡ falls from {docs[0]['mean_cosine']:.3f} to {docs[-1]['mean_cosine']:.3f}."
        )
    sweep = result["sweep"]
    if sweep:
        linear = [row for row in sweep if row["width"] == 0]
        hidden = [row for row in sweep if row["width"] > 0]
        if linear:
            lines.append(
                f"A linear model (hidden width 0) is recovered exactly by the logit-difference surrogate: agreement "
                f"{_pct(linear[0]['logit_difference_with_intercept'])} with intercept; for its probability "
                f"{_pct(linear[0]['probability_with_intercept'])}."
            )
        if hidden:
            lines.append(
                f"Over the {len(hidden)} MLPs of the sweep (hidden widths "
                f"{', '.join(sorted({str(r['width']) for r in hidden}, key=int))}, dropout and weight decay varied), "
                f"agreement with intercept ranges from {_span([r['probability_with_intercept'] for r in hidden])} and "
                f"without from {_span([r['probability_without_intercept'] for r in hidden])}, while the share of test "
                f"sentences near the boundary ranges from {_span([r['near_boundary'] for r in hidden])}."
            )
    return lines


def _agreement_markdown(result: Mapping[str, Any]) -> str:
    models = result["models"]
    lines = ["# Why agreement is below 99.6%", "", "## Findings", ""]
    lines += [f"- {finding}" for finding in findings(result)]
    lines.append("")
    for name, row in models.items():
        lines += [
            f"## {name}: by sentence length and by margin",
            "",
            f"{row['disagreements']} disagreements among {row['examples']} test sentences (mean "
            f"{row['mean_words']:.1f} words); {_pct(row['near_boundary'])} of the sentences have abs(p - 0.5) < 0.1; "
            f"mean cosine between a sentence's gradient and ḡ: {row['mean_cosine']:.3f}.",
            "",
            "| group | sentences | with intercept | no intercept |",
            "|---|---|---|---|",
        ]
        for bin_row in row["by_length"]:
            lo, hi = bin_row["words"]
            label = f"{lo}-{hi} words" if hi < 10_000 else f">= {lo} words"
            lines.append(f"| {label} | {bin_row['count']} | {_pct(bin_row['with_intercept'])} | "
                         f"{_pct(bin_row['without_intercept'])} |")
        for bin_row in row["by_margin"]:
            lo, hi = bin_row["margin"]
            lines.append(f"| {lo} <= abs(p - 0.5) < {hi} | {bin_row['count']} | {_pct(bin_row['with_intercept'])} | "
                         f"{_pct(bin_row['without_intercept'])} |")
        lines += [
            "",
            f"## {name}: longer documents (m test sentences joined, the surrogate refitted)",
            "",
            "| m | mean words | p, with intercept | p, no intercept | logit diff., with intercept | near boundary "
            "| mean cosine |",
            "|---|---|---|---|---|---|---|",
        ]
        for doc in row["documents"]:
            lines.append(f"| {doc['parts']} | {doc['mean_words']:.1f} | {_pct(doc['probability_with_intercept'])} | "
                         f"{_pct(doc['probability_without_intercept'])} | "
                         f"{_pct(doc['logit_difference_with_intercept'])} | {_pct(doc['near_boundary'])} | "
                         f"{doc['mean_cosine']:.3f} |")
        lines.append("")
    lines += [
        "## Hidden width and regularization (BoW MLPs trained here on SST-2, seed 0)",
        "",
        "| hidden width | dropout | weight decay | test accuracy | p, with intercept | p, no intercept | "
        "logit diff., with intercept | logit diff., no intercept | near boundary | mean cosine |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["sweep"]:
        width = "0 (linear)" if row["width"] == 0 else f"2 x {row['width']}"
        lines.append(f"| {width} | {row['dropout']} | {row['weight_decay']} | {_pct(row['test_accuracy'])} | "
                     f"{_pct(row['probability_with_intercept'])} | {_pct(row['probability_without_intercept'])} | "
                     f"{_pct(row['logit_difference_with_intercept'])} | "
                     f"{_pct(row['logit_difference_without_intercept'])} | {_pct(row['near_boundary'])} | "
                     f"{row['mean_cosine']:.3f} |")
    return "\n".join(lines)


def _table1_markdown(result: Mapping[str, Any]) -> str:
    lines = [
        f"# Table 1: top expressions with {CNN_MODEL}",
        "",
        f"The first {TABLE1_SENTENCES} correctly classified SST-2 test sentences of each class with at least "
        f"{TABLE1_MIN_WORDS} words; the {EXPRESSIONS} words with the largest gradient norm at the embedding, each "
        f"followed by the rest of its width-{WINDOW} window. Gradients of the log-odds z1 - z0; those of p(positive) "
        "are p (1 - p) times them, one factor per sentence, so the ranking is the same.",
        "",
        "| sentence | label | p(positive) | expressions (gradient norm of the log-odds) |",
        "|---|---|---|---|",
    ]
    for row in result["table1"]:
        expressions = "; ".join(f"{markdown_cell(' '.join(e['words']))} ({e['norm']:.3f})" for e in row["expressions"])
        label = "positive" if row["label"] == 1 else "negative"
        lines.append(f"| {markdown_cell(' '.join(row['words']))} | {label} | {row['p_positive']:.3f} | "
                     f"{expressions} |")
    return "\n".join(lines)


def _speed_markdown(speed: Mapping[str, Any]) -> str:
    rates = speed["examples_per_second"]
    met = "met" if speed["target_met"] else "NOT met"
    return "\n".join([
        "# Speed: fit against Captum Saliency",
        "",
        f"{BOW_MODELS[0]} on the {speed['examples']} SST-2 test bags ({speed['features']} features), float32, "
        f"batches of {speed['batch_size']}, one thread; {speed['repeats']} passes of each, interleaved; medians.",
        "",
        "| method | examples/s | per pass |",
        "|---|---|---|",
        *[f"| {name} | {rates[name]:.0f} | "
          f"{' / '.join(f'{v:.0f}' for v in speed['examples_per_second_per_repeat'][name])} |"
          for name in ("fit", "Saliency")],
        "",
        f"fit / Saliency: **{speed['ratio_fit_to_saliency']:.3f}** (per pass: "
        f"{' / '.join(f'{r:.3f}' for r in speed['ratio_per_repeat'])}); target >= {speed['target_ratio']}: {met}.",
    ])


def _write(out: Path, provenance: Provenance, result: Dict[str, Any]) -> List[str]:
    out.mkdir(parents=True, exist_ok=True)
    write_markdown(out / "tables.md", provenance, _tables_markdown(result))
    write_markdown(out / "agreement.md", provenance, _agreement_markdown(result))
    write_markdown(out / "table1.md", provenance, _table1_markdown(result))
    write_markdown(out / "speed.md", provenance, _speed_markdown(result["speed"]))
    write_json(out / "results.json", provenance, result)
    lines = []
    for name, row in result["models"].items():
        a = row["agreement"]
        lines.append(f"hechtlinger2016: {name}: test accuracy {_pct(row['test_accuracy'])}; agreement "
                     f"{_pct(a['probability_with_intercept'])} with intercept, "
                     f"{_pct(a['probability_without_intercept'])} without (paper: 99.6% on IMDB)")
        lines.append(f"  table 2 positive: {_words(row['table2']['positive'])}")
        lines.append(f"  table 2 negative: {_words(row['table2']['negative'])}")
        lines.append("  joined documents, agreement with intercept: " + ", ".join(
            f"m={d['parts']} ({d['mean_words']:.0f} words) {_pct(d['probability_with_intercept'])}"
            for d in row["documents"]))
    for row in result["sweep"]:
        lines.append(f"  sweep: width {row['width']}, dropout {row['dropout']}, weight decay {row['weight_decay']}: "
                     f"accuracy {_pct(row['test_accuracy'])}, agreement {_pct(row['probability_with_intercept'])} / "
                     f"{_pct(row['probability_without_intercept'])}, cosine {row['mean_cosine']:.3f}")
    if result.get("imdb"):
        lines.append(f"hechtlinger2016: IMDB: accuracy {_pct(result['imdb']['test_accuracy'])}, agreement "
                     f"{_pct(result['imdb']['agreement']['probability_without_intercept'])} without intercept")
    for row in result["table1"]:
        lines.append(f"table 1 ({'positive' if row['label'] else 'negative'}): "
                     + "; ".join(" ".join(e["words"]) for e in row["expressions"]))
    speed = result["speed"]
    lines.append(f"speed: fit {speed['examples_per_second']['fit']:.0f} examples/s, Saliency "
                 f"{speed['examples_per_second']['Saliency']:.0f}: ratio {speed['ratio_fit_to_saliency']:.3f} "
                 f"(target >= {speed['target_ratio']}: {'met' if speed['target_met'] else 'NOT met'})")
    lines.append(f"wrote {out}/{{tables,agreement,table1,speed}}.md, results.json")
    return lines

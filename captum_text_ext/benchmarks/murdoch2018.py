r"""Reproduction of Murdoch, Liu & Yu (2018) with ``lstm-sst2``: ``captum-text-ext benchmark murdoch2018``.

Every score is for the positive class against the negative one: :math:`\beta_{pos} - \beta_{neg}` for CD, the
attribution of :math:`f_{pos} - f_{neg}` (the logit difference) for the other methods. Tokens are lowercased, as the
model was trained. Methods (:data:`METHODS`):

- ``CD (reference)``: :class:`~captum_text_ext.ContextualDecomposition` with ``bias_product="reference"`` (the
  authors' released code, which produced the paper's numbers); ``CD (phrase)``: the package default, beside it;
- ``IG``: Captum ``IntegratedGradients`` (zero baseline, 50 steps); ``Gradient x Input``: Captum
  ``InputXGradient``; ``LRP``: :class:`~captum_text_ext.LSTMLRP` (``epsilon=1e-3``, ``bias_factor=0``); each
  summed over the embedding, and over the words of a phrase (the paper's phrase score for word methods);
- ``Leave-one-out``: :math:`d(x) - d(x_{\setminus S})` for the logit difference :math:`d`, the words of :math:`S`
  (a word or a phrase) set to the zero vector (Li et al., 2016, with a zero embedding).

The cell decomposition of Murdoch & Szlam (2017), a baseline of the paper, is not implemented.

Linear baselines (scikit-learn ``LogisticRegression``, default L2, ``C=1``) are fitted on every labelled phrase of the
SST training trees (binary, neutral phrases dropped: the data the LSTM was trained on), on counts of the lowercased
unigrams (``LR``) or of the 1- to 3-grams (``n-gram LR``).

Experiments:

1. **Word scores (Table 4).** For every word of the test reviews that both the LSTM's vocabulary and the unigram LR
   know, its score averaged over its occurrences in the 1821 binary test reviews; Pearson correlation with the LR
   coefficient (also for words with at least :data:`FREQUENT` occurrences).
2. **Dissenting subphrases (Fig. 2).** In the test reviews, every treebank phrase of at most
   :data:`DISSENT_MAX_WORDS` words whose n-gram LR score (the sum of the coefficients of its n-grams) exceeds
   :data:`DISSENT_THRESHOLD` in absolute value with the sign opposite to the review's label. Each method scores the
   phrase inside its review; reported: the distribution per sign, and the one-sided two-sample KS statistic
   :math:`\max_s (F_{neg}(s) - F_{pos}(s))` (1: every positive phrase scores above every negative one).
3. **High-level compositionality (Fig. 3).** In the test reviews, every treebank phrase covering between one and two
   thirds of its review (inclusive) whose label is the opposite of the review's; KS statistic as above.
4. **Negation (Fig. 1).** In the training trees, every phrase whose left child (at most :data:`NEGATION_MAX_WORDS`
   words) contains one of the paper's negation words and whose right child, the negated part, has the opposite
   non-neutral label; distinct phrases only. Positive negations are positive phrases negating a negative part
   ("not bad"). Each phrase is scored on its own (the phrase is the input): the interaction
   :math:`s(\text{phrase}) - s(\text{negated part}) - s(\text{negation})` for CD, and for leave-one-out (the only
   other method that gives interactions) the occlusion second difference
   :math:`d(x) - d(x_{\setminus a}) - d(x_{\setminus b}) + d(x_{\setminus a \cup b})`, which is the same formula with
   each part valued by what it does alone (with leave-one-out scores :math:`d(x) - d(x_{\setminus S})` the formula
   gives the same number with the opposite sign, since each part's leave-one-out score already holds the whole
   interaction); distributions and KS statistic between positive and negative negations.

Table 3 of the paper (similar phrases) is not reproduced.
"""

from __future__ import annotations

import dataclasses
import shlex
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from captum.attr import InputXGradient, IntegratedGradients
from torch import Tensor

from captum_text_ext.attr import LSTMLRP, ContextualDecomposition
from captum_text_ext.benchmarks.sentences import Sentences, embed_sentences
from captum_text_ext.benchmarks.zoo_lstm import load_zoo_lstm
from captum_text_ext.datasets import SSTTree, Vocabulary, load_sst, sst_phrase_examples
from captum_text_ext.datasets._paths import PathLike, find_dataset_file
from captum_text_ext.models import LSTMClassifier
from captum_text_ext.models.checkpoints import record_checkpoint
from captum_text_ext.models.zoo import checkpoint_path
from captum_text_ext.provenance import Provenance, RunRecorder, png_metadata, write_json, write_markdown
from captum_text_ext.visualization import save_png

__all__ = [
    "METHODS",
    "NEGATION_WORDS",
    "NgramLogisticRegression",
    "Review",
    "Span",
    "compositional_spans",
    "compute_results",
    "dissenting_spans",
    "find_negations",
    "ks_statistic",
    "load_reviews",
    "run_murdoch2018",
    "span_scores",
    "table4_verdicts",
    "word_correlation",
]

MODEL = "lstm-sst2"
POSITIVE, NEGATIVE = 1, 0
NEGATION_WORDS = ("not", "n't", "lacks", "nobody", "nor", "nothing", "neither", "never", "none", "nowhere", "remotely")
"""The paper's negation words."""
NEGATION_MAX_WORDS = 3
"""The longest negation term (the left child of a negation phrase)."""
DISSENT_MAX_WORDS = 5
DISSENT_THRESHOLD = 1.5
NGRAM_MAX = 3
"""The n-gram LR of the dissenting-subphrase search uses 1- to NGRAM_MAX-grams."""
FREQUENT = 10
"""The second word-correlation row keeps words with at least this many test occurrences."""
IG_STEPS = 50
EXPECTED_TEST_REVIEWS = 1821
"""Binary SST test reviews (neutral roots dropped)."""
METHODS = ("CD (reference)", "CD (phrase)", "IG", "Leave-one-out", "Gradient x Input", "LRP")
"""The compared methods."""
INTERACTION_METHODS = ("CD (reference)", "CD (phrase)", "Leave-one-out")
"""The methods that score interactions (negation)."""
PAPER = {
    "accuracy": {"LSTM": 0.872, "LR": 0.832},
    "table4": {"CD (reference)": 0.76, "IG": 0.72, "Leave-one-out": "≤ 0.51", "Gradient x Input": "≤ 0.51",
               "cell decomposition": "≤ 0.51"},
    "fig3_ks": {"CD (reference)": 0.74, "Gradient x Input": 0.61, "Leave-one-out": 0.58, "IG": 0.33,
                "cell decomposition": 0.0},
}
"""The paper's numbers (Table 4: SST; Fig. 3: KS statistics; the paper's "gradient" is Gradient x Input here)."""

SpanScorer = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``(embeddings (n, T, E), lengths (n,), masks (P, n, T)) -> (P, n)`` scores of the masked spans."""


# ------------------------------------------------------------------------------------------------------------------
# Data: reviews, spans, negations
# ------------------------------------------------------------------------------------------------------------------


def binary_label(fine: int) -> Optional[int]:
    """SST's fine label (0-4) as binary: 0 negative, 1 positive, ``None`` for neutral."""
    return None if fine == 2 else int(fine > 2)


@dataclasses.dataclass(frozen=True)
class Review:
    """A lowercased SST tree with binary labels.

    Attributes:
        tokens: the words.
        label: the review's label (0/1), or ``None`` when neutral.
        phrases: every treebank phrase as ``(start, stop, label)`` (stop exclusive, label binary or ``None``), in
            pre-order.
    """

    tokens: Tuple[str, ...]
    label: Optional[int]
    phrases: Tuple[Tuple[int, int, Optional[int]], ...]

    @classmethod
    def from_tree(cls, tree: SSTTree) -> "Review":
        """From a fine-grained tree."""
        phrases = tuple((p.start, p.end, binary_label(p.label)) for p in tree.phrases)
        return cls(tuple(token.lower() for token in tree.tokens), binary_label(tree.label), phrases)


def load_reviews(split: str, data_root: Optional[PathLike] = None) -> List[Review]:
    """Every tree of an SST split as a :class:`Review` (neutral reviews included)."""
    return [Review.from_tree(tree) for tree in load_sst(split, data_root, granularity="fine")]


@dataclasses.dataclass(frozen=True)
class Span:
    """A phrase of a review: ``tokens[start:stop]`` of review ``review``, with the label it is compared by."""

    review: int
    start: int
    stop: int
    label: int
    lr_score: Optional[float] = None


def compositional_spans(reviews: Sequence[Review]) -> List[Span]:
    """The treebank phrases covering one to two thirds of their review whose label opposes the review's."""
    spans = []
    for number, review in enumerate(reviews):
        size = len(review.tokens)
        for start, stop, label in review.phrases:
            if review.label is None or label is None or label == review.label:
                continue
            if size <= 3 * (stop - start) <= 2 * size:
                spans.append(Span(number, start, stop, label))
    return spans


def dissenting_spans(reviews: Sequence[Review], lr: "NgramLogisticRegression") -> List[Span]:
    """The treebank phrases of at most :data:`DISSENT_MAX_WORDS` words whose n-gram LR score exceeds
    :data:`DISSENT_THRESHOLD` in absolute value, with the sign opposite to their review's label."""
    spans = []
    for number, review in enumerate(reviews):
        if review.label is None:
            continue
        for start, stop, _ in review.phrases:
            if stop - start > DISSENT_MAX_WORDS:
                continue
            score = lr.phrase_score(review.tokens[start:stop])
            sign = int(score > 0)
            if abs(score) > DISSENT_THRESHOLD and sign != review.label:
                spans.append(Span(number, start, stop, sign, score))
    return spans


@dataclasses.dataclass(frozen=True)
class Negation:
    """A negation phrase: ``tokens``, the negation term ``tokens[:split]`` and the negated part ``tokens[split:]``;
    ``label`` is the phrase's (1: a positive negation such as "not bad")."""

    tokens: Tuple[str, ...]
    split: int
    label: int


def find_negations(reviews: Sequence[Review]) -> List[Negation]:
    """The distinct negation phrases of the trees (see the module docstring)."""
    found: Dict[Tuple[str, ...], Negation] = {}
    for review in reviews:
        labels = {(start, stop): label for start, stop, label in review.phrases}
        for index, (start, stop, label) in enumerate(review.phrases):
            if stop - start < 2 or label is None or index + 1 >= len(review.phrases):
                continue
            _, split, _ = review.phrases[index + 1]  # the left child follows its parent in pre-order
            negated = labels.get((split, stop))
            term = review.tokens[start:split]
            if (
                split - start <= NEGATION_MAX_WORDS and any(word in NEGATION_WORDS for word in term)
                and negated is not None and negated != label
            ):
                tokens = review.tokens[start:stop]
                found.setdefault(tokens, Negation(tokens, split - start, label))
    return list(found.values())


# ------------------------------------------------------------------------------------------------------------------
# Linear baselines
# ------------------------------------------------------------------------------------------------------------------


def _ngrams(tokens: Sequence[str], largest: int) -> List[str]:
    return [" ".join(tokens[i : i + n]) for n in range(1, largest + 1) for i in range(len(tokens) - n + 1)]


class NgramLogisticRegression:
    """A logistic regression on n-gram counts (scikit-learn), positive class 1.

    Args:
        largest: the longest n-gram (1: a bag of words).
    """

    def __init__(self, largest: int = 1) -> None:
        self.largest = largest

    def fit(self, examples: Sequence[Tuple[Sequence[str], int]]) -> "NgramLogisticRegression":
        """Fit on ``(tokens, label)`` examples; returns ``self``."""
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.linear_model import LogisticRegression

        self.vectorizer_ = CountVectorizer(analyzer=lambda tokens: _ngrams(tokens, self.largest))
        features = self.vectorizer_.fit_transform([list(tokens) for tokens, _ in examples])
        self.model_ = LogisticRegression(max_iter=2000).fit(features, [label for _, label in examples])
        names = self.vectorizer_.get_feature_names_out()
        self.coefficients_: Dict[str, float] = dict(zip(names.tolist(), self.model_.coef_[0].tolist()))
        return self

    def phrase_score(self, tokens: Sequence[str]) -> float:
        """The sum of the coefficients of the phrase's n-grams (the decision function without the intercept)."""
        return float(sum(self.coefficients_.get(gram, 0.0) for gram in _ngrams(tokens, self.largest)))

    def accuracy(self, examples: Sequence[Tuple[Sequence[str], int]]) -> float:
        """The share of examples classified correctly."""
        features = self.vectorizer_.transform([list(tokens) for tokens, _ in examples])
        return float(np.mean(self.model_.predict(features) == np.array([label for _, label in examples])))


# ------------------------------------------------------------------------------------------------------------------
# Scoring spans with each method
# ------------------------------------------------------------------------------------------------------------------


def _contrast(logits: Tensor) -> Tensor:
    return logits[..., POSITIVE] - logits[..., NEGATIVE]


def _word_method(attribution: Callable[[Tensor, Tensor], Tensor]) -> SpanScorer:
    """A span scorer summing per-word scores ``attribution(embeddings, lengths) -> (n, T)`` over each span."""

    def score(embeddings: Tensor, lengths: Tensor, masks: Tensor) -> Tensor:
        words = attribution(embeddings, lengths).detach().double()
        return (masks.double() * words.unsqueeze(0)).sum(-1)

    return score


def span_scorers(model: LSTMClassifier) -> Dict[str, SpanScorer]:
    """Every method of :data:`METHODS` as a :data:`SpanScorer` for the positive-minus-negative score."""
    forward = model.forward_embeddings

    def difference(embeddings: Tensor, lengths: Tensor) -> Tensor:
        return _contrast(forward(embeddings, lengths)).unsqueeze(1)

    def cd(mode: str) -> SpanScorer:
        method = ContextualDecomposition(forward, bias_product=mode)
        return lambda x, lengths, masks: _contrast(method.decompose(x, masks, lengths)[0]).double()

    integrated, times_input, lrp = IntegratedGradients(difference), InputXGradient(difference), LSTMLRP(forward)

    def leave_out(x: Tensor, lengths: Tensor, masks: Tensor) -> Tensor:
        with torch.no_grad():
            full = _contrast(forward(x, lengths))
            return torch.stack([full - _contrast(forward(x * (~m).unsqueeze(-1).to(x.dtype), lengths))
                                for m in masks]).double()

    def gradient_method(method: Any, **kwargs: Any) -> Callable[[Tensor, Tensor], Tensor]:
        def words(x: Tensor, lengths: Tensor) -> Tensor:
            scores: Tensor = method.attribute(x.detach().requires_grad_(True), target=0,
                                              additional_forward_args=(lengths,), **kwargs)
            return scores.sum(-1)

        return words

    def lrp_words(x: Tensor, lengths: Tensor) -> Tensor:
        relevance: List[Tensor] = [lrp.attribute(x, target=c, additional_forward_args=(lengths,))
                                   for c in (POSITIVE, NEGATIVE)]
        return (relevance[0] - relevance[1]).sum(-1)

    return {
        "CD (reference)": cd("reference"),
        "CD (phrase)": cd("phrase"),
        "IG": _word_method(gradient_method(integrated, n_steps=IG_STEPS)),
        "Leave-one-out": leave_out,
        "Gradient x Input": _word_method(gradient_method(times_input)),
        "LRP": _word_method(lrp_words),
    }


def span_scores(
    scorer: SpanScorer, sentences: Sentences, spans: Sequence[Sequence[Tuple[int, int]]]
) -> List[List[float]]:
    """Score every span of every sentence with one batched call per batch of sentences.

    Args:
        scorer: the method.
        sentences: the embedded sentences.
        spans: per sentence (in the set's order), its spans ``(start, stop)`` (stop exclusive).

    Returns:
        Per sentence, the score of each of its spans.
    """
    scores: List[List[float]] = [[] for _ in spans]
    for batch in sentences.batches:
        index = batch.index.tolist()
        count = max((len(spans[i]) for i in index), default=0)
        if count == 0:
            continue
        masks = torch.zeros(count, len(index), batch.embeddings.shape[1], dtype=torch.bool)
        for column, sentence in enumerate(index):
            for row, (start, stop) in enumerate(spans[sentence]):
                masks[row, column, start:stop] = True
        values = scorer(batch.embeddings, batch.lengths, masks)
        for column, sentence in enumerate(index):
            scores[sentence] = values[: len(spans[sentence]), column].tolist()
    return scores


# ------------------------------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------------------------------


def ks_statistic(positive: Sequence[float], negative: Sequence[float]) -> float:
    r"""The one-sided two-sample KS statistic :math:`\max_s (F_{neg}(s) - F_{pos}(s))` (scipy's ``ks_2samp`` with
    ``alternative="greater"``): 1 when every positive score exceeds every negative one, 0 when none does."""
    from scipy.stats import ks_2samp

    return float(ks_2samp(negative, positive, alternative="greater", method="asymp").statistic)


def word_correlation(
    occurrences: Mapping[str, Sequence[float]], coefficients: Mapping[str, float], min_count: int = 1
) -> Tuple[float, int]:
    """Pearson's r between each word's mean score over its occurrences and its LR coefficient, over the words with
    a coefficient and at least ``min_count`` occurrences; and their number."""
    from scipy.stats import pearsonr

    words = sorted(w for w, s in occurrences.items() if w in coefficients and len(s) >= min_count)
    if len(words) < 3:
        return float("nan"), len(words)
    means = [statistics.fmean(occurrences[w]) for w in words]
    return float(pearsonr(means, [coefficients[w] for w in words])[0]), len(words)


def _summary_stats(values: Sequence[float]) -> Dict[str, Any]:
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return {"n": 0}
    return {"n": int(array.size), "mean": float(array.mean()), "median": float(np.median(array)),
            "positive_share": float((array > 0).mean())}


def _compare(spans: Sequence[Span], scores: Sequence[float]) -> Dict[str, Any]:
    positive = [s for span, s in zip(spans, scores) if span.label == 1]
    negative = [s for span, s in zip(spans, scores) if span.label == 0]
    ks = ks_statistic(positive, negative) if positive and negative else float("nan")
    return {"positive": _summary_stats(positive), "negative": _summary_stats(negative), "ks": ks,
            "scores_positive": positive, "scores_negative": negative}


# ------------------------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------------------------


def run_murdoch2018(
    out: PathLike,
    data_root: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
    command: Optional[str] = None,
) -> List[str]:
    """Run the reproduction and write ``murdoch2018.md``, ``results.json`` and the figures to ``out``.

    Args:
        out: the results directory.
        data_root: the data directory holding ``sst/``.
        cache_dir: the model cache holding ``lstm-sst2.pt`` (it is not trained here).
        command: the command line to record (default: ``captum-text-ext benchmark murdoch2018 --out OUT``).

    Returns:
        The summary lines the command prints (the same numbers as the files).

    Raises:
        FileNotFoundError: when the model or the data is missing.
        ValueError: when the test split does not hold :data:`EXPECTED_TEST_REVIEWS` binary reviews.
    """
    out = Path(out)
    command = command or shlex.join(["captum-text-ext", "benchmark", "murdoch2018", "--out", str(out)])
    with RunRecorder(command=command, torch_threads=1) as run:
        result = compute_results(run, data_root, cache_dir)
    return _write(out, run.provenance, result)


def _embed(model: LSTMClassifier, vocabulary: Vocabulary, texts: Sequence[Sequence[str]], labels: Sequence[int]
           ) -> Sentences:
    ids = [vocabulary.encode(list(tokens)) for tokens in texts]
    return embed_sentences(model.embedding, ids, labels, vocabulary.pad_index)


def _attach(spans: Sequence[Span], per_review: List[List[Tuple[int, int]]]) -> List[Tuple[int, int]]:
    """Append each span to its review's list of spans; returns where each landed, ``(review, index)``."""
    where = []
    for span in spans:
        per_review[span.review].append((span.start, span.stop))
        where.append((span.review, len(per_review[span.review]) - 1))
    return where


def compute_results(
    run: RunRecorder, data_root: Optional[PathLike], cache_dir: Optional[PathLike]
) -> Dict[str, Any]:
    """Every number of the reproduction, with ``lstm-sst2`` from ``cache_dir`` (its checkpoint and data files recorded
    in ``run``): what :func:`run_murdoch2018` writes, and the headline the seed spread reads."""
    model, vocabulary = load_zoo_lstm(MODEL, cache_dir)
    record_checkpoint(run, "checkpoint", checkpoint_path(MODEL, cache_dir))
    for split in ("train", "test"):
        run.record_file(f"sst/{split}.txt", find_dataset_file("sst", f"{split}.txt", data_root))
    train_trees = load_sst("train", data_root)
    train = [Review.from_tree(tree) for tree in train_trees]
    test = [r for r in load_reviews("test", data_root) if r.label is not None]
    if len(test) != EXPECTED_TEST_REVIEWS:
        raise ValueError(f"Expected {EXPECTED_TEST_REVIEWS} binary SST test reviews, but got {len(test)}")
    phrases = [
        (tuple(t.lower() for t in tokens), label) for tokens, label in sst_phrase_examples(train_trees, "binary")
    ]
    unigram = NgramLogisticRegression(1).fit(phrases)
    ngram = NgramLogisticRegression(NGRAM_MAX).fit(phrases)
    test_examples = [(r.tokens, int(r.label)) for r in test if r.label is not None]

    sentences = _embed(model, vocabulary, [r.tokens for r in test], [int(r.label) for r in test if r.label is not None])
    with torch.no_grad():
        correct = sum(int((model.forward_embeddings(b.embeddings, b.lengths).argmax(-1)
                           == sentences.labels[b.index]).sum()) for b in sentences.batches)
    dissent = dissenting_spans(test, ngram)
    composition = compositional_spans(test)
    per_review: List[List[Tuple[int, int]]] = [[(t, t + 1) for t in range(len(r.tokens))] for r in test]
    dissent_at, composition_at = _attach(dissent, per_review), _attach(composition, per_review)

    negations = find_negations(train)
    negation_set = _embed(model, vocabulary, [n.tokens for n in negations], [n.label for n in negations])
    negation_spans = [[(0, len(n.tokens)), (n.split, len(n.tokens)), (0, n.split)] for n in negations]

    known = set(vocabulary.stoi) - {vocabulary.pad_token, vocabulary.unk_token}
    scorers = span_scorers(model)
    methods: Dict[str, Dict[str, Any]] = {}
    for name, scorer in scorers.items():
        scores = span_scores(scorer, sentences, per_review)
        occurrences: Dict[str, List[float]] = defaultdict(list)
        for review, values in zip(test, scores):
            for word, value in zip(review.tokens, values[: len(review.tokens)]):
                if word in known:
                    occurrences[word].append(value)
        dissent_scores = [scores[review][index] for review, index in dissent_at]
        composition_scores = [scores[review][index] for review, index in composition_at]
        r_all, n_all = word_correlation(occurrences, unigram.coefficients_)
        r_frequent, n_frequent = word_correlation(occurrences, unigram.coefficients_, FREQUENT)
        entry: Dict[str, Any] = {
            "word_correlation": {"r": r_all, "n": n_all},
            "word_correlation_frequent": {"r": r_frequent, "n": n_frequent, "min_occurrences": FREQUENT},
            "dissenting": _compare(dissent, dissent_scores),
            "compositionality": _compare(composition, composition_scores),
        }
        if name in ("CD (reference)", "IG"):
            words = sorted(w for w in occurrences if w in unigram.coefficients_)
            entry["word_points"] = [[unigram.coefficients_[w], statistics.fmean(occurrences[w])] for w in words]
        if name in INTERACTION_METHODS:
            parts = span_scores(scorer, negation_set, negation_spans)
            interactions = [whole - negated - term for whole, negated, term in parts]
            if name == "Leave-one-out":  # the occlusion second difference (see the module docstring)
                interactions = [-value for value in interactions]
            entry["negation"] = _compare([Span(0, 0, 0, n.label) for n in negations], interactions)
        methods[name] = entry
    return {
        "model": MODEL,
        "test_reviews": len(test),
        "lstm_accuracy": correct / len(test),
        "lr_accuracy": unigram.accuracy(test_examples),
        "ngram_lr_accuracy": ngram.accuracy(test_examples),
        "lr_training_phrases": len(phrases),
        "dissenting_phrases": len(dissent),
        "compositional_phrases": len(composition),
        "negations": {
            "positive": sum(n.label == 1 for n in negations),
            "negative": sum(n.label == 0 for n in negations),
            "examples": [" ".join(n.tokens) for n in negations[:12]],
        },
        "methods": methods,
        "paper": PAPER,
    }


# ------------------------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------------------------


def _number(value: Any, digits: int = 2) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.{digits}f}"
    return str(value)


def _distribution_rows(result: Mapping[str, Any], experiment: str, names: Sequence[str]) -> List[str]:
    rows = ["| method | KS | positive: n / mean / median / share > 0 | negative: n / mean / median / share > 0 |",
            "|---|---|---|---|"]
    for name in names:
        entry = result["methods"][name][experiment]
        cells = []
        for side in ("positive", "negative"):
            stats = entry[side]
            cells.append("n = 0" if stats["n"] == 0 else
                         f"{stats['n']} / {stats['mean']:.2f} / {stats['median']:.2f} / {stats['positive_share']:.2f}")
        rows.append(f"| {name} | {_number(entry['ks'])} | {cells[0]} | {cells[1]} |")
    return rows


def _markdown(result: Mapping[str, Any]) -> str:
    paper = result["paper"]
    methods = result["methods"]
    lines = [
        "# Murdoch, Liu & Yu (2018) with lstm-sst2",
        "",
        f"Model `{result['model']}`: test accuracy {100 * result['lstm_accuracy']:.1f}% on {result['test_reviews']} "
        f"binary SST test reviews (paper: {100 * paper['accuracy']['LSTM']:.1f}%). Bag-of-words LR (fitted on "
        f"{result['lr_training_phrases']} training phrases): {100 * result['lr_accuracy']:.1f}% (paper: "
        f"{100 * paper['accuracy']['LR']:.1f}%); 1-{NGRAM_MAX}-gram LR: {100 * result['ngram_lr_accuracy']:.1f}%.",
        "Scores are positive minus negative class; CD with `bias_product=\"reference\"` (the authors' code) and "
        "`\"phrase\"` (the package default). The cell decomposition baseline is not implemented.",
        "",
        "## (1) Word scores against LR coefficients (Table 4)",
        "",
        "Pearson r between each word's mean score over its test occurrences and its bag-of-words LR coefficient.",
        "",
        f"| method | r (all words) | n | r (≥ {FREQUENT} occurrences) | n | paper |",
        "|---|---|---|---|---|---|",
    ]
    for name in METHODS:
        entry = methods[name]
        frequent = entry["word_correlation_frequent"]
        lines.append(f"| {name} | {_number(entry['word_correlation']['r'])} | {entry['word_correlation']['n']} | "
                     f"{_number(frequent['r'])} | {frequent['n']} | {paper['table4'].get(name, '')} |")
    lines += [
        "",
        "## (2) Dissenting subphrases (Fig. 2)",
        "",
        f"{result['dissenting_phrases']} treebank phrases of ≤ {DISSENT_MAX_WORDS} words whose absolute n-gram LR "
        f"score exceeds {DISSENT_THRESHOLD} opposing their review's label (test set). KS: one-sided two-sample "
        "statistic max(F_neg − F_pos) (1 = perfectly separated in the right direction). The paper shows these "
        "distributions without a number.",
        "",
        *_distribution_rows(result, "dissenting", METHODS),
        "",
        "## (3) High-level compositionality (Fig. 3)",
        "",
        f"{result['compositional_phrases']} treebank phrases covering one to two thirds of their review, labelled "
        "opposite to the review (test set).",
        "",
        *_distribution_rows(result, "compositionality", METHODS),
        "",
        "The paper's KS statistics (Fig. 3):",
        "",
        "| source | " + " | ".join(paper["fig3_ks"]) + " |",
        "|---|" + "---|" * len(paper["fig3_ks"]),
        "| paper | " + " | ".join(str(v) for v in paper["fig3_ks"].values()) + " |",
        "",
        "## (4) Negation interactions (Fig. 1)",
        "",
        f"{result['negations']['positive']} positive and {result['negations']['negative']} negative distinct negation "
        "phrases in the training trees, each scored alone: interaction = s(phrase) − s(negated part) − s(negation). "
        "Examples: " + "; ".join(f"*{e}*" for e in result["negations"]["examples"]) + ".",
        "",
        *_distribution_rows(result, "negation", INTERACTION_METHODS),
        "",
        "## Where we differ from the paper",
        "",
        *_differences(result),
    ]
    return "\n".join(lines)


def table4_verdicts(methods: Mapping[str, Any]) -> List[str]:
    """Table 4 read column by column: for all words and for words with at least :data:`FREQUENT` occurrences, CD
    (reference)'s and IG's r, the best method of the column other than CD, and whether CD correlates best there.
    One sentence per column, then whether the columns agree; no column is read alone."""
    columns = (("word_correlation", "all words"), ("word_correlation_frequent", f"words with ≥ {FREQUENT} occurrences"))
    best_in: Dict[str, bool] = {}
    lines = []
    for key, label in columns:
        cd = methods["CD (reference)"][key]["r"]
        others = [(methods[n][key]["r"], n) for n in METHODS if not n.startswith("CD") and
                  methods[n][key]["r"] == methods[n][key]["r"]]
        best_r, best_name = max(others, default=(float("nan"), "none"))
        best_in[label] = bool(cd >= best_r)
        verdict = "CD correlates best" if best_in[label] else f"{best_name} correlates best, not CD"
        lines.append(f"- Table 4, {label} (n = {methods['CD (reference)'][key]['n']}): CD (reference) r = "
                     f"{_number(cd)}, IG r = {_number(methods['IG'][key]['r'])}, the best method other than CD "
                     f"{best_name} r = {_number(best_r)}: {verdict}.")
    if all(best_in.values()):
        lines.append("- Table 4 overall: CD correlates best in both columns, as in the paper (CD 0.76, IG 0.72).")
    elif any(best_in.values()):
        held = [label for label, best in best_in.items() if best]
        lines.append(f"- Table 4 overall: CD correlates best only on {held[0]}, so the paper's finding that CD "
                     "correlates best (CD 0.76, IG 0.72) is reproduced in one column and not in the other.")
    else:
        lines.append("- Table 4 overall: CD correlates best in neither column, unlike the paper (CD 0.76, IG 0.72).")
    return lines


def _differences(result: Mapping[str, Any]) -> List[str]:
    methods, paper = result["methods"], result["paper"]
    cd = methods["CD (reference)"]
    lines = [
        *table4_verdicts(methods),
        f"- Fig. 3 KS: CD (reference) {_number(cd['compositionality']['ks'])} (paper "
        f"{paper['fig3_ks']['CD (reference)']}), IG {_number(methods['IG']['compositionality']['ks'])} (paper "
        f"{paper['fig3_ks']['IG']}), leave-one-out {_number(methods['Leave-one-out']['compositionality']['ks'])} "
        f"(paper {paper['fig3_ks']['Leave-one-out']}), Gradient x Input "
        f"{_number(methods['Gradient x Input']['compositionality']['ks'])} (paper "
        f"{paper['fig3_ks']['Gradient x Input']}).",
        f"- Negation: KS between positive and negative negations, CD (reference) "
        f"{_number(cd['negation']['ks'])}, leave-one-out {_number(methods['Leave-one-out']['negation']['ks'])}; the "
        "paper shows a clear separation for CD and an overlap around 0 for leave-one-out, without numbers.",
        "- Differences in setup: our lstm-sst2 trains its embeddings from scratch (the paper used GloVe vectors), "
        "the LR baselines are fitted on the training phrases with scikit-learn defaults, and the phrase searches "
        "follow the rules in the module docstring; the paper's exact search rules are not all published.",
    ]
    return lines


def _histograms(result: Mapping[str, Any], experiment: str, names: Sequence[str], title: str) -> Any:
    from matplotlib.figure import Figure

    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    fig = Figure(figsize=(3.4 * columns, 2.8 * rows + 0.4))
    for number, name in enumerate(names):
        entry = result["methods"][name][experiment]
        ax = fig.add_subplot(rows, columns, number + 1)
        values = entry["scores_positive"] + entry["scores_negative"]
        bins: Union[int, List[float]] = np.linspace(min(values), max(values), 30).tolist() if values else 10
        ax.hist(entry["scores_positive"], bins=bins, alpha=0.6, color="tab:blue", density=True, label="positive")
        ax.hist(entry["scores_negative"], bins=bins, alpha=0.6, color="tab:red", density=True, label="negative")
        ax.set_title(f"{name}\nKS {_number(entry['ks'])}", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _scatter(result: Mapping[str, Any]) -> Any:
    from matplotlib.figure import Figure

    names = ("CD (reference)", "IG")
    fig = Figure(figsize=(8, 3.6))
    for column, name in enumerate(names):
        points = np.asarray(result["methods"][name]["word_points"])
        ax = fig.add_subplot(1, 2, column + 1)
        ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.4)
        ax.set_xlabel("LR coefficient")
        ax.set_ylabel("mean score")
        ax.set_title(f"{name}: r = {_number(result['methods'][name]['word_correlation']['r'])}", fontsize=9)
    fig.tight_layout()
    return fig


def _write(out: Path, provenance: Provenance, result: Dict[str, Any]) -> List[str]:
    out.mkdir(parents=True, exist_ok=True)
    write_markdown(out / "murdoch2018.md", provenance, _markdown(result))
    write_json(out / "results.json", provenance, result)
    metadata = png_metadata(provenance)
    save_png(_scatter(result), out / "fig4_word_scores.png", metadata=metadata)
    save_png(_histograms(result, "negation", INTERACTION_METHODS, "Negation interactions (training phrases)"),
             out / "fig1_negation.png", metadata=metadata)
    save_png(_histograms(result, "dissenting", METHODS, "Dissenting subphrases (test reviews)"),
             out / "fig2_dissenting.png", metadata=metadata)
    save_png(_histograms(result, "compositionality", METHODS, "High-level compositionality (test reviews)"),
             out / "fig3_compositionality.png", metadata=metadata)
    methods = result["methods"]
    lines = [f"murdoch2018: {result['model']}: accuracy {100 * result['lstm_accuracy']:.1f}% on "
             f"{result['test_reviews']} test reviews; LR {100 * result['lr_accuracy']:.1f}%"]
    for name in METHODS:
        entry = methods[name]
        dissent, composition = entry["dissenting"], entry["compositionality"]
        text = (f"  {name:<17} word r = {_number(entry['word_correlation']['r'])} (n = "
                f"{entry['word_correlation']['n']}; ≥ {FREQUENT} occurrences: "
                f"{_number(entry['word_correlation_frequent']['r'])}, n = {entry['word_correlation_frequent']['n']}), "
                f"dissenting KS = {_number(dissent['ks'])} (n = "
                f"{dissent['positive']['n']}+{dissent['negative']['n']}), compositionality KS = "
                f"{_number(composition['ks'])} (n = {composition['positive']['n']}+{composition['negative']['n']})")
        if "negation" in entry:
            negation = entry["negation"]
            text += (f", negation KS = {_number(negation['ks'])} (n = {negation['positive']['n']}+"
                     f"{negation['negative']['n']})")
        lines.append(text)
    lines.append(f"wrote {out}/murdoch2018.md, results.json, fig1_negation.png, fig2_dissenting.png, "
                 "fig3_compositionality.png, fig4_word_scores.png")
    return lines

"""The Murdoch et al. (2018) reproduction: phrase searches, span scoring against per-sentence loops, statistics, and
the command end to end on a tiny treebank and a tiny ``lstm-sst2`` checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
import pytest
import torch

from captum_text_ext import ContextualDecomposition
from captum_text_ext.benchmarks import BENCHMARKS, murdoch2018
from captum_text_ext.benchmarks.murdoch2018 import (
    NgramLogisticRegression,
    Review,
    compositional_spans,
    dissenting_spans,
    find_negations,
    ks_statistic,
    span_scorers,
    span_scores,
    word_correlation,
)
from captum_text_ext.benchmarks.sentences import embed_sentences
from captum_text_ext.benchmarks.zoo_lstm import load_zoo_lstm
from captum_text_ext.cli import main
from captum_text_ext.datasets import Vocabulary, load_sst
from captum_text_ext.models import LSTMClassifier
from captum_text_ext.models.checkpoints import save_checkpoint


@pytest.fixture(autouse=True)
def _one_thread():  # type: ignore[no-untyped-def]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TRAIN_TREES = [
    "(3 (2 not) (1 (1 bad) (2 film)))",  # a positive negation: "not" + a negative part
    "(1 (2 not) (3 good))",  # a negative negation
    "(1 (2 (2 does) (2 n't)) (3 (3 work) (2 well)))",  # a two-word negation term
    "(1 (2 not) (3 good))",  # the same phrase again: counted once
    "(4 (3 (3 good) (2 fun)) (2 (2 nice) (2 plot)))",
    "(0 (1 dull) (1 (1 bad) (2 story)))",
    "(3 (2 never) (2 dull))",  # the negated part is neutral: no negation
]
TEST_TREES = [
    "(3 (1 (1 dull) (2 story)) (4 (4 great) (2 acting)))",  # "dull story" covers half of a positive review
    "(1 (3 (3 good) (2 fun)) (1 (1 bad) (1 (1 dull) (2 plot))))",
    "(2 (2 a) (2 film))",  # neutral: left out of the binary test set
    "(4 (4 great) (4 (3 good) (2 film)))",
]


def _reviews(lines: Sequence[str], tmp_path: Path, split: str) -> List[Review]:
    (tmp_path / "sst").mkdir(parents=True, exist_ok=True)
    (tmp_path / "sst" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return murdoch2018.load_reviews(split, tmp_path)


def test_negations_are_found_by_the_tree_and_the_paper_words(tmp_path: Path) -> None:
    negations = find_negations(_reviews(TRAIN_TREES, tmp_path, "train"))
    found = [(" ".join(n.tokens), n.split, n.label) for n in negations]
    assert found == [("not bad film", 1, 1), ("not good", 1, 0), ("does n't work well", 2, 0)]


def test_compositional_phrases_cover_one_to_two_thirds_and_oppose_the_review(tmp_path: Path) -> None:
    reviews = _reviews(TEST_TREES, tmp_path, "test")
    spans = compositional_spans(reviews)
    assert [(s.review, s.start, s.stop, s.label) for s in spans] == [(0, 0, 2, 0), (1, 0, 2, 1)]
    assert reviews[2].label is None  # neutral reviews give none


class _Scores:
    """A stand-in n-gram LR scoring "dull story" -2 and "good fun" +2, everything else 0."""

    def phrase_score(self, tokens: Sequence[str]) -> float:
        return {("dull", "story"): -2.0, ("good", "fun"): 2.0}.get(tuple(tokens), 0.0)


def test_dissenting_phrases_oppose_their_review_beyond_the_threshold(tmp_path: Path) -> None:
    spans = dissenting_spans(_reviews(TEST_TREES, tmp_path, "test"), _Scores())  # type: ignore[arg-type]
    assert [(s.review, s.start, s.stop, s.label, s.lr_score) for s in spans] == [(0, 0, 2, 0, -2.0), (1, 0, 2, 1, 2.0)]


def test_ngram_lr_phrase_score_sums_the_coefficients_of_its_ngrams() -> None:
    examples = [(("good", "film"), 1), (("bad", "film"), 0), (("not", "good"), 0), (("not", "bad"), 1)] * 3
    lr = NgramLogisticRegression(2).fit(examples)
    c = lr.coefficients_
    assert lr.phrase_score(["not", "good"]) == pytest.approx(c["not"] + c["good"] + c["not good"])
    assert lr.phrase_score(["unseen"]) == 0.0
    assert lr.accuracy(examples) == 1.0


def test_ks_statistic_is_one_sided() -> None:
    assert ks_statistic([1.0, 2.0, 3.0], [-1.0, -2.0]) == 1.0
    assert ks_statistic([-1.0, -2.0], [1.0, 2.0, 3.0]) == 0.0
    assert ks_statistic([1.0, 3.0], [0.0, 2.0]) == pytest.approx(0.5)  # max(F_neg - F_pos) at 0 and at 2


def test_word_correlation_averages_occurrences_first() -> None:
    occurrences = {"a": [1.0, 3.0], "b": [0.0], "c": [5.0, 7.0, 6.0], "rare": [100.0], "unknown": [1.0]}
    coefficients = {"a": 1.0, "b": 0.0, "c": 3.0, "rare": -1.0}
    r, n = word_correlation(occurrences, coefficients, min_count=1)
    expected = np.corrcoef([2.0, 0.0, 6.0, 100.0], [1.0, 0.0, 3.0, -1.0])[0, 1]
    assert n == 4 and r == pytest.approx(expected)
    r, n = word_correlation(occurrences, coefficients, min_count=2)
    assert n == 2 and r != r  # fewer than three words: not a number


def _tiny_model(vocabulary_size: int) -> LSTMClassifier:
    torch.manual_seed(0)
    return LSTMClassifier(vocabulary_size, embedding_dim=4, hidden_size=3, num_classes=2, bidirectional=False).eval()


def test_span_scores_equal_each_method_on_one_sentence_at_a_time() -> None:
    model = _tiny_model(12).double()
    ids = [[2, 3, 4, 5], [6, 7], [8, 9, 10]]
    sentences = embed_sentences(model.embedding, ids, [1, 0, 1], 0, batch_size=2)
    spans: List[List[Tuple[int, int]]] = [[(0, 1), (1, 3), (0, 4)], [(1, 2)], [(0, 2), (2, 3)]]
    scorers = span_scorers(model)
    cd = ContextualDecomposition(model.forward_embeddings, "reference")
    for name, scorer in scorers.items():
        scores = span_scores(scorer, sentences, spans)
        for n, sentence in enumerate(ids):
            x = model.embedding(torch.tensor([sentence])).detach()
            masks = torch.zeros(len(spans[n]), 1, len(sentence), dtype=torch.bool)
            for p, (start, stop) in enumerate(spans[n]):
                masks[p, 0, start:stop] = True
            alone = scorer(x, torch.tensor([len(sentence)]), masks)[:, 0].tolist()
            assert scores[n] == pytest.approx(alone, abs=1e-10), name
    beta = cd.decompose(model.embedding(torch.tensor([ids[0]])).detach(), torch.tensor([[False, True, True, False]]))[0]
    expected = float(beta[0, 1] - beta[0, 0])
    assert span_scores(scorers["CD (reference)"], sentences, spans)[0][1] == pytest.approx(expected)
    with torch.no_grad():
        x = model.embedding(torch.tensor([ids[1]]))
        full, without = model.forward_embeddings(x), model.forward_embeddings(x * torch.tensor([[[1.0], [0.0]]]))
    loo = float((full[0, 1] - full[0, 0]) - (without[0, 1] - without[0, 0]))
    assert span_scores(scorers["Leave-one-out"], sentences, spans)[1][0] == pytest.approx(loo)


def test_registered_with_its_results_directory() -> None:
    assert BENCHMARKS["murdoch2018"].default_out == Path("benchmarks/results/murdoch2018")


def test_command_writes_every_result_with_its_n(tmp_path: Path, monkeypatch, capsys) -> None:
    _reviews(TRAIN_TREES, tmp_path / "data", "train")
    test = _reviews(TEST_TREES, tmp_path / "data", "test")
    vocabulary = Vocabulary.build([t.tokens for t in load_sst("train", tmp_path / "data")])
    save_checkpoint(tmp_path / "cache" / "lstm-sst2.pt", _tiny_model(len(vocabulary)), vocabulary,
                    {"zoo_name": "lstm-sst2"})
    monkeypatch.setattr(murdoch2018, "EXPECTED_TEST_REVIEWS", sum(r.label is not None for r in test))
    monkeypatch.setattr(murdoch2018, "DISSENT_THRESHOLD", 0.0)
    argv = ["benchmark", "murdoch2018", "--out", str(tmp_path / "r"), "--data-root", str(tmp_path / "data"),
            "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    markdown = (tmp_path / "r" / "murdoch2018.md").read_text(encoding="utf-8")
    assert markdown.startswith(f"<!-- provenance\ncommand: captum-text-ext {' '.join(argv)}\n")
    payload = json.loads((tmp_path / "r" / "results.json").read_text(encoding="utf-8"))
    results = payload["results"]
    assert results["test_reviews"] == 3 and results["negations"] == {
        "positive": 1, "negative": 2, "examples": ["not bad film", "not good", "does n't work well"]}
    assert set(results["methods"]) == set(murdoch2018.METHODS)
    cd = results["methods"]["CD (reference)"]
    assert cd["compositionality"]["positive"]["n"] + cd["compositionality"]["negative"]["n"] == 2
    assert cd["negation"]["positive"]["n"] == 1 and cd["negation"]["negative"]["n"] == 2
    assert "negation" not in results["methods"]["IG"]
    with torch.no_grad():  # leave-one-out's negation interaction: d(x) - d(x without a) - d(x without b) + d(nothing)
        ids = torch.tensor([vocabulary.encode(["not", "good"])])
        tiny = load_zoo_lstm(murdoch2018.MODEL, tmp_path / "cache")[0]
        x = tiny.embedding(ids)
        d = [float(murdoch2018._contrast(tiny.forward_embeddings(x * torch.tensor(k).view(1, 2, 1))))
             for k in ([1.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0])]
    loo = results["methods"]["Leave-one-out"]["negation"]["scores_negative"]
    assert d[0] - d[1] - d[2] + d[3] == pytest.approx(loo[0], abs=1e-5)  # "not good" is the first negative one
    for name in ("fig1_negation.png", "fig2_dissenting.png", "fig3_compositionality.png", "fig4_word_scores.png"):
        assert (tmp_path / "r" / name).stat().st_size > 0
    # each phrase's score is its own: the CD scores of the compositional phrases, recomputed one review at a time
    reviews = [r for r in test if r.label is not None]
    model = load_zoo_lstm(murdoch2018.MODEL, tmp_path / "cache")[0]
    method = ContextualDecomposition(model.forward_embeddings, "reference")
    vocabulary_ids = [vocabulary.encode(list(r.tokens)) for r in reviews]
    expected = {0: [], 1: []}  # type: ignore[var-annotated]
    for span in compositional_spans(reviews):
        x = model.embedding(torch.tensor([vocabulary_ids[span.review]])).detach()
        mask = torch.zeros(1, x.shape[1], dtype=torch.bool)
        mask[0, span.start : span.stop] = True
        beta = method.decompose(x, mask)[0]
        expected[span.label].append(float(beta[0, 1] - beta[0, 0]))
    assert cd["compositionality"]["scores_positive"] == pytest.approx(expected[1], abs=1e-5)
    assert cd["compositionality"]["scores_negative"] == pytest.approx(expected[0], abs=1e-5)
    ks = cd["compositionality"]["ks"]
    assert f"compositionality KS = {ks:.2f}" in printed and f"| CD (reference) | {ks:.2f} |" in markdown


def _correlations(all_words: dict, frequent: dict) -> dict:
    return {name: {"word_correlation": {"r": all_words[name], "n": 5000},
                   "word_correlation_frequent": {"r": frequent[name], "n": 300}} for name in murdoch2018.METHODS}


def test_table4_is_read_in_both_columns_never_from_all_words_alone() -> None:
    names = murdoch2018.METHODS
    base = dict.fromkeys(names, 0.4)
    # CD best on all words, leave-one-out best on frequent words (the recorded run's situation)
    lines = murdoch2018.table4_verdicts(_correlations({**base, "CD (reference)": 0.7, "Leave-one-out": 0.6},
                                                      {**base, "CD (reference)": 0.77, "Leave-one-out": 0.83}))
    assert lines[0] == ("- Table 4, all words (n = 5000): CD (reference) r = 0.70, IG r = 0.40, the best method "
                        "other than CD Leave-one-out r = 0.60: CD correlates best.")
    assert lines[1] == ("- Table 4, words with ≥ 10 occurrences (n = 300): CD (reference) r = 0.77, IG r = 0.40, the "
                        "best method other than CD Leave-one-out r = 0.83: Leave-one-out correlates best, not CD.")
    assert "only on all words" in lines[2] and "not in the other" in lines[2]
    both = murdoch2018.table4_verdicts(_correlations({**base, "CD (reference)": 0.7}, {**base, "CD (reference)": 0.8}))
    assert "in both columns, as in the paper" in both[2]
    neither = murdoch2018.table4_verdicts(_correlations({**base, "IG": 0.9}, {**base, "LRP": 0.9}))
    assert "IG correlates best, not CD" in neither[0] and "LRP correlates best, not CD" in neither[1]
    assert "in neither column" in neither[2]

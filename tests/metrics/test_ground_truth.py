"""Ground-truth metrics against straightforward per-sentence implementations and scikit-learn."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import average_precision_score

from captum_text_ext.datasets.synthetic import annotate, load_synthetic
from captum_text_ext.metrics import (
    GroundTruthMetric,
    decisive_auprc,
    ground_truth,
    negation_interaction_sign,
    precision_at_k,
    sign_accuracy,
    top1_precision,
)


def random_case(seed: int, sentences: int = 40, steps: int = 9):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, steps + 1, (sentences,), generator=generator)
    scores = torch.randn(sentences, steps, generator=generator, dtype=torch.float64)
    decisive = torch.rand(sentences, steps, generator=generator) < 0.3
    decisive &= torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)
    return scores, lengths, decisive


def naive_ranking(scores, length, order="signed"):
    values = [float(scores[t]) for t in range(length)]
    key = [abs(v) for v in values] if order == "abs" else values
    return sorted(range(length), key=lambda t: -key[t])


@pytest.mark.parametrize("order", ["signed", "abs"])
@pytest.mark.parametrize("k", [None, 1, 3])
def test_precision_at_k_matches_a_per_sentence_loop(k, order):
    scores, lengths, decisive = random_case(0)
    values = precision_at_k(scores, lengths, decisive, k=k, order=order, aggregate="none")
    for n in range(len(lengths)):
        length = int(lengths[n])
        relevant = {t for t in range(length) if decisive[n, t]}
        size = len(relevant) if k is None else min(k, length)
        if size == 0 or not relevant and k is None:
            assert math.isnan(float(values[n]))
            continue
        top = naive_ranking(scores[n], length, order)[:size]
        assert float(values[n]) == pytest.approx(len(relevant.intersection(top)) / size)


def test_top1_precision_is_the_share_of_sentences_whose_top_token_is_decisive():
    scores, lengths, decisive = random_case(1)
    hits, counted = 0, 0
    for n in range(len(lengths)):
        if decisive[n].any():
            counted += 1
            hits += bool(decisive[n, naive_ranking(scores[n], int(lengths[n]))[0]])
    assert float(top1_precision(scores, lengths, decisive)) == pytest.approx(hits / counted)


def test_auprc_equals_scikit_learn_average_precision_without_ties():
    scores, lengths, decisive = random_case(2)
    values = decisive_auprc(scores, lengths, decisive, aggregate="none")
    for n in range(len(lengths)):
        length = int(lengths[n])
        if not decisive[n, :length].any():
            assert math.isnan(float(values[n]))
            continue
        expected = average_precision_score(decisive[n, :length].numpy(), scores[n, :length].numpy())
        assert float(values[n]) == pytest.approx(expected)


def test_sign_accuracy_counts_sentiment_words_toward_the_target():
    # "the plot was not dull but the acting was great": label positive (the clause after "but" decides)
    example = annotate("the plot was not dull but the acting was great".split())
    truth = ground_truth([example])
    effects = truth.token_effect[0].tolist()
    assert effects[4] == 1 and effects[9] == 1 and truth.negated[0].nonzero().flatten().tolist() == [4]
    scores = torch.zeros(1, 10, dtype=torch.float64)
    scores[0, 4], scores[0, 9] = -1.0, 2.0  # "dull" (negated: +1) wrong, "great" right
    lengths = torch.tensor([10])
    assert float(sign_accuracy(scores, lengths, truth.token_effect, target=1)) == 0.5
    assert float(sign_accuracy(scores, lengths, truth.token_effect, target=0)) == 0.5
    assert float(sign_accuracy(scores, lengths, truth.token_effect, 1, negated=truth.negated)) == 0.0
    assert float(sign_accuracy(scores, lengths, truth.token_effect, 0, negated=truth.negated)) == 1.0
    scores[0, 4] = 0.0  # a zero score is never right
    assert float(sign_accuracy(scores, lengths, truth.token_effect, 1, negated=truth.negated)) == 0.0


def test_ground_truth_matches_the_examples():
    examples = load_synthetic("test", n=30)
    truth = ground_truth(examples)
    for n, example in enumerate(examples):
        size = len(example.tokens)
        assert truth.decisive[n, :size].tolist() == list(example.decisive)
        assert truth.token_effect[n, :size].tolist() == list(example.token_effect)
        assert not truth.decisive[n, size:].any()
    pairs = {(int(a), int(b), int(c)) for a, b, c in truth.negations}
    expected = {(n, i, end - 1) for n, e in enumerate(examples) for i, _, end in e.negation_spans
                if e.token_effect[end - 1] != 0}
    assert pairs == expected and expected


def test_negation_interaction_sign_scores_every_pair_in_one_call():
    examples = [annotate("the plot was not dull".split()), annotate("it is a clever movie with no boring scenes".split()),
                annotate("this film feels fresh".split())]
    truth = ground_truth(examples)
    embeddings = torch.zeros(3, truth.decisive.shape[1], 2)
    lengths = torch.tensor([len(e.tokens) for e in examples])
    calls = []

    def interaction(inputs, mask_a, mask_b, target, additional_forward_args):
        calls.append(mask_a.shape)
        # a fake interaction: +1 for the first sentence's pair, -1 for the second's
        assert torch.equal(additional_forward_args[0], lengths)
        return torch.tensor([[1.0, -1.0, 0.0]])

    # both sentences are positive; "dull" negated -> effect +1, "boring" negated -> effect +1
    values = negation_interaction_sign(interaction, embeddings, lengths, truth.negations, truth.token_effect,
                                       target=1, aggregate="none")
    assert values.tolist() == [1.0, 0.0] and calls == [torch.Size([1, 3, truth.decisive.shape[1]])]
    empty = negation_interaction_sign(interaction, embeddings, lengths, truth.negations[:0], truth.token_effect, 1)
    assert math.isnan(float(empty))


def test_ground_truth_metric_accumulates_batches():
    examples = load_synthetic("test", n=12)
    truth = ground_truth(examples)
    lengths = torch.tensor([len(e.tokens) for e in examples])
    scores = torch.randn(truth.decisive.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = truth.labels
    metric = GroundTruthMetric()
    half = ground_truth(examples[:6], truth.decisive.shape[1]), ground_truth(examples[6:], truth.decisive.shape[1])
    metric.update(scores[:6], lengths[:6], half[0], target[:6])
    metric.update(scores[6:], lengths[6:], half[1], target[6:])
    result = metric.compute()
    assert torch.allclose(result["auprc"], decisive_auprc(scores, lengths, truth.decisive, aggregate="none"),
                          equal_nan=True)
    assert torch.allclose(result["sign_accuracy"], sign_accuracy(scores, lengths, truth.token_effect, target,
                                                                 aggregate="none"), equal_nan=True)


def test_bad_ground_truth_arguments_raise():
    scores, lengths, decisive = random_case(3)
    with pytest.raises(ValueError, match="decisive"):
        precision_at_k(scores, lengths, decisive[:, :3])
    with pytest.raises(ValueError, match="`k`"):
        precision_at_k(scores, lengths, decisive, k=0)
    with pytest.raises(ValueError, match="aggregate"):
        decisive_auprc(scores, lengths, decisive, aggregate="sum")

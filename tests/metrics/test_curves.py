"""Deletion / insertion curves, comprehensiveness and sufficiency on hand-made models with closed-form curves.

The main model is a linear bag of words: embeddings are one-hot over a tiny vocabulary, the class-1 logit is the sum
of the tokens' weights :math:`v_t` and the class-0 logit is 0, so :math:`p_1 = \\sigma(\\sum_t v_t)` and removing a
token by zeroing its embedding subtracts exactly its weight.
"""

from __future__ import annotations

import math
from typing import List, Sequence

import pytest
import torch
from torch import Tensor

from captum_text_ext.metrics import (
    Comprehensiveness,
    DeletionCurve,
    InsertionCurve,
    Sufficiency,
    apply_removal,
    comprehensiveness,
    deletion_curve,
    insertion_curve,
    percent_count,
    sufficiency,
    token_scores,
)
from captum_text_ext.metrics.reduction import removal_order

WEIGHTS = torch.tensor([0.0, 2.0, -1.0, 0.5, 3.0, -2.5], dtype=torch.float64)  # token 0 is padding


def linear_bow(embeddings: Tensor, lengths: Tensor) -> Tensor:
    """Logits (0, sum_t v . x_t): reads every position (padding is the zero vector)."""
    positive = (embeddings @ WEIGHTS).sum(1)
    return torch.stack([torch.zeros_like(positive), positive], 1)


def mean_bow(embeddings: Tensor, lengths: Tensor) -> Tensor:
    """Logits (0, mean over the first `length` positions of v . x_t): depends on the length."""
    positive = (embeddings @ WEIGHTS).sum(1) / lengths.double()
    return torch.stack([torch.zeros_like(positive), positive], 1)


def embed(token_lists: Sequence[Sequence[int]]) -> tuple:
    steps = max(len(t) for t in token_lists)
    ids = torch.zeros(len(token_lists), steps, dtype=torch.long)
    for n, tokens in enumerate(token_lists):
        ids[n, : len(tokens)] = torch.tensor(tokens)
    return torch.eye(len(WEIGHTS), dtype=torch.float64)[ids], torch.tensor([len(t) for t in token_lists]), ids


SENTENCES = [[1, 2, 3, 4, 5], [4, 2, 2], [3, 1, 5, 1]]


def sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))


def expected_deletion(tokens: List[int], count: int, target: int = 1) -> float:
    """Delete the `count` highest-weight tokens (stable), return p(target)."""
    weights = [float(WEIGHTS[t]) for t in tokens]
    key = weights if target == 1 else [-w for w in weights]
    order = sorted(range(len(tokens)), key=lambda i: -key[i])
    kept = sum(weights[i] for i in order[count:])
    p1 = sigmoid(kept)
    return p1 if target == 1 else 1 - p1


def expected_insertion(tokens: List[int], count: int) -> float:
    weights = [float(WEIGHTS[t]) for t in tokens]
    order = sorted(range(len(tokens)), key=lambda i: -weights[i])
    return sigmoid(sum(weights[i] for i in order[:count]))


def test_deletion_curve_of_a_linear_model_is_the_closed_form():
    x, lengths, ids = embed(SENTENCES)
    scores = WEIGHTS[ids]  # exact per-token contributions toward class 1
    curve = deletion_curve(linear_bow, x, lengths, scores, target=1, counts=[0, 1, 2, 3, 4, 5])
    for n, tokens in enumerate(SENTENCES):
        expected = [expected_deletion(tokens, min(k, len(tokens))) for k in range(6)]
        assert curve.probability[n].tolist() == pytest.approx(expected, abs=1e-12)
        full = expected_deletion(tokens, 0)
        assert float(curve.reference[n]) == pytest.approx(full, abs=1e-12)
        assert float(curve.aopc[n]) == pytest.approx(sum(full - e for e in expected) / 6, abs=1e-12)
    assert curve.unit == "tokens" and curve.steps == (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)


def test_deletion_curve_for_class_zero_ranks_toward_that_class():
    x, lengths, ids = embed(SENTENCES)
    curve = deletion_curve(linear_bow, x, lengths, -WEIGHTS[ids], target=0, counts=[0, 1, 2])
    for n, tokens in enumerate(SENTENCES):
        expected = [expected_deletion(tokens, k, target=0) for k in range(3)]
        assert curve.probability[n].tolist() == pytest.approx(expected, abs=1e-12)


def test_percent_steps_delete_the_documented_number_of_tokens():
    x, lengths, ids = embed(SENTENCES)
    percents = [0, 10, 34, 50, 100]
    curve = deletion_curve(linear_bow, x, lengths, WEIGHTS[ids], target=1, percents=percents)
    for n, tokens in enumerate(SENTENCES):
        counts = [0 if p == 0 else max(1, math.ceil(p * len(tokens) / 100)) for p in percents]
        expected = [expected_deletion(tokens, c) for c in counts]
        assert curve.probability[n].tolist() == pytest.approx(expected, abs=1e-12)
    assert curve.unit == "percent"


def test_percent_count_matches_the_formula():
    lengths = torch.arange(1, 60)
    percents = [1, 5, 10, 20, 33.3, 50, 100]
    counts = percent_count(lengths, percents)
    for i, p in enumerate(percents):
        expected = [max(1, math.ceil(round(p * n / 100, 9))) for n in lengths.tolist()]
        assert counts[i].tolist() == expected


def test_accuracy_along_the_curve_uses_the_labels():
    x, lengths, ids = embed(SENTENCES)
    labels = torch.tensor([1, 1, 0])
    curve = deletion_curve(linear_bow, x, lengths, WEIGHTS[ids], target=1, counts=[0, 1], labels=labels)
    predicted_positive = curve.probability > 0.5
    assert torch.equal(curve.correct, predicted_positive == (labels == 1).unsqueeze(1))
    assert curve.accuracy.tolist() == pytest.approx(curve.correct.double().mean(0).tolist())


def test_insertion_curve_of_a_linear_model_is_the_closed_form():
    x, lengths, ids = embed(SENTENCES)
    curve = insertion_curve(linear_bow, x, lengths, WEIGHTS[ids], target=1, counts=[0, 1, 2, 3])
    for n, tokens in enumerate(SENTENCES):
        expected = [expected_insertion(tokens, min(k, len(tokens))) for k in range(4)]
        assert curve.probability[n].tolist() == pytest.approx(expected, abs=1e-12)
        assert float(curve.reference[n]) == pytest.approx(0.5)
        assert float(curve.aopc[n]) == pytest.approx(sum(e - 0.5 for e in expected) / 4, abs=1e-12)


def test_abs_order_ranks_by_magnitude():
    x, lengths, ids = embed([[1, 5, 3]])  # weights 2, -2.5, 0.5
    curve = deletion_curve(linear_bow, x, lengths, WEIGHTS[ids], target=1, counts=[1], order="abs")
    assert float(curve.probability[0, 0]) == pytest.approx(sigmoid(2.0 + 0.5))


def test_drop_removal_shortens_the_sentence():
    x, lengths, ids = embed(SENTENCES)
    scores = WEIGHTS[ids]
    curve = deletion_curve(mean_bow, x, lengths, scores, target=1, counts=[0, 1, 2], removal="drop")
    for n, tokens in enumerate(SENTENCES):
        weights = sorted((float(WEIGHTS[t]) for t in tokens), reverse=True)
        expected = [sigmoid(sum(weights[k:]) / (len(weights) - k)) for k in range(3)]
        assert curve.probability[n].tolist() == pytest.approx(expected, abs=1e-12)


def test_dropping_every_token_leaves_one_zero_embedding():
    x, lengths, _ = embed([[1, 2]])
    out, new_lengths = apply_removal(x, lengths, torch.zeros(1, 2, dtype=torch.bool), "drop")
    assert new_lengths.tolist() == [1] and float(out.abs().sum()) == 0.0


def test_replacement_removal_uses_the_given_embedding():
    x, lengths, ids = embed(SENTENCES)
    unk = torch.eye(len(WEIGHTS), dtype=torch.float64)[3]  # weight 0.5
    curve = deletion_curve(linear_bow, x, lengths, WEIGHTS[ids], target=1, counts=[2], removal=unk)
    for n, tokens in enumerate(SENTENCES):
        weights = sorted((float(WEIGHTS[t]) for t in tokens), reverse=True)
        assert float(curve.probability[n, 0]) == pytest.approx(sigmoid(sum(weights[2:]) + 2 * 0.5), abs=1e-12)


def test_replacement_leaves_padding_alone():
    x, lengths, _ = embed([[1, 2, 3], [4]])
    keep = torch.zeros(2, 3, dtype=torch.bool)
    out, _ = apply_removal(x, lengths, keep, torch.ones(len(WEIGHTS), dtype=torch.float64))
    assert torch.equal(out[1, 1:], x[1, 1:]) and float(out[0].sum()) == 3 * len(WEIGHTS)


def test_comprehensiveness_and_sufficiency_closed_form():
    x, lengths, ids = embed(SENTENCES)
    scores = WEIGHTS[ids]
    percents = (1, 20, 50)
    comp = comprehensiveness(linear_bow, x, lengths, scores, 1, percents=percents)
    suff = sufficiency(linear_bow, x, lengths, scores, 1, percents=percents)
    for n, tokens in enumerate(SENTENCES):
        full = expected_deletion(tokens, 0)
        counts = [max(1, math.ceil(p * len(tokens) / 100)) for p in percents]
        expected_comp = [full - expected_deletion(tokens, c) for c in counts]
        expected_suff = [full - expected_insertion(tokens, c) for c in counts]
        assert comp.values[n].tolist() == pytest.approx(expected_comp, abs=1e-12)
        assert suff.values[n].tolist() == pytest.approx(expected_suff, abs=1e-12)
        assert float(comp.aopc[n]) == pytest.approx(sum(expected_comp) / 3, abs=1e-12)
        assert float(suff.aopc[n]) == pytest.approx(sum(expected_suff) / 3, abs=1e-12)


def test_a_faithful_ranking_beats_a_reversed_one():
    x, lengths, ids = embed(SENTENCES)
    good = comprehensiveness(linear_bow, x, lengths, WEIGHTS[ids], 1).aopc
    bad = comprehensiveness(linear_bow, x, lengths, -WEIGHTS[ids], 1).aopc
    assert bool((good > bad).all())


def test_batching_does_not_change_the_result():
    x, lengths, ids = embed(SENTENCES)
    whole = deletion_curve(mean_bow, x, lengths, WEIGHTS[ids], 1, removal="drop", batch_size=1000)
    rows = deletion_curve(mean_bow, x, lengths, WEIGHTS[ids], 1, removal="drop", batch_size=1)
    assert torch.equal(whole.probability, rows.probability)


def test_per_example_additional_arguments_follow_their_example():
    x, lengths, ids = embed(SENTENCES)
    offsets = torch.tensor([0.0, 10.0, -10.0], dtype=torch.float64)

    def shifted(embeddings: Tensor, n: Tensor, offset: Tensor) -> Tensor:
        return linear_bow(embeddings, n) + torch.stack([torch.zeros_like(offset), offset], 1)

    curve = deletion_curve(shifted, x, lengths, WEIGHTS[ids], 1, counts=[0, 1], additional_forward_args=(offsets,),
                           batch_size=2)
    for n, tokens in enumerate(SENTENCES):
        weights = sorted((float(WEIGHTS[t]) for t in tokens), reverse=True)
        expected = [sigmoid(sum(weights[k:]) + float(offsets[n])) for k in range(2)]
        assert curve.probability[n].tolist() == pytest.approx(expected, abs=1e-12)


def test_classes_accumulate_batches_like_the_functions():
    x, lengths, ids = embed(SENTENCES)
    scores = WEIGHTS[ids]
    for cls, fn in ((DeletionCurve, deletion_curve), (InsertionCurve, insertion_curve)):
        metric = cls(linear_bow, counts=[0, 1, 2])
        metric.update(x[:2], lengths[:2], scores[:2], 1)
        metric.update(x[2:], lengths[2:], scores[2:], 1)
        joined = metric.compute()
        assert torch.allclose(joined.probability, fn(linear_bow, x, lengths, scores, 1, counts=[0, 1, 2]).probability)
        metric.reset()
        with pytest.raises(RuntimeError, match="update"):
            metric.compute()
    for cls, fn in ((Comprehensiveness, comprehensiveness), (Sufficiency, sufficiency)):
        metric = cls(linear_bow)
        metric.update(x[:1], lengths[:1], scores[:1], 1)
        metric.update(x[1:], lengths[1:], scores[1:], 1)
        assert torch.allclose(metric.compute().aopc, fn(linear_bow, x, lengths, scores, 1).aopc)
    assert Comprehensiveness.higher_is_better and not Sufficiency.higher_is_better


def test_token_scores_reductions():
    attributions = torch.randn(2, 3, 4, dtype=torch.float64)
    assert torch.allclose(token_scores(attributions, "sum"), attributions.sum(-1))
    assert torch.allclose(token_scores(attributions, "l2"), (attributions ** 2).sum(-1).sqrt())
    assert torch.allclose(token_scores(attributions, "token"), attributions.mean(-1))
    with pytest.raises(ValueError, match="reduction"):
        token_scores(attributions, "max")


def test_removal_order_puts_padding_last_and_keeps_ties_in_reading_order():
    scores = torch.tensor([[1.0, 1.0, 5.0, 9.0], [0.0, 0.0, 0.0, 0.0]])
    assert removal_order(scores, torch.tensor([3, 2])).tolist() == [[2, 0, 1, 3], [0, 1, 2, 3]]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"removal": "blank"}, "removal"),
        ({"removal": torch.zeros(2)}, "replacement"),
        ({"order": "random"}, "order"),
        ({"counts": [1], "percents": [10]}, "either"),
        ({"counts": [-1]}, "counts"),
        ({"percents": [150]}, "percent"),
        ({"target": [1, 0]}, "one target per example"),
        ({"lengths": torch.tensor([5, 3, 6])}, "length"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, match):
    x, lengths, ids = embed(SENTENCES)
    arguments = dict(forward_func=linear_bow, embeddings=x, lengths=lengths, scores=WEIGHTS[ids], target=1)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        deletion_curve(**arguments)

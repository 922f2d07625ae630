"""NAOPC (Edin et al. 2025) on a tiny float64 LSTM: the exact bounds against every ordering enumerated, the beam
bounds inside them and around random orderings, and NAOPC itself."""

from __future__ import annotations

import itertools
from typing import List, Sequence

import pytest
import torch
from torch import Tensor

from captum_text_ext.metrics import BEAM_WIDTH, EXACT_MAX_TOKENS, aopc_bounds, apply_removal, naopc
from captum_text_ext.models import LSTMClassifier

STEPS = 7


def tiny_model() -> LSTMClassifier:
    torch.manual_seed(0)
    model = LSTMClassifier(vocab_size=5, embedding_dim=3, hidden_size=4, num_classes=3).double().eval()
    with torch.no_grad():
        model.output.weight.mul_(4)  # probabilities that move with the tokens
    return model


def sentences(count: int, steps: int, seed: int) -> Tensor:
    return torch.randn(count, steps, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def aopc_of(model, x: Tensor, length: int, target: int, ordering: Sequence[int], metric: str,
            removal="zero") -> float:
    """AOPC of one ordering, every prefix read by its own forward pass."""
    full = float(model.forward_embeddings(x, torch.tensor([length])).softmax(-1)[0, target])
    total = 0.0
    for k in range(length + 1):
        chosen = torch.zeros(1, x.shape[1], dtype=torch.bool)
        chosen[0, list(ordering[:k])] = True
        keep = chosen if metric == "sufficiency" else ~chosen
        y, n = apply_removal(x, torch.tensor([length]), keep, removal)
        total += full - float(model.forward_embeddings(y, n).softmax(-1)[0, target])
    return total / (length + 1)


@pytest.mark.parametrize("metric", ["comprehensiveness", "sufficiency"])
def test_exact_bounds_are_the_extremes_over_every_ordering_and_naopc_rescales(metric: str) -> None:
    model = tiny_model()
    x, lengths = sentences(3, 6, seed=1), torch.tensor([6, 4, 1])
    scores = sentences(1, 6, seed=2)[0, :, 0].expand(3, 6).contiguous()
    target = torch.tensor([0, 2, 1])
    with torch.no_grad():
        result = naopc(model.forward_embeddings, x, lengths, scores, target, metric=metric)
        assert bool(result.exact.all()) and result.metric == metric
        for n, length in enumerate(lengths.tolist()):
            single = x[n : n + 1]
            every = {order: aopc_of(model, single, length, int(target[n]), order, metric)
                     for order in itertools.permutations(range(length))}
            assert float(result.upper[n]) == pytest.approx(max(every.values()), abs=1e-12)
            assert float(result.lower[n]) == pytest.approx(min(every.values()), abs=1e-12)
            ranked = tuple(sorted(range(length), key=lambda i: -float(scores[n, i])))
            assert float(result.aopc[n]) == pytest.approx(every[ranked], abs=1e-12)
            if length == 1:  # one ordering: the bounds coincide and NAOPC is undefined
                assert bool(torch.isnan(result.naopc[n]))
                continue
            expected = (every[ranked] - min(every.values())) / (max(every.values()) - min(every.values()))
            assert float(result.naopc[n]) == pytest.approx(expected, abs=1e-10)
            best = max(every, key=every.get)  # scores that rank the best ordering first give NAOPC 1
            best_scores = torch.zeros(1, 6, dtype=torch.float64)
            best_scores[0, list(best)] = torch.arange(length, 0, -1, dtype=torch.float64)
            top = naopc(model.forward_embeddings, single, lengths[n : n + 1], best_scores, target[n : n + 1],
                        metric=metric)
            assert float(top.naopc[0]) == pytest.approx(1.0, abs=1e-12)


def test_beam_bounds_lie_inside_the_exact_ones_and_bracket_random_orderings() -> None:
    model = tiny_model()
    x, lengths = sentences(2, STEPS, seed=3), torch.tensor([STEPS, STEPS - 1])
    scores = sentences(1, STEPS, seed=4)[0, :, 0].expand(2, STEPS).contiguous()
    with torch.no_grad():
        exact = naopc(model.forward_embeddings, x, lengths, scores, 1)
        beam = naopc(model.forward_embeddings, x, lengths, scores, 1, exact_max_tokens=3, beam_width=2)
        assert bool(exact.exact.all()) and not bool(beam.exact.any()) and beam.beam_width == 2
        assert bool((beam.upper <= exact.upper + 1e-12).all()) and bool((beam.lower >= exact.lower - 1e-12).all())
        assert torch.allclose(beam.aopc, exact.aopc, atol=1e-12)
        generator = torch.Generator().manual_seed(5)
        for n, length in enumerate(lengths.tolist()):
            for _ in range(10):
                order: List[int] = torch.randperm(length, generator=generator).tolist()
                for metric in ("comprehensiveness", "sufficiency"):  # one set of bounds serves both
                    value = aopc_of(model, x[n : n + 1], length, 1, order, metric)
                    assert float(beam.lower[n]) - 1e-12 <= value <= float(beam.upper[n]) + 1e-12


def test_long_sentences_get_beam_bounds_of_the_stated_width() -> None:
    model = tiny_model()
    steps = EXACT_MAX_TOKENS + 2
    x, lengths = sentences(1, steps, seed=6), torch.tensor([steps])
    scores = sentences(1, steps, seed=7)[..., 0]
    with torch.no_grad():
        result = naopc(model.forward_embeddings, x, lengths, scores, 0, removal="unk",
                       replacement=torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64))
    assert BEAM_WIDTH == 5 and result.beam_width == 5 and not bool(result.exact[0])
    assert float(result.lower[0]) <= float(result.upper[0])
    assert float(result.lower[0]) < float(result.aopc[0]) < float(result.upper[0])  # a random ordering in between


def test_bounds_computed_once_serve_every_explanation_and_must_match_it() -> None:
    model = tiny_model()
    x, lengths, target = sentences(3, 5, seed=8), torch.tensor([5, 3, 4]), torch.tensor([0, 1, 2])
    forward = model.forward_embeddings
    with torch.no_grad():
        bounds = aopc_bounds(forward, x, lengths, target)
        for seed in (9, 10):
            scores = sentences(1, 5, seed)[0, :, 0].expand(3, 5).contiguous()
            alone, shared = naopc(forward, x, lengths, scores, target), naopc(forward, x, lengths, scores, target,
                                                                              bounds=bounds)
            assert torch.equal(alone.naopc, shared.naopc) and torch.equal(alone.upper, shared.upper)
            sufficiency = naopc(forward, x, lengths, scores, target, metric="sufficiency")
            shared = naopc(forward, x, lengths, scores, target, metric="sufficiency", bounds=bounds)
            assert torch.equal(sufficiency.naopc, shared.naopc) and torch.equal(sufficiency.aopc, shared.aopc)
        with pytest.raises(ValueError, match="for these targets"):
            naopc(forward, x, lengths, scores, 0, bounds=bounds)
        with pytest.raises(ValueError, match="removal 'drop'"):
            naopc(forward, x, lengths, scores, target, removal="drop", bounds=bounds)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metric": "deletion"}, "`metric`"),
        ({"exact_max_tokens": 17}, "exact_max_tokens"),
        ({"beam_width": 0}, "beam_width"),
        ({"removal": "unk"}, "replacement"),
        ({"scores": torch.zeros(1, 4)}, "matching scores"),
    ],
)
def test_bad_settings_raise_clear_errors(kwargs, match) -> None:
    model = tiny_model()
    arguments = dict(forward_func=model.forward_embeddings, embeddings=sentences(1, 3, 0), lengths=torch.tensor([3]),
                     scores=torch.zeros(1, 3), target=0)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        naopc(**arguments)

"""Removal that stays in distribution: every removal metric replaces removed tokens by the ``<unk>`` or pad token's
embedding on request, with the closed forms of the linear bag of words of ``test_curves``."""

from __future__ import annotations

import math

import pytest
import torch
from test_curves import SENTENCES, WEIGHTS, embed, linear_bow, sigmoid
from torch import nn

from captum_text_ext.datasets import Vocabulary
from captum_text_ext.metrics import (
    REMOVALS,
    Comprehensiveness,
    DeletionCurve,
    InsertionCurve,
    Sufficiency,
    apply_removal,
    comprehensiveness,
    deletion_curve,
    insertion_curve,
    replacement_embedding,
    sufficiency,
)

VOCABULARY = Vocabulary(["<pad>", "<unk>", "c", "d", "e", "f"])  # <unk> is id 1: weight 2.0
EMBEDDING = nn.Embedding.from_pretrained(torch.eye(len(WEIGHTS), dtype=torch.float64))
FUNCTIONS = {"comprehensiveness": comprehensiveness, "sufficiency": sufficiency, "deletion": deletion_curve,
             "insertion": insertion_curve}
CLASSES = (Comprehensiveness, Sufficiency, DeletionCurve, InsertionCurve)


def closed_form(name: str, tokens, count: int, filler: float) -> float:
    """The value of one step of ``name`` when each removed token adds ``filler`` to the class-1 logit."""
    weights = sorted((float(WEIGHTS[t]) for t in tokens), reverse=True)
    length = len(tokens)
    full = sigmoid(sum(weights))
    deleted = sigmoid(sum(weights[count:]) + count * filler)
    kept = sigmoid(sum(weights[:count]) + (length - count) * filler)
    nothing = sigmoid(length * filler)
    return {"comprehensiveness": full - deleted, "sufficiency": full - kept, "deletion": deleted,
            "insertion": kept, "nothing": nothing}[name]


@pytest.mark.parametrize("removal", ["unk", "pad", "zero"])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_removal_metric_replaces_by_the_named_token(name: str, removal: str) -> None:
    x, lengths, ids = embed(SENTENCES)
    replacement = None if removal == "zero" else replacement_embedding(EMBEDDING, VOCABULARY, removal)
    filler = {"unk": float(WEIGHTS[1]), "pad": float(WEIGHTS[0]), "zero": 0.0}[removal]
    steps = dict(percents=(20, 50)) if name in ("comprehensiveness", "sufficiency") else dict(counts=[1, 2])
    result = FUNCTIONS[name](linear_bow, x, lengths, WEIGHTS[ids], 1, removal=removal, replacement=replacement,
                             **steps)
    values = result.values if hasattr(result, "values") else result.probability
    for n, tokens in enumerate(SENTENCES):
        counts = ([max(1, math.ceil(p * len(tokens) / 100)) for p in (20, 50)] if "percents" in steps else [1, 2])
        expected = [closed_form(name, tokens, c, filler) for c in counts]
        assert values[n].tolist() == pytest.approx(expected, abs=1e-12), (name, removal, n)
        if name == "insertion":  # the reference is the sentence with every token replaced
            assert float(result.reference[n]) == pytest.approx(closed_form("nothing", tokens, 0, filler), abs=1e-12)
    if replacement is not None:  # the name is the given vector, nothing else
        same = FUNCTIONS[name](linear_bow, x, lengths, WEIGHTS[ids], 1, removal=replacement, **steps)
        assert torch.equal(same.aopc, result.aopc)


@pytest.mark.parametrize("metric", CLASSES)
def test_the_classes_take_the_removal_and_refuse_it_without_its_embedding_at_once(metric) -> None:
    x, lengths, ids = embed(SENTENCES)
    unk = replacement_embedding(EMBEDDING, VOCABULARY, "unk")
    accumulated = metric(linear_bow, removal="unk", replacement=unk)
    accumulated.update(x, lengths, WEIGHTS[ids], 1)
    zeroed = metric(linear_bow)
    zeroed.update(x, lengths, WEIGHTS[ids], 1)
    assert not torch.allclose(accumulated.compute().aopc, zeroed.compute().aopc)
    with pytest.raises(ValueError, match="removal='unk' replaces each removed token by the <unk> token's embedding"):
        metric(linear_bow, removal="unk")
    with pytest.raises(ValueError, match="`replacement` is read only with removal='unk' or 'pad'"):
        metric(linear_bow, replacement=unk)


def test_replacement_settings_are_checked() -> None:
    x, lengths, ids = embed(SENTENCES)
    arguments = dict(forward_func=linear_bow, embeddings=x, lengths=lengths, scores=WEIGHTS[ids], target=1)
    with pytest.raises(ValueError, match="removal='pad' replaces each removed token by the pad token's embedding"):
        deletion_curve(**arguments, removal="pad")
    with pytest.raises(ValueError, match="replacement embedding of shape"):
        comprehensiveness(**arguments, removal="unk", replacement=torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="one embedding vector"):
        sufficiency(**arguments, removal="unk", replacement=torch.zeros(2, len(WEIGHTS), dtype=torch.float64))
    with pytest.raises(ValueError, match="resolve_removal"):
        apply_removal(x, lengths, torch.ones(x.shape[:2], dtype=torch.bool), "unk")
    with pytest.raises(TypeError, match="nn.Embedding"):
        replacement_embedding(nn.Linear(2, 2), VOCABULARY, "unk")
    with pytest.raises(ValueError, match="no unknown token"):
        replacement_embedding(EMBEDDING, Vocabulary(["<pad>", "a", "b", "c", "d", "e"], unk_token=None), "unk")
    with pytest.raises(ValueError, match="'unk' or 'pad'"):
        replacement_embedding(EMBEDDING, VOCABULARY, "zero")
    assert set(REMOVALS) == {"zero", "unk", "pad", "drop"}


def test_a_pad_embedding_trained_with_padding_idx_is_zero_so_pad_removal_equals_zeroing() -> None:
    torch.manual_seed(0)
    embedding = nn.Embedding(len(VOCABULARY), len(WEIGHTS), padding_idx=VOCABULARY.pad_index).double()
    x, lengths, ids = embed(SENTENCES)
    pad = replacement_embedding(embedding, VOCABULARY, "pad")
    assert float(pad.abs().max()) == 0.0
    zero = deletion_curve(linear_bow, x, lengths, WEIGHTS[ids], 1, counts=[1, 2])
    padded = deletion_curve(linear_bow, x, lengths, WEIGHTS[ids], 1, counts=[1, 2], removal="pad", replacement=pad)
    assert torch.equal(zero.probability, padded.probability)

import json
from typing import List

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from captum_text_ext.models import BagOfWordsMLP, bag_of_words

VOCAB = 12


def test_bag_of_words_ignores_specials_and_positions_past_the_length() -> None:
    ids = torch.tensor([[2, 1, 5, 0, 7], [3, 3, 9, 9, 9]])
    features = bag_of_words(ids, torch.tensor([3, 2]), VOCAB)
    assert features.dtype == torch.get_default_dtype()
    assert features[0].nonzero().flatten().tolist() == [2, 5]
    assert features[1].nonzero().flatten().tolist() == [3]
    assert features.max() == 1.0


def test_bag_of_words_without_lengths_reads_everything() -> None:
    features = bag_of_words(torch.tensor([[2, 4, 0, 1, 11]]), None, VOCAB, dtype=torch.float64)
    assert features.dtype == torch.float64
    assert features[0].nonzero().flatten().tolist() == [2, 4, 11]


def test_bag_of_words_ignore_is_configurable() -> None:
    ids, lengths = torch.tensor([[0, 1, 2]]), torch.tensor([3])
    assert bag_of_words(ids, lengths, VOCAB, ignore=())[0].nonzero().flatten().tolist() == [0, 1, 2]
    assert bag_of_words(ids, lengths, VOCAB, ignore=(2,))[0].nonzero().flatten().tolist() == [0, 1]


def test_bag_of_words_checks_ids_only_where_it_reads() -> None:
    lengths = torch.tensor([2])
    assert bag_of_words(torch.tensor([[2, 3, 99, -4]]), lengths, VOCAB)[0].sum() == 2
    with pytest.raises(ValueError, match=r"token ids in \[0, 12\), but got ids from 2 to 12"):
        bag_of_words(torch.tensor([[2, 12]]), lengths, VOCAB)
    with pytest.raises(ValueError, match=r"`lengths` to have shape \(1,\), but got \(1, 1\)"):
        bag_of_words(torch.tensor([[2, 3]]), torch.tensor([[2]]), VOCAB)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.integers(0, VOCAB - 1), min_size=1, max_size=6), min_size=1, max_size=4), st.data())
def test_bag_of_words_matches_a_set_of_the_read_ids(sentences: List[List[int]], data: st.DataObject) -> None:
    width = max(len(s) for s in sentences)
    lengths = [data.draw(st.integers(1, len(s))) for s in sentences]
    ids = torch.tensor([s + [0] * (width - len(s)) for s in sentences])
    features = bag_of_words(ids, torch.tensor(lengths), VOCAB)
    for row, sentence, n in zip(features, sentences, lengths):
        assert set(row.nonzero().flatten().tolist()) == set(sentence[:n]) - {0, 1}


def _model() -> BagOfWordsMLP:
    torch.manual_seed(0)
    return BagOfWordsMLP(VOCAB, 3, hidden_sizes=(5, 4)).double().eval()


def test_layers_are_linear_relu_linear_relu_linear() -> None:
    model = BagOfWordsMLP(5002, 2, hidden_sizes=(8, 6))
    assert [(layer.in_features, layer.out_features) for layer in model.hidden_layers] == [(5002, 8), (8, 6)]
    assert all(isinstance(a, nn.ReLU) for a in model.activations) and len(model.activations) == 2
    assert (model.output.in_features, model.output.out_features) == (6, 2)


def test_forward_is_forward_features_of_the_bag_of_words_and_padding_is_invisible() -> None:
    model = _model()
    ids = torch.tensor([[2, 3, 4, 5], [6, 7, 0, 0], [8, 0, 0, 0]])
    lengths = torch.tensor([4, 2, 1])
    logits = model(ids, lengths)
    assert logits.shape == (3, 3)
    assert torch.equal(logits, model.forward_features(bag_of_words(ids, lengths, VOCAB, dtype=torch.float64)))
    for i, n in enumerate(lengths.tolist()):
        assert torch.allclose(logits[i], model(ids[i : i + 1, :n])[0], rtol=0, atol=1e-10)
    noisy = ids.clone()
    noisy[1, 2:] = torch.tensor([9, 10])
    noisy[2, 1:] = torch.tensor([11, 1, 4])
    assert torch.equal(model(noisy, lengths), logits)
    assert torch.equal(model(ids.flip(1)[:1], lengths[:1]), model(ids[:1], lengths[:1]))  # word order is invisible


def test_forward_features_is_differentiable_for_attribution() -> None:
    model = _model()
    features = bag_of_words(torch.tensor([[2, 3]]), None, VOCAB, dtype=torch.float64).requires_grad_()
    model.forward_features(features)[0, 1].backward()
    assert features.grad is not None and features.grad.shape == (1, VOCAB)


def test_config_is_plain_and_rebuilds_an_identical_model() -> None:
    model = BagOfWordsMLP(VOCAB, 3, hidden_sizes=(5, 4), dropout=0.25, ignore_ids=(0,))
    assert model.config == {
        "vocab_size": VOCAB,
        "num_classes": 3,
        "hidden_sizes": [5, 4],
        "dropout": 0.25,
        "ignore_ids": [0],
    }
    assert json.loads(json.dumps(model.config)) == model.config
    torch.manual_seed(0)
    a = BagOfWordsMLP(**model.config)
    torch.manual_seed(0)
    b = BagOfWordsMLP(**a.config)
    assert repr(a) == repr(b) and "ignore_ids=(0,)" in repr(a)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_reset_parameters() -> None:
    model = _model()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(1.0)
    model.reset_parameters()
    assert all(not torch.equal(p, torch.ones_like(p)) for p in model.parameters())


def test_invalid_hidden_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"positive `hidden_sizes`, but got \[4, 0\]"):
        BagOfWordsMLP(10, 2, hidden_sizes=(4, 0))

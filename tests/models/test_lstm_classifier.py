import json

import pytest
import torch
from torch import nn

from captum_text_ext.models import LSTMClassifier
from captum_text_ext.models.lstm_classifier import POOLINGS


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_padded_batch_equals_each_sentence_alone(cell: str, pooling: str, bidirectional: bool) -> None:
    torch.manual_seed(0)
    model = LSTMClassifier(
        20, 6, 5, 3, cell=cell, num_layers=2, bidirectional=bidirectional, pooling=pooling
    ).double().eval()
    ids = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 0, 0, 0], [10, 11, 12, 0, 0]])
    lengths = torch.tensor([5, 2, 3])
    batched = model(ids, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = model(ids[i : i + 1, :n], lengths[i : i + 1])
        assert torch.allclose(batched[i], alone[0], atol=1e-12)


def test_forward_embeddings_is_the_embedding_input_twin() -> None:
    torch.manual_seed(0)
    model = LSTMClassifier(20, 6, 5, 2).eval()
    ids = torch.tensor([[3, 4, 5]])
    assert torch.equal(model(ids), model.forward_embeddings(model.embedding(ids)))


def test_invalid_options_are_refused() -> None:
    with pytest.raises(ValueError, match="`cell` to be 'lstm' or 'gru'"):
        LSTMClassifier(5, 2, 2, 2, cell="rnn")
    with pytest.raises(ValueError, match="`pooling` to be one of"):
        LSTMClassifier(5, 2, 2, 2, pooling="sum")
    with pytest.raises(ValueError, match="pooling='attention'`, but this one has pooling='last'"):
        LSTMClassifier(5, 2, 2, 2).attention_weights(torch.tensor([[2, 3]]))


def _attentive(num_layers: int = 2, bidirectional: bool = True) -> LSTMClassifier:
    torch.manual_seed(0)
    return LSTMClassifier(
        20, 6, 5, 3, num_layers=num_layers, bidirectional=bidirectional, pooling="attention"
    ).double().eval()


IDS = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 0, 0, 0], [10, 11, 12, 0, 0]])
LENGTHS = torch.tensor([5, 2, 3])


def test_attention_gives_padding_exactly_zero_weight() -> None:
    weights = _attentive().attention_weights(IDS, LENGTHS)
    assert weights.shape == IDS.shape
    padding = torch.arange(IDS.shape[1]) >= LENGTHS.unsqueeze(1)
    assert torch.equal(weights[padding], torch.zeros(int(padding.sum()), dtype=torch.float64))
    assert (weights[~padding] > 0).all()
    assert torch.allclose(weights.sum(dim=1), torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-12)


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_attention_matches_a_naive_oracle(num_layers: int, bidirectional: bool) -> None:
    model = _attentive(num_layers, bidirectional)
    logits = model(IDS, LENGTHS)
    for i, n in enumerate(LENGTHS.tolist()):
        h, _ = model.rnn(model.embedding(IDS[i : i + 1, :n]))
        h = h[0]
        w, b, v = model.attention_projection.weight, model.attention_projection.bias, model.attention_vector.weight[0]
        alpha = torch.softmax(torch.tanh(h @ w.T + b) @ v, dim=0)
        expected = model.output(alpha @ h)
        assert torch.allclose(logits[i], expected, rtol=0, atol=1e-10)
        assert torch.allclose(model.attention_weights(IDS, LENGTHS)[i, :n], alpha, rtol=0, atol=1e-12)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_padding_ids_never_change_the_logits(pooling: str) -> None:
    torch.manual_seed(0)
    model = LSTMClassifier(20, 6, 5, 3, num_layers=2, pooling=pooling).double().eval()
    noisy = IDS.clone()
    noisy[1, 2:] = torch.tensor([13, 14, 15])
    noisy[2, 3:] = torch.tensor([16, 17])
    assert torch.equal(model(noisy, LENGTHS), model(IDS, LENGTHS))


@pytest.mark.parametrize("pooling", POOLINGS)
def test_config_is_plain_and_rebuilds_an_identical_model(pooling: str) -> None:
    torch.manual_seed(0)
    model = LSTMClassifier(20, 6, 5, 3, cell="gru", num_layers=3, pooling=pooling, dropout=0.5, output_bias=False)
    config = model.config
    assert json.loads(json.dumps(config)) == config
    assert config == {
        "vocab_size": 20,
        "embedding_dim": 6,
        "hidden_size": 5,
        "num_classes": 3,
        "cell": "gru",
        "num_layers": 3,
        "bidirectional": True,
        "pooling": pooling,
        "dropout": 0.5,
        "padding_idx": 0,
        "output_bias": False,
    }
    torch.manual_seed(0)
    clone = type(model)(**config)
    assert repr(clone) == repr(model)
    assert clone.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(clone.state_dict().values(), model.state_dict().values()))
    assert torch.equal(clone.eval()(IDS, LENGTHS), model.eval()(IDS, LENGTHS))


def test_attention_layers_do_not_change_the_other_layers_initialisation() -> None:
    torch.manual_seed(0)
    plain = LSTMClassifier(20, 6, 5, 3)
    torch.manual_seed(0)
    attentive = LSTMClassifier(20, 6, 5, 3, pooling="attention")
    shared = plain.state_dict()
    assert all(torch.equal(shared[key], value) for key, value in attentive.state_dict().items() if key in shared)
    assert isinstance(attentive.attention_activation, nn.Tanh)
    assert attentive.attention_vector.bias is None


def test_reset_parameters_and_extra_repr() -> None:
    model = _attentive()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(1.0)
    model.reset_parameters()
    assert torch.equal(model.embedding.weight[0], torch.zeros(6, dtype=torch.float64))
    for name, parameter in model.named_parameters():
        assert not torch.equal(parameter, torch.ones_like(parameter)), name
    assert "pooling='attention'" in repr(model)

import json
from typing import List

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_text_ext.models import EmbeddingCNN, TextCNN

VOCAB = 30
LENGTHS = torch.tensor([7, 1, 4, 2])


def _model(**kwargs: int) -> EmbeddingCNN:
    torch.manual_seed(0)
    return EmbeddingCNN(VOCAB, 3, embedding_dim=4, num_filters=5, **kwargs).double().eval()


def _batch() -> Tensor:
    ids = torch.randint(2, VOCAB, (len(LENGTHS), int(LENGTHS.max())), generator=torch.Generator().manual_seed(1))
    return ids.masked_fill(torch.arange(ids.shape[1]) >= LENGTHS.unsqueeze(1), 0)


def _oracle(model: EmbeddingCNN, ids: List[int]) -> Tensor:
    """The sentence alone, zero-padded to at least the kernel width, every window pooled."""
    x = model.embedding.weight[ids]
    x = F.pad(x, (0, 0, 0, max(0, model.receptive_field - len(ids)))).T.unsqueeze(0)
    features = torch.relu(F.conv1d(x, model.conv_layers[0].weight, model.conv_layers[0].bias)).amax(dim=-1)
    return F.linear(features, model.output.weight, model.output.bias)[0]


def test_defaults_are_hechtlingers_first_example() -> None:
    model = EmbeddingCNN(vocab_size=100, num_classes=2)
    assert model.embedding.embedding_dim == 50
    conv = model.conv_layers[0]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.padding) == (50, 250, (3,), (0,))
    assert isinstance(model.activations[0], nn.ReLU)
    assert (model.output.in_features, model.output.out_features) == (250, 2)


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_padded_batch_equals_each_sentence_alone_and_the_oracle(kernel_size: int) -> None:
    model, ids = _model(kernel_size=kernel_size), _batch()
    batched = model(ids, LENGTHS)
    assert batched.shape == (len(LENGTHS), 3)
    for i, n in enumerate(LENGTHS.tolist()):
        assert torch.allclose(batched[i], model(ids[i : i + 1, :n])[0], rtol=0, atol=1e-10)
        assert torch.allclose(batched[i], _oracle(model, ids[i, :n].tolist()), rtol=0, atol=1e-10)


def test_padding_positions_never_change_the_output() -> None:
    model, ids = _model(), _batch()
    padding = torch.arange(ids.shape[1]) >= LENGTHS.unsqueeze(1)
    noisy = ids.clone()
    noisy[padding] = torch.randint(0, VOCAB, (int(padding.sum()),), generator=torch.Generator().manual_seed(2))
    assert torch.equal(model(noisy, LENGTHS), model(ids, LENGTHS))


def test_forward_embeddings_is_the_embedding_input_twin() -> None:
    model, ids = _model(), _batch()
    assert torch.equal(model(ids, LENGTHS), model.forward_embeddings(model.embedding(ids), LENGTHS))


def test_one_word_sentences_work() -> None:
    logits = _model()(torch.tensor([[5]]))
    assert logits.shape == (1, 3) and torch.isfinite(logits).all()


def test_same_masking_as_a_one_layer_text_cnn() -> None:
    model, ids = _model(), _batch()
    twin = TextCNN(VOCAB, 4, 3, channels=(5,), kernel_sizes=(3,)).double().eval()
    twin.embedding.load_state_dict(model.embedding.state_dict())
    twin.conv_layers[0].load_state_dict(model.conv_layers[0].state_dict())
    twin.output.load_state_dict(model.output.state_dict())
    assert torch.equal(twin(ids, LENGTHS), model(ids, LENGTHS))


def test_config_is_plain_and_rebuilds_an_identical_model() -> None:
    model = _model(kernel_size=2).float()
    assert json.loads(json.dumps(model.config)) == model.config
    torch.manual_seed(0)
    clone = EmbeddingCNN(**model.config)
    assert repr(clone) == repr(model)
    assert all(torch.equal(a, b) for a, b in zip(clone.state_dict().values(), model.state_dict().values()))


def test_reset_parameters_and_extra_repr() -> None:
    model = _model()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(1.0)
    model.reset_parameters()
    assert torch.equal(model.embedding.weight[0], torch.zeros(4, dtype=torch.float64))
    assert not torch.equal(model.conv_layers[0].weight, torch.ones_like(model.conv_layers[0].weight))
    assert "receptive_field=3" in repr(model)


def test_invalid_kernel_size_is_refused() -> None:
    with pytest.raises(ValueError, match="positive `channels` and `kernel_sizes`"):
        EmbeddingCNN(10, 2, kernel_size=0)

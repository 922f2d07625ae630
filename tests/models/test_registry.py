"""Registry functions, and the contract every registered architecture keeps, over a zoo of tiny float64 models."""

import inspect
import json
from typing import Any, Dict, Tuple

import pytest
import torch
from _transformer_models import require_extra
from torch import Tensor, nn

from captum_text_ext.models import (
    ARCHITECTURES,
    BagOfWordsMLP,
    EmbeddingCNN,
    KimCNN,
    LSTMClassifier,
    TextCNN,
    TransformerClassifier,
    architecture_name,
    bag_of_words,
    build_model,
)

VOCAB, CLASSES = 25, 3
ZOO: Dict[str, Tuple[str, Dict[str, Any]]] = {
    **{
        f"lstm-{pooling}": ("lstm", dict(vocab_size=VOCAB, embedding_dim=4, hidden_size=3, num_classes=CLASSES,
                                         num_layers=2, pooling=pooling))
        for pooling in ("last", "max", "mean", "attention")
    },
    "textcnn-stacked": ("textcnn", dict(vocab_size=VOCAB, embedding_dim=4, num_classes=CLASSES, channels=[4, 3],
                                        kernel_sizes=[3, 3])),
    "textcnn-parallel": ("textcnn", dict(vocab_size=VOCAB, embedding_dim=4, num_classes=CLASSES, channels=[2, 2],
                                         kernel_sizes=[2, 4], mode="parallel")),
    "textcnn-fixed": ("textcnn", dict(vocab_size=VOCAB, embedding_dim=4, num_classes=CLASSES, channels=[3],
                                      kernel_sizes=[3], input_length=6)),
    "bow_mlp": ("bow_mlp", dict(vocab_size=VOCAB, num_classes=CLASSES, hidden_sizes=[5, 4])),
    "embedding_cnn": ("embedding_cnn", dict(vocab_size=VOCAB, num_classes=CLASSES, embedding_dim=4, num_filters=5)),
    "kimcnn": ("kimcnn", dict(vocab_size=VOCAB, embedding_dim=4, num_classes=CLASSES, num_filters=3,
                              filter_sizes=[2, 3])),
    **{
        f"transformer-{attention}": ("transformer", dict(vocab_size=VOCAB, num_classes=CLASSES, hidden_size=8,
                                                         num_heads=2, max_length=16, attn_implementation=attention))
        for attention in ("eager", "sdpa")
    },
}  # fmt: skip
WITH_INPUT_TWIN = sorted(case for case, (name, _) in ZOO.items() if name != "transformer")
"""The transformer has no ``forward_embeddings``: methods attribute at its embeddings module's output."""
IDS = torch.tensor([[2, 3, 4, 5, 6, 7, 8], [9, 10, 0, 0, 0, 0, 0], [11, 12, 13, 14, 0, 0, 0], [15, 0, 0, 0, 0, 0, 0]])
LENGTHS = torch.tensor([7, 2, 4, 1])


def _model(case: str) -> nn.Module:
    name, config = ZOO[case]
    if name == "transformer":
        require_extra()
    torch.manual_seed(0)
    return build_model(name, config).double().eval()


def _twin(model: nn.Module, ids: Tensor, lengths: Tensor) -> Tensor:
    if isinstance(model, BagOfWordsMLP):
        return model.forward_features(bag_of_words(ids, lengths, VOCAB, dtype=torch.float64))
    return model.forward_embeddings(model.embedding(ids), lengths)


def test_the_zoo_covers_every_registered_architecture() -> None:
    assert {name for name, _ in ZOO.values()} == set(ARCHITECTURES)
    assert ARCHITECTURES == {
        "lstm": LSTMClassifier,
        "textcnn": TextCNN,
        "bow_mlp": BagOfWordsMLP,
        "embedding_cnn": EmbeddingCNN,
        "kimcnn": KimCNN,
        "transformer": TransformerClassifier,
    }


@pytest.mark.parametrize("case", sorted(ZOO))
def test_padded_batch_equals_each_sentence_alone(case: str) -> None:
    model = _model(case)
    batched = model(IDS, LENGTHS)
    assert batched.shape == (len(IDS), CLASSES) and batched.dtype == torch.float64
    for i, n in enumerate(LENGTHS.tolist()):
        assert torch.allclose(batched[i], model(IDS[i : i + 1, :n])[0], rtol=0, atol=1e-10)


@pytest.mark.parametrize("case", sorted(ZOO))
def test_token_ids_at_padded_positions_never_change_the_logits(case: str) -> None:
    model = _model(case)
    padding = torch.arange(IDS.shape[1]) >= LENGTHS.unsqueeze(1)
    noisy = IDS.clone()
    noisy[padding] = torch.randint(1, VOCAB, (int(padding.sum()),), generator=torch.Generator().manual_seed(0))
    assert torch.equal(model(noisy, LENGTHS), model(IDS, LENGTHS))


@pytest.mark.parametrize("case", WITH_INPUT_TWIN)
def test_input_twin_equals_forward(case: str) -> None:
    model = _model(case)
    assert torch.equal(_twin(model, IDS, LENGTHS), model(IDS, LENGTHS))


@pytest.mark.parametrize("case", sorted(ZOO))
def test_config_is_plain_and_rebuilds_an_identical_model(case: str) -> None:
    name, config = ZOO[case]
    model = _model(case).float()
    assert {key: model.config[key] for key in config} == config
    assert list(model.config) == list(inspect.signature(type(model)).parameters)
    assert json.loads(json.dumps(model.config)) == model.config
    assert architecture_name(model) == name
    torch.manual_seed(0)
    clone = type(model)(**model.config)
    assert repr(clone) == repr(model)
    assert all(torch.equal(a, b) for a, b in zip(clone.state_dict().values(), model.state_dict().values()))


def test_build_model_refuses_unknown_architectures_listing_the_known_ones() -> None:
    known = r"\['bow_mlp', 'embedding_cnn', 'kimcnn', 'lstm', 'textcnn', 'transformer'\]"
    with pytest.raises(ValueError, match=rf"one of {known}, but got 'gpt'"):
        build_model("gpt", {})


def test_build_model_names_bad_config_keys() -> None:
    with pytest.raises(ValueError, match=r"unexpected keys \['colour', 'hidden'\] and lacks required keys \[\]"):
        build_model("bow_mlp", {"vocab_size": 5, "num_classes": 2, "hidden": [3], "colour": "red"})
    with pytest.raises(ValueError, match=r"unexpected keys \[\] and lacks required keys \['num_classes'\]"):
        build_model("embedding_cnn", {"vocab_size": 5})


def test_architecture_name_refuses_unregistered_classes() -> None:
    class Wider(EmbeddingCNN):
        pass

    with pytest.raises(TypeError, match="registered architecture .*, but got Wider"):
        architecture_name(Wider(5, 2))
    with pytest.raises(TypeError, match="but got Linear"):
        architecture_name(nn.Linear(2, 2))

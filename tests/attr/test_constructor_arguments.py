"""No setting a user can change that is then ignored: every constructor argument of the hidden-unit and surrogate
classes is either read at call time (changing it changes the next result) or a read-only attribute (changing it
raises and leaves it as it was)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Dict, FrozenSet

import pytest
import torch
from torch import Tensor, nn

from captum_text_ext import (
    GradientLinearSurrogate,
    HiddenUnitOptimization,
    HiddenUnitSaliency,
    LayerGradientLinearSurrogate,
)
from captum_text_ext.models import EmbeddingCNN, TextCNN

VOCAB = 12
WORDS = ["<pad>", "<unk>"] + [f"w{i}" for i in range(VOCAB - 2)]
IDS = torch.tensor([[2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 2, 3]])


class Doubled(nn.Module):
    """The same model with every output doubled."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: Any) -> Tensor:
        return 2 * self.model(*args)


def _textcnn() -> TextCNN:
    torch.manual_seed(0)
    return TextCNN(VOCAB, 4, 3, channels=(5, 4), kernel_sizes=(3, 2)).double().eval()


def _embcnn() -> EmbeddingCNN:
    torch.manual_seed(0)
    return EmbeddingCNN(vocab_size=VOCAB, num_classes=2, embedding_dim=4, num_filters=5).double().eval()


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 2)).double()


@dataclasses.dataclass(frozen=True)
class Case:
    """A class, how to build one, the attribute each constructor argument is stored as (where the name differs)
    and the attributes read at call time."""

    cls: type
    build: Callable[[], Any]
    renamed: Dict[str, str]
    call_time: FrozenSet[str]


def _saliency() -> HiddenUnitSaliency:
    model = _textcnn()
    return HiddenUnitSaliency(model, model.activations[0])


def _hunt() -> HiddenUnitOptimization:
    model = _textcnn()
    return HiddenUnitOptimization(model, model.activations[0], model.embedding, WORDS, lambda1=0.004, lambda2=0.02)


def _layer_surrogate() -> LayerGradientLinearSurrogate:
    model = _embcnn()
    return LayerGradientLinearSurrogate(model, model.embedding)


_RENAMED_BY_CAPTUM = {"multiply_by_inputs": "multiplies_by_inputs"}
CASES = [
    Case(HiddenUnitSaliency, _saliency, {"model": "forward_func"}, frozenset({"forward_func", "layer"})),
    Case(HiddenUnitOptimization, _hunt, {}, frozenset()),
    Case(GradientLinearSurrogate, lambda: GradientLinearSurrogate(_mlp()), _RENAMED_BY_CAPTUM,
         frozenset({"forward_func"})),
    Case(LayerGradientLinearSurrogate, _layer_surrogate, _RENAMED_BY_CAPTUM, frozenset({"forward_func", "layer"})),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.cls.__name__)
def test_every_other_constructor_argument_is_read_only(case: Case) -> None:
    made = case.build()
    names = list(inspect.signature(case.cls.__init__).parameters)[1:]
    for name in names:
        attribute = case.renamed.get(name, name)
        assert hasattr(made, attribute), f"{case.cls.__name__}({name}=...) is not readable as .{attribute}"
        if attribute in case.call_time:
            continue  # the tests below change it and see the result change
        before = getattr(made, attribute)
        with pytest.raises((AttributeError, ValueError), match=attribute):
            setattr(made, attribute, object())
        after = getattr(made, attribute)
        assert after is before or after == before, f"{case.cls.__name__}.{attribute} changed although it raised"
    assert case.call_time <= {case.renamed.get(name, name) for name in names}


def test_hidden_unit_saliency_reads_its_model_and_layer_at_call_time() -> None:
    model = _textcnn()
    saliency = HiddenUnitSaliency(model, model.activations[0])
    first = saliency.attribute(IDS, target=1)
    saliency.forward_func = Doubled(model)
    assert torch.allclose(saliency.attribute(IDS, target=1), 2 * first, rtol=1e-12, atol=0)
    saliency.layer = model.activations[1]
    fresh = HiddenUnitSaliency(Doubled(model), model.activations[1])
    assert torch.equal(saliency.attribute(IDS, target=1), fresh.attribute(IDS, target=1))
    assert saliency.stack == fresh.stack and len(saliency.stack) > 1  # the deeper layer's stack, found anew


def test_hidden_unit_optimization_keeps_one_model_for_ranking_and_optimizing() -> None:
    model = _textcnn()
    hunt = HiddenUnitOptimization(model, model.activations[0], model.embedding, WORDS, 0.004, 0.02)
    hunt.saliency.forward_func = Doubled(model)  # what ranks the locations is what runs the optimization
    assert isinstance(hunt.model, Doubled) and hunt.model.model is model
    assert hunt.layer is model.activations[0] and hunt.channel_dim == 1 and hunt.stack is None


def test_gradient_surrogates_read_their_model_and_layer_at_call_time() -> None:
    mlp = _mlp()
    x = torch.rand(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    surrogate = GradientLinearSurrogate(mlp)
    first = surrogate.attribute(x, target=1)
    surrogate.forward_func = Doubled(mlp)
    assert torch.allclose(surrogate.attribute(x, target=1), 2 * first, rtol=1e-12, atol=0)

    model = _embcnn()
    layered = LayerGradientLinearSurrogate(model, model.embedding)
    first = layered.attribute(IDS, target=1)
    layered.forward_func = Doubled(model)
    assert torch.allclose(layered.attribute(IDS, target=1), 2 * first, rtol=1e-12, atol=0)
    layered.layer = model.conv_layers[0]
    fresh = LayerGradientLinearSurrogate(Doubled(model), model.conv_layers[0]).attribute(IDS, target=1)
    assert torch.equal(layered.attribute(IDS, target=1), fresh)


def test_layer_surrogate_refuses_device_ids_it_would_not_use() -> None:
    model = _embcnn()
    with pytest.raises(ValueError, match="device_ids"):
        LayerGradientLinearSurrogate(model, model.embedding, device_ids=[0])
    layered = LayerGradientLinearSurrogate(model, model.embedding, device_ids=None)
    with pytest.raises(ValueError, match="device_ids"):
        layered.device_ids = [0]
    assert layered.device_ids is None

"""What LSTMLRP and ContextualDecomposition share through the one op guard: the refusals of ops, modules and calls
without a rule, and how a model in training mode is run (float64, tiny models). Their Captum contract (targets,
NoiseTunnel, an unchanged model, ...) is in ``test_contract.py``."""

from __future__ import annotations

from typing import Callable, Optional, Type, Union

import pytest
import torch
from torch import Tensor, nn

from captum_text_ext import LSTMLRP, ContextualDecomposition
from captum_text_ext.decomposition import RandomOpError
from captum_text_ext.decomposition.guard import SUPPORTED_OPS_PAGE
from captum_text_ext.models import LSTMClassifier

Method = Union[Type[LSTMLRP], Type[ContextualDecomposition]]
METHODS = [pytest.param(LSTMLRP, id="LSTMLRP"), pytest.param(ContextualDecomposition, id="CD")]
LENGTHS = torch.tensor([5, 2, 4])


@pytest.mark.parametrize("method", METHODS)
def test_a_model_in_training_mode_is_refused_by_name_and_never_switched(method: Method) -> None:
    """Dropout in training mode makes the forward pass random: refused with the module that drops, the model's flags
    left as they were; in evaluation mode the same model is explained."""
    torch.manual_seed(0)
    model = LSTMClassifier(vocab_size=12, embedding_dim=3, hidden_size=3, num_classes=3, pooling="attention",
                           dropout=0.5).double()
    x = torch.randn(3, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with pytest.raises(RandomOpError, match=r"`torch.nn.functional.dropout` \(called in module 'dropout'.*model.eval"):
        method(model.forward_embeddings).attribute(x, 1, LENGTHS)
    assert model.training and model.dropout.training
    assert method(model.eval().forward_embeddings).attribute(x, 1, LENGTHS).shape[:2] == (3, 5)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "head,op",
    [
        (lambda h: torch.exp(h), "torch.exp"),
        (lambda h: nn.functional.group_norm(h, 1), "torch.nn.functional.group_norm"),
        (lambda h: h.abs(), "torch.Tensor.abs"),
        (lambda h: h.log_softmax(-1), "torch.Tensor.log_softmax"),
    ],
    ids=["exp", "group_norm", "abs", "log_softmax"],
)
def test_unsupported_ops_raise_type_error_naming_them(
    method: Method, head: Callable[[Tensor], Tensor], op: str
) -> None:
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(3, 3, batch_first=True)
            self.fc = nn.Linear(3, 2)

        def forward(self, x: Tensor) -> Tensor:
            return self.fc(head(self.rnn(x)[1][-1]))

    with pytest.raises(TypeError, match=f"{method.__name__} has no rule for `{op}`") as info:
        method(Model()).attribute(torch.randn(2, 4, 3), 0)
    assert str(info.value).endswith(f"are listed at {SUPPORTED_OPS_PAGE}.")
    assert info.value.op == op  # type: ignore[attr-defined]
    assert info.value.module == ""  # type: ignore[attr-defined]  # the model itself


@pytest.mark.parametrize("method", METHODS)
def test_unsupported_modules_name_themselves(method: Method) -> None:
    class Model(nn.Module):
        def __init__(self, rnn: nn.Module, norm: Optional[nn.Module] = None) -> None:
            super().__init__()
            self.rnn, self.norm = rnn, norm or nn.Identity()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: Tensor) -> Tensor:
            return self.fc(self.norm(self.rnn(x)[0][:, -1]))

    x = torch.randn(2, 3, 3)
    with pytest.raises(TypeError, match=r"`torch.rnn_tanh` \(called in module 'rnn' of type RNN\)"):
        method(Model(nn.RNN(3, 4, batch_first=True))).attribute(x, 0)
    with pytest.raises(TypeError, match=r"`torch.nn.functional.group_norm` \(called in module 'norm' of type Group"):
        method(Model(nn.LSTM(3, 4, batch_first=True), nn.GroupNorm(1, 4))).attribute(x, 0)


@pytest.mark.parametrize("method", METHODS)
def test_products_in_place_ops_random_dropout_and_gate_only_outputs_are_refused(method: Method) -> None:
    rnn, fc = nn.LSTM(3, 4, batch_first=True), nn.Linear(4, 2)
    x = torch.randn(2, 3, 3)

    def square(inputs: Tensor) -> Tensor:
        h = rnn(inputs)[1][0][-1]
        return fc(h * h)

    def in_place(inputs: Tensor) -> Tensor:
        return fc(rnn(inputs)[1][0][-1].relu_())

    def random_dropout(inputs: Tensor) -> Tensor:
        return fc(nn.functional.dropout(rnn(inputs)[1][0][-1], 0.5, training=True))

    def evaluation_dropout(inputs: Tensor) -> Tensor:
        return fc(nn.functional.dropout(rnn(inputs)[1][0][-1], 0.5, training=False))

    def probabilities(inputs: Tensor) -> Tensor:
        return fc(rnn(inputs)[1][0][-1]).softmax(-1)

    with pytest.raises(TypeError, match="`torch.Tensor.mul`: a product of two"):
        method(square).attribute(x, 0)
    with pytest.raises(TypeError, match="`torch.Tensor.relu_`: in-place ops"):
        method(in_place).attribute(x, 0)
    with pytest.raises(RandomOpError, match="`torch.nn.functional.dropout`: the forward pass is random"):
        method(random_dropout).attribute(x, 0)
    plain = method(lambda inputs: fc(rnn(inputs)[1][0][-1])).attribute(x, 0)
    assert torch.equal(method(evaluation_dropout).attribute(x, 0), plain)
    with pytest.raises(TypeError, match="only through gates: softmax"):
        method(probabilities).attribute(x, 0)

"""LSTMLRP / LayerLSTMLRP over a zoo of recurrent architectures: padding, conservation, delta, tuples, cells, layers,
initial states (float64, tiny models). The Captum contract every class shares is in ``test_contract.py``."""

from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

import pytest
import torch
from captum.attr import GradientAttribution
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from captum_text_ext import LSTMLRP, LayerLSTMLRP
from captum_text_ext.attr import LRPDecomposition
from captum_text_ext.models import LSTMClassifier

EXACT = 1e-10
PADDING = 1e-8
LENGTHS = torch.tensor([5, 2, 4])


class LastRealToken(nn.Module):
    """Time-major LSTM, packed, padded back, output at the last real token of each sentence."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(3, 3)
        self.head = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3))

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        packed = pack_padded_sequence(x.transpose(0, 1), lengths, enforce_sorted=False)
        outputs, _ = pad_packed_sequence(self.rnn(packed)[0], total_length=x.shape[1])
        last = outputs[lengths - 1, torch.arange(x.shape[0])]
        return self.head(last)


class StackedGRUMeanMax(nn.Module):
    """Batch-first stacked bi-GRU, masked mean and max pooled and concatenated, ReLU head."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(3, 2, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Sequential(nn.Linear(8, 5), nn.ReLU(), nn.Dropout(0.3), nn.Linear(5, 3))

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        outputs, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.shape[1])
        mask = (torch.arange(x.shape[1]) < lengths.unsqueeze(1)).unsqueeze(-1)
        mean = (outputs * mask).sum(1) / lengths.unsqueeze(1)
        top = outputs.masked_fill(~mask, float("-inf")).max(dim=1).values
        return self.head(torch.cat([mean, top], dim=-1))


def _classifier(**kwargs: Any) -> Callable[[], Tuple[Callable[..., Tensor], nn.Module]]:
    def build() -> Tuple[Callable[..., Tensor], nn.Module]:
        model = LSTMClassifier(vocab_size=12, embedding_dim=3, hidden_size=3, num_classes=3, **kwargs).double()
        return model.forward_embeddings, model

    return build


def _module(cls: type) -> Callable[[], Tuple[Callable[..., Tensor], nn.Module]]:
    def build() -> Tuple[Callable[..., Tensor], nn.Module]:
        model = cls().double()
        return model, model

    return build


ZOO: Dict[str, Callable[[], Tuple[Callable[..., Tensor], nn.Module]]] = {
    "lstm-1-bi-last": _classifier(cell="lstm", num_layers=1, bidirectional=True, pooling="last"),
    "lstm-2-bi-attention": _classifier(cell="lstm", num_layers=2, bidirectional=True, pooling="attention"),
    "lstm-3-uni-mean": _classifier(cell="lstm", num_layers=3, bidirectional=False, pooling="mean"),
    "lstm-1-uni-max-nobias": _classifier(cell="lstm", bidirectional=False, pooling="max", output_bias=False),
    "gru-1-bi-last": _classifier(cell="gru", num_layers=1, bidirectional=True, pooling="last"),
    "gru-2-bi-max": _classifier(cell="gru", num_layers=2, bidirectional=True, pooling="max"),
    "gru-3-uni-attention": _classifier(cell="gru", num_layers=3, bidirectional=False, pooling="attention"),
    "gru-1-uni-mean": _classifier(cell="gru", num_layers=1, bidirectional=False, pooling="mean", dropout=0.5),
    "lstm-timemajor-last-real-token": _module(LastRealToken),
    "gru-2-bi-mean+max-relu": _module(StackedGRUMeanMax),
}


def _build(name: str, seed: int = 0) -> Tuple[Callable[..., Tensor], nn.Module]:
    torch.manual_seed(seed)
    forward, model = ZOO[name]()
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(2.0)
    return forward, model.eval()  # dropout in training mode is random: the methods refuse it


def _inputs(seed: int = 1) -> Tensor:
    x = torch.randn(3, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    mask = torch.arange(5) < LENGTHS.unsqueeze(1)
    return x * mask.unsqueeze(-1)  # padding embeddings are zero, as the pad id's are


@pytest.mark.parametrize("name", list(ZOO))
@pytest.mark.parametrize("delta", [0.0, 1.0], ids=["LRP", "LRP_cons"])
def test_padded_batch_equals_each_sentence_alone(name: str, delta: float) -> None:
    forward, model = _build(name)
    x = _inputs()
    lrp = LSTMLRP(forward, bias_factor=delta)
    targets = [0, 2, 1]
    batch = lrp.decompose(x, targets, additional_forward_args=LENGTHS)
    assert isinstance(batch, LRPDecomposition)
    with torch.no_grad():
        model.eval()
        logits = forward(x, LENGTHS)
    assert (batch.scores - logits[torch.arange(3), targets]).abs().max() < 1e-12  # forward values unchanged
    for n, length in enumerate(LENGTHS.tolist()):
        alone = lrp.decompose(x[n : n + 1, :length], targets[n], additional_forward_args=LENGTHS[n : n + 1])
        assert (batch.inputs[n, :length] - alone.inputs[0]).abs().max() < PADDING
        assert torch.count_nonzero(batch.inputs[n, length:]) == 0  # positions the model never reads
        assert abs(batch.initial_state_total[n] - alone.initial_state_total[0]) < PADDING


@pytest.mark.parametrize("name", list(ZOO))
def test_bias_factor_one_conserves_the_target_score(name: str) -> None:
    forward, _ = _build(name, seed=3)
    account = LSTMLRP(forward, bias_factor=1.0).decompose(_inputs(4), target=1, additional_forward_args=LENGTHS)
    assert (account.input_total + account.initial_state_total - account.scores).abs().max() < EXACT
    assert account.absorbed.abs().max() < EXACT


@pytest.mark.parametrize("name", ["lstm-2-bi-attention", "gru-2-bi-mean+max-relu"])
def test_delta_is_score_minus_input_relevance(name: str) -> None:
    forward, _ = _build(name)
    lrp = LSTMLRP(forward)
    x = _inputs()
    relevance, delta = lrp.attribute(x, 2, LENGTHS, return_convergence_delta=True)
    account = lrp.decompose(x, 2, LENGTHS)
    assert torch.equal(relevance, account.inputs)
    assert (delta - (account.scores - relevance.sum(dim=(1, 2)))).abs().max() < 1e-12
    assert torch.equal(lrp.compute_convergence_delta(relevance, account.scores), delta)
    assert (delta - account.absorbed).abs().max() < 1e-12  # delta = 0: initial states get nothing
    assert relevance.is_contiguous() and relevance.dtype == torch.float64


def test_tuple_inputs_are_accounted_with_their_initial_states() -> None:
    torch.manual_seed(5)

    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.left, self.right = nn.LSTM(3, 2, batch_first=True), nn.GRU(3, 2, batch_first=True)
            self.fc = nn.Linear(4, 2)

        def forward(self, a: Tensor, b: Tensor) -> Tensor:
            return self.fc(torch.cat([self.left(a)[1][0][-1], self.right(b)[1][-1]], dim=-1))

    model = Pair().double()
    a, b = torch.randn(2, 4, 3, dtype=torch.float64), torch.randn(2, 3, 3, dtype=torch.float64)
    account = LSTMLRP(model, bias_factor=1.0).decompose((a, b), target=0)
    assert isinstance(account.inputs, tuple) and sorted(account.initial_states) == [
        "left.c0", "left.h0", "right.h0",
    ]  # fmt: skip
    assert (account.input_total + account.initial_state_total - account.scores).abs().max() < EXACT


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cell_loops_equal_the_fused_layer(cell: str) -> None:
    torch.manual_seed(6)
    fused = (nn.LSTM if cell == "lstm" else nn.GRU)(3, 4, batch_first=True).double()
    step = (nn.LSTMCell if cell == "lstm" else nn.GRUCell)(3, 4).double()
    step.load_state_dict({k[:-3]: v for k, v in fused.state_dict().items()})
    fc = nn.Linear(4, 3).double()

    def fused_model(x: Tensor) -> Tensor:
        state = fused(x)[1]
        return fc((state[0] if cell == "lstm" else state)[-1])

    class Loop(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.step, self.fc = step, fc

        def forward(self, x: Tensor) -> Tensor:
            hx = None
            for t in range(x.shape[1]):
                hx = self.step(x[:, t], hx)
            return self.fc(hx[0] if cell == "lstm" else hx)

    class Fused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn, self.fc = fused, fc

        def forward(self, x: Tensor) -> Tensor:
            return fused_model(x)

    x = torch.randn(2, 5, 3, dtype=torch.float64)
    for delta in (0.0, 1.0):
        loop = LSTMLRP(Loop(), bias_factor=delta).decompose(x, target=[0, 2])
        reference = LSTMLRP(Fused(), bias_factor=delta).decompose(x, target=[0, 2])
        assert (loop.inputs - reference.inputs).abs().max() < 1e-12
        assert (loop.initial_state_total - reference.initial_state_total).abs().max() < 1e-12


def test_layer_variant_on_token_ids_equals_embedding_inputs() -> None:
    torch.manual_seed(2)
    model = LSTMClassifier(12, embedding_dim=3, hidden_size=3, num_classes=3, pooling="attention").double()
    ids = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 0, 0, 0], [8, 9, 10, 11, 0]])
    lengths = torch.tensor([5, 2, 4])
    layer_lrp = LayerLSTMLRP(model, model.embedding)
    relevance, delta = layer_lrp.attribute(ids, [0, 1, 2], lengths, return_convergence_delta=True)
    with torch.no_grad():
        embeddings = model.embedding(ids)
    expected, expected_delta = LSTMLRP(model.forward_embeddings).attribute(
        embeddings, [0, 1, 2], lengths, return_convergence_delta=True
    )
    assert (relevance - expected).abs().max() < 1e-12 and (delta - expected_delta).abs().max() < 1e-12
    # the output layer's input: with delta = 1 the linear layer conserves, so it sums to the logit
    head = LayerLSTMLRP(model, model.output, bias_factor=1.0).decompose(ids, 1, lengths, attribute_to_layer_input=True)
    assert head.inputs.shape == (3, 6) and (head.input_total - head.scores).abs().max() < EXACT
    assert head.initial_states == {}  # the relevance stops at the layer


def test_constructor_validates_its_arguments() -> None:
    model = nn.Linear(2, 2)
    for epsilon in (0, -1.0, float("inf"), float("nan"), True):
        with pytest.raises(ValueError, match=f"Expected `epsilon` to be a finite positive number, but got {epsilon}"):
            LSTMLRP(model, epsilon=epsilon)
    for bias_factor in (float("nan"), -0.5, 1.5, float("inf")):
        with pytest.raises(ValueError, match=r"Expected `bias_factor` to be a number in \[0, 1\]"):
            LSTMLRP(model, bias_factor=bias_factor)
    lrp = LSTMLRP(model, epsilon=0.5, bias_factor=1.0)
    assert (lrp.epsilon, lrp.bias_factor) == (0.5, 1.0)
    with pytest.raises(AttributeError):
        lrp.epsilon = 0.1  # type: ignore[misc]  # read-only: never a setting that is silently ignored
    with pytest.raises(TypeError, match="Expected `model` to be an nn.Module or a callable, but got int"):
        LSTMLRP(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Expected `layer` to be an nn.Module, but got str"):
        LayerLSTMLRP(model, "embedding")  # type: ignore[arg-type]


def test_captum_interface() -> None:
    forward, _ = _build("gru-1-bi-last")
    lrp = LSTMLRP(forward)
    assert isinstance(lrp, GradientAttribution)
    assert lrp.has_convergence_delta() and lrp.multiplies_by_inputs


def test_verbose_prints_the_rule_of_every_op(capsys: pytest.CaptureFixture[str]) -> None:
    forward, _ = _build("lstm-2-bi-attention")
    LSTMLRP(forward).attribute(_inputs(), 0, LENGTHS, verbose=True)
    printed = capsys.readouterr().out
    assert "LSTMLRP: rnn: torch.lstm -> LSTM/GRU rule (Arras et al.)" in printed
    assert "LSTMLRP: output: torch.nn.functional.linear -> epsilon rule" in printed
    assert "torch.Tensor.softmax -> gate (no relevance)" in printed


@pytest.mark.parametrize("delta", [0.0, 1.0], ids=["LRP", "LRP_cons"])
def test_given_and_learned_initial_states_are_accounted(delta: float) -> None:
    torch.manual_seed(9)

    class WithStates(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(3, 2, batch_first=True)
            self.gru = nn.GRU(2, 2, batch_first=True)
            self.h0 = nn.Parameter(torch.randn(1, 1, 2))
            self.fc = nn.Linear(2, 2)

        def forward(self, x: Tensor) -> Tensor:
            ones = torch.ones(1, x.shape[0], 2, dtype=x.dtype)
            out, _ = self.lstm(x, (ones, 0.5 * ones))
            _, h = self.gru(out, self.h0.expand(1, x.shape[0], 2).contiguous())
            return self.fc(h[-1])

    model = WithStates().double()
    account = LSTMLRP(model, bias_factor=delta).decompose(torch.randn(2, 4, 3, dtype=torch.float64), target=1)
    assert sorted(account.initial_states) == ["gru.h0", "lstm.c0", "lstm.h0"]
    assert all(state.abs().sum() > 0 for state in account.initial_states.values())  # non-zero states get relevance
    if delta == 1.0:
        assert (account.input_total + account.initial_state_total - account.scores).abs().max() < EXACT
    assert model.h0.grad is None and model.h0.requires_grad

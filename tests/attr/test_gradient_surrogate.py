"""GradientLinearSurrogate and LayerGradientLinearSurrogate against straightforward implementations of Hechtlinger's
equations (per-example Jacobians, direct means over the whole dataset), in float64 on tiny models."""

from __future__ import annotations

import weakref
from typing import Any, Iterator, List, Tuple

import pytest
import torch
from captum.attr import LayerGradientXActivation
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.utils.data import DataLoader, TensorDataset

from _model_state import assert_model_unchanged, model_state
from captum_text_ext import GradientLinearSurrogate, LayerGradientLinearSurrogate
from captum_text_ext.attr.gradient_surrogate import NotFittedError
from captum_text_ext.models import BagOfWordsMLP, EmbeddingCNN
from captum_text_ext.decomposition import RandomOpError

D = 7


class SmoothNet(nn.Module):
    """Two inputs (features (N, D) and (N, 2, 3)) and a scale argument; tanh, so finite differences converge."""

    def __init__(self, outputs: int = 3) -> None:
        super().__init__()
        self.a = nn.Linear(D, 5)
        self.b = nn.Linear(6, 5)
        self.out = nn.Linear(5, outputs)

    def forward(self, x: Tensor, y: Tensor, scale: Tensor) -> Tensor:
        hidden = torch.tanh(self.a(x) + self.b(y.flatten(1)) * scale.unsqueeze(1))
        return self.out(hidden)


def _smooth(outputs: int = 3) -> SmoothNet:
    torch.manual_seed(0)
    return SmoothNet(outputs).double().eval()


def _inputs(n: int = 4) -> Tuple[Tensor, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(n, D, generator=generator, dtype=torch.float64)
    y = torch.randn(n, 2, 3, generator=generator, dtype=torch.float64)
    scale = torch.rand(n, generator=generator, dtype=torch.float64) + 0.5
    return x, y, scale


def _jacobian_oracle(model: nn.Module, x: Tensor, y: Tensor, scale: Tensor, targets: List[int]) -> Tuple[Tensor, ...]:
    """g_k(x) = d f_target / d x_k, one example at a time with torch.autograd.functional.jacobian."""
    gx, gy = [], []
    for n, t in enumerate(targets):
        jx, jy = torch.autograd.functional.jacobian(
            lambda a, b: model(a.unsqueeze(0), b.unsqueeze(0), scale[n : n + 1])[0, t], (x[n], y[n])
        )
        gx.append(jx)
        gy.append(jy)
    return torch.stack(gx), torch.stack(gy)


# ------------------------------------------------------------------------------------------------------------------
# Local view: autograd and finite differences
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [1, torch.tensor(2), [0, 2, 1, 1], torch.tensor([2, 0, 0, 1])],
    ids=["int", "scalar-tensor", "list", "tensor"],
)
def test_autograd_equals_per_example_jacobians_for_every_target_form(target: Any) -> None:
    model = _smooth()
    x, y, scale = _inputs()
    targets = [int(target)] * 4 if isinstance(target, int) or torch.is_tensor(target) and target.numel() == 1 \
        else [int(t) for t in target]
    gx, gy = GradientLinearSurrogate(model).attribute((x, y), target=target, additional_forward_args=(scale,))
    ox, oy = _jacobian_oracle(model, x, y, scale, targets)
    assert gx.shape == x.shape and gy.shape == y.shape and gx.is_contiguous()
    assert torch.allclose(gx, ox, atol=1e-13) and torch.allclose(gy, oy, atol=1e-13)


def test_tuple_target_and_none_target() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(D, 6).double()
    x = _inputs()[0]
    grads = GradientLinearSurrogate(lambda v: linear(v).reshape(-1, 2, 3)).attribute(x, target=(1, 2))
    assert torch.equal(grads, linear.weight[5].detach().expand(4, D))  # row 1 * 3 + 2
    grads = GradientLinearSurrogate(lambda v: linear(v)[:, 4]).attribute(x)  # one score per example: no target
    assert torch.equal(grads, linear.weight[4].detach().expand(4, D))


def test_multiply_by_inputs_gives_gradient_times_input() -> None:
    model = _smooth()
    x, y, scale = _inputs()
    plain = GradientLinearSurrogate(model).attribute((x, y), target=1, additional_forward_args=(scale,))
    times = GradientLinearSurrogate(model, multiply_by_inputs=True)
    assert times.multiplies_by_inputs and not GradientLinearSurrogate(model).multiplies_by_inputs
    result = times.attribute((x, y), target=1, additional_forward_args=(scale,))
    assert torch.equal(result[0], plain[0] * x) and torch.equal(result[1], plain[1] * y)


@pytest.mark.parametrize("perturbations_per_eval", [1, 5, 64])
def test_central_finite_differences_agree_with_autograd_to_1e_4_relative(perturbations_per_eval: int) -> None:
    model = _smooth()
    x, y, scale = _inputs()
    target = [0, 2, 1, 1]
    exact = GradientLinearSurrogate(model).attribute((x, y), target=target, additional_forward_args=(scale,))
    estimate = GradientLinearSurrogate(model, method="finite_difference", perturbations_per_eval=perturbations_per_eval)
    approx = estimate.attribute((x, y), target=target, additional_forward_args=(scale,))
    for a, e in zip(approx, exact):
        relative = (a - e).abs().max() / e.abs().max()
        assert a.shape == e.shape and relative <= 1e-4
        assert relative <= 1e-7  # in fact O(h^2)


class Quadratic(nn.Module):
    """f(x) = x^T A x: central differences are exact, forward differences are off by exactly h * A_kk."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(2)
        self.a = torch.randn(D, D, generator=generator, dtype=torch.float64)

    def forward(self, x: Tensor) -> Tensor:
        return ((x @ self.a) * x).sum(-1)


def test_forward_and_central_differences_follow_their_formulas() -> None:
    model, x = Quadratic(), _inputs()[0]
    gradient = x @ (model.a + model.a.T)
    h = 1e-3
    central = GradientLinearSurrogate(model, method="finite_difference", h=h).attribute(x)
    forward = GradientLinearSurrogate(model, method="finite_difference", h=h, difference="forward").attribute(x)
    assert torch.allclose(central, gradient, atol=1e-9)
    assert torch.allclose(forward, gradient + h * torch.diagonal(model.a), atol=1e-9)


def test_finite_differences_need_no_autograd() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(D, 2).double()
    x = _inputs()[0]

    def detached(v: Tensor) -> Tensor:  # autograd cannot see through this model
        return linear(v.detach()).detach()

    with pytest.raises(ValueError, match="does not depend on the inputs through autograd.*finite_difference"):
        GradientLinearSurrogate(detached).attribute(x, target=1)
    grads = GradientLinearSurrogate(detached, method="finite_difference").attribute(x, target=1)
    assert torch.allclose(grads, linear.weight[1].detach().expand(4, D), atol=1e-9)


# ------------------------------------------------------------------------------------------------------------------
# Global view: fit, predict, agreement, top features
# ------------------------------------------------------------------------------------------------------------------


def _bags(n: int = 50, seed: int = 3) -> Tensor:
    return torch.randint(0, 2, (n, D), generator=torch.Generator().manual_seed(seed)).double()


def _probability_model() -> Any:
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(D, 6), nn.Tanh(), nn.Linear(6, 2)).double().eval()
    return net, lambda x, *rest: net(x * (rest[0].unsqueeze(1) if rest else 1)).softmax(-1)


def _direct(model: Any, x: Tensor, column: int, threshold: float) -> Tuple[Tensor, Tensor]:
    """The paper's equations over the whole set at once: g_bar = mean of per-example gradients; intercept =
    mean(f(x) - <g_bar, x>) - threshold."""
    grads = torch.stack([torch.autograd.functional.jacobian(lambda v: model(v.unsqueeze(0))[0, column], row)
                         for row in x])
    coef = grads.mean(0)
    values = model(x)[:, column].detach()
    return coef, (values - x @ coef).mean() - threshold


def _as_generator(x: Tensor, size: int) -> Iterator[Tensor]:
    for start in range(0, len(x), size):
        yield x[start : start + size]


@pytest.mark.parametrize("form", ["tensor", "tuple", "dataset", "dataloader", "generator"])
def test_fit_mean_equals_the_direct_mean_over_the_whole_dataset(form: str) -> None:
    net, model = _probability_model()
    x = _bags()
    data: Any = {
        "tensor": x,
        "tuple": (x,),
        "dataset": TensorDataset(x),
        "dataloader": DataLoader(TensorDataset(x), batch_size=8),
        "generator": _as_generator(x, 13),
    }[form]
    surrogate = GradientLinearSurrogate(model).fit(data, target=1, threshold=0.5, batch_size=16)
    coef, intercept = _direct(model, x, 1, 0.5)
    assert surrogate.n_samples_seen_ == 50 and surrogate.n_features_in_ == D
    assert surrogate.coef_.shape == (D,) and surrogate.intercept_.shape == ()
    assert torch.allclose(surrogate.coef_, coef, atol=1e-14) and torch.allclose(surrogate.intercept_, intercept,
                                                                                atol=1e-14)
    assert surrogate.target_ == 1 and surrogate.threshold_ == 0.5


def test_fit_passes_additional_forward_args_and_uses_finite_differences() -> None:
    _, model = _probability_model()
    x = _bags()
    scale = torch.linspace(0.5, 1.5, 50, dtype=torch.float64)
    exact = GradientLinearSurrogate(model).fit(DataLoader(TensorDataset(x, scale), batch_size=7), target=0)
    rows = torch.stack([torch.autograd.functional.jacobian(lambda v: model(v.unsqueeze(0), s.reshape(1))[0, 0], r)
                        for r, s in zip(x, scale)])
    assert torch.allclose(exact.coef_, rows.mean(0), atol=1e-14)
    estimate = GradientLinearSurrogate(model, method="finite_difference").fit((x, scale), target=0, batch_size=9)
    assert ((estimate.coef_ - exact.coef_).abs().max() / exact.coef_.abs().max()) <= 1e-4


def test_fit_streams_one_batch_at_a_time() -> None:
    """The memory does not depend on the dataset's size: no batch is kept once the next one is read (a tensor is freed
    as soon as nothing refers to it)."""
    _, model = _probability_model()
    alive: List[weakref.ref] = []

    def batches() -> Iterator[Tensor]:
        for number in range(40):
            assert sum(ref() is not None for ref in alive) <= 1, f"batches kept alive at batch {number}"
            batch = _bags(16, seed=number)
            alive.append(weakref.ref(batch))
            yield batch

    surrogate = GradientLinearSurrogate(model).fit(batches(), target=1)
    assert surrogate.n_samples_seen_ == 640


def test_multi_class_fit_has_one_surrogate_per_class_and_predicts_the_argmax() -> None:
    _, model = _probability_model()
    x = _bags()
    surrogate = GradientLinearSurrogate(model).fit(x)  # (N, 2) output, target None: every class
    for c in (0, 1):
        coef, intercept = _direct(model, x, c, 0.0)
        assert torch.allclose(surrogate.coef_[c], coef, atol=1e-14)
        assert torch.allclose(surrogate.intercept_[c], intercept, atol=1e-14)
    scores = x @ surrogate.coef_.T + surrogate.intercept_
    assert torch.equal(surrogate.predict(x), scores.argmax(-1))
    assert torch.equal(surrogate.model_predict(x), model(x).argmax(-1))
    expected = float((scores.argmax(-1) == model(x).argmax(-1)).double().mean())
    assert surrogate.agreement(x) == expected


def test_a_linear_logit_difference_is_recovered_exactly() -> None:
    torch.manual_seed(5)
    linear = nn.Linear(D, 2).double()
    x = _bags()

    def difference(v: Tensor) -> Tensor:
        logits = linear(v)
        return logits[:, 1] - logits[:, 0]

    surrogate = GradientLinearSurrogate(difference).fit(x, threshold=0.0)
    w = (linear.weight[1] - linear.weight[0]).detach()
    b = (linear.bias[1] - linear.bias[0]).detach()
    assert torch.allclose(surrogate.coef_, w, atol=1e-14) and torch.allclose(surrogate.intercept_, b, atol=1e-14)
    assert surrogate.agreement(x) == 1.0


def test_predict_with_and_without_intercept() -> None:
    _, model = _probability_model()
    x = _bags()
    with_b = GradientLinearSurrogate(model).fit(x, target=1, threshold=0.5)
    paper = GradientLinearSurrogate(model).fit(x, target=1, threshold=0.5, fit_intercept=False)
    assert torch.equal(paper.coef_, with_b.coef_) and float(paper.intercept_) == 0.0
    assert torch.equal(paper.predict(x), (x @ paper.coef_ > 0).long())
    assert torch.equal(with_b.predict(x), (x @ with_b.coef_ + with_b.intercept_ > 0).long())
    model_class = (model(x)[:, 1] > 0.5).long()
    assert torch.equal(with_b.model_predict(x), model_class)
    for fitted in (with_b, paper):
        assert fitted.agreement(DataLoader(TensorDataset(x), batch_size=6)) == float(
            (fitted.predict(x) == model_class).double().mean())


def test_top_features_rank_the_mean_derivatives() -> None:
    linear = nn.Linear(D, 1).double()
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[0.5, -2.0, 3.0, 0.0, -1.0, 1.0, -0.5]]))
    surrogate = GradientLinearSurrogate(lambda v: linear(v)[:, 0]).fit(_bags())
    top = surrogate.top_features(2, feature_names=list("abcdefg"))
    assert [(w.name, w.weight) for w in top.positive] == [("c", 3.0), ("f", 1.0)]
    assert [(w.index, w.weight) for w in top.negative] == [(1, -2.0), (4, -1.0)]
    top = surrogate.top_features(2, exclude=[2, 1])
    assert [w.name for w in top.positive] == ["5", "0"] and [w.name for w in top.negative] == ["4", "6"]


def test_top_features_of_a_multi_class_surrogate_need_a_class() -> None:
    _, model = _probability_model()
    surrogate = GradientLinearSurrogate(model).fit(_bags())
    first, second = surrogate.top_features(3, class_index=0), surrogate.top_features(3, class_index=1)
    assert [w.index for w in first.positive] == [w.index for w in second.negative]  # softmax of two: g_0 = -g_1
    with pytest.raises(ValueError, match=r"Expected `class_index` in \[0, 2\)"):
        surrogate.top_features(3)


# ------------------------------------------------------------------------------------------------------------------
# Errors and an unchanged model
# ------------------------------------------------------------------------------------------------------------------


def test_bad_arguments_raise_clear_errors() -> None:
    net, model = _probability_model()
    x = _bags()
    with pytest.raises(ValueError, match="Expected `method` in"):
        GradientLinearSurrogate(model, method="numeric")
    with pytest.raises(ValueError, match="Expected `h` to be a finite number > 0"):
        GradientLinearSurrogate(model, h=0.0)
    with pytest.raises(ValueError, match="Expected `difference` in"):
        GradientLinearSurrogate(model, difference="backward")
    with pytest.raises(ValueError, match="Expected `perturbations_per_eval` to be an int >= 1"):
        GradientLinearSurrogate(model, perturbations_per_eval=0)
    with pytest.raises(TypeError, match="floating-point.*LayerGradientLinearSurrogate"):
        GradientLinearSurrogate(model).attribute(x.long(), target=1)
    with pytest.raises(ValueError, match=r"fixed-size floating-point feature inputs of shape \(N, D\).*\(50, 7, 1\)"):
        GradientLinearSurrogate(lambda v: net(v.sum(1)).softmax(-1)).fit(x.unsqueeze(-1), target=1)
    with pytest.raises(ValueError, match="output column \\(int\\) or None for fit"):
        GradientLinearSurrogate(model).fit(x, target=[1] * 50)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Expected every batch to have 7 features, but got 6"):
        GradientLinearSurrogate(model).fit([x[:5], x[:5, :6]])
    with pytest.raises(ValueError, match="at least one example"):
        GradientLinearSurrogate(model).fit([])
    with pytest.raises(ValueError, match=r"Expected `target` in \[0, 2\), but got 2"):
        GradientLinearSurrogate(model).fit(x, target=2)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        GradientLinearSurrogate(model).predict(x)
    with pytest.raises(ValueError, match="with the batch \\(50\\) first"):
        GradientLinearSurrogate(lambda v: v.sum()).attribute(x)
    fitted = GradientLinearSurrogate(model).fit(x, target=1)
    with pytest.raises(ValueError, match="Expected every batch to have 7 features, but got 3"):
        fitted.predict(x[:, :3])


def test_fit_and_agreement_leave_the_model_unchanged() -> None:
    torch.manual_seed(6)
    model = BagOfWordsMLP(vocab_size=D, num_classes=2, hidden_sizes=(5,), dropout=0.5).double()
    model.output.weight.requires_grad_(False)
    before = model_state(model)  # training mode, one frozen parameter
    x = _bags()
    surrogate = GradientLinearSurrogate(model.forward_features)
    with pytest.raises(RandomOpError, match="GradientLinearSurrogate has no rule for `torch.nn.functional.dropout`"):
        surrogate.fit(x, target=1)  # dropout in training mode: random gradients, refused, never switched off
    assert_model_unchanged(before, model)
    model.eval()
    before = model_state(model)
    surrogate.fit(x, target=1)
    surrogate.agreement(x)
    assert_model_unchanged(before, model)


# ------------------------------------------------------------------------------------------------------------------
# The layer variant
# ------------------------------------------------------------------------------------------------------------------


class PositionalNet(nn.Module):
    """f = sum_t <w_t, z_t> over embeddings z of ids (N, T=5): the gradient at z_t is w_t, masked beyond lengths."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(10, 2)
        self.weights = torch.tensor([[0.1, 0.0], [3.0, 4.0], [0.0, 1.0], [0.0, 2.0], [6.0, 8.0]], dtype=torch.float32)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        z = self.embedding(ids) * (torch.arange(ids.shape[1]) < lengths.unsqueeze(1)).unsqueeze(-1)
        return torch.stack([(z * self.weights).sum((1, 2)), -(z * self.weights).sum((1, 2))], dim=1)


def test_top_expressions_rank_words_by_gradient_norm_and_follow_the_window() -> None:
    model = PositionalNet()
    ids = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, 9, 0]])
    lengths = torch.tensor([5, 4])
    surrogate = LayerGradientLinearSurrogate(model, model.embedding)
    norms = surrogate.token_norms(ids, target=0, additional_forward_args=(lengths,))
    assert torch.allclose(norms, torch.tensor([[0.1, 5.0, 1.0, 2.0, 10.0], [0.1, 5.0, 1.0, 2.0, 0.0]]))
    top = surrogate.top_expressions(ids, k=3, window=3, target=0, additional_forward_args=(lengths,), lengths=lengths)
    assert [(e.position, e.positions, e.token_ids) for e in top[0]] == [
        (4, (4,), (5,)), (1, (1, 2, 3), (2, 3, 4)), (3, (3, 4), (4, 5))]
    assert [(e.position, e.positions, e.token_ids) for e in top[1]] == [
        (1, (1, 2, 3), (7, 8, 9)), (3, (3,), (9,)), (2, (2, 3), (8, 9))]
    assert top[0][0].norm == pytest.approx(10.0)
    few = surrogate.top_expressions(ids, k=5, window=2, target=1, additional_forward_args=(lengths,))
    assert len(few[0]) == 5 and len(few[1]) == 4  # the masked position has gradient 0: never selected
    with pytest.raises(ValueError, match="Expected `window` to be an int >= 1"):
        surrogate.top_expressions(ids, k=1, window=0, target=0, additional_forward_args=(lengths,))
    with pytest.raises(ValueError, match=r"Expected `lengths` of shape \(2,\)"):
        surrogate.top_expressions(ids, 1, 2, 0, (lengths,), lengths=torch.tensor([6, 1]))


def test_layer_gradients_equal_captum_and_the_embedding_route() -> None:
    torch.manual_seed(7)
    model = EmbeddingCNN(vocab_size=15, num_classes=3, embedding_dim=4, num_filters=6).double().eval()
    ids, lengths = torch.tensor([[2, 3, 4, 5, 6, 7], [8, 9, 10, 0, 0, 0]]), torch.tensor([6, 3])
    target = [2, 0]
    ours = LayerGradientLinearSurrogate(model, model.embedding).attribute(ids, target, (lengths,))
    captum = LayerGradientXActivation(model, model.embedding, multiply_by_inputs=False).attribute(
        ids, target, (lengths,))
    embeddings = model.embedding(ids).detach()
    route = GradientLinearSurrogate(model.forward_embeddings).attribute(embeddings, target, (lengths,))
    assert torch.allclose(ours, captum, atol=1e-14) and torch.allclose(ours, route, atol=1e-14)
    assert torch.equal(ours[1, 3:], torch.zeros(3, 4))  # padding the model masks
    times = LayerGradientLinearSurrogate(model, model.embedding, multiply_by_inputs=True)
    assert torch.allclose(times.attribute(ids, target, (lengths,)), ours * embeddings, atol=1e-14)


def test_attribute_to_layer_input() -> None:
    torch.manual_seed(9)
    model = EmbeddingCNN(vocab_size=15, num_classes=2, embedding_dim=4, num_filters=5).double().eval()
    ids, lengths = torch.tensor([[2, 3, 4, 5, 6], [7, 8, 9, 10, 11]]), torch.tensor([5, 5])
    at_embedding = LayerGradientLinearSurrogate(model, model.embedding).attribute(ids, 1, (lengths,))
    conv = LayerGradientLinearSurrogate(model, model.conv_layers[0])
    at_conv_input = conv.attribute(ids, 1, (lengths,), attribute_to_layer_input=True)
    assert at_conv_input.shape == (2, 4, 5)  # Conv1d reads (N, E, T)
    assert torch.allclose(at_conv_input.transpose(1, 2), at_embedding, atol=1e-14)


class TimeMajorLSTM(nn.Module):
    """Glue code in forward: time-major packed LSTM, output at the last real token."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(12, 3, padding_idx=0)
        self.rnn = nn.LSTM(3, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        packed = pack_padded_sequence(self.embedding(ids).transpose(0, 1), lengths, enforce_sorted=False)
        outputs, _ = pad_packed_sequence(self.rnn(packed)[0])
        return self.head(outputs[lengths - 1, torch.arange(ids.shape[0])])


def test_padded_batches_give_each_sentence_its_own_gradients() -> None:
    torch.manual_seed(8)
    model = TimeMajorLSTM().double().eval()
    ids, lengths = torch.tensor([[2, 3, 4, 5], [6, 7, 0, 0], [8, 0, 0, 0]]), torch.tensor([4, 2, 1])
    surrogate = LayerGradientLinearSurrogate(model, model.embedding)
    batch = surrogate.attribute(ids, [1, 0, 1], (lengths,))
    for n, (t, length) in enumerate(zip([1, 0, 1], lengths.tolist())):
        alone = surrogate.attribute(ids[n : n + 1, :length], t, (lengths[n : n + 1],))
        assert torch.allclose(batch[n, :length], alone[0], atol=1e-14)
        assert torch.equal(batch[n, length:], torch.zeros_like(batch[n, length:]))
